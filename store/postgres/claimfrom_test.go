package postgres

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/internal/testenv"
	"github.com/switchboardhq/switchboard/store"
)

// claimFromOf returns where st's claims for consumer resume.
func claimFromOf(t *testing.T, st *Store, consumer string) *claimFrom {
	t.Helper()
	from, ok := st.consumers.Load(consumer)
	if !ok {
		t.Fatalf("consumer %s has not claimed yet", consumer)
	}
	return from.(*claimFrom)
}

func claimIDs(t *testing.T, st *Store, owner string, now time.Time) []string {
	t.Helper()
	works, err := st.ClaimWork(t.Context(), "runtime", owner, 10, now, now.Add(30*time.Second))
	if err != nil {
		t.Fatalf("%s ClaimWork: %v", owner, err)
	}
	var ids []string
	for _, w := range works {
		ids = append(ids, w.SessionID)
	}
	slices.Sort(ids)
	return ids
}

// A claim resumes after the work this process claimed last, and the work
// left behind that point is still found: a session released with work
// left by the next claim, and one whose owner died by a claim that looks
// behind too (once a second).
func TestClaimWorkFindsWorkLeftBehind(t *testing.T) {
	st := openStore(t, testenv.Postgres(t), Options{})
	create(t, st, "a", "b")
	for _, id := range []string{"a", "b"} {
		if _, err := st.Append(t.Context(), msg(id, "k1", "work")); err != nil {
			t.Fatal(err)
		}
	}
	if got := claimIDs(t, st, "p1", t0); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("p1 claimed %v, want a and b", got)
	}
	// An hour goes by: their work is far behind where claims resume.
	if _, err := st.pool.Exec(t.Context(), "UPDATE pending_work SET since = since - interval '1 hour'"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(t.Context(), msg("b", "k2", "more work")); err != nil {
		t.Fatal(err)
	}
	// p1 releases b with work left (k2), and dies holding a.
	if err := st.Advance(t.Context(), "runtime", "b", "p1", 1, time.Time{}); err != nil {
		t.Fatal(err)
	}
	from := claimFromOf(t, st, "runtime")
	from.wrapAt = time.Now().Add(time.Hour)
	if got := claimIDs(t, st, "p2", at(31*time.Second)); !slices.Equal(got, []string{"b"}) {
		t.Errorf("p2's claim, not looking behind: %v, want b, released with work left", got)
	}
	from.wrapAt = time.Time{}
	if got := claimIDs(t, st, "p3", at(31*time.Second)); !slices.Equal(got, []string{"a"}) {
		t.Errorf("p3's claim, looking behind: %v, want a, whose lease ran out", got)
	}
}

// TestClaimWorkCostIsFlatInTheWorkDone: a claim reads about as much after
// 30,000 sessions' work was done (and no vacuum ran) as on a fresh store.
// It is planned as a gateway on a new database plans it, on empty tables,
// the plan kept. From the start of pending_work's since index, a claim
// walked the index entries of all the work done; its update of the
// claimed cursors was planned as a scan of every cursor.
func TestClaimWorkCostIsFlatInTheWorkDone(t *testing.T) {
	fresh := claimCost(t, 0)
	after := claimCost(t, 30000)
	if limit := 2 * fresh; after > limit {
		t.Errorf("a claim read %d buffers after 30,000 sessions' work, %d on a fresh store (limit %d): its cost grows with the work done", after, fresh, limit)
	}
	t.Logf("a claim read %d buffers on a fresh store, %d after 30,000 sessions' work", fresh, after)
}

// claimCost prepares the claim on empty tables, does done sessions' work
// (claims it, then marks it done as Advance does), gives 10 sessions work,
// and returns the shared buffers the store's next claim reads.
func claimCost(t *testing.T, done int) int64 {
	t.Helper()
	ctx := t.Context()
	st := openStore(t, testenv.Postgres(t), Options{})
	if _, err := st.ClaimWork(ctx, "runtime", "p0", 1, t0, at(time.Second)); err != nil {
		t.Fatal(err) // registers the consumer
	}
	from := claimFromOf(t, st, "runtime")
	conn := genericPlans(t, st)
	if _, err := conn.Conn().Prepare(ctx, "claim_work", claimWorkSQL); err != nil {
		t.Fatal(err)
	}
	var since time.Time
	var wrap bool
	p := planned{name: "claim_work", sql: claimWorkSQL, args: func() []any {
		return []any{"runtime", "p1", at(time.Minute), 10, at(2 * time.Minute), since, wrap}
	}}
	explain(t, conn.Conn(), p, "") // the generic plan, on the empty tables

	mark := func(n int, prefix string) {
		if _, err := st.pool.Exec(ctx, `
			INSERT INTO sessions (id, state, created_at, updated_at)
			SELECT $2 || n, 'idle', now(), now() FROM generate_series(1, $1::int) AS n`, n, prefix); err != nil {
			t.Fatal(err)
		}
		// The trigger gives each its cursor row and marks its work.
		if _, err := st.pool.Exec(ctx, `UPDATE sessions SET last_seq = 1, woken_seq = 1 WHERE id LIKE $1 || '%'`, prefix); err != nil {
			t.Fatal(err)
		}
	}
	if done > 0 {
		// The work was done over the last hour, the newest just now.
		mark(done, "done-")
		if _, err := st.pool.Exec(ctx, `UPDATE pending_work SET since = since - interval '1 hour'`); err != nil {
			t.Fatal(err)
		}
		// No index entries of the rows before that update: the work was
		// marked an hour ago.
		if _, err := st.pool.Exec(ctx, `VACUUM pending_work`); err != nil {
			t.Fatal(err)
		}
		mark(1, "done-now-")
		works, err := st.ClaimWork(ctx, "runtime", "p0", done+1, t0, at(time.Second))
		if err != nil || len(works) != done+1 {
			t.Fatalf("ClaimWork of the work to do = %d sessions, %v; want %d", len(works), err, done+1)
		}
		if _, err := st.pool.Exec(ctx, `UPDATE cursors SET seq = 1, lease_owner = '', lease_until = NULL WHERE session_id LIKE 'done-%'`); err != nil {
			t.Fatal(err)
		}
		if _, err := st.pool.Exec(ctx, `DELETE FROM pending_work WHERE session_id LIKE 'done-%'`); err != nil {
			t.Fatal(err)
		}
	}
	mark(10, "new-")
	// Not a claim that also looks behind where claims resume: that one
	// walks what is there, once a second.
	from.wrapAt = time.Now().Add(time.Hour)
	since, wrap = from.start(time.Now())
	n := explain(t, conn.Conn(), p, "ANALYZE, BUFFERS, ")
	// And planned for these arguments, on these tables, as a connection
	// does for a statement's first runs.
	if _, err := conn.Exec(ctx, "SET plan_cache_mode = force_custom_plan"); err != nil {
		t.Fatal(err)
	}
	n = max(n, explain(t, conn.Conn(), p, "ANALYZE, BUFFERS, "))
	if works, err := st.ClaimWork(ctx, "runtime", "p1", 10, at(time.Minute), at(2*time.Minute)); err != nil || len(works) != 10 {
		t.Errorf("ClaimWork after %d sessions' work = %d sessions, %v; want the 10 new", done, len(works), err)
	}
	return n
}

// An Advance that reaches the cursor of a session's pending work while an
// append raising that work is in flight keeps the work: it waits for the
// append's lock on the pending row, then sees the row's new seq.
func TestAdvanceKeepsWorkOfAnAppendInFlight(t *testing.T) {
	st := openStore(t, testenv.Postgres(t), Options{})
	create(t, st, "s")
	if _, err := st.Append(t.Context(), msg("s", "k1", "work")); err != nil {
		t.Fatal(err)
	}
	if got := claimIDs(t, st, "p1", t0); !slices.Equal(got, []string{"s"}) {
		t.Fatalf("p1 claimed %v, want s", got)
	}
	tx := appendInFlight(t, st, "s") // record 2
	advanced := make(chan error, 1)
	go func() { advanced <- st.Advance(context.Background(), "runtime", "s", "p1", 1, time.Time{}) }()
	waitForLockWait(t, st) // the Advance waits for the append's lock
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-advanced; err != nil {
		t.Fatalf("Advance: %v", err)
	}
	works, err := st.ClaimWork(t.Context(), "runtime", "p2", 10, t0, at(time.Minute))
	if err != nil || len(works) != 1 || works[0] != (store.Work{SessionID: "s", Cursor: 1, LastSeq: 2}) {
		t.Errorf("ClaimWork after the append committed = %v, %v; want s from cursor 1 to 2", works, err)
	}
}

// Migration 12 gives each pending row its session's woken_seq, so that a
// gateway started on it forgets the work only once its cursor is there.
func TestMigrationGivesPendingWorkItsSeq(t *testing.T) {
	ctx := t.Context()
	dsn := testenv.Postgres(t)
	pool := migratedTo(t, dsn, 11)
	for _, q := range []string{
		"INSERT INTO consumers (name) VALUES ('runtime')",
		"INSERT INTO sessions (id, state, created_at, updated_at) VALUES ('a', 'idle', now(), now())",
		"UPDATE sessions SET last_seq = 3, woken_seq = 3 WHERE id = 'a'", // the trigger marks a pending
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	st := openStore(t, dsn, Options{})
	var seq int64
	if err := st.pool.QueryRow(ctx, "SELECT seq FROM pending_work WHERE consumer = 'runtime' AND session_id = 'a'").Scan(&seq); err != nil || seq != 3 {
		t.Fatalf("a's pending work after migrating: seq %d, %v; want 3", seq, err)
	}
	if got := claimIDs(t, st, "p1", t0); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("p1 claimed %v, want a", got)
	}
	mustAdvance := func(owner string, seq int64, until time.Time) {
		t.Helper()
		if err := st.Advance(ctx, "runtime", "a", owner, seq, until); err != nil {
			t.Fatal(err)
		}
	}
	mustAdvance("p1", 2, at(time.Minute))
	if got := claimIDs(t, st, "p2", at(2*time.Minute)); !slices.Equal(got, []string{"a"}) {
		t.Errorf("p2's claim with a's cursor at 2 of 3 = %v, want a", got)
	}
	mustAdvance("p2", 3, time.Time{})
	var left int
	if err := st.pool.QueryRow(ctx, "SELECT count(*) FROM pending_work").Scan(&left); err != nil || left != 0 {
		t.Errorf("pending rows once a's cursor reached 3: %d, %v; want none", left, err)
	}
}

// Migration 13 adds records.no_turn with false for every record: a record
// stored before it, and one a replica of the previous version stores
// after it (naming no no_turn), still asks for a turn.
func TestMigrationKeepsRecordsAskingForTurns(t *testing.T) {
	ctx := t.Context()
	dsn := testenv.Postgres(t)
	pool := migratedTo(t, dsn, 12)
	oldInsert := func(seq int) {
		t.Helper()
		if _, err := pool.Exec(ctx, `INSERT INTO records (session_id, seq, direction, envelope_id, source, kind, actor_id,
			actor_display, actor_type, conv_source, conv_ref, text, refs, ts, ts_nanos, stored_at)
			VALUES ('a', $1::bigint, 'inbound', 'm' || $1::bigint, 'client', 'message', 'client:x', '', 'human', '', '', 'hi', '{}', now(), 0, now())`,
			seq); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, "INSERT INTO sessions (id, state, last_seq, woken_seq, created_at, updated_at) VALUES ('a', 'idle', 2, 2, now(), now())"); err != nil {
		t.Fatal(err)
	}
	oldInsert(1)
	st := openStore(t, dsn, Options{})
	oldInsert(2)
	recs, err := st.Read(ctx, "a", 0, 10)
	if err != nil || len(recs) != 2 {
		t.Fatalf("Read = %d records, %v; want 2", len(recs), err)
	}
	for _, rec := range recs {
		if rec.NoTurn || !rec.ForRuntime() {
			t.Errorf("record %d: NoTurn %v, ForRuntime %v; want a record that asks for a turn", rec.Seq, rec.NoTurn, rec.ForRuntime())
		}
	}
}
