package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
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

	// Binding by hand is an admin's act: it lets the session's agent post
	// into the conversation.
	body := `{"source":"email","ref":"<root@example.com>"}`
	if w := h.do(req{method: "POST", path: path, token: steerSecret, body: body}); w.Code != http.StatusForbidden {
		t.Fatalf("a steer token binding conversations: %d, want 403", w.Code)
	}
	// Bind an email thread by hand: 201, then 200 when repeated.
	w = h.do(req{method: "POST", path: path, token: adminSecret, body: body})
	if w.Code != http.StatusCreated {
		t.Fatalf("bind: %d %s", w.Code, w.Body)
	}
	var b store.Binding
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || b.ID == "" || b.SessionID != agentSession ||
		b.Conversation != (envelope.Conversation{Source: "email", Ref: "<root@example.com>"}) {
		t.Fatalf("binding %+v (%v)", b, err)
	}
	if w := h.do(req{method: "POST", path: path, token: adminSecret, body: body}); w.Code != http.StatusOK {
		t.Fatalf("bind again: %d %s", w.Code, w.Body)
	}
	// Another session cannot take it.
	other := h.newSession()
	if w := h.do(req{method: "POST", path: "/v3/sessions/" + other + "/conversations", token: adminSecret, body: body}); w.Code != http.StatusConflict {
		t.Fatalf("bind to another session: %d %s, want 409", w.Code, w.Body)
	}
	for _, bad := range []string{`{"source":"email"}`, `{"source":"*","ref":"x"}`, `{"source":"ref:pr","ref":"acme/w#1"}`, `{"source":"upstream","ref":"u1"}`, `{"source":"email","ref":"x","extra":1}`, `not json`} {
		if w := h.do(req{method: "POST", path: path, token: adminSecret, body: bad}); w.Code != http.StatusBadRequest {
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

// TestSessionDeliveriesAndAttempts: the deliveries of one session, or of
// one conversation found by its binding, and a delivery's recorded
// attempts, newest first.
func TestSessionDeliveriesAndAttempts(t *testing.T) {
	h, _ := routerHarness(t)
	ctx := context.Background()
	thread := envelope.Conversation{Source: "slack", Ref: "T/C/9.9"}
	other := envelope.Conversation{Source: "github", Ref: "acme/app#7"}
	if _, _, err := h.store.Bind(ctx, store.Binding{SessionID: agentSession, Conversation: thread}, nil); err != nil {
		t.Fatal(err)
	}
	res, err := h.store.Append(ctx, store.AppendRequest{SessionID: agentSession, Direction: store.Outbound, Envelope: envelope.Envelope{
		ID: "agent:hello", Source: "agent", Kind: envelope.KindMessage, Actor: envelope.Actor{ID: "agent:a", Type: envelope.Agent},
		Text: "hello", TS: t0,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.store.Enqueue(ctx, []store.Delivery{
		{SessionID: agentSession, Seq: res.Record.Seq, To: thread, NextAttempt: t0},
		{SessionID: agentSession, Seq: res.Record.Seq, To: other, NextAttempt: t0},
	}); err != nil {
		t.Fatal(err)
	}
	ds, err := h.store.Claim(ctx, "test", 10, t0.Add(time.Minute), t0.Add(2*time.Minute))
	if err != nil || len(ds) != 2 {
		t.Fatalf("claim: %v %v", ds, err)
	}
	var failed store.Delivery
	for _, d := range ds {
		if d.To == thread {
			failed = d
		}
	}
	if err := h.store.Settle(ctx, failed.ID, "test", store.Settlement{Status: store.Pending, Error: "slack: ratelimited",
		NextAttempt: t0.Add(time.Hour), Attempt: &store.Attempt{DeliveryID: failed.ID, SessionID: agentSession,
			Seq: failed.Seq, Attempt: 1, Latency: 30 * time.Millisecond, Error: "slack: ratelimited"}}); err != nil {
		t.Fatal(err)
	}

	list := func(query string) []store.Delivery {
		t.Helper()
		w := h.do(req{method: "GET", path: "/v3/deliveries?" + query, token: adminSecret})
		var page struct {
			Deliveries []store.Delivery `json:"deliveries"`
		}
		if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &page) != nil {
			t.Fatalf("GET /v3/deliveries?%s: %d %s", query, w.Code, w.Body)
		}
		return page.Deliveries
	}
	if got := list("session=" + agentSession); len(got) != 2 {
		t.Errorf("the session's deliveries: %+v, want both", got)
	}
	if got := list("source=slack&ref=" + url.QueryEscape(thread.Ref)); len(got) != 1 || got[0].ID != failed.ID {
		t.Errorf("the thread's deliveries, found by its binding: %+v, want the failed one", got)
	}
	if got := list("session=" + agentSession + "&source=github&ref=" + url.QueryEscape(other.Ref) + "&status=pending"); len(got) != 1 || got[0].To != other {
		t.Errorf("pending deliveries to the issue: %+v, want its one", got)
	}
	if got := list("session=" + agentSession + "&status=delivered"); len(got) != 0 {
		t.Errorf("delivered deliveries of the session: %+v, want none", got)
	}
	for _, tc := range []struct {
		query string
		code  int
	}{
		{"source=slack", http.StatusBadRequest},
		{"source=webhook&ref=wh_1%2F" + agentSession, http.StatusBadRequest},
		{"source=slack&ref=T%2Fnowhere", http.StatusNotFound},
		{"session=" + agentSession + "&status=lost", http.StatusBadRequest},
	} {
		if w := h.do(req{method: "GET", path: "/v3/deliveries?" + tc.query, token: adminSecret}); w.Code != tc.code {
			t.Errorf("GET /v3/deliveries?%s: %d %s, want %d", tc.query, w.Code, w.Body, tc.code)
		}
	}

	w := h.do(req{method: "GET", path: "/v3/deliveries/" + failed.ID + "/attempts", token: adminSecret})
	var attempts struct {
		Attempts []store.Attempt `json:"attempts"`
	}
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &attempts) != nil || len(attempts.Attempts) != 1 ||
		attempts.Attempts[0].Error != "slack: ratelimited" || attempts.Attempts[0].Latency != 30*time.Millisecond {
		t.Fatalf("attempts: %d %s", w.Code, w.Body)
	}
	if strings.Contains(w.Body.String(), "webhook_id") {
		t.Errorf("a channel's attempt names a webhook: %s", w.Body)
	}
	if w := h.do(req{method: "GET", path: "/v3/deliveries/" + failed.ID + "/attempts", token: steerSecret}); w.Code != http.StatusForbidden {
		t.Errorf("attempts with a steer token: %d, want 403", w.Code)
	}
}

// TestOutputsReachOnlyBoundConversations: an output may name only a
// conversation bound to its own session; an unbound one, or one bound to
// another session, is a 403 that stores nothing.
func TestOutputsReachOnlyBoundConversations(t *testing.T) {
	for _, withRouter := range []bool{true, false} {
		t.Run(map[bool]string{true: "router", false: "no router"}[withRouter], func(t *testing.T) {
			h := newHarness(t, nil)
			if withRouter {
				h, _ = routerHarness(t)
			}
			ctx := context.Background()
			other := h.newSession()
			own := envelope.Conversation{Source: "slack", Ref: "T1/C1/100.1"}
			theirs := envelope.Conversation{Source: "slack", Ref: "T1/C1/200.2"}
			for conv, sess := range map[envelope.Conversation]string{own: agentSession, theirs: other} {
				if _, _, err := h.store.Bind(ctx, store.Binding{SessionID: sess, Conversation: conv}, nil); err != nil {
					t.Fatal(err)
				}
			}
			path := "/v3/sessions/" + agentSession + "/outputs"
			for _, c := range []struct {
				name, token, conv string
				status            int
			}{
				{"unbound channel", agentSecret, `{"source":"slack","ref":"T1/CGENERAL"}`, 403},
				{"another session's thread", agentSecret, `{"source":"slack","ref":"T1/C1/200.2"}`, 403},
				{"an arbitrary GitHub issue", agentSecret, `{"source":"github","ref":"acme/widgets#1"}`, 403},
				{"admin to an unbound channel", adminSecret, `{"source":"slack","ref":"T1/CGENERAL"}`, 403},
				{"a broadcast look-alike", agentSecret, `{"source":"*","ref":"T1/CGENERAL"}`, 403},
				{"its own thread", agentSecret, `{"source":"slack","ref":"T1/C1/100.1"}`, 202},
				{"an API thread of its own log", agentSecret, `{"source":"client","ref":"thread-42"}`, 202},
			} {
				if !withRouter && c.status == 202 && c.conv[11] != 'c' {
					c.status = 403 // without a router nothing is bound
				}
				body := `{"text":"hello","idempotency_key":"` + c.name + `","conversation":` + c.conv + `}`
				before := len(h.records(agentSession))
				w := h.do(req{method: "POST", path: path, token: c.token, body: body})
				if w.Code != c.status {
					t.Errorf("%s: %d, want %d: %s", c.name, w.Code, c.status, w.Body)
					continue
				}
				stored := len(h.records(agentSession)) - before
				if c.status == 403 {
					if !strings.Contains(w.Body.String(), "conversation_not_bound") || !strings.Contains(w.Body.String(), "/conversations") {
						t.Errorf("%s: body %s, want code conversation_not_bound and how to bind", c.name, w.Body)
					}
					if stored != 0 {
						t.Errorf("%s: refused, yet %d records stored", c.name, stored)
					}
				} else if stored != 1 {
					t.Errorf("%s: %d records stored, want 1", c.name, stored)
				}
			}
		})
	}
}
