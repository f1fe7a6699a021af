package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/webhook"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// strongSecret is long enough for CheckSecret.
const strongSecret = "3f0c8e1d2b7a4c6e9f1a0b2c3d4e5f60"

func TestEmptyFileIsTheEmbeddedDefault(t *testing.T) {
	c, err := Parse(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:8080" || c.Store != "sqlite" || c.Data != "data" || c.Limits.MaxBody != 1<<20 {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestExpandsEnvironmentInValuesOnly(t *testing.T) {
	yml := `
listen: ${ADDR:-127.0.0.1:9999}
tokens:
  - name: ci
    secret: ${CI_TOKEN}
    scopes: [steer]
`
	// A secret with YAML-special characters must stay one string.
	secret := "a: b # not a comment [x] 0123456789abcdef"
	c, err := Parse([]byte(yml), env(map[string]string{"CI_TOKEN": secret}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9999" {
		t.Errorf("listen = %q, want the default from ${ADDR:-…}", c.Listen)
	}
	if c.Tokens[0].Secret != secret {
		t.Errorf("secret = %q, want %q", c.Tokens[0].Secret, secret)
	}
	if c.Tokens[0].Scopes[0] != store.ScopeSteer {
		t.Errorf("scopes = %v", c.Tokens[0].Scopes)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		name, yml string
		env       map[string]string
		want      string
	}{
		{"unset variable", "tokens:\n  - name: a\n    secret: ${NOPE}\n    scopes: [admin]\n", nil, "tokens[0].secret: environment variable NOPE is not set"},
		{"unknown key", "listne: x\n", nil, "listne"},
		{"bad scope", "tokens:\n  - name: a\n    secret: " + strongSecret + "\n    scopes: [root]\n", nil, `tokens[0].scopes[0]: unknown scope "root"`},
		{"agent without sessions", "tokens:\n  - name: a\n    secret: " + strongSecret + "\n    scopes: [agent]\n", nil, "tokens[0].sessions"},
		{"bad listen", "listen: nope\n", nil, `listen: "nope" is not host:port`},
		{"bad store", "store: mysql://x\n", nil, "store: want"},
		{"bad level", "log: {level: loud}\n", nil, "log.level"},
		{"unclosed", "data: ${X\n", nil, "data: unclosed"},
		{"console session too long", "console: {session_ttl: 800h}\n", nil, "console.session_ttl: must be between 1s and 720h"},
		{"console session negative", "console: {session_ttl: -1h}\n", nil, "console.session_ttl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yml), env(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestFieldErrorIsInspectable(t *testing.T) {
	_, err := Parse([]byte("listen: nope\n"), env(nil))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Key != "listen" {
		t.Fatalf("err = %#v, want a *FieldError for listen", err)
	}
}

func TestExpand(t *testing.T) {
	lookup := env(map[string]string{"A": "1", "EMPTY": ""})
	for in, want := range map[string]string{
		"x${A}y":       "x1y",
		"$$A":          "$A",
		"cost $5":      "cost $5",
		"${EMPTY:-d}":  "d",
		"${EMPTY}":     "",
		"${MISSING:-}": "",
		"${A}${A}":     "11",
		"trailing $":   "trailing $",
	} {
		got, err := Expand(in, lookup)
		if err != nil || got != want {
			t.Errorf("Expand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := Expand("${1BAD}", lookup); err == nil {
		t.Error("want an error for an invalid name")
	}
}

// TestExampleConfigsAreValid keeps the documented examples loadable, with
// the secrets they take from the environment set, and free of published
// secrets.
func TestExampleConfigsAreValid(t *testing.T) {
	files, err := filepath.Glob("../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example configs found: %v", err)
	}
	whsec, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("CI_TOKEN", strongSecret)
	t.Setenv("UPSTREAM_TOKEN", "tok")
	t.Setenv("UPSTREAM_WEBHOOK_SECRET", whsec)
	for _, f := range files {
		c, err := Load(f)
		if err == nil {
			err = c.CheckPublished()
		}
		if err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestRouteErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ yml, want string }{
		{"routes:\n  - name: a\n    runtime: exec\n", "routes[0].exec.command: is required"},
		{"routes:\n  - name: a\n    runtime: http\n    http: {url: http://x}\n", "routes[0].http.secrets"},
		{"routes:\n  - name: a\n    session: {by: fixed}\n", "routes[0].session.id"},
		{"routes:\n  - name: a\n    session: {by: ref}\n", "routes[0].session.ref"},
		{"routes:\n  - name: a\n    busy: interrupt\n", "routes[0].busy: interrupt works with runtime: exec only"},
		{"routes:\n  - name: a\n    progress: message\n", "routes[0].progress: message needs runtime exec or http"},
		{"routes:\n  - name: a\n    progress: emoji\n", `routes[0].progress: want reactions, message or none, got "emoji"`},
		{"routes:\n  - name: a\n  - name: a\n", `routes[1].name: "a" is used by another route`},
		{"routes:\n  - name: a\n    match: {where: ['[']}\n", "routes[0].match: bad glob"},
		{"router: {default_route: nope}\n", "router.default_route: names no route"},
		{"routes:\n  - name: a\n    debounce: soon\n", "want a duration"},
		{"routes:\n  - {name: a, runtime: exec, exec: {command: [x], user: no-such-user-sb}}\n", `routes[0].exec.user: no user "no-such-user-sb"`},
	} {
		_, err := Parse([]byte(tc.yml), env(nil))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.yml, err, tc.want)
		}
	}
}

func TestExecUserThatExistsIsAccepted(t *testing.T) {
	// root exists wherever these tests run; by name and by uid.
	for _, u := range []string{"root", "0"} {
		yml := "routes:\n  - {name: a, runtime: exec, exec: {command: [x], user: \"" + u + "\"}}\n"
		c, err := Parse([]byte(yml), env(nil))
		if err != nil {
			t.Fatalf("user %q: %v", u, err)
		}
		if got := c.Routes[0].Exec.User; got != u {
			t.Errorf("exec.user = %q, want %q", got, u)
		}
	}
}

func TestAdapterSectionsExpandOnce(t *testing.T) {
	c, err := Parse([]byte("adapters:\n  slack:\n    bot_token: ${TOKEN}\n"), env(map[string]string{"TOKEN": "xoxb-${not-a-var}"}))
	if err != nil {
		t.Fatal(err)
	}
	node := c.Adapters["slack"]
	var section struct {
		BotToken string `yaml:"bot_token"`
	}
	if err := DecodeNode(&node, &section); err != nil || section.BotToken != "xoxb-${not-a-var}" {
		t.Fatalf("section %+v, %v: a value holding \"${\" after expansion must survive", section, err)
	}
	if err := DecodeNode(&node, &struct{}{}); err == nil || !strings.Contains(err.Error(), "bot_token") {
		t.Fatalf("unknown key: err = %v, want it named", err)
	}
}

// TestShortSecretsAreRefused: a secret the operator chooses must be at
// least 32 bytes, and the error tells how to make one.
func TestShortSecretsAreRefused(t *testing.T) {
	for _, tc := range []struct{ yml, want string }{
		{"tokens:\n  - name: a\n    secret: x\n    scopes: [admin]\n", "tokens[0].secret: is 1 bytes, shorter than 32"},
		{"tokens:\n  - name: a\n    secret: 0123456789abcdef0123456789abcde\n    scopes: [admin]\n", "tokens[0].secret: is 31 bytes"},
		{"router: {session_key: k}\n", "router.session_key: is 1 bytes, shorter than 32"},
		{"router: {session_key: 0123456789abcdef}\n", "router.session_key: is 16 bytes"},
		{"routes:\n  - name: a\n    runtime: http\n    http: {url: http://x, token: t, secrets: [whsec_c2hvcnQ=]}\n", "routes[0].http.secrets[0]: webhook: invalid secret: 5 bytes"},
	} {
		_, err := Parse([]byte(tc.yml), env(nil))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "openssl rand -hex 32") && strings.Contains(tc.want, "shorter") {
			t.Errorf("%q: err = %v, want %q and how to make a secret", tc.yml, err, tc.want)
		}
	}
	for _, yml := range []string{
		"tokens:\n  - name: a\n    secret: " + strongSecret + "\n    scopes: [admin]\n",
		"router: {session_key: " + strongSecret + "}\n",
		"router: {session_key: \"\"}\n", // empty: a random key per process
	} {
		if _, err := Parse([]byte(yml), env(nil)); err != nil {
			t.Errorf("%q: %v", yml, err)
		}
	}
}

// TestPublishedSecretsAreRefused: the secrets this repository's examples
// once printed, and the Standard Webhooks spec's example, are refused by
// CheckSecret and CheckPublished wherever they appear.
func TestPublishedSecretsAreRefused(t *testing.T) {
	for _, s := range []string{"change-me-to-a-long-secret-0123456789", "CHANGEME-0123456789abcdef0123456789"} {
		if err := CheckSecret(s); err == nil || !strings.Contains(err.Error(), "published example") {
			t.Errorf("CheckSecret(%q) = %v, want a published-example error", s, err)
		}
	}
	// Tokens are refused by Parse itself.
	_, err := Parse([]byte("tokens:\n  - {name: a, secret: \"${CI_TOKEN:-change-me-to-a-long-secret}\", scopes: [admin]}\n"),
		env(map[string]string{"CI_TOKEN": "change-me-to-a-long-secret-0123456789"}))
	if err == nil || !strings.Contains(err.Error(), "tokens[0].secret: is a published example value") {
		t.Errorf("Parse: err = %v, want the published token refused", err)
	}
	yml := `
routes:
  - name: prs
    runtime: http
    http:
      url: http://127.0.0.1:9090
      token: ${UPSTREAM_TOKEN:-upstream-token}
      secrets: ["${UPSTREAM_WEBHOOK_SECRET:-whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}"]
webhooks:
  destinations:
    - {id: d, url: "https://example.com/h", secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}
`
	c, err := Parse([]byte(yml), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	err = c.CheckPublished()
	for _, key := range []string{"routes[0].http.token", "routes[0].http.secrets[0]", "webhooks.destinations[0].secret"} {
		if err == nil || !strings.Contains(err.Error(), key+": is a published example value") {
			t.Errorf("CheckPublished() = %v, want %s refused", err, key)
		}
	}
}

func TestSessionTokenTTLCoversTheLongestTurn(t *testing.T) {
	for yml, want := range map[string]time.Duration{
		"": 11 * time.Minute,
		"routes:\n  - {name: a, runtime: exec, exec: {command: [x], timeout: 2m}}\n":                                                                  11 * time.Minute,
		"routes:\n  - {name: a, runtime: exec, exec: {command: [x], timeout: 2m}}\n  - {name: b, runtime: exec, exec: {command: [x], timeout: 1h}}\n": time.Hour + time.Minute,
	} {
		c, err := Parse([]byte(yml), env(nil))
		if err != nil {
			t.Fatal(err)
		}
		if got := c.SessionTokenTTL(); got != want {
			t.Errorf("%q: SessionTokenTTL() = %v, want %v", yml, got, want)
		}
	}
}

func TestConnectionLimits(t *testing.T) {
	c, err := Parse(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	l := c.Limits
	if l.HeaderTimeout.D() != 10*time.Second || l.ReadTimeout.D() != 30*time.Second || l.WriteTimeout.D() != time.Minute ||
		l.IdleTimeout.D() != 2*time.Minute || l.MaxConns != 512 || l.MaxConnsPerClient != 128 ||
		l.StreamsPerToken != 64 || l.FailedAuthPerMinute != 60 {
		t.Errorf("default limits %+v", l)
	}
	for _, tc := range []struct{ yml, want string }{
		{"limits: {header_timeout: 20s, read_timeout: 15s}\n", "limits.read_timeout: must be at least limits.header_timeout (20s)"},
		{"limits: {write_timeout: -1s}\n", "limits.write_timeout: must not be negative"},
		{"limits: {max_conns: -1}\n", "limits.max_conns: must be at least 1"},
		{"limits: {streams_per_token: -1}\n", "limits.streams_per_token: must be at least 1"},
	} {
		_, err := Parse([]byte(tc.yml), env(nil))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.yml, err, tc.want)
		}
	}
}
