package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/internal/testclock"
)

// TestFailedAuthIsLimitedPerClient: past its allowance of requests with a
// missing or unknown token, a client address is answered 429 with
// Retry-After, even with a valid token, until its bucket refills; other
// addresses are not affected.
func TestFailedAuthIsLimitedPerClient(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Limits.FailedAuthPerMinute = 3 })
	send := func(remote, token string) *httptest.ResponseRecorder {
		t.Helper()
		r := httptest.NewRequest(http.MethodGet, "/v3/sessions", nil)
		r.RemoteAddr = remote
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.srv.ServeHTTP(w, r)
		checkErrorShape(t, w.Code, w.Header(), w.Body.Bytes())
		return w
	}
	const a, b = "198.51.100.7:5000", "198.51.100.8:5000"
	for i, token := range []string{"", "sb_wrong-1", "sb_wrong-2"} {
		if w := send(a, token); w.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d %s, want 401", i, w.Code, w.Body)
		}
	}
	for _, token := range []string{"sb_wrong-3", steerSecret} {
		w := send(a, token)
		if w.Code != http.StatusTooManyRequests || errorCode(t, w.Body.Bytes()) != codeRateLimited ||
			w.Header().Get("Retry-After") != "20" || !strings.Contains(w.Body.String(), "failed_auth_per_minute") {
			t.Fatalf("over the limit, token %q: %d Retry-After %q %s; want 429, Retry-After 20",
				token, w.Code, w.Header().Get("Retry-After"), w.Body)
		}
	}
	if w := send("198.51.100.7:6000", "sb_wrong-4"); w.Code != http.StatusTooManyRequests {
		t.Errorf("same address, other port: %d, want 429", w.Code)
	}
	if w := send(b, "sb_wrong-1"); w.Code != http.StatusUnauthorized {
		t.Errorf("another address: %d, want 401", w.Code)
	}
	if w := send(b, steerSecret); w.Code != http.StatusOK {
		t.Errorf("another address, valid token: %d, want 200", w.Code)
	}
	h.clock.Advance(20 * time.Second)
	if w := send(a, steerSecret); w.Code != http.StatusOK {
		t.Errorf("after the refill, valid token: %d %s, want 200", w.Code, w.Body)
	}
	if w := send(a, "sb_wrong-5"); w.Code != http.StatusUnauthorized {
		t.Errorf("after the refill, wrong token: %d, want 401", w.Code)
	}
}

// TestRateLimiterMaxKeys: a limiter with maxKeys holds no more buckets
// than that; new keys then share one overflow bucket, so that many
// addresses cannot grow the map or escape the limit.
func TestRateLimiterMaxKeys(t *testing.T) {
	c := testclock.New(t0)
	l := newRateLimiter(1, 1, c.Now)
	l.maxKeys = 4
	for i := range 10 {
		l.take("k" + strconv.Itoa(i))
	}
	if n := bucketCount(l); n != 4 || l.size.Load() != 4 {
		t.Fatalf("%d buckets (size %d), want 4", n, l.size.Load())
	}
	if d := l.wait("k3"); d != time.Second {
		t.Errorf("a held key's wait = %v, want 1s", d)
	}
	if d := l.wait("k-new"); d != time.Second {
		t.Errorf("a new key's wait while the map is full = %v, want the overflow bucket's 1s", d)
	}
	c.Advance(time.Second)
	for i := range pruneEvery {
		l.take("n" + strconv.Itoa(i))
	}
	if n := bucketCount(l); n > 4 || int64(n) != l.size.Load() {
		t.Errorf("%d buckets (size %d) after a sweep, want at most 4", n, l.size.Load())
	}
	if _, ok := l.buckets.Load("k0"); ok {
		t.Error("a full bucket survived the sweep")
	}
}

// TestStreamsPerToken: a token holds at most StreamsPerToken event
// streams and long polls; one more is answered 429 with Retry-After, while
// other tokens and plain reads go on, and a long poll gives its slot back
// when it answers.
func TestStreamsPerToken(t *testing.T) {
	wl := (*watchLog)(nil)
	h := newHarness(t, func(o *Options) {
		o.Limits.StreamsPerToken = 2
		wl = newWatchLog(o.Store)
		o.Log = wl
	})
	id := h.newSession()
	ts := httptest.NewServer(h.srv)
	t.Cleanup(ts.Close) // after the streams are closed
	path := "/v3/sessions/" + id + "/stream"
	openStream(t, ts.URL, path, steerSecret, nil)
	for len(wl.emptyReads) > 0 { // the stream's first read
		<-wl.emptyReads
	}

	// The second slot: a long poll, waiting.
	done := make(chan int, 1)
	go func() {
		hr, _ := http.NewRequest("GET", ts.URL+"/v3/sessions/"+id+"/messages?wait=60s", nil)
		hr.Header.Set("Authorization", "Bearer "+steerSecret)
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			done <- 0
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	await(t, wl.emptyReads, "the long poll to wait")

	client := &http.Client{Timeout: 10 * time.Second} // a stream let through fails the test, not hangs it
	for _, p := range []string{path, "/v3/sessions/" + id + "/messages?wait=10s"} {
		hr, _ := http.NewRequest("GET", ts.URL+p, nil)
		hr.Header.Set("Authorization", "Bearer "+steerSecret)
		resp, err := client.Do(hr)
		if err != nil {
			t.Fatalf("GET %s over the limit: %v", p, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		checkErrorShape(t, resp.StatusCode, resp.Header, body)
		if resp.StatusCode != http.StatusTooManyRequests || errorCode(t, body) != codeRateLimited ||
			resp.Header.Get("Retry-After") != "5" || !strings.Contains(string(body), "streams_per_token") {
			t.Fatalf("GET %s over the limit: %d Retry-After %q %s; want 429", p, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	if w := h.do(req{method: "GET", path: "/v3/sessions/" + id + "/messages", token: steerSecret}); w.Code != http.StatusOK {
		t.Errorf("a plain read over the limit: %d, want 200", w.Code)
	}
	openStream(t, ts.URL, path, adminSecret, nil) // another token

	h.steer(id, "wake", "k1")
	select {
	case code := <-done:
		if code != http.StatusOK {
			t.Fatalf("long poll: %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll did not wake")
	}
	openStream(t, ts.URL, path, steerSecret, nil) // the long poll's slot
}
