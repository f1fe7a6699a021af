package router_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// BenchmarkWebhookDelivery sends b.N items over 16 sessions, one sender per
// session, and waits until a local receiver has every event. It reports
// delivered events per second and the latency from the event's time (a
// message's envelope ts, a state change's commit) to receipt.
//
//   - messages: each item is one inbound message, one "message" event;
//   - turns: each item is an agent's turn (a message that wakes the session
//     and an answer that rests it), four events to a destination that takes
//     every type, session events included.
func BenchmarkWebhookDelivery(b *testing.B) {
	b.Run("messages", func(b *testing.B) {
		benchWebhooks(b, []string{"message"}, 1, func(h *whHarness, session string, i int) {
			h.send(session, "m"+strconv.Itoa(i), store.Inbound)
		})
	})
	b.Run("turns", func(b *testing.B) {
		benchWebhooks(b, nil, 4, func(h *whHarness, session string, i int) {
			h.turn(session, "m"+strconv.Itoa(i))
		})
	})
}

func benchWebhooks(b *testing.B, types []string, perItem int, send func(h *whHarness, session string, i int)) {
	const sessions = 16
	var (
		mu        sync.Mutex
		latencies []time.Duration
		done      = make(chan struct{})
		want      = b.N * perItem
	)
	h := newWHHarness(b, whConfig)
	for g := range sessions {
		if _, _, err := h.st.CreateSession(context.Background(), "ses-"+strconv.Itoa(g), nil); err != nil {
			b.Fatal(err)
		}
	}
	var rc *receiver
	rc = newReceiver(b, func(w http.ResponseWriter, r *http.Request, n int) int {
		rc.mu.Lock()
		d := rc.all[n-1]
		rc.mu.Unlock()
		at := d.event.TS
		if d.event.Type == envelope.EventSessionNew {
			return http.StatusNoContent // before the timer
		}
		if d.event.Type == envelope.EventMessage {
			var env envelope.Envelope
			_ = json.Unmarshal(d.event.Body, &env)
			at = env.TS
		}
		mu.Lock()
		latencies = append(latencies, d.at.Sub(at))
		if len(latencies) == want {
			close(done)
		}
		mu.Unlock()
		return http.StatusNoContent
	})
	h.addWebhook("bench", rc.srv.URL, types...)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for g := range sessions {
		wg.Go(func() {
			for i := g; i < b.N; i += sessions {
				send(h, "ses-"+strconv.Itoa(g), i)
			}
		})
	}
	wg.Wait()
	<-done
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(latencies)
	b.ReportMetric(float64(want)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
}
