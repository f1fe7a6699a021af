package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/internal/testclock"
)

func TestRateLimiterBuckets(t *testing.T) {
	c := testclock.New(t0)
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
	c := testclock.New(t0)
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
	h = disabled.middleware(next)
	if h == nil {
		t.Fatal("nil limiter has no middleware")
	}
	if reflect.ValueOf(h).Pointer() != reflect.ValueOf(next).Pointer() {
		t.Error("nil limiter wraps next instead of returning it")
	}
	for range 3 { // well over the enabled limiter's burst of 1
		if w := call(p); w.Code != http.StatusNoContent {
			t.Errorf("nil limiter: %d, want the request passed through", w.Code)
		}
	}
}

// bucketCount is how many buckets l holds.
func bucketCount(l *rateLimiter) int {
	n := 0
	l.buckets.Range(func(any, any) bool { n++; return true })
	return n
}

// TestRateLimiterPrunes: buckets full again are dropped as new ones come,
// those still in use are kept, and a dropped key starts over with a full
// bucket, which it had anyway.
func TestRateLimiterPrunes(t *testing.T) {
	c := testclock.New(t0)
	l := newRateLimiter(1, 2, c.Now)
	for i := range pruneEvery - 1 {
		l.allow("old-" + strconv.Itoa(i)) // one token left each
	}
	for range 2 {
		l.allow("busy") // the pruneEvery-th bucket; nothing full to sweep
	}
	if n := bucketCount(l); n != pruneEvery {
		t.Fatalf("%d buckets before any refill, want %d", n, pruneEvery)
	}
	c.Advance(time.Second) // the old buckets are full again; busy has one token
	for i := range pruneEvery {
		if ok, _ := l.allow("new-" + strconv.Itoa(i)); !ok {
			t.Fatalf("new key %d refused", i)
		}
	}
	if n := bucketCount(l); n != pruneEvery+1 {
		t.Errorf("%d buckets after a sweep, want %d (the new ones and busy)", n, pruneEvery+1)
	}
	if _, ok := l.buckets.Load("old-0"); ok {
		t.Error("a full bucket survived the sweep")
	}
	if ok, _ := l.allow("busy"); !ok {
		t.Error("busy refused its last token")
	}
	if ok, _ := l.allow("busy"); ok {
		t.Error("busy's bucket was swept while in use: allowed over its burst")
	}
	for i := range 3 {
		if ok, _ := l.allow("old-0"); ok != (i < 2) {
			t.Errorf("swept key, request %d: allowed=%v, want a full burst of 2 then a refusal", i, ok)
		}
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

// TestRateLimiterPruneRace runs sweeps alongside requests (for -race): a
// bucket in use is never swept, so its key never gets over its burst.
func TestRateLimiterPruneRace(t *testing.T) {
	c := testclock.New(t0) // frozen: a used bucket never fills up again
	l := newRateLimiter(1, 2, c.Now)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range pruneEvery {
				l.allow("g" + strconv.Itoa(g) + "-" + strconv.Itoa(i)) // new buckets: sweeps
				if ok, _ := l.allow("hot"); ok {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := allowed.Load(); n != 2 {
		t.Errorf("hot key allowed %d times with a burst of 2 and no time passing", n)
	}
}
