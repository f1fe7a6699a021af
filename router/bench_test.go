package router_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/router"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/sqlite"
)

// latencySink records when each output was delivered.
type latencySink struct {
	mu   sync.Mutex
	lats []time.Duration
	sent map[string]time.Time // output text → when its inbound was accepted
	done chan struct{}
	want int
}

func (s *latencySink) Deliver(_ context.Context, d adapters.Delivery) (adapters.Receipt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t0, ok := s.sent[d.Envelope.Text]; ok {
		s.lats = append(s.lats, time.Since(t0))
		if len(s.lats) == s.want {
			close(s.done)
		}
	}
	return adapters.Receipt{ChannelID: d.ID}, nil
}

// BenchmarkEndToEnd measures, under a steady load over 32 conversations,
// the time from an inbound message being accepted (Ingest returned) to the
// agent's answer being delivered to the channel. The agent is an inbox agent
// that follows each session's log and answers at once, so the figure is the
// gateway's own overhead: store, dispatch, output routing, outbox.
func BenchmarkEndToEnd(b *testing.B) {
	cfg, err := config.Parse([]byte(`
routes:
  - name: fake
    match: {source: fake}
    budget: {outputs_per_minute: 1000000}
`), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "sb.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	sink := &latencySink{sent: map[string]time.Time{}, done: make(chan struct{}), want: b.N}
	r, err := router.New(router.Options{Config: cfg, Store: st, Sinks: map[string]adapters.Sink{"fake": sink}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	rctx, stopRouter := context.WithCancel(context.Background())
	routerDone := make(chan struct{})
	go func() { defer close(routerDone); _ = r.Run(rctx) }()
	defer func() { stopRouter(); <-routerDone }()

	const convs = 32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The agent: follow every session's log and answer each message.
	sig, unsub := st.Subscribe(store.AllSessions)
	defer unsub()
	var agent, answers sync.WaitGroup
	agent.Add(1)
	go func() {
		defer agent.Done()
		defer answers.Wait()
		cursors := map[string]int64{}
		for {
			select {
			case <-ctx.Done():
				return
			case <-sig:
			}
			ss, _ := st.ListSessions(ctx, "", 1000)
			for _, s := range ss {
				if s.LastSeq <= cursors[s.ID] {
					continue
				}
				recs, _ := st.Read(ctx, s.ID, cursors[s.ID], 1000)
				for _, r := range recs {
					cursors[s.ID] = r.Seq
					if r.Direction == store.Inbound {
						// Answer concurrently, so the answers share commits.
						answers.Add(1)
						go func() {
							defer answers.Done()
							_, _ = st.Append(ctx, store.AppendRequest{SessionID: s.ID, Direction: store.Outbound, Envelope: envelope.Envelope{
								ID: "agent:" + r.Envelope.ID, Source: "agent", Kind: envelope.KindMessage,
								Actor: envelope.Actor{ID: "agent:bench", Type: envelope.Agent}, Text: r.Envelope.Text, TS: time.Now().UTC(),
							}})
						}()
					}
				}
			}
		}
	}()

	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	per := (b.N + convs - 1) / convs
	for c := range convs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if c*per+i >= b.N {
					return
				}
				in := msg("fake", fmt.Sprint("conv-", c), fmt.Sprintf("c%d-m%d", c, i), adapters.Facts{Addressed: true})
				sink.mu.Lock()
				sink.sent[in.Envelope.Text] = time.Now()
				sink.mu.Unlock()
				if _, err := r.Ingest(ctx, in); err != nil {
					b.Error(err)
					return
				}
				time.Sleep(benchGap) // a steady load, not a burst
			}
		}()
	}
	wg.Wait()
	select {
	case <-sink.done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("only %d of %d answers delivered", len(sink.lats), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	agent.Wait()
	slices.Sort(sink.lats)
	q := func(f float64) float64 {
		return float64(sink.lats[int(f*float64(len(sink.lats)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

// benchGap is the pause between two messages of one conversation: 32
// conversations at one message every 100ms is a steady 320 messages/s.
const benchGap = 100 * time.Millisecond
