package router_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/testenv"
	"github.com/switchboardhq/switchboard/router/webhooks"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/postgres"
	"github.com/switchboardhq/switchboard/store/sqlite"
)

// describe renders a delivered event as one line: "created", "message
// <text>", "state <previous>→<state> after <seq>", "failed".
func describe(t *testing.T, ev envelope.Event) string {
	t.Helper()
	switch ev.Type {
	case envelope.EventMessage:
		var env envelope.Envelope
		if err := json.Unmarshal(ev.Body, &env); err != nil {
			t.Fatal(err)
		}
		return "message " + env.Text
	case envelope.EventSessionNew:
		var b envelope.SessionCreated
		if err := json.Unmarshal(ev.Body, &b); err != nil {
			t.Fatal(err)
		}
		return "created " + b.State
	case envelope.EventSessionState:
		var b envelope.StateChanged
		if err := json.Unmarshal(ev.Body, &b); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("state %s→%s after %d", b.PreviousState, b.State, b.AfterSeq)
	}
	return string(ev.Type)
}

// sessionLines are the first deliveries of each event of session, in the
// order received, described.
func sessionLines(t *testing.T, rc *receiver, session string) []string {
	t.Helper()
	var out []string
	seen := map[string]bool{}
	for _, d := range rc.delivered() {
		if d.event.SessionID != session || seen[d.event.ID] {
			continue
		}
		seen[d.event.ID] = true
		out = append(out, describe(t, d.event))
	}
	return out
}

// turn appends an inbound message that wakes session and an outbound answer
// that rests it, as a runtime's turn does.
func (h *whHarness) turn(session, text string) {
	h.t.Helper()
	ctx := context.Background()
	for _, req := range []store.AppendRequest{
		{SessionID: session, Direction: store.Inbound, Wake: true, Envelope: envelope.Envelope{
			ID: "client:" + text, Source: "client", Kind: envelope.KindMessage,
			Actor: envelope.Actor{ID: "client:ada", Type: envelope.Human}, Text: text, TS: time.Now().UTC()}},
		{SessionID: session, Direction: store.Outbound, Rest: true, Envelope: envelope.Envelope{
			ID: "agent:re-" + text, Source: "agent", Kind: envelope.KindMessage,
			Actor: envelope.Actor{ID: "agent:bot", Type: envelope.Agent}, Text: "re " + text, TS: time.Now().UTC()}},
	} {
		if _, err := h.st.Append(ctx, req); err != nil {
			h.t.Fatal(err)
		}
	}
}

func TestWebhookSessionEvents(t *testing.T) {
	h := newWHHarness(t, whConfig)
	rc := newReceiver(t, nil)
	states := newReceiver(t, nil)
	h.addWebhook("all", rc.srv.URL)
	h.addWebhook("states", states.srv.URL, "session.state_changed")
	ctx := context.Background()
	if _, _, err := h.st.CreateSession(ctx, "ses-1", map[string]string{"team": "infra"}); err != nil {
		t.Fatal(err)
	}
	h.turn("ses-1", "m1")
	// A state set with no record: the journal follower alone carries it.
	if _, err := h.st.SetState(ctx, "ses-1", store.Running); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"created idle",
		"message m1",
		"state idle→running after 1",
		"message re m1",
		"state running→idle after 2",
		"state idle→running after 2",
	}
	waitFor(t, "six events", func() bool { return len(rc.delivered()) >= len(want) })
	checkOrder(t, "ses-1", sessionLines(t, rc, "ses-1"), want)
	waitFor(t, "three state changes", func() bool { return len(states.delivered()) >= 3 })
	checkOrder(t, "state changes", sessionLines(t, states, "ses-1"), []string{
		"state idle→running after 1", "state running→idle after 2", "state idle→running after 2",
	})

	first := rc.delivered()[0]
	if got := specVerify(t, first.header, first.body, whSecret1); len(got) != 1 {
		t.Error("a session event's signature does not verify by the specification")
	}
	var created envelope.SessionCreated
	if err := json.Unmarshal(first.event.Body, &created); err != nil || created.ID != "ses-1" ||
		created.Metadata["team"] != "infra" || created.CreatedAt.IsZero() {
		t.Errorf("session.created body = %s (%v)", first.event.Body, err)
	}
	if first.event.Direction != "" || first.event.Seq != 0 || first.event.TS.IsZero() ||
		first.header.Get("webhook-id") != first.event.ID || !strings.HasPrefix(first.event.ID, "evt_") {
		t.Errorf("session.created event = %+v (webhook-id %s)", first.event, first.header.Get("webhook-id"))
	}
	evs, err := h.st.SessionEventsOf(ctx, "ses-1", 0, 0)
	if err != nil || len(evs) != 1 || first.event.ID != webhooks.SessionEventID("ses-1", evs[0].ID) {
		t.Errorf("session.created id %s, want SessionEventID of the journal's first event (%v, %v)", first.event.ID, evs, err)
	}
	if msg := rc.delivered()[1].event; msg.Seq != 1 || msg.ID != webhooks.EventID("ses-1", 1) {
		t.Errorf("message event = %+v, want seq 1", msg)
	}
}

// checkOrder compares delivered lines with the expected sequence.
func checkOrder(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s delivered:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// checkTurns waits until sessions ses-0… have each received their creation
// and turns turns (turn), then checks each got them in the session's
// order. It returns the number of events per session.
func checkTurns(t *testing.T, rc *receiver, sessions, turns int) int {
	t.Helper()
	per := 1 + 4*turns
	waitFor(t, "every event", func() bool {
		n := 0
		for s := range sessions {
			n += len(sessionLines(t, rc, "ses-"+strconv.Itoa(s)))
		}
		return n == sessions*per
	})
	for s := range sessions {
		id := "ses-" + strconv.Itoa(s)
		want := []string{"created idle"}
		for i := range turns {
			seq := int64(2*i + 1)
			want = append(want, "message m"+strconv.Itoa(i), fmt.Sprintf("state idle→running after %d", seq),
				"message re m"+strconv.Itoa(i), fmt.Sprintf("state running→idle after %d", seq+1))
		}
		checkOrder(t, id, sessionLines(t, rc, id), want)
	}
	return per
}

// TestWebhookSessionEventsKeepSessionOrderUnderLoad runs turns on many
// sessions at once, so that the log follower and the journal follower race,
// and checks every session's events arrive once each, in the session's
// order.
func TestWebhookSessionEventsKeepSessionOrderUnderLoad(t *testing.T) {
	h := newWHHarness(t, whConfig)
	rc := newReceiver(t, nil)
	h.addWebhook("all", rc.srv.URL)
	const sessions, turns = 8, 12
	var wg sync.WaitGroup
	for s := range sessions {
		wg.Go(func() {
			id := "ses-" + strconv.Itoa(s)
			if _, _, err := h.st.CreateSession(context.Background(), id, nil); err != nil {
				t.Error(err)
				return
			}
			for i := range turns {
				h.turn(id, "m"+strconv.Itoa(i))
			}
		})
	}
	wg.Wait()
	per := checkTurns(t, rc, sessions, turns)
	if n := len(rc.delivered()); n != sessions*per {
		t.Errorf("%d deliveries for %d events: repeats without a failure", n, sessions*per)
	}
}

func TestWebhookReplayIncludesSessionEvents(t *testing.T) {
	h := newWHHarness(t, whConfig)
	rc := newReceiver(t, nil)
	h.addWebhook("wh", rc.srv.URL)
	if _, _, err := h.st.CreateSession(context.Background(), "ses-1", nil); err != nil {
		t.Fatal(err)
	}
	h.turn("ses-1", "m1")
	waitFor(t, "the first turn", func() bool { return len(rc.delivered()) == 5 })
	since := time.Now()
	h.turn("ses-1", "m2")
	waitFor(t, "the second turn", func() bool { return len(rc.delivered()) == 9 })
	n, err := h.replay("wh", since)
	if err != nil || n != 4 {
		t.Fatalf("Replay = %d, %v; want 4", n, err)
	}
	waitFor(t, "the replay", func() bool { return len(rc.delivered()) == 13 })
	var replayed []string
	for i, d := range rc.delivered()[9:] {
		replayed = append(replayed, describe(t, d.event))
		if live := rc.delivered()[5+i]; live.event.ID != d.event.ID {
			t.Errorf("replayed event %d has id %s, the live one %s", i, d.event.ID, live.event.ID)
		}
	}
	checkOrder(t, "replay", replayed, []string{
		"message m2", "state idle→running after 3", "message re m2", "state running→idle after 4",
	})
}

// TestWebhookSessionEventsWithoutRecords: a destination registered while
// the router runs gets a session's creation and state changes though the
// session has no record, and nothing that happened before it existed.
func TestWebhookSessionEventsWithoutRecords(t *testing.T) {
	h := newWHHarness(t, whConfig)
	ctx := context.Background()
	if _, _, err := h.st.CreateSession(ctx, "before", nil); err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t, nil)
	h.addWebhook("all", rc.srv.URL)
	if _, _, err := h.st.CreateSession(ctx, "lonely", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := h.st.SetState(ctx, "lonely", store.Running); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two events", func() bool { return len(rc.delivered()) >= 2 })
	checkOrder(t, "lonely", sessionLines(t, rc, "lonely"), []string{"created idle", "state idle→running after 0"})
	// The store enqueued deliveries in the transactions of the changes:
	// none was ever made for what happened before the destination.
	ds, err := h.st.ListDeliveries(ctx, "", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.SessionID == "before" {
			t.Errorf("a session created before the destination existed got delivery %+v", d)
		}
	}
	if got := sessionLines(t, rc, "before"); len(got) != 0 {
		t.Errorf("a session created before the destination existed was sent %q", got)
	}
}

// TestWebhookLiveDeliveriesStartAtCreation: a record stored before its
// destination was created is not sent live, even when the router first
// looks at it afterwards (it was down); a replay sends it.
func TestWebhookLiveDeliveriesStartAtCreation(t *testing.T) {
	h := newWHHarness(t, whConfig)
	h.close()
	st, err := sqlite.Open(context.Background(), h.path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h.st = st
	h.send("ses-1", "while down", store.Inbound)
	rc := newReceiver(t, nil)
	h.addWebhook("wh", rc.srv.URL, "message")
	st.Close()
	h.open()
	h.send("ses-1", "after", store.Inbound)
	waitFor(t, "the live delivery", func() bool { return len(rc.delivered()) >= 1 })
	if got := strings.Join(rc.texts(), ","); got != "after" {
		t.Errorf("live deliveries %q, want only the message stored after the destination was created", got)
	}
	if n, err := h.replay("wh", time.Time{}); err != nil || n != 2 {
		t.Fatalf("Replay = %d, %v; want 2", n, err)
	}
	waitFor(t, "the replay", func() bool { return len(rc.delivered()) == 3 })
	if got := strings.Join(rc.texts(), ","); got != "after,while down,after" {
		t.Errorf("deliveries %q, want the replay of both after the live one", got)
	}
}

// TestWebhookSessionEventsSurviveCrash crashes the router (store first, as
// a killed process) while a receiver stalls, restarts it, and checks every
// session's events all arrive, in the session's order.
func TestWebhookSessionEventsSurviveCrash(t *testing.T) {
	h := newWHHarness(t, whConfig)
	var mu sync.Mutex
	stall := true
	stalled := make(chan struct{}, 1)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) int {
		mu.Lock()
		s := stall
		mu.Unlock()
		if s && n > 5 {
			select {
			case stalled <- struct{}{}:
			default:
			}
			<-r.Context().Done() // the crash cuts it off
		}
		return http.StatusOK
	})
	h.addWebhook("all", rc.srv.URL)
	const sessions, turns = 3, 4
	for s := range sessions {
		id := "ses-" + strconv.Itoa(s)
		if _, _, err := h.st.CreateSession(context.Background(), id, nil); err != nil {
			t.Fatal(err)
		}
		for i := range turns {
			h.turn(id, "m"+strconv.Itoa(i))
		}
	}
	<-stalled
	h.crash()
	mu.Lock()
	stall = false
	mu.Unlock()
	h.open()
	checkTurns(t, rc, sessions, turns)
}

// TestWebhookSessionEventsTwoReplicasPostgres runs two routers on one
// PostgreSQL database, as two replicas, with turns sent through both stores:
// both log followers and both journal followers race, and every session's
// events must still arrive once each, in the session's order.
func TestWebhookSessionEventsTwoReplicasPostgres(t *testing.T) {
	dsn := testenv.Postgres(t)
	open := func() (store.Store, error) {
		return postgres.Open(context.Background(), dsn, postgres.Options{Logger: quietLogger})
	}
	rc := newReceiver(t, nil)
	var hs []*whHarness
	for range 2 {
		h := &whHarness{t: t, cfg: whConfig, openStore: open}
		h.open()
		t.Cleanup(h.close)
		hs = append(hs, h)
	}
	hs[0].addWebhook("all", rc.srv.URL)
	const sessions, turns = 6, 8
	var wg sync.WaitGroup
	for s := range sessions {
		wg.Go(func() {
			id := "ses-" + strconv.Itoa(s)
			if _, _, err := hs[s%2].st.CreateSession(context.Background(), id, nil); err != nil {
				t.Error(err)
				return
			}
			for i := range turns {
				hs[(s+i)%2].turn(id, "m"+strconv.Itoa(i))
			}
		})
	}
	wg.Wait()
	per := checkTurns(t, rc, sessions, turns)
	if n := len(rc.delivered()); n != sessions*per {
		t.Errorf("%d deliveries for %d events: repeats without a failure or a crash", n, sessions*per)
	}
}

// TestWebhookEditsAreEvents checks that a stream's message, its edits and
// a deletion reach a webhook destination as message events carrying the
// envelope's kind, every one, in order.
func TestWebhookEditsAreEvents(t *testing.T) {
	h := newWHHarness(t, whConfig)
	rc := newReceiver(t, nil)
	h.addWebhook("all", rc.srv.URL, string(envelope.EventMessage))
	ctx := context.Background()
	if _, _, err := h.st.CreateSession(ctx, "ses-e", nil); err != nil {
		t.Fatal(err)
	}
	var want []string
	add := func(id string, kind envelope.Kind, text string, refs envelope.Refs) {
		t.Helper()
		_, err := h.st.Append(ctx, store.AppendRequest{SessionID: "ses-e", Direction: store.Outbound, Envelope: envelope.Envelope{
			ID: "agent:" + id, Source: "agent", Kind: kind, Refs: refs, Text: text,
			Actor: envelope.Actor{ID: "agent:bot", Type: envelope.Agent}, TS: time.Now().UTC()}})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("%s %q partial=%v", kind, text, refs[envelope.RefPartial] == "true"))
	}
	partial := envelope.Refs{envelope.RefPartial: "true"}
	add("s", envelope.KindMessage, "a", partial)
	for i, text := range []string{"ab", "abc", "abcd"} {
		add(fmt.Sprint("s-", i), envelope.KindEdit, text, envelope.Refs{envelope.RefEdits: "agent:s", envelope.RefPartial: "true"})
	}
	add("s-end", envelope.KindEdit, "abcde", envelope.Refs{envelope.RefEdits: "agent:s"})
	add("s-del", envelope.KindDelete, "", envelope.Refs{envelope.RefDeletes: "agent:s"})
	waitFor(t, "every event", func() bool { return len(rc.delivered()) >= len(want) })
	var got []string
	seen := map[string]bool{}
	for _, d := range rc.delivered() {
		if seen[d.event.ID] {
			continue
		}
		seen[d.event.ID] = true
		var env envelope.Envelope
		if err := json.Unmarshal(d.event.Body, &env); err != nil {
			t.Fatal(err)
		}
		if d.event.Type != envelope.EventMessage {
			t.Errorf("event type %s, want message", d.event.Type)
		}
		got = append(got, fmt.Sprintf("%s %q partial=%v", env.Kind, env.Text, env.Partial()))
	}
	checkOrder(t, "ses-e", got, want)
}
