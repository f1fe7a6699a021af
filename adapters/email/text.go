package email

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/html"
)

// normalize turns CRLF into LF, drops trailing spaces on each line (except
// the "-- " signature delimiter, whose space matters) and trims blank lines
// at both ends.
func normalize(s string) string { return strings.Join(normalizedLines(s), "\n") }

// normalizedLines returns the lines of normalize(s).
func normalizedLines(s string) []string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l != "-- " {
			lines[i] = strings.TrimRight(l, " \t\u00a0")
		}
	}
	return trimEmpty(lines)
}

// trimEmpty drops the empty lines at both ends of lines.
func trimEmpty(lines []string) []string {
	for len(lines) > 0 && lines[0] == "" {
		lines = lines[1:]
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// toValidUTF8 returns b as a string, with invalid sequences (a part whose
// charset was wrong or unknown) replaced by U+FFFD.
func toValidUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

var (
	// attribution is the line a mail client puts above quoted history:
	// Gmail and Apple Mail ("On … wrote:"), Thunderbird, and the German,
	// French, Spanish and Dutch variants.
	attribution = regexp.MustCompile(`(?i)^(on\b.*\bwrote|am\b.*\bschrieb|le\b.*\ba écrit|el\b.*\bescribió|op\b.*\bschreef)\s*:$`)
	// attributionStart is the first line of an attribution that the client
	// wrapped over two lines.
	attributionStart = regexp.MustCompile(`(?i)^(on|am|le|el|op)\s.*\d`)
	// originalMessage is Outlook's (and others') separator.
	originalMessage = regexp.MustCompile(`(?i)^-{2,}\s*(original message|ursprüngliche nachricht|message d'origine|forwarded message)\s*-{2,}$`)
	// outlookHeader is the first line of the header block Outlook puts above
	// quoted history ("From: Ada <ada@…>" then "Sent: …").
	outlookHeader = regexp.MustCompile(`(?i)^\*?(from|von|de)\s*:\*?\s`)
	outlookNext   = regexp.MustCompile(`(?i)^\*?(sent|date|gesendet|envoyé|to|subject)\s*:`)
	// underscores is the rule Outlook on the web draws above its header block.
	underscores = regexp.MustCompile(`^_{20,}$`)
	// mobileSignature are the one-line signatures mobile clients append.
	mobileSignature = regexp.MustCompile(`(?i)^(sent from my \w+|sent from (outlook|mail) for \w+|get outlook for \w+|von meinem \w+ gesendet)\.?$`)
	// forwardStart starts a forwarded message, which is history too.
	forwardStart = regexp.MustCompile(`(?i)^begin forwarded message:$`)
)

// StripQuotes returns only what the author wrote in this message: it cuts
// at the first attribution line ("On … wrote:"), Outlook separator or
// header block, forwarded-message marker or "-- " signature delimiter,
// drops ">"-quoted lines and trailing mobile signatures. When nothing would
// remain (a message that is all quote), s is returned trimmed.
func StripQuotes(s string) string {
	lines := normalizedLines(s)
	out := make([]string, 0, len(lines))
cut:
	for i, l := range lines {
		t := strings.TrimSpace(l)
		// Each regexp is tried only on lines that can match it (what its
		// pattern requires first or last), so that ordinary lines cost no
		// regexp at all.
		colonEnd := strings.HasSuffix(t, ":")
		switch {
		case l == "-- " || t == "--":
			break cut
		case colonEnd && attribution.MatchString(t):
			break cut
		case t != "" && strings.IndexByte("oOaAlLeE", t[0]) >= 0 && attributionStart.MatchString(t) &&
			attribution.MatchString(t+" "+nextKept(lines[i+1:])):
			break cut
		case strings.HasPrefix(t, "--") && originalMessage.MatchString(t), colonEnd && forwardStart.MatchString(t):
			break cut
		case strings.HasPrefix(t, "_") && underscores.MatchString(t) && outlookHeader.MatchString(nextKept(lines[i+1:])):
			break cut
		case strings.IndexByte(t, ':') >= 0 && outlookHeader.MatchString(t) && headerBlockFollows(lines[i+1:]):
			break cut
		case strings.HasPrefix(t, ">"):
			continue
		}
		out = append(out, l)
	}
	// Trailing blank lines and mobile signatures.
	for len(out) > 0 {
		t := strings.TrimSpace(out[len(out)-1])
		if t != "" && !mobileSignature.MatchString(t) {
			break
		}
		out = out[:len(out)-1]
	}
	out = collapseBlankLines(trimEmpty(out))
	if !slices.ContainsFunc(out, func(l string) bool { return strings.TrimSpace(l) != "" }) {
		return strings.TrimSpace(s)
	}
	return strings.Join(out, "\n")
}

// nextKept returns the first line of rest, trimmed, that StripQuotes keeps
// if it goes on (one not ">"-quoted), "" when there is none: the line that
// follows in its output, so that its output is cut as the text was.
func nextKept(rest []string) string {
	for _, l := range rest {
		if t := strings.TrimSpace(l); !strings.HasPrefix(t, ">") {
			return t
		}
	}
	return ""
}

// headerBlockFollows reports whether one of the next three lines that are
// not blank continues an Outlook header block (Sent:, Date:, To:, Subject:).
func headerBlockFollows(rest []string) bool {
	// Blank and ">"-quoted lines do not count, so that StripQuotes' own
	// output, whose blank lines are collapsed and quotes dropped, is cut
	// the same.
	seen := 0
	for _, l := range rest {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, ">") {
			continue
		}
		if outlookNext.MatchString(t) {
			return true
		}
		if seen++; seen == 3 {
			break
		}
	}
	return false
}

// collapseBlankLines squeezes runs of blank lines of lines into one, in
// place.
func collapseBlankLines(lines []string) []string {
	out := lines[:0]
	blank := false
	for _, l := range lines {
		b := strings.TrimSpace(l) == ""
		if b && blank {
			continue
		}
		blank = b
		out = append(out, l)
	}
	return out
}

// quoteMarkers are the class and id words of the elements mail clients
// wrap quoted history in: Gmail's gmail_quote, Outlook's divRplyFwdMsg and
// appendonsend, Thunderbird's moz-cite-prefix, Yahoo's yahoo_quoted.
var quoteMarkers = []string{"gmail_quote", "gmail_attr", "divRplyFwdMsg", "appendonsend", "moz-cite-prefix", "yahoo_quoted"}

// isQuoteMarker reports whether a class or id value holds one of
// quoteMarkers as a word (letters, digits and "_" around it are not
// word boundaries), in any case.
func isQuoteMarker(v string) bool {
	for _, m := range quoteMarkers {
		for i := 0; ; {
			k := indexFold(v[i:], m)
			if k < 0 {
				break
			}
			at, end := i+k, i+k+len(m)
			if (at == 0 || !isWordByte(v[at-1])) && (end == len(v) || !isWordByte(v[end])) {
				return true
			}
			i = at + 1
		}
	}
	return false
}

// indexFold is strings.Index, ASCII case-insensitive; sep is ASCII.
func indexFold(s, sep string) int {
	for i := 0; i+len(sep) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sep)], sep) {
			return i
		}
	}
	return -1
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// blockTags start a new line.
var blockTags = map[string]bool{
	"p": true, "div": true, "br": true, "tr": true, "li": true, "h1": true, "h2": true,
	"h3": true, "h4": true, "h5": true, "h6": true, "table": true, "ul": true, "ol": true,
	"pre": true, "hr": true, "section": true, "article": true, "header": true, "footer": true,
	"blockquote": true, "dd": true, "dt": true,
}

// paragraphTags are the block elements that a blank line sets apart.
var paragraphTags = map[string]bool{"p": true, "table": true, "pre": true, "blockquote": true, "ul": true, "ol": true}

// maxIndent bounds the indentation (in bytes) of nested list items, so
// that a line costs at most about this much of it.
const maxIndent = 32

// HTMLToText turns an HTML mail body into readable text, reading it with
// the HTML tokenizer of golang.org/x/net/html: scripts, styles, the title
// and the head are dropped; block elements end lines (paragraphs, lists,
// tables, pre and blockquotes leave a blank line around them); bullet
// items start with "- ", numbered ones with their number, nested ones
// are indented; table cells are apart by a space; white space is collapsed
// except in <pre>, whose lines are kept; links become "label (url)" when
// the label is not the url (and the url is not mailto:); entities are
// decoded. An unfinished tag at the end is kept as text. With dropQuotes,
// blockquotes are skipped and everything from a client's quoted-history
// marker on (Gmail, Outlook, Thunderbird, Yahoo) is cut. It takes time
// linear in len(s).
func HTMLToText(s string, dropQuotes bool) string {
	var w htmlTextWriter
	skip := ""      // the element whose content is skipped (script, style, title, head)
	quoteDepth := 0 // nesting of skipped blockquotes
	pre := 0        // nesting of <pre>
	type list struct {
		ordered bool
		n       int    // the number of the last item of an <ol>
		indent  string // in front of its items' markers
		marker  int    // the length of its last item's marker
	}
	var lists []list // the open lists
	href, linkStart, inLink := "", 0, false
	endLink := func() {
		if !inLink {
			return
		}
		inLink = false
		if quoteDepth > 0 {
			return
		}
		label := strings.TrimSpace(w.b.String()[min(linkStart, w.b.Len()):])
		if href != "" && !strings.HasPrefix(href, "mailto:") && label != href && label != strings.TrimPrefix(strings.TrimPrefix(href, "https://"), "http://") {
			w.text(" (" + href + ")")
		}
	}
	z := html.NewTokenizer(strings.NewReader(s))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			if skip == "" && quoteDepth == 0 {
				// An unfinished tag at the end (a "<" that starts none) is text.
				w.text(html.UnescapeString(string(z.Raw())))
			}
			break
		}
		switch tt {
		case html.TextToken:
			switch {
			case skip != "" || quoteDepth > 0:
			case pre > 0:
				w.pre(string(z.Text()))
			default:
				w.text(string(z.Text()))
			}
			continue
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
		default: // comments, doctypes
			continue
		}
		closing := tt == html.EndTagToken
		nameb, hasAttr := z.TagName()
		name := string(nameb)
		if skip != "" {
			if closing && name == skip || skip == "head" && !closing && name == "body" {
				skip = ""
			}
			continue
		}
		switch name {
		case "script", "style", "head", "title":
			if !closing {
				skip = name
			}
			continue
		}
		u, start := "", 1
		for hasAttr && !closing {
			var k, v []byte
			k, v, hasAttr = z.TagAttr()
			switch string(k) {
			case "class", "id":
				if dropQuotes && isQuoteMarker(string(v)) {
					endLink()
					return w.String()
				}
			case "href":
				u = string(v)
			case "start":
				if n, err := strconv.Atoi(strings.TrimSpace(string(v))); err == nil {
					start = n
				}
			}
		}
		if dropQuotes && name == "blockquote" {
			if closing {
				quoteDepth = max(quoteDepth-1, 0)
			} else {
				quoteDepth++
			}
			w.newline(2) // counts only outside the quote
			continue
		}
		if quoteDepth > 0 {
			continue
		}
		switch {
		case name == "a" && !closing:
			endLink() // <a> does not nest
			href, linkStart, inLink = u, w.b.Len(), true
		case name == "a":
			endLink()
		case name == "pre" && !closing:
			pre++
			w.newline(2)
			w.preStart = true
		case name == "pre":
			pre = max(pre-1, 0)
			w.newline(2)
		case (name == "ul" || name == "ol") && !closing:
			l := list{ordered: name == "ol", n: start - 1}
			if len(lists) == 0 {
				w.newline(2)
			} else { // a nested list is indented under its item's text
				w.newline(1)
				p := lists[len(lists)-1]
				l.indent = p.indent
				if len(p.indent) < maxIndent {
					l.indent += strings.Repeat(" ", p.marker)
				}
			}
			lists = append(lists, l)
		case name == "ul" || name == "ol":
			if len(lists) > 0 {
				lists = lists[:len(lists)-1]
			}
			if len(lists) == 0 {
				w.newline(2)
			} else {
				w.newline(1)
			}
		case name == "li" && !closing:
			w.newline(1)
			marker := "- "
			if len(lists) > 0 {
				l := &lists[len(lists)-1]
				if l.ordered {
					l.n++
					marker = strconv.Itoa(l.n) + ". "
				}
				l.marker = len(marker)
				w.raw(l.indent)
			}
			w.raw(marker)
		case (name == "td" || name == "th") && !closing:
			w.space = true
		case paragraphTags[name]:
			w.newline(2)
		case blockTags[name]:
			w.newline(1)
		}
	}
	endLink()
	return w.String()
}

// htmlTextWriter collects the text of HTML, collapsing white space as it
// goes.
type htmlTextWriter struct {
	b        strings.Builder
	space    bool // white space came since the last text
	sep      bool // b ends in a space or line break, or is empty: no space is due
	nl       int  // the line breaks b ends with
	preStart bool // the next text starts a <pre>: a line break that starts it is not content
}

// text writes text whose runs of white space are one space.
func (w *htmlTextWriter) text(s string) {
	for _, r := range s {
		if unicode.IsSpace(r) {
			w.space = true
			continue
		}
		if w.space && !w.sep && w.b.Len() > 0 {
			w.b.WriteByte(' ')
		}
		w.space, w.sep, w.nl, w.preStart = false, false, 0, false
		w.b.WriteRune(r)
	}
}

// pre writes the text of a <pre> as it is.
func (w *htmlTextWriter) pre(s string) {
	if w.preStart {
		w.preStart = false
		s = strings.TrimPrefix(s, "\n")
	}
	if s == "" {
		return
	}
	if w.space && !w.sep && w.b.Len() > 0 {
		w.b.WriteByte(' ')
	}
	w.b.WriteString(s)
	w.space = false
	if t := strings.TrimRight(s, "\n"); t != s {
		w.nl, w.sep = len(s)-len(t), true
		if t == "" {
			w.nl = min(w.nl, 2)
		}
	} else {
		w.nl, w.sep = 0, strings.HasSuffix(s, " ")
	}
}

// raw writes s (indentation, a list marker) as it is, at the start of a
// line.
func (w *htmlTextWriter) raw(s string) {
	if s == "" {
		return
	}
	w.b.WriteString(s)
	w.space, w.sep, w.nl = false, true, 0
}

// newline ends the line, leaving at least n line breaks (2 for a paragraph
// break) at the end of the text so far; none at the start.
func (w *htmlTextWriter) newline(n int) {
	w.space = false
	if w.b.Len() == 0 {
		return
	}
	for ; w.nl < n; w.nl++ {
		w.b.WriteByte('\n')
	}
	w.sep = true
}

// String returns the text without line breaks at either end, nor spaces at
// its end.
func (w *htmlTextWriter) String() string {
	return strings.TrimRight(strings.Trim(w.b.String(), "\n"), " \n")
}
