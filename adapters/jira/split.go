package jira

import (
	"strings"
	"sync"
	"unicode/utf8"
)

// renderComments converts a Markdown reply to wiki markup comments of at
// most max characters each, leaving room for the provenance marker. The
// Markdown is split first (between paragraphs where it can, else between
// lines, else between words), so that every comment is well-formed on its
// own; when a part grows past max in conversion, the split is redone
// smaller.
func renderComments(md string, max int) []string {
	room := max - markerChars - 1 // the marker may need a line of its own
	for budget := room; budget > 0; budget = budget * 3 / 4 {
		var out []string
		fits := true
		for _, part := range splitMarkdown(md, budget) {
			w := toWiki(part)
			if strings.TrimSpace(w) == "" {
				continue
			}
			if chars(w) > room {
				fits = false
				break
			}
			out = append(out, w)
		}
		if fits {
			return out
		}
	}
	return nil
}

// markerChars is the length of a provenance marker in characters.
var markerChars = utf8.RuneCountInString(marker("", 1))

// splitMarkdown cuts Markdown into chunks of at most max characters, in
// order. A fenced code block that must be cut is closed at the end of one
// chunk and reopened in the next.
func splitMarkdown(text string, max int) []string {
	text = strings.TrimSpace(strings.ReplaceAll(text, "\r\n", "\n"))
	if text == "" {
		return nil
	}
	if chars(text) <= max {
		return []string{text}
	}
	var chunks []string
	var cur strings.Builder
	curLen := 0
	flush := func() {
		if curLen > 0 {
			chunks = append(chunks, strings.TrimRight(cur.String(), " \t\n"))
			cur.Reset()
			curLen = 0
		}
	}
	add := func(piece, sep string) {
		n := chars(piece)
		if curLen > 0 && curLen+chars(sep)+n > max {
			flush()
		}
		if curLen > 0 {
			cur.WriteString(sep)
			curLen += chars(sep)
		}
		cur.WriteString(piece)
		curLen += n
	}
	for _, block := range mdBlocks(text) {
		if chars(block) <= max {
			add(block, "\n\n")
			continue
		}
		flush()
		for _, piece := range cutBlock(block, max) {
			add(piece, "\n")
		}
		flush()
	}
	flush()
	return chunks
}

// mdBlocks splits text at blank lines, keeping each fenced code block whole.
func mdBlocks(text string) []string {
	var out, cur []string
	fence := ""
	for _, line := range strings.Split(text, "\n") {
		if m := fenceMatch(line); m != nil {
			switch {
			case fence == "":
				fence = m[1]
			case m[1][0] == fence[0] && len(m[1]) >= len(fence) && m[2] == "":
				fence = ""
			}
		}
		if fence == "" && strings.TrimSpace(line) == "" {
			if len(cur) > 0 {
				out = append(out, strings.Join(cur, "\n"))
				cur = cur[:0]
			}
			continue
		}
		cur = append(cur, line)
	}
	if len(cur) > 0 {
		out = append(out, strings.Join(cur, "\n"))
	}
	return out
}

// cutBlock cuts one block longer than max into pieces of at most max
// characters; the caller joins consecutive pieces with "\n" while they fit.
func cutBlock(block string, max int) []string {
	lines := strings.Split(block, "\n")
	if len(lines) >= 2 && fenceMatch(lines[0]) != nil && fenceMatch(lines[len(lines)-1]) != nil {
		open, close := lines[0], lines[len(lines)-1]
		room := max - chars(open) - chars(close) - 2
		if room > 0 {
			var out, body []string
			size := 0
			emit := func() {
				if len(body) > 0 {
					out = append(out, open+"\n"+strings.Join(body, "\n")+"\n"+close)
					body, size = body[:0], 0
				}
			}
			for _, l := range lines[1 : len(lines)-1] {
				for _, part := range cutLine(l, room, false) {
					if size > 0 && size+1+chars(part) > room {
						emit()
					}
					if size > 0 {
						size++
					}
					body = append(body, part)
					size += chars(part)
				}
			}
			emit()
			return out
		}
	}
	var out []string
	for _, l := range lines {
		out = append(out, cutLine(l, max, true)...)
	}
	return out
}

// cutLine cuts a line longer than max at spaces (when words is true), or
// anywhere when a word is longer than max.
func cutLine(line string, max int, words bool) []string {
	var out []string
	for chars(line) > max {
		cut := -1
		if words {
			n := 0
			for i, r := range line {
				if n > max {
					break
				}
				if r == ' ' && n > 0 {
					cut = i
				}
				n++
			}
		}
		if cut <= 0 {
			cut = byteIndexOfRune(line, max)
			out = append(out, line[:cut])
			line = line[cut:]
			continue
		}
		out = append(out, line[:cut])
		line = strings.TrimLeft(line[cut:], " ")
	}
	if line != "" {
		out = append(out, line)
	}
	return out
}

// byteIndexOfRune returns the byte offset of the n-th rune of s.
func byteIndexOfRune(s string, n int) int {
	i := 0
	for j := range s {
		if i == n {
			return j
		}
		i++
	}
	return len(s)
}

func chars(s string) int { return utf8.RuneCountInString(s) }

// sentLog remembers, for the process lifetime, the comment ids posted for
// the parts of recent deliveries (possibly none), so that a retry neither
// posts them again nor needs to look for them on the issue. It holds at most
// max deliveries, forgetting the oldest. Safe for concurrent use.
type sentLog struct {
	mu    sync.Mutex
	max   int
	m     map[string][]string
	order []string // delivery ids, oldest first
}

func newSentLog(max int) *sentLog { return &sentLog{max: max, m: map[string][]string{}} }

// get returns the comment ids posted for id and whether id is known.
func (s *sentLog) get(id string) ([]string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids, ok := s.m[id]
	return append([]string(nil), ids...), ok
}

// put records the parts posted for id so far.
func (s *sentLog) put(id string, ids []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[id]; !ok {
		s.order = append(s.order, id)
		for len(s.order) > s.max {
			delete(s.m, s.order[0])
			s.order = s.order[1:]
		}
	}
	s.m[id] = append([]string(nil), ids...)
}
