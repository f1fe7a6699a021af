package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary YAML to Parse, seeded with the example
// configurations: it never panics, a configuration it returns validates,
// and an error it returns names what is wrong.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("../examples/*.yaml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no example configs found: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"",
		"listen: ${ADDR:-127.0.0.1:9999}\ntokens:\n  - name: ci\n    secret: ${CI_TOKEN}\n    scopes: [steer]\n",
		"routes:\n  - name: a\n    runtime: exec\n    exec: {command: [x], timeout: 1m}\n    busy: interrupt\n",
		"webhooks:\n  destinations:\n    - {id: d, url: \"https://example.com/h\", secret: ${WHSEC}}\n",
		"adapters:\n  slack: {bot_token: ${CI_TOKEN}}\n",
		"a: &a [*a]\n",
	} {
		f.Add([]byte(s))
	}
	lookup := env(map[string]string{
		"CI_TOKEN": strongSecret, "UPSTREAM_TOKEN": "tok", "ADDR": "127.0.0.1:1", "EMPTY": "",
		"UPSTREAM_WEBHOOK_SECRET": "whsec_dGhpcnR5LXR3by1ieXRlcy1vZi1yYW5kb20tZGF0YS0wMTI=",
		"WHSEC":                   "whsec_dGhpcnR5LXR3by1ieXRlcy1vZi1yYW5kb20tZGF0YS0wMTI=",
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, lookup)
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatalf("an error without a message for %q", data)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse returned a configuration that does not validate: %v", err)
		}
		_ = c.CheckPublished()
		_ = c.SessionTokenTTL()
	})
}

// FuzzExpand: Expand never panics, and leaves a string without '$' as it is.
func FuzzExpand(f *testing.F) {
	for _, s := range []string{"x${A}y", "$$A", "cost $5", "${EMPTY:-d}", "${A}${A}", "trailing $", "${", "${1BAD}", "${A:-${B}}"} {
		f.Add(s)
	}
	lookup := env(map[string]string{"A": "1", "EMPTY": ""})
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Expand(s, lookup)
		if !strings.Contains(s, "$") && (err != nil || got != s) {
			t.Fatalf("Expand(%q) = %q, %v; want it unchanged", s, got, err)
		}
	})
}
