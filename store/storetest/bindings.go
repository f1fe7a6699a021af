package storetest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

func mustBind(t *testing.T, st store.Store, b store.Binding, meta map[string]string) (store.Binding, bool) {
	t.Helper()
	out, created, err := st.Bind(t.Context(), b, meta)
	if err != nil {
		t.Fatalf("Bind(%s to %s): %v", b.Conversation.Key(), b.SessionID, err)
	}
	return out, created
}

func mustBindingFor(t *testing.T, st store.Store, c envelope.Conversation) store.Binding {
	t.Helper()
	b, err := st.BindingFor(t.Context(), c)
	if err != nil {
		t.Fatalf("BindingFor(%s): %v", c.Key(), err)
	}
	return b
}

func mustSessionBindings(t *testing.T, st store.Store, session string) []store.Binding {
	t.Helper()
	bs, err := st.SessionBindings(t.Context(), session)
	if err != nil {
		t.Fatalf("SessionBindings(%s): %v", session, err)
	}
	return bs
}

func (s suite) testBindCreatesSession(t *testing.T) {
	st, _ := s.fresh(t)
	before := time.Now().Add(-time.Second)
	meta := map[string]string{"route": "slack-support", "unicode": "é ✓"}
	b, created := mustBind(t, st, store.Binding{SessionID: "sess-1", Conversation: conv("thread-1"), Route: "slack-support"}, meta)
	if !created {
		t.Error("created = false for a new binding")
	}
	if b.ID == "" {
		t.Error("Bind left the binding's id empty")
	}
	if b.CreatedAt.Before(before) {
		t.Errorf("created at %s: want a time of now", b.CreatedAt)
	}
	want := store.Binding{ID: b.ID, SessionID: "sess-1", Conversation: conv("thread-1"), Route: "slack-support", CreatedAt: b.CreatedAt}
	checkBinding(t, "new binding", b, want)
	if b.Paused(t0) {
		t.Error("a new binding is paused")
	}
	checkBinding(t, "BindingFor", mustBindingFor(t, st, conv("thread-1")), want)

	sess, err := st.Session(t.Context(), "sess-1")
	if err != nil {
		t.Fatalf("Session after Bind created it: %v", err)
	}
	if sess.State != store.Idle || sess.LastSeq != 0 || !maps.Equal(sess.Metadata, meta) {
		t.Errorf("session created by Bind = %+v, want idle, empty, with metadata %v", sess, meta)
	}
	// The new session is an ordinary session: its log works.
	mustAppend(t, st, req("sess-1", "k1", "hello"))

	// An id and creation time given to Bind are kept.
	given := store.Binding{ID: "cnv-given", SessionID: "sess-2", Conversation: conv("thread-2"), CreatedAt: ts}
	b2, created := mustBind(t, st, given, nil)
	if !created {
		t.Error("created = false for a second new binding")
	}
	checkBinding(t, "binding with id and time given", b2, given)
	checkBinding(t, "BindingFor with id and time given", mustBindingFor(t, st, conv("thread-2")), given)
	if sess, err := st.Session(t.Context(), "sess-2"); err != nil || len(sess.Metadata) != 0 {
		t.Errorf("session created by Bind without metadata = %+v, %v; want it, with none", sess, err)
	}
}

func (s suite) testBindExistingSession(t *testing.T) {
	st, _ := s.fresh(t)
	orig := createSession(t, st, "sess-1")
	mustAppend(t, st, req("sess-1", "k1", "hello"))
	orig.LastSeq = 1
	b, created := mustBind(t, st, store.Binding{SessionID: "sess-1", Conversation: conv("thread-1")},
		map[string]string{"other": "metadata"})
	if !created || b.SessionID != "sess-1" {
		t.Fatalf("Bind to an existing session: %+v, created %v; want a new binding to sess-1", b, created)
	}
	sess, err := st.Session(t.Context(), "sess-1")
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	if sess.State != orig.State || sess.LastSeq != orig.LastSeq || !maps.Equal(sess.Metadata, orig.Metadata) {
		t.Errorf("Bind changed the existing session: %+v, was %+v", sess, orig)
	}
}

func (s suite) testBindKeepsSession(t *testing.T) {
	st, _ := s.fresh(t)
	first, _ := mustBind(t, st, store.Binding{SessionID: "sess-1", Conversation: conv("thread-1"), Route: "r1"}, nil)

	// Binding the conversation again, to the same or another session, to a
	// session that exists or not, returns the binding unchanged.
	createSession(t, st, "sess-3")
	for _, target := range []string{"sess-1", "sess-2", "sess-3"} {
		b, created := mustBind(t, st, store.Binding{SessionID: target, Conversation: conv("thread-1"), Route: "r2"},
			map[string]string{"new": "session"})
		if created {
			t.Errorf("Bind of a bound conversation to %s: created = true", target)
		}
		checkBinding(t, "Bind of a bound conversation to "+target, b, first)
	}
	if _, err := st.Session(t.Context(), "sess-2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Bind of a bound conversation created its session: Session(sess-2) err = %v, want ErrNotFound", err)
	}
	checkBinding(t, "BindingFor", mustBindingFor(t, st, conv("thread-1")), first)
	if bs := mustSessionBindings(t, st, "sess-3"); len(bs) != 0 {
		t.Errorf("sess-3 has bindings %+v after its Bind was refused, want none", bs)
	}
}

func (s suite) testBindingsPerSession(t *testing.T) {
	st, _ := s.fresh(t)
	// Bound out of order: SessionBindings lists by creation time.
	var want []store.Binding
	for _, c := range []struct {
		ref string
		at  time.Duration
	}{{"b", 2 * time.Second}, {"a", time.Second}, {"c", 3 * time.Second}} {
		b, created := mustBind(t, st, store.Binding{SessionID: "sess-1", Conversation: conv(c.ref), Route: "r", CreatedAt: at(c.at)}, nil)
		if !created {
			t.Fatalf("binding %s: created = false", c.ref)
		}
		want = append(want, b)
	}
	// A conversation of another source with the same ref is another
	// conversation.
	other, created := mustBind(t, st, store.Binding{SessionID: "sess-2", Conversation: envelope.Conversation{Source: "other", Ref: "a"}}, nil)
	if !created {
		t.Fatal("binding other/a: created = false while test/a is bound")
	}
	slices.SortFunc(want, func(a, b store.Binding) int { return a.CreatedAt.Compare(b.CreatedAt) })

	got := mustSessionBindings(t, st, "sess-1")
	if len(got) != len(want) {
		t.Fatalf("SessionBindings(sess-1) = %+v, want %d bindings", got, len(want))
	}
	ids := map[string]bool{}
	for i := range got {
		checkBinding(t, fmt.Sprint("SessionBindings(sess-1)[", i, "]"), got[i], want[i])
		ids[got[i].ID] = true
	}
	if len(ids) != len(want) {
		t.Errorf("the bindings of sess-1 share ids: %+v", got)
	}
	if got := mustSessionBindings(t, st, "sess-2"); len(got) != 1 || diffBinding(got[0], other) != "" {
		t.Errorf("SessionBindings(sess-2) = %+v, want [%+v]", got, other)
	}
	createSession(t, st, "sess-3")
	if got := mustSessionBindings(t, st, "sess-3"); len(got) != 0 {
		t.Errorf("SessionBindings of a session without bindings = %+v, want none", got)
	}
}

func (s suite) testBindingNotFound(t *testing.T) {
	st, _ := s.fresh(t)
	if _, err := st.BindingFor(t.Context(), conv("thread-1")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("BindingFor in an empty store: err = %v, want ErrNotFound", err)
	}
	mustBind(t, st, store.Binding{SessionID: "sess-1", Conversation: conv("thread-1")}, nil)
	for _, c := range []envelope.Conversation{
		conv("thread-2"),
		{Source: "other", Ref: "thread-1"},
		conv("THREAD-1"),
	} {
		if _, err := st.BindingFor(t.Context(), c); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("BindingFor(%s) with only test/thread-1 bound: err = %v, want ErrNotFound", c.Key(), err)
		}
	}
}

// testBindConcurrent races 50 Binds of one conversation to 50 different new
// sessions: one wins, everybody sees its session, and only it is created.
func (s suite) testBindConcurrent(t *testing.T) {
	st, _ := s.fresh(t)
	const n = 50
	type result struct {
		b       store.Binding
		created bool
		err     error
	}
	results := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			b, created, err := st.Bind(t.Context(), store.Binding{SessionID: fmt.Sprint("sess-", i), Conversation: conv("contended")},
				map[string]string{"by": fmt.Sprint(i)})
			results[i] = result{b, created, err}
		})
	}
	close(start)
	wg.Wait()

	var winners []int
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("Bind %d: %v", i, r.err)
		}
		if r.created {
			winners = append(winners, i)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d of %d concurrent Binds of one conversation reported created (%v), want exactly 1", len(winners), n, winners)
	}
	win := results[winners[0]].b
	if win.SessionID != fmt.Sprint("sess-", winners[0]) {
		t.Errorf("the created binding names session %s, its Bind asked for sess-%d", win.SessionID, winners[0])
	}
	for i, r := range results {
		checkBinding(t, fmt.Sprint("Bind ", i), r.b, win)
	}
	checkBinding(t, "BindingFor", mustBindingFor(t, st, conv("contended")), win)
	for i := range n {
		id := fmt.Sprint("sess-", i)
		sess, err := st.Session(t.Context(), id)
		switch {
		case id == win.SessionID && err != nil:
			t.Errorf("the bound session %s does not exist: %v", id, err)
		case id == win.SessionID && sess.Metadata["by"] != fmt.Sprint(winners[0]):
			t.Errorf("the bound session has metadata %v, want its own Bind's", sess.Metadata)
		case id != win.SessionID && !errors.Is(err, store.ErrNotFound):
			t.Errorf("session %s of a losing Bind: err = %v, want ErrNotFound (only the bound session is created)", id, err)
		}
	}
	if bs := mustSessionBindings(t, st, win.SessionID); len(bs) != 1 {
		t.Errorf("the bound session has %d bindings, want 1", len(bs))
	}
}

func (s suite) testPauseBinding(t *testing.T) {
	st, _ := s.fresh(t)
	b, _ := mustBind(t, st, store.Binding{SessionID: "sess-1", Conversation: conv("thread-1"), Route: "r"}, nil)
	until := at(10 * time.Minute)
	paused, err := st.PauseBinding(t.Context(), b.ID, until, "more than 30 outputs a minute")
	if err != nil {
		t.Fatalf("PauseBinding: %v", err)
	}
	want := b
	want.PausedUntil, want.PausedReason = until, "more than 30 outputs a minute"
	checkBinding(t, "PauseBinding result", paused, want)
	got := mustBindingFor(t, st, conv("thread-1"))
	checkBinding(t, "BindingFor after PauseBinding", got, want)
	if bs := mustSessionBindings(t, st, "sess-1"); len(bs) != 1 || diffBinding(bs[0], want) != "" {
		t.Errorf("SessionBindings after PauseBinding = %+v, want [%+v]", bs, want)
	}
	if !got.Paused(at(time.Minute)) || got.Paused(at(11*time.Minute)) {
		t.Errorf("binding paused until %s: Paused(t0+1m) = %v, Paused(t0+11m) = %v; want true, false",
			got.PausedUntil, got.Paused(at(time.Minute)), got.Paused(at(11*time.Minute)))
	}

	resumed, err := st.PauseBinding(t.Context(), b.ID, time.Time{}, "")
	if err != nil {
		t.Fatalf("PauseBinding to resume: %v", err)
	}
	checkBinding(t, "resumed binding", resumed, b)
	got = mustBindingFor(t, st, conv("thread-1"))
	checkBinding(t, "BindingFor after resuming", got, b)
	if got.Paused(t0) {
		t.Error("a resumed binding is paused")
	}

	if _, err := st.PauseBinding(t.Context(), "cnv-unknown", until, "why"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PauseBinding of an unknown binding: err = %v, want ErrNotFound", err)
	}
}

func (s suite) testLatestInbound(t *testing.T) {
	st, _ := s.fresh(t)
	createSession(t, st, "sess-1")
	createSession(t, st, "other")
	a, b, c := conv("a"), conv("b"), conv("c")
	appendTo(t, st, "sess-1", "k1", store.Inbound, a)                        // 1
	appendTo(t, st, "sess-1", "k2", store.Outbound, b)                       // 2: outbound
	appendTo(t, st, "sess-1", "k3", store.Inbound, envelope.Conversation{})  // 3: no conversation
	appendTo(t, st, "sess-1", "k4", store.Inbound, c)                        // 4
	appendTo(t, st, "sess-1", "k5", store.Outbound, envelope.Conversation{}) // 5
	appendTo(t, st, "other", "k1", store.Inbound, b)                         // another session's
	appendTo(t, st, "other", "k2", store.Inbound, b)

	for _, tc := range []struct {
		before int64
		want   envelope.Conversation
	}{
		{6, c}, {100, c}, {5, c}, {4, a}, {3, a}, {2, a}, {1, envelope.Conversation{}}, {0, envelope.Conversation{}},
	} {
		got, err := st.LatestInbound(t.Context(), "sess-1", tc.before)
		if err != nil {
			t.Fatalf("LatestInbound(before %d): %v", tc.before, err)
		}
		if got != tc.want {
			t.Errorf("LatestInbound(before %d) = %+v, want %+v", tc.before, got, tc.want)
		}
	}

	createSession(t, st, "outputs-only")
	appendTo(t, st, "outputs-only", "k1", store.Outbound, a)
	if got, err := st.LatestInbound(t.Context(), "outputs-only", 10); err != nil || !got.IsZero() {
		t.Errorf("LatestInbound of a session without inbound records = %+v, %v; want zero", got, err)
	}
}
