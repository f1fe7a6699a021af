package router_test

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/testenv"
	"github.com/switchboardhq/switchboard/store"
)

// stream appends a partial message, n partial edits each extending it, and
// a final edit, every gap apart, and returns the final text.
func stream(h *harness, sessionID, id string, n int, gap time.Duration, to envelope.Conversation) string {
	h.t.Helper()
	text := "chunk 0."
	h.change(sessionID, id, envelope.KindMessage, "", text, true, to)
	for i := 1; i <= n; i++ {
		time.Sleep(gap)
		text += fmt.Sprintf(" chunk %d.", i)
		h.change(sessionID, fmt.Sprintf("%s-%d", id, i), envelope.KindEdit, id, text, true, to)
	}
	text += " Done."
	h.change(sessionID, id+"-final", envelope.KindEdit, id, text, false, to)
	return text
}

// TestStreamToAnEditor checks a stream to a channel that edits: one message
// created, then edits of it in place, at most one per edit interval, and
// the final text last and exactly.
func TestStreamToAnEditor(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testStreamToAnEditor(t, newHarness(t, inboxRoutes, nil)) })
	t.Run("postgres", func(t *testing.T) { testStreamToAnEditor(t, newPGHarness(t, testenv.Postgres(t), inboxRoutes, nil)) })
}

func testStreamToAnEditor(t *testing.T, h *harness) {
	const interval = 300 * time.Millisecond
	h.sinks["fake"].editor, h.sinks["fake"].editInterval = true, interval
	h.restart()
	thread := envelope.Conversation{Source: "fake", Ref: "thread-S"}
	sess := h.ingest(msg("fake", thread.Ref, "stream me", addressed)).SessionID

	start := time.Now()
	final := stream(h, sess, "s1", 40, 25*time.Millisecond, thread)
	sink := h.sinks["fake"]
	waitFor(t, "the final text", func() bool {
		got := sink.delivered()
		return len(got) > 0 && got[len(got)-1].Envelope.Text == final
	})
	took := time.Since(start)
	got := sink.delivered()
	if got[0].Envelope.Kind != envelope.KindMessage || got[0].Envelope.ID != "agent:s1" || !got[0].Envelope.Partial() {
		t.Fatalf("first post %+v, want the partial message agent:s1", got[0].Envelope)
	}
	for _, d := range got[1:] {
		if d.Envelope.Kind != envelope.KindEdit || d.Target != "fake-posted-1" {
			t.Errorf("then %s of target %q (%s), want edits of fake-posted-1", d.Envelope.Kind, d.Target, d.Envelope.ID)
		}
	}
	// Bounded: at most one change per interval over the stream, plus the
	// final one.
	if max := int(took/interval) + 2; len(got)-1 > max {
		t.Errorf("%d edits over %s at one per %s, want at most %d", len(got)-1, took, interval, max)
	}
	if len(got)-1 >= 41 {
		t.Errorf("every edit was sent (%d): nothing was coalesced", len(got)-1)
	}
	// The log holds every update, in order; every delivery is settled.
	recs := h.records(sess)
	if n := len(recs); n != 1+1+40+1 {
		t.Errorf("%d records, want 43", n)
	}
	waitSettled(t, h)
	if c := h.counter("switchboard_outbox_attempts_total", "result", "coalesced"); c == 0 {
		t.Error("no coalesced attempts counted")
	}

	// A later edit changes the message again; a deletion withdraws it.
	h.change(sess, "s1-fix", envelope.KindEdit, "s1", final+" (fixed)", false, thread)
	waitFor(t, "the fix", func() bool { return slices.Contains(sink.texts(), final+" (fixed)") })
	h.change(sess, "s1-del", envelope.KindDelete, "s1", "", false, thread)
	waitFor(t, "the deletion", func() bool {
		got := sink.delivered()
		return got[len(got)-1].Envelope.Kind == envelope.KindDelete
	})
	got = sink.delivered()
	if d := got[len(got)-1]; d.Target != "fake-posted-1" {
		t.Errorf("deletion of %q, want fake-posted-1", d.Target)
	}
	// An edit with a deletion after it is not sent at all (held back by
	// the interval after the partial message, it is superseded).
	h.change(sess, "s2", envelope.KindMessage, "", "short-lived", true, thread)
	waitFor(t, "s2", func() bool { return slices.Contains(sink.texts(), "short-lived") })
	h.change(sess, "s2-e", envelope.KindEdit, "s2", "never shown", false, thread)
	h.change(sess, "s2-del", envelope.KindDelete, "s2", "", false, thread)
	waitFor(t, "the deletion of s2", func() bool {
		got := sink.delivered()
		return got[len(got)-1].Envelope.ID == "agent:s2-del"
	})
	if slices.Contains(sink.texts(), "never shown") {
		t.Error("an edit followed by a deletion was sent")
	}
	// An edit held back by the interval goes out on its next attempt; a
	// paced wait is no failure, so, as nothing failed, no delivery has an
	// attempt recorded.
	h.change(sess, "s3", envelope.KindMessage, "", "first words", true, thread)
	h.change(sess, "s3-e", envelope.KindEdit, "s3", "first words, then more", false, thread)
	waitFor(t, "the paced edit", func() bool { return slices.Contains(sink.texts(), "first words, then more") })
	waitSettled(t, h)
	ds, err := h.st.ListDeliveries(t.Context(), "", "", 200)
	if err != nil {
		t.Fatal(err)
	}
	paced := false
	for _, d := range ds {
		paced = paced || d.Attempts > 1
		if as, err := h.st.DeliveryAttempts(t.Context(), d.ID, "", 10); err != nil || len(as) != 0 {
			t.Errorf("delivery %s (%d attempts) recorded attempts %+v, %v; want none", d.ID, d.Attempts, as, err)
		}
	}
	if !paced {
		t.Error("no delivery took a second attempt: the paced edit was not paced")
	}
}

// TestStreamToAChannelThatCannotEdit checks that a channel whose sink is
// not an Editor gets the final text of a stream once, as a message, and
// that later changes are dropped.
func TestStreamToAChannelThatCannotEdit(t *testing.T) {
	h := newHarness(t, inboxRoutes, nil)
	mail := envelope.Conversation{Source: "fake2", Ref: "<thread@x>"}
	sess := h.ingest(msg("fake2", mail.Ref, "stream me", addressed)).SessionID
	final := stream(h, sess, "m1", 10, 0, mail)
	sink := h.sinks["fake2"]
	waitFor(t, "the final text", func() bool { return len(sink.texts()) > 0 })
	h.change(sess, "m1-late", envelope.KindEdit, "m1", "too late", false, mail)
	h.change(sess, "m1-del", envelope.KindDelete, "m1", "", false, mail)
	h.output(sess, "after", "the next answer", mail)
	waitFor(t, "the next answer", func() bool {
		got := sink.texts()
		return len(got) > 0 && got[len(got)-1] == "the next answer"
	})
	waitSettled(t, h)
	got := sink.delivered()
	if len(got) != 2 {
		t.Fatalf("%d posts: %q, want the final text and the next answer", len(got), sink.texts())
	}
	if d := got[0]; d.Envelope.Kind != envelope.KindMessage || d.Envelope.Text != final || d.Target != "" {
		t.Errorf("first post: %s %q target %q, want the final text as a new message", d.Envelope.Kind, d.Envelope.Text, d.Target)
	}
	ds, err := h.st.ListDeliveries(t.Context(), "", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Status != store.Delivered {
			t.Errorf("delivery %d is %s, want delivered (skipped or posted)", d.Seq, d.Status)
		}
	}
	// The message took the channel id of its posting edit.
	recs := h.records(sess)
	if id, err := h.st.ChannelIDOf(t.Context(), sess, recs[1].Seq, mail); err != nil || id != "fake2-posted-1" {
		t.Errorf("channel id of the stream's message: %q, %v; want fake2-posted-1", id, err)
	}
}

// TestEditOfAGoneMessage checks that a message the channel reports gone
// ends its updates quietly: no retries, nothing dead, no system record.
func TestEditOfAGoneMessage(t *testing.T) {
	h := newHarness(t, inboxRoutes, nil)
	h.sinks["fake"].editor = true
	h.sinks["fake"].fail = func(d adapters.Delivery, attempt int) error {
		if d.Envelope.Kind != envelope.KindMessage {
			return fmt.Errorf("fake: chat.update: %w: message_not_found", adapters.ErrGone)
		}
		return nil
	}
	h.restart()
	thread := envelope.Conversation{Source: "fake", Ref: "thread-G"}
	sess := h.ingest(msg("fake", thread.Ref, "hello", addressed)).SessionID
	h.output(sess, "g1", "first answer", thread)
	h.change(sess, "g1-e1", envelope.KindEdit, "g1", "better answer", false, thread)
	h.output(sess, "g2", "second answer", thread)
	waitFor(t, "the second answer", func() bool { return slices.Contains(h.sinks["fake"].texts(), "second answer") })
	waitSettled(t, h)
	ds, err := h.st.ListDeliveries(t.Context(), "", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Status != store.Delivered || d.Attempts != 1 {
			t.Errorf("delivery %d: %s after %d attempts, want delivered after 1", d.Seq, d.Status, d.Attempts)
		}
	}
	for _, rec := range h.records(sess) {
		if rec.Envelope.Kind == envelope.KindSystem {
			t.Errorf("system record %q, want none", rec.Envelope.Text)
		}
	}
	if c := h.counter("switchboard_outbox_attempts_total", "result", "gone"); c != 1 {
		t.Errorf("gone attempts = %v, want 1", c)
	}
}

// waitSettled waits until no delivery is pending.
func waitSettled(t *testing.T, h *harness) {
	t.Helper()
	waitFor(t, "every delivery settled", func() bool {
		ds, err := h.st.ListDeliveries(t.Context(), store.Pending, "", 100)
		return err == nil && len(ds) == 0
	})
}

// streamAgent is an exec agent that streams n chunks, gap apart, and
// finishes; its final text is streamFinal(n).
func streamAgent(t *testing.T, n int, gap string) string {
	return writeScript(t, t.TempDir()+"/agent.sh", fmt.Sprintf(`#!/bin/sh
cat >/dev/null
i=1
while [ $i -le %d ]; do
  echo "@switchboard {\"append\": \"chunk $i. \"}"
  sleep %s
  i=$((i+1))
done
echo '@switchboard {"append": "Done."}'
`, n, gap))
}

func streamFinal(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "chunk %d. ", i)
	}
	return b.String() + "Done."
}

// TestExecAgentStreamsThroughTheRouter runs an exec agent that streams
// through the router to a channel that edits: the channel gets one
// message, edits of it at most one per interval, and the final text; the
// log holds every update in order.
func TestExecAgentStreamsThroughTheRouter(t *testing.T) {
	const chunks, interval = 20, 250 * time.Millisecond
	h := newHarness(t, `
routes:
  - name: fake
    match: {source: fake}
    runtime: exec
    exec: {command: [`+strconv.Quote(streamAgent(t, chunks, "0.05"))+`]}
`, nil)
	h.sinks["fake"].editor, h.sinks["fake"].editInterval = true, interval
	h.restart()
	start := time.Now()
	sid := h.ingest(msg("fake", "t", "stream please", addressed)).SessionID
	sink := h.sinks["fake"]
	final := streamFinal(chunks)
	waitFor(t, "the final text", func() bool {
		got := sink.delivered()
		return len(got) > 0 && got[len(got)-1].Envelope.Text == final && !got[len(got)-1].Envelope.Partial()
	})
	took := time.Since(start)
	waitIdle(t, h, sid)
	got := sink.delivered()
	if got[0].Envelope.Kind != envelope.KindMessage {
		t.Fatalf("first post is a %s, want the message", got[0].Envelope.Kind)
	}
	for _, d := range got[1:] {
		if d.Envelope.Kind != envelope.KindEdit || d.Target != "fake-posted-1" {
			t.Errorf("then a %s of %q, want edits of the first post", d.Envelope.Kind, d.Target)
		}
	}
	if max := int(took/interval) + 2; len(got)-1 > max {
		t.Errorf("%d edits in %s, want at most %d (one per %s and the final one)", len(got)-1, took, max, interval)
	}
	// The log: the turn's message, then the reply and its edits, growing.
	recs := h.records(sid)
	prev := ""
	for i, rec := range recs[1:] {
		e := rec.Envelope
		if i == 0 && (e.Kind != envelope.KindMessage || !e.Partial()) {
			t.Errorf("first output is %s partial=%v, want a partial message", e.Kind, e.Partial())
		}
		if i > 0 && (e.Kind != envelope.KindEdit || e.Target() != recs[1].Envelope.ID) {
			t.Errorf("output %d is %s of %q, want an edit of %s", i, e.Kind, e.Target(), recs[1].Envelope.ID)
		}
		if !strings.HasPrefix(e.Text, prev) {
			t.Errorf("output %d %q does not extend %q", i, e.Text, prev)
		}
		prev = e.Text
	}
	if last := recs[len(recs)-1].Envelope; last.Text != final || last.Partial() {
		t.Errorf("last record %q partial=%v, want the final text", last.Text, last.Partial())
	}
}

// TestProgressMessage checks the route option that posts a placeholder
// when a turn starts and turns it into the answer, and withdraws it when
// the agent fails.
func TestProgressMessage(t *testing.T) {
	dir := t.TempDir()
	agent := writeScript(t, dir+"/agent.sh", `#!/bin/sh
if grep -q fail; then echo boom >&2; exit 3; fi
echo "All done."
`)
	h := newHarness(t, `
routes:
  - name: fake
    match: {source: fake}
    runtime: exec
    exec: {command: [`+strconv.Quote(agent)+`]}
    progress: message
    progress_text: "On it…"
`, nil)
	h.sinks["fake"].editor = true
	h.restart()
	sid := h.ingest(msg("fake", "t", "please", addressed)).SessionID
	sink := h.sinks["fake"]
	waitFor(t, "the answer", func() bool { return slices.Contains(sink.texts(), "All done.") })
	waitIdle(t, h, sid)
	got := sink.delivered()
	if len(got) != 2 || got[0].Envelope.Text != "On it…" || got[1].Envelope.Kind != envelope.KindEdit || got[1].Target != "fake-posted-1" {
		t.Fatalf("posted %+v, want the placeholder and an edit of it into the answer", sink.texts())
	}

	h.ingest(msg("fake", "t", "fail please", addressed))
	waitFor(t, "the failure notice", func() bool {
		got := sink.delivered()
		return got[len(got)-1].Envelope.Kind == envelope.KindSystem
	})
	got = sink.delivered()
	kinds := []envelope.Kind{}
	for _, d := range got[2:] {
		kinds = append(kinds, d.Envelope.Kind)
	}
	if want := []envelope.Kind{envelope.KindMessage, envelope.KindDelete, envelope.KindSystem}; !slices.Equal(kinds, want) {
		t.Errorf("after a failed turn the channel got %v, want the placeholder, its deletion and the notice", kinds)
	}
}

// TestUpstreamEdits checks the http runtime's hook path (DeliverOutput):
// an edit an upstream agent service sends goes where its message went, and
// one naming no output of the session is refused.
func TestUpstreamEdits(t *testing.T) {
	h := newHarness(t, inboxRoutes, nil)
	h.sinks["fake"].editor = true
	h.restart()
	thread := envelope.Conversation{Source: "fake", Ref: "thread-U"}
	sid := h.ingest(msg("fake", thread.Ref, "hello", addressed)).SessionID
	out := func(id string, kind envelope.Kind, refs envelope.Refs) envelope.Envelope {
		return envelope.Envelope{ID: "up:" + id, Source: "up", Kind: kind, Refs: refs, Text: "text of " + id,
			Actor: envelope.Actor{ID: "up:agent", Type: envelope.Agent}, TS: time.Now().UTC()}
	}
	ctx := t.Context()
	if err := h.r.DeliverOutput(ctx, sid, out("m1", envelope.KindMessage, nil)); err != nil {
		t.Fatal(err)
	}
	if err := h.r.DeliverOutput(ctx, sid, out("m1-e", envelope.KindEdit, envelope.Refs{envelope.RefEdits: "up:m1"})); err != nil {
		t.Fatal(err)
	}
	recs := h.records(sid)
	if e := recs[len(recs)-1].Envelope; e.Kind != envelope.KindEdit || e.Conversation != thread {
		t.Errorf("stored edit %s to %s, want an edit to %s", e.Kind, e.Conversation.Key(), thread.Key())
	}
	if err := h.r.DeliverOutput(ctx, sid, out("x", envelope.KindEdit, envelope.Refs{envelope.RefEdits: "up:nope"})); !errors.Is(err, store.ErrNoSuchOutput) {
		t.Errorf("edit of an unknown output: %v, want ErrNoSuchOutput", err)
	}
	if err := h.r.DeliverOutput(ctx, sid, out("y", envelope.KindDelete, envelope.Refs{envelope.RefDeletes: recs[0].Envelope.ID})); !errors.Is(err, store.ErrNotEditable) {
		t.Errorf("deletion of the person's message: %v, want ErrNotEditable", err)
	}
	waitFor(t, "the edit delivered", func() bool {
		got := h.sinks["fake"].delivered()
		return len(got) == 2 && got[1].Envelope.ID == "up:m1-e"
	})
}

// TestFailedStreamIsFinished checks that a reply left open by an agent
// that fails mid-stream is finished with the text it had, before the
// notice of the failure.
func TestFailedStreamIsFinished(t *testing.T) {
	agent := writeScript(t, t.TempDir()+"/agent.sh", `#!/bin/sh
cat >/dev/null
echo '@switchboard {"append": "Half "}'
echo '@switchboard {"append": "an answer"}'
exit 3
`)
	h := newHarness(t, `
routes:
  - name: fake
    match: {source: fake}
    runtime: exec
    exec: {command: [`+strconv.Quote(agent)+`]}
`, nil)
	sid := h.ingest(msg("fake", "t", "go", addressed)).SessionID
	waitFor(t, "the failure notice", func() bool {
		recs := h.records(sid)
		return recs[len(recs)-1].Envelope.Kind == envelope.KindSystem
	})
	// The reply is finished with its text: by the runtime, which ends an
	// open reply when the agent exits (the final edit, or the message
	// itself when no update was stored before), or else by the router.
	recs := h.records(sid)
	end := recs[len(recs)-2].Envelope
	finished := end.Kind == envelope.KindEdit && end.Target() == recs[1].Envelope.ID ||
		end.Kind == envelope.KindMessage && len(recs) == 3 // the message, then the notice
	if !finished || end.Partial() || end.Text != "Half an answer" {
		t.Errorf("before the notice: %s %q partial=%v of %q, want the reply finished with its text", end.Kind, end.Text, end.Partial(), end.Target())
	}
}
