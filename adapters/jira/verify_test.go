package jira

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
)

// TestSignKnownVector checks Sign against a digest computed independently:
// printf '{"webhookEvent":"comment_created"}' |
// openssl dgst -sha256 -hmac "It's a Secret to Everybody"
func TestSignKnownVector(t *testing.T) {
	body := []byte(`{"webhookEvent":"comment_created"}`)
	const want = "sha256=22017cbcbbd066b6f6a6251bed0bcbc6f8ca22057ecd9a9ee50bc878e60147a1"
	got := Sign([]byte(testSecret), body)
	if got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
	h := http.Header{}
	h.Set(SignatureHeader, got)
	if err := VerifySignature([]byte(testSecret), h, body); err != nil {
		t.Fatalf("VerifySignature(Sign) = %v", err)
	}
}

func TestVerifySignature(t *testing.T) {
	body := readFixture(t, "zulip-comment_created.json")
	good := Sign([]byte(testSecret), body)
	for _, tc := range []struct {
		name   string
		sig    string
		body   []byte
		secret string
		reason string // "" when valid
	}{
		{"valid", good, body, testSecret, ""},
		{"valid with uppercase method", "SHA256=" + strings.TrimPrefix(good, "sha256="), body, testSecret, ""},
		{"forged secret", Sign([]byte("not-the-secret"), body), body, testSecret, "mismatch"},
		{"tampered body", good, []byte(strings.Replace(string(body), "Leaving", "Deleting", 1)), testSecret, "mismatch"},
		{"missing", "", body, testSecret, "missing"},
		{"sha1", "sha1=" + strings.Repeat("ab", 20), body, testSecret, "malformed"},
		{"no method", strings.TrimPrefix(good, "sha256="), body, testSecret, "malformed"},
		{"not hex", "sha256=zz" + good[9:], body, testSecret, "malformed"},
		{"truncated", good[:30], body, testSecret, "malformed"},
		{"no secret configured", good, body, "", "missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.sig != "" {
				h.Set(SignatureHeader, tc.sig)
			}
			err := VerifySignature([]byte(tc.secret), h, tc.body)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("VerifySignature = %v", err)
				}
				return
			}
			var ae *AuthError
			if !errors.As(err, &ae) || ae.Reason != tc.reason {
				t.Fatalf("VerifySignature = %v, want reason %q", err, tc.reason)
			}
		})
	}
}

func TestHandlerAuthentication(t *testing.T) {
	body := readFixture(t, "zulip-comment_created.json")
	signed := Sign([]byte(testSecret), body)
	forged := Sign([]byte("guess"), body)
	secretOnly := func(c *Config) {}
	tokenOnly := func(c *Config) { c.WebhookSecret, c.URLToken = "", testURLToken }
	both := func(c *Config) { c.URLToken = testURLToken }
	for _, tc := range []struct {
		name   string
		mode   func(*Config)
		path   string
		sig    string
		status int
		reason string // the rejection counted, if any
	}{
		{"signed", secretOnly, "/", signed, 204, ""},
		{"signed, empty path", secretOnly, "", signed, 204, ""},
		{"forged", secretOnly, "/", forged, 401, "mismatch"},
		{"missing signature", secretOnly, "/", "", 401, "missing"},
		{"token path without token mode", secretOnly, "/" + testURLToken, signed, 404, ""},
		{"token mode: right token", tokenOnly, "/" + testURLToken, "", 204, ""},
		{"token mode: right token, trailing slash", tokenOnly, "/" + testURLToken + "/", "", 204, ""},
		{"token mode: wrong token", tokenOnly, "/" + strings.ToUpper(testURLToken), "", 404, "token"},
		{"token mode: token prefix", tokenOnly, "/" + testURLToken[:8], "", 404, "token"},
		{"token mode: no token", tokenOnly, "/", "", 401, "missing"},
		{"token mode: signature without secret is no credential", tokenOnly, "/", signed, 401, "missing"},
		{"both: signed", both, "/", signed, 204, ""},
		{"both: token", both, "/" + testURLToken, "", 204, ""},
		{"both: token with a forged signature", both, "/" + testURLToken, forged, 401, "mismatch"},
		{"nested path", both, "/" + testURLToken + "/x", "", 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder()
			a := newTestAdapter(t, newFakeJira(t), rec, tc.mode)
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(body)))
			r.URL.Path = tc.path
			if tc.sig != "" {
				r.Header.Set(SignatureHeader, tc.sig)
			}
			w := httptest.NewRecorder()
			a.Handler().ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status = %d, want %d (%s)", w.Code, tc.status, w.Body)
			}
			if n := len(rec.All()); (n == 1) != (tc.status == 204) || n > 1 {
				t.Fatalf("%d messages ingested", n)
			}
			if tc.reason != "" {
				if got := adaptertest.CounterValue(a.metrics.rejected.WithLabelValues(tc.reason)); got != 1 {
					t.Errorf("rejections with reason %q = %v, want 1", tc.reason, got)
				}
			}
		})
	}
}

func TestNewRefusesUnauthenticatedWebhooks(t *testing.T) {
	_, err := New(&Config{BaseURL: "https://acme.atlassian.net", Email: testEmail, APIToken: testAPIToken}, adapters.Deps{Ingress: newRecorder()})
	if err == nil || !strings.Contains(err.Error(), "webhook_secret: is required") {
		t.Fatalf("New without a secret or token = %v", err)
	}
}

func TestHandlerLimits(t *testing.T) {
	rec := newRecorder()
	a := newTestAdapter(t, newFakeJira(t), rec, func(c *Config) { c.MaxBody = 64 })
	if w := post(a, []byte(`{"webhookEvent":"comment_created","comment":{"body":"`+strings.Repeat("x", 100)+`"}}`)); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: status = %d, want 413", w.Code)
	}
	if got := adaptertest.CounterValue(a.metrics.rejected.WithLabelValues("too_large")); got != 1 {
		t.Errorf("too_large rejections = %v", got)
	}
	w := httptest.NewRecorder()
	a.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: status = %d, want 405", w.Code)
	}
	if w := post(a, []byte(`{not json`)); w.Code != http.StatusBadRequest {
		t.Errorf("malformed JSON: status = %d, want 400", w.Code)
	}
	if w := post(a, []byte(`{"webhookEvent":"worklog_created"}`)); w.Code != http.StatusNoContent {
		t.Errorf("unhandled event: status = %d, want 204", w.Code)
	}
	if n := len(rec.All()); n != 0 {
		t.Fatalf("%d ingested", n)
	}
}

func TestConfigValidate(t *testing.T) {
	cloud := func(c Config) Config {
		c.BaseURL, c.Email, c.APIToken = "https://acme.atlassian.net", testEmail, testAPIToken
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none means valid
	}{
		{"cloud with secret", cloud(Config{WebhookSecret: "s"}), nil},
		{"cloud with url token", cloud(Config{URLToken: testURLToken}), nil},
		{"data center", Config{BaseURL: "https://jira.example.com/jira", PersonalAccessToken: testPAT, WebhookSecret: "s"}, nil},
		{"neither secret nor token", cloud(Config{}), []string{"webhook_secret: is required"}},
		{"no base url", Config{Email: "e", APIToken: "t", WebhookSecret: "s"}, []string{"base_url: is required"}},
		{"bad base url", Config{BaseURL: "acme.atlassian.net", Email: "e", APIToken: "t", WebhookSecret: "s"}, []string{"base_url: must be an http(s) URL"}},
		{"no credentials", Config{BaseURL: "https://x", WebhookSecret: "s"}, []string{"api_token: is required"}},
		{"both credentials", cloud(Config{PersonalAccessToken: testPAT, WebhookSecret: "s"}), []string{"personal_access_token: set either"}},
		{"token without email", Config{BaseURL: "https://x", APIToken: "t", WebhookSecret: "s"}, []string{"email: is required"}},
		{"short url token", cloud(Config{URLToken: "abc"}), []string{"url_token: must be at least"}},
		{"url token with a slash", cloud(Config{URLToken: "abcdefgh/ijklmnopq"}), []string{"url_token: may hold only"}},
		{"bad site", cloud(Config{WebhookSecret: "s", Site: "https://acme.atlassian.net"}), []string{"site:"}},
		{"bad numbers", cloud(Config{WebhookSecret: "s", MaxChars: 40000, MaxBody: -1, LookupTimeout: -1}), []string{"max_chars:", "max_body:", "lookup_timeout:"}},
		{"tiny max_chars", cloud(Config{WebhookSecret: "s", MaxChars: 10}), []string{"max_chars: must be at least 1000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %+v", tc.cfg)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	p, ok := adapters.Lookup(Name)
	if !ok {
		t.Fatal("the jira plugin is not registered")
	}
	cfg := p.NewConfig().(*Config)
	cfg.BaseURL, cfg.Email, cfg.APIToken, cfg.WebhookSecret = "https://acme.atlassian.net", testEmail, testAPIToken, "s"
	a, err := p.New(cfg, adapters.Deps{Ingress: newRecorder()})
	if err != nil {
		t.Fatalf("plugin New: %v", err)
	}
	if _, ok := a.(adapters.HTTPHandler); !ok {
		t.Error("the adapter is not an HTTPHandler")
	}
	if _, err := p.New(cfg, adapters.Deps{}); err == nil {
		t.Error("plugin New without an ingress succeeded")
	}
}

func TestConfigFromYAML(t *testing.T) {
	const section = `
base_url: https://acme.atlassian.net
email: bot@acme.example
api_token: t0k3n
webhook_secret: s3cret
url_token: u7Gk2pQx9LmN4rTs
description_steers: true
max_chars: 20000
lookup_timeout: 500ms
user_cache_ttl: 10m
`
	p, _ := adapters.Lookup(Name)
	cfg := p.NewConfig().(*Config)
	dec := yaml.NewDecoder(strings.NewReader(section))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if !cfg.DescriptionSteers || cfg.MaxChars != 20000 || cfg.LookupTimeout.D() != 500*time.Millisecond ||
		cfg.UserCacheTTL.D() != 10*time.Minute || cfg.MaxBody != DefaultMaxBody || cfg.URLToken != testURLToken {
		t.Fatalf("decoded %+v", cfg)
	}
	dec = yaml.NewDecoder(strings.NewReader("base_url: https://x\nwebhook_secert: typo\n"))
	dec.KnownFields(true)
	if err := dec.Decode(p.NewConfig()); err == nil {
		t.Error("an unknown key was accepted")
	}
}

func TestRunLearnsIdentityAndStops(t *testing.T) {
	fake := newFakeJira(t)
	a := newTestAdapter(t, fake, newRecorder(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	adaptertest.Eventually(t, "the bot account to be learned", func() bool { return a.knownIdentity().AccountID == botAccountID })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if n := fake.callCount("GET myself"); n != 1 {
		t.Errorf("GET myself called %d times", n)
	}
}

func TestRunWithRejectedCredentialsIsUnhealthyButRuns(t *testing.T) {
	fake := newFakeJira(t)
	a := newTestAdapter(t, fake, newRecorder(), func(c *Config) { c.APIToken = "revoked" })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	adaptertest.Eventually(t, "Check to report the rejection", func() bool { return a.Check(ctx) != nil })
	select {
	case err := <-done:
		t.Fatalf("Run ended on rejected credentials: %v", err)
	default:
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if err := a.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("Check = %v", err)
	}
}
