package postgres

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/testenv"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/internal/groupcommit"
)

// The conformance suite (TestConformance/SessionEvents) covers the
// journal's contract; the tests here press on what is particular to this
// backend: the xid horizon, a session's order when its writers took their
// xids in the other order, the trigger's notify channel, and the upgrade
// of a database at version 5.

// readEvents reads the journal after cursor until it holds want events or
// signalTimeout passes (a transaction elsewhere on the server may hold the
// horizon back for a moment).
func readEvents(t *testing.T, s *Store, cursor string, want int) ([]store.SessionEvent, string) {
	t.Helper()
	var all []store.SessionEvent
	deadline := time.Now().Add(signalTimeout)
	for {
		page, next, err := s.ReadSessionEvents(t.Context(), cursor, 100)
		if err != nil {
			t.Fatalf("ReadSessionEvents(%q): %v", cursor, err)
		}
		all, cursor = append(all, page...), next
		if len(all) >= want || time.Now().After(deadline) {
			return all, cursor
		}
		if len(page) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// TestJournalWaitsForOlderTransactions holds a transaction open that took
// its xid before another changed a session: the change must not be read
// before that transaction ends, and when the older transaction then changes
// the same session, the two events must come in commit order.
func TestJournalWaitsForOlderTransactions(t *testing.T) {
	dsn := testenv.Postgres(t)
	s := openStore(t, dsn, Options{})
	create(t, s, "a")
	evs, cursor := readEvents(t, s, "", 1)
	if len(evs) != 1 {
		t.Fatalf("journal after creating a holds %d events, want 1", len(evs))
	}

	older, err := s.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer older.Rollback(t.Context())
	if _, err := older.Exec(t.Context(), "SELECT pg_current_xact_id()"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetState(t.Context(), "a", store.Running); err != nil {
		t.Fatal(err)
	}
	if page, next, err := s.ReadSessionEvents(t.Context(), cursor, 10); err != nil || len(page) != 0 || next != cursor {
		t.Fatalf("ReadSessionEvents while an older transaction runs = %d events, %q, %v; want none", len(page), next, err)
	}
	// The older transaction waits for nothing (a's lock is free), but its
	// xid is older than that of the change it now follows.
	if _, err := older.Exec(t.Context(), "UPDATE sessions SET state = 'idle', updated_at = now() WHERE id = 'a'"); err != nil {
		t.Fatal(err)
	}
	if err := older.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	evs, _ = readEvents(t, s, cursor, 2)
	var lines []string
	for _, ev := range evs {
		lines = append(lines, fmt.Sprintf("%s→%s", ev.Previous, ev.State))
	}
	if got := strings.Join(lines, " "); got != "idle→running running→idle" {
		t.Fatalf("journal after the older transaction committed = %s, want idle→running running→idle", got)
	}
	if evs[1].ID <= evs[0].ID {
		t.Errorf("event IDs %d, %d: not in commit order", evs[0].ID, evs[1].ID)
	}
	if page, _, err := s.ReadSessionEvents(t.Context(), "5:x", 10); err == nil {
		t.Errorf("ReadSessionEvents(bad cursor) = %d events, no error", len(page))
	}
}

// TestNotifyChannel checks that the triggers' channel is the store's.
func TestNotifyChannel(t *testing.T) {
	s := openStore(t, testenv.Postgres(t), Options{})
	for _, schema := range []string{
		"public",
		strings.Repeat("s", 63-len("switchboard_log:")),
		strings.Repeat("s", 64-len("switchboard_log:")),
		strings.Repeat("é", 24), // 48 bytes: over the limit in bytes, not in characters
	} {
		var got string
		if err := s.pool.QueryRow(t.Context(), "SELECT notify_channel($1)", schema).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if want := channelName(schema); got != want {
			t.Errorf("notify_channel(%q) = %q, want %q", schema, got, want)
		}
	}
}

// TestSignalAcrossStoresOnEvent checks that a session event journaled by
// one store signals the subscribers of another.
func TestSignalAcrossStoresOnEvent(t *testing.T) {
	dsn := testenv.Postgres(t)
	a, b := openStore(t, dsn, Options{}), openStore(t, dsn, Options{})
	all, cancelAll := a.Subscribe(store.AllSessions)
	defer cancelAll()
	create(t, b, "x")
	waitSignal(t, all, "in store a after store b created a session")
	ch, cancel := a.Subscribe("x")
	defer cancel()
	flushNotifications(t, a)
	select {
	case <-ch:
	default:
	}
	if _, err := b.SetState(t.Context(), "x", store.Running); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, ch, "in store a after store b changed the session's state")
	if _, _, err := b.Bind(t.Context(), store.Binding{SessionID: "y", Conversation: envelope.Conversation{Source: "test", Ref: "y"}}, nil); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, all, "in store a after store b created a session by binding")
}

// TestMigrationToSessionEvents migrates a database with an outbox to
// version 5, then to the newest: the deliveries it held are of records,
// and deliveries of events go beside them.
func TestMigrationToSessionEvents(t *testing.T) {
	dsn := testenv.Postgres(t)
	pool := migratedTo(t, dsn, 5)
	for _, q := range []string{
		"INSERT INTO sessions (id, state, last_seq, created_at, updated_at) VALUES ('a', 'idle', 1, now(), now())",
		`INSERT INTO records (session_id, seq, direction, envelope_id, source, kind, actor_id, actor_display, actor_type,
			conv_source, conv_ref, text, refs, ts, ts_nanos, stored_at)
			VALUES ('a', 1, 'outbound', 'test:k1', 'test', 'message', 'bot', '', 'agent', '', '', 'hi', '{}', now(), 0, now())`,
		`INSERT INTO deliveries (id, session_id, seq, conv_source, conv_ref, status, next_attempt, created_at, updated_at)
			VALUES ('dlv-old', 'a', 1, 'hook', 'dest', 'pending', now(), now(), now())`,
	} {
		if _, err := pool.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	s := openStore(t, dsn, Options{})
	if _, err := s.SetState(t.Context(), "a", store.Running); err != nil {
		t.Fatal(err)
	}
	evs, err := s.SessionEventsOf(t.Context(), "a", 0, 10)
	if err != nil || len(evs) != 1 || evs[0].AfterSeq != 1 || evs[0].State != store.Running {
		t.Fatalf("SessionEventsOf(a) after migrating = %+v, %v; want the state change after 1", evs, err)
	}
	to := envelope.Conversation{Source: "hook", Ref: "dest"}
	if err := s.Enqueue(t.Context(), []store.Delivery{
		{SessionID: "a", Seq: 1, To: to},                   // stored before the migration
		{SessionID: "a", Seq: 1, Event: evs[0].ID, To: to}, // beside it
	}); err != nil {
		t.Fatal(err)
	}
	ds, err := s.ListDeliveries(t.Context(), "", "", 10)
	if err != nil || len(ds) != 2 {
		t.Fatalf("ListDeliveries = %d, %v; want 2", len(ds), err)
	}
	if ds[0].ID != "dlv-old" || ds[0].Event != 0 || ds[1].Event != evs[0].ID {
		t.Errorf("deliveries = %+v, want dlv-old (a record's) and the event's", ds)
	}
	got, err := s.Claim(t.Context(), "p", 10, time.Now().Add(time.Second), time.Now().Add(time.Minute))
	if err != nil || len(got) != 1 || got[0].ID != "dlv-old" || got[0].Envelope.ID != "test:k1" {
		t.Errorf("Claim after migrating = %+v, %v; want dlv-old with its record", got, err)
	}
}

// TestJournalAfterRestoreOnAnotherServer plays a database restored on a
// server whose xid counter is behind the one that wrote it: journal rows
// (and a follower's cursor) carry xids from the future. Opening the store
// brings the rows back, new events of those sessions are read at once, and
// a cursor from the future reads from the start instead of skipping them.
func TestJournalAfterRestoreOnAnotherServer(t *testing.T) {
	dsn := testenv.Postgres(t)
	s := openStore(t, dsn, Options{})
	create(t, s, "a", "b")
	evs, cursor := readEvents(t, s, "", 2)
	if len(evs) != 2 {
		t.Fatalf("journal holds %d events, want 2", len(evs))
	}
	if _, err := s.pool.Exec(t.Context(), `UPDATE session_events SET xid = (pg_current_xact_id()::text::bigint + 1000000)::text::xid8`); err != nil {
		t.Fatal(err)
	}
	var futureCursor string
	if err := s.pool.QueryRow(t.Context(), `SELECT max(xid)::text || ':' || max(eid) FROM session_events`).Scan(&futureCursor); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dsn, Options{})
	if _, err := s.SetState(t.Context(), "a", store.Running); err != nil {
		t.Fatal(err)
	}
	// The rows brought back may be read again before it; the change may
	// wait for older transactions elsewhere on the server (the horizon).
	got, _ := readEvents(t, s, cursor, 3)
	if len(got) == 0 {
		t.Fatal("a state change of a session whose journal came from another server was not read")
	}
	if last := got[len(got)-1]; last.SessionID != "a" || last.State != store.Running {
		t.Errorf("read %+v, want a's change to running", last)
	}
	all, _ := readEvents(t, s, futureCursor, 3)
	if len(all) != 3 {
		t.Errorf("from a cursor of the other server's future, read %d events, want all 3 from the start", len(all))
	}
}

// TestSettleBatchAnswersEachSettlement: a settle batch settles its leased
// deliveries in one statement (settleLeasedSQL), and each settlement still
// gets its own answer, in order: one that took, one whose owner lost the
// lease, one of an unknown delivery, and another that took.
func TestSettleBatchAnswersEachSettlement(t *testing.T) {
	st := openStore(t, testenv.Postgres(t), Options{})
	ctx := t.Context()
	create(t, st, "s")
	for i := range 3 {
		if _, err := st.Append(ctx, msg("s", fmt.Sprint("k", i), "work")); err != nil {
			t.Fatal(err)
		}
	}
	var ds []store.Delivery
	for seq := int64(1); seq <= 3; seq++ {
		ds = append(ds, store.Delivery{SessionID: "s", Seq: seq, To: envelope.Conversation{Source: "test", Ref: fmt.Sprint("c", seq)}, NextAttempt: t0})
	}
	if err := st.Enqueue(ctx, ds); err != nil {
		t.Fatal(err)
	}
	claimed, err := st.Claim(ctx, "p", 3, at(time.Second), at(time.Hour))
	if err != nil || len(claimed) != 3 {
		t.Fatalf("claim: %d deliveries, %v; want 3", len(claimed), err)
	}
	delivered := store.Settlement{Status: store.Delivered}
	batch := []settleReq{
		{id: claimed[0].ID, owner: "p", st: delivered},
		{id: claimed[1].ID, owner: "q", st: delivered},
		{id: "dlv-unknown", owner: "p", st: delivered},
		{id: claimed[2].ID, owner: "p", st: store.Settlement{Status: store.Dead, Error: "gone"}},
	}
	results := make([]groupcommit.Result[[]store.Delivery], len(batch))
	if err := st.settleBatch(ctx, batch, results); err != nil {
		t.Fatal(err)
	}
	if results[0].Err != nil || results[3].Err != nil {
		t.Errorf("the settlements whose owner holds the lease failed: %v, %v", results[0].Err, results[3].Err)
	}
	if !errors.Is(results[1].Err, store.ErrLeaseLost) {
		t.Errorf("the settlement of another owner's lease: %v, want ErrLeaseLost", results[1].Err)
	}
	if !errors.Is(results[2].Err, store.ErrNotFound) {
		t.Errorf("the settlement of an unknown delivery: %v, want ErrNotFound", results[2].Err)
	}
	want := map[string]store.DeliveryStatus{claimed[0].ID: store.Delivered, claimed[1].ID: store.Pending, claimed[2].ID: store.Dead}
	for id, status := range want {
		var got string
		if err := st.pool.QueryRow(ctx, "SELECT status FROM deliveries WHERE id = $1", id).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != string(status) {
			t.Errorf("delivery %s is %s after the batch, want %s", id, got, status)
		}
	}
}

// TestSettleBatchClaimsEachRunsNext: the SettleRun calls of one settle
// batch claim their conversations' next runs in one statement
// (settleNextSQL, then queuedSQL), and each call gets its own
// conversation's run, in order, however the rows come back.
func TestSettleBatchClaimsEachRunsNext(t *testing.T) {
	st := openStore(t, testenv.Postgres(t), Options{})
	ctx := t.Context()
	create(t, st, "s")
	convs := []envelope.Conversation{{Source: "test", Ref: "a"}, {Source: "test", Ref: "b"}, {Source: "test", Ref: "c"}}
	var ds []store.Delivery
	for i := range 4 {
		res, err := st.Append(ctx, msg("s", fmt.Sprint("k", i), "work"))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range convs {
			ds = append(ds, store.Delivery{SessionID: "s", Seq: res.Record.Seq, To: c, NextAttempt: t0})
		}
	}
	if err := st.Enqueue(ctx, ds); err != nil {
		t.Fatal(err)
	}
	heads, err := st.Claim(ctx, "p", 3, at(time.Second), at(time.Hour))
	if err != nil || len(heads) != 3 {
		t.Fatalf("claim: %d deliveries, %v; want the 3 heads", len(heads), err)
	}
	byConv := map[string]store.Delivery{}
	for _, h := range heads {
		byConv[h.To.Ref] = h
	}
	delivered := store.Settlement{Status: store.Delivered}
	// b wants its next two, a its next one (no queued read), and c's
	// settle has lost its lease: it claims nothing.
	batch := []settleReq{
		{id: byConv["b"].ID, owner: "p", st: delivered, next: true, n: 2, now: at(2 * time.Second), leaseUntil: at(time.Hour)},
		{id: byConv["a"].ID, owner: "p", st: delivered, next: true, n: 1, now: at(2 * time.Second), leaseUntil: at(time.Hour)},
		{id: byConv["c"].ID, owner: "q", st: delivered, next: true, n: 3, now: at(2 * time.Second), leaseUntil: at(time.Hour)},
	}
	results := make([]groupcommit.Result[[]store.Delivery], len(batch))
	if err := st.settleBatch(ctx, batch, results); err != nil {
		t.Fatal(err)
	}
	runOf := func(i int) []int64 {
		var seqs []int64
		for _, d := range results[i].Val {
			if want := byConv[[]string{"b", "a", "c"}[i]].To; d.To != want {
				t.Errorf("call %d got a delivery of conversation %v, want %v", i, d.To, want)
			}
			seqs = append(seqs, d.Seq)
		}
		return seqs
	}
	if results[0].Err != nil || !slices.Equal(runOf(0), []int64{2, 3}) {
		t.Errorf("b's next run: %v, %v; want seqs [2 3]", runOf(0), results[0].Err)
	}
	if results[1].Err != nil || !slices.Equal(runOf(1), []int64{2}) {
		t.Errorf("a's next run: %v, %v; want seqs [2]", runOf(1), results[1].Err)
	}
	if !errors.Is(results[2].Err, store.ErrLeaseLost) || len(results[2].Val) > 0 {
		t.Errorf("c's settle by another owner: %v, %v; want ErrLeaseLost and no run", results[2].Val, results[2].Err)
	}
	for i, want := range []string{"p", "p"} {
		for _, d := range results[i].Val[:min(1, len(results[i].Val))] {
			var owner string
			if err := st.pool.QueryRow(ctx, "SELECT lease_owner FROM deliveries WHERE id = $1", d.ID).Scan(&owner); err != nil {
				t.Fatal(err)
			}
			if owner != want {
				t.Errorf("the head of call %d's next run is leased to %q, want %q", i, owner, want)
			}
		}
	}
}

// TestSettleBatchSettlesQueuedAndClearsHeads: in one settle batch, the
// queued outcomes of several runs are settled in one statement
// (settleQueuedSQL), and the new heads of the conversations whose runs
// ended are released from waiting in one statement (clearWaitingSQL),
// each in its own conversation only.
func TestSettleBatchSettlesQueuedAndClearsHeads(t *testing.T) {
	st := openStore(t, testenv.Postgres(t), Options{})
	ctx := t.Context()
	create(t, st, "s")
	var ds []store.Delivery
	for i := range 4 {
		res, err := st.Append(ctx, msg("s", fmt.Sprint("k", i), "work"))
		if err != nil {
			t.Fatal(err)
		}
		for _, ref := range []string{"a", "b"} {
			ds = append(ds, store.Delivery{SessionID: "s", Seq: res.Record.Seq, To: envelope.Conversation{Source: "test", Ref: ref}, NextAttempt: t0})
		}
	}
	if err := st.Enqueue(ctx, ds); err != nil {
		t.Fatal(err)
	}
	idOf := func(ref string, seq int) string {
		t.Helper()
		var id string
		if err := st.pool.QueryRow(ctx, "SELECT id FROM deliveries WHERE conv_ref = $1 AND seq = $2", ref, seq).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	if heads, err := st.Claim(ctx, "p", 2, at(time.Second), at(time.Hour)); err != nil || len(heads) != 2 {
		t.Fatalf("claim: %d deliveries, %v; want the 2 heads", len(heads), err)
	}
	delivered := store.Settlement{Status: store.Delivered}
	batch := []settleReq{
		{id: idOf("a", 1), owner: "p", st: delivered, queued: []store.Outcome{{ID: idOf("a", 2), Settlement: delivered}}},
		{id: idOf("b", 1), owner: "p", st: delivered},
	}
	results := make([]groupcommit.Result[[]store.Delivery], len(batch))
	if err := st.settleBatch(ctx, batch, results); err != nil || results[0].Err != nil || results[1].Err != nil {
		t.Fatalf("settle batch: %v, %v, %v", err, results[0].Err, results[1].Err)
	}
	type row struct {
		status  string
		waiting bool
	}
	want := map[string]row{
		"a1": {"delivered", false}, "a2": {"delivered", false}, "a3": {"pending", false}, "a4": {"pending", true},
		"b1": {"delivered", false}, "b2": {"pending", false}, "b3": {"pending", true}, "b4": {"pending", true},
	}
	for name, w := range want {
		var got row
		if err := st.pool.QueryRow(ctx, "SELECT status, waiting FROM deliveries WHERE id = $1", idOf(name[:1], int(name[1]-'0'))).Scan(&got.status, &got.waiting); err != nil {
			t.Fatal(err)
		}
		if got != w {
			t.Errorf("%s is %+v after the batch, want %+v", name, got, w)
		}
	}
}
