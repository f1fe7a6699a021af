package markdown

import (
	"regexp"
	"testing"

	"github.com/switchboardhq/switchboard/adapters/internal/markdown/markdowntest"
)

func TestDoubleDelimited(t *testing.T) {
	mark := func(text string) string { return "<" + text + ">" }
	for _, tc := range []struct{ in, delims, want string }{
		{"a **b** c __d e__", "*_", "a <b> c <d e>"},
		{"**a __b** c__", "*_", "<a __b> c__"},
		{"** a** **a ** **** ***", "*_", "** a** **a ** **** ***"},
		{"***a***", "*_", "*<a>*"},
		{"**a*b**", "*_", "**a*b**"},
		{"**a\nb**", "*_", "<a\nb>"},
		{"**a **b**", "*_", "**a <b>"},
		{"**日本**", "*_", "<日本>"},
		{"**unclosed", "*_", "**unclosed"},
		{"~~a~~ **b**", "~", "<a> **b**"},
		{"~~~a~~~", "~", "~<a>~"},
	} {
		if got := DoubleDelimited(tc.in, tc.delims, mark); got != tc.want {
			t.Errorf("DoubleDelimited(%q, %q) = %q, want %q", tc.in, tc.delims, got, tc.want)
		}
	}
}

// The regular expressions DoubleDelimited stands for: the converters used
// them for bold and strike before.
var (
	boldRe   = regexp.MustCompile(`\*\*([^*\s](?:[^*]*[^*\s])?)\*\*|__([^_\s](?:[^_]*[^_\s])?)__`)
	strikeRe = regexp.MustCompile(`~~([^~\s](?:[^~]*[^~\s])?)~~`)
)

// TestDoubleDelimitedAgreesWithRegexp checks DoubleDelimited against the
// regular expressions on random texts made of the pieces of their syntax.
func TestDoubleDelimitedAgreesWithRegexp(t *testing.T) {
	pieces := []string{"*", "**", "_", "__", "~", "~~", " ", "\t", "\n", "\v", "a", "b", "é", "\xff", "\xc3"}
	mark := func(text string) string { return "<" + text + ">" }
	for _, s := range markdowntest.Texts(50000, 16, pieces) {
		want := boldRe.ReplaceAllStringFunc(s, func(m string) string { return mark(m[2 : len(m)-2]) })
		if got := DoubleDelimited(s, "*_", mark); got != want {
			t.Fatalf("DoubleDelimited(%q, \"*_\") = %q, want %q", s, got, want)
		}
		want = strikeRe.ReplaceAllString(s, "<$1>")
		if got := DoubleDelimited(s, "~", mark); got != want {
			t.Fatalf("DoubleDelimited(%q, \"~\") = %q, want %q", s, got, want)
		}
	}
}
