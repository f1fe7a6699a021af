package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestRateLimiterBuckets(t *testing.T) {
	c := &clock{t: t0}
	l := newRateLimiter(1, 2, c.Now)
	for i := range 2 {
		if ok, _ := l.allow("a"); !ok {
			t.Fatalf("request %d within the burst refused", i)
		}
	}
	ok, wait := l.allow("a")
	if ok || wait <= 0 || wait > time.Second {
		t.Errorf("over the burst: ok=%v wait=%v, want refused with a wait up to 1s", ok, wait)
	}
	// A refused request takes nothing: after the wait, exactly one passes.
	if ok, _ := l.allow("b"); !ok {
		t.Error("another token is limited by the first one's use")
	}
	c.Advance(wait)
	if ok, _ := l.allow("a"); !ok {
		t.Error("refused after waiting Retry-After")
	}
	if ok, _ := l.allow("a"); ok {
		t.Error("allowed twice after one interval")
	}
	if newRateLimiter(-1, 0, c.Now) != nil {
		t.Error("a negative rate does not disable the limiter")
	}
}

func TestRateLimitMiddleware(t *testing.T) {
	c := &clock{t: t0}
	l := newRateLimiter(0.5, 1, c.Now)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	h := l.middleware(next)
	call := func(p *principal) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/", nil)
		if p != nil {
			r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	p := &principal{name: "ci", key: "static:ci"}
	if w := call(p); w.Code != http.StatusNoContent {
		t.Fatalf("first request: %d", w.Code)
	}
	w := call(p)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "2" {
		t.Errorf("second request: %d Retry-After %q, want 429 and 2", w.Code, w.Header().Get("Retry-After"))
	}
	checkErrorShape(t, w.Code, w.Header(), w.Body.Bytes())
	if code := errorCode(t, w.Body.Bytes()); code != codeRateLimited {
		t.Errorf("code %q", code)
	}
	if w := call(nil); w.Code != http.StatusNoContent {
		t.Errorf("request without a principal: %d", w.Code)
	}
	c.Advance(2 * time.Second)
	if w := call(p); w.Code != http.StatusNoContent {
		t.Errorf("after Retry-After: %d", w.Code)
	}
	var disabled *rateLimiter
	if disabled.middleware(next) == nil {
		t.Error("nil limiter has no middleware")
	}
}

// TestRateLimitServer injects a tiny limit into a whole server.
func TestRateLimitServer(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Limits.RatePerSecond, o.Limits.Burst = 1, 1 })
	w := h.do(req{method: "GET", path: "/v3/sessions", token: adminSecret})
	if w.Code != 200 {
		t.Fatalf("first: %d", w.Code)
	}
	w = h.do(req{method: "POST", path: "/v3/sessions/" + agentSession + "/messages", token: adminSecret, body: `{"text":"x"}`})
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" {
		t.Errorf("second: %d Retry-After %q, want 429 and 1", w.Code, w.Header().Get("Retry-After"))
	}
	// Other tokens have their own budget; unauthenticated probes are not limited.
	if w := h.do(req{method: "GET", path: "/v3/sessions", token: steerSecret}); w.Code != 200 {
		t.Errorf("another token: %d", w.Code)
	}
	for range 3 {
		if w := h.do(req{method: "GET", path: "/healthz"}); w.Code != 200 {
			t.Errorf("healthz: %d", w.Code)
		}
	}
	h.clock.Advance(time.Second)
	if w := h.do(req{method: "GET", path: "/v3/sessions", token: adminSecret}); w.Code != 200 {
		t.Errorf("after a second: %d", w.Code)
	}
	if n := len(h.records(agentSession)); n != 0 {
		t.Errorf("a rate-limited message was stored")
	}
}

func TestLimitsDefaults(t *testing.T) {
	l := Limits{}.withDefaults()
	if l.MaxBody != 1<<20 || l.MaxText != 32<<10 || l.RatePerSecond != 1000 || l.Burst != 2000 {
		t.Errorf("defaults %+v", l)
	}
	if l := (Limits{RatePerSecond: 10}).withDefaults(); l.Burst != 20 {
		t.Errorf("burst for rate 10: %d", l.Burst)
	}
	if l := (Limits{RatePerSecond: 0.1}).withDefaults(); l.Burst != 1 {
		t.Errorf("burst for rate 0.1: %d", l.Burst)
	}
}
