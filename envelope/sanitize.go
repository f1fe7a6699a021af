package envelope

import (
	"slices"
	"strings"
	"unicode/utf8"
)

// Clean returns s as a store can hold it in a text column: without NUL
// bytes, and with each invalid UTF-8 sequence replaced by U+FFFD. A clean s
// is returned as it is, without copying.
func Clean(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

// Sanitize makes every text field of e storable with Clean: the id,
// source, actor, conversation, text and refs (keys and values). Channel
// payloads may carry NUL bytes and invalid UTF-8, which PostgreSQL refuses;
// adapters call Sanitize on every envelope they build, so that such a
// message is stored cleaned rather than refused. Raw is left alone: it is
// kept byte for byte. A refs key that is only made clean by Clean gives way
// to a clean key it collides with. Sanitize reports whether it changed e.
func (e *Envelope) Sanitize() (changed bool) {
	for _, p := range [...]*string{&e.ID, &e.Source, &e.Actor.ID, &e.Actor.Display,
		&e.Conversation.Source, &e.Conversation.Ref, &e.Text} {
		if c := Clean(*p); c != *p {
			*p, changed = c, true
		}
	}
	var dirty []string
	for k, v := range e.Refs {
		switch {
		case Clean(k) != k:
			dirty = append(dirty, k)
		case Clean(v) != v:
			e.Refs[k], changed = Clean(v), true
		}
	}
	slices.Sort(dirty) // the same winner every time
	for _, k := range dirty {
		v := e.Refs[k]
		delete(e.Refs, k)
		changed = true
		if c := Clean(k); c != "" {
			if _, taken := e.Refs[c]; !taken {
				e.Refs[c] = Clean(v)
			}
		}
	}
	return changed
}
