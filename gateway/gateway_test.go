package gateway

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/config"
)

func lookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func newGateway(t *testing.T, yml string) *Gateway {
	t.Helper()
	cfg, err := config.Parse([]byte(yml), lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Data = t.TempDir()
	g, err := New(context.Background(), cfg, Options{
		Logger: slog.New(slog.DiscardHandler),
		Getenv: lookup(map[string]string{TokenEnv: "gateway-test-token-0123456789"}),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

const channels = `
adapters:
  slack:
    bot_token: xoxb-test
    signing_secret: slack-secret
    api_url: http://127.0.0.1:1/api/
  github:
    webhook_secret: github-secret
    token: ghp_test
    login: switchboard-bot
    api_url: http://127.0.0.1:1/
  jira:
    base_url: http://127.0.0.1:1
    email: bot@example.com
    api_token: jira-token
    webhook_secret: jira-secret-0123456789
`

// TestChannelsAreMountedUnderHooks checks that configured adapters are
// built from their sections and answer under /hooks/<name>, with or
// without a trailing slash (webhook senders do not follow redirects).
func TestChannelsAreMountedUnderHooks(t *testing.T) {
	g := newGateway(t, channels)
	h := g.Handler()

	// Slack's url_verification handshake, signed.
	body := []byte(`{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`)
	ts := fmt.Sprint(time.Now().Unix())
	mac := hmac.New(sha256.New, []byte("slack-secret"))
	fmt.Fprintf(mac, "v0:%s:%s", ts, body)
	req := httptest.NewRequest(http.MethodPost, "/hooks/slack/events", bytes.NewReader(body))
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P") {
		t.Fatalf("slack url_verification: %d %s", w.Code, w.Body)
	}

	// GitHub's ping, at /hooks/github without a trailing slash.
	ping := []byte(`{"zen":"Keep it logically awesome.","hook_id":1}`)
	gm := hmac.New(sha256.New, []byte("github-secret"))
	gm.Write(ping)
	req = httptest.NewRequest(http.MethodPost, "/hooks/github", bytes.NewReader(ping))
	req.Header.Set("X-GitHub-Event", "ping")
	req.Header.Set("X-GitHub-Delivery", "d-1")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(gm.Sum(nil)))
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code/100 != 2 {
		t.Fatalf("github ping at /hooks/github: %d %s", w.Code, w.Body)
	}

	// A forged request is refused, and the API is still served beside.
	req = httptest.NewRequest(http.MethodPost, "/hooks/jira", strings.NewReader(`{}`))
	req.Header.Set("X-Hub-Signature", "sha256=00")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusUnauthorized && w.Code != http.StatusForbidden {
		t.Fatalf("forged jira webhook: %d, want 401 or 403", w.Code)
	}
	req = httptest.NewRequest(http.MethodGet, "/healthz", nil)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("healthz: %d", w.Code)
	}
}

func TestAdapterConfigErrorsNameTheSection(t *testing.T) {
	for yml, want := range map[string]string{
		"adapters:\n  nope: {}\n": "adapters.nope: no such adapter",
		"adapters:\n  slack: {bot_token: x, signing_secret: y, typo_key: z}\n": "adapters.slack",
		"adapters:\n  slack: {bot_token: xoxb-1}\n":                            "adapters.slack",
		"adapters:\n  github: {token: x}\n":                                    "adapters.github",
	} {
		cfg, err := config.Parse([]byte(yml), lookup(nil))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Data = t.TempDir()
		g, err := New(context.Background(), cfg, Options{Logger: slog.New(slog.DiscardHandler), Announce: io.Discard, Getenv: lookup(nil)})
		if err == nil {
			g.Close()
			t.Errorf("%q: no error, want one naming %q", yml, want)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want it to name %q", yml, err, want)
		}
	}
}

// TestHookErrorsAreJSON checks that every error under /hooks/ has the JSON
// shape of the /v3 API's: the gateway's own 404 for an unknown path, the
// adapters' 404, 405, 401 and 413, and /hooks/sessions' 405.
func TestHookErrorsAreJSON(t *testing.T) {
	g := newGateway(t, channels+`
routes:
  - name: upstream
    runtime: http
    http: {url: "http://127.0.0.1:1", token: up-token, secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}
`)
	h := g.Handler()
	for _, tc := range []struct {
		method, path string
		body         string
		status       int
		code         string
	}{
		{http.MethodPost, "/hooks/nope", "{}", http.StatusNotFound, "not_found"},
		{http.MethodPost, "/hooks/", "{}", http.StatusNotFound, "not_found"},
		{http.MethodGet, "/hooks/github", "", http.StatusMethodNotAllowed, "method_not_allowed"},
		{http.MethodPost, "/hooks/github/extra", "{}", http.StatusNotFound, "not_found"},
		{http.MethodPost, "/hooks/github", "{}", http.StatusUnauthorized, "invalid_signature"},
		{http.MethodPost, "/hooks/slack/events", "{}", http.StatusUnauthorized, "invalid_signature"},
		{http.MethodPost, "/hooks/sessions", strings.Repeat("x", 2<<20), http.StatusRequestEntityTooLarge, "payload_too_large"},
		{http.MethodPost, "/hooks/slack/nope", "{}", http.StatusNotFound, "not_found"},
		{http.MethodPost, "/hooks/jira/a/b", "{}", http.StatusNotFound, "not_found"},
		{http.MethodGet, "/hooks/jira", "", http.StatusMethodNotAllowed, "method_not_allowed"},
		{http.MethodGet, "/hooks/sessions", "", http.StatusMethodNotAllowed, "method_not_allowed"},
		{http.MethodPost, "/hooks/sessions", "{}", http.StatusUnauthorized, "invalid_signature"},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body)))
		var got struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		err := json.Unmarshal(w.Body.Bytes(), &got)
		if w.Code != tc.status || err != nil || got.Error.Code != tc.code || got.Error.Message == "" ||
			w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %s %q; want %d with a JSON error %q", tc.method, tc.path, w.Code,
				w.Header().Get("Content-Type"), w.Body.String(), tc.status, tc.code)
		}
	}
}
