package email

import (
	"html"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
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
		case t != "" && strings.IndexByte("oOaAlLeE", t[0]) >= 0 && attributionStart.MatchString(t) && i+1 < len(lines) &&
			attribution.MatchString(t+" "+strings.TrimSpace(lines[i+1])):
			break cut
		case strings.HasPrefix(t, "--") && originalMessage.MatchString(t), colonEnd && forwardStart.MatchString(t):
			break cut
		case strings.HasPrefix(t, "_") && underscores.MatchString(t) && i+1 < len(lines) && outlookHeader.MatchString(strings.TrimSpace(lines[i+1])):
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

// headerBlockFollows reports whether one of the next lines continues an
// Outlook header block (Sent:, Date:, To:, Subject:).
func headerBlockFollows(rest []string) bool {
	for i := 0; i < len(rest) && i < 3; i++ {
		if outlookNext.MatchString(strings.TrimSpace(rest[i])) {
			return true
		}
	}
	return false
}

// collapseBlank squeezes runs of blank lines into one.
func collapseBlank(s string) string {
	return strings.Join(collapseBlankLines(strings.Split(s, "\n")), "\n")
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

var hrefAttr = regexp.MustCompile(`(?i)\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))`)

// quoteMarker matches the elements mail clients wrap quoted history in:
// Gmail's gmail_quote, Outlook's divRplyFwdMsg and appendonsend,
// Thunderbird's moz-cite-prefix, Yahoo's yahoo_quoted.
var quoteMarker = regexp.MustCompile(`(?i)(class|id)\s*=\s*["']?[^"'>]*\b(gmail_quote|gmail_attr|divRplyFwdMsg|appendonsend|moz-cite-prefix|yahoo_quoted)\b`)

// blockTags start a new line.
var blockTags = map[string]bool{
	"p": true, "div": true, "br": true, "tr": true, "li": true, "h1": true, "h2": true,
	"h3": true, "h4": true, "h5": true, "h6": true, "table": true, "ul": true, "ol": true,
	"pre": true, "hr": true, "section": true, "article": true, "header": true, "footer": true,
	"blockquote": true, "dd": true, "dt": true,
}

// HTMLToText turns an HTML mail body into readable text: scripts, styles
// and the head are dropped, block elements end lines, list items get "- ",
// links become "label (url)" when the label is not the url, entities are
// decoded. With dropQuotes, blockquotes are skipped and everything after a
// client's quoted-history marker (Gmail, Outlook, Thunderbird) is cut.
func HTMLToText(s string, dropQuotes bool) string {
	var b strings.Builder
	skip := ""      // the element whose content is skipped (script, style, head)
	quoteDepth := 0 // nesting of skipped blockquotes
	var href []string
	linkStart := []int{}
	pos := 0
	emit := func(text string) {
		if skip != "" || quoteDepth > 0 {
			return
		}
		text = html.UnescapeString(text)
		text = strings.Map(func(r rune) rune {
			switch r {
			case '\n', '\r', '\t', '\u00a0':
				return ' '
			}
			return r
		}, text)
		b.WriteString(text)
	}
	// newline ends the line, leaving at least n line breaks (2 for a
	// paragraph break) at the end of the text so far.
	newline := func(n int) {
		if skip != "" || quoteDepth > 0 {
			return
		}
		tail := strings.TrimRight(b.String(), " ")
		have := len(tail) - len(strings.TrimRight(tail, "\n"))
		for i := min(have, n); i < n; i++ {
			b.WriteByte('\n')
		}
	}
	tags := tagScanner{s: s}
	for {
		m, ok := tags.next()
		if !ok {
			break
		}
		emit(s[pos:m.start])
		pos = m.end
		if m.name == "" { // comment or doctype
			continue
		}
		closing, name, attrs := m.closing, strings.ToLower(m.name), m.attrs
		if skip != "" {
			if closing && name == skip {
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
		if dropQuotes && !closing && quoteMarker.MatchString(attrs) {
			return finishHTML(b.String())
		}
		if dropQuotes && name == "blockquote" {
			if closing {
				if quoteDepth > 0 {
					quoteDepth--
				}
			} else {
				quoteDepth++
			}
			continue
		}
		switch {
		case name == "a" && !closing:
			u := ""
			if hm := hrefAttr.FindStringSubmatch(attrs); hm != nil {
				u = html.UnescapeString(hm[1] + hm[2] + hm[3])
			}
			href = append(href, u)
			linkStart = append(linkStart, b.Len())
		case name == "a" && closing && len(href) > 0:
			u, start := href[len(href)-1], linkStart[len(linkStart)-1]
			href, linkStart = href[:len(href)-1], linkStart[:len(linkStart)-1]
			label := strings.TrimSpace(b.String()[min(start, b.Len()):])
			if u != "" && !strings.HasPrefix(u, "mailto:") && label != u && label != strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://") {
				emit(" (" + u + ")")
			}
		case name == "li" && !closing:
			newline(1)
			emit("- ")
		case name == "p" || name == "table" || name == "pre" || name == "blockquote" || name == "ul" || name == "ol":
			newline(2)
		case blockTags[name]:
			newline(1)
		}
	}
	emit(s[pos:])
	return finishHTML(b.String())
}

// finishHTML trims each line, squeezes blank lines and runs of spaces.
func finishHTML(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Trim(collapseBlank(strings.Join(lines, "\n")), "\n ")
}

// htmlTag is one tag, comment or doctype that a tagScanner found.
type htmlTag struct {
	start, end int    // where it is in the HTML
	closing    bool   // </name …>
	name       string // the tag's name as written, or "" for a comment or doctype
	attrs      string // what follows the name, up to ">"
}

// tagScanner finds the tags, comments and doctypes of HTML, left to right,
// each from where the one before it ended, as the regular expression
//
//	(?s)<!--.*?-->|<![^>]*>|<(/?)([a-zA-Z][a-zA-Z0-9]*)((?:[^>"']|"[^"]*"|'[^']*')*)>
//
// finds them: a comment runs to the first "-->"; a doctype (or any other
// "<!") to the first ">"; a tag to the first ">" outside quoted attribute
// values. A "<" that starts none of them is text.
//
// It runs in time linear in the length of the HTML: the ends of comments
// and doctypes are found by scanning on from where the last search stopped,
// and a tag's attributes are scanned with a memory of the places (outside
// quotes) from which an earlier scan found no ">".
type tagScanner struct {
	s   string
	pos int // where the next search starts
	// commentEnd and gt find the ends of comments ("-->") and doctypes (">").
	commentEnd, gt laterIndex
	// noEnd has the bit of each place from which attributes, scanned
	// outside quotes, reach no ">".
	noEnd []uint64
}

// next returns the next tag, comment or doctype, or ok false.
func (ts *tagScanner) next() (t htmlTag, ok bool) {
	s := ts.s
	for ts.pos < len(s) {
		k := strings.IndexByte(s[ts.pos:], '<')
		if k < 0 {
			break
		}
		p := ts.pos + k
		ts.pos = p + 1
		if t, ok := ts.match(p); ok {
			ts.pos = t.end
			return t, true
		}
	}
	ts.pos = len(s)
	return htmlTag{}, false
}

// match matches a tag, comment or doctype at the "<" of s[p].
func (ts *tagScanner) match(p int) (htmlTag, bool) {
	s := ts.s
	if strings.HasPrefix(s[p:], "<!--") {
		if end := ts.commentEnd.find(s, "-->", p+len("<!--")); end >= 0 {
			return htmlTag{start: p, end: end + len("-->")}, true
		}
	}
	if strings.HasPrefix(s[p:], "<!") {
		if end := ts.gt.find(s, ">", p+len("<!")); end >= 0 {
			return htmlTag{start: p, end: end + 1}, true
		}
		return htmlTag{}, false
	}
	t := htmlTag{start: p}
	n := p + 1 // the name
	if n < len(s) && s[n] == '/' {
		t.closing, n = true, n+1
	}
	if n == len(s) || !isLetter(s[n]) {
		return htmlTag{}, false
	}
	a := n + 1 // the attributes
	for a < len(s) && (isLetter(s[a]) || s[a] >= '0' && s[a] <= '9') {
		a++
	}
	gt := ts.attrsEnd(a)
	if gt < 0 {
		return htmlTag{}, false
	}
	t.name, t.attrs, t.end = s[n:a], s[a:gt], gt+1
	return t, true
}

// attrsEnd returns the index of the ">" that ends the attributes starting
// at s[a], or -1 when none does.
func (ts *tagScanner) attrsEnd(a int) int {
	s := ts.s
	if ts.noEnd == nil {
		ts.noEnd = make([]uint64, len(s)/64+1)
	}
	// Each place scanned outside quotes is marked first: should the scan
	// reach a ">", no later search starts before it, so the marks only
	// matter where the scan fails.
	for i := a; i < len(s); {
		if ts.noEnd[i/64]&(1<<(i%64)) != 0 {
			return -1
		}
		ts.noEnd[i/64] |= 1 << (i % 64)
		switch c := s[i]; c {
		case '>':
			return i
		case '"', '\'':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return -1
			}
			i += j + 2
		default:
			i++
		}
	}
	return -1
}

// laterIndex finds the first instance of a string at or after a place,
// remembering its last answer: asked from places that do not go back, it
// scans the text once.
type laterIndex struct {
	from, at int // the first instance at or after from is at at, or at is -1
	valid    bool
}

// find returns the index of the first instance of sep in s at or after
// from, or -1.
func (li *laterIndex) find(s, sep string, from int) int {
	if !li.valid || from < li.from || li.at >= 0 && from > li.at {
		li.from, li.at, li.valid = from, strings.Index(s[from:], sep), true
		if li.at >= 0 {
			li.at += from
		}
	}
	return li.at
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
