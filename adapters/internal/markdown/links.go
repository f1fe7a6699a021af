package markdown

import "strings"

// Link is one inline link that Links found.
type Link struct {
	Image bool   // written ![label](url)
	Label string // the text between the brackets, as written
	URL   string // the destination, without its angle brackets or title
}

// LinkSyntax selects the links Links reads.
type LinkSyntax int

const (
	// CommonLinks are CommonMark's inline links, simplified: [label](url)
	// and ![alt](url). The label runs to the first "]" and holds no line
	// break; it may be empty. Spaces and tabs may pad the destination,
	// which may be wrapped in <>, holds no white space, ")" nor ">", and
	// may be followed by a "title" without line breaks.
	CommonLinks LinkSyntax = iota
	// WebLinks are [label](url) only, where the label is not empty and runs
	// to the first "]", and the destination is an http:// or https:// URL
	// right between the parentheses that holds no white space, ")" nor NUL.
	WebLinks
)

// Links replaces each inline link of s, in the given syntax, with f of it,
// and returns the result. Text that is no link is kept as it is.
//
// Links are found as a regular expression would find them, leftmost
// first, each from where the one before it ended:
//
//	CommonLinks: !?\[([^\]\n]*)\]\([ \t]*<?([^)\s>]+)>?(?:[ \t]+"[^"\n]*")?[ \t]*\)
//	WebLinks:    \[([^\]]+)\]\((https?://[^\s)\x00]+)\)
//
// (\s is ASCII white space, as in Go's regexp; a "<" that no destination
// follows is the destination itself.) It runs in time linear in len(s):
// the places where a label, a destination and a title end are each found
// by scanning forward from where the last search stopped, and the part of
// a link after its label is matched once for all the "[" it closes.
func Links(s string, syntax LinkSyntax, f func(Link) string) string {
	if !strings.Contains(s, "](") {
		return s
	}
	sc := linkScanner{s: s, syntax: syntax, tailAt: -1, postAt: -1}
	sp := NewSplice(s)
	for i := 0; i < len(s); {
		k := strings.IndexByte(s[i:], '[')
		if k < 0 {
			break
		}
		open := i + k
		end, l, ok := sc.match(open)
		if !ok {
			i = open + 1
			continue
		}
		start := open
		if syntax == CommonLinks && open > sp.Done() && s[open-1] == '!' {
			start, l.Image = open-1, true
		}
		sp.Replace(start, end, f(l))
		i = end
	}
	return sp.String()
}

// linkScanner matches links at the "[" of s, in increasing order, keeping
// what earlier matches learnt so that no byte is scanned more than a few
// times in all.
type linkScanner struct {
	s      string
	syntax LinkSyntax
	// label, url and title find where labels, destinations and titles end.
	label, url, title finder
	// tailAt is the "]" whose tail (the part of a link after its label) was
	// matched last: tail holds the result.
	tailAt int
	tail   linkTail
	// postAt is the end of the destination whose post (the optional ">",
	// title and blanks, then ")") was matched last: postEnd is the end of
	// the link, or -1.
	postAt, postEnd int
}

// linkTail is the result of matching the part of a link after its label.
type linkTail struct {
	ok               bool
	urlStart, urlEnd int
	end              int // the end of the link
}

// match matches a link whose label opens at s[open] ("["): it returns the
// end of the link and the link, or ok false.
func (sc *linkScanner) match(open int) (end int, l Link, ok bool) {
	s := sc.s
	var close int
	if sc.syntax == WebLinks {
		close = sc.label.next(s, open+1, &rightBracket)
		if close == open+1 {
			return 0, Link{}, false // an empty label
		}
	} else {
		close = sc.label.next(s, open+1, &labelEnds)
	}
	if close == len(s) || s[close] != ']' {
		return 0, Link{}, false
	}
	if close != sc.tailAt {
		sc.tailAt, sc.tail = close, sc.matchTail(close)
	}
	t := sc.tail
	if !t.ok {
		return 0, Link{}, false
	}
	return t.end, Link{Label: s[open+1 : close], URL: s[t.urlStart:t.urlEnd]}, true
}

// matchTail matches the part of a link after the "]" at s[close]: "(", the
// destination, ")".
func (sc *linkScanner) matchTail(close int) linkTail {
	s := sc.s
	if close+1 == len(s) || s[close+1] != '(' {
		return linkTail{}
	}
	q := close + 2 // the destination
	if sc.syntax == WebLinks {
		n := WebScheme(s[q:])
		if n == 0 {
			return linkTail{}
		}
		r := sc.url.next(s, q, &webURLEnds)
		if r == q+n || r == len(s) || s[r] != ')' {
			return linkTail{}
		}
		return linkTail{ok: true, urlStart: q, urlEnd: r, end: r + 1}
	}
	q = skipBlanks(s, q)
	r := sc.url.next(s, q, &urlEnds)
	if r == q {
		return linkTail{}
	}
	us := q
	if s[q] == '<' && r > q+1 {
		us = q + 1 // <url>; a lone "<" is the destination itself
	}
	if r != sc.postAt {
		sc.postAt, sc.postEnd = r, sc.matchPost(r)
	}
	if sc.postEnd < 0 {
		return linkTail{}
	}
	return linkTail{ok: true, urlStart: us, urlEnd: r, end: sc.postEnd}
}

// matchPost matches what may follow a destination that ends at s[r] in
// CommonLinks: ">", then a title after blanks, then blanks and ")". It
// returns the end of the link, or -1.
func (sc *linkScanner) matchPost(r int) int {
	s := sc.s
	t := r
	if t < len(s) && s[t] == '>' {
		t++
	}
	u := skipBlanks(s, t)
	switch {
	case u == len(s):
		return -1
	case s[u] == ')':
		return u + 1
	case s[u] == '"' && u > t:
		v := sc.title.next(s, u+1, &titleEnds)
		if v == len(s) || s[v] != '"' {
			return -1
		}
		if w := skipBlanks(s, v+1); w < len(s) && s[w] == ')' {
			return w + 1
		}
	}
	return -1
}

// Autolinks replaces each autolink of s, "<" then an http:, https: or
// mailto: URL without white space, "<" or ">", then ">" (the regular
// expression <((?:https?|mailto):[^\s<>]+)>), with f of the URL, and
// returns the result. It runs in time linear in len(s).
func Autolinks(s string, f func(url string) string) string {
	if strings.IndexByte(s, '<') < 0 {
		return s
	}
	sp := NewSplice(s)
	for i := 0; i < len(s); {
		k := strings.IndexByte(s[i:], '<')
		if k < 0 {
			break
		}
		open := i + k
		i = open + 1
		q := open + 1 // the URL
		n := 0        // the length of its scheme and ":"
		switch t := s[q:]; {
		case strings.HasPrefix(t, "http:"):
			n = len("http:")
		case strings.HasPrefix(t, "https:"):
			n = len("https:")
		case strings.HasPrefix(t, "mailto:"):
			n = len("mailto:")
		default:
			continue
		}
		// The URL runs to the first white space, "<" or ">", so the next
		// "<" is not before r: no byte is scanned twice.
		r := q + n
		for r < len(s) && !autolinkEnds.has(s[r]) {
			r++
		}
		if r == q+n || r == len(s) || s[r] != '>' {
			i = r
			continue
		}
		sp.Replace(open, r+1, f(s[q:r]))
		i = r + 1
	}
	return sp.String()
}

// WebScheme returns the length of the "http://" or "https://" that s
// starts with, or 0.
func WebScheme(s string) int {
	switch {
	case strings.HasPrefix(s, "https://"):
		return len("https://")
	case strings.HasPrefix(s, "http://"):
		return len("http://")
	}
	return 0
}

// finder finds the first byte of a set at or after a position, remembering
// its last answer: asked from positions that do not decrease, it scans each
// byte of s once.
type finder struct {
	from, at int // s[at] is the first byte of the set at or after from, or at is len(s)
	valid    bool
}

// next returns the index of the first byte of set in s at or after from, or
// len(s).
func (f *finder) next(s string, from int, set *byteSet) int {
	if f.valid && from >= f.from && from <= f.at {
		return f.at
	}
	at := from
	for at < len(s) && !set.has(s[at]) {
		at++
	}
	f.from, f.at, f.valid = from, at, true
	return at
}

// skipBlanks returns the index of the first byte at or after i that is not
// a space or a tab, or len(s).
func skipBlanks(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// byteSet is a set of bytes.
type byteSet [256 / 32]uint32

func newByteSet(chars string) byteSet {
	var set byteSet
	for i := 0; i < len(chars); i++ {
		set[chars[i]/32] |= 1 << (chars[i] % 32)
	}
	return set
}

func (set *byteSet) has(c byte) bool { return set[c/32]&(1<<(c%32)) != 0 }

// asciiSpace are the bytes of \s in Go's regexp.
const asciiSpace = "\t\n\f\r "

var (
	labelEnds    = newByteSet("]\n")
	rightBracket = newByteSet("]")
	titleEnds    = newByteSet("\"\n")
	urlEnds      = newByteSet(asciiSpace + ")>")
	webURLEnds   = newByteSet(asciiSpace + ")\x00")
	autolinkEnds = newByteSet(asciiSpace + "<>")
)
