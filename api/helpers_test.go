package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/testclock"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/sqlite"
)

// The static tokens of every test server.
const (
	adminSecret = "sb_test-admin"
	steerSecret = "sb_test-steer"
	agentSecret = "sb_test-agent" // agent for agentSession only
	// agentSession is created by newHarness, for the agent token.
	agentSession = "ses_agent"
)

// t0 is the test clock's starting time.
var t0 = time.Date(2026, 6, 18, 12, 0, 0, 0, time.UTC)

// harness is a Server on a fresh store: SQLite's unless made by
// newHarnessOn.
type harness struct {
	t     testing.TB
	srv   *Server
	store *sqlite.Store // nil unless the store is SQLite's
	reg   *prometheus.Registry
	clock *testclock.Clock
}

// openStore opens a SQLite store under t's temporary directory, closed when
// t ends.
func openStore(t testing.TB) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "switchboard.db"), sqlite.Options{})
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close sqlite: %v", err)
		}
	})
	return st
}

// newHarness starts a Server with the three static tokens and agentSession.
// configure, if not nil, adjusts the options first.
func newHarness(t testing.TB, configure func(*Options)) *harness {
	t.Helper()
	st := openStore(t)
	h := newHarnessOn(t, st, configure)
	h.store = st
	return h
}

// newHarnessOn is newHarness on st, any backend; the harness's store field
// (SQLite's) is nil.
func newHarnessOn(t testing.TB, st store.Store, configure func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, reg: prometheus.NewRegistry(), clock: testclock.New(t0)}
	if _, _, err := st.CreateSession(context.Background(), agentSession, nil); err != nil {
		t.Fatalf("create agent session: %v", err)
	}
	opts := Options{
		Store: st,
		Tokens: []StaticToken{
			{Name: "admin", Secret: adminSecret, Scopes: []store.Scope{store.ScopeAdmin}},
			{Name: "steerer", Secret: steerSecret, Scopes: []store.Scope{store.ScopeSteer}},
			{Name: "bot", Secret: agentSecret, Scopes: []store.Scope{store.ScopeAgent}, Sessions: []string{agentSession}},
		},
		Registry: h.reg,
		Now:      h.clock.Now,
	}
	if configure != nil {
		configure(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if _, bench := t.(*testing.B); !bench {
		// Every request of the tests is checked against the OpenAPI
		// document (openapi_test.go); benchmarks measure the server alone.
		srv.handler = checkContract(t, srv.handler)
	}
	h.srv = srv
	t.Cleanup(srv.Shutdown)
	return h
}

// req describes one request for harness.do.
type req struct {
	method, path, token string
	body                string
	header              map[string]string
}

// do serves r directly through the handler and returns the recorded response.
func (h *harness) do(r req) *httptest.ResponseRecorder {
	h.t.Helper()
	var body io.Reader = http.NoBody
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr := httptest.NewRequest(r.method, r.path, body)
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.header {
		if v == "" {
			hr.Header.Del(k)
		} else {
			hr.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	h.srv.ServeHTTP(w, hr)
	checkErrorShape(h.t, w.Code, w.Header(), w.Body.Bytes())
	return w
}

// checkErrorShape fails t unless a non-2xx response is a JSON error with a
// code and a message.
func checkErrorShape(t testing.TB, status int, header http.Header, body []byte) {
	t.Helper()
	if status < 400 {
		return
	}
	if ct := header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("status %d: Content-Type %q, want application/json", status, ct)
	}
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Errorf("status %d: body %q is not {\"error\": {\"code\", \"message\"}} (%v)", status, body, err)
	}
}

// errorCode returns the code of a JSON error body.
func errorCode(t testing.TB, body []byte) string {
	t.Helper()
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("decode error body %q: %v", body, err)
	}
	return e.Error.Code
}

// newSession creates a session through the API and returns its id.
func (h *harness) newSession() string {
	h.t.Helper()
	w := h.do(req{method: "POST", path: "/v3/sessions", token: adminSecret})
	if w.Code != http.StatusCreated {
		h.t.Fatalf("create session: %d %s", w.Code, w.Body)
	}
	var s store.Session
	if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
		h.t.Fatalf("decode session: %v", err)
	}
	return s.ID
}

// records reads every record of session id from the store.
func (h *harness) records(id string) []store.Record {
	h.t.Helper()
	recs, err := h.store.Read(context.Background(), id, 0, 10000)
	if err != nil {
		h.t.Fatalf("read %s: %v", id, err)
	}
	return recs
}

// recordJSON is a record as the API writes it. Envelope keeps raw verbatim.
type recordJSON struct {
	Seq       int64             `json:"seq"`
	Direction store.Direction   `json:"direction"`
	Envelope  envelope.Envelope `json:"envelope"`
	StoredAt  time.Time         `json:"stored_at"`
}

// appendResponse is the body of a 202 or 200 from messages or outputs.
type appendResponse struct {
	Message recordJSON `json:"message"`
	Session struct {
		ID    string      `json:"id"`
		State store.State `json:"state"`
	} `json:"session"`
}

func decodeAppend(t testing.TB, body []byte) appendResponse {
	t.Helper()
	var r appendResponse
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("decode append response %q: %v", body, err)
	}
	return r
}

// readResponse is the body of GET …/messages.
type readResponse struct {
	Messages  []recordJSON `json:"messages"`
	NextAfter int64        `json:"next_after"`
}

func decodeRead(t testing.TB, body []byte) readResponse {
	t.Helper()
	var r readResponse
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("decode read response %q: %v", body, err)
	}
	return r
}

// steer posts text to session id with key (none when empty) as admin.
func (h *harness) steer(id, text, key string) *httptest.ResponseRecorder {
	h.t.Helper()
	b, _ := json.Marshal(map[string]string{"text": text})
	if key != "" {
		b, _ = json.Marshal(map[string]string{"text": text, "idempotency_key": key})
	}
	return h.do(req{method: "POST", path: "/v3/sessions/" + id + "/messages", token: adminSecret, body: string(b)})
}

// watchLog is a store.Log wrapper (Options.Log) that reports what the server
// does with the log.
type watchLog struct {
	store.Log

	mu         sync.Mutex
	subs       int           // subscriptions open
	emptyReads chan struct{} // a value after every Read that found nothing
	unsubbed   chan struct{} // a value after every cancel of a subscription
}

func newWatchLog(inner store.Log) *watchLog {
	return &watchLog{
		Log:        inner,
		emptyReads: make(chan struct{}, 100),
		unsubbed:   make(chan struct{}, 100),
	}
}

func (l *watchLog) Read(ctx context.Context, id string, after int64, limit int) ([]store.Record, error) {
	recs, err := l.Log.Read(ctx, id, after, limit)
	if err == nil && len(recs) == 0 {
		select {
		case l.emptyReads <- struct{}{}:
		default:
		}
	}
	return recs, err
}

func (l *watchLog) Subscribe(id string) (<-chan struct{}, func()) {
	ch, cancel := l.Log.Subscribe(id)
	l.mu.Lock()
	l.subs++
	l.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			cancel()
			l.mu.Lock()
			l.subs--
			l.mu.Unlock()
			select {
			case l.unsubbed <- struct{}{}:
			default:
			}
		})
	}
}

func (l *watchLog) openSubs() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.subs
}

// await fails t unless ch yields within the failure guard.
func await(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}
