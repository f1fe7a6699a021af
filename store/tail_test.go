package store

import (
	"fmt"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard/envelope"
)

func tailRec(session string, seq int64, text string) Record {
	return Record{SessionID: session, Seq: seq, Envelope: envelope.Envelope{ID: "client:" + text, Text: text,
		Refs: envelope.Refs{"repo": "octo/cat"}, Raw: []byte(`{"text":"` + text + `"}`)}}
}

func tailSeqs(t *testing.T, tail *Tail, session string, after int64, limit int) []int64 {
	t.Helper()
	recs, ok := tail.Read(session, after, limit)
	if !ok {
		return nil
	}
	if len(recs) == 0 {
		t.Fatalf("Read(%s, %d, %d) answered with no records", session, after, limit)
	}
	seqs := make([]int64, len(recs))
	for i, r := range recs {
		seqs[i] = r.Seq
	}
	return seqs
}

func TestTailReadsWhatItHolds(t *testing.T) {
	var tail Tail
	if _, ok := tail.Read("s", 0, 10); ok {
		t.Fatal("an empty tail answered")
	}
	tail.Append([]Record{tailRec("s", 3, "c"), tailRec("s", 4, "d"), tailRec("other", 1, "x"), tailRec("s", 5, "e")})
	for _, c := range []struct {
		after int64
		limit int
		want  string
	}{
		{2, 10, "[3 4 5]"},
		{3, 10, "[4 5]"},
		{3, 1, "[4]"},
		{1, 10, "[]"}, // record 2 is not held: the store must answer
		{5, 10, "[]"}, // nothing newer is never answered
		{9, 10, "[]"},
		{3, 0, "[]"},
	} {
		if got := fmt.Sprint(tailSeqs(t, &tail, "s", c.after, c.limit)); got != c.want {
			t.Errorf("Read(after %d, limit %d) = %s, want %s", c.after, c.limit, got, c.want)
		}
	}
	// Not contiguous with what it holds: it starts again.
	tail.Append([]Record{tailRec("s", 9, "i")})
	if got := fmt.Sprint(tailSeqs(t, &tail, "s", 2, 10)); got != "[]" {
		t.Errorf("after a gap, Read(after 2) = %s, want no answer", got)
	}
	if got := fmt.Sprint(tailSeqs(t, &tail, "s", 8, 10)); got != "[9]" {
		t.Errorf("after a gap, Read(after 8) = %s, want [9]", got)
	}
	// Bounded per session: the oldest go.
	for seq := int64(10); seq < 10+tailRecords; seq++ {
		tail.Append([]Record{tailRec("s", seq, "n")})
	}
	if got := tailSeqs(t, &tail, "s", 8, 100); got != nil {
		t.Errorf("Read(after 8) with record 9 dropped = %v, want no answer", got)
	}
	if got := tailSeqs(t, &tail, "s", 9, 100); len(got) != tailRecords {
		t.Errorf("Read(after 9) = %v, want the %d newest", got, tailRecords)
	}
	// A record too large to hold ends what was held of its session.
	big := tailRec("s", 10+tailRecords, strings.Repeat("x", tailRecordBytes))
	tail.Append([]Record{big})
	if got := tailSeqs(t, &tail, "s", 9, 100); got != nil {
		t.Errorf("after a large record, Read = %v, want no answer", got)
	}
	tail.Reset()
	if got := tailSeqs(t, &tail, "other", 0, 10); got != nil {
		t.Errorf("after Reset, Read = %v, want no answer", got)
	}
}

func TestTailHandsOutCopies(t *testing.T) {
	var tail Tail
	tail.Append([]Record{tailRec("s", 1, "a")})
	recs, _ := tail.Read("s", 0, 1)
	recs[0].Envelope.Refs["repo"] = "changed"
	recs[0].Envelope.Raw[2] = 'X'
	again, _ := tail.Read("s", 0, 1)
	if again[0].Envelope.Refs["repo"] != "octo/cat" || string(again[0].Envelope.Raw) != `{"text":"a"}` {
		t.Errorf("a change to a record read changed the tail: %+v", again[0].Envelope)
	}
}

// TestTailMarks: a session's records come with the mark of the last
// AppendMarked that added to them, whichever records are read.
func TestTailMarks(t *testing.T) {
	var tail Tail
	tail.AppendMarked([]Record{tailRec("s", 1, "a"), tailRec("other", 1, "x")}, func(id string) uint64 {
		return map[string]uint64{"s": 6, "other": 7}[id]
	})
	if _, mark, ok := tail.ReadMarked("s", 0, 10); !ok || mark != 6 {
		t.Errorf("ReadMarked(s) = mark %d, %v; want 6, s's own", mark, ok)
	}
	tail.AppendMarked([]Record{tailRec("s", 2, "b")}, func(string) uint64 { return 9 })
	for _, after := range []int64{0, 1} {
		if _, mark, ok := tail.ReadMarked("s", after, 10); !ok || mark != 9 {
			t.Errorf("ReadMarked(s, after %d) = mark %d, %v; want 9 (the last append to s)", after, mark, ok)
		}
	}
	if _, mark, ok := tail.ReadMarked("other", 0, 10); !ok || mark != 7 {
		t.Errorf("ReadMarked(other) = mark %d, %v; want 7", mark, ok)
	}
	if _, mark, ok := tail.ReadMarked("s", 2, 10); ok || mark != 0 {
		t.Errorf("ReadMarked after the newest = mark %d, %v; want no answer", mark, ok)
	}
}
