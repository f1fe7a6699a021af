package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// runEvents runs the subtests of the session-event journal
// (store.SessionEvents), event deliveries and Cursors.Cursor.
func (s suite) runEvents(t *testing.T, cfg config) {
	t.Run("Journal", s.testJournal)
	t.Run("JournalPages", s.testJournalPages)
	t.Run("EventsOfSession", s.testEventsOf)
	t.Run("SignalOnEvent", s.testSignalOnEvent)
	t.Run("EventDeliveries", s.testEventDeliveries)
	t.Run("CursorRead", s.testCursorRead)
	t.Run("ReopenKeepsJournal", s.testJournalReopen)
	t.Run("ConcurrentChanges", func(t *testing.T) { s.testJournalConcurrent(t, cfg) })
}

// readJournal reads the journal after cursor in pages of size until it
// holds at least want events and a page comes back empty, or signalTimeout
// passes. A backend may hold back events committed a moment ago (until
// older transactions end; see ReadSessionEvents), so a reader that wants
// what it has just written waits for it; a reader that wants 0 takes what
// is readable now.
func readJournal(t *testing.T, st store.Store, after string, size, want int) ([]store.SessionEvent, string) {
	t.Helper()
	var all []store.SessionEvent
	deadline := time.Now().Add(signalTimeout)
	for {
		page, next, err := st.ReadSessionEvents(t.Context(), after, size)
		if err != nil {
			t.Fatalf("ReadSessionEvents(%q, %d): %v", after, size, err)
		}
		if len(page) > size {
			t.Fatalf("ReadSessionEvents(%q, %d) returned %d events", after, size, len(page))
		}
		if len(page) == 0 {
			if next != after {
				t.Fatalf("ReadSessionEvents(%q) with nothing new moved the cursor to %q", after, next)
			}
			if len(all) >= want || time.Now().After(deadline) {
				return all, after
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		all = append(all, page...)
		after = next
	}
}

// eventLine is an event without its id and time, for comparisons.
func eventLine(ev store.SessionEvent) string {
	return fmt.Sprintf("%s %s %s→%s after %d", ev.SessionID, ev.Type, ev.Previous, ev.State, ev.AfterSeq)
}

func eventLines(evs []store.SessionEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = eventLine(ev)
	}
	return out
}

func checkLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}

func (s suite) testJournal(t *testing.T) {
	st, _ := s.fresh(t)
	ctx := t.Context()
	start := time.Now().Add(-time.Second)
	createSession(t, st, "a")
	if _, created, err := st.CreateSession(ctx, "a", nil); err != nil || created {
		t.Fatalf("CreateSession(a) again = %v, %v", created, err)
	}
	wake := req("a", "k1", "hello")
	wake.Wake = true
	mustAppend(t, st, wake)
	mustAppend(t, st, wake) // a repeat changes nothing
	again := req("a", "k2", "more")
	again.Wake = true
	mustAppend(t, st, again) // already running
	rest := store.AppendRequest{SessionID: "a", Direction: store.Outbound, Envelope: env("out1", "answer"), Rest: true}
	mustAppend(t, st, rest)
	if changed, err := st.SetState(ctx, "a", store.Idle); err != nil || changed {
		t.Fatalf("SetState(a, idle) on an idle session = %v, %v", changed, err)
	}
	if _, err := st.SetState(ctx, "a", store.Running); err != nil {
		t.Fatalf("SetState(a, running): %v", err)
	}
	if _, _, err := st.Bind(ctx, store.Binding{SessionID: "b", Conversation: envelope.Conversation{Source: "test", Ref: "t-b"}}, nil); err != nil {
		t.Fatalf("Bind creating b: %v", err)
	}
	if _, _, err := st.Bind(ctx, store.Binding{SessionID: "a", Conversation: envelope.Conversation{Source: "test", Ref: "t-a"}}, nil); err != nil {
		t.Fatalf("Bind to a: %v", err)
	}

	evs, _ := readJournal(t, st, "", 100, 5)
	checkLines(t, "journal", eventLines(evs), []string{
		"a session.created →idle after 0",
		"a session.state_changed idle→running after 1",
		"a session.state_changed running→idle after 3",
		"a session.state_changed idle→running after 3",
		"b session.created →idle after 0",
	})
	for i, ev := range evs {
		if ev.At.Before(start) || ev.At.After(time.Now().Add(time.Second)) {
			t.Errorf("event %d: At = %v, want about now", i, ev.At)
		}
		if i > 0 && ev.SessionID == evs[i-1].SessionID && ev.ID <= evs[i-1].ID {
			t.Errorf("event %d: ID %d not after the previous event's %d", i, ev.ID, evs[i-1].ID)
		}
	}
	if _, _, err := st.ReadSessionEvents(ctx, "not a cursor", 10); err == nil {
		t.Error("ReadSessionEvents with a cursor the store never gave: no error")
	}
}

func (s suite) testJournalPages(t *testing.T) {
	st, _ := s.fresh(t)
	for i := range 5 {
		createSession(t, st, fmt.Sprintf("s%d", i))
	}
	first, cursor := readJournal(t, st, "", 2, 5)
	if len(first) != 5 {
		t.Fatalf("journal in pages of 2 holds %d events, want 5: %q", len(first), eventLines(first))
	}
	for i, ev := range first {
		if want := fmt.Sprintf("s%d", i); ev.SessionID != want {
			t.Errorf("event %d is of session %s, want %s (commit order)", i, ev.SessionID, want)
		}
	}
	// The cursor goes on from where it stopped.
	if _, err := st.SetState(t.Context(), "s3", store.Running); err != nil {
		t.Fatalf("SetState: %v", err)
	}
	more, _ := readJournal(t, st, cursor, 2, 1)
	checkLines(t, "journal after the cursor", eventLines(more), []string{"s3 session.state_changed idle→running after 0"})
	if page, next, err := st.ReadSessionEvents(t.Context(), cursor, 0); err != nil || len(page) != 0 || next != cursor {
		t.Errorf("ReadSessionEvents(limit 0) = %d events, %q, %v; want none, the same cursor", len(page), next, err)
	}
}

func (s suite) testEventsOf(t *testing.T) {
	st, _ := s.fresh(t)
	ctx := t.Context()
	createSession(t, st, "a")
	createSession(t, st, "b")
	for i := range 4 { // records 1..4; running after 1 and 3, idle after 2 and 4
		r := req("a", fmt.Sprintf("k%d", i), "m")
		r.Wake, r.Rest = i%2 == 0, i%2 == 1
		mustAppend(t, st, r)
	}
	mustAppend(t, st, store.AppendRequest{SessionID: "b", Direction: store.Inbound, Envelope: env("k0", "b"), Wake: true})
	get := func(from, to int64) []string {
		evs, err := st.SessionEventsOf(ctx, "a", from, to)
		if err != nil {
			t.Fatalf("SessionEventsOf(a, %d, %d): %v", from, to, err)
		}
		return eventLines(evs)
	}
	checkLines(t, "events of a in [0, 9]", get(0, 9), []string{
		"a session.created →idle after 0",
		"a session.state_changed idle→running after 1",
		"a session.state_changed running→idle after 2",
		"a session.state_changed idle→running after 3",
		"a session.state_changed running→idle after 4",
	})
	checkLines(t, "events of a in [1, 2]", get(1, 2), []string{
		"a session.state_changed idle→running after 1",
		"a session.state_changed running→idle after 2",
	})
	checkLines(t, "events of a in [4, 9]", get(4, 9), []string{"a session.state_changed running→idle after 4"})
	checkLines(t, "events of a in [5, 9]", get(5, 9), nil)
	if _, err := st.SessionEventsOf(ctx, "nope", 0, 9); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SessionEventsOf(unknown) = %v, want ErrNotFound", err)
	}
}

func (s suite) testSignalOnEvent(t *testing.T) {
	st, _ := s.fresh(t)
	all, cancelAll := st.Subscribe(store.AllSessions)
	defer cancelAll()
	createSession(t, st, "a")
	waitSignal(t, all, "to a subscriber of every session after CreateSession")
	ch, cancel := st.Subscribe("a")
	defer cancel()
	if _, err := st.SetState(t.Context(), "a", store.Running); err != nil {
		t.Fatalf("SetState: %v", err)
	}
	waitSignal(t, ch, "to a subscriber of the session after SetState")
	waitSignal(t, all, "to a subscriber of every session after SetState")
}

func (s suite) testEventDeliveries(t *testing.T) {
	st, _ := s.fresh(t)
	ctx := t.Context()
	createSession(t, st, "a")
	mustAppend(t, st, store.AppendRequest{SessionID: "a", Direction: store.Inbound, Envelope: env("k1", "hi"), Wake: true})
	evs, err := st.SessionEventsOf(ctx, "a", 0, 1)
	if err != nil || len(evs) != 2 {
		t.Fatalf("SessionEventsOf = %d events, %v; want 2", len(evs), err)
	}
	created, woke := evs[0], evs[1]
	c := envelope.Conversation{Source: "hook", Ref: "dest/a"}
	now := time.Now()
	ds := []store.Delivery{
		{SessionID: "a", Seq: 0, Event: created.ID, To: c, NextAttempt: now},
		{SessionID: "a", Seq: 1, To: c, NextAttempt: now},
		{SessionID: "a", Seq: 1, Event: woke.ID, To: c, NextAttempt: now},
	}
	mustEnqueue(t, st, ds...)
	mustEnqueue(t, st, ds[2], ds[0]) // idempotent, and the order stays
	for _, bad := range []store.Delivery{
		{SessionID: "a", Seq: 1, Event: created.ID, To: c},     // not its after_seq
		{SessionID: "a", Seq: 0, Event: woke.ID + 1000, To: c}, // no such event
	} {
		if err := st.Enqueue(ctx, []store.Delivery{bad}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Enqueue(event %d, seq %d) = %v, want ErrNotFound", bad.Event, bad.Seq, err)
		}
	}
	var order []string
	for range 3 {
		got := claim(t, st, "w", 10, now.Add(time.Second), now.Add(time.Minute))
		if len(got) != 1 {
			t.Fatalf("Claim returned %d deliveries of one conversation, want 1", len(got))
		}
		d := got[0]
		order = append(order, fmt.Sprintf("%d/%d", d.Seq, d.Event))
		if d.Event != 0 && (d.Envelope.ID != "" || d.Direction != "") {
			t.Errorf("claimed event delivery carries an envelope or direction: %+v", d)
		}
		if d.Event == 0 && (d.Envelope.ID != "test:k1" || d.Direction == "") {
			t.Errorf("claimed record delivery has envelope %q and direction %q, want test:k1 and the record's", d.Envelope.ID, d.Direction)
		}
		mustSettle(t, st, d, "w", store.Settlement{Status: store.Delivered})
	}
	want := []string{fmt.Sprintf("0/%d", created.ID), "1/0", fmt.Sprintf("1/%d", woke.ID)}
	checkLines(t, "claim order", order, want)
	listed := listAll(t, st, "", 10)
	if len(listed) != 3 {
		t.Fatalf("ListDeliveries = %d, want 3", len(listed))
	}
	events := 0
	for _, d := range listed {
		if d.Event != 0 {
			events++
		}
	}
	if events != 2 {
		t.Errorf("ListDeliveries shows %d event deliveries, want 2", events)
	}
}

func (s suite) testCursorRead(t *testing.T) {
	st, _ := s.fresh(t)
	ctx := t.Context()
	createSession(t, st, "a")
	for i := range 3 {
		mustAppend(t, st, req("a", fmt.Sprintf("k%d", i), "m"))
	}
	get := func(consumer, session string) int64 {
		c, err := st.Cursor(ctx, consumer, session)
		if err != nil {
			t.Fatalf("Cursor(%s, %s): %v", consumer, session, err)
		}
		return c
	}
	if c := get(runtimeConsumer, "a"); c != 0 {
		t.Errorf("Cursor before any claim = %d, want 0", c)
	}
	now := time.Now()
	claimWork(t, st, runtimeConsumer, "w", 10, now, now.Add(time.Minute))
	mustAdvance(t, st, runtimeConsumer, "a", "w", 2, time.Time{})
	if c := get(runtimeConsumer, "a"); c != 2 {
		t.Errorf("Cursor after Advance(2) = %d, want 2", c)
	}
	if c := get(outboxConsumer, "a"); c != 0 {
		t.Errorf("Cursor of another consumer = %d, want 0", c)
	}
	if c := get(runtimeConsumer, "nope"); c != 0 {
		t.Errorf("Cursor of an unknown session = %d, want 0", c)
	}
}

func (s suite) testJournalReopen(t *testing.T) {
	st, b := s.fresh(t)
	createSession(t, st, "a")
	if _, err := st.SetState(t.Context(), "a", store.Running); err != nil {
		t.Fatalf("SetState: %v", err)
	}
	before, cursor := readJournal(t, st, "", 10, 2)
	closeStore(t, st)
	st = open(t, b)
	after, _ := readJournal(t, st, "", 10, 2)
	checkLines(t, "journal after reopening", eventLines(after), eventLines(before))
	if more, _ := readJournal(t, st, cursor, 10, 0); len(more) != 0 {
		t.Errorf("the old cursor reads %q after reopening, want nothing", eventLines(more))
	}
}

// testJournalConcurrent changes many sessions' states at once (through two
// stores when the backend allows) while a reader follows the journal, and
// checks the reader saw every event once, each session's in order.
func (s suite) testJournalConcurrent(t *testing.T, cfg config) {
	st, b := s.fresh(t)
	other := st
	if cfg.shared {
		other = open(t, b)
	}
	const sessions, rounds = 8, 10
	const total = sessions * (1 + 2*rounds) // created, then a wake and a rest a round
	for i := range sessions {
		createSession(t, st, fmt.Sprintf("s%d", i))
	}
	var (
		wg   sync.WaitGroup
		errs = make(chan error, sessions)
		stop = make(chan struct{})
		seen []store.SessionEvent
		last string // the reader's cursor when it stopped
		done = make(chan struct{})
	)
	go func() { // the reader, following the cursor while writers write
		defer close(done)
		cursor := ""
		for {
			page, next, err := st.ReadSessionEvents(t.Context(), cursor, 5)
			if err != nil {
				errs <- err
				return
			}
			seen, cursor = append(seen, page...), next
			if len(page) == 0 {
				select {
				case <-stop:
					last = cursor
					return
				case <-time.After(time.Millisecond):
				}
			}
		}
	}()
	for i := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := st
			if i%2 == 1 {
				w = other
			}
			id := fmt.Sprintf("s%d", i)
			for r := range rounds {
				_, err := w.Append(t.Context(), store.AppendRequest{SessionID: id, Direction: store.Inbound,
					Envelope: env(fmt.Sprintf("in%d", r), "m"), Wake: true})
				if err == nil {
					_, err = w.Append(t.Context(), store.AppendRequest{SessionID: id, Direction: store.Outbound,
						Envelope: env(fmt.Sprintf("out%d", r), "a"), Rest: true})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-done
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The writers are done: read the rest, which the backend may hold back
	// a moment (see readJournal).
	rest, _ := readJournal(t, st, last, 1000, total-len(seen))
	seen = append(seen, rest...)
	per := map[string][]store.SessionEvent{}
	ids := map[int64]bool{}
	for _, ev := range seen {
		if ids[ev.ID] {
			t.Fatalf("event %d read twice", ev.ID)
		}
		ids[ev.ID] = true
		if ev.Type != envelope.EventSessionState {
			continue
		}
		per[ev.SessionID] = append(per[ev.SessionID], ev)
	}
	for i := range sessions {
		id := fmt.Sprintf("s%d", i)
		evs := per[id]
		if len(evs) != 2*rounds {
			t.Errorf("session %s: the reader saw %d state changes, want %d", id, len(evs), 2*rounds)
			continue
		}
		for j, ev := range evs {
			want := store.Running
			if j%2 == 1 {
				want = store.Idle
			}
			if ev.State != want || ev.AfterSeq != int64(j+1) || (j > 0 && ev.ID <= evs[j-1].ID) {
				t.Errorf("session %s event %d = %s (id %d), want →%s after %d, in id order", id, j, eventLine(ev), ev.ID, want, j+1)
			}
		}
	}
}
