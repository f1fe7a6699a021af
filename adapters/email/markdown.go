package email

import (
	"html"
	"regexp"
	"strings"
	"unicode"

	"github.com/switchboardhq/switchboard/adapters/internal/markdown"
)

var (
	mdLink   = regexp.MustCompile(`\[([^\]]+)\]\((https?://[^\s)\x00]+)\)`)
	mdBold   = regexp.MustCompile(`\*\*([^*\n]+)\*\*`)
	mdItalic = regexp.MustCompile(`(^|[\s(])[*_]([^*_\s][^*_\n]*)[*_]`)
	bareURL  = regexp.MustCompile(`(^|[\s(])(https?://[^\s<>()*\x00]+[^\s<>().,;:!?*\x00])`)
	mdBullet = regexp.MustCompile(`^\s*[-*+]\s+`)
	mdNumber = regexp.MustCompile(`^\s*\d+[.)]\s+`)
	// mdListMarker matches the marker of a bullet or numbered item.
	mdListMarker = regexp.MustCompile(`^\s*(?:[-*+]|\d+[.)])\s+`)
	mdHead       = regexp.MustCompile(`^(#{1,6})\s+(.*)$`)
)

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
		case listItem(l) != "":
			flush()
			want := listItem(l)
			if list != want {
				closeList()
				b.WriteString("<" + want + ">\n")
				list = want
			}
			b.WriteString("<li>" + inline(mdListMarker.ReplaceAllString(l, "")) + "</li>\n")
		default:
			closeList()
			para = append(para, inline(t))
		}
	}
	flush()
	closeList()
	b.WriteString("</body></html>\n")
	return b.String()
}

// listItem returns the list a line is an item of: "ul" for a bullet, "ol"
// for a number, else "". The patterns run only on lines that can match.
func listItem(l string) string {
	t := strings.TrimLeftFunc(l, unicode.IsSpace)
	switch {
	case t == "":
	case (t[0] == '-' || t[0] == '*' || t[0] == '+') && mdBullet.MatchString(l):
		return "ul"
	case t[0] >= '0' && t[0] <= '9' && mdNumber.MatchString(l):
		return "ol"
	}
	return ""
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
	// Each pattern runs only when its construct can be there.
	// Links are set aside too, so that the emphasis patterns after them
	// never reach into an href. A bare URL stops before "*", which in
	// Markdown around it is emphasis.
	if strings.Contains(s, "](") {
		s = mdLink.ReplaceAllStringFunc(s, func(m string) string {
			sm := mdLink.FindStringSubmatch(m)
			return codes.Keep(`<a href="` + sm[2] + `">` + emphasis(sm[1]) + `</a>`)
		})
	}
	if strings.Contains(s, "://") {
		s = bareURL.ReplaceAllStringFunc(s, func(m string) string {
			sm := bareURL.FindStringSubmatch(m)
			return sm[1] + codes.Keep(`<a href="`+sm[2]+`">`+sm[2]+`</a>`)
		})
	}
	return codes.Restore(emphasis(s))
}

// emphasis renders bold and italics in escaped text.
func emphasis(s string) string {
	if strings.Contains(s, "**") {
		s = mdBold.ReplaceAllString(s, "<strong>$1</strong>")
	}
	if strings.ContainsAny(s, "*_") {
		s = mdItalic.ReplaceAllString(s, "$1<em>$2</em>")
	}
	return s
}
