package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/store"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

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
	secret := "a: b # not a comment [x]"
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
		{"bad scope", "tokens:\n  - name: a\n    secret: 0123456789abcdef\n    scopes: [root]\n", nil, `tokens[0].scopes[0]: unknown scope "root"`},
		{"short secret", "tokens:\n  - name: a\n    secret: x\n    scopes: [admin]\n", nil, "tokens[0].secret: must be at least 16"},
		{"agent without sessions", "tokens:\n  - name: a\n    secret: 0123456789abcdef\n    scopes: [agent]\n", nil, "tokens[0].sessions"},
		{"bad listen", "listen: nope\n", nil, `listen: "nope" is not host:port`},
		{"bad store", "store: mysql://x\n", nil, "store: want"},
		{"bad level", "log: {level: loud}\n", nil, "log.level"},
		{"unclosed", "data: ${X\n", nil, "data: unclosed"},
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

// TestExampleConfigsAreValid keeps the documented examples loadable.
func TestExampleConfigsAreValid(t *testing.T) {
	files, err := filepath.Glob("../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example configs found: %v", err)
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
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
		{"routes:\n  - name: a\n  - name: a\n", `routes[1].name: "a" is used by another route`},
		{"routes:\n  - name: a\n    match: {where: ['[']}\n", "routes[0].match: bad glob"},
		{"router: {default_route: nope}\n", "router.default_route: names no route"},
		{"routes:\n  - name: a\n    debounce: soon\n", "want a duration"},
	} {
		_, err := Parse([]byte(tc.yml), env(nil))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.yml, err, tc.want)
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
