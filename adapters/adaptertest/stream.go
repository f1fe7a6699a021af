package adaptertest

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// The agents and checks of live replies that the adapters' round trips
// through the router share.

// Chunks returns n chunks of a Markdown answer for StreamingAgent: n-1 of
// "**part<i>** ", then last.
func Chunks(n int, last string) []string {
	var chunks []string
	for i := 1; i < n; i++ {
		chunks = append(chunks, "**part"+strconv.Itoa(i)+"** ")
	}
	return append(chunks, last)
}

// StreamingAgent returns an exec agent (a /bin/sh script) that reads its
// input and streams chunks with the exec runtime's line protocol, one
// @switchboard {"append": …} line per chunk with pause between two, and
// exits without an "end": the runtime finishes the reply with its text.
func StreamingAgent(chunks []string, pause time.Duration) string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\ncat >/dev/null\n")
	for i, c := range chunks {
		if i > 0 {
			b.WriteString("sleep " + strconv.FormatFloat(pause.Seconds(), 'f', -1, 64) + "\n")
		}
		line, _ := json.Marshal(map[string]string{"append": c})
		b.WriteString("echo '@switchboard " + strings.ReplaceAll(string(line), "'", `'\''`) + "'\n")
	}
	return b.String()
}

// CheckStream checks that the outputs in recs (a session's log) are the
// reply an agent streamed as chunks: a partial message with the first
// chunk, then edits of it, each extending the text before it by whole
// chunks (the runtime may gather the chunks of a moment into one update),
// all partial but the last, whose text is all of them. It returns the
// message's record.
func CheckStream(t testing.TB, recs []store.Record, chunks []string) store.Record {
	t.Helper()
	var out []store.Record
	for _, r := range recs {
		if r.Direction == store.Outbound {
			out = append(out, r)
		}
	}
	if len(out) < 2 {
		t.Fatalf("%d outputs in the log, want a partial message and its edits", len(out))
	}
	// The exec runtime trims what a stream shows, as it trims plain output.
	first := out[0].Envelope
	if first.Kind != envelope.KindMessage || !first.Partial() || first.Text != strings.TrimSpace(chunks[0]) {
		t.Fatalf("the first output is a %s (partial %v) of %q, want a partial message of %q", first.Kind, first.Partial(), first.Text, chunks[0])
	}
	// The texts the stream may show: the first k chunks.
	prefixes := map[string]int{}
	for k := range chunks {
		prefixes[strings.TrimSpace(strings.Join(chunks[:k+1], ""))] = k + 1
	}
	prev := 1
	for i, r := range out[1:] {
		e := r.Envelope
		last := i == len(out)-2
		if e.Kind != envelope.KindEdit || e.Target() != first.ID || e.Partial() == last {
			t.Errorf("output %d: a %s of %q, partial %v; want an edit of %q, partial %v", i+2, e.Kind, e.Target(), e.Partial(), first.ID, !last)
		}
		// The final text may repeat the last partial one.
		k := prefixes[e.Text]
		if k < prev || (k == prev && !last) {
			t.Errorf("output %d: %q is not the text before it (%d chunks) and more chunks", i+2, e.Text, prev)
		}
		prev = max(prev, k)
	}
	if prev != len(chunks) || out[len(out)-1].Envelope.Text != strings.TrimSpace(strings.Join(chunks, "")) {
		t.Errorf("the stream ends with %q, want all %d chunks", out[len(out)-1].Envelope.Text, len(chunks))
	}
	return out[0]
}

// CheckEdits checks the changes a channel's fake accepted while a reply
// streamed about 5 s through a sink whose EditInterval is 5 s: every one
// is edit (the request that edits the reply's comment, as the fake names
// it), and there are at least one (the first text is the first chunk) and
// at most three. The router changes a message at most once per interval
// and sends the final text always: over a stream of about 5 s, at most
// ceil(5/5)+2 = 3 changes (one per interval, one for an interval cut by
// the stream's start, the final text). It returns how many there were.
func CheckEdits(t testing.TB, changes []string, edit string) int {
	t.Helper()
	n := 0
	for _, c := range changes {
		if c == edit {
			n++
		}
	}
	t.Logf("%d edits: %q", n, changes)
	if n < 1 || n > 3 || n != len(changes) {
		t.Errorf("changes %q, want 1 to 3 of %q and nothing else", changes, edit)
	}
	return n
}

// DeleteAnswer appends to the log of the session bound to conv what the
// API stores for an agent's deletion of its answer (the session's last
// record, once settled): an outbound record of kind delete naming it, to
// the conversation the answer went to. It waits until the outbox has
// delivered the deletion and checks that it did not give it up.
func DeleteAnswer(t testing.TB, st store.Store, conv envelope.Conversation) {
	t.Helper()
	ctx := context.Background()
	recs := Settled(t, st, conv)
	answer := recs[len(recs)-1]
	if answer.Direction != store.Outbound || answer.Envelope.Kind != envelope.KindMessage {
		t.Fatalf("the last record is a %s %s, not the agent's answer", answer.Direction, answer.Envelope.Kind)
	}
	to, err := store.ChangeConversation(ctx, st, &answer)
	if err != nil {
		t.Fatalf("find the conversation of output %s: %v", answer.Envelope.ID, err)
	}
	_, err = st.Append(ctx, store.AppendRequest{SessionID: answer.SessionID, Direction: store.Outbound, Envelope: envelope.Envelope{
		ID: "agent:delete-" + answer.Envelope.ID, Source: "agent", Kind: envelope.KindDelete, Conversation: to,
		Actor: envelope.Actor{ID: "agent:test", Type: envelope.Agent},
		Refs:  envelope.Refs{envelope.RefDeletes: answer.Envelope.ID}, TS: time.Now().UTC(),
	}})
	if err != nil {
		t.Fatalf("append the deletion of %s: %v", answer.Envelope.ID, err)
	}
	Settled(t, st, conv)
	if dead, err := st.ListDeliveries(ctx, store.Dead, "", 10); err != nil || len(dead) != 0 {
		t.Errorf("dead deliveries %v (%v), want none", dead, err)
	}
}

// Settled waits until the session bound to conv has an answer that is not
// partial and the outbox has nothing left to deliver, and returns the
// session's log. The deadline only guards against a hang.
func Settled(t testing.TB, st store.Store, conv envelope.Conversation) []store.Record {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the answer in %s did not settle", conv.Key())
		}
		b, err := st.BindingFor(ctx, conv)
		if err != nil {
			continue
		}
		recs, err := st.Read(ctx, b.SessionID, 0, 1000)
		if err != nil || len(recs) == 0 {
			continue
		}
		last := recs[len(recs)-1]
		pending, err := st.ListDeliveries(ctx, store.Pending, "", 1)
		if err == nil && len(pending) == 0 && last.Direction == store.Outbound && !last.Envelope.Partial() {
			return recs
		}
	}
}

// DeliveryOf returns the delivered delivery of output rec.
func DeliveryOf(t testing.TB, st store.Store, rec store.Record) store.Delivery {
	t.Helper()
	ds, err := st.ListDeliveries(context.Background(), store.Delivered, "", 1000)
	if err != nil {
		t.Fatalf("list deliveries: %v", err)
	}
	for _, d := range ds {
		if d.SessionID == rec.SessionID && d.Seq == rec.Seq {
			return d
		}
	}
	t.Fatalf("no delivered delivery of output %d among %d", rec.Seq, len(ds))
	return store.Delivery{}
}

// AsChange turns d, the delivery of an output message, into the delivery
// of a change of the channel's message target: an edit of it to d's text,
// or its deletion when d's text is empty, as the router hands a sink an
// edit or deletion of output "agent:out-first".
func AsChange(d adapters.Delivery, target string) adapters.Delivery {
	d.Target = target
	d.Envelope.Kind = envelope.KindEdit
	d.Envelope.Refs = envelope.Refs{envelope.RefEdits: "agent:out-first"}
	if d.Envelope.Text == "" {
		d.Envelope.Kind = envelope.KindDelete
		d.Envelope.Refs = envelope.Refs{envelope.RefDeletes: "agent:out-first"}
	}
	return d
}

// AsPartial marks d as the start of a stream (envelope.RefPartial).
func AsPartial(d adapters.Delivery) adapters.Delivery {
	d.Envelope.Refs = envelope.Refs{envelope.RefPartial: "true"}
	return d
}

// Paragraphs returns n plain paragraphs of about 600 characters each (the
// same in Markdown, mrkdwn and wiki markup), each naming tag and its
// number: a reply long enough to be split into several messages.
func Paragraphs(tag string, n int) string {
	ps := make([]string, 0, n)
	for i := range n {
		ps = append(ps, fmt.Sprintf("%s %d: %s", tag, i, strings.TrimSpace(strings.Repeat("lorem ipsum dolor ", 33))))
	}
	return strings.Join(ps, "\n\n")
}
