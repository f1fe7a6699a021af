package markdown

import (
	"strconv"
	"strings"
)

// CodeSpans replaces each inline `code` span of s with f of its content.
// A span opens with a run of backticks of any length and closes with a run
// of the same length, as in CommonMark; one space padding each side of the
// content is removed. Backticks that close nothing are kept as they are.
//
// It runs in time linear in len(s): each backtick run is linked once to
// the next run of its length, the one that closes it when it opens a span.
func CodeSpans(s string, f func(code string) string) string {
	if strings.IndexByte(s, '`') < 0 {
		return s
	}
	nruns := 0
	for i := 0; i < len(s); {
		k := strings.IndexByte(s[i:], '`')
		if k < 0 {
			break
		}
		nruns++
		i += k + runLen(s[i+k:], '`')
	}
	type run struct{ at, n, next int } // next: the next run of length n, or -1
	runs := make([]run, 0, nruns)
	last := map[int]int{} // run length → the last run of that length so far
	for i := 0; i < len(s); {
		k := strings.IndexByte(s[i:], '`')
		if k < 0 {
			break
		}
		n := runLen(s[i+k:], '`')
		if j, ok := last[n]; ok {
			runs[j].next = len(runs)
		}
		last[n] = len(runs)
		runs = append(runs, run{i + k, n, -1})
		i += k + n
	}
	sp := NewSplice(s)
	for r := 0; r < len(runs); r++ {
		open := runs[r]
		c := open.next
		if c < 0 {
			continue // nothing closes it: literal backticks
		}
		code := s[open.at+open.n : runs[c].at]
		if len(code) > 2 && code[0] == ' ' && code[len(code)-1] == ' ' {
			code = code[1 : len(code)-1]
		}
		sp.Replace(open.at, runs[c].at+open.n, f(code))
		r = c
	}
	return sp.String()
}

// runLen counts the bytes c at the start of s.
func runLen(s string, c byte) int {
	n := 0
	for n < len(s) && s[n] == c {
		n++
	}
	return n
}

// LongestRun returns the length of the longest run of c in s: a fence of
// c one longer than that cannot occur in s.
func LongestRun(s string, c byte) int {
	longest := 0
	for i := 0; i < len(s); {
		k := strings.IndexByte(s[i:], c)
		if k < 0 {
			break
		}
		n := runLen(s[i+k:], c)
		longest = max(longest, n)
		i += k + n
	}
	return longest
}

// Placeholders sets spans of a text aside while the rest is converted:
// Keep returns a token ("\x00<n>\x00") to stand in the text for a kept
// span, and Restore puts every kept span back in one pass. The text must
// hold no NUL byte of its own. A kept span may itself hold tokens of spans
// kept before it; Restore expands them too. The zero value is ready to use.
type Placeholders struct {
	kept []string
	used []bool
}

// Keep sets v aside and returns the token that stands for it.
func (p *Placeholders) Keep(v string) string {
	p.kept = append(p.kept, v)
	p.used = append(p.used, false)
	var buf [24]byte
	token := strconv.AppendInt(append(buf[:0], 0), int64(len(p.kept)-1), 10)
	return string(append(token, 0))
}

// Len returns the number of spans kept.
func (p *Placeholders) Len() int { return len(p.kept) }

// Restore replaces each token in s with its span, each token once, in time
// linear in the length of the result. Text that is no token is kept as it
// is.
func (p *Placeholders) Restore(s string) string {
	if len(p.kept) == 0 || strings.IndexByte(s, 0) < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	p.restore(&b, s, len(p.kept))
	return b.String()
}

// restore writes s to b with the tokens of spans below limit expanded.
func (p *Placeholders) restore(b *strings.Builder, s string, limit int) {
	for {
		i := strings.IndexByte(s, 0)
		if i < 0 {
			b.WriteString(s)
			return
		}
		b.WriteString(s[:i])
		j := strings.IndexByte(s[i+1:], 0)
		if j < 0 {
			b.WriteString(s[i:])
			return
		}
		n, err := strconv.Atoi(s[i+1 : i+1+j])
		if err != nil || n < 0 || n >= limit || p.used[n] {
			// Not a token: keep the NUL and look for a token after it.
			b.WriteByte(0)
			s = s[i+1:]
			continue
		}
		p.used[n] = true
		p.restore(b, p.kept[n], n) // a span holds only tokens kept before it
		s = s[i+j+2:]
	}
}
