package router_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

const inboxRoutes = `
routes:
  - name: fake
    match: {source: fake}
  - name: fake2
    match: {source: fake2, addressed: false}
`

var addressed = adapters.Facts{Addressed: true}

func TestConversationsBindToSessionsAndSurviveRestart(t *testing.T) {
	h := newHarness(t, inboxRoutes, nil)
	a1 := h.ingest(msg("fake", "thread-A", "first", addressed))
	a2 := h.ingest(msg("fake", "thread-A", "a reply needs no mention", adapters.Facts{}))
	b1 := h.ingest(msg("fake", "thread-B", "another thread", addressed))
	if a1.SessionID == "" || a1.SessionID != a2.SessionID {
		t.Fatalf("one thread went to sessions %q and %q", a1.SessionID, a2.SessionID)
	}
	if b1.SessionID == a1.SessionID {
		t.Fatal("two threads share a session under by: conversation")
	}
	if a2.Seq != 2 {
		t.Fatalf("reply stored as seq %d, want 2", a2.Seq)
	}
	sess, err := h.st.Session(context.Background(), a1.SessionID)
	if err != nil || sess.Metadata["route"] != "fake" || sess.State != store.Running {
		t.Fatalf("session %+v, %v: want route fake, running", sess, err)
	}

	h.restart()
	a3 := h.ingest(msg("fake", "thread-A", "after a restart", adapters.Facts{}))
	if a3.SessionID != a1.SessionID || a3.Seq != 3 {
		t.Fatalf("after restart: session %q seq %d, want %q seq 3", a3.SessionID, a3.Seq, a1.SessionID)
	}
	bs, err := h.st.SessionBindings(context.Background(), a1.SessionID)
	if err != nil || len(bs) != 1 || bs[0].Conversation != (envelope.Conversation{Source: "fake", Ref: "thread-A"}) {
		t.Fatalf("bindings %+v, %v", bs, err)
	}
}

func TestUnmatchedAndUnaddressedMessagesAreDropped(t *testing.T) {
	h := newHarness(t, inboxRoutes, nil)
	if out := h.ingest(msg("nobody", "x", "hello", addressed)); out.Dropped == "" || out.SessionID != "" {
		t.Fatalf("unrouted message: %+v, want dropped", out)
	}
	if out := h.ingest(msg("fake", "x", "not for the bot", adapters.Facts{})); !strings.Contains(out.Dropped, "not addressed") {
		t.Fatalf("unaddressed new conversation: %+v, want dropped as not addressed", out)
	}
	if out := h.ingest(msg("fake", "x", "a bot", adapters.Facts{Addressed: true, FromBot: true})); !strings.Contains(out.Dropped, "bot") {
		t.Fatalf("bot message: %+v, want dropped", out)
	}
	// A duplicate delivery of one event lands once.
	in := msg("fake", "y", "once", addressed)
	first, second := h.ingest(in), h.ingest(in)
	if first.Duplicate || !second.Duplicate || first.Seq != second.Seq {
		t.Fatalf("redelivery: %+v then %+v", first, second)
	}
	// Dropped or not, each message counts as the channel's last one in.
	last := h.r.LastInbound()
	if len(last) != 2 || last["fake"].IsZero() || last["nobody"].IsZero() || last["fake"].Before(last["nobody"]) {
		t.Errorf("LastInbound = %v, want fake and nobody, fake the later", last)
	}
}

func TestFixedAndRefKeyedSessions(t *testing.T) {
	h := newHarness(t, `
routes:
  - name: ops
    match: {source: fake2}
    session: {by: fixed, id: ses_ops}
  - name: by-pr
    match: {source: fake}
    session: {by: ref, ref: pr}
`, nil)
	o1 := h.ingest(msg("fake2", "room-1", "one", addressed))
	o2 := h.ingest(msg("fake2", "room-2", "two", addressed))
	if o1.SessionID != "ses_ops" || o2.SessionID != "ses_ops" {
		t.Fatalf("fixed route went to %q and %q, want ses_ops", o1.SessionID, o2.SessionID)
	}
	pr := func(ref, repo, n string) adapters.Inbound {
		in := msg("fake", ref, "about the PR", addressed)
		in.Envelope.Refs = envelope.Refs{"repo": repo, "pr": n}
		return in
	}
	p1 := h.ingest(pr("slack-thread", "acme/widgets", "42"))
	p2 := h.ingest(pr("github-pr-42", "acme/widgets", "42"))
	p3 := h.ingest(pr("other", "acme/gadgets", "42"))
	if p1.SessionID != p2.SessionID {
		t.Fatalf("two conversations about one PR went to %q and %q", p1.SessionID, p2.SessionID)
	}
	if p3.SessionID == p1.SessionID {
		t.Fatal("PR 42 of another repository shares the session")
	}
	// Without the ref, a message gets a session of its own conversation.
	if p4 := h.ingest(msg("fake", "plain", "no refs", addressed)); p4.SessionID == "" || p4.SessionID == p1.SessionID {
		t.Fatalf("message without the ref: %+v", p4)
	}
}

func TestOutputsRouteExplicitDefaultAndBroadcast(t *testing.T) {
	h := newHarness(t, inboxRoutes, nil)
	a := h.ingest(msg("fake", "thread-A", "hi", addressed))
	sid := a.SessionID
	// Attach a second conversation by hand, in another channel.
	if _, _, err := h.st.Bind(context.Background(), store.Binding{SessionID: sid, Conversation: envelope.Conversation{Source: "fake2", Ref: "room-9"}}, nil); err != nil {
		t.Fatal(err)
	}
	h.output(sid, "1", "to the latest conversation", envelope.Conversation{})
	h.output(sid, "2", "to room 9", envelope.Conversation{Source: "fake2", Ref: "room-9"})
	h.output(sid, "3", "to everyone", envelope.Broadcast)
	h.output(sid, "4", "to the API client: no sink", envelope.Conversation{Source: "client", Ref: "x"})
	// Outputs naming conversations that are not the session's reach nobody,
	// however they got into the log.
	if _, _, err := h.st.Bind(context.Background(), store.Binding{SessionID: "ses_other", Conversation: envelope.Conversation{Source: "fake", Ref: "thread-B"}}, nil); err != nil {
		t.Fatal(err)
	}
	h.output(sid, "5", "into another session's thread", envelope.Conversation{Source: "fake", Ref: "thread-B"})
	h.output(sid, "6", "into a thread of no session", envelope.Conversation{Source: "fake2", Ref: "general"})
	h.output(sid, "7", "to everyone, last", envelope.Broadcast)

	waitFor(t, "deliveries", func() bool { return len(h.sinks["fake"].delivered()) == 3 && len(h.sinks["fake2"].delivered()) == 3 })
	if got := h.sinks["fake"].texts(); !slices.Equal(got, []string{"to the latest conversation", "to everyone", "to everyone, last"}) {
		t.Errorf("fake got %q", got)
	}
	if got := h.sinks["fake2"].texts(); !slices.Equal(got, []string{"to room 9", "to everyone", "to everyone, last"}) {
		t.Errorf("fake2 got %q", got)
	}
	for _, d := range h.sinks["fake"].delivered() {
		if d.To != (envelope.Conversation{Source: "fake", Ref: "thread-A"}) || d.SessionID != sid || d.ID == "" {
			t.Errorf("delivery %+v", d)
		}
	}
	waitFor(t, "six deliveries recorded as delivered", func() bool {
		ds, err := h.st.ListDeliveries(context.Background(), store.Delivered, "", 100)
		return err == nil && len(ds) == 6
	})
}

func TestOutboxRetriesBacksOffAndDeadLetters(t *testing.T) {
	h := newHarness(t, inboxRoutes+`
router:
  outbox: {max_attempts: 3, backoff: 10ms, max_backoff: 20ms}
`, nil)
	fake := h.sinks["fake"]
	fake.mu.Lock()
	fake.fail = func(d adapters.Delivery, n int) error {
		switch d.Envelope.Text {
		case "flaky":
			if d.Attempt < 3 {
				return &adapters.BackOff{Wait: 10 * time.Millisecond, Err: errors.New("429")}
			}
		case "gone":
			return fmt.Errorf("%w: issue deleted", adapters.ErrPermanent)
		case "broken":
			return errors.New("502 bad gateway")
		}
		return nil
	}
	fake.mu.Unlock()
	a := h.ingest(msg("fake", "t", "hi", addressed))
	h.output(a.SessionID, "1", "flaky", envelope.Conversation{})
	h.output(a.SessionID, "2", "gone", envelope.Conversation{})
	h.output(a.SessionID, "3", "broken", envelope.Conversation{})
	h.output(a.SessionID, "4", "after", envelope.Conversation{})

	ctx := context.Background()
	waitFor(t, "two dead deliveries", func() bool {
		ds, _ := h.st.ListDeliveries(ctx, store.Dead, "", 10)
		return len(ds) == 2
	})
	waitFor(t, "the last delivery", func() bool { return len(fake.delivered()) == 2 })
	if got := fake.texts(); !slices.Equal(got, []string{"flaky", "after"}) {
		t.Fatalf("delivered %q, want flaky (after retries) then after", got)
	}
	if d := fake.delivered()[0]; d.Attempt != 3 {
		t.Errorf("flaky delivered on attempt %d, want 3", d.Attempt)
	}
	dead, _ := h.st.ListDeliveries(ctx, store.Dead, "", 10)
	for _, d := range dead {
		switch {
		case strings.Contains(d.LastError, "issue deleted") && d.Attempts == 1:
		case strings.Contains(d.LastError, "502") && d.Attempts == 3:
		default:
			t.Errorf("dead delivery %+v", d)
		}
	}
	// Every attempt of a delivery that failed once is recorded, the one
	// that delivered it included; one delivered at once has none.
	all, _ := h.st.ListDeliveries(ctx, "", "", 10)
	for _, d := range all {
		var want []string
		attempts, err := h.st.DeliveryAttempts(ctx, d.ID, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range attempts {
			got = append(got, fmt.Sprintf("%d:%s", a.Attempt, a.Error))
		}
		switch {
		case d.LastError == "" && d.Attempts == 1: // "after"
		case d.Attempts == 3 && d.Status == store.Delivered: // "flaky"
			want = []string{"3:", "2:back off 10ms: 429", "1:back off 10ms: 429"}
		case d.Attempts == 3: // "broken"
			want = []string{"3:502 bad gateway", "2:502 bad gateway", "1:502 bad gateway"}
		default: // "gone"
			want = []string{"1:permanent failure: issue deleted"}
		}
		if !slices.Equal(got, want) {
			t.Errorf("attempts of delivery %s (%d attempts, %s, %q) = %q, want %q", d.ID, d.Attempts, d.Status, d.LastError, got, want)
		}
	}
	// A dead delivery retried by hand goes out once the channel works.
	fake.mu.Lock()
	fake.fail = nil
	fake.mu.Unlock()
	if _, err := h.st.RetryDelivery(ctx, dead[0].ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the retried delivery", func() bool { return len(fake.delivered()) == 3 })
}

func TestDeliveriesKeepOrderWithinAConversation(t *testing.T) {
	h := newHarness(t, `
routes:
  - name: fake
    match: {source: fake}
    budget: {outputs_per_minute: 1000}
`, nil)
	fake := h.sinks["fake"]
	fake.mu.Lock()
	// The first attempt at every third delivery of a conversation fails.
	// (A rule on the sink's count of all attempts, which the two
	// conversations share, could fail one delivery at every attempt when
	// their turns fell in step, until it was dead and never arrived.)
	fake.fail = func(d adapters.Delivery, _ int) error {
		if i, err := strconv.Atoi(d.Envelope.Text); err == nil && i%3 == 0 && d.Attempt == 1 {
			return &adapters.BackOff{Wait: time.Millisecond, Err: errors.New("busy")}
		}
		return nil
	}
	fake.mu.Unlock()
	a := h.ingest(msg("fake", "t1", "hi", addressed))
	b := h.ingest(msg("fake", "t2", "hi", addressed))
	const n = 40
	var wg sync.WaitGroup
	for _, sid := range []string{a.SessionID, b.SessionID} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				h.output(sid, fmt.Sprint(i), fmt.Sprint(i), envelope.Conversation{})
			}
		}()
	}
	wg.Wait()
	waitFor(t, "every delivery", func() bool { return len(fake.delivered()) == 2*n })
	fake.mu.Lock()
	attempts := fake.n
	fake.mu.Unlock()
	if failed := 2 * (n + 2) / 3; attempts < 2*n+failed {
		t.Errorf("%d attempts for %d deliveries, want at least %d: the first of every third failed", attempts, 2*n, 2*n+failed)
	}
	per := map[string][]string{}
	for _, d := range fake.delivered() {
		per[d.To.Ref] = append(per[d.To.Ref], d.Envelope.Text)
	}
	for ref, texts := range per {
		for i, tx := range texts {
			if tx != fmt.Sprint(i) {
				t.Fatalf("conversation %s got %q, out of order at %d", ref, texts, i)
			}
		}
	}
}

func TestOwnMessagesNeverReachTheSession(t *testing.T) {
	h := newHarness(t, inboxRoutes, nil)
	a := h.ingest(msg("fake", "t", "hi", addressed))
	h.output(a.SessionID, "1", "the gateway says", envelope.Conversation{})
	waitFor(t, "the delivery", func() bool { return len(h.sinks["fake"].delivered()) == 1 })
	// The channel echoes our post back with the id it gave it.
	echo := msg("fake", "t", "the gateway says", adapters.Facts{ChannelID: "fake-posted-1"})
	waitFor(t, "the receipt to be recorded", func() bool {
		ok, _ := h.st.Posted(context.Background(), "fake", "fake-posted-1")
		return ok
	})
	if out := h.ingest(echo); out.Dropped != "own message" {
		t.Fatalf("echo: %+v, want dropped as own message", out)
	}
}

func TestLoopBreakerPausesARunawayConversation(t *testing.T) {
	h := newHarness(t, `
routes:
  - name: fake
    match: {source: fake, bots: true}
    budget: {bot_messages_per_minute: 3, cooldown: 1h}
`, nil)
	bot := adapters.Facts{Addressed: true, FromBot: true}
	var sid string
	for i := range 3 {
		out := h.ingest(msg("fake", "t", fmt.Sprint("bot says ", i), bot))
		if out.Dropped != "" {
			t.Fatalf("message %d within budget dropped: %s", i, out.Dropped)
		}
		sid = out.SessionID
	}
	out := h.ingest(msg("fake", "t", "one too many", bot))
	if !strings.Contains(out.Dropped, "loop breaker") {
		t.Fatalf("over budget: %+v, want dropped by the loop breaker", out)
	}
	// The pause is impossible to miss: a system envelope in the log, and
	// even a human is not heard until it is resumed.
	recs := h.records(sid)
	last := recs[len(recs)-1].Envelope
	if last.Kind != envelope.KindSystem || !strings.Contains(last.Text, "paused") || !strings.Contains(last.Text, "/resume") {
		t.Fatalf("last record %+v, want a system envelope about the pause", last)
	}
	if out := h.ingest(msg("fake", "t", "human", addressed)); !strings.Contains(out.Dropped, "paused") {
		t.Fatalf("message to a paused binding: %+v", out)
	}
	bs, _ := h.st.SessionBindings(context.Background(), sid)
	if _, err := h.st.PauseBinding(context.Background(), bs[0].ID, time.Time{}, ""); err != nil {
		t.Fatal(err)
	}
	if out := h.ingest(msg("fake", "t", "human again", addressed)); out.Dropped != "" {
		t.Fatalf("after resume: %+v", out)
	}
}

func TestOutputBudgetPausesDeliveries(t *testing.T) {
	// In a bubble: the router's timers run on fake time, and
	// synctest.Wait says when it has done all it would do.
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, `
routes:
  - name: fake
    match: {source: fake}
    budget: {outputs_per_minute: 2, cooldown: 1h}
`, nil)
		a := h.ingest(msg("fake", "t", "hi", addressed))
		for i := range 5 {
			h.output(a.SessionID, fmt.Sprint(i), fmt.Sprint("out ", i), envelope.Conversation{})
		}
		waitFor(t, "the pause", func() bool {
			bs, _ := h.st.SessionBindings(context.Background(), a.SessionID)
			return len(bs) == 1 && bs[0].Paused(time.Now())
		})
		// Give the workers every chance to deliver what they should not:
		// a restart, then a minute (of fake time) of polls and retries, in
		// which another conversation's output is delivered.
		h.restart()
		b := h.ingest(msg("fake", "t2", "hi", addressed))
		h.output(b.SessionID, "live", "live", envelope.Conversation{})
		time.Sleep(time.Minute)
		synctest.Wait()
		var toA, toB int
		for _, d := range h.sinks["fake"].delivered() {
			switch d.SessionID {
			case a.SessionID:
				toA++
			case b.SessionID:
				toB++
			}
		}
		if toB != 1 {
			t.Fatalf("%d outputs delivered to the other conversation, want 1", toB)
		}
		if toA > 2 {
			t.Fatalf("%d outputs delivered past a budget of 2", toA)
		}
	})
}

func TestCrashedWorkerDeliveryIsTakenOver(t *testing.T) {
	h := newHarness(t, inboxRoutes, nil)
	fake := h.sinks["fake"]
	block := make(chan struct{})
	fake.mu.Lock()
	fake.block = block
	fake.mu.Unlock()
	a := h.ingest(msg("fake", "t", "hi", addressed))
	h.output(a.SessionID, "1", "in flight at the crash", envelope.Conversation{})
	waitFor(t, "the attempt", func() bool { fake.mu.Lock(); defer fake.mu.Unlock(); return fake.n == 1 })
	// The process dies mid-delivery: its lease is never settled, and the
	// next process takes the delivery over once the lease has expired.
	h.crash()
	fake.mu.Lock()
	fake.block = nil
	fake.mu.Unlock()
	close(block)
	h.open()
	waitFor(t, "the delivery after the lease expired", func() bool { return len(fake.delivered()) == 1 })
	if got := fake.delivered()[0]; got.Envelope.Text != "in flight at the crash" || got.Attempt != 2 {
		t.Fatalf("delivered %+v", got)
	}
}

func TestExecRuntimeAnswersInTheConversation(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "agent.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nread -r line\necho \"agent saw session $SWITCHBOARD_SESSION_ID\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	failing := filepath.Join(dir, "fail.sh")
	if err := os.WriteFile(failing, []byte("#!/bin/sh\necho boom >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	yml := fmt.Sprintf(`
routes:
  - name: fake
    match: {source: fake}
    runtime: exec
    exec: {command: [%q], timeout: 10s}
  - name: fake2
    match: {source: fake2}
    runtime: exec
    exec: {command: [%q], timeout: 10s}
`, script, failing)
	h := newHarness(t, yml, nil)

	a := h.ingest(msg("fake", "t", "please help", addressed))
	waitFor(t, "the answer", func() bool { return len(h.sinks["fake"].delivered()) == 1 })
	if got := h.sinks["fake"].texts()[0]; got != "agent saw session "+a.SessionID {
		t.Fatalf("answer %q", got)
	}
	waitFor(t, "the session to go idle", func() bool {
		s, _ := h.st.Session(context.Background(), a.SessionID)
		return s.State == store.Idle
	})
	recs := h.records(a.SessionID)
	if len(recs) != 2 || recs[1].Direction != store.Outbound || recs[1].Envelope.Actor.Type != envelope.Agent {
		t.Fatalf("log %+v", recs)
	}

	// A failing agent leaves a system envelope saying so, delivered too.
	b := h.ingest(msg("fake2", "room", "please fail", addressed))
	waitFor(t, "the failure notice", func() bool { return len(h.sinks["fake2"].delivered()) == 1 })
	got := h.sinks["fake2"].delivered()[0].Envelope
	if got.Kind != envelope.KindSystem || !strings.Contains(got.Text, "code 3") || !strings.Contains(got.Text, "boom") {
		t.Fatalf("failure notice %+v", got)
	}
	_ = b
}

func TestExecRuntimeKeepsPerSessionOrder(t *testing.T) {
	dir := t.TempDir()
	logf := filepath.Join(dir, "order.log")
	script := filepath.Join(dir, "agent.sh")
	// The agent appends the text it was given to a file and answers with it.
	body := "#!/bin/sh\ntext=$(sed -n 's/.*\"text\":\"\\([^\"]*\\)\".*/\\1/p')\necho \"$text\" >> " + logf + "\necho \"$text\"\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, fmt.Sprintf(`
routes:
  - name: fake
    match: {source: fake}
    runtime: exec
    exec: {command: [%q]}
`, script), nil)
	first := h.ingest(msg("fake", "t", "m0", addressed))
	const n = 12
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); h.ingest(msg("fake", "t", fmt.Sprint("m", i), adapters.Facts{})) }()
	}
	wg.Wait()
	waitFor(t, "every answer", func() bool { return len(h.sinks["fake"].delivered()) == n })
	// The agent saw the messages in log order, one at a time.
	var want []string
	for _, r := range h.records(first.SessionID) {
		if r.Direction == store.Inbound {
			want = append(want, r.Envelope.Text)
		}
	}
	data, err := os.ReadFile(logf)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(data)); !slices.Equal(got, want) {
		t.Fatalf("agent saw %q, log order is %q", got, want)
	}
	if got := h.sinks["fake"].texts(); !slices.Equal(got, want) {
		t.Fatalf("answers delivered as %q, want %q", got, want)
	}
}

func TestASlowConversationDoesNotHoldUpOthers(t *testing.T) {
	h := newHarness(t, inboxRoutes, nil)
	fake := h.sinks["fake"]
	release := make(chan struct{})
	fake.mu.Lock()
	fake.hook = func(ctx context.Context, d adapters.Delivery) error {
		if d.To.Ref == "slow" {
			<-release // a sink call that hangs, deaf to its context
		}
		return nil
	}
	fake.mu.Unlock()
	defer close(release)
	slow := h.ingest(msg("fake", "slow", "hi", addressed))
	quick := h.ingest(msg("fake", "quick", "hi", addressed))
	h.output(slow.SessionID, "1", "stuck", envelope.Conversation{})
	waitFor(t, "the slow attempt to start", func() bool { fake.mu.Lock(); defer fake.mu.Unlock(); return fake.n >= 1 })
	for i := range 3 {
		h.output(quick.SessionID, fmt.Sprint(i), fmt.Sprint("quick ", i), envelope.Conversation{})
	}
	waitFor(t, "the other conversation's deliveries", func() bool { return len(fake.delivered()) == 3 })
	if got := fake.texts(); !slices.Equal(got, []string{"quick 0", "quick 1", "quick 2"}) {
		t.Fatalf("delivered %q while one conversation was stuck", got)
	}
}
