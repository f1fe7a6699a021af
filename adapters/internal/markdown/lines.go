package markdown

import "strings"

// The line patterns of Markdown blocks, parsed by hand: each looks at a
// line once, without a regular expression, because converters try them on
// every line.

// Bullet parses a bullet list item: indentation (spaces and tabs), "-",
// "*" or "+", at least one space or tab, then the item's text.
func Bullet(line string) (indent, item string, ok bool) {
	t := strings.TrimLeft(line, " \t")
	if len(t) < 2 || t[0] != '-' && t[0] != '*' && t[0] != '+' || t[1] != ' ' && t[1] != '\t' {
		return "", "", false
	}
	return line[:len(line)-len(t)], strings.TrimLeft(t[1:], " \t"), true
}

// Ordered parses a numbered list item: indentation, one to nine digits,
// "." or ")", at least one space or tab, then the item's text.
func Ordered(line string) (indent, num, item string, ok bool) {
	t := strings.TrimLeft(line, " \t")
	n := 0
	for n < len(t) && t[n] >= '0' && t[n] <= '9' {
		n++
	}
	if n == 0 || n > 9 || len(t) < n+2 || t[n] != '.' && t[n] != ')' || t[n+1] != ' ' && t[n+1] != '\t' {
		return "", "", "", false
	}
	return line[:len(line)-len(t)], t[:n], strings.TrimLeft(t[n+1:], " \t"), true
}

// Task parses the box of a task list item's text: "[ ]", "[x]" or "[X]",
// at least one space or tab, then the task.
func Task(item string) (done bool, text string, ok bool) {
	if len(item) < 4 || item[0] != '[' || item[2] != ']' || item[3] != ' ' && item[3] != '\t' {
		return false, "", false
	}
	switch item[1] {
	case ' ':
	case 'x', 'X':
		done = true
	default:
		return false, "", false
	}
	return done, strings.TrimLeft(item[3:], " \t"), true
}

// Rule reports whether line is a thematic break: up to three spaces, then
// three or more of "-", "*" and "_", with spaces or tabs between and after
// them and nothing else.
func Rule(line string) bool {
	t := strings.TrimLeft(line, " ")
	if len(line)-len(t) > 3 || t == "" || t[0] != '-' && t[0] != '*' && t[0] != '_' {
		return false
	}
	marks := 0
	for i := 0; i < len(t); i++ {
		switch t[i] {
		case '-', '*', '_':
			marks++
		case ' ', '\t':
		default:
			return false
		}
	}
	return marks >= 3
}

// Quote parses a blockquote line: up to three spaces, ">", an optional
// space or tab, then the quoted text.
func Quote(line string) (inner string, ok bool) {
	t := strings.TrimLeft(line, " ")
	if len(line)-len(t) > 3 || !strings.HasPrefix(t, ">") {
		return "", false
	}
	t = t[1:]
	if t != "" && (t[0] == ' ' || t[0] == '\t') {
		t = t[1:]
	}
	return t, true
}

// FenceRun parses the start of a code fence: up to three spaces, then a run
// of three or more backticks or tildes (all of the run). rest is what
// follows the run, as it is; each syntax puts its own limits on it.
func FenceRun(line string) (run, rest string, ok bool) {
	t := strings.TrimLeft(line, " ")
	if len(line)-len(t) > 3 || t == "" || t[0] != '`' && t[0] != '~' {
		return "", "", false
	}
	n := runLen(t, t[0])
	if n < 3 {
		return "", "", false
	}
	return t[:n], t[n:], true
}
