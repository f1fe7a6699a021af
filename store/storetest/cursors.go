package storetest

import (
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// The consumers the cursor subtests use.
const (
	runtimeConsumer = "runtime"
	outboxConsumer  = "outbox"
)

// claimWork calls ClaimWork and returns the work by session, failing on a
// session returned twice.
func claimWork(t *testing.T, st store.Store, consumer, owner string, n int, now, until time.Time) map[string]store.Work {
	t.Helper()
	works, err := st.ClaimWork(t.Context(), consumer, owner, n, now, until)
	if err != nil {
		t.Fatalf("ClaimWork(%s, %s, %d): %v", consumer, owner, n, err)
	}
	if len(works) > n {
		t.Fatalf("ClaimWork(%s, %s, %d) returned %d sessions", consumer, owner, n, len(works))
	}
	out := make(map[string]store.Work, len(works))
	for _, w := range works {
		if _, dup := out[w.SessionID]; dup {
			t.Fatalf("ClaimWork(%s, %s) returned session %s twice: %+v", consumer, owner, w.SessionID, works)
		}
		out[w.SessionID] = w
	}
	return out
}

// checkWork checks that a claim returned exactly want.
func checkWork(t *testing.T, what string, got map[string]store.Work, want ...store.Work) {
	t.Helper()
	w := make(map[string]store.Work, len(want))
	for _, x := range want {
		w[x.SessionID] = x
	}
	if !maps.Equal(got, w) {
		t.Errorf("%s: ClaimWork returned %v, want %v", what, got, w)
	}
}

func mustAdvance(t *testing.T, st store.Store, consumer, session, owner string, seq int64, until time.Time) {
	t.Helper()
	if err := st.Advance(t.Context(), consumer, session, owner, seq, until); err != nil {
		t.Fatalf("Advance(%s, %s, %s, %d): %v", consumer, session, owner, seq, err)
	}
}

func checkLeaseLost(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("%s: err = %v, want ErrLeaseLost", what, err)
	}
}

func (s suite) testClaimWorkPastCursor(t *testing.T) {
	st, _ := s.fresh(t)
	for _, id := range []string{"a", "b", "c"} {
		createSession(t, st, id)
	}
	appendN(t, st, "a", 3)
	appendN(t, st, "c", 1)

	got := claimWork(t, st, runtimeConsumer, "p1", 10, t0, at(30*time.Second))
	checkWork(t, "first claim (b has no records)", got,
		store.Work{SessionID: "a", Cursor: 0, LastSeq: 3}, store.Work{SessionID: "c", Cursor: 0, LastSeq: 1})
	mustAdvance(t, st, runtimeConsumer, "a", "p1", 3, time.Time{})
	mustAdvance(t, st, runtimeConsumer, "c", "p1", 1, time.Time{})
	checkWork(t, "claim with every cursor at the end of its log",
		claimWork(t, st, runtimeConsumer, "p1", 10, at(time.Second), at(31*time.Second)))

	// Outputs and system notices are no work for the runtime.
	appendTo(t, st, "a", "a-out", store.Outbound, conv("thread-1"))
	notice := req("a", "a-notice", "paused")
	notice.Envelope.Kind = envelope.KindSystem
	mustAppend(t, st, notice)
	checkWork(t, "claim after an output and a notice",
		claimWork(t, st, runtimeConsumer, "p1", 10, at(1500*time.Millisecond), at(31*time.Second)))

	appendN(t, st, "b", 2)
	appendTo(t, st, "a", "a-more", store.Inbound, conv("thread-1"))
	appendTo(t, st, "a", "a-answer", store.Outbound, conv("thread-1"))
	checkWork(t, "claim after appends to a and b", claimWork(t, st, runtimeConsumer, "p1", 10, at(2*time.Second), at(32*time.Second)),
		store.Work{SessionID: "a", Cursor: 3, LastSeq: 6}, store.Work{SessionID: "b", Cursor: 0, LastSeq: 2})

	// A cursor partly advanced still has work.
	mustAdvance(t, st, runtimeConsumer, "b", "p1", 1, time.Time{})
	mustAdvance(t, st, runtimeConsumer, "a", "p1", 6, time.Time{})
	checkWork(t, "claim after a partial advance", claimWork(t, st, runtimeConsumer, "p1", 10, at(3*time.Second), at(33*time.Second)),
		store.Work{SessionID: "b", Cursor: 1, LastSeq: 2})
}

// A message appended NoTurn is stored as such and makes no work; the
// session's other messages still do.
func (s suite) testNoTurnIsNoWork(t *testing.T) {
	st, _ := s.fresh(t)
	createSession(t, st, "q")
	quiet := func(key string) store.AppendRequest {
		r := req("q", key, "for the inbox")
		r.NoTurn = true
		return r
	}
	res := mustAppend(t, st, quiet("q-1"))
	if !res.Record.NoTurn || res.Record.ForRuntime() {
		t.Errorf("appended NoTurn: record NoTurn %v, ForRuntime %v; want true, false", res.Record.NoTurn, res.Record.ForRuntime())
	}
	mustAppend(t, st, quiet("q-2"))
	checkWork(t, "claim after two NoTurn messages", claimWork(t, st, runtimeConsumer, "p1", 10, t0, at(30*time.Second)))

	// Kept with the record: read back, looked up and replayed.
	for _, rec := range readAll(t, st, "q") {
		if !rec.NoTurn {
			t.Errorf("record %d read back with NoTurn false", rec.Seq)
		}
	}
	if rec, err := st.Lookup(t.Context(), "q", quiet("q-1").Envelope.ID); err != nil || !rec.NoTurn {
		t.Errorf("Lookup of a NoTurn record: NoTurn %v, err %v; want true", rec.NoTurn, err)
	}
	if again := mustAppend(t, st, quiet("q-1")); again.Created || !again.Record.NoTurn {
		t.Errorf("replay of a NoTurn append: created %v, NoTurn %v; want the original", again.Created, again.Record.NoTurn)
	}

	// A message that asks for a turn is work, from the cursor, past the
	// NoTurn messages before it.
	res = mustAppend(t, st, req("q", "q-3", "answer me"))
	if res.Record.NoTurn || !res.Record.ForRuntime() {
		t.Errorf("appended without NoTurn: record NoTurn %v, ForRuntime %v; want false, true", res.Record.NoTurn, res.Record.ForRuntime())
	}
	checkWork(t, "claim after a message that asks for a turn", claimWork(t, st, runtimeConsumer, "p1", 10, at(time.Second), at(31*time.Second)),
		store.Work{SessionID: "q", Cursor: 0, LastSeq: 3})
	mustAdvance(t, st, runtimeConsumer, "q", "p1", 3, time.Time{})
	mustAppend(t, st, quiet("q-4"))
	checkWork(t, "claim after another NoTurn message", claimWork(t, st, runtimeConsumer, "p1", 10, at(2*time.Second), at(32*time.Second)))
}

func (s suite) testClaimWorkLimit(t *testing.T) {
	st, _ := s.fresh(t)
	all := map[string]bool{}
	for i := range 5 {
		id := fmt.Sprint("sess-", i)
		createSession(t, st, id)
		appendN(t, st, id, 1)
		all[id] = true
	}
	first := claimWork(t, st, runtimeConsumer, "p1", 2, t0, at(time.Minute))
	if len(first) != 2 {
		t.Fatalf("ClaimWork(n 2) with 5 sessions of work returned %d", len(first))
	}
	second := claimWork(t, st, runtimeConsumer, "p2", 10, t0, at(time.Minute))
	if len(second) != 3 {
		t.Fatalf("a second owner's ClaimWork returned %v, want the 3 sessions not leased", second)
	}
	for id := range second {
		if _, dup := first[id]; dup {
			t.Errorf("session %s leased to p1 was claimed by p2 as well", id)
		}
		delete(all, id)
	}
	for id := range first {
		delete(all, id)
	}
	if len(all) != 0 {
		t.Errorf("sessions %v were claimed by neither owner", all)
	}
	checkWork(t, "a third owner's claim", claimWork(t, st, runtimeConsumer, "p3", 10, t0, at(time.Minute)))
	if got := claimWork(t, st, runtimeConsumer, "p1", 0, t0, at(time.Minute)); len(got) != 0 {
		t.Errorf("ClaimWork(n 0) = %v, want nothing", got)
	}
}

func (s suite) testClaimWorkLeases(t *testing.T) {
	st, _ := s.fresh(t)
	createSession(t, st, "a")
	appendN(t, st, "a", 2)
	a := func(cursor int64) store.Work { return store.Work{SessionID: "a", Cursor: cursor, LastSeq: 2} }

	checkWork(t, "p1 claims", claimWork(t, st, runtimeConsumer, "p1", 10, t0, at(30*time.Second)), a(0))
	checkWork(t, "p2 while p1's lease holds", claimWork(t, st, runtimeConsumer, "p2", 10, at(10*time.Second), at(40*time.Second)))
	// A session owner holds is in hand: owner's claim neither returns it
	// nor extends its lease.
	checkWork(t, "p1 while it holds a", claimWork(t, st, runtimeConsumer, "p1", 10, at(10*time.Second), at(100*time.Second)))
	checkWork(t, "p1 once its lease expired", claimWork(t, st, runtimeConsumer, "p1", 10, at(30*time.Second), at(40*time.Second)), a(0))
	mustAdvance(t, st, runtimeConsumer, "a", "p1", 1, at(40*time.Second))
	checkWork(t, "p2 after p1's first lease ended but within its second",
		claimWork(t, st, runtimeConsumer, "p2", 10, at(35*time.Second), at(65*time.Second)))

	checkWork(t, "p2 after p1's lease expired", claimWork(t, st, runtimeConsumer, "p2", 10, at(41*time.Second), at(71*time.Second)), a(1))
	checkLeaseLost(t, "p1's Advance after p2 took over", st.Advance(t.Context(), runtimeConsumer, "a", "p1", 2, at(100*time.Second)))
	checkLeaseLost(t, "p1's release after p2 took over", st.Advance(t.Context(), runtimeConsumer, "a", "p1", 2, time.Time{}))
	checkWork(t, "p1 while p2's lease holds", claimWork(t, st, runtimeConsumer, "p1", 10, at(50*time.Second), at(80*time.Second)))
	checkWork(t, "p2 while it holds a", claimWork(t, st, runtimeConsumer, "p2", 10, at(50*time.Second), at(80*time.Second)))
	// p1's failed Advance moved nothing.
	checkWork(t, "p3 after p2's lease expired", claimWork(t, st, runtimeConsumer, "p3", 10, at(71*time.Second), at(85*time.Second)), a(1))
	// An Advance with a lease time holds the session from every claim,
	// its owner's too, until then (a failing session's backoff).
	mustAdvance(t, st, runtimeConsumer, "a", "p3", 0, at(88*time.Second))
	checkWork(t, "p3 within the lease it set", claimWork(t, st, runtimeConsumer, "p3", 10, at(87*time.Second), at(120*time.Second)))
	checkWork(t, "p2 within p3's lease", claimWork(t, st, runtimeConsumer, "p2", 10, at(87*time.Second), at(120*time.Second)))
	checkWork(t, "p2 after p3's lease", claimWork(t, st, runtimeConsumer, "p2", 10, at(88*time.Second), at(120*time.Second)), a(1))
	mustAdvance(t, st, runtimeConsumer, "a", "p2", 2, time.Time{})
	checkWork(t, "p1 once a is caught up", claimWork(t, st, runtimeConsumer, "p1", 10, at(90*time.Second), at(120*time.Second)))
}

func (s suite) testAdvanceNeverBack(t *testing.T) {
	st, _ := s.fresh(t)
	createSession(t, st, "a")
	appendN(t, st, "a", 3)
	claimWork(t, st, runtimeConsumer, "p1", 10, t0, at(30*time.Second))
	mustAdvance(t, st, runtimeConsumer, "a", "p1", 3, at(30*time.Second))
	mustAdvance(t, st, runtimeConsumer, "a", "p1", 1, at(30*time.Second))
	mustAdvance(t, st, runtimeConsumer, "a", "p1", 2, time.Time{})
	checkWork(t, "claim after advancing to 3, then back to 1 and 2",
		claimWork(t, st, runtimeConsumer, "p2", 10, at(time.Second), at(31*time.Second)))
	appendTo(t, st, "a", "a-more", store.Inbound, conv("thread-1"))
	checkWork(t, "claim after another append", claimWork(t, st, runtimeConsumer, "p2", 10, at(2*time.Second), at(32*time.Second)),
		store.Work{SessionID: "a", Cursor: 3, LastSeq: 4})
}

func (s suite) testAdvanceLease(t *testing.T) {
	st, _ := s.fresh(t)
	createSession(t, st, "a")
	createSession(t, st, "b")
	appendN(t, st, "a", 3)
	appendN(t, st, "b", 3)

	// Advance extends the lease to the time it is given.
	claimWork(t, st, runtimeConsumer, "p1", 10, t0, at(30*time.Second))
	mustAdvance(t, st, runtimeConsumer, "a", "p1", 1, at(100*time.Second))
	checkWork(t, "p2 after the claimed lease but within the extended one",
		claimWork(t, st, runtimeConsumer, "p2", 10, at(50*time.Second), at(150*time.Second)),
		store.Work{SessionID: "b", Cursor: 0, LastSeq: 3})
	checkWork(t, "p3 after the extended lease", claimWork(t, st, runtimeConsumer, "p3", 10, at(101*time.Second), at(150*time.Second)),
		store.Work{SessionID: "a", Cursor: 1, LastSeq: 3})

	// Advance with a zero time releases the lease at once.
	mustAdvance(t, st, runtimeConsumer, "b", "p2", 2, time.Time{})
	checkWork(t, "p3 after p2 released b, within its lease", claimWork(t, st, runtimeConsumer, "p3", 10, at(102*time.Second), at(150*time.Second)),
		store.Work{SessionID: "b", Cursor: 2, LastSeq: 3})
}

func (s suite) testAdvanceWithoutLease(t *testing.T) {
	st, _ := s.fresh(t)
	createSession(t, st, "a")
	appendN(t, st, "a", 3)
	checkLeaseLost(t, "Advance by an owner that never claimed", st.Advance(t.Context(), runtimeConsumer, "a", "p1", 1, at(30*time.Second)))

	claimWork(t, st, runtimeConsumer, "p1", 10, t0, at(30*time.Second))
	checkLeaseLost(t, "Advance by another owner than the lease's", st.Advance(t.Context(), runtimeConsumer, "a", "p2", 3, time.Time{}))
	mustAdvance(t, st, runtimeConsumer, "a", "p1", 1, time.Time{})
	checkLeaseLost(t, "Advance after releasing", st.Advance(t.Context(), runtimeConsumer, "a", "p1", 2, at(30*time.Second)))
	checkWork(t, "claim after the refused Advances", claimWork(t, st, runtimeConsumer, "p2", 10, at(time.Second), at(31*time.Second)),
		store.Work{SessionID: "a", Cursor: 1, LastSeq: 3})
}

func (s suite) testConsumersIndependent(t *testing.T) {
	st, _ := s.fresh(t)
	createSession(t, st, "a")
	appendN(t, st, "a", 3)
	a := func(cursor int64) store.Work { return store.Work{SessionID: "a", Cursor: cursor, LastSeq: 3} }

	checkWork(t, "runtime claim by p1", claimWork(t, st, runtimeConsumer, "p1", 10, t0, at(time.Hour)), a(0))
	checkWork(t, "outbox claim by p2 while p1 leases a for the runtime", claimWork(t, st, outboxConsumer, "p2", 10, t0, at(time.Hour)), a(0))
	mustAdvance(t, st, runtimeConsumer, "a", "p1", 3, time.Time{})
	checkWork(t, "outbox claim by p2 while it holds a, after the runtime cursor moved", claimWork(t, st, outboxConsumer, "p2", 10, at(time.Second), at(time.Hour)))
	checkLeaseLost(t, "outbox Advance by the runtime's owner", st.Advance(t.Context(), outboxConsumer, "a", "p1", 3, time.Time{}))
	mustAdvance(t, st, outboxConsumer, "a", "p2", 2, time.Time{})
	checkWork(t, "runtime claim, caught up", claimWork(t, st, runtimeConsumer, "p1", 10, at(2*time.Second), at(time.Hour)))
	checkWork(t, "outbox claim", claimWork(t, st, outboxConsumer, "p1", 10, at(2*time.Second), at(time.Hour)), a(2))
}

// testClaimWorkTwoStores has owners on two stores on one database claim
// sessions concurrently: no session is ever leased to two of them.
func (s suite) testClaimWorkTwoStores(t *testing.T) {
	b := s.newBackend(t)
	stores := []store.Store{open(t, b), open(t, b)}
	const sessions, ownersPerStore = 40, 2
	for i := range sessions {
		id := fmt.Sprint("sess-", i)
		createSession(t, stores[i%2], id)
		appendN(t, stores[(i+1)%2], id, 1+i%3)
	}

	var (
		mu      sync.Mutex
		claimed = map[string][]string{} // session → owners that claimed it
		wg      sync.WaitGroup
	)
	start := make(chan struct{})
	for si, st := range stores {
		for o := range ownersPerStore {
			owner := fmt.Sprintf("store%d-owner%d", si, o)
			wg.Go(func() {
				<-start
				for {
					works, err := st.ClaimWork(t.Context(), runtimeConsumer, owner, 3, t0, at(time.Hour))
					if err != nil {
						t.Errorf("%s: ClaimWork: %v", owner, err)
						return
					}
					if len(works) == 0 {
						return // the rest is done or leased to owners that are at work
					}
					for _, w := range works {
						mu.Lock()
						claimed[w.SessionID] = append(claimed[w.SessionID], owner)
						mu.Unlock()
						if err := st.Advance(t.Context(), runtimeConsumer, w.SessionID, owner, w.LastSeq, time.Time{}); err != nil {
							t.Errorf("%s: Advance(%s): %v", owner, w.SessionID, err)
							return
						}
					}
				}
			})
		}
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}
	for i := range sessions {
		id := fmt.Sprint("sess-", i)
		if owners := claimed[id]; len(owners) != 1 {
			t.Errorf("session %s was claimed by %v, want exactly one owner", id, owners)
		}
	}
	for i, st := range stores {
		checkWork(t, fmt.Sprint("claim through store ", i, " after every session was advanced"),
			claimWork(t, st, runtimeConsumer, "late", 100, at(2*time.Hour), at(3*time.Hour)))
	}
}
