package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/internal/testenv"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/postgres"
)

// TestUnstorableInput sends, on SQLite and on PostgreSQL, requests carrying
// what the store cannot hold (a NUL byte or invalid UTF-8 in an id, a
// cursor or a body field): each must be answered 404 (an id that no stored
// thing can have) or 400 (a value that cannot be stored), with a JSON error,
// the same on both stores, and nothing must be stored.
func TestUnstorableInput(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) { testUnstorableInput(t, openStore(t)) })
	t.Run("PostgreSQL", func(t *testing.T) {
		dsn := testenv.Postgres(t)
		st, err := postgres.Open(t.Context(), dsn, postgres.Options{})
		if err != nil {
			t.Fatalf("open postgres: %v", err)
		}
		t.Cleanup(func() {
			if err := st.Close(); err != nil {
				t.Errorf("close postgres: %v", err)
			}
		})
		testUnstorableInput(t, st)
	})
}

func testUnstorableInput(t *testing.T, st store.Store) {
	h := newHarnessOn(t, st, func(o *Options) {
		o.Bindings, o.Outbox = st, st
		o.Webhooks = &WebhookOptions{Store: st, Replay: func(context.Context, string, time.Time) (int, error) { return 0, nil }}
	})
	ses := h.newSession()
	w := h.do(req{method: "POST", path: "/v3/webhooks", token: adminSecret, body: `{"url": "https://example.com/hook"}`})
	if w.Code != http.StatusCreated {
		t.Fatalf("create webhook: %d %s", w.Code, w.Body)
	}
	var wh struct{ ID string }
	if err := json.Unmarshal(w.Body.Bytes(), &wh); err != nil {
		t.Fatalf("decode webhook: %v", err)
	}

	const notFound, invalid = http.StatusNotFound, http.StatusBadRequest
	msgs, outs := "/v3/sessions/"+ses+"/messages", "/v3/sessions/"+ses+"/outputs"
	cases := []struct {
		method, path, body string
		status             int
	}{
		// Session ids.
		{"GET", "/v3/sessions/%ff", "", notFound},
		{"GET", "/v3/sessions/a%00b", "", notFound},
		{"GET", "/v3/sessions/%ff/messages", "", notFound},
		{"GET", "/v3/sessions/a%00b/messages?after=0", "", notFound},
		{"GET", "/v3/sessions/%ff/stream", "", notFound},
		{"POST", "/v3/sessions/%ff/messages", `{"text": "hi"}`, notFound},
		{"POST", "/v3/sessions/a%00b/outputs", `{"text": "hi"}`, notFound},
		{"GET", "/v3/sessions/%00/conversations", "", notFound},
		{"POST", "/v3/sessions/%ff/conversations", `{"source": "slack", "ref": "C1"}`, notFound},
		{"POST", "/v3/sessions/%ff/conversations/cnv_1/resume", "", notFound},
		{"POST", "/v3/sessions/" + ses + "/conversations/%ff/resume", "", notFound},
		// Delivery and webhook ids.
		{"POST", "/v3/deliveries/%ff/retry", "", notFound},
		{"POST", "/v3/deliveries/a%00b/retry", "", notFound},
		{"GET", "/v3/webhooks/%ff", "", notFound},
		{"PATCH", "/v3/webhooks/a%00b", `{"description": "x"}`, notFound},
		{"DELETE", "/v3/webhooks/%ff", "", notFound},
		{"POST", "/v3/webhooks/%00/rotate-secret", "", notFound},
		{"GET", "/v3/webhooks/%ff/deliveries", "", notFound},
		{"POST", "/v3/webhooks/%00/replay?since=2026-01-01T00:00:00Z", "", notFound},
		// Cursors.
		{"GET", "/v3/sessions?after=%00", "", invalid},
		{"GET", "/v3/sessions?after=%ff", "", invalid},
		{"GET", "/v3/deliveries?after=%00", "", invalid},
		{"GET", "/v3/deliveries?status=dead&after=%ff", "", invalid},
		{"GET", "/v3/webhooks/" + wh.ID + "/deliveries?before=%00", "", invalid},
		{"GET", "/v3/webhooks/" + wh.ID + "/deliveries?before=%ff", "", invalid},
		// Body fields.
		{"POST", msgs, `{"text": "a\u0000b"}`, invalid},
		{"POST", msgs, `{"text": "hi", "refs": {"pr": "1\u0000"}}`, invalid},
		{"POST", msgs, `{"text": "hi", "refs": {"p\u0000r": "1"}}`, invalid},
		{"POST", msgs, `{"text": "hi", "actor": {"display": "Ada\u0000"}}`, invalid},
		{"POST", msgs, `{"text": "hi", "conversation": {"ref": "t\u0000"}}`, invalid},
		{"POST", msgs, "{\"text\": \"\xff\"}", invalid},
		{"POST", outs, `{"text": "a\u0000b"}`, invalid},
		{"POST", outs, `{"text": "hi", "actor": {"display": "\u0000"}}`, invalid},
		{"POST", outs, `{"text": "hi", "conversation": {"source": "slack", "ref": "C\u0000"}}`, invalid},
		{"POST", "/v3/sessions", `{"metadata": {"k": "v\u0000"}}`, invalid},
		{"POST", "/v3/sessions", `{"metadata": {"k\u0000": "v"}}`, invalid},
		{"POST", "/v3/sessions/" + ses + "/conversations", `{"source": "slack", "ref": "C\u0000"}`, invalid},
		{"POST", "/v3/webhooks", `{"url": "https://example.com/h", "description": "d\u0000"}`, invalid},
		{"POST", "/v3/webhooks", `{"url": "https://example.com/h", "metadata": {"k": "\u0000"}}`, invalid},
		{"POST", "/v3/webhooks", `{"url": "https://example.com/h", "sessions": ["s\u0000"]}`, invalid},
		{"PATCH", "/v3/webhooks/" + wh.ID, `{"description": "\u0000"}`, invalid},
	}
	for _, c := range cases {
		w := h.do(req{method: c.method, path: c.path, token: adminSecret, body: c.body})
		if w.Code != c.status {
			t.Errorf("%s %s %s: %d %s, want %d", c.method, c.path, c.body, w.Code, strings.TrimSpace(w.Body.String()), c.status)
			continue
		}
		want := map[int]string{notFound: codeNotFound, invalid: codeInvalidRequest}[c.status]
		if code := errorCode(t, w.Body.Bytes()); code != want {
			t.Errorf("%s %s %s: code %q, want %q", c.method, c.path, c.body, code, want)
		}
		if testing.Verbose() {
			t.Logf("%s %s: %d %s", c.method, c.path, w.Code, strings.TrimSpace(w.Body.String()))
		}
	}

	// Nothing was stored: the session's log is empty, no other session, no
	// other webhook, no binding.
	if recs, err := st.Read(t.Context(), ses, 0, 10); err != nil || len(recs) != 0 {
		t.Errorf("log of %s: %d records, %v; want none", ses, len(recs), err)
	}
	if list, err := st.ListSessions(t.Context(), "", 10); err != nil || len(list) != 2 {
		t.Errorf("ListSessions: %d sessions, %v; want 2 (the agent's and %s)", len(list), err, ses)
	}
	if list, err := st.ListWebhooks(t.Context()); err != nil || len(list) != 1 {
		t.Errorf("ListWebhooks: %d, %v; want 1", len(list), err)
	}
	if bs, err := st.SessionBindings(t.Context(), ses); err != nil || len(bs) != 0 {
		t.Errorf("SessionBindings(%s): %v, %v; want none", ses, bs, err)
	}
}
