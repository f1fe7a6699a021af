package config

import (
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard/config/duration"
)

// TestDecodeErrorsNameTheirKey: a value of the wrong type, a value its
// type refuses and an unknown key each fail with an error naming the key,
// relative to the section decoded, and the line of the file it stands on.
func TestDecodeErrorsNameTheirKey(t *testing.T) {
	type section struct {
		MaxBody int64             `yaml:"max_body"`
		Timeout duration.Duration `yaml:"timeout"`
		Nested  struct {
			On bool `yaml:"on"`
		} `yaml:"nested"`
		List []int `yaml:"list"`
	}
	for _, tc := range []struct{ yaml, want string }{
		{"max_body: lots", "max_body: cannot unmarshal !!str `lots` into int64 (line 5)"},
		{"timeout: soon", `timeout: want a duration like 30s or 5m, got "soon" (line 5)`},
		{"nested: {on: maybe}", "nested.on: cannot unmarshal !!str `maybe` into bool (line 5)"},
		{"nested:\n      on: maybe", "nested.on: cannot unmarshal !!str `maybe` into bool (line 6)"},
		{"nested: {on: true, off: 2}", "nested.off: is not a known key of struct { On bool \"yaml:\\\"on\\\"\" } (line 5)"},
		{"list: [1, a-rather-long-value]", "list[1]: cannot unmarshal !!str `a-rathe...` into int (line 5)"},
		{"list: [1, two]", "list[1]: cannot unmarshal !!str `two` into int (line 5)"},
		{"no_such_key: 1", "no_such_key: is not a known key of config.section (line 5)"},
		{"max_body: lots\n    no_such_key: 1", "max_body: cannot unmarshal !!str `lots` into int64 (line 5)\n" +
			"no_such_key: is not a known key of config.section (line 6)"},
	} {
		t.Run(tc.yaml, func(t *testing.T) {
			c, err := Parse([]byte("# Switchboard\n\nadapters:\n  x:\n    "+tc.yaml+"\n"), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatal(err)
			}
			node := c.Adapters["x"]
			var s section
			err = DecodeNode(&node, &s)
			if err == nil || err.Error() != tc.want {
				t.Errorf("DecodeNode = %v\nwant %s", err, tc.want)
			}
		})
	}
	// The whole file's keys are named from its top.
	_, err := Parse([]byte("listen: :8080\nwebhooks:\n  max_body: lots\n"), func(string) (string, bool) { return "", false })
	if err == nil || !strings.HasPrefix(err.Error(), "webhooks.max_body: ") || !strings.HasSuffix(err.Error(), " (line 3)") {
		t.Errorf("Parse = %v, want webhooks.max_body named, on line 3", err)
	}
}
