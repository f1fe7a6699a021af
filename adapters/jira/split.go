package jira

import (
	"strings"
	"unicode/utf8"

	"github.com/switchboardhq/switchboard/adapters/internal/markdown"
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
	return markdown.Split(text, markdown.SplitOptions{Max: max})
}

func chars(s string) int { return utf8.RuneCountInString(s) }
