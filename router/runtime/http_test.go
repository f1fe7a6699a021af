package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// captured is one request the fake upstream received.
type captured struct {
	path   string
	header http.Header
	body   []byte
}

// upstream is a fake agent service speaking the Steer API.
type upstream struct {
	srv *httptest.Server

	mu       sync.Mutex
	creates  []captured
	messages []captured // every attempt, failed ones included
	// answers answer message attempts in turn; when none are left an attempt
	// is accepted with 202.
	answers []func(w http.ResponseWriter, r *http.Request)
	// onMessage, when set, runs after a message was accepted.
	onMessage func(sessionID string, body []byte)
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v3/sessions", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.creates = append(u.creates, captured{r.URL.Path, r.Header.Clone(), body})
		id := fmt.Sprintf("up_%d", len(u.creates))
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":%q,"state":"idle","metadata":{}}`, id)
	})
	mux.HandleFunc("POST /v3/sessions/{id}/messages", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.messages = append(u.messages, captured{r.URL.Path, r.Header.Clone(), body})
		var answer func(w http.ResponseWriter, r *http.Request)
		if len(u.answers) > 0 {
			answer, u.answers = u.answers[0], u.answers[1:]
		}
		onMessage := u.onMessage
		u.mu.Unlock()
		if answer != nil {
			answer(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprint(w, `{"message":{},"session":{"state":"running"}}`)
		if onMessage != nil {
			onMessage(r.PathValue("id"), body)
		}
	})
	u.srv = httptest.NewServer(mux)
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) answer(fs ...func(w http.ResponseWriter, r *http.Request)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.answers = append(u.answers, fs...)
}

func (u *upstream) counts() (creates, messages int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.creates), len(u.messages)
}

func status(code int, header ...string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"error":{"code":"code_%d","message":"answer %d"}}`, code, code)
	}
}

// testHTTP is an HTTP runtime whose sleeps are recorded, not slept.
type testHTTP struct {
	*HTTP
	mu     sync.Mutex
	sleeps []time.Duration
}

func newTestHTTP(t *testing.T, base string, m SessionMap, cfg HTTPConfig) *testHTTP {
	t.Helper()
	cfg.BaseURL, cfg.Token, cfg.Sessions = base, "up-token", m
	h, err := NewHTTP(cfg)
	if err != nil {
		t.Fatalf("NewHTTP: %v", err)
	}
	th := &testHTTP{HTTP: h}
	h.sleep = func(ctx context.Context, d time.Duration) error {
		th.mu.Lock()
		th.sleeps = append(th.sleeps, d)
		th.mu.Unlock()
		return ctx.Err()
	}
	h.jitter = func() float64 { return 0.5 }
	h.now = func() time.Time { return time.Date(2026, 6, 18, 12, 0, 0, 0, time.UTC) }
	return th
}

func (th *testHTTP) slept() []time.Duration {
	th.mu.Lock()
	defer th.mu.Unlock()
	return append([]time.Duration(nil), th.sleeps...)
}

func inbound(seq int64, text string) store.Record {
	return store.Record{
		SessionID: "ses_local",
		Seq:       seq,
		Direction: store.Inbound,
		Envelope: envelope.Envelope{
			ID:           fmt.Sprintf("slack:T1:%d", seq),
			Source:       "slack",
			Kind:         envelope.KindMessage,
			Actor:        envelope.Actor{ID: "slack:U1", Display: "Ada", Type: envelope.Human},
			Conversation: envelope.Conversation{Source: "slack", Ref: "C1:1718000000.1"},
			Text:         text,
			Refs:         envelope.Refs{"pr": "42", "repo": "acme/api"},
			TS:           time.Date(2026, 6, 18, 12, 0, 0, 0, time.UTC),
			Raw:          json.RawMessage(`{"type":"message"}`),
		},
	}
}

func TestHTTPCreatesTheSessionOnceAndForwards(t *testing.T) {
	u := newUpstream(t)
	m := newMemMap()
	h := newTestHTTP(t, u.srv.URL+"/", m, HTTPConfig{})

	out, err := h.Run(context.Background(), Turn{SessionID: "ses_local", Records: []store.Record{inbound(1, "first")}, Token: "local-token"})
	if err != nil {
		t.Fatalf("Run 1: %v", err)
	}
	if out != nil {
		t.Errorf("the http runtime returned outputs %+v", out)
	}
	collected := []store.Record{inbound(2, "second"), inbound(3, "   "), inbound(4, "third")}
	if _, err := h.Run(context.Background(), Turn{SessionID: "ses_local", Records: collected}); err != nil {
		t.Fatalf("Run 2: %v", err)
	}

	creates, messages := u.counts()
	if creates != 1 {
		t.Fatalf("upstream sessions created: %d, want 1", creates)
	}
	if messages != 3 {
		t.Fatalf("messages forwarded: %d, want 3 (the blank one skipped)", messages)
	}
	if up, ok, _ := m.Upstream(context.Background(), "ses_local"); !ok || up != "up_1" {
		t.Errorf("session map: ses_local → %q, %v; want up_1", up, ok)
	}

	var create struct {
		Metadata map[string]string `json:"metadata"`
	}
	if err := json.Unmarshal(u.creates[0].body, &create); err != nil || create.Metadata[MetadataSession] != "ses_local" {
		t.Errorf("create body %s: want metadata naming the local session", u.creates[0].body)
	}
	for i, want := range []string{"first", "second", "third"} {
		req := u.messages[i]
		if req.path != "/v3/sessions/up_1/messages" {
			t.Errorf("message %d path %q", i, req.path)
		}
		if got := req.header.Get("Authorization"); got != "Bearer up-token" {
			t.Errorf("message %d Authorization %q", i, got)
		}
		if got := req.header.Get("Content-Type"); got != "application/json" {
			t.Errorf("message %d Content-Type %q", i, got)
		}
		var body map[string]any
		if err := json.Unmarshal(req.body, &body); err != nil {
			t.Fatalf("message %d body %s: %v", i, req.body, err)
		}
		seq := []int{1, 2, 4}[i]
		wantBody := map[string]any{
			"text":            want,
			"idempotency_key": fmt.Sprintf("slack:T1:%d", seq),
			"refs":            map[string]any{"pr": "42", "repo": "acme/api"},
			"conversation":    map[string]any{"ref": "slack/C1:1718000000.1"},
			"actor":           map[string]any{"display": "Ada"},
		}
		if !reflect.DeepEqual(body, wantBody) {
			t.Errorf("message %d body\n%v\nwant\n%v", i, body, wantBody)
		}
	}
}

func TestHTTPUsesTheMappedSession(t *testing.T) {
	u := newUpstream(t)
	m := newMemMap()
	_ = m.SetUpstream(context.Background(), "ses_local", "up_existing")
	h := newTestHTTP(t, u.srv.URL, m, HTTPConfig{})
	if _, err := h.Run(context.Background(), Turn{SessionID: "ses_local", Records: []store.Record{inbound(1, "hi")}}); err != nil {
		t.Fatal(err)
	}
	if creates, _ := u.counts(); creates != 0 {
		t.Errorf("created %d sessions for a mapped session", creates)
	}
	if u.messages[0].path != "/v3/sessions/up_existing/messages" {
		t.Errorf("path %q", u.messages[0].path)
	}
}

func TestHTTPRetries5xx(t *testing.T) {
	u := newUpstream(t)
	u.answer(status(502), status(500), status(409))
	h := newTestHTTP(t, u.srv.URL, newMemMap(), HTTPConfig{})
	if _, err := h.Run(context.Background(), Turn{SessionID: "ses_local", Records: []store.Record{inbound(1, "hi")}}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, messages := u.counts(); messages != 4 {
		t.Errorf("attempts = %d, want 4", messages)
	}
	// Exponential from 250ms with the jitter at its midpoint: ¾ of each step.
	want := []time.Duration{187500 * time.Microsecond, 375 * time.Millisecond, 750 * time.Millisecond}
	if got := h.slept(); !reflect.DeepEqual(got, want) {
		t.Errorf("waits %v, want %v", got, want)
	}
	// Every attempt carried the same idempotency key.
	for _, m := range u.messages {
		if !strings.Contains(string(m.body), `"idempotency_key":"slack:T1:1"`) {
			t.Errorf("attempt body %s", m.body)
		}
	}
}

func TestHTTPBackoffIsCapped(t *testing.T) {
	h := newTestHTTP(t, "http://127.0.0.1:1", newMemMap(), HTTPConfig{MaxBackoff: time.Second})
	for attempt, want := range map[int]time.Duration{1: 187500 * time.Microsecond, 3: 750 * time.Millisecond, 4: 750 * time.Millisecond, 100: 750 * time.Millisecond} {
		if got := h.backoff(attempt); got != want {
			t.Errorf("backoff(%d) = %s, want %s", attempt, got, want)
		}
	}
}

func TestHTTPHonoursRetryAfter(t *testing.T) {
	u := newUpstream(t)
	now := time.Date(2026, 6, 18, 12, 0, 0, 0, time.UTC)
	u.answer(
		status(429, "Retry-After", "7"),
		status(503, "Retry-After", now.Add(90*time.Second).Format(http.TimeFormat)),
		status(429), // no Retry-After: the backoff
	)
	h := newTestHTTP(t, u.srv.URL, newMemMap(), HTTPConfig{MaxRetryAfter: 2 * time.Minute})
	if _, err := h.Run(context.Background(), Turn{SessionID: "ses_local", Records: []store.Record{inbound(1, "hi")}}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := []time.Duration{7 * time.Second, 90 * time.Second, 750 * time.Millisecond}
	if got := h.slept(); !reflect.DeepEqual(got, want) {
		t.Errorf("waits %v, want %v", got, want)
	}
}

func TestHTTPRetryAfterTooLongFails(t *testing.T) {
	u := newUpstream(t)
	u.answer(status(429, "Retry-After", "3600"))
	h := newTestHTTP(t, u.srv.URL, newMemMap(), HTTPConfig{})
	_, err := h.Run(context.Background(), Turn{SessionID: "ses_local", Records: []store.Record{inbound(1, "hi")}})
	if err == nil || !strings.Contains(err.Error(), "Retry-After 1h0m0s") {
		t.Fatalf("Run: err = %v, want a refusal to wait an hour", err)
	}
	if _, messages := u.counts(); messages != 1 || len(h.slept()) != 0 {
		t.Errorf("attempts %d, waits %v; want 1 attempt and no wait", messages, h.slept())
	}
}

func TestHTTPPermanentErrors(t *testing.T) {
	for _, code := range []int{400, 401, 403, 404, 422} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			u := newUpstream(t)
			u.answer(status(code))
			h := newTestHTTP(t, u.srv.URL, newMemMap(), HTTPConfig{})
			_, err := h.Run(context.Background(), Turn{SessionID: "ses_local", Records: []store.Record{inbound(1, "hi"), inbound(2, "never sent")}})
			var ue *UpstreamError
			if !errors.As(err, &ue) {
				t.Fatalf("Run: err = %v, want *UpstreamError", err)
			}
			if ue.Status != code || ue.Code != fmt.Sprintf("code_%d", code) || ue.Temporary() {
				t.Errorf("UpstreamError = %+v", ue)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("answer %d", code)) || !strings.Contains(err.Error(), "slack:T1:1") {
				t.Errorf("error %q lacks the upstream's message or the envelope id", err)
			}
			if _, messages := u.counts(); messages != 1 || len(h.slept()) != 0 {
				t.Errorf("attempts %d, waits %v; want 1 attempt, no retry, nothing after the failure", messages, h.slept())
			}
		})
	}
}

func TestHTTPGivesUp(t *testing.T) {
	u := newUpstream(t)
	u.answer(status(503), status(503), status(503), status(503))
	h := newTestHTTP(t, u.srv.URL, newMemMap(), HTTPConfig{MaxAttempts: 3})
	_, err := h.Run(context.Background(), Turn{SessionID: "ses_local", Records: []store.Record{inbound(1, "hi")}})
	var ue *UpstreamError
	if !errors.As(err, &ue) || !ue.Temporary() || !strings.Contains(err.Error(), "giving up after 3 attempts") {
		t.Fatalf("Run: err = %v, want a temporary UpstreamError after 3 attempts", err)
	}
	if _, messages := u.counts(); messages != 3 {
		t.Errorf("attempts = %d, want 3", messages)
	}
}

func TestHTTPRetriesTransportErrors(t *testing.T) {
	u := newUpstream(t)
	u.answer(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		conn.Close()
	})
	h := newTestHTTP(t, u.srv.URL, newMemMap(), HTTPConfig{})
	if _, err := h.Run(context.Background(), Turn{SessionID: "ses_local", Records: []store.Record{inbound(1, "hi")}}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, messages := u.counts(); messages != 2 || len(h.slept()) != 1 {
		t.Errorf("attempts %d, waits %v; want 2 and 1", messages, h.slept())
	}
}

func TestHTTPCancelledWhileWaiting(t *testing.T) {
	u := newUpstream(t)
	u.answer(status(500))
	h := newTestHTTP(t, u.srv.URL, newMemMap(), HTTPConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	h.sleep = func(ctx context.Context, d time.Duration) error {
		cancel() // the interrupt arrives during the backoff
		<-ctx.Done()
		return ctx.Err()
	}
	_, err := h.Run(ctx, Turn{SessionID: "ses_local", Records: []store.Record{inbound(1, "hi")}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: err = %v, want context.Canceled", err)
	}
}

func TestHTTPSessionMapFailure(t *testing.T) {
	u := newUpstream(t)
	m := newMemMap()
	m.failSet = errors.New("disk on fire")
	h := newTestHTTP(t, u.srv.URL, m, HTTPConfig{})
	_, err := h.Run(context.Background(), Turn{SessionID: "ses_local", Records: []store.Record{inbound(1, "hi")}})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("Run: err = %v, want the session map's error", err)
	}
	if _, messages := u.counts(); messages != 0 {
		t.Errorf("forwarded %d messages to an unrecorded session", messages)
	}
}

func TestNewHTTPChecksConfig(t *testing.T) {
	m := newMemMap()
	for name, cfg := range map[string]HTTPConfig{
		"no url":           {Token: "t", Sessions: m},
		"relative url":     {BaseURL: "/v3", Token: "t", Sessions: m},
		"ftp url":          {BaseURL: "ftp://x", Token: "t", Sessions: m},
		"no token":         {BaseURL: "http://x", Sessions: m},
		"no session map":   {BaseURL: "http://x", Token: "t"},
		"negative backoff": {BaseURL: "http://x", Token: "t", Sessions: m, MaxBackoff: -1},
	} {
		if _, err := NewHTTP(cfg); err == nil {
			t.Errorf("%s: NewHTTP succeeded", name)
		}
	}
}

// TestHTTPAnswersItCannotRead: a message answered 2xx is accepted whatever
// the body; a created session must name its id, within the 64 KiB read.
func TestHTTPAnswersItCannotRead(t *testing.T) {
	u := newUpstream(t)
	u.answer(
		func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) },
		func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "accepted") },
	)
	h := newTestHTTP(t, u.srv.URL, newMemMap(), HTTPConfig{})
	if _, err := h.Run(context.Background(), Turn{SessionID: "ses_local", Records: []store.Record{inbound(1, "one"), inbound(2, "two")}}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, messages := u.counts(); messages != 2 || len(h.slept()) != 0 {
		t.Errorf("attempts %d, waits %v; want 2 and none", messages, h.slept())
	}

	for name, body := range map[string]string{
		"no id":    `{"state":"idle"}`,
		"not JSON": "created",
		"too long": `{"metadata":{"x":"` + strings.Repeat("x", maxResponse) + `"},"id":"up_1"}`,
	} {
		creates := 0
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			creates++
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, body)
		}))
		h := newTestHTTP(t, srv.URL, newMemMap(), HTTPConfig{})
		_, err := h.Run(context.Background(), Turn{SessionID: "ses_local", Records: []store.Record{inbound(1, "hi")}})
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), "answer has no session id") || creates != 1 {
			t.Errorf("%s: Run = %v after %d creates, want no session id after 1", name, err, creates)
		}
	}
}

func TestHTTPErrorAnswerOfAnotherShape(t *testing.T) {
	u := newUpstream(t)
	u.answer(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, "  no such\n  agent "+strings.Repeat("x", 300))
	})
	h := newTestHTTP(t, u.srv.URL, newMemMap(), HTTPConfig{})
	_, err := h.Run(context.Background(), Turn{SessionID: "ses_local", Records: []store.Record{inbound(1, "hi")}})
	var ue *UpstreamError
	if !errors.As(err, &ue) || ue.Code != "" || !strings.HasPrefix(ue.Message, "no such agent xxx") || len(ue.Message) > 200 {
		t.Fatalf("Run: err = %v, want an UpstreamError with an excerpt of the body and no code", err)
	}
}
