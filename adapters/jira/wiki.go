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
	preRe       = regexp.MustCompile(`\{(code|noformat)(?::([^}\n]*))?\}`)
	headingWRe  = regexp.MustCompile(`^\s*h([1-6])\.\s+(.*)$`)
	bqRe        = regexp.MustCompile(`^\s*bq\.\s+(.*)$`)
	listWRe     = regexp.MustCompile(`^\s*([*#]+|-)\s+(.*)$`)
	ruleWRe     = regexp.MustCompile(`^\s*-{4,}\s*$`)
	panelRe     = regexp.MustCompile(`\{panel(?::([^}\n]*))?\}`)
	monoRe      = regexp.MustCompile(`\{\{(.+?)\}\}`)
	linkWRe     = regexp.MustCompile(`\[([^\[\]\n]*)\]`)
	mentionWRe  = regexp.MustCompile(`\[~([^\[\]\n|]+)\]`)
	imageRe     = regexp.MustCompile(`!([^\s!|][^!|\n]*\.[A-Za-z0-9]{2,5}|https?://[^\s!|]+)(?:\|[^!\n]*)?!`)
	inlineMacro = regexp.MustCompile(`\{(?:color(?::[^}\n]*)?|anchor:[^}\n]*)\}`)
	citeRe      = regexp.MustCompile(`\?\?(\S(?:[^?\n]*\S)?)\?\?`)
	controls    = strings.NewReplacer("\x00", "", "\x01", "", "\x02", "", "\x03", "", "\r\n", "\n", "\r", "\n")
)

// quoteToggle stands, on a line of its own, for a {quote} tag while a text
// segment is converted.
const quoteToggle = "\x01quote"

// wikiMentions returns the distinct mention references in wiki text
// ("accountid:<id>" or a user name), in order.
func wikiMentions(s string) []string {
	var refs []string
	seen := map[string]bool{}
	for _, m := range mentionWRe.FindAllStringSubmatch(s, -1) {
		ref := mentionRef(m[1])
		if !seen[ref] {
			seen[ref] = true
			refs = append(refs, ref)
		}
	}
	return refs
}

// wikiToMarkdown converts Jira wiki markup to Markdown. mention renders a
// mention reference (see wikiMentions); hint is always "".
func wikiToMarkdown(s string, mention func(ref, hint string) string) string {
	s = controls.Replace(s)
	c := &wikiConv{mention: mention}
	for s != "" {
		loc := findPre(s)
		if loc == nil {
			c.text(s)
			break
		}
		c.text(s[:loc[0]])
		tag := s[loc[2]:loc[3]]
		params := ""
		if loc[4] >= 0 {
			params = s[loc[4]:loc[5]]
		}
		rest := s[loc[1]:]
		end := strings.Index(rest, "{"+tag+"}")
		body := rest
		if end >= 0 {
			body, s = rest[:end], rest[end+len(tag)+2:]
		} else {
			s = ""
		}
		lang := ""
		if tag == "code" {
			lang = codeLanguage(params)
		}
		c.code(lang, body)
	}
	return c.result()
}

// findPre finds the next {code…} or {noformat} tag that opens a block: not
// escaped (\{code}) and not the word inside monospace ({{code}}).
func findPre(s string) []int {
	off := 0
	for {
		loc := preRe.FindStringSubmatchIndex(s[off:])
		if loc == nil {
			return nil
		}
		for i := range loc {
			if loc[i] >= 0 {
				loc[i] += off
			}
		}
		if loc[0] == 0 || s[loc[0]-1] != '{' && s[loc[0]-1] != '\\' {
			return loc
		}
		off = loc[1]
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
	mention  func(ref, hint string) string
	out      []string
	quote    bool
	counters []int // per list level: the last number of an ordered list
	widths   []int // per list level: the width of its marker in Markdown
	table    bool  // a table's header row was written
}

func (c *wikiConv) emit(line string) {
	if c.quote {
		if line == "" {
			line = ">"
		} else {
			line = "> " + line
		}
	}
	c.out = append(c.out, line)
}

func (c *wikiConv) endBlock() {
	c.counters, c.widths, c.table = c.counters[:0], c.widths[:0], false
}

// code writes a fenced code block.
func (c *wikiConv) code(lang, body string) {
	c.endBlock()
	body = strings.TrimPrefix(body, "\n")
	body = strings.TrimRight(body, "\n")
	fence := strings.Repeat("`", max(3, markdown.LongestRun(body, '`')+1))
	c.blank()
	c.emit(fence + lang)
	for _, l := range strings.Split(body, "\n") {
		c.emit(l)
	}
	c.emit(fence)
	c.blank()
}

// blank ends the current paragraph with an empty line (once; ">" inside a
// quote).
func (c *wikiConv) blank() {
	n := len(c.out)
	if n == 0 {
		return
	}
	if last := c.out[n-1]; last == "" || c.quote && last == ">" {
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
	s = panelRe.ReplaceAllStringFunc(s, func(m string) string {
		title := ""
		for _, p := range strings.Split(strings.TrimSuffix(strings.TrimPrefix(m, "{panel"), "}"), "|") {
			if k, v, ok := strings.Cut(strings.TrimPrefix(p, ":"), "="); ok && strings.TrimSpace(k) == "title" {
				title = strings.TrimSpace(v)
			}
		}
		if title != "" {
			return "\n\n*" + title + "*\n"
		}
		return "\n\n"
	})
	lines := strings.Split(s, "\n")
	for _, line := range lines {
		c.line(line)
	}
}

// line converts one line outside code blocks.
func (c *wikiConv) line(line string) {
	if line == quoteToggle {
		c.endBlock()
		if c.quote {
			for n := len(c.out); n > 0 && c.out[n-1] == ">"; n-- {
				c.out = c.out[:n-1]
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
	switch {
	case strings.HasPrefix(trimmed, "h") && headingWRe.MatchString(line):
		m := headingWRe.FindStringSubmatch(line)
		n, _ := strconv.Atoi(m[1])
		c.endBlock()
		c.emit(strings.Repeat("#", n) + " " + c.inline(m[2]))
		return
	case strings.HasPrefix(trimmed, "bq.") && bqRe.MatchString(line):
		c.endBlock()
		c.emit("> " + c.inline(bqRe.FindStringSubmatch(line)[1]))
		return
	case ruleWRe.MatchString(line):
		c.endBlock()
		c.emit("---")
		return
	case strings.HasPrefix(trimmed, "|"):
		c.tableRow(trimmed)
		return
	}
	if m := listWRe.FindStringSubmatch(line); m != nil {
		c.listItem(m[1], m[2])
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
	cells := splitCells(line)
	for i, cell := range cells {
		cells[i] = strings.ReplaceAll(c.inline(strings.TrimSpace(cell)), "|", `\|`)
	}
	c.counters, c.widths = c.counters[:0], c.widths[:0]
	row := "| " + strings.Join(cells, " | ") + " |"
	if !c.table {
		c.table = true
		c.blank()
		c.emit(row)
		seps := make([]string, len(cells))
		for i := range seps {
			seps[i] = "---"
		}
		c.emit("| " + strings.Join(seps, " | ") + " |")
		return
	}
	c.emit(row)
}

// splitCells splits a table row at its "|" and "||" separators, but not
// inside [links] or {{monospace}}, nor at escaped "\|".
func splitCells(line string) []string {
	var cells []string
	var cur strings.Builder
	depth := 0
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case ch == '\\' && i+1 < len(line):
			cur.WriteByte(ch)
			cur.WriteByte(line[i+1])
			i++
			continue
		case ch == '[':
			depth++
		case ch == ']' && depth > 0:
			depth--
		case ch == '{' && strings.HasPrefix(line[i:], "{{"):
			depth++
			cur.WriteString("{{")
			i++
			continue
		case ch == '}' && strings.HasPrefix(line[i:], "}}") && depth > 0:
			depth--
			cur.WriteString("}}")
			i++
			continue
		case ch == '|' && depth == 0:
			cells = append(cells, cur.String())
			cur.Reset()
			if i+1 < len(line) && line[i+1] == '|' {
				i++
			}
			continue
		}
		cur.WriteByte(ch)
	}
	if strings.TrimSpace(cur.String()) != "" {
		cells = append(cells, cur.String())
	}
	if len(cells) > 0 && strings.TrimSpace(cells[0]) == "" {
		cells = cells[1:]
	}
	return cells
}

// result joins the lines, without leading, trailing or repeated blank
// lines.
func (c *wikiConv) result() string {
	var b strings.Builder
	blank := true
	for _, l := range c.out {
		if l == "" {
			blank = true
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
			if blank {
				b.WriteByte('\n')
			}
		}
		b.WriteString(l)
		blank = false
	}
	return strings.TrimSpace(b.String())
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
	var kept markdown.Placeholders
	keep := kept.Keep
	if strings.Contains(s, "{{") {
		s = monoRe.ReplaceAllStringFunc(s, func(m string) string {
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
		s = inlineMacro.ReplaceAllString(s, "")
	}
	if strings.Contains(s, "[") {
		s = mentionWRe.ReplaceAllStringFunc(s, func(m string) string {
			return keep(c.mention(mentionRef(m[2:len(m)-1]), ""))
		})
		s = linkWRe.ReplaceAllStringFunc(s, func(m string) string { return keep(wikiLink(m[1 : len(m)-1])) })
	}
	if strings.Contains(s, "!") {
		s = imageRe.ReplaceAllStringFunc(s, func(m string) string {
			name := imageRe.FindStringSubmatch(m)[1]
			return keep("[image: " + name + "]")
		})
	}
	if strings.Contains(s, "??") {
		s = citeRe.ReplaceAllString(s, sentItalic+"$1"+sentItalic)
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

// escapes sets aside "\\" (a line break) and backslash-escaped characters
// as placeholders.
func escapes(s string, keep func(string) string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		next := s[i+1]
		switch {
		case next == '\\':
			b.WriteString(keep("\n"))
			i++
		case strings.IndexByte(wikiSpecials, next) >= 0:
			b.WriteString(keep(string(next)))
			i++
		default:
			b.WriteByte('\\')
		}
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
