package markdown

import "strings"

// CodeSpans replaces each inline `code` span of s with f of its content.
// A span opens with a run of backticks of any length and closes with a run
// of the same length, as in CommonMark; one space padding each side of the
// content is removed. Backticks that close nothing are kept as they are.
func CodeSpans(s string, f func(code string) string) string {
	if strings.IndexByte(s, '`') < 0 {
		return s
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '`')
		if i < 0 {
			break
		}
		n := runLen(s[i:], '`')
		rest := s[i+n:]
		end := -1
		for j := 0; j < len(rest); {
			k := strings.IndexByte(rest[j:], '`')
			if k < 0 {
				break
			}
			m := runLen(rest[j+k:], '`')
			if m == n {
				end = j + k
				break
			}
			j += k + m
		}
		if end < 0 {
			b.WriteString(s[:i+n])
			s = rest
			continue
		}
		b.WriteString(s[:i])
		code := rest[:end]
		if len(code) > 2 && code[0] == ' ' && code[len(code)-1] == ' ' {
			code = code[1 : len(code)-1]
		}
		b.WriteString(f(code))
		s = rest[end+n:]
	}
	b.WriteString(s)
	return b.String()
}

// runLen counts the bytes c at the start of s.
func runLen(s string, c byte) int {
	n := 0
	for n < len(s) && s[n] == c {
		n++
	}
	return n
}
