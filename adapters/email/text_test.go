package email

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard/adapters/internal/markdown/markdowntest"
)

// showTags lists what a tagScanner finds in s, one per line: where it is,
// then "/" for a closing tag, the name and the attributes in brackets, or
// "!" for a comment or doctype.
func showTags(s string) string {
	var b strings.Builder
	ts := tagScanner{s: s}
	for {
		t, ok := ts.next()
		if !ok {
			return b.String()
		}
		fmt.Fprintf(&b, "%d-%d ", t.start, t.end)
		switch {
		case t.name == "":
			b.WriteString("!")
		case t.closing:
			b.WriteString("/")
		}
		fmt.Fprintf(&b, "%s[%s]\n", t.name, t.attrs)
	}
}

func TestTagScanner(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"tags", "<p>a</p>", "0-3 p[]\n4-8 /p[]\n"},
		{"attributes", `<a href="x">`, "0-12 a[ href=\"x\"]\n"},
		{"quoted >", `<a title="a>b" x='>'>`, "0-21 a[ title=\"a>b\" x='>']\n"},
		{"unclosed quote", `<a title="x>`, ""},
		{"unclosed quote then tag", `<a title="x> <b>`, "13-16 b[]\n"},
		{"quote closes later", `<a x="<b>">`, "0-11 a[ x=\"<b>\"]\n"},
		{"no >", "<a <b", ""},
		{"angle in attributes", "<a <b>", "0-6 a[ <b]\n"},
		{"name", "<h1 id=x><x-y><1>< a></ b>", "0-9 h1[ id=x]\n9-14 x[-y]\n"},
		{"comment", "<!-- <p> -->x<p>", "0-12 ![]\n13-16 p[]\n"},
		{"empty comment", "<!---->", "0-7 ![]\n"},
		{"unclosed comment", "<!-- a > b", "0-8 ![]\n"},
		{"unclosed comment, then a tag", "<!-- a <p>", "0-10 ![]\n"},
		{"doctype", "<!DOCTYPE html><html>", "0-15 ![]\n15-21 html[]\n"},
		{"lone <!", "<! a", ""},
		{"newlines", "<a\nhref='x\ny'\n>", "0-15 a[\nhref='x\ny'\n]\n"},
		{"utf-8", `<p title="日本">é</p>`, "0-18 p[ title=\"日本\"]\n20-24 /p[]\n"},
		{"hostile", strings.Repeat("<a ", 4), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := showTags(tc.in); got != tc.want {
				t.Errorf("tags of %q:\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

// tagRe is the regular expression tagScanner stands for: HTMLToText used
// it before, and tagScanner must find exactly what it finds.
var tagRe = regexp.MustCompile(`(?s)<!--.*?-->|<![^>]*>|<(/?)([a-zA-Z][a-zA-Z0-9]*)((?:[^>"']|"[^"]*"|'[^']*')*)>`)

func tagsByRegexp(s string) string {
	var b strings.Builder
	for _, m := range tagRe.FindAllStringSubmatchIndex(s, -1) {
		fmt.Fprintf(&b, "%d-%d ", m[0], m[1])
		switch {
		case m[4] < 0:
			b.WriteString("![]\n")
			continue
		case m[3] > m[2]:
			b.WriteString("/")
		}
		fmt.Fprintf(&b, "%s[%s]\n", s[m[4]:m[5]], s[m[6]:m[7]])
	}
	return b.String()
}

// TestTagScannerAgreesWithRegexp checks tagScanner against the regular
// expression on random texts made of the pieces of HTML.
func TestTagScannerAgreesWithRegexp(t *testing.T) {
	pieces := []string{
		"<", ">", "/", "!", "-", "--", "<!--", "-->", "<!", `"`, "'", "=", " ", "\n",
		"a", "b", "A", "1", "é", "\xff", "<a", "</a", "<p>", "<a x='", `<b y="`,
	}
	for _, s := range markdowntest.Texts(50000, 20, pieces) {
		if got, want := showTags(s), tagsByRegexp(s); got != want {
			t.Fatalf("tags of %q:\n got %q\nwant %q", s, got, want)
		}
	}
}
