package email

import (
	"regexp"
	"testing"

	"github.com/switchboardhq/switchboard/adapters/internal/markdown/markdowntest"
)

func TestBold(t *testing.T) {
	for in, want := range map[string]string{
		"a **b** c":         "a <strong>b</strong> c",
		"**a** **b**":       "<strong>a</strong> <strong>b</strong>",
		"****":              "****",
		"***a***":           "*<strong>a</strong>*",
		"**a*b**":           "**a*b**",
		"**a\nb**":          "**a\nb**",
		"**a **b":           "<strong>a </strong>b",
		"**unclosed **a **": "<strong>unclosed </strong>a **",
		"**日本**":            "<strong>日本</strong>",
	} {
		if got := bold(in); got != want {
			t.Errorf("bold(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestItalics(t *testing.T) {
	for in, want := range map[string]string{
		"*a*":                  "<em>a</em>",
		"an *aside* _x_":       "an <em>aside</em> <em>x</em>",
		"(*a*)":                "(<em>a</em>)",
		"*a_":                  "<em>a</em>",
		"a*b* snake_case_name": "a*b* snake_case_name",
		"* a*":                 "* a*",
		"*a\nb*":               "*a\nb*",
		"*a* *b*":              "<em>a</em> <em>b</em>",
		"*a**b*":               "<em>a</em>*b*",
		"\t_é ü_":              "\t<em>é ü</em>",
		"*a *a *a ":            "<em>a </em>a *a ",
	} {
		if got := italics(in); got != want {
			t.Errorf("italics(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBareURLs(t *testing.T) {
	mark := func(u string) string { return "{" + u + "}" }
	for in, want := range map[string]string{
		"https://x.io/a":               "{https://x.io/a}",
		"see https://x.io/a.":          "see {https://x.io/a}.",
		"(http://x.io/a?b=1&amp;c=2)!": "({http://x.io/a?b=1&amp;c=2})!",
		"a:https://x.io":               "a:https://x.io",
		"https://x":                    "https://x",
		"https://xy":                   "{https://xy}",
		"https://é":                    "https://é",
		"https://éa":                   "{https://éa}",
		"https://x.,;:!?":              "https://x.,;:!?",
		"http://ab*c* http://cd\x00e":  "{http://ab}*c* {http://cd}\x00e",
		"ftp://x.io https:// x":        "ftp://x.io https:// x",
		"http://ab http://cd":          "{http://ab} {http://cd}",
	} {
		if got := bareURLs(in, mark); got != want {
			t.Errorf("bareURLs(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestListItem(t *testing.T) {
	for _, tc := range []struct{ line, list, item string }{
		{"- a", "ul", "a"},
		{"  *\t b", "ul", "b"},
		{"+ ", "ul", ""},
		{"12. a", "ol", "a"},
		{"3) a", "ol", "a"},
		{"1234567890. a", "ol", "a"},
		{"-a", "", ""},
		{"1.a", "", ""},
		{"1 a", "", ""},
		{"a. b", "", ""},
		{"\v- a", "", ""},
		{"\u00a0- a", "", ""},
		{"", "", ""},
		{"  ", "", ""},
	} {
		if list, item := listItem(tc.line); list != tc.list || item != tc.item {
			t.Errorf("listItem(%q) = %q, %q, want %q, %q", tc.line, list, item, tc.list, tc.item)
		}
	}
}

// The regular expressions bold, italics, bareURLs and listItem stand for:
// MarkdownToHTML used them before, and the scanners must match exactly
// what they match.
var (
	boldRe       = regexp.MustCompile(`\*\*([^*\n]+)\*\*`)
	italicRe     = regexp.MustCompile(`(^|[\s(])[*_]([^*_\s][^*_\n]*)[*_]`)
	bareURLRe    = regexp.MustCompile(`(^|[\s(])(https?://[^\s<>()*\x00]+[^\s<>().,;:!?*\x00])`)
	listMarkerRe = regexp.MustCompile(`^\s*(?:[-*+]|\d+[.)])\s+`)
	bulletRe     = regexp.MustCompile(`^\s*[-*+]\s+`)
)

// TestInlineScannersAgreeWithRegexp checks bold, italics, bareURLs and
// listItem against the regular expressions on random texts made of the
// pieces of their syntax.
func TestInlineScannersAgreeWithRegexp(t *testing.T) {
	pieces := []string{
		"*", "**", "_", " ", "\t", "\n", "\r", "\f", "\v", "(", ")", "<", ">", "\x00", ".", ",", ";", ":", "!", "?",
		"a", "b", "1", "23", "-", "+", "http://", "https://", "http", "é", "日", "\xff", "\xc3", "\u00a0", "&amp;",
	}
	mark := func(u string) string { return "{" + u + "}" }
	for _, s := range markdowntest.Texts(50000, 16, pieces) {
		if got, want := bold(s), boldRe.ReplaceAllString(s, "<strong>$1</strong>"); got != want {
			t.Fatalf("bold(%q) = %q, want %q", s, got, want)
		}
		if got, want := italics(s), italicRe.ReplaceAllString(s, "$1<em>$2</em>"); got != want {
			t.Fatalf("italics(%q) = %q, want %q", s, got, want)
		}
		want := bareURLRe.ReplaceAllStringFunc(s, func(m string) string {
			sm := bareURLRe.FindStringSubmatch(m)
			return sm[1] + mark(sm[2])
		})
		if got := bareURLs(s, mark); got != want {
			t.Fatalf("bareURLs(%q) = %q, want %q", s, got, want)
		}
		list, item := listItem(s)
		wantList, wantItem := "", ""
		if listMarkerRe.MatchString(s) {
			wantList, wantItem = "ol", listMarkerRe.ReplaceAllString(s, "")
			if bulletRe.MatchString(s) {
				wantList = "ul"
			}
		}
		if list != wantList || item != wantItem {
			t.Fatalf("listItem(%q) = %q, %q, want %q, %q", s, list, item, wantList, wantItem)
		}
	}
}
