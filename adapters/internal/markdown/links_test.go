package markdown

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard/adapters/internal/markdown/markdowntest"
)

// showLink writes a link Links found as {label|url}, with a "!" before an
// image.
func showLink(l Link) string {
	img := ""
	if l.Image {
		img = "!"
	}
	return img + "{" + l.Label + "|" + l.URL + "}"
}

func TestLinks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		syntax LinkSyntax
		in     string
		want   string
	}{
		{"plain", CommonLinks, "see [the PR](https://x.io/1) now", "see {the PR|https://x.io/1} now"},
		{"two", CommonLinks, "[a](x) and [b](y)", "{a|x} and {b|y}"},
		{"empty label", CommonLinks, "[](x)", "{|x}"},
		{"image", CommonLinks, "![diagram](d.png)", "!{diagram|d.png}"},
		{"bang after a link", CommonLinks, "[a](x)![b](y)", "{a|x}!{b|y}"},
		{"title", CommonLinks, `[docs](https://x.io "The docs")`, "{docs|https://x.io}"},
		{"title and blanks", CommonLinks, "[d]( \t<u> \t\"t\" \t)", "{d|u}"},
		{"title needs a blank", CommonLinks, `[d](u"t")`, `{d|u"t"}`},
		{"unclosed title", CommonLinks, `[d](u "t)`, `[d](u "t)`},
		{"title across lines", CommonLinks, "[d](u \"a\nb\")", "[d](u \"a\nb\")"},
		{"angle brackets", CommonLinks, "[a](<https://x.io/a b>)", "[a](<https://x.io/a b>)"},
		{"angle-bracket url", CommonLinks, "[a](<https://x.io/a>)", "{a|https://x.io/a}"},
		{"lone angle", CommonLinks, "[a](<)", "{a|<}"},
		{"empty angle brackets", CommonLinks, "[a](<>)", "{a|<}"},
		{"angle inside url", CommonLinks, "[a](x<y)", "{a|x<y}"},
		{"blank in url", CommonLinks, "[a](x y)", "[a](x y)"},
		{"empty url", CommonLinks, "[a]()", "[a]()"},
		{"unclosed label", CommonLinks, "[a [b](x)", "{a [b|x}"},
		{"unclosed paren", CommonLinks, "[a](x [b](y)", "[a](x {b|y}"},
		{"unclosed openers", CommonLinks, "[a]([a]([a](", "[a]([a]([a]("},
		{"nested brackets", CommonLinks, "[[a]](x) [a [b] c](y)", "[[a]](x) [a [b] c](y)"},
		{"nested link in url", CommonLinks, "[a]([b](c))", "{a|[b](c})"},
		{"label across lines", CommonLinks, "[a\nb](x) [c](y)", "[a\nb](x) {c|y}"},
		{"url ends at a newline", CommonLinks, "[a](x\n)", "[a](x\n)"},
		{"utf-8", CommonLinks, "[日本語 🎉](https://x.io/é) ü", "{日本語 🎉|https://x.io/é} ü"},
		{"invalid utf-8", CommonLinks, "[\xff](\xfe\xc3)", "{\xff|\xfe\xc3}"},
		{"no link", CommonLinks, "a [b] (c)", "a [b] (c)"},

		{"web", WebLinks, "see [the PR](https://x.io/1) now", "see {the PR|https://x.io/1} now"},
		{"web http", WebLinks, "[a](http://x)", "{a|http://x}"},
		{"web other scheme", WebLinks, "[a](ftp://x) [b](https://y)", "[a](ftp://x) {b|https://y}"},
		{"web scheme only", WebLinks, "[a](https://)", "[a](https://)"},
		{"web empty label", WebLinks, "[](https://x)", "[](https://x)"},
		{"web no image", WebLinks, "![a](https://x)", "!{a|https://x}"},
		{"web no blanks", WebLinks, "[a]( https://x)", "[a]( https://x)"},
		{"web no title", WebLinks, `[a](https://x "t")`, `[a](https://x "t")`},
		{"web no angle brackets", WebLinks, "[a](<https://x>)", "[a](<https://x>)"},
		{"web angle inside url", WebLinks, "[a](https://x>y)", "{a|https://x>y}"},
		{"web label across lines", WebLinks, "[a\nb](https://x)", "{a\nb|https://x}"},
		{"web nested brackets", WebLinks, "[[a](https://x)", "{[a|https://x}"},
		{"web nul ends url", WebLinks, "[a](https://x\x00y)", "[a](https://x\x00y)"},
		{"web unclosed openers", WebLinks, "[a](https://[a](https://", "[a](https://[a](https://"},
		{"web utf-8", WebLinks, "[ü](https://é.io/日本)", "{ü|https://é.io/日本}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Links(tc.in, tc.syntax, showLink); got != tc.want {
				t.Errorf("Links(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestAutolinks(t *testing.T) {
	mark := func(u string) string { return "{" + u + "}" }
	for in, want := range map[string]string{
		"see <https://x.io/a> now":    "see {https://x.io/a} now",
		"<http:x> <mailto:a@b.c>":     "{http:x} {mailto:a@b.c}",
		"<ftp://x> <https:> <https>":  "<ftp://x> <https:> <https>",
		"<http://a b> <http://a":      "<http://a b> <http://a",
		"<http://a<http://b>":         "<http://a{http://b}",
		"<<http://é/日本>>":             "<{http://é/日本}>",
		"<HTTP://x> <http://x\ny>":    "<HTTP://x> <http://x\ny>",
		"<http://[a](b)>":             "{http://[a](b)}",
		"no angle":                    "no angle",
		"<http://a <http://a <http:/": "<http://a <http://a <http:/",
	} {
		if got := Autolinks(in, mark); got != want {
			t.Errorf("Autolinks(%q) = %q, want %q", in, got, want)
		}
	}
}

// The regular expressions Links and Autolinks stand for: the converters
// used them before, and Links must find exactly what they find.
var (
	commonLinkRe = regexp.MustCompile(`!?\[([^\]\n]*)\]\([ \t]*<?([^)\s>]+)>?(?:[ \t]+"[^"\n]*")?[ \t]*\)`)
	webLinkRe    = regexp.MustCompile(`\[([^\]]+)\]\((https?://[^\s)\x00]+)\)`)
	autolinkRe   = regexp.MustCompile(`<((?:https?|mailto):[^\s<>]+)>`)
)

// linksByRegexp is Links done with the regular expressions.
func linksByRegexp(s string, syntax LinkSyntax) string {
	re := commonLinkRe
	if syntax == WebLinks {
		re = webLinkRe
	}
	return re.ReplaceAllStringFunc(s, func(m string) string {
		sub := re.FindStringSubmatch(m)
		return showLink(Link{Image: m[0] == '!', Label: sub[1], URL: sub[2]})
	})
}

func autolinksByRegexp(s string) string {
	return autolinkRe.ReplaceAllStringFunc(s, func(m string) string { return "{" + m[1:len(m)-1] + "}" })
}

// checkLinksAgree fails t when Links or Autolinks find other links in s
// than the regular expressions.
func checkLinksAgree(t *testing.T, s string) {
	t.Helper()
	for _, syntax := range []LinkSyntax{CommonLinks, WebLinks} {
		if got, want := Links(s, syntax, showLink), linksByRegexp(s, syntax); got != want {
			t.Fatalf("Links(%q, %d)\n got %q\nwant %q", s, syntax, got, want)
		}
	}
	mark := func(u string) string { return "{" + u + "}" }
	if got, want := Autolinks(s, mark), autolinksByRegexp(s); got != want {
		t.Fatalf("Autolinks(%q)\n got %q\nwant %q", s, got, want)
	}
}

// TestLinksAgreeWithRegexp checks Links and Autolinks against the regular
// expressions on random texts made of the pieces of link syntax.
func TestLinksAgreeWithRegexp(t *testing.T) {
	pieces := []string{
		"[", "]", "(", ")", "<", ">", "!", `"`, " ", "\t", "\n", "\r", "\f", "\v", "\x00",
		"a", "b", "x", "http://", "https://", "http:", "mailto:", "ftp://", "é", "日", "\xff", "\xc3",
		"](", "[a](", "![", `"t"`, "<http://a>",
	}
	for _, s := range markdowntest.Texts(20000, 24, pieces) {
		checkLinksAgree(t, s)
	}
}

// FuzzLinks checks Links and Autolinks against the regular expressions on
// arbitrary text.
func FuzzLinks(f *testing.F) {
	for _, s := range []string{
		"", "[a](b)", `![a]( <b> "c" )`, "[a](<)", "[a](https://x)", "<https://x>",
		"[a]([a]([a](", "[[a](x [b](y z", "[a](https://x\x00) [b\n](http://y)",
		strings.Repeat("[a](", 20) + `x "y" )`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 4096 {
			t.Skip("long input")
		}
		checkLinksAgree(t, s)
	})
}

func ExampleLinks() {
	md := `see [the docs](<https://x.io/a> "Docs") and ![a diagram](d.png)`
	fmt.Println(Links(md, CommonLinks, func(l Link) string {
		if l.Image {
			return "<" + l.URL + "|image: " + l.Label + ">"
		}
		return "<" + l.URL + "|" + l.Label + ">"
	}))
	// Output: see <https://x.io/a|the docs> and <d.png|image: a diagram>
}

func TestSplice(t *testing.T) {
	sp := NewSplice("abcdef")
	if got := sp.String(); got != "abcdef" {
		t.Errorf("nothing replaced: %q", got)
	}
	sp = NewSplice("abcdef")
	sp.Replace(0, 0, "<")
	sp.Replace(1, 3, "[bc]")
	if sp.Done() != 3 {
		t.Errorf("Done = %d, want 3", sp.Done())
	}
	sp.Replace(5, 6, "")
	if got := sp.String(); got != "<a[bc]de" {
		t.Errorf("String = %q, want %q", got, "<a[bc]de")
	}
}
