package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// routerHarness is a harness whose server serves the router's endpoints.
func routerHarness(t *testing.T) (*harness, *int) {
	retried := new(int)
	h := newHarness(t, func(o *Options) {
		o.Bindings, o.Outbox = o.Store, o.Store
		o.OnRetry = func() { *retried++ }
	})
	return h, retried
}

func TestConversations(t *testing.T) {
	h, _ := routerHarness(t)
	path := "/v3/sessions/" + agentSession + "/conversations"

	w := h.do(req{method: "GET", path: path, token: steerSecret})
	if w.Code != http.StatusOK || strings.TrimSpace(w.Body.String()) != `{"conversations":[]}` {
		t.Fatalf("empty list: %d %s", w.Code, w.Body)
	}
	if w := h.do(req{method: "GET", path: "/v3/sessions/ses_missing/conversations", token: steerSecret}); w.Code != http.StatusNotFound {
		t.Fatalf("unknown session: %d", w.Code)
	}

	// Bind an email thread by hand: 201, then 200 when repeated.
	body := `{"source":"email","ref":"<root@example.com>"}`
	w = h.do(req{method: "POST", path: path, token: steerSecret, body: body})
	if w.Code != http.StatusCreated {
		t.Fatalf("bind: %d %s", w.Code, w.Body)
	}
	var b store.Binding
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || b.ID == "" || b.SessionID != agentSession ||
		b.Conversation != (envelope.Conversation{Source: "email", Ref: "<root@example.com>"}) {
		t.Fatalf("binding %+v (%v)", b, err)
	}
	if w := h.do(req{method: "POST", path: path, token: steerSecret, body: body}); w.Code != http.StatusOK {
		t.Fatalf("bind again: %d %s", w.Code, w.Body)
	}
	// Another session cannot take it.
	other := h.newSession()
	if w := h.do(req{method: "POST", path: "/v3/sessions/" + other + "/conversations", token: steerSecret, body: body}); w.Code != http.StatusConflict {
		t.Fatalf("bind to another session: %d %s, want 409", w.Code, w.Body)
	}
	for _, bad := range []string{`{"source":"email"}`, `{"source":"*","ref":"x"}`, `{"source":"ref:pr","ref":"acme/w#1"}`, `{"source":"upstream","ref":"u1"}`, `{"source":"email","ref":"x","extra":1}`, `not json`} {
		if w := h.do(req{method: "POST", path: path, token: steerSecret, body: bad}); w.Code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", bad, w.Code)
		}
	}
	w = h.do(req{method: "GET", path: path, token: agentSecret})
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "root@example.com") {
		t.Fatalf("list as the session's agent: %d %s", w.Code, w.Body)
	}
	if w := h.do(req{method: "POST", path: path, token: agentSecret, body: body}); w.Code != http.StatusForbidden {
		t.Fatalf("an agent token binding conversations: %d, want 403", w.Code)
	}

	// Resume a binding the loop breaker paused.
	if _, err := h.store.PauseBinding(context.Background(), b.ID, time.Now().Add(time.Hour), "too many outputs"); err != nil {
		t.Fatal(err)
	}
	w = h.do(req{method: "POST", path: path + "/" + b.ID + "/resume", token: steerSecret})
	if w.Code != http.StatusOK {
		t.Fatalf("resume: %d %s", w.Code, w.Body)
	}
	got, err := h.store.BindingFor(context.Background(), b.Conversation)
	if err != nil || got.Paused(time.Now()) {
		t.Fatalf("after resume: %+v %v", got, err)
	}
	if w := h.do(req{method: "POST", path: path + "/cnv_missing/resume", token: steerSecret}); w.Code != http.StatusNotFound {
		t.Fatalf("resume unknown: %d", w.Code)
	}
	if w := h.do(req{method: "POST", path: "/v3/sessions/" + other + "/conversations/" + b.ID + "/resume", token: steerSecret}); w.Code != http.StatusNotFound {
		t.Fatalf("resume another session's binding: %d, want 404", w.Code)
	}
}

func TestDeliveries(t *testing.T) {
	h, retried := routerHarness(t)
	ctx := context.Background()
	to := envelope.Conversation{Source: "slack", Ref: "T/C/1.2"}
	// Three outputs with one delivery each; the first goes dead.
	for i, text := range []string{"one", "two", "three"} {
		res, err := h.store.Append(ctx, store.AppendRequest{SessionID: agentSession, Direction: store.Outbound, Envelope: envelope.Envelope{
			ID: "agent:" + text, Source: "agent", Kind: envelope.KindMessage, Actor: envelope.Actor{ID: "agent:a", Type: envelope.Agent},
			Text: text, TS: t0.Add(time.Duration(i) * time.Second),
		}})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.store.Enqueue(ctx, []store.Delivery{{SessionID: agentSession, Seq: res.Record.Seq, To: to, NextAttempt: t0}}); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := h.store.Claim(ctx, "test", 10, t0.Add(time.Minute), t0.Add(2*time.Minute))
	if err != nil || len(ds) != 1 {
		t.Fatalf("claim: %v %v", ds, err)
	}
	if err := h.store.Settle(ctx, ds[0].ID, "test", store.Settlement{Status: store.Dead, Error: "channel_not_found"}); err != nil {
		t.Fatal(err)
	}

	w := h.do(req{method: "GET", path: "/v3/deliveries?status=dead", token: adminSecret})
	var page struct {
		Deliveries []store.Delivery `json:"deliveries"`
		NextAfter  string           `json:"next_after"`
	}
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &page) != nil || len(page.Deliveries) != 1 ||
		page.Deliveries[0].LastError != "channel_not_found" {
		t.Fatalf("dead deliveries: %d %s", w.Code, w.Body)
	}
	dead := page.Deliveries[0].ID
	w = h.do(req{method: "GET", path: "/v3/deliveries?limit=2", token: adminSecret})
	page.Deliveries, page.NextAfter = nil, ""
	if json.Unmarshal(w.Body.Bytes(), &page) != nil || len(page.Deliveries) != 2 || page.NextAfter == "" {
		t.Fatalf("first page: %s", w.Body)
	}
	w = h.do(req{method: "GET", path: "/v3/deliveries?limit=2&after=" + page.NextAfter, token: adminSecret})
	page.Deliveries, page.NextAfter = nil, ""
	if json.Unmarshal(w.Body.Bytes(), &page) != nil || len(page.Deliveries) != 1 || page.NextAfter != "" {
		t.Fatalf("second page: %s", w.Body)
	}
	if w := h.do(req{method: "GET", path: "/v3/deliveries?status=lost", token: adminSecret}); w.Code != http.StatusBadRequest {
		t.Fatalf("bad status: %d", w.Code)
	}
	if w := h.do(req{method: "GET", path: "/v3/deliveries", token: steerSecret}); w.Code != http.StatusForbidden {
		t.Fatalf("steer token: %d, want 403 (the outbox is admin's)", w.Code)
	}

	w = h.do(req{method: "POST", path: "/v3/deliveries/" + dead + "/retry", token: adminSecret})
	var d store.Delivery
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &d) != nil || d.Status != store.Pending {
		t.Fatalf("retry: %d %s", w.Code, w.Body)
	}
	if *retried != 1 {
		t.Errorf("OnRetry called %d times, want 1 (it wakes the delivery workers)", *retried)
	}
	if w := h.do(req{method: "POST", path: "/v3/deliveries/dlv_missing/retry", token: adminSecret}); w.Code != http.StatusNotFound {
		t.Fatalf("retry unknown: %d", w.Code)
	}
}
