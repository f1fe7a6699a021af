package markdown

import "strings"

// Splice builds a copy of a text with spans of it replaced, left to right:
// the scanners of this package and of the converters write their results
// with it.
type Splice struct {
	s    string
	b    strings.Builder
	done int // the bytes of s before done are written to b
}

// NewSplice returns a Splice of s with nothing replaced yet.
func NewSplice(s string) *Splice { return &Splice{s: s} }

// Replace replaces s[start:end] with v. Spans must be replaced in order
// and must not overlap: start is not before Done.
func (sp *Splice) Replace(start, end int, v string) {
	if sp.b.Cap() == 0 {
		sp.b.Grow(len(sp.s) + len(v)) // about the length of the result
	}
	sp.b.WriteString(sp.s[sp.done:start])
	sp.b.WriteString(v)
	sp.done = end
}

// Done returns the end of the last span replaced, or 0.
func (sp *Splice) Done() int { return sp.done }

// String returns the text with the spans replaced, s itself when none
// was, and ends the splice: nothing may be replaced after it.
func (sp *Splice) String() string {
	if sp.done == 0 && sp.b.Len() == 0 {
		return sp.s
	}
	sp.b.WriteString(sp.s[sp.done:])
	sp.done = len(sp.s)
	return sp.b.String()
}
