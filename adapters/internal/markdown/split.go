// Package markdown holds the Markdown text handling that the channel
// adapters share: cutting a long reply into messages a channel accepts.
//
// Every function is pure and safe for concurrent use.
package markdown

import (
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Unit is what a channel counts a message's length in.
type Unit int

// The units channels count in.
const (
	Runes Unit = iota // Unicode code points (Slack, GitHub, Jira)
	Bytes             // UTF-8 bytes
	UTF16             // UTF-16 code units (JavaScript string length)
)

// Len returns the length of s in u.
func (u Unit) Len(s string) int {
	switch u {
	case Bytes:
		return len(s)
	case UTF16:
		n := 0
		for _, r := range s {
			n += u.width(r, 0)
		}
		return n
	}
	return utf8.RuneCountInString(s)
}

// width returns the length in u of the rune r, encoded in size bytes.
func (u Unit) width(r rune, size int) int {
	switch u {
	case Bytes:
		return size
	case UTF16:
		if n := utf16.RuneLen(r); n > 0 {
			return n
		}
	}
	return 1
}

// prefix returns the byte length of the longest prefix of s, ending on a
// rune boundary, whose length in u is at most max; at least one rune when s
// is not empty, so that cutting always progresses.
func (u Unit) prefix(s string, max int) int {
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		n += u.width(r, size)
		if n > max {
			if i == 0 {
				return size
			}
			return i
		}
		i += size
	}
	return len(s)
}

// SplitOptions says how Split measures and cuts.
type SplitOptions struct {
	// Max is the longest chunk, in Unit; it should leave room for a fence
	// pair plus some code, or code blocks are cut like prose.
	Max int
	// Unit is what Max counts (Runes when zero).
	Unit Unit
	// KeepAngles keeps <…> spans (Slack's <url|label> link markup) whole
	// when cutting a line between words, unless a span alone exceeds Max.
	KeepAngles bool
}

// Split cuts Markdown (or mrkdwn) text into chunks of at most o.Max units,
// in order. It breaks between blocks (paragraphs, and around fenced code
// blocks) where it can, packing consecutive blocks into a chunk while they
// fit; a block too long for a chunk is cut between lines, else between words,
// else anywhere on a rune boundary. A fenced code block that must be cut is
// closed at the end of each chunk and reopened, with its info string, at the
// start of the next, so that every chunk is balanced; the lines of its body
// are kept, blank ones included.
//
// Line endings are normalised to "\n", leading blank lines and trailing
// white space are dropped, and so is the white space at each cut; text left
// blank gives no chunks. Text that fits is returned as one chunk, otherwise
// unchanged. Joining the chunks with the separators they were cut at gives
// the normalised text back, except where a line was cut between words or a
// code block reopened.
func Split(text string, o SplitOptions) []string {
	chunks, _ := split(text, o)
	return chunks
}

// split is Split, and tells which chunks start in the middle of a line of
// the text (a line cut between words or anywhere): midLine[i] for
// chunks[i], nil when none does.
func split(text string, o SplitOptions) (chunks []string, midLine []bool) {
	text = trimBlank(strings.ReplaceAll(text, "\r\n", "\n"))
	if text == "" {
		return nil, nil
	}
	u := o.Unit
	if u.Len(text) <= o.Max {
		return []string{text}, nil
	}
	var cur strings.Builder
	curLen, curMid := 0, false
	flush := func() {
		if curLen > 0 {
			if c := trimBlank(cur.String()); c != "" {
				chunks = append(chunks, c)
				if curMid {
					midLine = append(midLine, make([]bool, len(chunks)-len(midLine))...)
					midLine[len(chunks)-1] = true
				}
			}
			cur.Reset()
			curLen = 0
		}
	}
	add := func(piece, sep string, mid bool) {
		n := u.Len(piece)
		if curLen > 0 && curLen+u.Len(sep)+n > o.Max {
			flush()
		}
		if curLen > 0 {
			cur.WriteString(sep)
			curLen += u.Len(sep)
		} else {
			curMid = mid
		}
		cur.WriteString(piece)
		curLen += n
	}
	for _, b := range blocks(text) {
		if u.Len(b.text) <= o.Max {
			add(b.text, b.sep, false)
			continue
		}
		flush()
		pieces, mid := cutBlock(b, o)
		for i, piece := range pieces {
			add(piece, "\n", mid != nil && mid[i])
		}
		flush()
	}
	flush()
	if midLine != nil {
		midLine = append(midLine, make([]bool, len(chunks)-len(midLine))...)
	}
	return chunks, midLine
}

// trimBlank drops text's leading blank lines and trailing white space, so
// that a chunk, which is trimmed as the text is, splits again as itself.
func trimBlank(text string) string {
	text = strings.TrimRight(text, " \t\r\n")
	for text != "" {
		line, rest, _ := strings.Cut(text, "\n")
		if strings.TrimSpace(line) != "" {
			return text
		}
		text = rest
	}
	return ""
}

// block is a run of lines of the text: a paragraph, or a fenced code block.
type block struct {
	text  string
	sep   string // what stood between it and the previous block: "\n\n" or "\n"
	fence string // the fence run ("```", "~~~~") when a code block, else ""
	open  bool   // a code block the text ends inside (no closing line)
}

// blocks splits text at blank lines and around fenced code blocks, keeping
// each code block whole. Each block's text is a slice of text.
func blocks(text string) []block {
	var out []block
	start, end := -1, 0   // the current block is text[start:end]; -1: none
	first, last := "", "" // its first and last lines
	gap, fence := false, ""
	flush := func() {
		if start < 0 {
			return
		}
		b := block{text: text[start:end], sep: "\n"}
		if gap {
			b.sep = "\n\n"
		}
		if f, _, ok := Fence(first); ok {
			b.fence = f
			b.open = first == b.text || !Closes(last, f)
		}
		out = append(out, b)
		start, gap = -1, false
	}
	add := func(at int, line string) {
		if start < 0 {
			start, first = at, line
		}
		end, last = at+len(line), line
	}
	for at := 0; at <= len(text); {
		line := text[at:]
		next := len(text) + 1
		if k := strings.IndexByte(line, '\n'); k >= 0 {
			line, next = line[:k], at+k+1
		}
		switch {
		case fence != "":
			add(at, line)
			if Closes(line, fence) {
				fence = ""
				flush()
			}
		case strings.TrimSpace(line) == "":
			flush()
			gap = true
		default:
			if f, _, ok := Fence(line); ok {
				flush()
				fence = f
			}
			add(at, line)
		}
		at = next
	}
	flush()
	return out
}

// cutBlock cuts a block longer than o.Max into pieces of at most o.Max
// units; the caller joins consecutive pieces with "\n" while they fit.
// mid[i] tells that pieces[i] is the rest of a line of prose cut before it
// (nil when none is).
func cutBlock(b block, o SplitOptions) (pieces []string, mid []bool) {
	u := o.Unit
	lines := strings.Split(b.text, "\n")
	if b.fence != "" {
		open, close, body := lines[0], b.fence, lines[1:]
		if !b.open {
			close, body = lines[len(lines)-1], lines[1:len(lines)-1]
		}
		if room := o.Max - u.Len(open) - u.Len(close) - 2; room > 0 && len(body) > 0 {
			var out, cur []string
			size := 0
			emit := func() {
				if len(cur) > 0 {
					out = append(out, open+"\n"+strings.Join(cur, "\n")+"\n"+close)
					cur, size = cur[:0], 0
				}
			}
			for _, l := range body {
				for _, part := range cutLine(l, room, u, false, false) {
					if len(cur) > 0 && size+1+u.Len(part) > room {
						emit()
					}
					if len(cur) > 0 {
						size++
					}
					cur = append(cur, part)
					size += u.Len(part)
				}
			}
			emit()
			return out, nil
		}
	}
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		if u.Len(l) <= o.Max {
			out = append(out, l) // the common case, without cutLine's slice
			continue
		}
		cut := cutLine(l, o.Max, u, true, o.KeepAngles)
		if len(cut) > 1 {
			mid = append(mid, make([]bool, len(out)+1-len(mid))...)
			for range cut[1:] {
				mid = append(mid, true)
			}
		}
		out = append(out, cut...)
	}
	if mid != nil {
		mid = append(mid, make([]bool, len(out)-len(mid))...)
	}
	return out, mid
}

// cutLine cuts a line longer than max units at spaces (when words is true;
// outside <…> spans when angles is also true), or anywhere on a rune
// boundary when a word is longer than max. A line that fits, even an empty
// one, is one piece.
func cutLine(line string, max int, u Unit, words, angles bool) []string {
	var out []string
	left := u.Len(line) // the length of line in u, kept up to date so that each cut costs only what it scans
	for left > max {
		cut := -1
		if words {
			depth, n := 0, 0
			word := false // a non-space has been seen: a cut before it would leave a blank piece
			for i, r := range line {
				if n > max {
					break
				}
				switch {
				case angles && r == '<':
					depth++
				case angles && r == '>':
					if depth > 0 {
						depth--
					}
				case r == ' ' && depth == 0 && word:
					cut = i
				}
				word = word || r != ' '
				n += u.width(r, utf8.RuneLen(r))
			}
		}
		if cut <= 0 {
			cut = u.prefix(line, max)
			out = append(out, line[:cut])
			left -= u.Len(line[:cut])
			line = line[cut:]
			continue
		}
		out = append(out, line[:cut])
		rest := strings.TrimLeft(line[cut:], " ")
		left -= u.Len(line[:len(line)-len(rest)]) // the piece and the spaces dropped
		line = rest
	}
	if line != "" || len(out) == 0 {
		out = append(out, line)
	}
	return out
}

// Fence reports whether line can open a fenced code block, and returns its
// fence run ("```", "~~~~") and its info string, trimmed ("go", ""). As in
// CommonMark, the info string of a backtick fence holds no backtick; that
// of a tilde fence holds no line break.
func Fence(line string) (fence, info string, ok bool) {
	run, rest, ok := FenceRun(line)
	if !ok || run[0] == '`' && strings.IndexByte(rest, '`') >= 0 || run[0] == '~' && strings.IndexByte(rest, '\n') >= 0 {
		return "", "", false
	}
	return run, strings.TrimSpace(rest), true
}

// Closes reports whether line closes a code block opened with fence: a run
// of the same character at least as long, with nothing but spaces after it.
func Closes(line, fence string) bool {
	f, info, ok := Fence(line)
	return ok && info == "" && f[0] == fence[0] && len(f) >= len(fence)
}
