package markdown

import (
	"slices"
	"strings"

	"github.com/yuin/goldmark/ast"
)

// The guard: goldmark v1.8.7 parses ordinary Markdown in time linear in
// its length (about 1 µs a byte), but not every text. Measured, one line of
// ">" takes 31 ms at 8 KiB, 130 ms at 16 KiB and 1.07 s at 32 KiB (a
// blockquote nested a level per byte; "> " and "1. " alike), and one line
// of "[a](" 33, 189 and 473 ms (each "](" scans its link destination to
// the end of the line; "[a](<" alike, spaces or not). Guard bounds both,
// and Render parses a text in parts of bounded size, so that what goldmark
// does in a part costs at most a constant: a conversion is linear in its
// input whatever goldmark does inside a part.

const (
	// MaxDepth is the number of container markers (">", "-", "*", "+",
	// "1.", "1)") that the start of one line may hold; Guard escapes the
	// one after.
	MaxDepth = 16
	// DefaultPart is the size in bytes of the parts Render parses.
	DefaultPart = 16 << 10
)

// Guard returns src with the markup that goldmark is slow on escaped with
// a backslash, so that it reads as the plain characters it is made of;
// the text of ordinary Markdown is returned unchanged. It runs in time
// linear in len(src). Lines inside fenced code blocks are left alone.
// What it escapes:
//
//   - the container marker of a line that follows MaxDepth others at its
//     start ("> " or "- " repeated: quotes and lists nested on one line),
//     which makes the rest of the line a paragraph's text;
//   - the "(" of a "](" (an inline link's destination) once the bytes
//     that goldmark would scan for the destinations of its line, left to
//     right, exceed linkBudget times the line's length plus linkSlack: a
//     line of "[a](" repeated; the "[a](" stays as text.
//
// The escape shows as a backslash only where goldmark does not read
// escapes (a code span or an HTML block), which only such hostile text
// reaches.
func Guard(src string) string {
	var sp *Splice
	fence := ""
	for at := 0; at < len(src); {
		line, next := src[at:], len(src)
		if k := strings.IndexByte(line, '\n'); k >= 0 {
			line, next = line[:k], at+k+1
		}
		switch {
		case fence != "":
			if Closes(line, fence) {
				fence = ""
			}
		default:
			if f, _, ok := Fence(line); ok {
				fence = f
				break
			}
			for _, i := range escapes(line) {
				if sp == nil {
					sp = NewSplice(src)
				}
				sp.Replace(at+i, at+i, `\`)
			}
		}
		at = next
	}
	if sp == nil {
		return src
	}
	return sp.String()
}

// escapes returns the offsets in line, ascending, before which Guard puts
// a backslash.
func escapes(line string) []int {
	var out []int
	if i, ok := tooDeep(line); ok {
		out = append(out, i)
	}
	if strings.Contains(line, "](") {
		out = append(out, costlyLinks(line)...)
	}
	return out
}

// tooDeep returns the offset of the marker character of the container
// marker that follows MaxDepth others at the start of line.
func tooDeep(line string) (int, bool) {
	i := 0
	for depth := 0; ; depth++ {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		mark, end := marker(line, i)
		if mark < 0 {
			return 0, false
		}
		if depth == MaxDepth {
			return mark, true
		}
		i = end
	}
}

// marker parses a container marker at line[i:]: ">", or a list item's
// marker followed by white space or the end of the line; it returns the
// offset of its marker character (">", "-", "." of "1.") and where it
// ends, or -1 when there is none. A thematic break ("- - -") is no list.
func marker(line string, i int) (mark, end int) {
	if i >= len(line) {
		return -1, 0
	}
	spaced := func(j int) bool { return j >= len(line) || line[j] == ' ' || line[j] == '\t' }
	switch c := line[i]; {
	case c == '>':
		return i, i + 1
	case c == '-' || c == '*' || c == '+':
		if spaced(i+1) && !Rule(line[i:]) {
			return i, i + 1
		}
	case c >= '0' && c <= '9':
		j := i
		for j < len(line) && j-i < 10 && line[j] >= '0' && line[j] <= '9' {
			j++
		}
		if j-i <= 9 && j < len(line) && (line[j] == '.' || line[j] == ')') && spaced(j+1) {
			return j, j + 1
		}
	}
	return -1, 0
}

// linkBudget bounds the bytes of link destinations that goldmark may scan
// on a line of n bytes: linkBudget*n + linkSlack. Each destination costs
// what it scans; a reply's links are far under it.
const (
	linkBudget = 4
	linkSlack  = 4 << 10
)

// costlyLinks returns the offsets of the "(" of the "](" of line whose
// destinations go over the line's budget, scanned left to right.
//
// A destination is scanned as goldmark scans it: after spaces, either
// "<" up to the next unescaped ">" (or the line's end), or up to white
// space or the ")" that leaves its parentheses unbalanced, skipping
// backslash escapes. The ends are found for all of them in one pass from
// the right: the next white space and ">" after each offset, and for each
// depth of parentheses the next ")" that leaves it.
func costlyLinks(line string) []int {
	n := len(line)
	escaped := make([]bool, n) // line[i] is escaped by the backslash before it
	depth := make([]int, n+1)  // unescaped "(" less ")" in line[:i]
	for i := 0; i < n; i++ {
		depth[i+1] = depth[i]
		switch c := line[i]; {
		case c == '\\' && i+1 < n && isASCIIPunct(line[i+1]):
			escaped[i+1] = true
			depth[i+2] = depth[i]
			i++
		case c == '(':
			depth[i+1]++
		case c == ')':
			depth[i+1]--
		}
	}
	nextSpace := make([]int, n+1) // the first white space at or after i, or n
	nextAngle := make([]int, n+1) // the first unescaped ">" at or after i, or n
	nextSpace[n], nextAngle[n] = n, n
	closer := map[int]int{} // depth d → the first unescaped ")" at or after i where depth[j] == d
	type opener struct{ at, cost int }
	var openers []opener // right to left
	for i := n - 1; i >= 0; i-- {
		nextSpace[i], nextAngle[i] = nextSpace[i+1], nextAngle[i+1]
		switch c := line[i]; {
		case isASCIISpace(c):
			nextSpace[i] = i
		case c == '>' && !escaped[i]:
			nextAngle[i] = i
		case c == ')' && !escaped[i]:
			closer[depth[i]] = i
		case c == '(' && !escaped[i] && i > 0 && line[i-1] == ']':
			q := i + 1
			for q < n && (line[q] == ' ' || line[q] == '\t') {
				q++
			}
			end := n
			switch {
			case q < n && line[q] == '<':
				end = nextAngle[q]
			default:
				end = nextSpace[q]
				if j, ok := closer[depth[q]]; ok && j >= q {
					end = min(end, j)
				}
			}
			openers = append(openers, opener{i, end - i})
		}
	}
	budget, spent := linkBudget*n+linkSlack, 0
	var out []int
	for _, o := range slices.Backward(openers) {
		if spent+o.cost > budget {
			out = append(out, o.at)
			continue
		}
		spent += o.cost
	}
	return out
}

// isASCIIPunct reports whether c is ASCII punctuation, which a backslash
// escapes in CommonMark.
func isASCIIPunct(c byte) bool {
	return c >= '!' && c <= '/' || c >= ':' && c <= '@' || c >= '[' && c <= '`' || c >= '{' && c <= '~'
}

// Render converts Markdown with render, part by part, and returns what
// render wrote. It cuts src with Split into parts of at most part bytes
// (DefaultPart when part is not positive): between blocks where it can,
// keeping fenced code blocks balanced. It guards each part (Guard), parses
// it (Parse) and calls render with the part's tree and source, in order,
// with the same builder (the source ends with a line break): render separates what it writes from what w
// holds (w.Len() > 0) as it separates two blocks. Line endings are
// normalised and surrounding blank lines dropped, as Split does.
//
// Render runs in time linear in len(src): Split and Guard are linear, and
// a part, being of bounded size and guarded, is parsed in bounded time.
// A construct that spans a cut (a list, a paragraph longer than part, a
// link reference defined in another part) is read as two.
func Render(src string, part int, render func(doc ast.Node, src []byte, w *strings.Builder)) string {
	if part <= 0 {
		part = DefaultPart
	}
	var w strings.Builder
	for _, p := range Split(src, SplitOptions{Max: part, Unit: Bytes}) {
		// The part ends with a line break: goldmark drops the info string
		// of a fence on a last line without one.
		b := []byte(Guard(p) + "\n")
		render(Parse(b), b, &w)
	}
	return w.String()
}
