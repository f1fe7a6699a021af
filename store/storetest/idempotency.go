package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

func (s suite) testDuplicate(t *testing.T) {
	st, _ := s.fresh(t)
	createSession(t, st, "sess-1")
	first := mustAppend(t, st, req("sess-1", "k1", "hello"))
	mustAppend(t, st, req("sess-1", "k2", "second"))
	before, err := st.Session(t.Context(), "sess-1")
	if err != nil {
		t.Fatalf("Session: %v", err)
	}

	// A replay may differ in what Equivalent ignores: raw, ts, actor display.
	dup := req("sess-1", "k1", "hello")
	dup.Direction = store.Outbound
	dup.Envelope.Raw = []byte(`{"other":"payload"}`)
	dup.Envelope.TS = ts.Add(time.Hour)
	dup.Envelope.Actor.Display = "Someone Else"
	for i := range 2 {
		res, err := st.Append(t.Context(), dup)
		if err != nil {
			t.Fatalf("replay %d: %v", i, err)
		}
		if res.Created {
			t.Errorf("replay %d: Created = true", i)
		}
		checkRecord(t, "replay result", res.Record, first.Record)
		if res.State != store.Idle {
			t.Errorf("replay %d: state %s, want idle", i, res.State)
		}
	}

	recs := mustRead(t, st, "sess-1", 0, 10)
	if len(recs) != 2 {
		t.Fatalf("log has %d records after replays, want 2", len(recs))
	}
	checkRecord(t, "stored original after replays", recs[0], first.Record)
	after, err := st.Session(t.Context(), "sess-1")
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	checkSession(t, "session after replays", after, before)
}

func (s suite) testConflict(t *testing.T) {
	st, _ := s.fresh(t)
	createSession(t, st, "sess-1")
	orig := req("sess-1", "k1", "hello")
	orig.Envelope.Refs = envelope.Refs{envelope.RefPR: "42", envelope.RefRepo: "octo/cat"}
	first := mustAppend(t, st, orig)
	before, err := st.Session(t.Context(), "sess-1")
	if err != nil {
		t.Fatalf("Session: %v", err)
	}

	variants := map[string]func(e *envelope.Envelope){
		"other text":      func(e *envelope.Envelope) { e.Text = "hello!" },
		"other kind":      func(e *envelope.Envelope) { e.Kind = envelope.KindEdit },
		"other ref value": func(e *envelope.Envelope) { e.Refs = envelope.Refs{envelope.RefPR: "43", envelope.RefRepo: "octo/cat"} },
		"a ref more": func(e *envelope.Envelope) {
			e.Refs = envelope.Refs{envelope.RefPR: "42", envelope.RefRepo: "octo/cat", "x": "y"}
		},
		"a ref less":       func(e *envelope.Envelope) { e.Refs = envelope.Refs{envelope.RefPR: "42"} },
		"no refs at all":   func(e *envelope.Envelope) { e.Refs = nil },
		"other kind, text": func(e *envelope.Envelope) { e.Kind, e.Text = envelope.KindDelete, "" },
	}
	for name, change := range variants {
		r := req("sess-1", "k1", "hello")
		r.Envelope.Refs = envelope.Refs{envelope.RefPR: "42", envelope.RefRepo: "octo/cat"}
		change(&r.Envelope)
		r.Wake = true
		res, err := st.Append(t.Context(), r)
		if !errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: error %v, want ErrConflict", name, err)
			continue
		}
		if res.Created {
			t.Errorf("%s: Created = true on a conflict", name)
		}
		checkRecord(t, name+": conflict result", res.Record, first.Record)
	}

	recs := mustRead(t, st, "sess-1", 0, 10)
	if len(recs) != 1 {
		t.Fatalf("log has %d records after conflicts, want 1", len(recs))
	}
	checkRecord(t, "stored original after conflicts", recs[0], first.Record)
	after, err := st.Session(t.Context(), "sess-1")
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	checkSession(t, "session after conflicts (Wake must not apply)", after, before)
}

func (s suite) testSameIDOtherSession(t *testing.T) {
	st, _ := s.fresh(t)
	createSession(t, st, "a")
	createSession(t, st, "b")
	mustAppend(t, st, req("a", "x", "first in a"))
	ra := mustAppend(t, st, req("a", "shared", "in a"))
	rb := mustAppend(t, st, req("b", "shared", "in b, other text"))
	if !rb.Created || rb.Record.Seq != 1 || rb.Record.SessionID != "b" {
		t.Fatalf("same id in another session: %+v, want a new record with seq 1 in b", rb)
	}
	if ra.Record.Seq != 2 {
		t.Fatalf("seq in a = %d, want 2", ra.Record.Seq)
	}
	// Each session still deduplicates its own copy.
	if res := mustAppend(t, st, req("b", "shared", "in b, other text")); res.Created || res.Record.Seq != 1 {
		t.Errorf("replay in b: %+v, want the stored original", res)
	}
	if _, err := st.Append(t.Context(), req("a", "shared", "in b, other text")); !errors.Is(err, store.ErrConflict) {
		t.Errorf("b's text under the same id in a: error %v, want ErrConflict", err)
	}
}

func (s suite) testDuplicateDoesNotWake(t *testing.T) {
	st, _ := s.fresh(t)
	createSession(t, st, "sess-1")
	r := req("sess-1", "k1", "wake")
	r.Wake = true
	if res := mustAppend(t, st, r); res.State != store.Running {
		t.Fatalf("first append with Wake: state %s, want running", res.State)
	}
	if _, err := st.SetState(t.Context(), "sess-1", store.Idle); err != nil {
		t.Fatalf("SetState: %v", err)
	}
	res := mustAppend(t, st, r)
	if res.Created || res.State != store.Idle {
		t.Errorf("replay with Wake: created %v, state %s; want a replay that leaves the session idle", res.Created, res.State)
	}
	if sess, err := st.Session(t.Context(), "sess-1"); err != nil || sess.State != store.Idle {
		t.Errorf("session after a replay with Wake: %+v, %v; want idle", sess, err)
	}
}
