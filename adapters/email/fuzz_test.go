package email

import (
	"bytes"
	"html"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/switchboardhq/switchboard/adapters/internal/fuzzkit"
)

// fuzzMessages returns the message sources of testdata/email.
func fuzzMessages(f *testing.F) [][]byte {
	return fuzzkit.Fixtures(f, filepath.Join(testdata, "*.eml"))
}

// fuzzTexts are hostile mail bodies, HTML and Markdown.
var fuzzTexts = []string{
	"",
	"Thanks!\n\nOn Mon, Jun 17, 2026 at 9:00 AM Ada <ada@example.com> wrote:\n> quoted\n> > deeper\n",
	"reply\r\n-----Original Message-----\r\nFrom: x\r\nSent: y\r\n\r\nold\r\n",
	"top\n-- \nsig\nSent from my iPhone\nSent from my iPad",
	"> all quote\n> only",
	"<html><head><style>p{}</style><script>alert(1)</script></head><body><p>Hi &amp; &lt;b&gt; &#x1F600; &#xD800; &bogus;<br><ul><li>a<li>b</ul><a href=\"https://x\">label</a><a href=\"javascript:1\">j</a><blockquote>q</blockquote><div class=\"gmail_quote\">old</div></body></html>",
	"<table><tr><td>a</td><td>b</td></tr></table><pre>  code\n  kept</pre><!-- comment --><![CDATA[x]]><p",
	"# Title\n\n- **bold** *it* _it_ `code <b>` [l](https://e.com/?a=1&b=\"2\") [j](javascript:alert(1))\n1. one\n\n```\n<script>\n```\nhttps://bare.example/x?y=1. <img src=x onerror=1>",
	"[`code`](https://e.com) **`b`** `**` `` ` `` ***x***",
	"\xff\xfe\xc3 invalid \x00 nul",
	strings.Repeat("<b>", 500) + strings.Repeat("*", 500) + strings.Repeat("[", 500),
}

// FuzzParse parses arbitrary message sources, seeded with the messages of
// testdata/email, and converts them as the adapter does: it never panics;
// a message it reads becomes an envelope that validates, whose raw gives
// the source back, with valid UTF-8 text of bounded size.
func FuzzParse(f *testing.F) {
	for _, b := range fuzzMessages(f) {
		f.Add(b, int64(1<<20))
		f.Add(b, int64(64))
	}
	for _, s := range []string{
		"From: a@b\r\nSubject: =?utf-8?b?////?=\r\n\r\nbody",
		"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: multipart/alternative; boundary=x\r\n\r\n--x--\r\n",
		"Content-Type: text/plain; charset=unknown-8bit\r\nContent-Transfer-Encoding: base64\r\nMessage-Id: <" + strings.Repeat("a", 600) + ">\r\nReferences: <>< ><a@b>\r\n\r\n!!!!",
		"Date: Mon, 1 Jan 99999 00:00:00 +0000\r\nFrom: \"\x00\" <@>\r\nAuto-Submitted: auto-replied\r\n\r\n",
		"Content-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>=E2=80=\r\n",
	} {
		f.Add([]byte(s), int64(100))
	}
	now := time.Date(2026, 6, 18, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw []byte, maxPart int64) {
		if len(raw) > fuzzkit.MaxInput {
			t.Skip("input over 64 KiB")
		}
		if maxPart <= 0 || maxPart > 1<<20 {
			maxPart = 1 << 20
		}
		m, err := Parse(raw, "agent@example.com", maxPart)
		if err != nil {
			return
		}
		if m.MessageID == "" {
			t.Fatal("a parsed message without a message id")
		}
		in := convert(m, raw, "agent@example.com", now)
		if err := in.Envelope.Validate(0); err != nil {
			t.Fatalf("the envelope of a parsed message does not validate: %v", err)
		}
		src, err := SourceFromRaw(in.Envelope.Raw)
		if err != nil || !bytes.Equal(src, raw) {
			t.Fatalf("raw does not give the source back: %v", err)
		}
		if !utf8.ValidString(in.Envelope.Text) {
			t.Fatalf("text is not valid UTF-8: %q", in.Envelope.Text)
		}
		if n := len(in.Envelope.Text); n > 8*len(raw)+1024 {
			t.Fatalf("%d bytes of text from a %d-byte message", n, len(raw))
		}
	})
}

// FuzzHTMLToText turns arbitrary HTML into text: it never panics, and
// gives valid UTF-8 (where the HTML was) of bounded size.
func FuzzHTMLToText(f *testing.F) {
	for _, b := range fuzzMessages(f) {
		f.Add(string(b), true)
	}
	for _, s := range fuzzTexts {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, dropQuotes bool) {
		if len(s) > fuzzkit.MaxInput {
			t.Skip("input over 64 KiB")
		}
		out := HTMLToText(s, dropQuotes)
		if utf8.ValidString(s) && !utf8.ValidString(out) {
			t.Fatalf("HTMLToText(%q) = %q, not valid UTF-8", s, out)
		}
		if len(out) > 8*len(s)+1024 {
			t.Fatalf("%d bytes of text from %d of HTML", len(out), len(s))
		}
	})
}

// FuzzStripQuotes strips the quotes of arbitrary text: it never panics,
// gives valid UTF-8 (where the text was) no longer than the text, and
// what it leaves has nothing more to strip.
func FuzzStripQuotes(f *testing.F) {
	for _, b := range fuzzMessages(f) {
		f.Add(string(b))
	}
	for _, s := range fuzzTexts {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > fuzzkit.MaxInput {
			t.Skip("input over 64 KiB")
		}
		out := StripQuotes(s)
		if utf8.ValidString(s) && !utf8.ValidString(out) {
			t.Fatalf("StripQuotes(%q) = %q, not valid UTF-8", s, out)
		}
		if len(out) > len(s) {
			t.Fatalf("StripQuotes made %d bytes into %d", len(s), len(out))
		}
		if again := StripQuotes(out); again != out {
			t.Fatalf("StripQuotes is not idempotent:\n%q\n→ %q\n→ %q", s, out, again)
		}
	})
}

var (
	// fuzzTag matches a tag of MarkdownToHTML's output.
	fuzzTag = regexp.MustCompile(`<(/?)([a-zA-Z][a-zA-Z0-9]*)([^>]*)>`)
	// fuzzAttrs are the attributes goldmark's safe renderer writes, by
	// element; every other element is written bare. A link's or image's URL
	// is checked apart (fuzzDangerous).
	fuzzAttrs = map[string]*regexp.Regexp{
		"a":     regexp.MustCompile(`^ href="([^"<>]*)"( title="[^"<>]*")?$`),
		"img":   regexp.MustCompile(`^ src="([^"<>]*)" alt="[^"<>]*"( title="[^"<>]*")? ?/?$`),
		"input": regexp.MustCompile(`^( checked="")? disabled="" type="checkbox" ?/?$`),
		"ol":    regexp.MustCompile(`^ start="[0-9]+"$`),
		"code":  regexp.MustCompile(`^ class="language-[^"<>]*"$`),
		"th":    regexp.MustCompile(`^ style="text-align:(left|right|center)"$`),
		"td":    regexp.MustCompile(`^ style="text-align:(left|right|center)"$`),
	}
	// fuzzDangerous matches a URL goldmark's safe renderer must not write.
	fuzzDangerous = regexp.MustCompile(`(?i)^\s*(javascript|vbscript|file|data):`)
	// fuzzTags are the elements MarkdownToHTML writes.
	fuzzTags = map[string]bool{"html": true, "body": true, "p": true, "br": true, "pre": true, "code": true,
		"ul": true, "ol": true, "li": true, "strong": true, "em": true, "a": true, "img": true, "hr": true,
		"blockquote": true, "del": true, "input": true, "table": true, "thead": true, "tbody": true, "tr": true,
		"th": true, "td": true, "h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true}
)

// FuzzMarkdownToHTML renders arbitrary Markdown: it never panics; the HTML
// is valid UTF-8 (where the Markdown was), of bounded size, holds no NUL,
// and holds only the elements and attributes goldmark's safe renderer
// writes, no dangerous link and no raw HTML from the Markdown.
func FuzzMarkdownToHTML(f *testing.F) {
	for _, b := range fuzzMessages(f) {
		f.Add(string(b))
	}
	for _, s := range fuzzTexts {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, md string) {
		if len(md) > fuzzkit.MaxInput {
			t.Skip("input over 64 KiB")
		}
		out := MarkdownToHTML(md)
		if utf8.ValidString(md) && !utf8.ValidString(out) {
			t.Fatalf("MarkdownToHTML(%q) is not valid UTF-8", md)
		}
		if len(out) > 8*len(md)+1024 {
			t.Fatalf("%d bytes of HTML from %d of Markdown", len(out), len(md))
		}
		if strings.Contains(out, "\x00") {
			t.Fatalf("MarkdownToHTML(%q) = %q holds a NUL", md, out)
		}
		for _, m := range fuzzTag.FindAllStringSubmatch(out, -1) {
			name, attrs := strings.ToLower(m[2]), strings.TrimSuffix(m[3], " /")
			if !fuzzTags[name] {
				t.Fatalf("MarkdownToHTML(%q) wrote element %q:\n%s", md, m[0], out)
			}
			if attrs == "" || attrs == "/" {
				continue
			}
			re := fuzzAttrs[name]
			if re == nil || m[1] != "" {
				t.Fatalf("MarkdownToHTML(%q) wrote attributes in %q", md, m[0])
			}
			a := re.FindStringSubmatch(attrs)
			if a == nil {
				t.Fatalf("MarkdownToHTML(%q) wrote attributes %q in %q", md, attrs, m[0])
			}
			if (name == "a" || name == "img") && fuzzDangerous.MatchString(html.UnescapeString(a[1])) &&
				!(name == "img" && strings.HasPrefix(strings.ToLower(strings.TrimSpace(html.UnescapeString(a[1]))), "data:image/")) {
				t.Fatalf("MarkdownToHTML(%q) wrote a dangerous URL in %q", md, m[0])
			}
		}
	})
}
