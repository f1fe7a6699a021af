package runtime_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchboardhq/switchboard/router/runtime"
)

func TestTruncateHoldsTextToMaxWithANote(t *testing.T) {
	const note = "\n\n[output truncated at 100 bytes]"
	for name, tc := range map[string]struct {
		text string
		max  int
		want string
	}{
		"short":      {"hello", 100, "hello"},
		"exact":      {strings.Repeat("x", 100), 100, strings.Repeat("x", 100)},
		"no limit":   {strings.Repeat("x", 500), 0, strings.Repeat("x", 500)},
		"long":       {strings.Repeat("x", 500), 100, strings.Repeat("x", 100-len(note)) + note},
		"mid-rune":   {strings.Repeat("é", 100), 100, strings.Repeat("é", (100-len(note))/2) + note},
		"note fits":  {strings.Repeat("x", 40), 20, strings.Repeat("x", 20)},
		"tiny, rune": {"aé", 2, "a"},
	} {
		got := runtime.Truncate(tc.text, tc.max)
		if got != tc.want {
			t.Errorf("%s: Truncate = %q, want %q", name, got, tc.want)
		}
		if tc.max > 0 && len(got) > tc.max {
			t.Errorf("%s: %d bytes, over the max of %d", name, len(got), tc.max)
		}
		if !utf8.ValidString(got) {
			t.Errorf("%s: %q is not valid UTF-8", name, got)
		}
	}
}
