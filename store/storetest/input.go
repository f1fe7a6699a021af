package storetest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// runInput runs the subtests of the input rules every backend holds to
// (store/check.go): what one backend cannot store, none accepts.
func (s suite) runInput(t *testing.T) {
	t.Run("AppendRefusesUnstorable", s.testAppendRefusesUnstorable)
	t.Run("AppendAcceptsTheLimits", s.testAppendAcceptsLimits)
	t.Run("WritesRefuseUnstorable", s.testWritesRefuseUnstorable)
	t.Run("UnstorableIDsAreNotFound", s.testUnstorableIDsNotFound)
	t.Run("LeasesAndTokensRefuseUnstorable", s.testLeasesAndTokensRefuseUnstorable)
}

// unstorable are the strings no backend can keep in a text column:
// PostgreSQL refuses both.
var unstorable = map[string]string{"NUL": "a\x00b", "invalid UTF-8": "\xff\xfe"}

func (s suite) testAppendRefusesUnstorable(t *testing.T) {
	st, _ := s.fresh(t)
	createSession(t, st, "sess-1")
	cases := map[string]func(r *store.AppendRequest){
		"empty id":    func(r *store.AppendRequest) { r.Envelope.ID = "" },
		"long id":     func(r *store.AppendRequest) { r.Envelope.ID = "test:" + strings.Repeat("k", envelope.MaxIDLen) },
		"long source": func(r *store.AppendRequest) { r.Envelope.Source = strings.Repeat("s", envelope.MaxSourceLen+1) },
		"long conversation": func(r *store.AppendRequest) {
			r.Envelope.Conversation.Ref = strings.Repeat("r", envelope.MaxConvRefLen+1)
		},
		"bad direction":     func(r *store.AppendRequest) { r.Direction = "sideways" },
		"no direction":      func(r *store.AppendRequest) { r.Direction = "" },
		"no-turn output":    func(r *store.AppendRequest) { r.Direction, r.NoTurn = store.Outbound, true },
		"ts before MinTime": func(r *store.AppendRequest) { r.Envelope.TS = store.MinTime.Add(-time.Nanosecond) },
		"ts after MaxTime":  func(r *store.AppendRequest) { r.Envelope.TS = store.MaxTime.Add(time.Nanosecond) },
		"zero ts":           func(r *store.AppendRequest) { r.Envelope.TS = time.Time{} },
		"too many refs":     func(r *store.AppendRequest) { r.Envelope.Refs = manyRefs(envelope.MaxRefs + 1) },
		"long ref value": func(r *store.AppendRequest) {
			r.Envelope.Refs = envelope.Refs{"pr": strings.Repeat("9", envelope.MaxRefValLen+1)}
		},
		"empty ref key":        func(r *store.AppendRequest) { r.Envelope.Refs = envelope.Refs{"": "x"} },
		"ref key with a space": func(r *store.AppendRequest) { r.Envelope.Refs = envelope.Refs{"a b": "x"} },
	}
	for what, bad := range unstorable {
		for field, set := range map[string]func(r *store.AppendRequest){
			"id":                  func(r *store.AppendRequest) { r.Envelope.ID = "test:" + bad },
			"source":              func(r *store.AppendRequest) { r.Envelope.Source = bad },
			"kind":                func(r *store.AppendRequest) { r.Envelope.Kind = envelope.Kind(bad) },
			"actor.id":            func(r *store.AppendRequest) { r.Envelope.Actor.ID = "test:" + bad },
			"actor.display":       func(r *store.AppendRequest) { r.Envelope.Actor.Display = bad },
			"actor.type":          func(r *store.AppendRequest) { r.Envelope.Actor.Type = envelope.ActorType(bad) },
			"conversation.source": func(r *store.AppendRequest) { r.Envelope.Conversation.Source = bad },
			"conversation.ref":    func(r *store.AppendRequest) { r.Envelope.Conversation.Ref = bad },
			"text":                func(r *store.AppendRequest) { r.Envelope.Text = "hello " + bad },
			"refs value":          func(r *store.AppendRequest) { r.Envelope.Refs = envelope.Refs{"pr": bad} },
			"refs key":            func(r *store.AppendRequest) { r.Envelope.Refs = envelope.Refs{bad: "1"} },
		} {
			cases[what+" in "+field] = set
		}
	}
	for name, mutate := range cases {
		r := req("sess-1", "k", "hello")
		mutate(&r)
		if err := store.CheckAppend(r); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: CheckAppend = %v, want ErrInvalid", name, err)
		}
		res, err := st.Append(t.Context(), r)
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: Append = %+v, %v; want an error wrapping ErrInvalid", name, res, err)
		}
	}
	// A session id that no session can have is an unknown session.
	for what, bad := range unstorable {
		r := req(bad, "k", "hello")
		if _, err := st.Append(t.Context(), r); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Append to a session id with %s: %v, want ErrNotFound", what, err)
		}
	}
	if recs := mustRead(t, st, "sess-1", 0, 100); len(recs) != 0 {
		t.Errorf("refused appends stored %d records, want none", len(recs))
	}
	// The session still takes a good envelope, at seq 1.
	if res := mustAppend(t, st, req("sess-1", "good", "hello")); res.Record.Seq != 1 {
		t.Errorf("good append after refusals: seq %d, want 1", res.Record.Seq)
	}
}

func manyRefs(n int) envelope.Refs {
	r := envelope.Refs{}
	for i := range n {
		r["k"+strings.Repeat("x", i)] = "v"
	}
	return r
}

func (s suite) testAppendAcceptsLimits(t *testing.T) {
	st, _ := s.fresh(t)
	createSession(t, st, "sess-1")
	longest := req("sess-1", strings.Repeat("k", envelope.MaxIDLen-len("test:")), "the longest id")
	longest.Envelope.Source = strings.Repeat("s", envelope.MaxSourceLen)
	longest.Envelope.Conversation.Ref = strings.Repeat("r", envelope.MaxConvRefLen)
	longest.Envelope.Refs = manyRefs(envelope.MaxRefs)
	longest.Envelope.Refs["pr"] = strings.Repeat("9", envelope.MaxRefValLen)
	delete(longest.Envelope.Refs, "k"+strings.Repeat("x", envelope.MaxRefs-1))
	earliest := req("sess-1", "min", "the earliest time")
	earliest.Envelope.TS = store.MinTime
	latest := req("sess-1", "max", "the latest time")
	latest.Envelope.TS = store.MaxTime
	// Raw is bytes, kept as they are whatever they hold.
	binary := req("sess-1", "raw", "raw with NUL and invalid UTF-8")
	binary.Envelope.Raw = []byte("{\"t\":\"\\u0000\"}\x00\xff")
	unicode := req("sess-1", "unicode", "é 😀 \uFFFD \U0010FFFF \u2028")
	unicode.Envelope.Actor.Display = "Renée \U0001F600"
	want := []store.AppendRequest{longest, earliest, latest, binary, unicode}
	for _, r := range want {
		mustAppend(t, st, r)
	}
	recs := mustRead(t, st, "sess-1", 0, 100)
	if len(recs) != len(want) {
		t.Fatalf("read %d records, want %d", len(recs), len(want))
	}
	for i, r := range want {
		if d := diffEnvelope(recs[i].Envelope, r.Envelope); d != "" {
			t.Errorf("record %d (%s) came back changed: %s", i+1, r.Envelope.ID, d)
		}
	}
}

func (s suite) testWritesRefuseUnstorable(t *testing.T) {
	st, _ := s.fresh(t)
	createSession(t, st, "sess-1")
	mustAppend(t, st, req("sess-1", "k", "hello"))
	ctx := t.Context()
	invalid := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: %v, want an error wrapping ErrInvalid", what, err)
		}
	}
	for what, bad := range unstorable {
		_, _, err := st.CreateSession(ctx, "sess-"+bad, nil)
		invalid("CreateSession with "+what+" in the id", err)
		_, _, err = st.CreateSession(ctx, "sess-2", map[string]string{"k": bad})
		invalid("CreateSession with "+what+" in a metadata value", err)
		_, _, err = st.CreateSession(ctx, "sess-2", map[string]string{bad: "v"})
		invalid("CreateSession with "+what+" in a metadata key", err)
		_, _, err = st.Bind(ctx, store.Binding{SessionID: "sess-1", Conversation: envelope.Conversation{Source: "slack", Ref: bad}}, nil)
		invalid("Bind with "+what+" in the conversation", err)
		_, _, err = st.Bind(ctx, store.Binding{SessionID: "sess-3", Conversation: envelope.Conversation{Source: "slack", Ref: "C1"}},
			map[string]string{"k": bad})
		invalid("Bind with "+what+" in the metadata", err)
		err = st.Enqueue(ctx, []store.Delivery{{SessionID: "sess-1", Seq: 1, To: envelope.Conversation{Source: "slack", Ref: bad}}})
		invalid("Enqueue with "+what+" in the conversation", err)
		w := newWebhook("wh-1")
		w.Description = bad
		_, err = st.CreateWebhook(ctx, w)
		invalid("CreateWebhook with "+what+" in the description", err)
		w = newWebhook("wh-1")
		w.Metadata = map[string]string{"team": bad}
		_, err = st.CreateWebhook(ctx, w)
		invalid("CreateWebhook with "+what+" in the metadata", err)
		// Cursors too: none that a list returned can hold them.
		_, err = st.ListSessions(ctx, bad, 10)
		invalid("ListSessions after a cursor with "+what, err)
		_, err = st.ListDeliveries(ctx, "", bad, 10)
		invalid("ListDeliveries after a cursor with "+what, err)
		_, err = st.WebhookAttempts(ctx, "wh-1", bad, 10)
		invalid("WebhookAttempts before a cursor with "+what, err)
	}
	// Nothing was created.
	if list, err := st.ListSessions(ctx, "", 10); err != nil || len(list) != 1 {
		t.Errorf("ListSessions = %d sessions, %v; want only sess-1", len(list), err)
	}
	if bs, err := st.SessionBindings(ctx, "sess-1"); err != nil || len(bs) != 0 {
		t.Errorf("SessionBindings(sess-1) = %v, %v; want none", bs, err)
	}
	if list, err := st.ListWebhooks(ctx); err != nil || len(list) != 0 {
		t.Errorf("ListWebhooks = %v, %v; want none", list, err)
	}
	if ds, err := st.ListDeliveries(ctx, "", "", 10); err != nil || len(ds) != 0 {
		t.Errorf("ListDeliveries = %v, %v; want none", ds, err)
	}
}

func (s suite) testUnstorableIDsNotFound(t *testing.T) {
	st, _ := s.fresh(t)
	createSession(t, st, "sess-1")
	ctx := t.Context()
	notFound := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v, want an error wrapping ErrNotFound", what, err)
		}
	}
	for what, bad := range unstorable {
		_, err := st.Session(ctx, bad)
		notFound("Session of an id with "+what, err)
		_, err = st.Read(ctx, bad, 0, 10)
		notFound("Read of a session id with "+what, err)
		_, err = st.SetState(ctx, bad, store.Running)
		notFound("SetState of a session id with "+what, err)
		_, err = st.SessionEventsOf(ctx, bad, 0, 10)
		notFound("SessionEventsOf a session id with "+what, err)
		_, err = st.BindingFor(ctx, envelope.Conversation{Source: "slack", Ref: bad})
		notFound("BindingFor a conversation with "+what, err)
		_, err = st.PauseBinding(ctx, bad, time.Time{}, "")
		notFound("PauseBinding of an id with "+what, err)
		_, err = st.RetryDelivery(ctx, bad, time.Now())
		notFound("RetryDelivery of an id with "+what, err)
		_, err = st.Webhook(ctx, bad)
		notFound("Webhook of an id with "+what, err)
		_, err = st.UpdateWebhook(ctx, newWebhook(bad))
		if !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrInvalid) {
			t.Errorf("UpdateWebhook of an id with %s: %v, want ErrNotFound or ErrInvalid", what, err)
		}
		_, err = st.RotateWebhookSecret(ctx, bad, testSecret2, time.Time{})
		notFound("RotateWebhookSecret of an id with "+what, err)
		notFound("DeleteWebhook of an id with "+what, st.DeleteWebhook(ctx, bad))
		// Lookups that answer "none" for an unknown id answer it here too.
		if bs, err := st.SessionBindings(ctx, bad); err != nil || len(bs) != 0 {
			t.Errorf("SessionBindings of a session id with %s = %v, %v; want none", what, bs, err)
		}
		if c, err := st.LatestInbound(ctx, bad, 10); err != nil || !c.IsZero() {
			t.Errorf("LatestInbound of a session id with %s = %v, %v; want none", what, c, err)
		}
		if as, err := st.WebhookAttempts(ctx, bad, "", 10); err != nil || len(as) != 0 {
			t.Errorf("WebhookAttempts of an id with %s = %v, %v; want none", what, as, err)
		}
		if ok, err := st.Posted(ctx, "slack", bad); err != nil || ok {
			t.Errorf("Posted with %s in the channel id = %v, %v; want false", what, ok, err)
		}
		if seq, err := st.Cursor(ctx, "runtime", bad); err != nil || seq != 0 {
			t.Errorf("Cursor of a session id with %s = %d, %v; want 0", what, seq, err)
		}
	}
}

func (s suite) testLeasesAndTokensRefuseUnstorable(t *testing.T) {
	st, _ := s.fresh(t)
	createSession(t, st, "sess-1")
	ctx := t.Context()
	now := time.Now()
	for what, bad := range unstorable {
		if _, err := st.ClaimWork(ctx, bad, "owner-1", 10, now, now.Add(time.Minute)); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("ClaimWork with %s in the consumer: %v, want ErrInvalid", what, err)
		}
		if _, err := st.ClaimWork(ctx, "runtime", bad, 10, now, now.Add(time.Minute)); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("ClaimWork with %s in the owner: %v, want ErrInvalid", what, err)
		}
		if err := st.Advance(ctx, bad, "sess-1", "owner-1", 1, time.Time{}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Advance with %s in the consumer: %v, want ErrInvalid", what, err)
		}
		if _, err := st.Claim(ctx, bad, 10, now, now.Add(time.Minute)); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Claim with %s in the owner: %v, want ErrInvalid", what, err)
		}
		tok := store.Token{ID: "tok-1", Name: "name " + bad, Scopes: []store.Scope{store.ScopeAdmin}}
		tok.Hash[0] = 1
		if err := st.CreateToken(ctx, tok); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("CreateToken with %s in the name: %v, want ErrInvalid", what, err)
		}
	}
	if n, err := st.CountTokens(ctx); err != nil || n != 0 {
		t.Errorf("CountTokens = %d, %v; want 0", n, err)
	}
}
