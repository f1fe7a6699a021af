package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/api"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/store/sqlite"
)

// fakeCatchUp is a channel whose catch-up the test controls: each run
// reports what report holds, after gate (when set) is closed.
type fakeCatchUp struct {
	adapters.SinkFunc
	mu      sync.Mutex
	report  adapters.CatchUpReport
	err     error
	gate    chan struct{}
	started chan adapters.CatchUpRequest
	deps    adapters.Deps
}

func (f *fakeCatchUp) CatchUp(ctx context.Context, req adapters.CatchUpRequest) (adapters.CatchUpReport, error) {
	f.mu.Lock()
	gate, rep, err := f.gate, f.report, f.err
	f.mu.Unlock()
	if f.started != nil {
		f.started <- req
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return adapters.CatchUpReport{}, ctx.Err()
		}
	}
	return rep, err
}

type fakeChanConfig struct{}

func (fakeChanConfig) Validate() error { return nil }

// theFake is the fakechan adapter the gateway under test built.
var theFake struct {
	sync.Mutex
	a *fakeCatchUp
}

func init() {
	adapters.Register(adapters.Typed("fakechan", func() fakeChanConfig { return fakeChanConfig{} },
		func(_ fakeChanConfig, deps adapters.Deps) (*fakeCatchUp, error) {
			f := &fakeCatchUp{deps: deps, started: make(chan adapters.CatchUpRequest, 10)}
			theFake.Lock()
			theFake.a = f
			theFake.Unlock()
			return f, nil
		}))
}

const fakeChannel = `
catch_up:
  window: 2h
  on_start: false
routes:
  - name: watched
    match: {source: fakechan, where: ["C123", "team-*", "C456"]}
  - name: other
    match: {source: slack, where: ["C999"]}
adapters:
  fakechan: {}
`

func doAPI(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	req.Header.Set("Authorization", "Bearer gateway-test-token-0123456789")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// TestCatchUpThroughTheAPI: POST /v3/channels/{name}/catch-up runs the
// channel's catch-up with the configured window and the places its routes
// name, answers what it did, counts it in the metrics and shows it on
// /readyz; an unknown channel is a 404 and a second run while one runs a
// 409.
func TestCatchUpThroughTheAPI(t *testing.T) {
	g := newGateway(t, fakeChannel)
	h := g.Handler()
	theFake.Lock()
	f := theFake.a
	theFake.Unlock()
	f.report = adapters.CatchUpReport{Since: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC), Scopes: 3, Found: 7, New: 5}

	w := doAPI(t, h, http.MethodPost, "/v3/channels/fakechan/catch-up")
	if w.Code != http.StatusOK {
		t.Fatalf("catch-up: %d %s", w.Code, w.Body)
	}
	var got struct {
		Channel string `json:"channel"`
		adapters.CatchUpReport
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Channel != "fakechan" || got.Found != 7 || got.New != 5 || got.Scopes != 3 || !got.Since.Equal(f.report.Since) {
		t.Errorf("catch-up answered %s", w.Body)
	}
	req := <-f.started
	if req.Window != 2*time.Hour || strings.Join(req.Places, ",") != "C123,C456" {
		t.Errorf("catch-up asked for %+v, want the 2h window and places C123, C456 (not the glob, not slack's)", req)
	}

	if w := doAPI(t, h, http.MethodPost, "/v3/channels/nope/catch-up"); w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "no catch-up") {
		t.Errorf("unknown channel: %d %s", w.Code, w.Body)
	}

	// A second run while one runs is refused.
	f.mu.Lock()
	f.gate = make(chan struct{})
	f.mu.Unlock()
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- doAPI(t, h, http.MethodPost, "/v3/channels/fakechan/catch-up") }()
	<-f.started
	if w := doAPI(t, h, http.MethodPost, "/v3/channels/fakechan/catch-up"); w.Code != http.StatusConflict || w.Header().Get("Retry-After") == "" {
		t.Errorf("catch-up while one runs: %d %s", w.Code, w.Body)
	}
	close(f.gate)
	if w := <-done; w.Code != http.StatusOK {
		t.Errorf("the first run: %d %s", w.Code, w.Body)
	}

	// A run that stops early says why, with what it did.
	f.mu.Lock()
	f.gate, f.err, f.report = nil, errors.New("fakechan: catch-up: replies of t1: status 500"), adapters.CatchUpReport{Found: 2, New: 1}
	f.mu.Unlock()
	if w := doAPI(t, h, http.MethodPost, "/v3/channels/fakechan/catch-up"); w.Code != http.StatusBadGateway || !strings.Contains(w.Body.String(), "status 500") || !strings.Contains(w.Body.String(), `"new":1`) {
		t.Errorf("failed catch-up: %d %s", w.Code, w.Body)
	}
	<-f.started

	w = doAPI(t, h, http.MethodGet, "/readyz")
	var ready struct {
		CatchUp map[string]api.CatchUpStatus `json:"catch_up"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &ready); err != nil {
		t.Fatal(err)
	}
	last := ready.CatchUp["fakechan"]
	if last.Trigger != "request" || last.Found != 2 || last.New != 1 || !strings.Contains(last.Error, "status 500") || last.At.IsZero() {
		t.Errorf("/readyz catch_up: %s", w.Body)
	}
	w = doAPI(t, h, http.MethodGet, "/metrics")
	for _, want := range []string{
		`switchboard_catchup_messages_total{result="found",source="fakechan"} 16`,
		`switchboard_catchup_messages_total{result="new",source="fakechan"} 11`,
	} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestCatchUpOnStartAndOnRequest: the runner catches up every channel when
// it starts, and again when the adapter asks (after a reconnect).
func TestCatchUpOnStartAndOnRequest(t *testing.T) {
	f := &fakeCatchUp{started: make(chan adapters.CatchUpRequest, 10)}
	cu := testCatchUps(t, newTestKV(t), f)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); cu.Run(ctx) }()
	<-f.started // on start
	cu.request("fakechan")
	<-f.started // on request
	cancel()
	<-done
	if st := cu.CatchUpStatus()["fakechan"]; st.Trigger != triggerReconnect {
		t.Errorf("last catch-up %+v, want one triggered by the reconnect", st)
	}
}

// TestCatchUpRunsOnOneReplicaAtATime: two replicas on one store never run
// a channel's catch-up at once; a holder that died is taken over once its
// lease expires.
func TestCatchUpRunsOnOneReplicaAtATime(t *testing.T) {
	kv := newTestKV(t)
	fa := &fakeCatchUp{started: make(chan adapters.CatchUpRequest, 10), gate: make(chan struct{})}
	fb := &fakeCatchUp{started: make(chan adapters.CatchUpRequest, 10)}
	a, b := testCatchUps(t, kv, fa), testCatchUps(t, kv, fb)
	done := make(chan error)
	go func() { _, err := a.CatchUp(t.Context(), "fakechan"); done <- err }()
	<-fa.started
	if _, err := b.CatchUp(t.Context(), "fakechan"); !errors.Is(err, api.ErrCatchUpRunning) {
		t.Fatalf("b's catch-up while a's runs: %v, want ErrCatchUpRunning", err)
	}
	close(fa.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := b.CatchUp(t.Context(), "fakechan"); err != nil {
		t.Fatalf("b's catch-up after a's: %v", err)
	}
	<-fb.started

	// a dies holding the lease (its run is cut off before it releases).
	held, err := a.acquire(t.Context(), "fakechan")
	if err != nil || !held {
		t.Fatalf("acquire: %v %v", held, err)
	}
	if _, err := b.CatchUp(t.Context(), "fakechan"); !errors.Is(err, api.ErrCatchUpRunning) {
		t.Fatalf("b's catch-up under a's lease: %v", err)
	}
	b.now = func() time.Time { return time.Now().Add(catchUpLease + time.Second) }
	if _, err := b.CatchUp(t.Context(), "fakechan"); err != nil {
		t.Fatalf("b's catch-up after a's lease expired: %v", err)
	}
	<-fb.started
}

func testCatchUps(t *testing.T, kv *sqlite.Store, f *fakeCatchUp) *catchUps {
	t.Helper()
	cfg, err := config.Parse([]byte(fakeChannel), lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	on := true
	cfg.CatchUp.OnStart = &on
	return newCatchUps(cfg, kv, []builtAdapter{{"fakechan", f}}, slog.New(slog.DiscardHandler), nil)
}

func newTestKV(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), t.TempDir()+"/kv.db", sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
