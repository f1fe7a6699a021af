package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/store"
)

func (s suite) runWebhooks(t *testing.T) {
	t.Run("CreateGetList", s.testWebhookCreateGetList)
	t.Run("UpdateKeepsSecretsAndHealth", s.testWebhookUpdate)
	t.Run("RotateSecret", s.testWebhookRotate)
	t.Run("Health", s.testWebhookHealth)
	t.Run("Delete", s.testWebhookDelete)
	t.Run("Attempts", s.testWebhookAttempts)
	t.Run("AttemptsWithSettlements", s.testWebhookAttemptsWithSettlements)
	t.Run("Reopen", s.testWebhookReopen)
}

const (
	testSecret1 = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	testSecret2 = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
)

func newWebhook(id string) store.Webhook {
	return store.Webhook{
		ID: id, URL: "https://example.com/hooks/" + id, Description: "test " + id,
		EventTypes: []string{"message"}, Sessions: []string{"ses-a"},
		Metadata: map[string]string{"team": "core"}, Secret: testSecret1,
	}
}

func mustCreateWebhook(t *testing.T, st store.Store, w store.Webhook) store.Webhook {
	t.Helper()
	out, err := st.CreateWebhook(t.Context(), w)
	if err != nil {
		t.Fatalf("CreateWebhook(%s): %v", w.ID, err)
	}
	return out
}

func (s suite) testWebhookCreateGetList(t *testing.T) {
	st, _ := s.fresh(t)
	ctx := t.Context()
	if ws, err := st.ListWebhooks(ctx); err != nil || len(ws) != 0 {
		t.Fatalf("ListWebhooks on an empty store = %v, %v", ws, err)
	}
	created := mustCreateWebhook(t, st, newWebhook("wh_b"))
	if created.Origin != "api" || created.CreatedAt.IsZero() || created.Secret != testSecret1 || created.Disabled {
		t.Errorf("created = %+v", created)
	}
	bare := store.Webhook{ID: "wh_a", URL: "https://example.com/a", Secret: testSecret2, Origin: "config"}
	mustCreateWebhook(t, st, bare)
	if _, err := st.CreateWebhook(ctx, newWebhook("wh_b")); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateWebhook of a taken id: %v, want ErrConflict", err)
	}
	got, err := st.Webhook(ctx, "wh_b")
	if err != nil {
		t.Fatal(err)
	}
	want := newWebhook("wh_b")
	if got.URL != want.URL || got.Description != want.Description || !slices.Equal(got.EventTypes, want.EventTypes) ||
		!slices.Equal(got.Sessions, want.Sessions) || got.Metadata["team"] != "core" || got.Secret != testSecret1 {
		t.Errorf("Webhook = %+v, want the fields of %+v", got, want)
	}
	a, err := st.Webhook(ctx, "wh_a")
	if err != nil {
		t.Fatal(err)
	}
	if a.EventTypes == nil || len(a.EventTypes) != 0 || a.Sessions == nil || a.Metadata == nil || a.Origin != "config" {
		t.Errorf("empty filters should come back empty, not nil: %+v", a)
	}
	if _, err := st.Webhook(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Webhook(unknown): %v, want ErrNotFound", err)
	}
	ws, err := st.ListWebhooks(ctx)
	if err != nil || len(ws) != 2 || ws[0].ID != "wh_a" || ws[1].ID != "wh_b" {
		t.Fatalf("ListWebhooks = %v, %v; want wh_a, wh_b", ws, err)
	}
}

func (s suite) testWebhookUpdate(t *testing.T) {
	st, _ := s.fresh(t)
	ctx := t.Context()
	mustCreateWebhook(t, st, newWebhook("wh_1"))
	if err := st.SetWebhookHealth(ctx, "wh_1", time.Time{}, true, "gone"); err != nil {
		t.Fatal(err)
	}
	up, err := st.UpdateWebhook(ctx, store.Webhook{ID: "wh_1", URL: "https://example.org/new", EventTypes: []string{"message", "delivery.failed"}})
	if err != nil {
		t.Fatal(err)
	}
	if up.URL != "https://example.org/new" || len(up.EventTypes) != 2 || len(up.Sessions) != 0 || up.Description != "" {
		t.Errorf("updated = %+v", up)
	}
	if up.Secret != testSecret1 || !up.Disabled || up.DisabledReason != "gone" {
		t.Errorf("UpdateWebhook changed secrets or health: %+v", up)
	}
	if _, err := st.UpdateWebhook(ctx, store.Webhook{ID: "nope", URL: "https://x"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateWebhook(unknown): %v, want ErrNotFound", err)
	}
}

func (s suite) testWebhookRotate(t *testing.T) {
	st, _ := s.fresh(t)
	ctx := t.Context()
	mustCreateWebhook(t, st, newWebhook("wh_1"))
	now := time.Now()
	grace := now.Add(time.Hour).Truncate(time.Microsecond)
	w, err := st.RotateWebhookSecret(ctx, "wh_1", testSecret2, grace)
	if err != nil {
		t.Fatal(err)
	}
	if w.Secret != testSecret2 || w.PrevSecret != testSecret1 || !w.PrevExpires.Equal(grace) {
		t.Errorf("after rotation: secret %q prev %q until %v", w.Secret, w.PrevSecret, w.PrevExpires)
	}
	if got := w.Secrets(now); !slices.Equal(got, []string{testSecret2, testSecret1}) {
		t.Errorf("Secrets during grace = %v", got)
	}
	if got := w.Secrets(grace.Add(time.Second)); !slices.Equal(got, []string{testSecret2}) {
		t.Errorf("Secrets after grace = %v", got)
	}
	w, err = st.RotateWebhookSecret(ctx, "wh_1", testSecret1, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if w.Secret != testSecret1 || w.PrevSecret != "" {
		t.Errorf("rotation without grace kept the old secret: %+v", w)
	}
	if _, err := st.RotateWebhookSecret(ctx, "nope", testSecret1, grace); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RotateWebhookSecret(unknown): %v, want ErrNotFound", err)
	}
}

func (s suite) testWebhookHealth(t *testing.T) {
	st, _ := s.fresh(t)
	ctx := t.Context()
	mustCreateWebhook(t, st, newWebhook("wh_1"))
	since := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	if err := st.SetWebhookHealth(ctx, "wh_1", since, false, ""); err != nil {
		t.Fatal(err)
	}
	w, _ := st.Webhook(ctx, "wh_1")
	if !w.FailingSince.Equal(since) || w.Disabled {
		t.Errorf("health = failing since %v, disabled %v", w.FailingSince, w.Disabled)
	}
	if err := st.SetWebhookHealth(ctx, "wh_1", time.Time{}, true, "410 Gone"); err != nil {
		t.Fatal(err)
	}
	w, _ = st.Webhook(ctx, "wh_1")
	if !w.FailingSince.IsZero() || !w.Disabled || w.DisabledReason != "410 Gone" {
		t.Errorf("health = %+v", w)
	}
	if err := st.SetWebhookHealth(ctx, "nope", time.Time{}, true, ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetWebhookHealth(unknown): %v, want ErrNotFound", err)
	}
}

func (s suite) testWebhookDelete(t *testing.T) {
	st, _ := s.fresh(t)
	ctx := t.Context()
	mustCreateWebhook(t, st, newWebhook("wh_1"))
	mustCreateWebhook(t, st, newWebhook("wh_2"))
	for _, id := range []string{"wh_1", "wh_2"} {
		if err := st.RecordWebhookAttempt(ctx, store.Attempt{WebhookID: id, DeliveryID: "d", StatusCode: 200}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.DeleteWebhook(ctx, "wh_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Webhook(ctx, "wh_1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Webhook after delete: %v, want ErrNotFound", err)
	}
	if err := st.DeleteWebhook(ctx, "wh_1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteWebhook: %v, want ErrNotFound", err)
	}
	if as, err := st.WebhookAttempts(ctx, "wh_1", "", 10); err != nil || len(as) != 0 {
		t.Errorf("attempts of a deleted webhook = %v, %v", as, err)
	}
	if as, err := st.WebhookAttempts(ctx, "wh_2", "", 10); err != nil || len(as) != 1 {
		t.Errorf("attempts of another webhook = %v, %v; want 1", as, err)
	}
}

func (s suite) testWebhookAttempts(t *testing.T) {
	st, _ := s.fresh(t)
	ctx := t.Context()
	mustCreateWebhook(t, st, newWebhook("wh_1"))
	at := time.Now().Truncate(time.Microsecond).UTC()
	for i := range 5 {
		a := store.Attempt{WebhookID: "wh_1", DeliveryID: fmt.Sprint("dlv-", i), EventID: "evt", SessionID: "ses-a",
			Seq: int64(i + 1), Attempt: 1, StatusCode: 500 + i, Latency: time.Duration(i) * time.Millisecond,
			Response: "oops", Error: "server error", At: at}
		if err := st.RecordWebhookAttempt(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	page, err := st.WebhookAttempts(ctx, "wh_1", "", 3)
	if err != nil || len(page) != 3 {
		t.Fatalf("first page = %v, %v", page, err)
	}
	if page[0].DeliveryID != "dlv-4" || page[2].DeliveryID != "dlv-2" {
		t.Errorf("attempts not newest first: %v", page)
	}
	a := page[0]
	if a.ID == "" || a.StatusCode != 504 || a.Latency != 4*time.Millisecond || a.Response != "oops" ||
		a.Error != "server error" || !a.At.Equal(at) || a.Seq != 5 || a.SessionID != "ses-a" {
		t.Errorf("attempt = %+v", a)
	}
	rest, err := st.WebhookAttempts(ctx, "wh_1", page[2].ID, 10)
	if err != nil || len(rest) != 2 || rest[0].DeliveryID != "dlv-1" || rest[1].DeliveryID != "dlv-0" {
		t.Errorf("second page = %v, %v", rest, err)
	}
	if none, err := st.WebhookAttempts(ctx, "wh_1", "", 0); err != nil || len(none) != 0 {
		t.Errorf("limit 0 = %v, %v", none, err)
	}
}

func (s suite) testWebhookReopen(t *testing.T) {
	st, b := s.fresh(t)
	ctx := t.Context()
	mustCreateWebhook(t, st, newWebhook("wh_1"))
	if err := st.RecordWebhookAttempt(ctx, store.Attempt{WebhookID: "wh_1", DeliveryID: "d", StatusCode: 204}); err != nil {
		t.Fatal(err)
	}
	closeStore(t, st)
	st2 := open(t, b)
	if w, err := st2.Webhook(ctx, "wh_1"); err != nil || w.Secret != testSecret1 {
		t.Errorf("after reopen: %+v, %v", w, err)
	}
	if as, err := st2.WebhookAttempts(ctx, "wh_1", "", 10); err != nil || len(as) != 1 || as[0].StatusCode != 204 {
		t.Errorf("attempts after reopen = %v, %v", as, err)
	}
}

// testWebhookAttemptsWithSettlements settles deliveries with the attempts
// they came from: each is recorded with its settlement, and an attempt
// whose settlement lost its lease is recorded all the same.
func (s suite) testWebhookAttemptsWithSettlements(t *testing.T) {
	st, _ := s.fresh(t)
	ctx := t.Context()
	mustCreateWebhook(t, st, newWebhook("wh_1"))
	a, b := conv("a"), conv("b")
	outputs(t, st, "sess-1", a, b)
	mustEnqueue(t, st, delivery("sess-1", 1, a, t0), delivery("sess-1", 2, b, t0))
	ds := claim(t, st, "p1", 10, t0, at(time.Minute))
	if len(ds) != 2 {
		t.Fatalf("claimed %v, want both", claimedSeqs(ds))
	}
	attempt := func(d store.Delivery, code int) *store.Attempt {
		return &store.Attempt{WebhookID: "wh_1", DeliveryID: d.ID, EventID: "evt-" + d.ID, SessionID: d.SessionID,
			Seq: d.Seq, Attempt: d.Attempts, StatusCode: code}
	}
	mustSettle(t, st, ds[0], "p1", store.Settlement{Status: store.Delivered, Attempt: attempt(ds[0], 204)})
	checkLeaseLost(t, "Settle with an attempt by an owner without the lease",
		st.Settle(ctx, ds[1].ID, "p2", store.Settlement{Status: store.Delivered, Attempt: attempt(ds[1], 200)}))
	got, err := st.WebhookAttempts(ctx, "wh_1", "", 10)
	if err != nil || len(got) != 2 {
		t.Fatalf("attempts = %+v, %v; want the two settled with", got, err)
	}
	byDelivery := map[string]store.Attempt{}
	for _, g := range got {
		byDelivery[g.DeliveryID] = g
	}
	for i, code := range []int{204, 200} {
		g, ok := byDelivery[ds[i].ID]
		if !ok || g.ID == "" || g.StatusCode != code || g.EventID != "evt-"+ds[i].ID || g.At.IsZero() {
			t.Errorf("attempt of %s = %+v, want status %d with an id and a time", ds[i].ID, g, code)
		}
	}
	bad := attempt(ds[1], 500)
	bad.Response = "nul \x00"
	if err := st.Settle(ctx, ds[1].ID, "p1", store.Settlement{Status: store.Delivered, Attempt: bad}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Settle with an unstorable attempt = %v, want ErrInvalid", err)
	}
}
