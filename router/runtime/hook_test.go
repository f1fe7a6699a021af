package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/webhook"
)

var hookNow = time.Date(2026, 6, 18, 12, 0, 30, 0, time.UTC)

// delivered records what a HookHandler handed to the router.
type delivered struct {
	mu   sync.Mutex
	got  []deliveredOutput
	fail error
}

type deliveredOutput struct {
	session string
	env     envelope.Envelope
}

func (d *delivered) deliver(_ context.Context, sessionID string, env envelope.Envelope) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return d.fail
	}
	d.got = append(d.got, deliveredOutput{sessionID, env})
	return nil
}

func (d *delivered) all() []deliveredOutput {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]deliveredOutput(nil), d.got...)
}

func newSecret(t *testing.T) string {
	t.Helper()
	s, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newTestHook(t *testing.T, m SessionMap, d *delivered, secrets ...string) *HookHandler {
	t.Helper()
	h, err := NewHookHandler(HookConfig{
		Secrets:  secrets,
		Sessions: m,
		Deliver:  d.deliver,
		MaxBody:  64 << 10,
		Now:      func() time.Time { return hookNow },
	})
	if err != nil {
		t.Fatalf("NewHookHandler: %v", err)
	}
	return h
}

// output is an envelope the upstream's agent posted.
func output(text, convRef string) envelope.Envelope {
	return envelope.Envelope{
		ID:           "agent:out-1",
		Source:       "client",
		Kind:         envelope.KindMessage,
		Actor:        envelope.Actor{ID: "agent:claude", Display: "Claude", Type: envelope.Agent},
		Conversation: envelope.Conversation{Source: "client", Ref: convRef},
		Text:         text,
		TS:           hookNow,
		Raw:          json.RawMessage(`{"text": "as  posted"}`),
	}
}

// event encodes env as a message event of upstream session upSession; extra
// fields are spliced into the event object.
func event(t *testing.T, upSession string, env envelope.Envelope, extra string) []byte {
	t.Helper()
	ev, err := envelope.MessageEvent("evt_1", upSession, "", &env)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ev.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	if extra != "" {
		b = append(append(b[:len(b)-1:len(b)-1], ","+extra...), '}')
	}
	return b
}

// post sends body to h signed with secret at ts (unsigned when secret is "")
// and returns the response.
func post(t *testing.T, h http.Handler, secret string, ts time.Time, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/hooks/sessions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		s, err := webhook.NewSigner(secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetHeaders(req.Header, "evt_1", ts, body); err != nil {
			t.Fatal(err)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// wantError checks that rec is a JSON error with status and code.
func wantError(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Code != code || body.Error.Message == "" {
		t.Fatalf("body %s, want a JSON error with code %q", rec.Body, code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}

func mapped() *memMap {
	m := newMemMap()
	_ = m.SetUpstream(context.Background(), "ses_local", "up_1")
	return m
}

func TestHookDeliversAnOutput(t *testing.T) {
	secret := newSecret(t)
	d := &delivered{}
	h := newTestHook(t, mapped(), d, secret)
	body := event(t, "up_1", output("Done: the CI config was wrong.", "slack/C1:1718000000.1"), "")

	rec := post(t, h, secret, hookNow, body)
	if rec.Code != http.StatusNoContent {
		t.Fatalf("status %d, body %s", rec.Code, rec.Body)
	}
	got := d.all()
	if len(got) != 1 || got[0].session != "ses_local" {
		t.Fatalf("delivered %+v, want one output to ses_local", got)
	}
	env := got[0].env
	if env.ID != "agent:out-1" || env.Text != "Done: the CI config was wrong." || env.Actor.Type != envelope.Agent {
		t.Errorf("envelope %+v", env)
	}
	if want := (envelope.Conversation{Source: "slack", Ref: "C1:1718000000.1"}); env.Conversation != want {
		t.Errorf("conversation %+v, want the local anchor %+v", env.Conversation, want)
	}
	if !bytes.Equal(env.Raw, body) {
		t.Errorf("raw = %s, want the event as received", env.Raw)
	}
}

func TestHookOutputWithoutALocalAnchor(t *testing.T) {
	secret := newSecret(t)
	d := &delivered{}
	h := newTestHook(t, mapped(), d, secret)
	for _, ref := range []string{"", "thread-42", "/x", "slack/"} {
		rec := post(t, h, secret, hookNow, event(t, "up_1", output("hi", ref), ""))
		if rec.Code != http.StatusNoContent {
			t.Fatalf("ref %q: status %d, body %s", ref, rec.Code, rec.Body)
		}
	}
	for _, o := range d.all() {
		if !o.env.Conversation.IsZero() {
			t.Errorf("conversation %+v, want none (the session's latest)", o.env.Conversation)
		}
	}
}

func TestHookSignatures(t *testing.T) {
	secret := newSecret(t)
	other := newSecret(t)
	body := event(t, "up_1", output("hi", ""), "")
	tests := []struct {
		name   string
		secret string
		ts     time.Time
	}{
		{"unsigned", "", hookNow},
		{"forged", other, hookNow},
		{"stale", secret, hookNow.Add(-6 * time.Minute)},
		{"future", secret, hookNow.Add(6 * time.Minute)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &delivered{}
			h := newTestHook(t, mapped(), d, secret)
			wantError(t, post(t, h, tc.secret, tc.ts, body), http.StatusUnauthorized, "invalid_signature")
			if len(d.all()) != 0 {
				t.Error("an unverified event was delivered")
			}
		})
	}
	t.Run("body altered after signing", func(t *testing.T) {
		d := &delivered{}
		h := newTestHook(t, mapped(), d, secret)
		req := httptest.NewRequest(http.MethodPost, "/hooks/sessions", bytes.NewReader(bytes.Replace(body, []byte(`"hi"`), []byte(`"ho"`), 1)))
		s, _ := webhook.NewSigner(secret)
		_ = s.SetHeaders(req.Header, "evt_1", hookNow, body)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		wantError(t, rec, http.StatusUnauthorized, "invalid_signature")
	})
	t.Run("either secret while rotating", func(t *testing.T) {
		d := &delivered{}
		h := newTestHook(t, mapped(), d, other, secret)
		for _, s := range []string{secret, other} {
			if rec := post(t, h, s, hookNow, body); rec.Code != http.StatusNoContent {
				t.Fatalf("status %d, body %s", rec.Code, rec.Body)
			}
		}
		if len(d.all()) != 2 {
			t.Errorf("delivered %d, want 2", len(d.all()))
		}
	})
}

func TestHookUnknownUpstreamSession(t *testing.T) {
	secret := newSecret(t)
	d := &delivered{}
	h := newTestHook(t, mapped(), d, secret)
	wantError(t, post(t, h, secret, hookNow, event(t, "up_unknown", output("hi", ""), "")), http.StatusNotFound, "not_found")
	if len(d.all()) != 0 {
		t.Error("delivered an output of an unknown session")
	}
}

func TestHookIgnores(t *testing.T) {
	secret := newSecret(t)
	human := output("a steer echoed back", "")
	human.Actor = envelope.Actor{ID: "client:gateway", Type: envelope.Human}
	for name, body := range map[string][]byte{
		"state change":        []byte(`{"id":"evt_2","type":"session.state_changed","session_id":"up_1","ts":"2026-06-18T12:00:00Z","body":{"state":"idle"}}`),
		"inbound direction":   event(t, "up_1", output("echo", ""), `"direction":"inbound"`),
		"human, no direction": event(t, "up_1", human, ""),
	} {
		t.Run(name, func(t *testing.T) {
			d := &delivered{}
			h := newTestHook(t, mapped(), d, secret)
			if rec := post(t, h, secret, hookNow, body); rec.Code != http.StatusNoContent {
				t.Fatalf("status %d, body %s", rec.Code, rec.Body)
			}
			if len(d.all()) != 0 {
				t.Errorf("delivered %+v", d.all())
			}
		})
	}
	// An explicit outbound direction is delivered whoever the actor is.
	d := &delivered{}
	h := newTestHook(t, mapped(), d, secret)
	if rec := post(t, h, secret, hookNow, event(t, "up_1", human, `"direction":"outbound"`)); rec.Code != http.StatusNoContent || len(d.all()) != 1 {
		t.Fatalf("outbound event: status %d, delivered %d", rec.Code, len(d.all()))
	}
}

func TestHookBadRequests(t *testing.T) {
	secret := newSecret(t)
	badActor := output("hi", "")
	badActor.Actor.Type = "robot"
	noText := output(" ", "")
	tests := []struct {
		name   string
		body   []byte
		status int
		code   string
	}{
		{"not JSON", []byte(`{"id":`), 400, "invalid_request"},
		{"no session", []byte(`{"id":"e","type":"message","body":{}}`), 400, "invalid_request"},
		{"body not an envelope", []byte(`{"id":"e","type":"message","session_id":"up_1","body":[1]}`), 400, "invalid_request"},
		{"bad refs", []byte(`{"id":"e","type":"message","session_id":"up_1","body":{"refs":{"pr":[1]}}}`), 400, "invalid_request"},
		{"unknown actor type", event(t, "up_1", badActor, ""), 400, "invalid_envelope"},
		{"empty text", event(t, "up_1", noText, ""), 400, "invalid_envelope"},
		{"too large", event(t, "up_1", output(strings.Repeat("x", 70<<10), ""), ""), 413, "payload_too_large"},
		{"lone surrogate", []byte(`{"id":"e","type":"message","session_id":"up_1","body":{"text":"\ud800"}}`), 400, "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &delivered{}
			h := newTestHook(t, mapped(), d, secret)
			wantError(t, post(t, h, secret, hookNow, tc.body), tc.status, tc.code)
			if len(d.all()) != 0 {
				t.Error("a bad request was delivered")
			}
		})
	}
	t.Run("GET", func(t *testing.T) {
		h := newTestHook(t, mapped(), &delivered{}, secret)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/hooks/sessions", nil))
		wantError(t, rec, http.StatusMethodNotAllowed, "method_not_allowed")
		if rec.Header().Get("Allow") != "POST" {
			t.Errorf("Allow %q", rec.Header().Get("Allow"))
		}
	})
}

func TestHookAnswers2xxOnlyAfterDelivery(t *testing.T) {
	secret := newSecret(t)
	body := event(t, "up_1", output("hi", ""), "")
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{errors.New("store unavailable"), 500, "internal"},
		{fmt.Errorf("append: %w", store.ErrConflict), 409, "idempotency_conflict"},
		{fmt.Errorf("append: %w", store.ErrNotFound), 404, "not_found"},
		{fmt.Errorf("resolve: %w: session s has no output \"x\"", store.ErrNoSuchOutput), 404, "output_not_found"},
		{fmt.Errorf("resolve: %w: \"x\" is an inbound message", store.ErrNotEditable), 422, "not_editable"},
	} {
		d := &delivered{fail: tc.err}
		h := newTestHook(t, mapped(), d, secret)
		wantError(t, post(t, h, secret, hookNow, body), tc.status, tc.code)
	}
}

func TestNewHookHandlerChecksConfig(t *testing.T) {
	secret := newSecret(t)
	d := &delivered{}
	for name, cfg := range map[string]HookConfig{
		"no secret":      {Sessions: newMemMap(), Deliver: d.deliver},
		"bad secret":     {Secrets: []string{"whsec_short"}, Sessions: newMemMap(), Deliver: d.deliver},
		"no session map": {Secrets: []string{secret}, Deliver: d.deliver},
		"no deliver":     {Secrets: []string{secret}, Sessions: newMemMap()},
	} {
		if _, err := NewHookHandler(cfg); err == nil {
			t.Errorf("%s: NewHookHandler succeeded", name)
		}
	}
}

// TestHTTPRoundTrip runs the whole loop: the http runtime forwards a message
// to an upstream whose agent answers by delivering a signed message event to
// the gateway's hook, which hands the output to the router.
func TestHTTPRoundTrip(t *testing.T) {
	secret := newSecret(t)
	m := newMemMap()
	d := &delivered{}
	hook, err := NewHookHandler(HookConfig{Secrets: []string{secret}, Sessions: m, Deliver: d.deliver})
	if err != nil {
		t.Fatal(err)
	}
	gateway := httptest.NewServer(hook)
	defer gateway.Close()

	u := newUpstream(t)
	signer, _ := webhook.NewSigner(secret)
	answered := make(chan error, 1)
	u.onMessage = func(upSession string, body []byte) {
		// The upstream's agent replies to the conversation it was given.
		var msg struct {
			Text         string `json:"text"`
			Conversation struct {
				Ref string `json:"ref"`
			} `json:"conversation"`
		}
		_ = json.Unmarshal(body, &msg)
		ev := event(t, upSession, output("You said: "+msg.Text, msg.Conversation.Ref), `"direction":"outbound"`)
		req, _ := http.NewRequest(http.MethodPost, gateway.URL+"/hooks/sessions", bytes.NewReader(ev))
		if err := signer.SetHeaders(req.Header, "evt_1", time.Now(), ev); err != nil {
			answered <- err
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				err = fmt.Errorf("hook answered %s", resp.Status)
			}
		}
		answered <- err
	}

	rt, err := NewHTTP(HTTPConfig{BaseURL: u.srv.URL, Token: "up-token", Sessions: m})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Run(context.Background(), Turn{SessionID: "ses_local", Records: []store.Record{inbound(1, "check the CI")}}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	select {
	case err := <-answered:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the upstream never answered")
	}
	got := d.all()
	if len(got) != 1 {
		t.Fatalf("delivered %d outputs, want 1", len(got))
	}
	want := envelope.Conversation{Source: "slack", Ref: "C1:1718000000.1"}
	if got[0].session != "ses_local" || got[0].env.Text != "You said: check the CI" || got[0].env.Conversation != want {
		t.Errorf("delivered %q to %s in %+v", got[0].env.Text, got[0].session, got[0].env.Conversation)
	}
}

// readWatch is a request body that records whether it was read.
type readWatch struct{ read bool }

func (r *readWatch) Read(p []byte) (int, error) { r.read = true; return 0, io.EOF }

// TestHookRefusesBeforeReadingTheBody: a delivery whose headers alone show
// it forged (no signature) or replayed (a stale timestamp) is refused with
// 401 before its body is read.
func TestHookRefusesBeforeReadingTheBody(t *testing.T) {
	secret := newSecret(t)
	h := newTestHook(t, mapped(), &delivered{}, secret)
	s, err := webhook.NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	for name, set := range map[string]func(http.Header){
		"no signature": func(http.Header) {},
		"stale": func(hd http.Header) {
			if err := s.SetHeaders(hd, "evt_1", hookNow.Add(-time.Hour), []byte("{}")); err != nil {
				t.Fatal(err)
			}
		},
	} {
		body := &readWatch{}
		req := httptest.NewRequest(http.MethodPost, "/hooks/sessions", body)
		req.ContentLength = 1000
		set(req.Header)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		wantError(t, rec, http.StatusUnauthorized, "invalid_signature")
		if body.read {
			t.Errorf("%s: the body was read before the delivery was refused", name)
		}
	}
}
