package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

func (s suite) testAppendAndRead(t *testing.T) {
	st, _ := s.fresh(t)
	sess := createSession(t, st, "sess-1")
	const n = 5
	var want []store.Record
	for i := range n {
		r := req("sess-1", fmt.Sprint("k", i), fmt.Sprint("message ", i))
		if i%2 == 1 {
			r.Direction = store.Outbound
			r.Envelope.Actor.Type = envelope.Agent
		}
		res := mustAppend(t, st, r)
		if !res.Created {
			t.Fatalf("append %d: Created = false for a new envelope", i)
		}
		if res.Record.Seq != int64(i+1) {
			t.Fatalf("append %d: seq %d, want %d", i, res.Record.Seq, i+1)
		}
		if res.Record.StoredAt.IsZero() {
			t.Errorf("append %d: StoredAt is zero", i)
		}
		checkRecord(t, fmt.Sprint("append ", i), res.Record, store.Record{
			SessionID: "sess-1", Seq: int64(i + 1), Direction: r.Direction,
			Envelope: r.Envelope, StoredAt: res.Record.StoredAt,
		})
		want = append(want, res.Record)
	}

	got := mustRead(t, st, "sess-1", 0, 100)
	if len(got) != n {
		t.Fatalf("Read returned %d records, want %d", len(got), n)
	}
	for i := range got {
		checkRecord(t, fmt.Sprint("read record ", i), got[i], want[i])
	}

	after, err := st.Session(t.Context(), "sess-1")
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	if after.LastSeq != n {
		t.Errorf("LastSeq = %d after %d appends", after.LastSeq, n)
	}
	if after.UpdatedAt.Before(sess.UpdatedAt) {
		t.Errorf("UpdatedAt went back: %s, was %s", after.UpdatedAt, sess.UpdatedAt)
	}
}

func (s suite) testReadAfterLimit(t *testing.T) {
	st, _ := s.fresh(t)
	createSession(t, st, "sess-1")
	if recs := mustRead(t, st, "sess-1", 0, 10); len(recs) != 0 {
		t.Fatalf("Read of an empty log returned %d records", len(recs))
	}
	for i := range 10 {
		mustAppend(t, st, req("sess-1", fmt.Sprint("k", i), fmt.Sprint("m", i)))
	}
	cases := []struct {
		after    int64
		limit    int
		from, to int64 // expected seqs, inclusive; from > to for none
	}{
		{0, 3, 1, 3},
		{3, 3, 4, 6},
		{8, 5, 9, 10},
		{9, 1, 10, 10},
		{10, 5, 1, 0},
		{50, 5, 1, 0},
		{0, 100, 1, 10},
	}
	for _, c := range cases {
		recs := mustRead(t, st, "sess-1", c.after, c.limit)
		var seqs []int64
		for _, r := range recs {
			seqs = append(seqs, r.Seq)
		}
		var want []int64
		for q := c.from; q <= c.to; q++ {
			want = append(want, q)
		}
		if fmt.Sprint(seqs) != fmt.Sprint(want) {
			t.Errorf("Read(after %d, limit %d) seqs = %v, want %v", c.after, c.limit, seqs, want)
		}
		for _, r := range recs {
			if r.Envelope.ID != fmt.Sprint("test:k", r.Seq-1) {
				t.Errorf("record seq %d holds envelope %s, want test:k%d", r.Seq, r.Envelope.ID, r.Seq-1)
			}
		}
	}
}

func (s suite) testLogNotFound(t *testing.T) {
	st, _ := s.fresh(t)
	if _, err := st.Append(t.Context(), req("nope", "k", "hello")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Append to an unknown session: error %v, want ErrNotFound", err)
	}
	if _, err := st.Read(t.Context(), "nope", 0, 10); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Read of an unknown session: error %v, want ErrNotFound", err)
	}
	// The failed append created nothing.
	if _, err := st.Session(t.Context(), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Session after a failed Append: error %v, want ErrNotFound", err)
	}
}

func (s suite) testEnvelopeRoundTrip(t *testing.T) {
	st, _ := s.fresh(t)
	createSession(t, st, "sess-1")
	full := envelope.Envelope{
		ID:     "github:delivery-1",
		Source: "github",
		Kind:   envelope.KindEdit,
		Actor:  envelope.Actor{ID: "github:octocat", Display: "The Octocat ✓", Type: envelope.Agent},
		Conversation: envelope.Conversation{
			Source: "github", Ref: "octo/cat#42/review:7 \"quoted\" é",
		},
		Text: "line one\r\nline two\ttabbed é 😀 \\ back\\slash",
		Refs: envelope.Refs{
			envelope.RefRepo: "octo/cat", envelope.RefPR: "42", envelope.RefBranch: "feature/x",
			"edits": "github:delivery-0", "custom.key-1": "a \"quoted\" value",
		},
		TS:  time.Date(2031, 2, 3, 4, 5, 6, 7, time.FixedZone("X", 3600)),
		Raw: []byte(`{"action":"edited"}`),
	}
	bare := envelope.Envelope{
		ID: "system:1", Source: "system", Kind: envelope.KindSystem,
		Actor: envelope.Actor{ID: "system:gateway", Type: envelope.System},
		TS:    ts,
	}
	for i, e := range []envelope.Envelope{full, bare} {
		res := mustAppend(t, st, store.AppendRequest{SessionID: "sess-1", Direction: store.Outbound, Envelope: e})
		if d := diffEnvelope(res.Record.Envelope, e); d != "" {
			t.Errorf("envelope %d as appended: %s", i, d)
		}
	}
	recs := mustRead(t, st, "sess-1", 0, 10)
	if len(recs) != 2 {
		t.Fatalf("Read returned %d records, want 2", len(recs))
	}
	for i, e := range []envelope.Envelope{full, bare} {
		if recs[i].Direction != store.Outbound {
			t.Errorf("record %d direction %q, want outbound", i, recs[i].Direction)
		}
		if d := diffEnvelope(recs[i].Envelope, e); d != "" {
			t.Errorf("envelope %d as read: %s", i, d)
		}
	}
}

// rawCases are payloads that a store must keep byte for byte: encoders that
// compact, re-indent, unescape or HTML-escape JSON all change them.
var rawCases = []string{
	"{\n  \"name\": \"Ren\\u00e9e\",\n\t\"html\": \"<b>&amp;</b> <&>\",\n  \"n\": 1.50,\n  \"e\": 1E+2,\n  \"nested\" : { \"a\" : [ 1 , 2 ] ,\"b\":null}\n}\n",
	`"a JSON string, not an object: caf\u00e9 <&> \"quoted\" \/ \n"`,
	`{"literal":"é 😀 ✓","dup":1,"dup":2}`,
	`[]`,
	`   42   `,
}

func (s suite) testRawByteForByte(t *testing.T) {
	st, b := s.fresh(t)
	createSession(t, st, "sess-1")
	for i, raw := range rawCases {
		r := req("sess-1", fmt.Sprint("raw", i), "raw case")
		r.Envelope.Raw = []byte(raw)
		res := mustAppend(t, st, r)
		if string(res.Record.Envelope.Raw) != raw {
			t.Errorf("raw %d as appended = %q, want %q", i, res.Record.Envelope.Raw, raw)
		}
	}
	noRaw := req("sess-1", "noraw", "no raw")
	noRaw.Envelope.Raw = nil
	mustAppend(t, st, noRaw)

	check := func(when string, st store.Store) {
		t.Helper()
		recs := mustRead(t, st, "sess-1", 0, 100)
		if len(recs) != len(rawCases)+1 {
			t.Fatalf("%s: read %d records, want %d", when, len(recs), len(rawCases)+1)
		}
		for i, raw := range rawCases {
			if got := string(recs[i].Envelope.Raw); got != raw {
				t.Errorf("%s: raw %d = %q, want %q", when, i, got, raw)
			}
		}
		if got := recs[len(rawCases)].Envelope.Raw; len(got) != 0 {
			t.Errorf("%s: an envelope without raw came back with raw %q", when, got)
		}
		// A replay returns the stored raw, not the replay's.
		dup := req("sess-1", "raw0", "raw case")
		dup.Envelope.Raw = []byte(`{"replayed":true}`)
		res := mustAppend(t, st, dup)
		if res.Created || string(res.Record.Envelope.Raw) != rawCases[0] {
			t.Errorf("%s: replay returned created %v, raw %q; want the stored original", when, res.Created, res.Record.Envelope.Raw)
		}
	}
	check("before reopen", st)
	closeStore(t, st)
	check("after reopen", open(t, b))
}

func (s suite) testWake(t *testing.T) {
	st, _ := s.fresh(t)
	createSession(t, st, "sess-1")
	state := func() store.State {
		t.Helper()
		sess, err := st.Session(t.Context(), "sess-1")
		if err != nil {
			t.Fatalf("Session: %v", err)
		}
		return sess.State
	}

	res := mustAppend(t, st, req("sess-1", "k1", "no wake"))
	if res.State != store.Idle || state() != store.Idle {
		t.Fatalf("append without Wake: result state %s, session %s; want idle", res.State, state())
	}

	r := req("sess-1", "k2", "wake up")
	r.Wake = true
	res = mustAppend(t, st, r)
	if res.State != store.Running || state() != store.Running {
		t.Fatalf("append with Wake: result state %s, session %s; want running", res.State, state())
	}

	res = mustAppend(t, st, req("sess-1", "k3", "no wake, running"))
	if res.State != store.Running {
		t.Errorf("append without Wake to a running session: result state %s, want running", res.State)
	}
	r = req("sess-1", "k4", "wake, running")
	r.Wake = true
	if res = mustAppend(t, st, r); res.State != store.Running || state() != store.Running {
		t.Errorf("append with Wake to a running session: result state %s, session %s; want running", res.State, state())
	}

	// Rest ends the turn in the same transaction, and a replay of it
	// changes nothing.
	r = req("sess-1", "k5", "done")
	r.Direction, r.Rest = store.Outbound, true
	if res = mustAppend(t, st, r); res.State != store.Idle || state() != store.Idle {
		t.Errorf("append with Rest: result state %s, session %s; want idle", res.State, state())
	}
	r2 := req("sess-1", "k6", "wake again")
	r2.Wake = true
	mustAppend(t, st, r2)
	if res = mustAppend(t, st, r); res.Created || state() != store.Running {
		t.Errorf("replayed Rest: created %v, session %s; want a replay that leaves the session running", res.Created, state())
	}
}

func (s suite) testSessionsSeparate(t *testing.T) {
	st, _ := s.fresh(t)
	createSession(t, st, "a")
	createSession(t, st, "b")
	for i := range 3 {
		mustAppend(t, st, req("a", fmt.Sprint("a", i), "to a"))
		mustAppend(t, st, req("b", fmt.Sprint("b", i), "to b"))
	}
	mustAppend(t, st, req("b", "b3", "to b"))
	for _, c := range []struct {
		id string
		n  int
	}{{"a", 3}, {"b", 4}} {
		recs := readAll(t, st, c.id)
		checkContiguous(t, c.id, recs)
		if len(recs) != c.n {
			t.Errorf("session %s has %d records, want %d", c.id, len(recs), c.n)
		}
		for _, r := range recs {
			if r.Envelope.ID[len("test:")] != c.id[0] {
				t.Errorf("session %s holds envelope %s of another session", c.id, r.Envelope.ID)
			}
		}
		if sess, err := st.Session(t.Context(), c.id); err != nil || sess.LastSeq != int64(c.n) {
			t.Errorf("session %s: LastSeq %d, err %v; want %d", c.id, sess.LastSeq, err, c.n)
		}
	}
}

func (s suite) testLookup(t *testing.T) {
	st, _ := s.fresh(t)
	ctx := t.Context()
	createSession(t, st, "sess-1")
	createSession(t, st, "sess-2")
	mustAppend(t, st, req("sess-1", "a", "first"))
	want := mustAppend(t, st, req("sess-1", "b", "second")).Record
	mustAppend(t, st, req("sess-2", "c", "elsewhere"))
	got, err := st.Lookup(ctx, "sess-1", "test:b")
	if err != nil {
		t.Fatalf("Lookup(sess-1, test:b): %v", err)
	}
	checkRecord(t, "Lookup(sess-1, test:b)", got, want)
	for _, tc := range [][2]string{
		{"sess-1", "test:c"},       // another session's
		{"sess-1", "test:nothing"}, // none
		{"sess-unknown", "test:a"}, // no session
		{"sess-1", ""},
		{"sess-1", "bad\x00id"},
	} {
		if _, err := st.Lookup(ctx, tc[0], tc[1]); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Lookup(%q, %q): err = %v, want ErrNotFound", tc[0], tc[1], err)
		}
	}
}
