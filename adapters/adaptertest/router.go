package adaptertest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/router"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/sqlite"
)

// RunRouter runs, until t ends, a real router over a fresh SQLite store
// with one route, named channel, from channel's places matching where (""
// for all) to an exec agent (script, a /bin/sh script), and the adapter
// newSink builds with the router as its Ingress and the store as its
// state, as channel's sink; an adapter that is an adapters.Runner runs
// too, and fails t if its Run fails. It returns the adapter and the store.
func RunRouter[A adapters.Sink](t testing.TB, channel, where, script string, newSink func(adapters.Ingress, store.KV) A) (A, *sqlite.Store) {
	t.Helper()
	dir := t.TempDir()
	agent := filepath.Join(dir, "agent.sh")
	if err := os.WriteFile(agent, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	match := "source: " + channel
	if where != "" {
		match += fmt.Sprintf(", where: [%q]", where)
	}
	cfg, err := config.Parse(fmt.Appendf(nil, `
routes:
  - name: %s
    match: {%s}
    runtime: exec
    exec: {command: [%q]}
`, channel, match, agent), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "sb.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close the store: %v", err)
		}
	})

	var rt *router.Router
	a := newSink(adapters.IngressFunc(func(ctx context.Context, in adapters.Inbound) (adapters.Outcome, error) {
		return rt.Ingest(ctx, in)
	}), st)
	runtimes, err := router.Runtimes(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	rt, err = router.New(router.Options{
		Config: cfg, Store: st, Sinks: map[string]adapters.Sink{channel: a}, Runtimes: runtimes,
		Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler), Poll: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = rt.Run(ctx) }()
	runDone := make(chan error, 1)
	go func() {
		if r, ok := any(a).(adapters.Runner); ok {
			runDone <- r.Run(ctx) // learns the bot's identity, watches, as in production
			return
		}
		runDone <- nil
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := <-runDone; err != nil {
			t.Errorf("the adapter's Run failed: %v", err)
		}
	})
	return a, st
}
