package jira

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/switchboardhq/switchboard/adapters/internal/markdown"
)

// Agents write Markdown; the REST API v2 takes Jira wiki markup. toWiki
// converts the common constructs: headings → h1.–h6., **bold** → *bold*,
// *italic* and _italic_ → _italic_, ~~strike~~ → -strike-, `code` →
// {{code}}, fenced code blocks → {code:lang} (or {noformat} without a
// language Jira knows), [label](url) → [label|url], images → links, bullet
// and numbered lists (nested and mixed) → * and #, task items → ☐/☑,
// blockquotes → {quote}, tables → ||header|| and |cell|, rules → ----.
// Everything else is text, escaped where Jira would read it as markup
// ({, [, emphasis characters at word edges, !image!, emoticons like (x)).

var (
	mdHeadingRe = regexp.MustCompile(`^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$`)
	mdTableSep  = regexp.MustCompile(`^[ \t]*\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$`)
	mdURLRe     = regexp.MustCompile(`\bhttps?://[^\s<>\[\]{}|]+`)
)

var (
	mdCleaner     = strings.NewReplacer("\r\n", "\n", "\x00", "", "\x01", "", "\x02", "", "\x03", "")
	wikiSentinels = strings.NewReplacer(sentBold, "*", sentItalic, "_", sentStrike, "-")
	unbold        = strings.NewReplacer("**", "", "__", "", "`", "")
)

// codeLanguages are the languages of {code:…} that Jira Cloud and Data
// Center both highlight; other fenced blocks become {noformat}.
var codeLanguages = map[string]string{
	"actionscript": "actionscript", "ada": "ada", "applescript": "applescript", "bash": "bash",
	"sh": "bash", "shell": "bash", "zsh": "bash", "console": "bash", "c": "c", "c#": "c#", "csharp": "c#",
	"cs": "c#", "c++": "cpp", "cpp": "cpp", "css": "css", "erlang": "erlang", "go": "go", "golang": "go",
	"groovy": "groovy", "haskell": "haskell", "html": "html", "java": "java", "javascript": "javascript",
	"js": "javascript", "json": "json", "lua": "lua", "objc": "objc", "perl": "perl", "php": "php",
	"python": "python", "py": "python", "r": "r", "ruby": "ruby", "rb": "ruby", "scala": "scala",
	"sql": "sql", "swift": "swift", "vb": "visualbasic", "xml": "xml", "yaml": "yaml", "yml": "yaml",
}

// toWiki converts Markdown to Jira wiki markup.
func toWiki(md string) string { return toWikiIn(md, 0) }

// maxQuoteDepth bounds the nesting of blockquotes that toWiki converts;
// deeper ">" are text. Each level converts its lines again, so the bound
// keeps the conversion linear (Jira's {quote} does not nest anyway).
const maxQuoteDepth = 8

// toWikiIn converts Markdown inside depth blockquotes.
func toWikiIn(md string, depth int) string {
	md = mdCleaner.Replace(md)
	lines := strings.Split(md, "\n")
	out := make([]string, 0, len(lines))
	var stack []listLevel // the open lists, outermost first
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if fence, lang, ok := fenceLine(line); ok {
			lang = strings.ToLower(lang)
			var body []string
			for i++; i < len(lines); i++ {
				if run, l, ok := fenceLine(lines[i]); ok && run[0] == fence[0] && len(run) >= len(fence) && l == "" {
					break
				}
				body = append(body, lines[i])
			}
			stack = nil
			out = append(out, codeBlock(lang, strings.Join(body, "\n")))
			continue
		}
		if strings.TrimSpace(line) == "" {
			stack = nil
			out = append(out, "")
			continue
		}
		if _, ok := markdown.Quote(line); ok && depth < maxQuoteDepth {
			var inner []string
			for ; i < len(lines); i++ {
				in, ok := markdown.Quote(lines[i])
				if !ok {
					break
				}
				inner = append(inner, in)
			}
			i--
			stack = nil
			out = append(out, "{quote}", toWikiIn(strings.Join(inner, "\n"), depth+1), "{quote}")
			continue
		}
		if strings.Contains(line, "|") && i+1 < len(lines) && mdTableSep.MatchString(lines[i+1]) && strings.Contains(lines[i+1], "|") {
			out = append(out, tableRow(line, true))
			for i += 2; i < len(lines) && strings.Contains(lines[i], "|") && strings.TrimSpace(lines[i]) != ""; i++ {
				out = append(out, tableRow(lines[i], false))
			}
			i--
			stack = nil
			continue
		}
		out = append(out, convertWikiLine(line, &stack))
	}
	return strings.Trim(strings.Join(out, "\n"), "\n")
}

// listLevel is one open list: its indentation and kind ('*' or '#').
type listLevel struct {
	indent int
	kind   byte
}

// fenceLine parses a code fence: markdown.FenceRun with nothing after the
// run but blanks, a language and text without backticks (the regular
// expression ^ {0,3}(`{3,}|~{3,})[ \t]*([^`\s]*)[^`]*$).
func fenceLine(line string) (fence, lang string, ok bool) {
	run, rest, ok := markdown.FenceRun(line)
	if !ok || strings.IndexByte(rest, '`') >= 0 {
		return "", "", false
	}
	rest = strings.TrimLeft(rest, " \t")
	n := 0
	for n < len(rest) && !strings.ContainsRune(" \t\n\f\r", rune(rest[n])) {
		n++
	}
	return run, rest[:n], true
}

// codeBlock writes a code block: {code:lang} for a language Jira
// highlights, else {noformat}; whichever tag the body does not contain.
func codeBlock(lang, body string) string {
	tag, open := "noformat", "{noformat}"
	if l, ok := codeLanguages[lang]; ok {
		tag, open = "code", "{code:"+l+"}"
	}
	if strings.Contains(body, "{"+tag+"}") {
		if tag == "code" {
			tag, open = "noformat", "{noformat}"
		} else {
			tag, open = "code", "{code}"
		}
		if strings.Contains(body, "{"+tag+"}") {
			body = strings.ReplaceAll(body, "{"+tag+"}", "{ "+tag+"}")
		}
	}
	return open + "\n" + body + "\n{" + tag + "}"
}

// firstByte returns the first byte of line that is not a space or tab, or 0.
func firstByte(line string) byte {
	for i := 0; i < len(line); i++ {
		if line[i] != ' ' && line[i] != '\t' {
			return line[i]
		}
	}
	return 0
}

// convertWikiLine converts one line outside code blocks, quotes and tables.
func convertWikiLine(line string, stack *[]listLevel) string {
	first := firstByte(line) // selects the line patterns worth trying
	if first >= 'a' && first <= 'z' || first >= 'A' && first <= 'Z' || first >= 0x80 {
		// Prose, the most common line: no line-level Markdown starts so.
		if len(*stack) == 0 || !strings.HasPrefix(line, " ") {
			*stack = nil
		}
		return wikiInline(strings.TrimSpace(line))
	}
	if m := headingMatch(first, line); m != nil {
		*stack = nil
		return "h" + strconv.Itoa(len(m[1])) + ". " + wikiInline(m[2])
	}
	if markdown.Rule(line) {
		*stack = nil
		return "----"
	}
	kind, indent, item := byte(0), "", ""
	if in, it, ok := markdown.Bullet(line); ok {
		kind, indent, item = '*', in, it
	} else if in, _, it, ok := markdown.Ordered(line); ok {
		kind, indent, item = '#', in, it
	}
	if kind == 0 {
		if len(*stack) > 0 && strings.HasPrefix(line, " ") {
			// A continuation of a list item: Jira items are one line.
			return wikiInline(strings.TrimSpace(line))
		}
		*stack = nil
		return wikiInline(strings.TrimSpace(line))
	}
	width := len(strings.ReplaceAll(indent, "\t", "    "))
	s := *stack
	for len(s) > 0 && s[len(s)-1].indent > width {
		s = s[:len(s)-1]
	}
	if len(s) > 0 && s[len(s)-1].indent == width {
		s[len(s)-1].kind = kind
	} else {
		s = append(s, listLevel{indent: width, kind: kind})
	}
	*stack = s
	var marks strings.Builder
	for _, l := range s {
		marks.WriteByte(l.kind)
	}
	if done, task, ok := markdown.Task(item); ok {
		box := "☐ "
		if done {
			box = "☑ "
		}
		return marks.String() + " " + box + wikiInline(task)
	}
	return marks.String() + " " + wikiInline(item)
}

// headingMatch matches mdHeadingRe, when line's first byte (first) can
// start a heading.
func headingMatch(first byte, line string) []string {
	if first != '#' {
		return nil
	}
	return mdHeadingRe.FindStringSubmatch(line)
}

// tableRow converts a Markdown table row.
func tableRow(line string, header bool) string {
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(line, "|")
	if strings.HasSuffix(line, "|") && !strings.HasSuffix(line, `\|`) {
		line = line[:len(line)-1]
	}
	var cells []string
	var cur strings.Builder
	inCode := false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == '\\' && i+1 < len(line) && line[i+1] == '|':
			cur.WriteByte('|')
			i++
		case c == '`':
			inCode = !inCode
			cur.WriteByte(c)
		case c == '|' && !inCode:
			cells = append(cells, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	cells = append(cells, cur.String())
	sep := "|"
	if header {
		sep = "||"
	}
	var b strings.Builder
	for _, c := range cells {
		b.WriteString(sep)
		c = inlineWiki(strings.TrimSpace(c), true)
		if c == "" {
			c = " "
		}
		b.WriteString(c)
	}
	b.WriteString(sep)
	return b.String()
}

// wikiInline converts the inline Markdown of one line to wiki markup.
func wikiInline(s string) string { return inlineWiki(s, false) }

// inlineWiki is wikiInline; in a table cell (cell), every "|" of the text is
// escaped, not only one at the start of the line.
func inlineWiki(s string, cell bool) string {
	// Code spans, links and URLs are set aside as placeholders (\x00<n>\x00)
	// so that escaping and emphasis leave them alone.
	var kept markdown.Placeholders
	keep := kept.Keep
	s = markdown.CodeSpans(s, func(code string) string {
		if strings.TrimSpace(code) == "" {
			return keep(code)
		}
		return keep("{{" + escapeAll(code) + "}}")
	})
	if strings.IndexByte(s, '\\') >= 0 {
		s = mdEscapes(s, keep)
	}
	// Each pattern runs only when its construct can be there.
	if strings.Contains(s, "](") {
		s = markdown.Links(s, markdown.CommonLinks, func(l markdown.Link) string {
			label, url := unbold.Replace(strings.TrimSpace(l.Label)), linkTarget(l.URL)
			if label == "" || label == url {
				return keep("[" + url + "]")
			}
			return keep("[" + escapeAll(label) + "|" + url + "]")
		})
	}
	if strings.Contains(s, "<") {
		s = markdown.Autolinks(s, func(url string) string { return keep("[" + linkTarget(url) + "]") })
	}
	if strings.Contains(s, "://") {
		s = mdURLRe.ReplaceAllStringFunc(s, func(u string) string {
			trimmed := strings.TrimRight(u, ".,;:!?)'\"")
			return keep(trimmed) + u[len(trimmed):]
		})
	}
	if strings.Contains(s, "**") || strings.Contains(s, "__") {
		s = markdown.DoubleDelimited(s, "*_", func(text string) string { return sentBold + text + sentBold })
	}
	if strings.IndexByte(s, '*') >= 0 || strings.IndexByte(s, '_') >= 0 {
		s = mdItalics(s)
	}
	if strings.Contains(s, "~~") {
		s = markdown.DoubleDelimited(s, "~", func(text string) string { return sentStrike + text + sentStrike })
	}
	return kept.Restore(wikiSentinels.Replace(escapeText(s, cell)))
}

// mdEscapes sets aside Markdown's backslash escapes (\* is a literal star)
// as placeholders holding the character, escaped for wiki markup when it is
// special there.
func mdEscapes(s string, keep func(string) string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(mdPunct, s[i+1]) >= 0 {
			c := s[i+1]
			i++
			if strings.IndexByte(wikiSpecials, c) >= 0 {
				b.WriteString(keep("\\" + string(c)))
			} else {
				b.WriteString(keep(string(c)))
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mdPunct are the characters a backslash escapes in Markdown.
const mdPunct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// linkTarget makes a URL safe inside [label|url]: "|" and "]" are
// percent-encoded.
func linkTarget(u string) string { return urlEscaper.Replace(u) }

var urlEscaper = strings.NewReplacer("|", "%7C", "]", "%5D", "[", "%5B")

// mdItalics marks *text* and _text_ as italic where the delimiters open and
// close emphasis (Markdown's flanking rules, simplified): an opening
// delimiter follows a non-word character and precedes a non-space, a
// closing one the reverse. Other stars and underscores (2 * 3, snake_case)
// stay, to be escaped.
func mdItalics(s string) string {
	b := []byte(s)
	for _, d := range []byte{'*', '_'} {
		open := -1
		for i := 0; i < len(b); i++ {
			if b[i] != d {
				continue
			}
			prev, next := bytesRuneBefore(b, i), bytesRuneAfter(b, i+1)
			switch {
			case open < 0 && !isWordOrUnderscore(prev) && next != 0 && !unicode.IsSpace(next) && next != rune(d):
				open = i
			case open >= 0 && i > open+1 && prev != 0 && !unicode.IsSpace(prev) && !isWordOrUnderscore(next):
				b[open], b[i] = sentItalic[0], sentItalic[0]
				open = -1
			}
		}
	}
	return string(b)
}

func bytesRuneBefore(b []byte, i int) rune {
	if i == 0 {
		return 0
	}
	r, _ := utf8.DecodeLastRune(b[:i])
	return r
}

func bytesRuneAfter(b []byte, i int) rune {
	if i >= len(b) {
		return 0
	}
	r, _ := utf8.DecodeRune(b[i:])
	return r
}

func isWordOrUnderscore(r rune) bool { return r == '_' || isWord(r) }

// escapeText escapes what Jira would read as markup in text: "{" (macros),
// "[" (links), "!" before a non-space (images), emphasis characters where
// they could open or close emphasis, and emoticons like (x) and (i).
// "|" is escaped at the start of a line, or everywhere in a table cell.
// Placeholders (\x00<n>\x00) and sentinels pass through.
func escapeText(s string, cell bool) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '{', '[':
			b.WriteByte('\\')
		case '!':
			if next := runeAfter(s, i+1); next != 0 && !unicode.IsSpace(next) && next != '\x00' {
				b.WriteByte('\\')
			}
		case '*', '_', '-', '+', '^', '~':
			prev, next := runeBefore(s, i), runeAfter(s, i+1)
			canOpen := !isWord(prev) && next != 0 && !unicode.IsSpace(next)
			canClose := prev != 0 && !unicode.IsSpace(prev) && !isWord(next)
			if canOpen || canClose {
				b.WriteByte('\\')
			}
		case '(':
			if emoticonAt(s[i:]) {
				b.WriteByte('\\')
			}
		case '|':
			if cell || strings.TrimSpace(s[:i]) == "" {
				b.WriteByte('\\')
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// escapeAll escapes every character that wiki markup may read as markup,
// for text inside {{monospace}} and link labels.
func escapeAll(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '{', '}', '[', ']', '|', '!', '*', '_', '-', '+', '^', '~':
			b.WriteByte('\\')
		case '(':
			if emoticonAt(s[i:]) {
				b.WriteByte('\\')
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// emoticonAt reports whether s starts with an emoticon Jira renders as an
// icon: (y), (n), (i), (/), (x), (!), (?), (+), (-), (*), (on), (off), (*r),
// (*g), (*b), (*y), (flag), (flagoff). It looks at no more than the
// emoticon's length.
func emoticonAt(s string) bool {
	end := strings.IndexByte(s[:min(len(s), len("(flagoff)"))], ')')
	if end < 0 || s[0] != '(' {
		return false
	}
	switch s[1:end] {
	case "y", "n", "i", "/", "x", "!", "?", "+", "-", "*", "on", "off", "*r", "*g", "*b", "*y", "flag", "flagoff":
		return true
	}
	return false
}
