package envelope

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func valid() Envelope {
	return Envelope{
		ID:           "client:abc123",
		Source:       "client",
		Kind:         KindMessage,
		Actor:        Actor{ID: "client:user-7", Display: "Ada", Type: Human},
		Conversation: Conversation{Source: "client", Ref: "thread-42"},
		Text:         "also check the CI config",
		Refs:         Refs{RefRepo: "acme/widgets", RefPR: "42"},
		TS:           time.Date(2026, 6, 18, 12, 0, 0, 0, time.UTC),
		Raw:          json.RawMessage("{\n  \"text\":  \"also check the CI config\",\n  \"html\": \"<b>&amp;</b>\",\n  \"u\": \"\\u00e9\"\n}"),
	}
}

func TestRoundTripKeepsRawByteForByte(t *testing.T) {
	e := valid()
	b, err := e.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), string(e.Raw)) {
		t.Fatalf("encoding does not hold raw verbatim:\n%s", b)
	}
	var back Envelope
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if string(back.Raw) != string(e.Raw) {
		t.Fatalf("raw changed:\n got %q\nwant %q", back.Raw, e.Raw)
	}
	if back.ID != e.ID || back.Text != e.Text || back.Actor != e.Actor || back.Conversation != e.Conversation ||
		!back.TS.Equal(e.TS) || !Equivalent(&back, &e) {
		t.Fatalf("round trip changed the envelope:\n got %+v\nwant %+v", back, e)
	}
	// json.Marshal (MarshalJSON) gives an envelope that decodes the same.
	m, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var viaMarshal Envelope
	if err := json.Unmarshal(m, &viaMarshal); err != nil || viaMarshal.Text != e.Text {
		t.Fatalf("MarshalJSON: %v %s", err, m)
	}
}

func TestPublicFieldNames(t *testing.T) {
	e := valid()
	b, _ := e.AppendJSON(nil)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "source", "kind", "actor", "conversation", "text", "refs", "ts", "raw"} {
		if _, ok := m[k]; !ok {
			t.Errorf("field %q missing from %s", k, b)
		}
	}
	if len(m) != 9 {
		t.Errorf("got %d fields, want exactly 9: %s", len(m), b)
	}
	if string(m["ts"]) != `"2026-06-18T12:00:00Z"` {
		t.Errorf("ts = %s", m["ts"])
	}
}

func TestEmptyRawAndRefs(t *testing.T) {
	e := valid()
	e.Raw, e.Refs = nil, nil
	b, _ := e.AppendJSON(nil)
	if !strings.Contains(string(b), `"raw":null`) || !strings.Contains(string(b), `"refs":{}`) {
		t.Fatalf("got %s", b)
	}
	var back Envelope
	if err := json.Unmarshal(b, &back); err != nil || back.Raw != nil {
		t.Fatalf("null raw should decode to nil: %v %q", err, back.Raw)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		field  string
		mutate func(*Envelope)
	}{
		{"id", func(e *Envelope) { e.ID = "" }},
		{"id", func(e *Envelope) { e.ID = "no-namespace" }},
		{"source", func(e *Envelope) { e.Source = "" }},
		{"kind", func(e *Envelope) { e.Kind = "shout" }},
		{"actor.id", func(e *Envelope) { e.Actor.ID = "" }},
		{"actor.id", func(e *Envelope) { e.Actor.ID = "U123" }},
		{"actor.type", func(e *Envelope) { e.Actor.Type = "robot" }},
		{"conversation.source", func(e *Envelope) { e.Conversation.Source = "" }},
		{"text", func(e *Envelope) { e.Text = "   " }},
		{"text", func(e *Envelope) { e.Text = strings.Repeat("x", 101) }},
		{"text", func(e *Envelope) { e.Text = "\xff" }},
		{"ts", func(e *Envelope) { e.TS = time.Time{} }},
		{"refs", func(e *Envelope) { e.Refs = Refs{"bad key": "x"} }},
		{"refs.pr", func(e *Envelope) { e.Refs = Refs{"pr": strings.Repeat("9", MaxRefValLen+1)} }},
		{"raw", func(e *Envelope) { e.Raw = json.RawMessage("{not json") }},
		// Every field is bounded.
		{"id", func(e *Envelope) { e.ID = "client:" + strings.Repeat("x", MaxIDLen) }},
		{"source", func(e *Envelope) { e.Source = strings.Repeat("s", MaxSourceLen+1) }},
		{"actor.id", func(e *Envelope) { e.Actor.ID = "client:" + strings.Repeat("u", MaxActorIDLen) }},
		{"actor.display", func(e *Envelope) { e.Actor.Display = strings.Repeat("A", 900<<10) }},
		{"actor.display", func(e *Envelope) { e.Actor.Display = strings.Repeat("A", MaxDisplayLen+1) }},
		{"actor.display", func(e *Envelope) { e.Actor.Display = "Ada \xff" }},
		{"conversation.source", func(e *Envelope) { e.Conversation.Source = strings.Repeat("c", 100<<10) }},
		{"conversation.ref", func(e *Envelope) { e.Conversation.Ref = strings.Repeat("r", MaxConvRefLen+1) }},
		{"refs", func(e *Envelope) { e.Refs = Refs{strings.Repeat("k", MaxRefKeyLen+1): "x"} }},
		{"refs", func(e *Envelope) {
			e.Refs = Refs{}
			for i := range MaxRefs + 1 {
				e.Refs[fmt.Sprintf("k%d", i)] = "v"
			}
		}},
	} {
		e := valid()
		tc.mutate(&e)
		err := e.Validate(100)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != tc.field {
			t.Errorf("%s: err = %v, want a ValidationError for %q", tc.field, err, tc.field)
		}
	}
	e := valid()
	if err := e.Validate(100); err != nil {
		t.Fatalf("valid envelope: %v", err)
	}
	// The bounds themselves are accepted.
	e.Actor.Display = strings.Repeat("A", MaxDisplayLen)
	e.Actor.ID = "client:" + strings.Repeat("u", MaxActorIDLen-len("client:"))
	e.Conversation.Source = strings.Repeat("c", MaxSourceLen)
	if err := e.Validate(100); err != nil {
		t.Fatalf("envelope at the bounds: %v", err)
	}
	e = valid()
	// Edits and deletes need no text.
	e.Kind, e.Text = KindDelete, ""
	if err := e.Validate(0); err != nil {
		t.Fatalf("delete without text: %v", err)
	}
}

func TestRefsAcceptStringsAndNumbersOnly(t *testing.T) {
	var r Refs
	if err := json.Unmarshal([]byte(`{"pr": 42, "repo": "acme/widgets", "custom.key": "x"}`), &r); err != nil {
		t.Fatal(err)
	}
	if r["pr"] != "42" || r["repo"] != "acme/widgets" || r["custom.key"] != "x" {
		t.Fatalf("refs = %v", r)
	}
	for body, want := range map[string]string{
		`{"pr": {"n": 1}}`: "refs.pr: must be a string or a number, not an object",
		`{"pr": [1]}`:      "an array",
		`{"pr": true}`:     "a boolean",
		`{"pr": null}`:     "null",
		`[1,2]`:            "refs: must be an object",
	} {
		err := json.Unmarshal([]byte(body), &r)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", body, err, want)
		}
	}
}

func TestEquivalent(t *testing.T) {
	a, b := valid(), valid()
	b.ID, b.TS, b.Raw = "client:other", b.TS.Add(time.Hour), nil // not part of the request's meaning
	if !Equivalent(&a, &b) {
		t.Fatal("same text and refs should be equivalent")
	}
	b.Refs = Refs{RefRepo: "acme/widgets", RefPR: "43"}
	if Equivalent(&a, &b) {
		t.Fatal("different refs should not be equivalent")
	}
	b = valid()
	b.Text += "!"
	if Equivalent(&a, &b) {
		t.Fatal("different text should not be equivalent")
	}
}

func TestMessageEventCarriesTheEnvelopeVerbatim(t *testing.T) {
	e := valid()
	ev, err := MessageEvent("evt_1", "ses_1", "inbound", &e)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ev.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		ID, Type, SessionID, Direction string
		Body                           json.RawMessage
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.ID != "evt_1" || m.Type != "message" || m.Direction != "inbound" {
		t.Fatalf("event = %s", b)
	}
	if !strings.Contains(string(b), `"session_id":"ses_1"`) || !strings.Contains(string(b), string(e.Raw)) {
		t.Fatalf("event lacks the session id or the verbatim raw: %s", b)
	}
}
