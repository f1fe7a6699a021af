package jira

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/switchboardhq/switchboard/adapters/internal/markdown"
)

// Jira's REST API v2 and its webhooks carry comment bodies and descriptions
// in Jira wiki markup
// (https://jira.atlassian.com/secure/WikiRendererHelpAction.jspa?section=all).
// wikiToMarkdown turns it into plain Markdown for agents: headings, bold,
// italics, strikethrough, monospace, {code} and {noformat} blocks, {quote}
// and bq., links [label|url], images and attachments, lists (nested and
// mixed), tables, rules, line breaks (\\) and escapes; {color}, {panel} and
// {anchor} keep only their content; [~accountid:…] and [~user] mentions go
// through the mention function.

var (
	// ruleWRe is a horizontal rule (----), for marker.go; the conversion
	// itself uses wikiRule.
	ruleWRe  = regexp.MustCompile(`^\s*-{4,}\s*$`)
	controls = strings.NewReplacer("\x00", "", "\x01", "", "\x02", "", "\x03", "", "\r\n", "\n", "\r", "\n")
)

// quoteToggle stands, on a line of its own, for a {quote} tag while a text
// segment is converted.
const quoteToggle = "\x01quote"

// wikiMentions returns the distinct mention references in wiki text
// ("accountid:<id>" or a user name), in order.
func wikiMentions(s string) []string {
	var refs []string
	seen := map[string]bool{}
	sc := newMentionScanner(s)
	for from := 0; ; {
		start, end := sc.next(from)
		if start < 0 {
			return refs
		}
		if ref := mentionRef(s[start+2 : end-1]); !seen[ref] {
			seen[ref] = true
			refs = append(refs, ref)
		}
		from = end
	}
}

// wikiToMarkdown converts Jira wiki markup to Markdown. mention renders a
// mention reference (see wikiMentions); hint is always "".
func wikiToMarkdown(s string, mention func(ref, hint string) string) string {
	s = cleanControls(s)
	c := &wikiConv{mention: mention}
	c.out.Grow(len(s))
	pre := newTagScanner(s, "", "code", "noformat")
	for pos := 0; pos < len(s); { // s[pos:] is not converted yet
		start, end := findPre(&pre, pos)
		if start < 0 {
			c.text(s[pos:])
			break
		}
		c.text(s[pos:start])
		tag, params := pre.name, pre.params
		body := s[end:]
		pos = len(s)
		if i := strings.Index(body, "{"+tag+"}"); i >= 0 {
			body, pos = body[:i], end+i+len(tag)+2
		}
		lang := ""
		if tag == "code" {
			lang = codeLanguage(params)
		}
		c.code(lang, body)
	}
	return c.result()
}

// cleanControls removes the NUL and sentinel bytes (\x00 to \x03) of s and
// turns its line ends into "\n".
func cleanControls(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] <= 3 || s[i] == '\r' {
			return controls.Replace(s)
		}
	}
	return s
}

// findPre finds the first {code…} or {noformat} tag at or after s[from:]
// that opens a block: not escaped (\{code}) and not the word inside
// monospace ({{code}}). It returns the tag's span, or -1, -1; pre holds its
// name and parameters.
func findPre(pre *tagScanner, from int) (start, end int) {
	s := pre.s
	for off := from; ; off = end {
		start, end = pre.next(off)
		if start < 0 || start == from || s[start-1] != '{' && s[start-1] != '\\' {
			return start, end
		}
	}
}

// codeLanguage reads the language of a {code:…} tag: the first parameter
// without "=", or language=….
func codeLanguage(params string) string {
	for _, p := range strings.Split(params, "|") {
		p = strings.TrimSpace(p)
		if k, v, ok := strings.Cut(p, "="); ok {
			if strings.EqualFold(strings.TrimSpace(k), "language") {
				return strings.TrimSpace(v)
			}
			continue
		}
		if p != "" {
			return p
		}
	}
	return ""
}

// wikiConv accumulates Markdown lines; its state carries across the text
// segments between code blocks.
type wikiConv struct {
	mention func(ref, hint string) string
	// out holds the lines written, without repeated empty lines: an empty
	// line is written before the next line (gap). The last lines that are
	// "" or ">" wait in tail (as false and true), because the end of a
	// quote takes back its last ">" lines.
	out      strings.Builder
	gap      bool
	tail     []bool
	quote    bool
	counters []int // per list level: the last number of an ordered list
	widths   []int // per list level: the width of its marker in Markdown
	table    bool  // a table's header row was written
}

// emit adds a line, prefixed with "> " inside a quote.
func (c *wikiConv) emit(line string) {
	prefix := ""
	if c.quote {
		if line == "" {
			line = ">"
		} else {
			prefix = "> "
		}
	}
	if prefix == "" && (line == "" || line == ">") {
		c.tail = append(c.tail, line == ">")
		return
	}
	c.flushTail()
	c.write(prefix, line)
}

// flushTail writes the lines waiting in tail.
func (c *wikiConv) flushTail() {
	for _, quoted := range c.tail {
		if quoted {
			c.write("", ">")
		} else {
			c.gap = true
		}
	}
	c.tail = c.tail[:0]
}

// write writes the line prefix+line, not empty, to out.
func (c *wikiConv) write(prefix, line string) {
	if c.out.Len() > 0 {
		c.out.WriteByte('\n')
		if c.gap {
			c.out.WriteByte('\n')
		}
	}
	c.out.WriteString(prefix)
	c.out.WriteString(line)
	c.gap = false
}

func (c *wikiConv) endBlock() {
	c.counters, c.widths, c.table = c.counters[:0], c.widths[:0], false
}

// code writes a fenced code block.
func (c *wikiConv) code(lang, body string) {
	c.endBlock()
	body = strings.TrimPrefix(body, "\n")
	body = strings.TrimRight(body, "\n")
	fence := "```"
	if n := markdown.LongestRun(body, '`'); n >= 3 {
		fence = strings.Repeat("`", n+1)
	}
	c.blank()
	c.emit(fence + lang)
	for {
		l, rest, more := strings.Cut(body, "\n")
		c.emit(l)
		if !more {
			break
		}
		body = rest
	}
	c.emit(fence)
	c.blank()
}

// blank ends the current paragraph with an empty line (once; ">" inside a
// quote).
func (c *wikiConv) blank() {
	if n := len(c.tail); n > 0 {
		if quoted := c.tail[n-1]; !quoted || c.quote {
			return // the last line is "", or ">" inside a quote
		}
	} else if c.out.Len() == 0 {
		return
	}
	c.emit("")
}

// text converts a segment of wiki markup without code blocks.
func (c *wikiConv) text(s string) {
	if s == "" {
		return
	}
	s = strings.ReplaceAll(s, "{quote}", "\n"+quoteToggle+"\n")
	if strings.Contains(s, "{panel") {
		panels := newTagScanner(s, "", "panel")
		s = replaceSpans(s, &panels, panel)
	}
	for {
		line, rest, more := strings.Cut(s, "\n")
		c.line(line)
		if !more {
			return
		}
		s = rest
	}
}

// panel converts a {panel} tag: a paragraph break, and the title in bold
// if it has one.
func panel(tag string) string {
	title := ""
	for _, p := range strings.Split(strings.TrimSuffix(strings.TrimPrefix(tag, "{panel"), "}"), "|") {
		if k, v, ok := strings.Cut(strings.TrimPrefix(p, ":"), "="); ok && strings.TrimSpace(k) == "title" {
			title = strings.TrimSpace(v)
		}
	}
	if title != "" {
		return "\n\n*" + title + "*\n"
	}
	return "\n\n"
}

// line converts one line outside code blocks.
func (c *wikiConv) line(line string) {
	if line == quoteToggle {
		c.endBlock()
		if c.quote {
			for n := len(c.tail); n > 0 && c.tail[n-1]; n-- {
				c.tail = c.tail[:n-1]
			}
			c.quote = false
			c.blank()
		} else {
			c.blank()
			c.quote = true
		}
		return
	}
	trimmed := strings.TrimSpace(line)
	if trimmed == "" {
		c.endBlock()
		c.blank()
		return
	}
	if !strings.HasPrefix(trimmed, "|") && c.table {
		c.table = false
	}
	if n, text, ok := wikiHeading(line); ok {
		c.endBlock()
		c.emit("######"[:n] + " " + c.inline(text))
		return
	}
	if text, ok := wikiQuoteLine(line); ok {
		c.endBlock()
		c.emit("> " + c.inline(text))
		return
	}
	if wikiRule(line) {
		c.endBlock()
		c.emit("---")
		return
	}
	if strings.HasPrefix(trimmed, "|") {
		c.tableRow(trimmed)
		return
	}
	if marks, text, ok := wikiListItem(line); ok {
		c.listItem(marks, text)
		return
	}
	c.counters, c.widths = c.counters[:0], c.widths[:0]
	c.emit(c.inline(trimmed))
}

// listItem writes a list item whose Jira markers are marks ("*", "#*",
// "-", …).
func (c *wikiConv) listItem(marks, text string) {
	level := len(marks)
	if marks == "-" {
		marks = "*"
	}
	for len(c.counters) < level {
		c.counters = append(c.counters, 0)
		c.widths = append(c.widths, 2)
	}
	c.counters, c.widths = c.counters[:level], c.widths[:level]
	indent := 0
	for i := 0; i < level-1; i++ {
		indent += c.widths[i]
	}
	var marker string
	if marks[level-1] == '#' {
		c.counters[level-1]++
		marker = strconv.Itoa(c.counters[level-1]) + "."
	} else {
		c.counters[level-1] = 0
		marker = "-"
	}
	c.widths[level-1] = len(marker) + 1
	c.emit(strings.Repeat(" ", indent) + marker + " " + c.inline(text))
}

// tableRow writes a table row. Markdown tables need a header: the first
// row of a table is its header, whether Jira marked it as one (||) or not.
func (c *wikiConv) tableRow(line string) {
	var row strings.Builder
	row.Grow(len(line) + 2*strings.Count(line, "|") + 4)
	row.WriteByte('|')
	n := 0 // cells
	eachCell(line, func(cell string) {
		row.WriteByte(' ')
		row.WriteString(strings.ReplaceAll(c.inline(strings.TrimSpace(cell)), "|", `\|`))
		row.WriteString(" |")
		n++
	})
	seps := "|" + strings.Repeat(" --- |", n)
	if n == 0 {
		row.WriteString("  |")
		seps = "|  |"
	}
	c.counters, c.widths = c.counters[:0], c.widths[:0]
	if !c.table {
		c.table = true
		c.blank()
		c.emit(row.String())
		c.emit(seps)
		return
	}
	c.emit(row.String())
}

// eachCell calls f with each cell of a table row, split at its "|" and "||"
// separators, but not inside [links] or {{monospace}}, nor at escaped "\|".
// Blank text before the first separator or after the last is no cell.
func eachCell(line string, f func(cell string)) {
	first := true
	cell := func(cell string) {
		if !first || strings.TrimSpace(cell) != "" {
			f(cell)
		}
		first = false
	}
	start, depth := 0, 0 // line[start:] is the current cell
	for i := 0; i < len(line); i++ {
		switch ch := line[i]; {
		case ch == '\\' && i+1 < len(line):
			i++
		case ch == '[':
			depth++
		case ch == ']' && depth > 0:
			depth--
		case ch == '{' && strings.HasPrefix(line[i:], "{{"):
			depth++
			i++
		case ch == '}' && strings.HasPrefix(line[i:], "}}") && depth > 0:
			depth--
			i++
		case ch == '|' && depth == 0:
			cell(line[start:i])
			if i+1 < len(line) && line[i+1] == '|' {
				i++
			}
			start = i + 1
		}
	}
	if rest := line[start:]; strings.TrimSpace(rest) != "" {
		cell(rest)
	}
}

// result returns the lines, joined, without leading, trailing or repeated
// blank lines.
func (c *wikiConv) result() string {
	c.flushTail()
	return strings.TrimSpace(c.out.String())
}

// The sentinels of emphasis while a line is converted.
const (
	sentBold   = "\x01"
	sentItalic = "\x02"
	sentStrike = "\x03"
)

var sentinels = strings.NewReplacer(sentBold, "**", sentItalic, "*", sentStrike, "~~")

// inline converts the inline markup of one line.
func (c *wikiConv) inline(s string) string {
	// Monospace, mentions, links, images and escapes are set aside as
	// placeholders (\x00<n>\x00) so that emphasis leaves them alone.
	if isPlain(s) {
		return s
	}
	var kept markdown.Placeholders
	keep := kept.Keep
	if strings.Contains(s, "{{") {
		mono := newMonoScanner(s)
		s = replaceSpans(s, &mono, func(m string) string {
			code := unescapeWiki(m[2 : len(m)-2])
			fence := strings.Repeat("`", markdown.LongestRun(code, '`')+1)
			if strings.HasPrefix(code, "`") || strings.HasSuffix(code, "`") {
				code = " " + code + " "
			}
			return keep(fence + code + fence)
		})
	}
	s = escapes(s, keep)
	if strings.Contains(s, "{") {
		macros := newTagScanner(s, "anchor", "color", "anchor")
		s = replaceSpans(s, &macros, func(string) string { return "" })
	}
	if strings.Contains(s, "[") {
		mentions := newMentionScanner(s)
		s = replaceSpans(s, &mentions, func(m string) string {
			return keep(c.mention(mentionRef(m[2:len(m)-1]), ""))
		})
		links := newLinkScanner(s)
		s = replaceSpans(s, &links, func(m string) string { return keep(wikiLink(m[1 : len(m)-1])) })
	}
	if strings.Contains(s, "!") {
		images := newImageScanner(s)
		s = replaceSpans(s, &images, func(string) string { return keep("[image: " + images.name + "]") })
	}
	if strings.Contains(s, "??") {
		cites := newCiteScanner(s)
		s = replaceSpans(s, &cites, func(m string) string { return sentItalic + m[2:len(m)-2] + sentItalic })
	}
	for _, e := range []struct {
		delim byte
		sent  string
	}{{'*', sentBold}, {'_', sentItalic}, {'-', sentStrike}, {'+', ""}, {'^', ""}, {'~', ""}} {
		if strings.IndexByte(s, e.delim) >= 0 {
			s = emphasis(s, e.delim, e.sent)
		}
	}
	return kept.Restore(sentinels.Replace(s))
}

// inlineMarks are the bytes that start inline markup, and the sentinels.
var inlineMarks = func() (marks [256]bool) {
	for _, c := range []byte("{\\[!?*_-+^~" + sentBold + sentItalic + sentStrike) {
		marks[c] = true
	}
	return marks
}()

// isPlain reports whether s holds no inline markup: inline would return it
// as it is.
func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		if inlineMarks[s[i]] {
			return false
		}
	}
	return true
}

// escapes sets aside "\\" (a line break) and backslash-escaped characters
// as placeholders, one for each run of them.
func escapes(s string, keep func(string) string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	var run []byte // the escaped characters not set aside yet
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch next := s[i+1]; {
			case next == '\\':
				run = append(run, '\n')
				i++
				continue
			case strings.IndexByte(wikiSpecials, next) >= 0:
				run = append(run, next)
				i++
				continue
			}
		}
		if len(run) > 0 {
			b.WriteString(keep(string(run)))
			run = run[:0]
		}
		b.WriteByte(s[i])
	}
	if len(run) > 0 {
		b.WriteString(keep(string(run)))
	}
	return b.String()
}

// wikiSpecials are the characters a backslash escapes in wiki markup.
const wikiSpecials = `*_-+^~?{}[]|!#()`

// unescapeWiki removes escaping backslashes.
func unescapeWiki(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(wikiSpecials, s[i+1]) >= 0 {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// wikiLink converts the inside of a [link].
func wikiLink(in string) string {
	label, target, hasLabel := strings.Cut(in, "|")
	if hasLabel {
		target, _, _ = strings.Cut(target, "|") // [label|url|tooltip]
	} else {
		target, label = in, ""
	}
	target, label = strings.TrimSpace(target), strings.TrimSpace(unescapeWiki(label))
	switch {
	case strings.HasPrefix(target, "^"):
		name := target[1:]
		if label != "" && label != name {
			return label + " (attachment " + name + ")"
		}
		return "[attachment: " + name + "]"
	case strings.HasPrefix(target, "mailto:"):
		addr := strings.TrimPrefix(target, "mailto:")
		if label == "" || label == addr {
			return addr
		}
		return "[" + label + "](" + target + ")"
	case strings.HasPrefix(target, "#"):
		if label != "" {
			return label
		}
		return target[1:]
	case isURL(target):
		if label == "" || label == target {
			return target
		}
		return "[" + label + "](" + target + ")"
	}
	if label != "" {
		return label
	}
	return target
}

func isURL(s string) bool {
	for _, p := range []string{"https://", "http://", "ftp://", "file:"} {
		if len(s) >= len(p) && strings.EqualFold(s[:len(p)], p) {
			return true
		}
	}
	return false
}

// emphasis replaces pairs of delim that open and close emphasis with sent
// (or removes them when sent is ""). As in Jira, an opening delimiter
// follows the start or a non-word character and precedes a non-space; a
// closing one follows a non-space and precedes the end or a non-word
// character; both are on one line. It runs in time linear in len(s).
func emphasis(s string, delim byte, sent string) string {
	var b strings.Builder
	start := 0 // of the text not yet written
	cl := closer{s: s, delim: delim, at: -1, nl: -1}
	for i := 0; i < len(s); i++ {
		if s[i] != delim || !opens(s, i) {
			continue
		}
		j := cl.closing(i)
		if j < 0 {
			continue
		}
		b.WriteString(s[start:i])
		b.WriteString(sent)
		b.WriteString(s[i+1 : j])
		b.WriteString(sent)
		start, i = j+1, j
	}
	if start == 0 {
		return s
	}
	b.WriteString(s[start:])
	return b.String()
}

func opens(s string, i int) bool {
	prev, next := runeBefore(s, i), runeAfter(s, i+1)
	return !isWord(prev) && rune(s[i]) != prev && next != 0 && !unicode.IsSpace(next) && next != rune(s[i])
}

// closer finds the delimiters that close emphasis in s. Its answers for
// increasing positions are found in one scan of s: it remembers the next
// closing delimiter and the next line end after the last position asked.
type closer struct {
	s     string
	delim byte
	at    int // the first closing delimiter at or after the last position asked, len(s) if none; -1 before the first question
	nl    int // the first "\n" at or after the last position asked, len(s) if none; -1 before the first question
}

// closing returns the index of the delimiter closing the one at i, or -1:
// the first that can close after i+1 on the same line. The i of successive
// calls must increase.
func (c *closer) closing(i int) int {
	from := i + 2
	if c.nl < from {
		c.nl = len(c.s)
		if k := strings.IndexByte(c.s[min(from, len(c.s)):], '\n'); k >= 0 {
			c.nl = from + k
		}
	}
	if c.at < from {
		c.at = len(c.s)
		for j := from; j < len(c.s); j++ {
			if c.s[j] == c.delim && closes(c.s, j) {
				c.at = j
				break
			}
		}
	}
	if c.at < len(c.s) && c.at < c.nl {
		return c.at
	}
	return -1
}

// closes reports whether the delimiter at j can close emphasis: it follows
// a non-space and precedes the end or a non-word character other than
// itself.
func closes(s string, j int) bool {
	prev, next := runeBefore(s, j), runeAfter(s, j+1)
	return prev != 0 && !unicode.IsSpace(prev) && !isWord(next) && next != rune(s[j])
}

func runeBefore(s string, i int) rune {
	if i == 0 {
		return 0
	}
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return r
}

func runeAfter(s string, i int) rune {
	if i >= len(s) {
		return 0
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return r
}

func isWord(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// The scanners below find wiki markup in time linear in the text: each
// remembers, for every byte or string it looks for, where it found it
// last, so that a text full of openers without closers is read once, not
// once per opener. Each finds the same spans as the regular expression in
// its comment (a regular expression would find them in linear time too,
// but many times slower).

// isSpaceRE reports whether c is a space as \s in a regular expression
// ([\t\n\f\r ]).
func isSpaceRE(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r' }

// skipSpaceRE returns the index of the first byte of s at or after i that
// is not a space as isSpaceRE knows it.
func skipSpaceRE(s string, i int) int {
	for i < len(s) && isSpaceRE(s[i]) {
		i++
	}
	return i
}

// afterMark returns the text after a line's mark, which ends at i: at
// least one space, then the text (\s+(.*)$).
func afterMark(line string, i int) (string, bool) {
	j := skipSpaceRE(line, i)
	return line[j:], j > i
}

// wikiHeading matches a heading line (^\s*h([1-6])\.\s+(.*)$): its level and
// its text.
func wikiHeading(line string) (level int, text string, ok bool) {
	i := skipSpaceRE(line, 0)
	if len(line) < i+3 || line[i] != 'h' || line[i+1] < '1' || line[i+1] > '6' || line[i+2] != '.' {
		return 0, "", false
	}
	if text, ok = afterMark(line, i+3); !ok {
		return 0, "", false
	}
	return int(line[i+1] - '0'), text, true
}

// wikiQuoteLine matches a one-line quote (^\s*bq\.\s+(.*)$): its text.
func wikiQuoteLine(line string) (string, bool) {
	i := skipSpaceRE(line, 0)
	if !strings.HasPrefix(line[i:], "bq.") {
		return "", false
	}
	return afterMark(line, i+3)
}

// wikiRule matches a horizontal rule (^\s*-{4,}\s*$).
func wikiRule(line string) bool {
	i := skipSpaceRE(line, 0)
	j := i
	for j < len(line) && line[j] == '-' {
		j++
	}
	return j-i >= 4 && skipSpaceRE(line, j) == len(line)
}

// wikiListItem matches a list item (^\s*([*#]+|-)\s+(.*)$): its marks
// ("*", "#*", "-", …) and its text.
func wikiListItem(line string) (marks, text string, ok bool) {
	i := skipSpaceRE(line, 0)
	j := i
	for j < len(line) && (line[j] == '*' || line[j] == '#') {
		j++
	}
	if j == i && j < len(line) && line[j] == '-' {
		j++
	}
	if j == i {
		return "", "", false
	}
	if text, ok = afterMark(line, j); !ok {
		return "", "", false
	}
	return line[i:j], text, true
}

// index finds sep in s at or after a position. It remembers its last
// answer, so that asking for positions that do not decrease reads s once.
type index struct {
	s, sep string
	lo, at int // the first sep at or after lo is at, len(s) if none; at < lo before the first question
}

func newIndex(s, sep string) index { return index{s: s, sep: sep, at: -1} }

// from returns the index of the first sep at or after i, or len(s).
func (x *index) from(i int) int {
	if i < x.lo || i > x.at {
		x.lo, x.at = i, len(x.s)
		if i < len(x.s) {
			if k := strings.Index(x.s[i:], x.sep); k >= 0 {
				x.at = i + k
			}
		}
	}
	return x.at
}

// spanScanner finds spans of markup in a text.
type spanScanner interface {
	// next returns the first span s[start:end] at or after from, not
	// empty, or -1, -1. Successive calls ask for increasing from.
	next(from int) (start, end int)
}

// replaceSpans returns s with each span sc finds replaced by repl of it,
// from left to right, as regexp's ReplaceAllStringFunc does.
func replaceSpans(s string, sc spanScanner, repl func(span string) string) string {
	var b strings.Builder
	done := 0 // s[:done] is written
	for {
		start, end := sc.next(done)
		if start < 0 {
			break
		}
		if done == 0 {
			b.Grow(len(s))
		}
		b.WriteString(s[done:start])
		b.WriteString(repl(s[start:end]))
		done = end
	}
	if done == 0 {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

// nextAt returns the first span at or after from that starts at an opener
// open finds, and ends where at(start) says (-1 for no span there), or
// -1, -1. It is the next of the scanners below.
func nextAt(s string, open *index, from int, at func(start int) int) (start, end int) {
	for {
		start = open.from(from)
		if start >= len(s) {
			return -1, -1
		}
		if end = at(start); end > 0 {
			return start, end
		}
		from = start + 1
	}
}

// tagScanner finds macro tags {name} and {name:params}, params holding no
// "}" nor line end (\{(name1|name2…)(?::([^}\n]*))?\}).
type tagScanner struct {
	s            string
	names        []string // no name is the prefix of another
	needParams   string   // the name whose tags must have parameters, if any
	open, close  index    // "{", "}"
	nl           index
	name, params string // of the last tag found
}

func newTagScanner(s, needParams string, names ...string) tagScanner {
	return tagScanner{s: s, names: names, needParams: needParams, open: newIndex(s, "{"), close: newIndex(s, "}"), nl: newIndex(s, "\n")}
}

func (x *tagScanner) next(from int) (start, end int) { return nextAt(x.s, &x.open, from, x.at) }

func (x *tagScanner) at(p int) int {
	s := x.s
	name := ""
	for _, n := range x.names {
		if strings.HasPrefix(s[p+1:], n) {
			name = n
			break
		}
	}
	if name == "" {
		return -1
	}
	q := p + 1 + len(name) // after the name
	switch {
	case q < len(s) && s[q] == '}' && name != x.needParams:
		x.name, x.params = name, ""
		return q + 1
	case q < len(s) && s[q] == ':':
		if e := x.close.from(q + 1); e < len(s) && x.nl.from(q+1) > e {
			x.name, x.params = name, s[q+1:e]
			return e + 1
		}
	}
	return -1
}

// monoScanner finds monospace, {{text}} on one line (\{\{(.+?)\}\}).
type monoScanner struct {
	s               string
	open, close, nl index // "{{", "}}", "\n"
}

func newMonoScanner(s string) monoScanner {
	return monoScanner{s: s, open: newIndex(s, "{{"), close: newIndex(s, "}}"), nl: newIndex(s, "\n")}
}

func (x *monoScanner) next(from int) (start, end int) {
	if x.close.from(from) >= len(x.s) {
		return -1, -1 // no "}}" ends one
	}
	return nextAt(x.s, &x.open, from, x.at)
}

func (x *monoScanner) at(p int) int {
	if q := x.close.from(p + 3); q < len(x.s) && x.nl.from(p+2) > q { // the text is not empty
		return q + 2
	}
	return -1
}

// mentionScanner finds mentions, [~ref] (\[~([^\[\]\n|]+)\]).
type mentionScanner struct {
	s                         string
	open, stopOpen, close, nl index // "[" as an opener and in the reference, "]", "\n"
	pipe                      index // "|"
}

func newMentionScanner(s string) mentionScanner {
	return mentionScanner{s: s, open: newIndex(s, "["), stopOpen: newIndex(s, "["), close: newIndex(s, "]"), nl: newIndex(s, "\n"), pipe: newIndex(s, "|")}
}

func (x *mentionScanner) next(from int) (start, end int) { return nextAt(x.s, &x.open, from, x.at) }

func (x *mentionScanner) at(p int) int {
	s := x.s
	if p+1 >= len(s) || s[p+1] != '~' {
		return -1
	}
	if e := min(x.stopOpen.from(p+2), x.close.from(p+2), x.nl.from(p+2), x.pipe.from(p+2)); e < len(s) && s[e] == ']' && e > p+2 {
		return e + 1
	}
	return -1
}

// linkScanner finds links, [text] on one line and without brackets inside
// (\[([^\[\]\n]*)\]).
type linkScanner struct {
	s               string
	open, close, nl index // "[", "]", "\n"
}

func newLinkScanner(s string) linkScanner {
	return linkScanner{s: s, open: newIndex(s, "["), close: newIndex(s, "]"), nl: newIndex(s, "\n")}
}

func (x *linkScanner) next(from int) (start, end int) { return nextAt(x.s, &x.open, from, x.at) }

func (x *linkScanner) at(p int) int {
	if e := min(x.open.from(p+1), x.close.from(p+1), x.nl.from(p+1)); e < len(x.s) && x.s[e] == ']' {
		return e + 1
	}
	return -1
}

// imageScanner finds images, !name! or !name|params!, whose name is a file
// name with an extension or an http(s) URL
// (!([^\s!|][^!|\n]*\.[A-Za-z0-9]{2,5}|https?://[^\s!|]+)(?:\|[^!\n]*)?!).
type imageScanner struct {
	s                    string
	open, bang, pipe, nl index  // "!" as an opener and after it, "|", "\n"
	name                 string // of the last image found
}

func newImageScanner(s string) imageScanner {
	return imageScanner{s: s, open: newIndex(s, "!"), bang: newIndex(s, "!"), pipe: newIndex(s, "|"), nl: newIndex(s, "\n")}
}

func (x *imageScanner) next(from int) (start, end int) { return nextAt(x.s, &x.open, from, x.at) }

// at matches an image at s[p] == '!', and sets name.
func (x *imageScanner) at(p int) int {
	s := x.s
	if p+1 < len(s) && !isSpaceRE(s[p+1]) && s[p+1] != '!' && s[p+1] != '|' {
		// A file name: its first character, then anything up to "!", "|"
		// or the line end, which must end with the extension.
		_, first := utf8.DecodeRuneInString(s[p+1:])
		r := min(x.bang.from(p+1), x.pipe.from(p+1), x.nl.from(p+1))
		if hasExtension(s[p+1:r], first) {
			if end := x.tail(r); end > 0 {
				x.name = s[p+1 : r]
				return end
			}
		}
	}
	u := p + 1 // the URL's start, then its end
	switch {
	case strings.HasPrefix(s[u:], "https://"):
		u += len("https://")
	case strings.HasPrefix(s[u:], "http://"):
		u += len("http://")
	default:
		return -1
	}
	r := u
	for r < len(s) && !isSpaceRE(s[r]) && s[r] != '!' && s[r] != '|' {
		r++
	}
	if r > u {
		if end := x.tail(r); end > 0 {
			x.name = s[p+1 : r]
			return end
		}
	}
	return -1
}

// tail matches the end of an image after its name, at s[r:]: "!", or "|",
// parameters up to a "!" on the same line, and the "!". It returns the
// image's end, or -1.
func (x *imageScanner) tail(r int) int {
	s := x.s
	switch {
	case r >= len(s):
	case s[r] == '!':
		return r + 1
	case s[r] == '|':
		if e := min(x.bang.from(r+1), x.nl.from(r+1)); e < len(s) && s[e] == '!' {
			return e + 1
		}
	}
	return -1
}

// hasExtension reports whether name ends with "." and 2 to 5 ASCII letters
// or digits, after its first character, of first bytes.
func hasExtension(name string, first int) bool {
	n := 0 // the letters and digits at the end, up to 6
	for n < 6 && n < len(name) && isAlnum(name[len(name)-1-n]) {
		n++
	}
	dot := len(name) - n - 1
	return n >= 2 && n <= 5 && dot >= first && name[dot] == '.'
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// citeScanner finds citations, ??text?? on one line, the text neither
// starting nor ending with a space (\?\?(\S(?:[^?\n]*\S)?)\?\?).
type citeScanner struct {
	s           string
	open, q, nl index // "??", "?", "\n"
}

func newCiteScanner(s string) citeScanner {
	return citeScanner{s: s, open: newIndex(s, "??"), q: newIndex(s, "?"), nl: newIndex(s, "\n")}
}

func (x *citeScanner) next(from int) (start, end int) { return nextAt(x.s, &x.open, from, x.at) }

func (x *citeScanner) at(p int) int {
	s := x.s
	i := p + 2 // the text's first character, which may be a "?"
	if i >= len(s) || isSpaceRE(s[i]) {
		return -1
	}
	_, size := utf8.DecodeRuneInString(s[i:])
	q := i + size
	// No "?" and no line end come after the first character but before
	// the last; the last is either the first "?" after the first
	// character, when "???" follows it, or the character just before
	// that "?", when "??" follows.
	z := min(x.q.from(q), x.nl.from(q))
	switch {
	case z >= len(s) || s[z] != '?':
	case strings.HasPrefix(s[z+1:], "??"):
		return z + 3
	case strings.HasPrefix(s[z:], "??") && (z == q || !isSpaceRE(s[z-1])):
		return z + 2
	}
	return -1
}
