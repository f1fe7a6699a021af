package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/store"
)

// failingPing is a store whose Ping fails, for /readyz.
type failingPing struct{ store.Store }

func (failingPing) Ping(context.Context) error { return errors.New("database is locked") }

func TestHealth(t *testing.T) {
	h := newHarness(t, nil)
	if w := h.do(req{method: "GET", path: "/healthz"}); w.Code != 200 {
		t.Errorf("healthz: %d", w.Code)
	}
	if w := h.do(req{method: "GET", path: "/readyz"}); w.Code != 200 {
		t.Errorf("readyz: %d %s", w.Code, w.Body)
	}
	bad := newHarness(t, func(o *Options) { o.Store = failingPing{o.Store} })
	w := bad.do(req{method: "GET", path: "/readyz"})
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "database is locked") {
		t.Errorf("readyz with a failing store: %d %s", w.Code, w.Body)
	}
	if w := bad.do(req{method: "GET", path: "/healthz"}); w.Code != 200 {
		t.Errorf("healthz with a failing store: %d", w.Code)
	}
}

func TestUnmatchedRoutes(t *testing.T) {
	h := newHarness(t, nil)
	for _, c := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/v4/sessions", 404, ""},
		{"GET", "/", 404, ""},
		{"PUT", "/v3/sessions", 405, "GET, HEAD, POST"},
		{"DELETE", "/v3/sessions/x", 405, "GET, HEAD"},
		{"GET", "/v3/sessions/x/outputs", 405, "POST"},
		{"POST", "/healthz", 405, "GET, HEAD"},
	} {
		w := h.do(req{method: c.method, path: c.path, token: adminSecret})
		if w.Code != c.status || w.Header().Get("Allow") != c.allow {
			t.Errorf("%s %s: %d Allow %q, want %d %q", c.method, c.path, w.Code, w.Header().Get("Allow"), c.status, c.allow)
		}
	}
}

func TestStoreClosed(t *testing.T) {
	h := newHarness(t, nil)
	id := h.newSession()
	st := h.store
	// Close early; the harness's cleanup closes again, which must be harmless.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	w := h.steer(id, "late", "")
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("append on a closed store: %d %s", w.Code, w.Body)
	}
}

func TestReadyzListsChannelHealthWithoutFailing(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Checks = map[string]adapters.Checker{
			"slack":  checkFunc(func(context.Context) error { return errors.New("invalid_auth") }),
			"github": checkFunc(func(context.Context) error { return nil }),
		}
	})
	w := h.do(req{method: "GET", path: "/readyz"})
	if w.Code != http.StatusOK {
		t.Fatalf("readyz with one unhealthy channel: %d, want 200 (other channels still work)", w.Code)
	}
	body := w.Body.String()
	for _, want := range []string{`"status":"degraded"`, `"slack":"unhealthy: invalid_auth"`, `"github":"ok"`} {
		if !strings.Contains(body, want) {
			t.Errorf("readyz body %s lacks %s", body, want)
		}
	}
}

type checkFunc func(context.Context) error

func (f checkFunc) Check(ctx context.Context) error { return f(ctx) }

// TestReadyzShowsLastEvents: /readyz says when each channel last delivered
// a message, and leaves last_event out while none has.
func TestReadyzShowsLastEvents(t *testing.T) {
	var last map[string]time.Time
	h := newHarness(t, func(o *Options) { o.LastInbound = func() map[string]time.Time { return last } })
	if w := h.do(req{method: "GET", path: "/readyz"}); w.Code != http.StatusOK || strings.Contains(w.Body.String(), "last_event") {
		t.Fatalf("readyz before any event: %d %s", w.Code, w.Body)
	}
	last = map[string]time.Time{"slack": t0}
	w := h.do(req{method: "GET", path: "/readyz"})
	if want := `"last_event":{"slack":"` + t0.Format(time.RFC3339Nano) + `"}`; w.Code != http.StatusOK || !strings.Contains(w.Body.String(), want) {
		t.Fatalf("readyz: %d %s, want %s", w.Code, w.Body, want)
	}
}
