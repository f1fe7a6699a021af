package router_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/router"
	"github.com/switchboardhq/switchboard/router/runtime"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/webhook"
)

// forwarded is a message the upstream was sent.
type forwarded struct {
	Session        string `json:"-"` // upstream session, from the path
	Text           string `json:"text"`
	IdempotencyKey string `json:"idempotency_key"`
	Conversation   struct {
		Ref string `json:"ref"`
	} `json:"conversation"`
	Actor struct {
		Display string `json:"display"`
	} `json:"actor"`
}

// upstream is an agent service speaking the Steer API subset that the http
// runtime uses. Its agent answers every message, asynchronously, with a
// signed Event posted to the gateway's hook: "re: <text>" into the
// conversation the message came from, or, for a text "to:<source/ref>
// <rest>", into the conversation it names.
type upstream struct {
	t       *testing.T
	token   string
	hookURL string
	signer  *webhook.Signer
	srv     *httptest.Server
	replies sync.WaitGroup // the agent's answers in flight

	mu        sync.Mutex
	created   []map[string]string // metadata of each session created
	forwarded []forwarded
	refused   int   // requests without the right token
	hooked    []int // the gateway's status for each answer
	events    map[string][]byte
}

func newUpstream(t *testing.T, token, hookURL string, signer *webhook.Signer) *upstream {
	u := &upstream{t: t, token: token, hookURL: hookURL, signer: signer, events: map[string][]byte{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v3/sessions", u.createSession)
	mux.HandleFunc("POST /v3/sessions/{id}/messages", u.message)
	u.srv = httptest.NewServer(u.authorized(mux))
	t.Cleanup(func() { u.srv.Close(); u.replies.Wait() })
	return u
}

func (u *upstream) authorized(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+u.token {
			u.mu.Lock()
			u.refused++
			u.mu.Unlock()
			http.Error(w, `{"error":{"code":"unauthorized","message":"bad token"}}`, http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (u *upstream) createSession(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Metadata map[string]string `json:"metadata"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, `{"error":{"code":"invalid_request","message":"bad json"}}`, http.StatusBadRequest)
		return
	}
	u.mu.Lock()
	u.created = append(u.created, body.Metadata)
	id := fmt.Sprintf("up_%d", len(u.created))
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"id":%q,"state":"idle"}`, id)
}

func (u *upstream) message(w http.ResponseWriter, r *http.Request) {
	m := forwarded{Session: r.PathValue("id")}
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		http.Error(w, `{"error":{"code":"invalid_request","message":"bad json"}}`, http.StatusBadRequest)
		return
	}
	u.mu.Lock()
	known := false
	for i := range u.created {
		known = known || m.Session == fmt.Sprintf("up_%d", i+1)
	}
	u.forwarded = append(u.forwarded, m)
	u.mu.Unlock()
	if !known {
		http.Error(w, `{"error":{"code":"not_found","message":"no such session"}}`, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprint(w, `{"state":"running"}`)
	u.replies.Add(1)
	go func() {
		defer u.replies.Done()
		u.answer(m)
	}()
}

// answer posts the agent's answer to m to the gateway's hook.
func (u *upstream) answer(m forwarded) {
	to, text := m.Conversation.Ref, m.Text
	if rest, ok := strings.CutPrefix(text, "to:"); ok {
		to, text, _ = strings.Cut(rest, " ")
	}
	env := envelope.Envelope{
		ID:           "agent:re-" + m.IdempotencyKey,
		Source:       "agent",
		Kind:         envelope.KindMessage,
		Actor:        envelope.Actor{ID: "agent:upstream", Display: "Upstream agent", Type: envelope.Agent},
		Conversation: envelope.Conversation{Source: "client", Ref: to},
		Text:         "re: " + text,
		TS:           time.Now().UTC(),
	}
	body, status, err := u.post(m, &env)
	if err != nil {
		u.t.Errorf("upstream: answer %s: %v", m.IdempotencyKey, err)
		return
	}
	u.mu.Lock()
	u.hooked = append(u.hooked, status)
	u.events[env.ID] = body
	u.mu.Unlock()
}

// post delivers env as a signed outbound message event of m's session and
// returns the event as sent and the gateway's status.
func (u *upstream) post(m forwarded, env *envelope.Envelope) ([]byte, int, error) {
	ev, err := envelope.MessageEvent("evt_"+strings.ReplaceAll(m.IdempotencyKey, ":", "_"), m.Session, "outbound", env)
	if err != nil {
		return nil, 0, err
	}
	body, err := ev.AppendJSON(nil)
	if err != nil {
		return nil, 0, err
	}
	req, err := http.NewRequest(http.MethodPost, u.hookURL, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := u.signer.SetHeaders(req.Header, ev.ID, time.Now(), body); err != nil {
		return nil, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	resp.Body.Close()
	return body, resp.StatusCode, nil
}

// snapshot returns what the upstream saw, once its answers in flight are
// done.
func (u *upstream) snapshot() (created []map[string]string, fwd []forwarded, refused int, hooked []int) {
	u.replies.Wait()
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.created), slices.Clone(u.forwarded), u.refused, slices.Clone(u.hooked)
}

func (u *upstream) hookedCount() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.hooked)
}

func (u *upstream) event(envID string) []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.events[envID]
}

// TestHTTPRuntimeRoundTrip runs the http runtime through the router against
// an upstream agent service, with the upstream's answers coming back through
// the hook as the gateway wires it.
func TestHTTPRuntimeRoundTrip(t *testing.T) {
	secret, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := webhook.NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	// The gateway's POST /hooks/sessions, wired like package gateway does,
	// to whichever router is running.
	var hook atomic.Pointer[runtime.HookHandler]
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/hooks/sessions" {
			http.NotFound(w, r)
			return
		}
		hook.Load().ServeHTTP(w, r)
	}))
	t.Cleanup(gw.Close)
	up := newUpstream(t, "up-token", gw.URL+"/hooks/sessions", signer)

	h := newHarness(t, fmt.Sprintf(`
routes:
  - name: fake
    match: {source: fake}
    runtime: http
    http: {url: %q, token: up-token, secrets: [%q]}
`, up.srv.URL, secret), nil)
	wire := func() {
		hh, err := runtime.NewHookHandler(runtime.HookConfig{
			Secrets:  h.cfg.Routes[0].HTTP.Secrets,
			Sessions: router.NewSessionMap(h.st),
			Deliver:  h.r.DeliverOutput,
			Logger:   quietLogger,
		})
		if err != nil {
			t.Fatal(err)
		}
		hook.Store(hh)
	}
	wire()
	ctx := context.Background()
	threadA := envelope.Conversation{Source: "fake", Ref: "thread-A"}
	room9 := envelope.Conversation{Source: "fake2", Ref: "room-9"}
	// thread-B belongs to another session.
	if _, _, err := h.st.Bind(ctx, store.Binding{SessionID: "ses_other", Conversation: envelope.Conversation{Source: "fake", Ref: "thread-B"}}, nil); err != nil {
		t.Fatal(err)
	}

	var sent []adapters.Inbound
	var sid string
	// steer sends a message and waits for the upstream's answer to be
	// posted to the hook and, when the hook takes it, delivered, so that
	// every step sees the last one finished.
	steer := func(text string, f adapters.Facts, taken bool) {
		t.Helper()
		before := len(h.sinks["fake"].delivered()) + len(h.sinks["fake2"].delivered())
		hookedBefore := up.hookedCount()
		in := msg("fake", "thread-A", text, f)
		out := h.ingest(in)
		if out.Dropped != "" || (sid != "" && out.SessionID != sid) {
			t.Fatalf("%q: %+v, want it in session %q", text, out, sid)
		}
		sid = out.SessionID
		sent = append(sent, in)
		waitFor(t, "the answer to "+text, func() bool {
			delivered := len(h.sinks["fake"].delivered()) + len(h.sinks["fake2"].delivered())
			return up.hookedCount() == hookedBefore+1 && (!taken || delivered == before+1)
		})
	}

	steer("hello", addressed, true)
	// A second conversation of the session, in another channel.
	if _, _, err := h.st.Bind(ctx, store.Binding{SessionID: sid, Conversation: room9}, nil); err != nil {
		t.Fatal(err)
	}
	steer("to:fake2/room-9 status for the room", adapters.Facts{}, true)
	steer("to:fake/thread-B a thread of another session", adapters.Facts{}, false)
	steer("to:fake/nowhere a thread of no session", adapters.Facts{}, false)
	// The upstream session is recorded durably: after a restart it is
	// used again. The restart waits for the last turn to be recorded (the
	// session idle): a stop that cuts a forward short sends it again after
	// the restart, which the upstream would count twice.
	waitFor(t, "the session to go idle", func() bool {
		s, err := h.st.Session(ctx, sid)
		return err == nil && s.State == store.Idle
	})
	h.restart()
	wire()
	steer("after a restart", adapters.Facts{}, true)

	// What reached the channels: the named conversation when it is the
	// session's, else nothing (the hook refused it with 403), never another
	// session's conversation.
	if got := h.sinks["fake2"].delivered(); len(got) != 1 || got[0].To != room9 || got[0].Envelope.Text != "re: status for the room" {
		t.Errorf("fake2 got %+v, want the answer for room 9", got)
	}
	var fakeTexts []string
	for _, d := range h.sinks["fake"].delivered() {
		if d.To != threadA || d.SessionID != sid {
			t.Errorf("delivery %q went to %v of session %s, want %v of %s", d.Envelope.Text, d.To, d.SessionID, threadA, sid)
		}
		fakeTexts = append(fakeTexts, d.Envelope.Text)
	}
	if want := []string{"re: hello", "re: after a restart"}; !slices.Equal(fakeTexts, want) {
		t.Errorf("fake got %q, want %q", fakeTexts, want)
	}

	// What the upstream saw: one session, created once with the local id,
	// and each message forwarded once, in order, under its envelope id, with
	// the right token.
	created, fwd, refused, hooked := up.snapshot()
	if len(created) != 1 || created[0][runtime.MetadataSession] != sid {
		t.Errorf("upstream sessions created: %v, want one for %s", created, sid)
	}
	if refused != 0 {
		t.Errorf("%d requests reached the upstream without its token", refused)
	}
	if len(fwd) != len(sent) {
		t.Fatalf("upstream got %d messages, want %d: %+v", len(fwd), len(sent), fwd)
	}
	for i, m := range fwd {
		in := sent[i].Envelope
		if m.Session != "up_1" || m.IdempotencyKey != in.ID || m.Text != in.Text ||
			m.Conversation.Ref != "fake/thread-A" || m.Actor.Display != "Ada" {
			t.Errorf("forwarded #%d: %+v, want %q with key %s from fake/thread-A to up_1", i, m, in.Text, in.ID)
		}
	}
	if want := []int{204, 204, 403, 403, 204}; !slices.Equal(hooked, want) {
		t.Errorf("the hook answered %v, want %v (403 for a conversation not bound to the session)", hooked, want)
	}
	if local, ok, err := router.NewSessionMap(h.st).Local(ctx, "up_1"); err != nil || !ok || local != sid {
		t.Errorf("up_1 maps to %q, %v, %v; want %s", local, ok, err, sid)
	}

	// The log: each message followed by its answer when the hook took it,
	// an outbound agent record holding the event as its raw.
	recs := h.records(sid)
	answered := []bool{true, true, false, false, true}
	wantTo := []envelope.Conversation{threadA, room9, {}, {}, threadA}
	for i, in := range sent {
		if len(recs) == 0 {
			t.Fatalf("the log ends before message %d", i)
		}
		q := recs[0]
		recs = recs[1:]
		if q.Direction != store.Inbound || q.Envelope.ID != in.Envelope.ID {
			t.Errorf("record %d: %+v, want inbound %s", q.Seq, q, in.Envelope.ID)
		}
		if !answered[i] {
			continue
		}
		if len(recs) == 0 {
			t.Fatalf("the log ends before the answer to message %d", i)
		}
		a := recs[0]
		recs = recs[1:]
		wantID := "agent:re-" + in.Envelope.ID
		if a.Direction != store.Outbound || a.Envelope.ID != wantID || a.Envelope.Actor.Type != envelope.Agent ||
			a.Envelope.Conversation != wantTo[i] || !bytes.Equal(a.Envelope.Raw, up.event(wantID)) {
			t.Errorf("record %d: %+v (raw %s), want outbound %s to %v with the event as raw", a.Seq, a.Envelope, a.Envelope.Raw, wantID, wantTo[i])
		}
	}
	if len(recs) != 0 {
		t.Errorf("the log holds more: %+v", recs)
	}
	if other := h.records("ses_other"); len(other) != 0 {
		t.Errorf("the other session's log got %+v", other)
	}
	waitFor(t, "the session to go idle", func() bool {
		s, err := h.st.Session(ctx, sid)
		return err == nil && s.State == store.Idle
	})
}
