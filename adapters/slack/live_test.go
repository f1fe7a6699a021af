package slack

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"

	"github.com/switchboardhq/switchboard/adapters/adaptertest"
)

// streamAgent writes an exec agent (a /bin/sh script speaking the stream
// protocol, router/runtime/stream.go) that streams chunks appends, pause
// apart, and returns it with the reply's final text.
func streamAgent(t testing.TB, chunks int, pause time.Duration) (path, final string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("Answer:")
	for i := 1; i < chunks; i++ {
		fmt.Fprintf(&b, " part %d", i)
	}
	b.WriteString(" **done**")
	script := fmt.Sprintf(`#!/bin/sh
cat > /dev/null
echo '@switchboard {"append": "Answer:"}'
i=1
while [ $i -lt %d ]; do
	sleep %s
	echo "@switchboard {\"append\": \" part $i\"}"
	i=$((i+1))
done
sleep %[2]s
echo '@switchboard {"append": " **done**"}'
echo '@switchboard {"end": true}'
`, chunks, strconvSeconds(pause))
	path = filepath.Join(t.TempDir(), "stream.sh")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, b.String()
}

// strconvSeconds formats d for sleep(1).
func strconvSeconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// TestLiveReplyRoundTrip drives a streamed reply through the real router
// and store to the fake Slack: a message in a thread, from a person the
// adapter knows (the stream's recipient), starts an exec agent that streams
// 50 chunks over 5 s. The thread gets one message that changes a bounded
// number of times and ends with the agent's final text, and the session's
// log holds the partial message and every update, in order.
//
// The gateway has no webhook receiver here (the harness wires no webhook
// subscriptions), so the webhook side of the log is not checked.
func TestLiveReplyRoundTrip(t *testing.T) {
	const (
		chunks = 50
		pause  = 100 * time.Millisecond
		thread = "1700000000.000100"
	)
	agent, final := streamAgent(t, chunks, pause)
	// The bound on changes of the message: the router changes one message
	// at most once per EditInterval (1.2 s) and always sends the final
	// text, so a stream of ~5 s gives at most ceil(5/1.2) paced updates
	// plus the final one, plus one for an interval split across the start
	// and end of the stream: ceil(5/1.2)+2 = 7.
	streamTime := time.Duration(chunks) * pause
	bound := int(math.Ceil(streamTime.Seconds()/EditInterval.Seconds())) + 2

	for _, tc := range []struct {
		name      string
		streaming bool
		created   string   // the method that creates the message
		changes   []string // the methods that change it
		want      string   // the message's final text in Slack
	}{
		// Slack renders markdown_text itself: the streamed message holds
		// the Markdown as the agent wrote it.
		{"stream", true, "chat.startStream", []string{"chat.appendStream", "chat.stopStream", "chat.update"}, final},
		// A post and chat.update send mrkdwn: what a plain post of the
		// final text sends.
		{"update", false, "chat.postMessage", []string{"chat.update"}, split(toMrkdwn(final), DefaultMaxChars)[0]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeSlack(t)
			fake.setUsers(map[string]string{"U0ADA": "ada"})
			gw := newGateway(t, fake, fmt.Sprintf(`
routes:
  - name: slack
    match: {source: slack}
    runtime: exec
    exec: {command: [%q]}
`, agent), nil, func(c *Config) { c.Streaming = &tc.streaming })
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); _ = gw.a.Run(ctx) }()
			defer func() { cancel(); <-done }()

			mention := callback("Ev1", `{"type":"app_mention","user":"U0ADA","text":"<@U0BOTUSER> explain the build","ts":"`+thread+`","channel":"C0CHAN","event_ts":"`+thread+`"}`)
			if w := post(gw.a, mention); w.Code != http.StatusOK {
				t.Fatalf("mention: %d %s", w.Code, w.Body)
			}
			adaptertest.Eventually(t, "the final text in the thread", func() bool {
				texts := fake.thread("C0CHAN", thread)
				return len(texts) > 0 && texts[len(texts)-1] == tc.want
			})
			adaptertest.Eventually(t, "the outbox to settle", func() bool {
				pending, err := gw.st.ListDeliveries(context.Background(), store.Pending, "", 10)
				return err == nil && len(pending) == 0
			})

			if texts := fake.thread("C0CHAN", thread); len(texts) != 1 {
				t.Fatalf("the thread holds %d messages of the bot, want 1: %q", len(texts), texts)
			}
			created := fake.callCount("chat.postMessage") + fake.callCount("chat.startStream")
			if created != 1 || fake.callCount(tc.created) != 1 {
				t.Errorf("%d messages created (%d with %s), want exactly one with %s", created, fake.callCount(tc.created), tc.created, tc.created)
			}
			changes := fake.changeCalls(tc.changes...)
			if len(changes) == 0 || len(changes) > bound {
				t.Errorf("%d changes of the message, want 1 to %d: %q", len(changes), bound, changes)
			}
			if tc.streaming {
				if starts := fake.changeCalls("chat.startStream"); len(starts) != 1 || !strings.Contains(starts[0], "recipient_user_id=U0ADA") {
					t.Errorf("chat.startStream calls %q, want one answering U0ADA", starts)
				}
				if last := changes[len(changes)-1]; !strings.HasPrefix(last, "chat.stopStream") {
					t.Errorf("the last change is %q, want chat.stopStream", last)
				}
				if n := fake.callCount("chat.update"); n != 0 {
					t.Errorf("%d chat.update calls on a stream that only grew, want 0", n)
				}
			}
			t.Logf("%s: 1 message, %d changes (bound %d)", tc.name, len(changes), bound)

			// The log: the mention, the partial message, its edits in
			// order, each extending the one before, the last final (the
			// runtime ends a stream with its whole text once more, not
			// partial).
			sessions, err := gw.st.ListSessions(context.Background(), "", 10)
			if err != nil || len(sessions) != 1 {
				t.Fatalf("sessions %v (%v), want one", sessions, err)
			}
			recs, err := gw.st.Read(context.Background(), sessions[0].ID, 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			var out []envelope.Envelope
			for _, r := range recs {
				if r.Direction == store.Outbound {
					out = append(out, r.Envelope)
				}
			}
			if len(out) < 2 {
				t.Fatalf("the log holds %d outputs, want a partial message and its edits", len(out))
			}
			first := out[0]
			if first.Kind != envelope.KindMessage || !first.Partial() {
				t.Fatalf("first output: kind %s partial %v, want a partial message", first.Kind, first.Partial())
			}
			prev := first.Text
			for i, e := range out[1:] {
				if e.Kind != envelope.KindEdit || e.Refs[envelope.RefEdits] != first.ID {
					t.Fatalf("output %d: kind %s edits %q, want an edit of %s", i+1, e.Kind, e.Refs[envelope.RefEdits], first.ID)
				}
				// Each update grows the text; the final one may only settle it.
				if !strings.HasPrefix(e.Text, prev) || (e.Text == prev && e.Partial()) {
					t.Fatalf("output %d: %q does not extend %q", i+1, e.Text, prev)
				}
				if last := i == len(out)-2; e.Partial() == last {
					t.Fatalf("output %d (of %d): partial %v", i+1, len(out)-1, e.Partial())
				}
				prev = e.Text
			}
			if prev != final {
				t.Errorf("the log's last text is %q, want %q", prev, final)
			}
			t.Logf("%s: the log holds the partial message and %d edits", tc.name, len(out)-1)
		})
	}
}
