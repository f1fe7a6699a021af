package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// outcome is what one concurrent Append returned.
type outcome struct {
	req store.AppendRequest
	res store.AppendResult
	err error
}

// appendAll runs every request in its own goroutine, released together, and
// returns the outcomes in the order of reqs. st picks the store for request i.
func appendAll(t *testing.T, st func(i int) store.Store, reqs []store.AppendRequest) []outcome {
	t.Helper()
	out := make([]outcome, len(reqs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Go(func() {
			<-start
			res, err := st(i).Append(t.Context(), r)
			out[i] = outcome{r, res, err}
		})
	}
	close(start)
	wg.Wait()
	return out
}

func (s suite) testSameKeyConcurrent(t *testing.T) {
	st, _ := s.fresh(t)
	createSession(t, st, "sess-1")
	const n = 100
	reqs := make([]store.AppendRequest, n)
	for i := range reqs {
		reqs[i] = req("sess-1", "same-key", "only once")
		reqs[i].Wake = true
	}
	outs := appendAll(t, func(int) store.Store { return st }, reqs)

	var created []store.Record
	for i, o := range outs {
		if o.err != nil {
			t.Fatalf("append %d: %v", i, o.err)
		}
		if o.res.Created {
			created = append(created, o.res.Record)
		}
		if o.res.State != store.Running {
			t.Errorf("append %d: state %s, want running", i, o.res.State)
		}
	}
	if len(created) != 1 {
		t.Fatalf("%d of %d concurrent appends with one key reported Created, want exactly 1", len(created), n)
	}
	for i, o := range outs {
		checkRecord(t, fmt.Sprint("append ", i), o.res.Record, created[0])
	}
	recs := readAll(t, st, "sess-1")
	if len(recs) != 1 {
		t.Fatalf("log holds %d records after %d appends of one key, want 1", len(recs), n)
	}
	checkRecord(t, "stored record", recs[0], created[0])
	if sess, err := st.Session(t.Context(), "sess-1"); err != nil || sess.LastSeq != 1 {
		t.Errorf("session after one stored record: LastSeq %d, err %v; want 1", sess.LastSeq, err)
	}
}

// checkAcked checks that every session's log is contiguous, holds exactly the
// acknowledged new records at the seqs they were acknowledged with, and that
// LastSeq agrees.
func checkAcked(t *testing.T, st store.Store, sessions []string, outs []outcome) {
	t.Helper()
	acked := make(map[string]map[string]store.Record)
	for _, id := range sessions {
		acked[id] = make(map[string]store.Record)
	}
	for _, o := range outs {
		if o.err == nil && o.res.Created {
			acked[o.req.SessionID][o.req.Envelope.ID] = o.res.Record
		}
	}
	for _, id := range sessions {
		recs := readAll(t, st, id)
		byID := checkContiguous(t, id, recs)
		if len(recs) != len(acked[id]) {
			t.Errorf("session %s holds %d records, %d were acknowledged as new", id, len(recs), len(acked[id]))
		}
		for eid, want := range acked[id] {
			got, ok := byID[eid]
			if !ok {
				t.Errorf("session %s: acknowledged envelope %s (seq %d) is missing", id, eid, want.Seq)
				continue
			}
			checkRecord(t, "acknowledged record", got, want)
		}
		sess, err := st.Session(t.Context(), id)
		if err != nil {
			t.Fatalf("Session(%s): %v", id, err)
		}
		if sess.LastSeq != int64(len(recs)) {
			t.Errorf("session %s: LastSeq %d, log holds %d records", id, sess.LastSeq, len(recs))
		}
	}
}

func (s suite) testManySessions(t *testing.T) {
	st, _ := s.fresh(t)
	const sessions, writers, each = 8, 32, 25
	ids := make([]string, sessions)
	for i := range ids {
		ids[i] = fmt.Sprint("sess-", i)
		createSession(t, st, ids[i])
	}

	var mu sync.Mutex
	var outs []outcome
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			<-start
			for i := range each {
				r := req(ids[(w+i)%sessions], fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("from writer %d", w))
				res, err := st.Append(t.Context(), r)
				mu.Lock()
				outs = append(outs, outcome{r, res, err})
				mu.Unlock()
				if err != nil {
					t.Errorf("writer %d append %d: %v", w, i, err)
					return
				}
				if !res.Created {
					t.Errorf("writer %d append %d: Created = false for a new id", w, i)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}
	if len(outs) != writers*each {
		t.Fatalf("%d appends finished, want %d", len(outs), writers*each)
	}
	checkAcked(t, st, ids, outs)
}

// testRepeatedKeysConcurrent races replays and conflicting requests of the
// same keys, so a backend's batches hold several requests for one key.
func (s suite) testRepeatedKeysConcurrent(t *testing.T) {
	st, _ := s.fresh(t)
	sessions := []string{"a", "b"}
	for _, id := range sessions {
		createSession(t, st, id)
	}
	const keys, replays = 20, 5
	var reqs []store.AppendRequest
	for _, id := range sessions {
		for k := range keys {
			for range replays {
				reqs = append(reqs, req(id, fmt.Sprint("k", k), "same text"))
			}
			reqs = append(reqs, req(id, fmt.Sprint("k", k), "different text"))
		}
	}
	outs := appendAll(t, func(int) store.Store { return st }, reqs)

	type key struct{ session, id string }
	stored := make(map[key]store.Record)
	for _, o := range outs {
		if o.err == nil && o.res.Created {
			k := key{o.req.SessionID, o.req.Envelope.ID}
			if prev, dup := stored[k]; dup {
				t.Fatalf("%v created twice, at seq %d and %d", k, prev.Seq, o.res.Record.Seq)
			}
			stored[k] = o.res.Record
		}
	}
	if len(stored) != len(sessions)*keys {
		t.Fatalf("%d keys were created, want %d", len(stored), len(sessions)*keys)
	}
	for i, o := range outs {
		orig := stored[key{o.req.SessionID, o.req.Envelope.ID}]
		wantConflict := o.req.Envelope.Text != orig.Envelope.Text
		switch {
		case wantConflict && !errors.Is(o.err, store.ErrConflict):
			t.Errorf("append %d (%q, stored %q): error %v, want ErrConflict", i, o.req.Envelope.Text, orig.Envelope.Text, o.err)
		case !wantConflict && o.err != nil:
			t.Errorf("append %d (%q, stored %q): %v", i, o.req.Envelope.Text, orig.Envelope.Text, o.err)
		}
		checkRecord(t, fmt.Sprint("append ", i), o.res.Record, orig)
	}
	checkAcked(t, st, sessions, outs)
}

func (s suite) testTwoStores(t *testing.T) {
	b := s.newBackend(t)
	one := open(t, b)
	two := open(t, b)
	createSession(t, one, "sess-1")
	if _, err := two.Session(t.Context(), "sess-1"); err != nil {
		t.Fatalf("second store does not see a session created by the first: %v", err)
	}
	if _, created, err := two.CreateSession(t.Context(), "sess-1", nil); err != nil || created {
		t.Fatalf("CreateSession through the second store: created %v, err %v; want the existing session", created, err)
	}

	const writers, unique, shared = 8, 20, 10
	var reqs []store.AppendRequest
	for w := range 2 * writers {
		for i := range unique {
			reqs = append(reqs, req("sess-1", fmt.Sprintf("w%d-%d", w, i), "unique"))
		}
		for k := range shared {
			reqs = append(reqs, req("sess-1", fmt.Sprint("shared-", k), "shared"))
		}
	}
	outs := appendAll(t, func(i int) store.Store {
		if i%2 == 0 {
			return one
		}
		return two
	}, reqs)

	createdShared := make(map[string]int)
	for i, o := range outs {
		if o.err != nil {
			t.Fatalf("append %d: %v", i, o.err)
		}
		if o.res.Created && o.req.Envelope.Text == "shared" {
			createdShared[o.req.Envelope.ID]++
		}
	}
	for k := range shared {
		if n := createdShared[fmt.Sprint("test:shared-", k)]; n != 1 {
			t.Errorf("shared key %d was created %d times across two stores, want once", k, n)
		}
	}
	checkAcked(t, one, []string{"sess-1"}, outs)
	checkAcked(t, two, []string{"sess-1"}, outs)
}

// testReadWhatTheOtherReads: a Read of records a store just appended (which
// a backend may answer from what it keeps in memory, store.Tail) returns
// exactly what another store on the database reads, whatever the envelopes
// carried; and once the store has written again, records the other store
// appended meanwhile are not hidden from it.
func (s suite) testReadWhatTheOtherReads(t *testing.T) {
	b := s.newBackend(t)
	one := open(t, b)
	two := open(t, b)
	createSession(t, one, "sess-1")
	plain := env("plain", "no refs, no raw")
	plain.Refs, plain.Raw = envelope.Refs{}, []byte{}
	edit := env("edit", "an edit")
	edit.Kind, edit.Conversation = envelope.KindEdit, envelope.Conversation{}
	for _, e := range []envelope.Envelope{env("full", "everything"), plain, edit} {
		mustAppend(t, one, store.AppendRequest{SessionID: "sess-1", Direction: store.Outbound, Envelope: e})
	}
	if mine, theirs := mustRead(t, one, "sess-1", 0, 10), mustRead(t, two, "sess-1", 0, 10); !reflect.DeepEqual(mine, theirs) {
		t.Errorf("Read through the store that appended:\n%+v\nthrough the other:\n%+v", mine, theirs)
	}
	mustAppend(t, two, req("sess-1", "by-the-other", "appended by the other store"))
	createSession(t, one, "sess-2") // one writes again
	recs := mustRead(t, one, "sess-1", 2, 10)
	if len(recs) != 2 || recs[1].Envelope.ID != "test:by-the-other" {
		t.Errorf("Read after 2 through the first store = %+v; want 3, then the other store's record 4", recs)
	}
}
