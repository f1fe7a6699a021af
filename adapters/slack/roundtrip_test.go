package slack

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/router"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/sqlite"
)

// TestRoundTripThroughTheRouter drives a whole conversation: a mention
// starts a session, an exec agent answers, the answer is posted into the
// thread (after one 429 from Slack), and a reply in the thread steers the
// same session without a mention.
func TestRoundTripThroughTheRouter(t *testing.T) {
	fake := newFakeSlack(t)
	fake.setUsers(map[string]string{"U0ADA": "ada"})
	fake.failPosts(failWith(http.StatusTooManyRequests, map[string]string{"Retry-After": "1"}, nil))

	dir := t.TempDir()
	agent := filepath.Join(dir, "agent.sh")
	if err := os.WriteFile(agent, []byte("#!/bin/sh\ncat > /dev/null\necho \"answer $(date +%s%N)\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	gw := newGateway(t, fake, fmt.Sprintf(`
routes:
  - name: slack
    match: {source: slack}
    runtime: exec
    exec: {command: [%q]}
`, agent), nil, nil)
	a, st := gw.a, gw.st
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }() // auth.test: learns the bot's identity
	defer func() { cancel(); <-done }()

	mention := callback("Ev1", `{"type":"app_mention","user":"U0ADA","text":"<@U0BOTUSER> please look at the build","ts":"1700000000.000100","channel":"C0CHAN","event_ts":"1700000000.000100"}`)
	if w := post(a, mention); w.Code != http.StatusOK {
		t.Fatalf("mention: %d %s", w.Code, w.Body)
	}
	waitPosts(t, fake, 1)
	// Slack retries the same event: it must not start a second turn.
	if w := post(a, mention, "X-Slack-Retry-Num", "1", "X-Slack-Retry-Reason", "http_timeout"); w.Code != http.StatusOK {
		t.Fatalf("retried mention: %d %s", w.Code, w.Body)
	}
	reply := callback("Ev2", `{"type":"message","user":"U0ADA","text":"and the tests too","ts":"1700000050.000200","thread_ts":"1700000000.000100","channel":"C0CHAN","channel_type":"channel","event_ts":"1700000050.000200"}`)
	if w := post(a, reply); w.Code != http.StatusOK {
		t.Fatalf("thread reply: %d %s", w.Code, w.Body)
	}
	waitPosts(t, fake, 2)

	posts := fake.postsCopy()
	if len(posts) != 2 {
		t.Fatalf("%d posts, want exactly 2 (one per message, none for the retry)", len(posts))
	}
	for i, p := range posts {
		if p.Get("channel") != "C0CHAN" || p.Get("thread_ts") != "1700000000.000100" {
			t.Errorf("post %d went to channel %q thread %q, want C0CHAN thread 1700000000.000100", i, p.Get("channel"), p.Get("thread_ts"))
		}
	}
	if posts[0].Get("text") >= posts[1].Get("text") {
		t.Errorf("answers posted out of order: %q then %q", posts[0].Get("text"), posts[1].Get("text"))
	}
	// One session holds the whole thread: two messages in, two answers out.
	sessions, err := st.ListSessions(context.Background(), "", 10)
	if err != nil || len(sessions) != 1 {
		t.Fatalf("sessions %v (%v), want one", sessions, err)
	}
	recs, err := st.Read(context.Background(), sessions[0].ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var in, out int
	for _, r := range recs {
		if r.Direction == store.Inbound {
			in++
		} else {
			out++
		}
	}
	if in != 2 || out != 2 {
		t.Fatalf("log has %d inbound and %d outbound records, want 2 and 2", in, out)
	}
	if recs[0].Envelope.Text != "please look at the build" {
		t.Errorf("the bot's mention was not stripped: %q", recs[0].Envelope.Text)
	}
	// Each message got 👀 while the agent worked, swapped for ✅ after.
	adaptertest.Eventually(t, "the reactions", func() bool { fake.mu.Lock(); defer fake.mu.Unlock(); return len(fake.reactions) == 6 })
	fake.mu.Lock()
	got := append([]string(nil), fake.reactions...)
	fake.mu.Unlock()
	want := []string{
		"add eyes C0CHAN 1700000000.000100", "remove eyes C0CHAN 1700000000.000100", "add white_check_mark C0CHAN 1700000000.000100",
		"add eyes C0CHAN 1700000050.000200", "remove eyes C0CHAN 1700000050.000200", "add white_check_mark C0CHAN 1700000050.000200",
	}
	if !slices.Equal(got, want) {
		t.Errorf("reactions %q, want %q", got, want)
	}
}

// gateway is the round-trip harness: the adapter in front of a real router
// (running until the test ends) and a real SQLite store.
type gateway struct {
	a  *Adapter
	st *sqlite.Store
	rt *router.Router
}

// newGateway builds the harness with the routes of a configuration
// (YAML); deps, when not nil, changes the adapter's Deps (Ingress is the
// router, State the store), and mutate, when not nil, its configuration.
func newGateway(t testing.TB, fake *fakeSlack, routes string, deps func(*adapters.Deps), mutate func(*Config)) *gateway {
	t.Helper()
	cfg, err := config.Parse([]byte(routes), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "sb.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	gw := &gateway{st: st}
	gw.a = newTestAdapterWith(t, fake, adapters.IngressFunc(func(ctx context.Context, in adapters.Inbound) (adapters.Outcome, error) {
		return gw.rt.Ingest(ctx, in)
	}), mutate, func(d *adapters.Deps) {
		d.State = st
		if deps != nil {
			deps(d)
		}
	})
	runtimes, err := router.Runtimes(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	gw.rt, err = router.New(router.Options{
		Config: cfg, Store: st, Sinks: map[string]adapters.Sink{"slack": gw.a}, Runtimes: runtimes,
		Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler), Poll: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = gw.rt.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		st.Close()
	})
	return gw
}

func waitPosts(t *testing.T, fake *fakeSlack, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for len(fake.postsCopy()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d posts (have %d)", n, len(fake.postsCopy()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
