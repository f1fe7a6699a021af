package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/webhook"
)

type replayCall struct {
	id    string
	since time.Time
}

func newWebhookHarness(t *testing.T) (*harness, *[]replayCall) {
	var calls []replayCall
	h := newHarness(t, func(o *Options) {
		o.Webhooks = &WebhookOptions{Store: o.Store, RotationGrace: time.Hour, Replay: func(_ context.Context, id string, since time.Time) (int, error) {
			if _, err := o.Store.Webhook(context.Background(), id); err != nil {
				return 0, err
			}
			calls = append(calls, replayCall{id, since})
			return 7, nil
		}}
	})
	return h, &calls
}

type webhookResp struct {
	store.Webhook
	Secret          string    `json:"secret"`
	PreviousExpires time.Time `json:"previous_expires"`
}

func decodeWebhook(t *testing.T, body []byte) webhookResp {
	t.Helper()
	var w webhookResp
	if err := json.Unmarshal(body, &w); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return w
}

func TestWebhookEndpoints(t *testing.T) {
	h, calls := newWebhookHarness(t)
	w := h.do(req{method: "POST", path: "/v3/webhooks", token: adminSecret,
		body: `{"url": "https://example.com/hook", "description": "dash", "event_types": ["message"], "metadata": {"team": "core"}}`})
	if w.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	created := decodeWebhook(t, w.Body.Bytes())
	if _, err := webhook.ParseSecret(created.Secret); err != nil || created.ID == "" || created.URL != "https://example.com/hook" {
		t.Fatalf("created = %+v (secret: %v)", created, err)
	}
	stored, _ := h.store.Webhook(context.Background(), created.ID)
	if stored.Secret != created.Secret || stored.Metadata["team"] != "core" {
		t.Errorf("stored = %+v", stored)
	}
	path := "/v3/webhooks/" + created.ID

	for _, r := range []req{{method: "GET", path: path}, {method: "GET", path: "/v3/webhooks"}} {
		r.token = adminSecret
		w = h.do(r)
		if w.Code != http.StatusOK || strings.Contains(w.Body.String(), created.Secret) || !strings.Contains(w.Body.String(), created.ID) {
			t.Errorf("%s %s: %d %s (the secret must not be shown again)", r.method, r.path, w.Code, w.Body)
		}
	}

	w = h.do(req{method: "PATCH", path: path, token: adminSecret, body: `{"description": "new", "disabled": true}`})
	got := decodeWebhook(t, w.Body.Bytes())
	if w.Code != http.StatusOK || got.Description != "new" || !got.Disabled || got.URL != "https://example.com/hook" || len(got.EventTypes) != 1 {
		t.Errorf("patch: %d %s", w.Code, w.Body)
	}
	w = h.do(req{method: "PATCH", path: path, token: adminSecret, body: `{"disabled": false}`})
	if got := decodeWebhook(t, w.Body.Bytes()); got.Disabled {
		t.Errorf("re-enable: %s", w.Body)
	}

	w = h.do(req{method: "POST", path: path + "/rotate-secret", token: adminSecret})
	rot := decodeWebhook(t, w.Body.Bytes())
	if w.Code != http.StatusOK || rot.Secret == created.Secret || !rot.PreviousExpires.Equal(t0.Add(time.Hour)) {
		t.Errorf("rotate: %d %s", w.Code, w.Body)
	}
	stored, _ = h.store.Webhook(context.Background(), created.ID)
	if stored.Secret != rot.Secret || stored.PrevSecret != created.Secret {
		t.Errorf("after rotation the store has %+v", stored)
	}

	for i := range 3 {
		a := store.Attempt{WebhookID: created.ID, DeliveryID: "dlv", StatusCode: 500 + i}
		if err := h.store.RecordWebhookAttempt(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	w = h.do(req{method: "GET", path: path + "/deliveries?limit=2", token: adminSecret})
	var page struct {
		Attempts   []store.Attempt `json:"attempts"`
		NextBefore string          `json:"next_before"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil || len(page.Attempts) != 2 || page.Attempts[0].StatusCode != 502 || page.NextBefore == "" {
		t.Errorf("deliveries: %d %s", w.Code, w.Body)
	}

	w = h.do(req{method: "POST", path: path + "/replay?since=2026-06-18T11:00:00Z", token: adminSecret})
	if w.Code != http.StatusAccepted || !strings.Contains(w.Body.String(), `"enqueued":7`) || len(*calls) != 1 ||
		!(*calls)[0].since.Equal(t0.Add(-time.Hour)) {
		t.Errorf("replay: %d %s, calls %v", w.Code, w.Body, *calls)
	}

	w = h.do(req{method: "DELETE", path: path, token: adminSecret})
	if w.Code != http.StatusNoContent {
		t.Errorf("delete: %d %s", w.Code, w.Body)
	}
	for _, r := range []req{
		{method: "GET", path: path}, {method: "PATCH", path: path, body: `{}`}, {method: "DELETE", path: path},
		{method: "POST", path: path + "/rotate-secret"}, {method: "GET", path: path + "/deliveries"},
		{method: "POST", path: path + "/replay?since=2026-06-18T11:00:00Z"},
	} {
		r.token = adminSecret
		if w := h.do(r); w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "webhook") {
			t.Errorf("%s %s after delete: %d %s", r.method, r.path, w.Code, w.Body)
		}
	}
}

func TestWebhookEndpointsValidateAndAuthorize(t *testing.T) {
	h, _ := newWebhookHarness(t)
	for _, body := range []string{
		`{}`, `{"url": "ftp://example.com"}`, `{"url": "https://"}`, `{"url": "https://u:p@example.com"}`,
		`{"url": "https://example.com", "event_types": ["nope"]}`, `{"url": "https://example.com", "secret": "x"}`,
	} {
		if w := h.do(req{method: "POST", path: "/v3/webhooks", token: adminSecret, body: body}); w.Code != http.StatusBadRequest {
			t.Errorf("create %s: %d, want 400", body, w.Code)
		}
	}
	if w := h.do(req{method: "POST", path: "/v3/webhooks", token: steerSecret, body: `{"url": "https://example.com"}`}); w.Code != http.StatusForbidden {
		t.Errorf("create with a steer token: %d, want 403", w.Code)
	}
	if w := h.do(req{method: "POST", path: "/v3/webhooks/x/replay?since=yesterday", token: adminSecret}); w.Code != http.StatusBadRequest {
		t.Errorf("replay with a bad since: %d, want 400", w.Code)
	}
}
