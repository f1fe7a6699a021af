package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/api"
	"github.com/switchboardhq/switchboard/client"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/sqlite"
)

const token = "client-test-token-0123456789"

func newServer(t *testing.T) (*client.Client, *api.Server) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "sb.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := api.New(api.Options{Store: st, Tokens: []api.StaticToken{{Name: "admin", Secret: token, Scopes: []store.Scope{store.ScopeAdmin}}},
		Webhooks: &api.WebhookOptions{Store: st}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Shutdown(); hs.Close() })
	return client.New(hs.URL, token, hs.Client()), srv
}

func TestSteerReplayAndErrors(t *testing.T) {
	c, _ := newServer(t)
	ctx := context.Background()
	s, err := c.CreateSession(ctx, map[string]string{"team": "infra"})
	if err != nil || s.ID == "" || s.Metadata["team"] != "infra" {
		t.Fatalf("create: %+v %v", s, err)
	}
	r, err := c.Steer(ctx, s.ID, client.Message{Text: "hello", IdempotencyKey: "k1"})
	if err != nil || r.Replayed || r.Message.Seq != 1 || r.Message.Envelope.ID != "client:k1" {
		t.Fatalf("steer: %+v %v", r, err)
	}
	r, err = c.Steer(ctx, s.ID, client.Message{Text: "hello", IdempotencyKey: "k1"})
	if err != nil || !r.Replayed || r.Message.Seq != 1 {
		t.Fatalf("replay: %+v %v", r, err)
	}
	_, err = c.Steer(ctx, s.ID, client.Message{Text: "other", IdempotencyKey: "k1"})
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnprocessableEntity || apiErr.Code == "" {
		t.Fatalf("conflict: %v", err)
	}
	// A conversation and an actor go as the Steer API takes them.
	r, err = c.Steer(ctx, s.ID, client.Message{Text: "in a thread", IdempotencyKey: "k2",
		Conversation: &envelope.Conversation{Ref: "thread-42"}, Actor: &struct {
			Display string `json:"display,omitempty"`
		}{"Ada"}})
	if err != nil || r.Message.Envelope.Conversation != (envelope.Conversation{Source: envelope.SourceClient, Ref: "thread-42"}) ||
		r.Message.Envelope.Actor.Display != "Ada" {
		t.Fatalf("steer in a conversation: %+v %v", r, err)
	}
	if _, err := c.Steer(ctx, s.ID, client.Message{Text: "x", State: "idle"}); err == nil || errors.As(err, &apiErr) {
		t.Fatalf("steer with an output's field: %v, want a refusal before the call", err)
	}
	if _, err := c.Steer(ctx, "ses_missing", client.Message{Text: "x"}); !client.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("unknown session: %v", err)
	}
	bad := client.New(c.BaseURL(), "wrong-token", nil)
	if _, err := bad.Session(ctx, s.ID); !client.IsStatus(err, http.StatusUnauthorized) {
		t.Fatalf("bad token: %v", err)
	}
}

func TestStreamFollowsAndResumes(t *testing.T) {
	c, _ := newServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := c.CreateSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := c.Steer(ctx, s.ID, client.Message{Text: fmt.Sprint("before ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan client.Record, 10)
	done := make(chan error, 1)
	// Start after seq 1: records 2 and 3, then whatever comes next.
	go func() {
		done <- c.Stream(ctx, s.ID, 1, func(r client.Record) error { got <- r; return nil })
	}()
	if _, err := c.Output(ctx, s.ID, client.Message{Text: "live"}); err != nil {
		t.Fatal(err)
	}
	want := []string{"before 1", "before 2", "live"}
	for i, w := range want {
		select {
		case r := <-got:
			if r.Envelope.Text != w || r.Seq != int64(i+2) {
				t.Fatalf("record %d: seq %d %q, want seq %d %q", i, r.Seq, r.Envelope.Text, i+2, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("timed out waiting for %q", w)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Stream returned %v after its context ended, want nil", err)
	}
}

func TestStreamStopsOnCallbackError(t *testing.T) {
	c, _ := newServer(t)
	ctx := context.Background()
	s, _ := c.CreateSession(ctx, nil)
	if _, err := c.Steer(ctx, s.ID, client.Message{Text: "x"}); err != nil {
		t.Fatal(err)
	}
	stop := errors.New("enough")
	if err := c.Stream(ctx, s.ID, 0, func(client.Record) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("Stream = %v, want the callback's error", err)
	}
	if err := c.Stream(ctx, "ses_missing", 0, func(client.Record) error { return nil }); !client.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("Stream on an unknown session = %v, want 404", err)
	}
}

func TestCreateWebhook(t *testing.T) {
	c, _ := newServer(t)
	ctx := context.Background()
	w, err := c.CreateWebhook(ctx, client.NewWebhook{URL: "https://example.com/hook", EventTypes: []string{"message"},
		Sessions: []string{"ses_a"}, Description: "test"})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if !strings.HasPrefix(w.ID, "wh") || w.URL != "https://example.com/hook" || !strings.HasPrefix(w.Secret, "whsec_") ||
		!slices.Equal(w.EventTypes, []string{"message"}) || !slices.Equal(w.Sessions, []string{"ses_a"}) || w.Description != "test" {
		t.Errorf("created %+v", w)
	}
	if _, err := c.CreateWebhook(ctx, client.NewWebhook{URL: "ftp://example.com"}); !client.IsStatus(err, http.StatusBadRequest) {
		t.Errorf("bad URL: %v", err)
	}
}

func TestErrorRetryAfter(t *testing.T) {
	var header string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if header != "" {
			w.Header().Set("Retry-After", header)
		}
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer hs.Close()
	c := client.New(hs.URL, token, hs.Client())
	for _, tc := range []struct {
		header   string
		min, max time.Duration
	}{
		{"", 0, 0},
		{"junk", 0, 0},
		{"3", 3 * time.Second, 3 * time.Second},
		{time.Now().Add(time.Hour).UTC().Format(http.TimeFormat), 58 * time.Minute, time.Hour},
		{time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat), 0, 0},
	} {
		header = tc.header
		_, err := c.Session(context.Background(), "ses_x")
		var e *client.Error
		if !errors.As(err, &e) || e.Status != http.StatusTooManyRequests {
			t.Fatalf("Retry-After %q: err %v", tc.header, err)
		}
		if e.RetryAfter < tc.min || e.RetryAfter > tc.max {
			t.Errorf("Retry-After %q: RetryAfter %v, want %v to %v", tc.header, e.RetryAfter, tc.min, tc.max)
		}
	}
}

// catchUpsFake answers catch-ups as the gateway's runner would.
type catchUpsFake struct{}

func (catchUpsFake) CatchUp(_ context.Context, channel string) (adapters.CatchUpReport, error) {
	switch channel {
	case "slack":
		return adapters.CatchUpReport{Since: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC), Scopes: 4, Found: 9, New: 3}, nil
	case "github":
		return adapters.CatchUpReport{Scopes: 2, Found: 1, New: 1}, errors.New("github: catch-up: comments of o/r: status 500")
	case "jira":
		return adapters.CatchUpReport{}, fmt.Errorf("x: %w", api.ErrCatchUpRunning)
	}
	return adapters.CatchUpReport{}, fmt.Errorf("x: %w", api.ErrNoCatchUp)
}

func (catchUpsFake) CatchUpStatus() map[string]api.CatchUpStatus { return nil }

func TestCatchUp(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "sb.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := api.New(api.Options{Store: st, Tokens: []api.StaticToken{{Name: "admin", Secret: token, Scopes: []store.Scope{store.ScopeAdmin}}},
		CatchUps: catchUpsFake{}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Shutdown(); hs.Close() })
	c := client.New(hs.URL, token, hs.Client())

	rep, err := c.CatchUp(t.Context(), "slack")
	if err != nil || rep.Channel != "slack" || rep.Scopes != 4 || rep.Found != 9 || rep.New != 3 || rep.Since.IsZero() {
		t.Errorf("slack: %+v, %v", rep, err)
	}
	rep, err = c.CatchUp(t.Context(), "github")
	if !client.IsStatus(err, http.StatusBadGateway) || rep.New != 1 || !strings.Contains(rep.Error, "status 500") {
		t.Errorf("a catch-up that stopped early: %+v, %v", rep, err)
	}
	if _, err := c.CatchUp(t.Context(), "jira"); !client.IsStatus(err, http.StatusConflict) {
		t.Errorf("a catch-up already running: %v", err)
	}
	if _, err := c.CatchUp(t.Context(), "email"); !client.IsStatus(err, http.StatusNotFound) {
		t.Errorf("a channel without catch-up: %v", err)
	}
}

// TestAnswers covers what a client sends and how it reads answers that are
// not the gateway's own: the Accept header, the answer's header on an
// Error, error bodies of other shapes, and successes it cannot decode.
func TestAnswers(t *testing.T) {
	var answer func(w http.ResponseWriter)
	var accept string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		accept = r.Header.Get("Accept")
		answer(w)
	}))
	defer hs.Close()
	c := client.New(hs.URL+"/", token, hs.Client(), client.MaxResponse(64))
	ctx := context.Background()

	answer = func(w http.ResponseWriter) {
		w.Header().Set("X-Upstream", "a")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"message":"no code"}}`)
	}
	_, err := c.Session(ctx, "ses_1")
	var e *client.Error
	if !errors.As(err, &e) || e.Code != "Bad Request" || e.Message != "no code" || e.Header.Get("X-Upstream") != "a" {
		t.Errorf("an error with a message only: %#v", err)
	}
	if accept != "application/json" {
		t.Errorf("Accept %q", accept)
	}

	answer = func(w http.ResponseWriter) {
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, strings.Repeat("x", 100))
	}
	if _, err := c.Session(ctx, "ses_1"); !errors.As(err, &e) || e.Status != http.StatusBadGateway || e.Message != strings.Repeat("x", 64) {
		t.Errorf("a long error answer: %v, want its first 64 bytes", err)
	}

	for name, body := range map[string]string{"empty": "", "not JSON": "accepted", "too long": `{"id":"` + strings.Repeat("s", 64) + `"}`} {
		answer = func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprint(w, body)
		}
		_, err := c.Steer(ctx, "ses_1", client.Message{Text: "x"})
		var de *client.DecodeError
		if !errors.As(err, &de) || de.Status != http.StatusAccepted || de.Path != "/v3/sessions/ses_1/messages" {
			t.Errorf("%s success answer: %v, want a *DecodeError", name, err)
		}
	}
	answer = func(w http.ResponseWriter) { fmt.Fprint(w, `{"id":"ses_1"}`) }
	if s, err := c.Session(ctx, "ses_1"); err != nil || s.ID != "ses_1" {
		t.Errorf("a short answer: %+v, %v", s, err)
	}
}
