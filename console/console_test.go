package console_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/api"
	"github.com/switchboardhq/switchboard/console"
	"github.com/switchboardhq/switchboard/store"
)

// browser is an HTTP client with a cookie jar, as a browser holding a
// console session.
type browser struct {
	h    *harness
	c    *http.Client
	csrf string
}

func newBrowser(h *harness) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{h: h, c: &http.Client{Jar: jar}}
}

// do sends a request with the browser's cookies, and its CSRF token when
// withCSRF; it returns the response (body read into the map) for checks.
func (b *browser) do(method, path string, body any, withCSRF bool) (*http.Response, map[string]any) {
	b.h.t.Helper()
	var rd io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, b.h.url+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if withCSRF {
		req.Header.Set(api.CSRFHeader, b.csrf)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp, m
}

// want is do that fails the test unless the answer's status is status.
func (b *browser) want(status int, method, path string, body any, withCSRF bool) map[string]any {
	b.h.t.Helper()
	resp, m := b.do(method, path, body, withCSRF)
	if resp.StatusCode != status {
		b.h.t.Fatalf("%s %s: %d %v, want %d", method, path, resp.StatusCode, m, status)
	}
	return m
}

// copyTo returns a browser on h holding b's cookies and CSRF token, as
// another replica, or a thief, would see them.
func (b *browser) copyTo(h *harness) *browser {
	c := newBrowser(h)
	c.csrf = b.csrf
	c.c.Jar.SetCookies(mustURL(h.url), b.c.Jar.Cookies(mustURL(b.h.url)))
	return c
}

func (b *browser) login(secret string) (*http.Response, map[string]any) {
	resp, m := b.do("POST", "/console/login", map[string]string{"token": secret}, false)
	b.csrf = str(m, "csrf")
	return resp, m
}

func TestLoginSetsAStrictHttpOnlyCookie(t *testing.T) {
	h := newHarness(t, "")
	b := newBrowser(h)
	resp, m := b.login(adminSecret)
	if resp.StatusCode != 200 || b.csrf == "" || str(m, "name") != "admin" {
		t.Fatalf("login: %d %v", resp.StatusCode, m)
	}
	var c *http.Cookie
	for _, x := range resp.Cookies() {
		if x.Name == api.ConsoleCookie {
			c = x
		}
	}
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure {
		t.Fatalf("cookie = %+v, want HttpOnly, SameSite=Strict, not Secure over plain HTTP", c)
	}
	if strings.Contains(c.Value, adminSecret) {
		t.Fatal("the cookie holds the token")
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Fatalf("CSP = %q", csp)
	}
	// The page can find its session again (after a reload).
	if resp, m := b.do("GET", "/console/session", nil, false); resp.StatusCode != 200 || str(m, "csrf") != b.csrf {
		t.Fatalf("session: %d %v", resp.StatusCode, m)
	}
}

// TestSessionTTLIsConfigured: console.session_ttl sets how long a login
// lasts.
func TestSessionTTLIsConfigured(t *testing.T) {
	h := newHarnessWith(t, "", "console: {session_ttl: 90m}\n")
	b := newBrowser(h)
	start := time.Now()
	resp, m := b.login(adminSecret)
	if resp.StatusCode != 200 {
		t.Fatalf("login: %d %v", resp.StatusCode, m)
	}
	expires, err := time.Parse(time.RFC3339Nano, str(m, "expires"))
	if err != nil {
		t.Fatalf("expires %q: %v", str(m, "expires"), err)
	}
	if d := expires.Sub(start); d < 89*time.Minute || d > 91*time.Minute {
		t.Errorf("the session lasts %v, want 90m", d)
	}
}

func TestLoginCookieIsSecureOverTLS(t *testing.T) {
	h := newHarness(t, "")
	req := httptest.NewRequest("POST", "/console/login", strings.NewReader(`{"token":"`+adminSecret+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.TLS = &tls.ConnectionState{}
	w := httptest.NewRecorder()
	h.gw.Handler().ServeHTTP(w, req)
	if w.Code != 200 || !strings.Contains(w.Header().Get("Set-Cookie"), "Secure") {
		t.Fatalf("login over TLS: %d, Set-Cookie %q, want Secure", w.Code, w.Header().Get("Set-Cookie"))
	}
}

func TestLoginRefusesBadAgentAndMalformed(t *testing.T) {
	h := newHarness(t, "")
	for _, tc := range []struct {
		name, secret string
		want         int
	}{
		{"unknown token", "sb_not-a-token-0123456789abcdef0123", 401},
		{"agent token", agentSecret, 403},
		{"session-scoped token", api.SessionToken([]byte(sessionKey), "ses_x", time.Now().Add(time.Hour)), 403},
		{"empty token", "", 400},
	} {
		b := newBrowser(h)
		resp, m := b.login(tc.secret)
		if resp.StatusCode != tc.want || str(m, "error", "message") == "" {
			t.Errorf("%s: %d %v, want %d with a JSON error", tc.name, resp.StatusCode, m, tc.want)
		}
		if len(resp.Cookies()) != 0 {
			t.Errorf("%s: got cookies %v", tc.name, resp.Cookies())
		}
	}
	// A cross-site form cannot send JSON: form posts are refused.
	req, _ := http.NewRequest("POST", h.url+"/console/login", strings.NewReader("token="+adminSecret))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if code := statusOf(t, req); code != http.StatusUnsupportedMediaType {
		t.Fatalf("form login: %d, want 415", code)
	}
}

// statusOf sends req and returns the answer's status.
func statusOf(t *testing.T, req *http.Request) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestLoginFailuresAreRateLimited(t *testing.T) {
	h := newHarness(t, "")
	b := newBrowser(h)
	var last int
	for range 70 {
		resp, _ := b.login("sb_not-a-token-0123456789abcdef0123")
		if last = resp.StatusCode; last == http.StatusTooManyRequests {
			if resp.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
			break
		}
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("70 failed logins: last status %d, want 429 (limits.failed_auth_per_minute)", last)
	}
	// The limit is per client address, as for bearer tokens: the good token
	// waits too.
	if resp, _ := b.login(adminSecret); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("login while limited: %d, want 429", resp.StatusCode)
	}
}

// TestSessionsWorkAcrossReplicas: two gateways on one store; a session
// made on one is good on the other, and a logout on either ends it.
func TestSessionsWorkAcrossReplicas(t *testing.T) {
	dir := t.TempDir()
	a := newHarness(t, dir)
	other := newHarness(t, dir)
	b := newBrowser(a)
	b.login(adminSecret)
	b2 := b.copyTo(other)
	b2.want(201, "POST", "/v3/sessions", map[string]any{}, true)
	b2.want(204, "POST", "/console/logout", nil, true)
	b.want(401, "GET", "/v3/sessions", nil, false)
}

func TestCookieStandsForTheTokenAndNeedsCSRF(t *testing.T) {
	h := newHarness(t, "")
	admin := newBrowser(h)
	admin.login(adminSecret)
	admin.want(200, "GET", "/v3/sessions", nil, false)
	if m := admin.want(403, "POST", "/v3/sessions", map[string]any{}, false); str(m, "error", "code") != "csrf_token_invalid" {
		t.Fatalf("POST without CSRF: %v, want csrf_token_invalid", m)
	}
	good := admin.csrf
	admin.csrf = "wrong"
	admin.want(403, "POST", "/v3/sessions", map[string]any{}, true)
	admin.csrf = good
	id := str(admin.want(201, "POST", "/v3/sessions", map[string]any{}, true), "id")
	// Messages sent through the console are the token's.
	m := admin.want(202, "POST", "/v3/sessions/"+id+"/messages", map[string]any{"text": "hi"}, true)
	if a := str(m, "message", "envelope", "actor", "id"); a != "client:admin" {
		t.Fatalf("steer through the console: actor %q, want client:admin", a)
	}

	// A steer token's session has the steer scope only.
	steer := newBrowser(h)
	steer.login(steerSecret)
	steer.want(403, "GET", "/v3/deliveries", nil, false)
	steer.want(200, "GET", "/v3/sessions/"+id+"/messages", nil, false)

	// A bearer token is unaffected by a cookie beside it, CSRF or not.
	if code, m := h.call("POST", "/v3/sessions", adminSecret, map[string]any{}); code != 201 {
		t.Fatalf("bearer POST: %d %v", code, m)
	}
	// A made-up cookie is 401.
	req, _ := http.NewRequest("GET", h.url+"/v3/sessions", nil)
	req.AddCookie(&http.Cookie{Name: api.ConsoleCookie, Value: "made-up"})
	if code := statusOf(t, req); code != 401 {
		t.Fatalf("made-up cookie: %d, want 401", code)
	}
}

func TestLogoutEndsTheSessionEverywhere(t *testing.T) {
	h := newHarness(t, "")
	b := newBrowser(h)
	b.login(adminSecret)
	b.want(403, "POST", "/console/logout", nil, false)
	// Keep the cookie to replay it after logout, as a thief would.
	thief := b.copyTo(h)
	b.want(204, "POST", "/console/logout", nil, true)
	thief.want(401, "GET", "/v3/sessions", nil, false)
	thief.want(401, "GET", "/console/session", nil, false)
}

func TestSessionsExpireAndKeepOnlyHashes(t *testing.T) {
	h := newHarness(t, "")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := console.NewSessions(h.gw.Store(), time.Hour, func() time.Time { return now })
	ctx := context.Background()
	id, sess, err := s.Create(ctx, api.ConsoleLogin{Name: "admin", Scopes: []store.Scope{store.ScopeAdmin}, TokenHash: api.HashToken(adminSecret)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.gw.Store().Value(ctx, console.Namespace, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the session id is a KV key: %v", err)
	}
	got, err := s.ConsoleSession(ctx, id)
	if err != nil || got.CSRF != sess.CSRF || got.TokenHash != api.HashToken(adminSecret) {
		t.Fatalf("ConsoleSession = %+v, %v", got, err)
	}
	now = now.Add(time.Hour)
	if _, err := s.ConsoleSession(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after the TTL: %v, want ErrNotFound", err)
	}
	// The next login sweeps the expired record away; a logout deletes its own.
	recordOf := func(id string) error {
		sum := sha256.Sum256([]byte(id))
		_, err := h.gw.Store().Value(ctx, console.Namespace, hex.EncodeToString(sum[:]))
		return err
	}
	if err := recordOf(id); err != nil {
		t.Fatalf("the expired record before a login: %v, want it there", err)
	}
	id2, _, err := s.Create(ctx, api.ConsoleLogin{Name: "admin", Scopes: []store.Scope{store.ScopeAdmin}, TokenHash: api.HashToken(adminSecret)})
	if err != nil {
		t.Fatal(err)
	}
	if err := recordOf(id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the expired record after a login: %v, want it swept", err)
	}
	if err := recordOf(id2); err != nil {
		t.Errorf("the new session's record: %v", err)
	}
	if err := s.End(ctx, id2); err != nil {
		t.Fatal(err)
	}
	if err := recordOf(id2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a logged-out record: %v, want it deleted", err)
	}
}

// TestSweepGoesRound: expired records are swept a batch per login, going
// round the namespace, and live ones are kept.
func TestSweepGoesRound(t *testing.T) {
	h := newHarness(t, "")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := console.NewSessions(h.gw.Store(), time.Hour, func() time.Time { return now })
	ctx := context.Background()
	login := api.ConsoleLogin{Name: "admin", Scopes: []store.Scope{store.ScopeAdmin}, TokenHash: api.HashToken(adminSecret)}
	var old []string
	for range 150 {
		id, _, err := s.Create(ctx, login)
		if err != nil {
			t.Fatal(err)
		}
		old = append(old, id)
	}
	now = now.Add(2 * time.Hour)
	live, _, err := s.Create(ctx, login)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for i := 0; i < 10; i++ {
		n, err := s.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	keys, err := h.gw.Store().Keys(ctx, console.Namespace, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 {
		t.Errorf("%d records left after sweeping (%d swept, plus what the login swept), want the live one only", len(keys), total)
	}
	if _, err := s.ConsoleSession(ctx, live); err != nil {
		t.Errorf("the live session after sweeping: %v", err)
	}
	if _, err := s.ConsoleSession(ctx, old[0]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an expired session: %v, want ErrNotFound", err)
	}
}

func TestConsolePagesAreServed(t *testing.T) {
	h := newHarness(t, "")
	for _, p := range []string{"/console/", "/console/app.js", "/console/console.css", "/console/markdown.js"} {
		resp, err := http.Get(h.url + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s: %d, CSP %q", p, resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
		}
		if strings.HasSuffix(p, ".js") && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
			t.Errorf("GET %s: Content-Type %q", p, resp.Header.Get("Content-Type"))
		}
	}
	req, _ := http.NewRequest("POST", h.url+"/console/", nil)
	if code := statusOf(t, req); code != 405 {
		t.Fatalf("POST /console/: %d, want 405", code)
	}
	// Revalidation by ETag.
	resp, err := http.Get(h.url + "/console/app.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ = http.NewRequest("GET", h.url+"/console/app.js", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	if code := statusOf(t, req); resp.Header.Get("ETag") == "" || code != http.StatusNotModified {
		t.Fatalf("revalidation: ETag %q, %d, want 304", resp.Header.Get("ETag"), code)
	}
	req, _ = http.NewRequest("GET", h.url+"/console/nothing.js", nil)
	if code := statusOf(t, req); code != 404 {
		t.Fatalf("GET /console/nothing.js: %d, want 404", code)
	}
}
