package github

import (
	"sort"
	"strings"

	"github.com/switchboardhq/switchboard/adapters/internal/markdown"
)

// Triggers found in a body, the values of refs["trigger"].
const (
	triggerMention    = "mention"
	triggerCommand    = "command"
	triggerLabel      = "label"
	triggerAssignment = "assignment"
)

// addresser finds the triggers in comment bodies for one identity and
// configuration.
type addresser struct {
	names   []string // mention names, longest first
	command string   // "/agent", or ""
}

// addresser returns the trigger finder for id: mentions of its login (and,
// for an App, its slug) and of the configured names, and the configured
// command.
func (a *Adapter) addresser(id identity) addresser {
	seen := map[string]bool{}
	var names []string
	add := func(n string) {
		if n != "" && !seen[strings.ToLower(n)] {
			seen[strings.ToLower(n)] = true
			names = append(names, n)
		}
	}
	add(id.Login)
	add(id.Slug)
	for _, m := range a.cfg.Triggers.Mentions {
		add(m)
	}
	sort.SliceStable(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	return addresser{names: names, command: a.cfg.Triggers.Command}
}

// address reports which trigger in body addresses the gateway ("" for
// none) and returns the text for the envelope: body without a leading
// mention and without a leading command, trimmed. A mention elsewhere
// addresses the gateway but stays in the text; mentions in code and in
// quoted lines do not count. When stripping leaves nothing (a bare
// "@bot"), the text is the trimmed body.
func (ad addresser) address(body string) (text, trigger string) {
	text = strings.TrimSpace(body)
	rest := text
	if end := ad.mentionAt(rest, 0); end > 0 {
		rest = strings.TrimLeft(rest[end:], " \t,:")
		trigger = triggerMention
	}
	if ad.command != "" && hasCommand(rest, ad.command) {
		rest = rest[len(ad.command):]
		trigger = triggerCommand
	}
	if trigger != "" {
		if rest = strings.TrimSpace(rest); rest != "" {
			text = rest
		}
		return text, trigger
	}
	if ad.mentions(body) {
		return text, triggerMention
	}
	return text, ""
}

// hasCommand reports whether s starts with the slash command cmd
// (case-insensitively) followed by a space, a line break or the end.
func hasCommand(s, cmd string) bool {
	if len(s) < len(cmd) || !strings.EqualFold(s[:len(cmd)], cmd) {
		return false
	}
	return len(s) == len(cmd) || strings.ContainsRune(" \t\r\n", rune(s[len(cmd)]))
}

// mentions reports whether body mentions one of the names outside code
// blocks, inline code and quoted lines.
func (ad addresser) mentions(body string) bool {
	if len(ad.names) == 0 || !strings.Contains(body, "@") {
		return false
	}
	fence := ""
	for line := range strings.Lines(body) {
		line = strings.TrimRight(line, "\r\n")
		trimmed := strings.TrimLeft(line, " ")
		if f := fenceOf(trimmed); f != "" && len(line)-len(trimmed) <= 3 {
			switch {
			case fence == "":
				fence = f
				continue
			case strings.HasPrefix(f, fence) && strings.TrimSpace(strings.TrimLeft(trimmed, fence[:1])) == "":
				fence = ""
				continue
			}
		}
		if fence != "" || strings.HasPrefix(trimmed, ">") {
			continue
		}
		visible := maskInlineCode(line)
		for i := strings.IndexByte(visible, '@'); i >= 0; {
			if ad.mentionAt(visible, i) > 0 {
				return true
			}
			j := strings.IndexByte(visible[i+1:], '@')
			if j < 0 {
				break
			}
			i += 1 + j
		}
	}
	return false
}

// mentionAt returns the end of a mention of one of the names at s[i] (which
// must be '@'), or -1. A mention starts a word (so "me@host" is not one) and
// its name ends there (so "@botany" and "@org/team" do not mention "bot").
func (ad addresser) mentionAt(s string, i int) int {
	if i >= len(s) || s[i] != '@' {
		return -1
	}
	if i > 0 {
		if c := s[i-1]; isLoginByte(c) || strings.IndexByte("./@`", c) >= 0 {
			return -1
		}
	}
	for _, n := range ad.names {
		end := i + 1 + len(n)
		if end > len(s) || !strings.EqualFold(s[i+1:end], n) {
			continue
		}
		if end < len(s) && (isLoginByte(s[end]) || s[end] == '/' || s[end] == '[') {
			continue
		}
		return end
	}
	return -1
}

func isLoginByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// fenceOf returns the fence ("```", "~~~~", …) that line opens or closes, or
// "".
func fenceOf(line string) string {
	if len(line) < 3 || (line[0] != '`' && line[0] != '~') {
		return ""
	}
	n := 0
	for n < len(line) && line[n] == line[0] {
		n++
	}
	if n < 3 {
		return ""
	}
	return line[:n]
}

// maskInlineCode replaces the content of inline code spans with spaces,
// keeping byte offsets.
func maskInlineCode(line string) string {
	if !strings.Contains(line, "`") {
		return line
	}
	b := []byte(line)
	for i := 0; i < len(b); {
		if b[i] != '`' {
			i++
			continue
		}
		n := 0
		for i+n < len(b) && b[i+n] == '`' {
			n++
		}
		closeAt := strings.Index(line[i+n:], line[i:i+n])
		if closeAt < 0 {
			break
		}
		for j := i + n; j < i+n+closeAt; j++ {
			b[j] = ' '
		}
		i += 2*n + closeAt
	}
	return string(b)
}

// split cuts text into parts of at most limit characters (runes), between
// paragraphs when it can, else between lines, else between words. A fenced
// code block cut in two is closed at the end of one part and reopened (with
// its info string) at the start of the next. Text within the limit is
// returned whole, without leading blank lines and trailing white space.
func split(text string, limit int) []string {
	return markdown.Split(text, markdown.SplitOptions{Max: limit})
}
