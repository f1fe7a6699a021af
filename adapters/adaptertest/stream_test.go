package adaptertest

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// recordingTB is a testing.TB that records failures; Fatalf ends the
// goroutine, as the testing package's does.
type recordingTB struct {
	testing.TB
	failures []string
}

func (r *recordingTB) Helper()             {}
func (r *recordingTB) Logf(string, ...any) {}
func (r *recordingTB) Errorf(f string, a ...any) {
	r.failures = append(r.failures, fmt.Sprintf(f, a...))
}
func (r *recordingTB) Fatalf(f string, a ...any) {
	r.Errorf(f, a...)
	runtime.Goexit()
}

// failures runs check with a recordingTB and returns what it reported.
func failures(check func(testing.TB)) []string {
	r := &recordingTB{}
	done := make(chan struct{})
	go func() { defer close(done); check(r) }()
	<-done
	return r.failures
}

// streamLog is a session log: an inbound message, the partial message
// "a", and edits with texts, all partial but the last.
func streamLog(texts ...string) []store.Record {
	recs := []store.Record{
		{Seq: 1, Direction: store.Inbound, Envelope: envelope.Envelope{ID: "in", Kind: envelope.KindMessage, Text: "go"}},
		{Seq: 2, Direction: store.Outbound, Envelope: envelope.Envelope{ID: "m", Kind: envelope.KindMessage, Text: "a",
			Refs: envelope.Refs{envelope.RefPartial: "true"}}},
	}
	for i, text := range texts {
		refs := envelope.Refs{envelope.RefEdits: "m"}
		if i < len(texts)-1 {
			refs[envelope.RefPartial] = "true"
		}
		recs = append(recs, store.Record{Seq: int64(i + 3), Direction: store.Outbound,
			Envelope: envelope.Envelope{ID: fmt.Sprintf("m.%d", i+1), Kind: envelope.KindEdit, Text: text, Refs: refs}})
	}
	return recs
}

func TestCheckStream(t *testing.T) {
	chunks := []string{"a", "b", "c"}
	for _, c := range []struct {
		name string
		recs []store.Record
		fail string // in the failure; "" for none
	}{
		{"every chunk", streamLog("ab", "abc", "abc"), ""},
		{"gathered chunks", streamLog("abc"), ""},
		{"a text that goes back", streamLog("ab", "a", "abc"), `"a" is not the text before it`},
		{"a text that is not the chunks so far", streamLog("ax", "abc"), `"ax" is not`},
		{"a partial text repeated", streamLog("ab", "ab", "abc"), `"ab" is not`},
		{"no final text", streamLog("ab"), "the stream ends with"},
		{"no edits", streamLog()[:2], "want a partial message and its edits"},
	} {
		got := failures(func(tb testing.TB) { CheckStream(tb, c.recs, chunks) })
		if c.fail == "" && len(got) > 0 || c.fail != "" && (len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), c.fail)) {
			t.Errorf("%s: failures %q, want one with %q", c.name, got, c.fail)
		}
	}
}

func TestCheckEdits(t *testing.T) {
	for _, c := range []struct {
		changes []string
		fails   bool
	}{
		{[]string{"PUT 1"}, false},
		{[]string{"PUT 1", "PUT 1", "PUT 1"}, false},
		{nil, true},
		{[]string{"PUT 1", "PUT 1", "PUT 1", "PUT 1"}, true},
		{[]string{"PUT 1", "DELETE 1"}, true},
	} {
		if got := failures(func(tb testing.TB) { CheckEdits(tb, c.changes, "PUT 1") }); (len(got) > 0) != c.fails {
			t.Errorf("changes %q: failures %q, want failing %v", c.changes, got, c.fails)
		}
	}
}
