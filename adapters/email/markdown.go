package email

import (
	"html"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/switchboardhq/switchboard/adapters/internal/markdown"
)

var mdHead = regexp.MustCompile(`^(#{1,6})\s+(.*)$`)

// The inline patterns and list markers are parsed by hand, each in time
// linear in its text; their doc comments give the regular expressions they
// stand for, where \s is ASCII white space as in Go's regexp.

// MarkdownToHTML renders the Markdown agents write as a small HTML document
// for the text/html alternative of a reply: paragraphs, headings, fenced
// code blocks, bullet and numbered lists, inline code, bold, italics and
// links. Everything else is escaped text; it never emits raw HTML from its
// input. NUL bytes in md are dropped.
func MarkdownToHTML(md string) string {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html><body>\n")
	// NUL delimits inline's placeholders, so none may come from md.
	md = strings.ReplaceAll(strings.ReplaceAll(md, "\r\n", "\n"), "\x00", "")
	lines := strings.Split(md, "\n")
	var para []string
	list := "" // "ul", "ol" or ""
	flush := func() {
		if len(para) > 0 {
			b.WriteString("<p>" + strings.Join(para, "<br>\n") + "</p>\n")
			para = nil
		}
	}
	closeList := func() {
		if list != "" {
			b.WriteString("</" + list + ">\n")
			list = ""
		}
	}
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "```"):
			flush()
			closeList()
			b.WriteString("<pre><code>")
			for i++; i < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i]), "```"); i++ {
				b.WriteString(html.EscapeString(lines[i]) + "\n")
			}
			b.WriteString("</code></pre>\n")
		case t == "":
			flush()
			closeList()
		case t[0] == '#' && mdHead.MatchString(t):
			flush()
			closeList()
			m := mdHead.FindStringSubmatch(t)
			n := string(rune('0' + len(m[1])))
			b.WriteString("<h" + n + ">" + inline(m[2]) + "</h" + n + ">\n")
		default:
			want, item := listItem(l)
			if want == "" {
				closeList()
				para = append(para, inline(t))
				continue
			}
			flush()
			if list != want {
				closeList()
				b.WriteString("<" + want + ">\n")
				list = want
			}
			b.WriteString("<li>" + inline(item) + "</li>\n")
		}
	}
	flush()
	closeList()
	b.WriteString("</body></html>\n")
	return b.String()
}

// listItem returns the list a line is an item of, "ul" for a bullet or
// "ol" for a number (else ""), and the item's text after its marker: the
// line starts with ^\s*(?:[-*+]|\d+[.)])\s+ and the marker is that match.
func listItem(l string) (list, item string) {
	i := skipSpace(l, 0)
	switch {
	case i == len(l):
		return "", ""
	case l[i] == '-' || l[i] == '*' || l[i] == '+':
		list, i = "ul", i+1
	case isDigit(l[i]):
		for i < len(l) && isDigit(l[i]) {
			i++
		}
		if i == len(l) || l[i] != '.' && l[i] != ')' {
			return "", ""
		}
		list, i = "ol", i+1
	default:
		return "", ""
	}
	j := skipSpace(l, i)
	if j == i {
		return "", ""
	}
	return list, l[j:]
}

// inline renders code spans, links, bold and italics in one escaped line,
// which must hold no NUL byte.
func inline(s string) string {
	// Code spans are set aside first, as placeholders (\x00<n>\x00), so that
	// nothing inside them is rendered; the URL patterns stop at a NUL so no
	// placeholder ends up in an href.
	var codes markdown.Placeholders
	s = markdown.CodeSpans(s, func(code string) string {
		return codes.Keep("<code>" + html.EscapeString(code) + "</code>")
	})
	s = html.EscapeString(s)
	// Links are set aside too, so that emphasis never reaches into an href.
	// A bare URL stops before "*", which in Markdown around it is emphasis.
	if strings.Contains(s, "](") {
		s = markdown.Links(s, markdown.WebLinks, func(l markdown.Link) string {
			return codes.Keep(`<a href="` + l.URL + `">` + emphasis(l.Label) + `</a>`)
		})
	}
	if strings.Contains(s, "://") {
		s = bareURLs(s, func(u string) string { return codes.Keep(`<a href="` + u + `">` + u + `</a>`) })
	}
	return codes.Restore(emphasis(s))
}

// emphasis renders bold and italics in escaped text.
func emphasis(s string) string {
	if strings.Contains(s, "**") {
		s = bold(s)
	}
	if strings.ContainsAny(s, "*_") {
		s = italics(s)
	}
	return s
}

// bold renders **text** as <strong>text</strong>, where the text is not
// empty and holds no "*" nor line break: the regular expression
// \*\*([^*\n]+)\*\*, replaced with <strong>$1</strong>.
func bold(s string) string {
	sp := markdown.NewSplice(s)
	for i := 0; ; {
		k := strings.Index(s[i:], "**")
		if k < 0 {
			break
		}
		open := i + k
		c := strings.IndexAny(s[open+2:], "*\n") + open + 2 // the text ends at s[c]
		if c <= open+2 || !strings.HasPrefix(s[c:], "**") {
			i = open + 1
			continue
		}
		sp.Replace(open, c+2, "<strong>"+s[open+2:c]+"</strong>")
		i = c + 2
	}
	return sp.String()
}

// italics renders *text* and _text_ (either delimiter may close either) as
// <em>text</em>, where the opening delimiter starts s or follows white
// space or "(", the text starts with neither delimiter nor white space and
// holds no delimiter nor line break: the regular expression
// (^|[\s(])[*_]([^*_\s][^*_\n]*)[*_], replaced with $1<em>$2</em>.
func italics(s string) string {
	sp := markdown.NewSplice(s)
	for i := 0; ; {
		k := strings.IndexAny(s[i:], "*_")
		if k < 0 {
			break
		}
		open := i + k
		i = open + 1
		if open > 0 && (open-1 < sp.Done() || !isSpace(s[open-1]) && s[open-1] != '(') {
			continue
		}
		if open+1 == len(s) || isSpace(s[open+1]) || s[open+1] == '*' || s[open+1] == '_' {
			continue
		}
		c := strings.IndexAny(s[open+2:], "*_\n") + open + 2 // the text ends at s[c]
		if c < open+2 || s[c] == '\n' {
			continue
		}
		sp.Replace(open, c+1, "<em>"+s[open+1:c]+"</em>")
		i = c + 1
	}
	return sp.String()
}

// bareURLs replaces each bare http:// or https:// URL of s that starts s
// or follows white space or "(" with f of it. The URL stops before white
// space, "<", ">", "(", ")", "*" or NUL, and does not end with ".", ",",
// ";", ":", "!" or "?": the regular expression
// (^|[\s(])(https?://[^\s<>()*\x00]+[^\s<>().,;:!?*\x00]), replaced with
// $1 and f of $2.
func bareURLs(s string, f func(string) string) string {
	sp := markdown.NewSplice(s)
	for i := 0; ; {
		k := strings.Index(s[i:], "http")
		if k < 0 {
			break
		}
		start := i + k
		i = start + 1
		if start > 0 && (start-1 < sp.Done() || !isSpace(s[start-1]) && s[start-1] != '(') {
			continue
		}
		end := bareURLEnd(s, start)
		if end < 0 {
			continue
		}
		sp.Replace(start, end, f(s[start:end]))
		i = end
	}
	return sp.String()
}

// bareURLEnd returns the end of the bare URL at s[start:], or -1.
func bareURLEnd(s string, start int) int {
	n := markdown.WebScheme(s[start:])
	if n == 0 {
		return -1
	}
	b0 := start + n // the URL's body: at least two characters
	end := b0
	for end < len(s) && !isSpace(s[end]) && strings.IndexByte("<>()*\x00", s[end]) < 0 {
		end++
	}
	for end > b0 && strings.IndexByte(".,;:!?", s[end-1]) >= 0 {
		end--
	}
	if _, w := utf8.DecodeRuneInString(s[b0:end]); w == end-b0 {
		return -1 // no body, or a body of one character
	}
	return end
}

// isSpace reports whether c is white space to Go's regexp (\s).
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// skipSpace returns the index of the first byte at or after i that is not
// white space (\s), or len(s).
func skipSpace(s string, i int) int {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return i
}
