package gateway

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
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
