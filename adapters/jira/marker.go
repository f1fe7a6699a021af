package jira

import (
	"hash/fnv"
	"strconv"
	"strings"
)

// Every comment the gateway posts ends with an invisible provenance marker,
// so that it recognises its comments when Jira sends them back, even when
// they were posted under a person's credentials (a Data Center personal
// access token, a Cloud API token of a human account).
//
// Wiki markup has no comments, and Jira Cloud stores comments as ADF, where
// markup-level tricks ({color:#ffffff}…{color}) render differently across
// themes and editors and are easy to break by editing. The marker is
// therefore made of zero-width format characters, which wiki markup, ADF and
// the editors keep as text and no renderer shows:
//
//	WJ ZWJ ZWNJ ZWJ ZWJ ZWNJ WJ  <32 bits of tag as ZWNJ (0) / ZWJ (1)>  WJ
//
// (WJ U+2060 WORD JOINER, ZWJ U+200D, ZWNJ U+200C). The fixed signature
// (the first seven characters) marks provenance; the tag is an FNV-1a hash
// of the delivery id and part number, so that a retry can find a part an
// earlier attempt posted.
const (
	zwFrame = "\u2060"
	zwZero  = "\u200c"
	zwOne   = "\u200d"
	// markerSignature is what hasMarker looks for.
	markerSignature = zwFrame + zwOne + zwZero + zwOne + zwOne + zwZero + zwFrame
)

// marker returns the provenance marker of part (from 1) of a delivery.
func marker(delivery string, part int) string {
	h := fnv.New32a()
	h.Write([]byte(delivery))
	h.Write([]byte{0})
	h.Write([]byte(strconv.Itoa(part)))
	tag := h.Sum32()
	var b strings.Builder
	b.Grow(len(markerSignature) + 33*3)
	b.WriteString(markerSignature)
	for i := 31; i >= 0; i-- {
		if tag>>uint(i)&1 == 1 {
			b.WriteString(zwOne)
		} else {
			b.WriteString(zwZero)
		}
	}
	b.WriteString(zwFrame)
	return b.String()
}

// hasMarker reports whether text carries a provenance marker.
func hasMarker(text string) bool { return strings.Contains(text, markerSignature) }

// appendMarker appends m to a comment in wiki markup where it stays
// invisible and leaves the markup alone: at the end of the last line, or on
// a line of its own after a table row or a rule (where it would add a cell
// or break the rule).
func appendMarker(wiki, m string) string {
	last := wiki[strings.LastIndexByte(wiki, '\n')+1:]
	if t := strings.TrimSpace(last); strings.HasPrefix(t, "|") || ruleWRe.MatchString(t) {
		return wiki + "\n" + m
	}
	return wiki + m
}
