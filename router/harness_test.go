package router_test

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/router"
	"github.com/switchboardhq/switchboard/router/runtime"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/postgres"
	"github.com/switchboardhq/switchboard/store/sqlite"
)

// fakeSink is a channel that records what it is asked to post. fail, when
// set, decides the outcome of each attempt.
type fakeSink struct {
	name string
	mu   sync.Mutex
	got  []adapters.Delivery // successful deliveries, in order
	n    int                 // attempts
	fail func(d adapters.Delivery, attempt int) error
	// block, when set, is waited on before answering.
	block chan struct{}
	// hook, when set, is called last, once block and fail let the attempt
	// through; its error fails the attempt. It may block until ctx ends.
	hook func(ctx context.Context, d adapters.Delivery) error
	// editor makes the sink an adapters.Editor with editInterval.
	editor       bool
	editInterval time.Duration
}

// editingSink is a fakeSink that is an adapters.Editor.
type editingSink struct{ *fakeSink }

func (s editingSink) EditInterval() time.Duration { return s.editInterval }

var _ adapters.Editor = editingSink{}

func (s *fakeSink) Deliver(ctx context.Context, d adapters.Delivery) (adapters.Receipt, error) {
	s.mu.Lock()
	s.n++
	n, fail, block, hook := s.n, s.fail, s.block, s.hook
	s.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return adapters.Receipt{}, ctx.Err()
		}
	}
	if fail != nil {
		if err := fail(d, n); err != nil {
			return adapters.Receipt{}, err
		}
	}
	if hook != nil {
		if err := hook(ctx, d); err != nil {
			return adapters.Receipt{}, err
		}
	}
	s.mu.Lock()
	s.got = append(s.got, d)
	s.mu.Unlock()
	if d.Envelope.Kind == envelope.KindEdit {
		return adapters.Receipt{ChannelID: d.Target}, nil // changed in place
	}
	return adapters.Receipt{ChannelID: fmt.Sprintf("%s-posted-%d", s.name, n)}, nil
}

func (s *fakeSink) delivered() []adapters.Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]adapters.Delivery(nil), s.got...)
}

func (s *fakeSink) texts() []string {
	var out []string
	for _, d := range s.delivered() {
		out = append(out, d.Envelope.Text)
	}
	return out
}

// harness runs a Router over a real store: SQLite at path, or PostgreSQL
// when dsn is set.
type harness struct {
	t     *testing.T
	path  string
	dsn   string
	cfg   *config.Config
	st    router.Store
	sinks map[string]*fakeSink
	r     *router.Router
	// rts are the runtimes given to newHarness; nil builds them at every
	// open from the config, as the gateway does.
	rts map[string]runtime.Runtime
	// wrap, when set, wraps the store the router is given (h.st stays the
	// store itself).
	wrap func(router.Store) router.Store
	stop func()
	// lease is the routers' lease (0: 2s).
	lease time.Duration
	// poll is how often the router looks for work it was not told about
	// (0: 20ms).
	poll time.Duration
	// reg is the running router's metrics registry.
	reg *prometheus.Registry
}

func parseConfig(t *testing.T, yml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func newHarness(t *testing.T, yml string, rts map[string]runtime.Runtime) *harness {
	t.Helper()
	return startHarness(t, &harness{path: filepath.Join(t.TempDir(), "switchboard.db"), rts: rts}, yml)
}

// newWrappedHarness is newHarness with the router's store wrapped, to see
// or steer what the router does with it.
func newWrappedHarness(t *testing.T, yml string, wrap func(router.Store) router.Store) *harness {
	t.Helper()
	return startHarness(t, &harness{path: filepath.Join(t.TempDir(), "switchboard.db"), wrap: wrap}, yml)
}

// newPGHarness is newHarness over the PostgreSQL database dsn. Several
// harnesses on one dsn are several gateway processes sharing a store.
func newPGHarness(t *testing.T, dsn, yml string, rts map[string]runtime.Runtime) *harness {
	t.Helper()
	// A longer lease than SQLite's: replicas must keep their leases even on
	// a loaded machine, or a live process's work is (correctly, but
	// confusingly for the test) taken over.
	return startHarness(t, &harness{dsn: dsn, rts: rts, lease: 4 * time.Second}, yml)
}

// startHarness completes h (its store, runtimes and wrap set) and starts it.
func startHarness(t *testing.T, h *harness, yml string) *harness {
	t.Helper()
	h.t = t
	h.cfg = parseConfig(t, yml)
	h.sinks = map[string]*fakeSink{"fake": {name: "fake"}, "fake2": {name: "fake2"}}
	h.open()
	t.Cleanup(h.close)
	return h
}

// open opens the store and starts a router on it.
func (h *harness) open() {
	h.t.Helper()
	ctx := context.Background()
	var (
		st  router.Store
		err error
	)
	if h.dsn != "" {
		st, err = postgres.Open(ctx, h.dsn, postgres.Options{Logger: quietLogger})
	} else {
		st, err = sqlite.Open(ctx, h.path, sqlite.Options{})
	}
	if err != nil {
		h.t.Fatal(err)
	}
	h.st = st
	rts := h.rts
	if rts == nil {
		// As the gateway wires them: the http runtime's session map is
		// kept in the store.
		if rts, err = router.Runtimes(h.cfg, router.NewSessionMap(st)); err != nil {
			h.t.Fatal(err)
		}
	}
	sinks := map[string]adapters.Sink{}
	for k, v := range h.sinks {
		sinks[k] = v
		if v.editor {
			sinks[k] = editingSink{v}
		}
	}
	if h.wrap != nil {
		st = h.wrap(st)
	}
	h.reg = prometheus.NewRegistry()
	r, err := router.New(router.Options{
		Config:   h.cfg,
		Store:    st,
		Sinks:    sinks,
		Runtimes: rts,
		Registry: h.reg,
		Logger:   quietLogger,
		LeaseTTL: h.leaseTTL(),
		Poll:     cmp.Or(h.poll, 20*time.Millisecond),
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.r = r
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(runCtx) }()
	h.stop = func() { cancel(); <-done }
}

// close stops the router and closes the store; restart opens both again.
func (h *harness) close() {
	if h.stop != nil {
		h.stop()
		h.stop = nil
		h.st.(interface{ Close() error }).Close()
	}
}

func (h *harness) restart() { h.close(); h.open() }

// crash stops the router the way a killed process stops: its store goes
// first, so nothing it had in hand is settled or released.
func (h *harness) crash() {
	if h.stop != nil {
		h.st.(interface{ Close() error }).Close()
		h.stop()
		h.stop = nil
	}
}

// quietLogger logs warnings and errors only.
var quietLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

var tick atomic.Int64

// msg is an inbound message from source in conversation ref.
func msg(source, ref, text string, f adapters.Facts) adapters.Inbound {
	return adapters.Inbound{
		Envelope: envelope.Envelope{
			ID:           fmt.Sprintf("%s:%d-%d", source, time.Now().UnixNano(), tick.Add(1)),
			Source:       source,
			Kind:         envelope.KindMessage,
			Actor:        envelope.Actor{ID: source + ":ada", Display: "Ada", Type: envelope.Human},
			Conversation: envelope.Conversation{Source: source, Ref: ref},
			Text:         text,
			TS:           time.Now().UTC(),
		},
		Facts: f,
	}
}

func (h *harness) ingest(in adapters.Inbound) adapters.Outcome {
	h.t.Helper()
	out, err := h.r.Ingest(context.Background(), in)
	if err != nil {
		h.t.Fatalf("ingest: %v", err)
	}
	return out
}

// output appends an agent output to a session.
func (h *harness) output(sessionID, id, text string, to envelope.Conversation) {
	h.t.Helper()
	h.change(sessionID, id, envelope.KindMessage, "", text, false, to)
}

// change appends an agent output of kind, changing the output target
// (edit, delete), partial or not, as the API writes it.
func (h *harness) change(sessionID, id string, kind envelope.Kind, target, text string, partial bool, to envelope.Conversation) {
	h.t.Helper()
	var refs envelope.Refs
	switch kind {
	case envelope.KindEdit:
		refs = refs.Set(envelope.RefEdits, "agent:"+target)
	case envelope.KindDelete:
		refs = refs.Set(envelope.RefDeletes, "agent:"+target)
	}
	if partial {
		refs = refs.Set(envelope.RefPartial, "true")
	}
	_, err := h.st.Append(context.Background(), store.AppendRequest{SessionID: sessionID, Direction: store.Outbound, Envelope: envelope.Envelope{
		ID: "agent:" + id, Source: "agent", Kind: kind, Refs: refs,
		Actor: envelope.Actor{ID: "agent:a", Type: envelope.Agent}, Conversation: to, Text: text, TS: time.Now().UTC(),
	}})
	if err != nil {
		h.t.Fatalf("append output: %v", err)
	}
}

func (h *harness) records(sessionID string) []store.Record {
	h.t.Helper()
	recs, err := h.st.Read(context.Background(), sessionID, 0, 10000)
	if err != nil {
		h.t.Fatal(err)
	}
	return recs
}

// waitFor polls cond until it holds; the timeout is only a failure guard.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gauge is the value of the running router's gauge name with the given
// label, or -1 when it has none.
func (h *harness) gauge(name, label, value string) float64 {
	h.t.Helper()
	v, found := h.metric(name, label, value, func(m *dto.Metric) float64 { return m.GetGauge().GetValue() })
	if !found {
		return -1
	}
	return v
}

// counter is the sum of the running router's counter name over the
// series with the given label.
func (h *harness) counter(name, label, value string) float64 {
	h.t.Helper()
	v, _ := h.metric(name, label, value, func(m *dto.Metric) float64 { return m.GetCounter().GetValue() })
	return v
}

// metric sums get over the series of the running router's metric name
// with the given label.
func (h *harness) metric(name, label, value string, get func(*dto.Metric) float64) (sum float64, found bool) {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					sum, found = sum+get(m), true
				}
			}
		}
	}
	return sum, found
}

// leaseTTL is the routers' lease: 2s unless the harness says otherwise.
func (h *harness) leaseTTL() time.Duration {
	if h.lease > 0 {
		return h.lease
	}
	return 2 * time.Second
}
