package markdown

import "strings"

// DoubleDelimited replaces each span of s wrapped in doubled delimiters,
// such as **bold**, __bold__ or ~~strike~~, with f of the text between
// them, and returns the result. delims holds the delimiter characters
// (ASCII): "*_" for bold, "~" for strike. The text is not empty, holds no
// delimiter of its own kind, and neither starts nor ends with white space.
//
// Spans are found as the regular expression with one alternative
// cc([^c\s](?:[^c]*[^c\s])?)cc for each delimiter c would find them,
// leftmost first, each from where the one before it ended (\s is ASCII
// white space). It runs in time linear in len(s) for each delimiter: the
// text after an opening pair is scanned to the next delimiter of its kind,
// and no opening pair is found before that.
func DoubleDelimited(s, delims string, f func(text string) string) string {
	sp := NewSplice(s)
	for i := 0; i < len(s); {
		k := strings.IndexAny(s[i:], delims)
		if k < 0 {
			break
		}
		open := i + k
		i = open + 1
		c, t := s[open], open+2 // the delimiter, the text
		if t >= len(s) || s[open+1] != c {
			continue
		}
		e := strings.IndexByte(s[t:], c) + t // the text ends at s[e]
		if e <= t || isASCIISpace(s[t]) || isASCIISpace(s[e-1]) || e+1 == len(s) || s[e+1] != c {
			continue
		}
		sp.Replace(open, e+2, f(s[t:e]))
		i = e + 2
	}
	return sp.String()
}

// isASCIISpace reports whether c is white space to Go's regexp (\s).
func isASCIISpace(c byte) bool { return asciiSpaces.has(c) }

var asciiSpaces = newByteSet(asciiSpace)
