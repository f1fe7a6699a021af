package slack

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/switchboardhq/switchboard/adapters/internal/markdown"
)

// Agents write Markdown; Slack shows mrkdwn
// (https://docs.slack.dev/messaging/formatting-message-text). toMrkdwn
// converts the common constructs: **bold** and __bold__ → *bold*, *italic*
// → _italic_, ~~strike~~ → ~strike~, [label](url) → <url|label>, headings →
// bold lines, "-"/"*"/"+" bullets → •, fenced code blocks without their
// language, and escapes &, < and > everywhere else. Inline code and code
// blocks keep their content (escaped, as Slack requires).

var (
	headingRe = regexp.MustCompile(`^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$`)
	escaper   = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
)

// toMrkdwn converts Markdown to Slack mrkdwn, line by line.
func toMrkdwn(md string) string {
	md = strings.ReplaceAll(strings.ReplaceAll(md, "\r\n", "\n"), "\x00", "")
	lines := strings.Split(md, "\n")
	out := make([]string, 0, len(lines))
	var fence string // the opening fence while inside a code block
	for _, line := range lines {
		if run, rest, ok := markdown.FenceRun(line); ok {
			switch {
			case fence == "":
				fence = run
				out = append(out, "```")
				continue
			case run[0] == fence[0] && len(run) >= len(fence) && strings.TrimSpace(rest) == "":
				fence = ""
				out = append(out, "```")
				continue
			}
		}
		if fence != "" {
			out = append(out, escaper.Replace(line))
			continue
		}
		out = append(out, convertLine(line))
	}
	if fence != "" {
		out = append(out, "```")
	}
	return strings.Join(out, "\n")
}

var unbold = strings.NewReplacer("**", "", "__", "")

// convertLine converts one line outside code blocks.
func convertLine(line string) string {
	first := byte(0) // the first non-blank byte selects the line patterns to try
	if t := strings.TrimLeft(line, " \t"); t != "" {
		first = t[0]
	}
	switch {
	case first == 0:
		return line
	case first >= 'a' && first <= 'z' || first >= 'A' && first <= 'Z' || first >= 0x80:
		return inline(line) // most lines: prose
	}
	if first == '>' {
		// Quotes nest: count the levels in one pass rather than recurse.
		depth := 0
		for {
			inner, ok := markdown.Quote(line)
			if !ok {
				break
			}
			depth, line = depth+1, inner
		}
		if depth > 0 {
			return strings.Repeat("> ", depth) + convertLine(line)
		}
	}
	var m []string
	if first == '#' {
		m = headingRe.FindStringSubmatch(line)
	}
	if m != nil {
		text := unbold.Replace(m[2])
		if text == "" {
			return ""
		}
		return "*" + inline(text) + "*"
	}
	if markdown.Rule(line) {
		return "──────────"
	}
	if indent, item, ok := markdown.Bullet(line); ok {
		mark := "•"
		if level := len(strings.ReplaceAll(indent, "\t", "    ")) / 2; level%2 == 1 {
			mark = "◦"
		}
		if done, task, ok := markdown.Task(item); ok {
			mark, item = "☐", task
			if done {
				mark = "☑"
			}
		}
		return indent + mark + " " + inline(item)
	}
	if indent, num, item, ok := markdown.Ordered(line); ok {
		return indent + num + ". " + inline(item)
	}
	return inline(line)
}

// inline converts the inline constructs of one line.
func inline(s string) string {
	// Code spans, links and autolinks are set aside as placeholders
	// (\x00<n>\x00) so that escaping and emphasis leave them alone.
	var kept markdown.Placeholders
	keep := kept.Keep
	s = markdown.CodeSpans(s, func(code string) string { return keep("`" + escaper.Replace(code) + "`") })
	// Each scanner runs only when its construct can be there.
	if strings.Contains(s, "](") {
		s = markdown.Links(s, markdown.CommonLinks, func(l markdown.Link) string {
			label, url := strings.TrimSpace(l.Label), l.URL
			if label == "" || label == url {
				return keep("<" + escaper.Replace(url) + ">")
			}
			label = strings.ReplaceAll(unbold.Replace(label), "|", "¦")
			return keep("<" + escaper.Replace(url) + "|" + escaper.Replace(label) + ">")
		})
	}
	if strings.Contains(s, "<") {
		s = markdown.Autolinks(s, func(url string) string { return keep("<" + escaper.Replace(url) + ">") })
	}
	s = escaper.Replace(s)
	// Bold becomes \x01…\x01 first, so that single-star italics can be found
	// among the stars that are left.
	if strings.Contains(s, "**") || strings.Contains(s, "__") {
		s = markdown.DoubleDelimited(s, "*_", func(text string) string { return "\x01" + text + "\x01" })
	}
	if strings.IndexByte(s, '*') >= 0 {
		s = italics(s)
	}
	if strings.Contains(s, "~~") {
		s = markdown.DoubleDelimited(s, "~", func(text string) string { return "~" + text + "~" })
	}
	return kept.Restore(strings.ReplaceAll(s, "\x01", "*"))
}

// italics turns *text* into _text_ where the stars open and close emphasis:
// an opening star follows a non-word character and precedes a non-space, a
// closing star the reverse. Other stars (2 * 3, a lone *) stay.
func italics(s string) string {
	b := []byte(s)
	open := -1
	for i := 0; i < len(b); i++ {
		if b[i] != '*' {
			continue
		}
		prev, next := runeBefore(s, i), runeAfter(s, i+1)
		switch {
		case open < 0 && !isWord(prev) && next != 0 && !unicode.IsSpace(next):
			open = i
		case open >= 0 && i > open+1 && prev != 0 && !unicode.IsSpace(prev) && !isWord(next):
			b[open], b[i] = '_', '_'
			open = -1
		}
	}
	return string(b)
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

func isWord(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

// split cuts mrkdwn text into chunks of at most max characters, in order,
// breaking between paragraphs where it can, else between lines, else
// between words, else anywhere (on rune boundaries). A code block that must
// be cut is closed at the end of one chunk and reopened in the next; link
// markup (<url|label>) is never cut unless it alone exceeds max. Surrounding
// white space is dropped.
func split(text string, max int) []string {
	return markdown.Split(strings.TrimSpace(text), markdown.SplitOptions{Max: max, KeepAngles: true})
}
