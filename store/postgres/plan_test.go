package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/testenv"
	"github.com/switchboardhq/switchboard/store"
)

// TestQueueCostIsFlatInTheBacklog: the statements of the delivery path
// cost the same whether a conversation has 10 deliveries pending or 2,000.
// They are planned as a gateway started on a new database plans them: on
// empty tables with no statistics, once, and the plan kept (a connection's
// prepared statement keeps its generic plan until an ANALYZE). Each then
// runs under EXPLAIN ANALYZE, in a transaction rolled back, and the shared
// buffers it reads are compared. Planned so, the head search of a settle
// and Claim's checks used to read the conversation's whole backlog, the
// enqueue of Append hashed the whole records and deliveries tables, and
// a settle batch's locks (without settleSettingsSQL) scanned every delivery.
func TestQueueCostIsFlatInTheBacklog(t *testing.T) {
	small := queueCosts(t, openStore(t, testenv.Postgres(t), Options{}), 10)
	large := queueCosts(t, openStore(t, testenv.Postgres(t), Options{}), 2000)
	for _, name := range slices.Sorted(maps.Keys(small)) {
		n := small[name]
		// A B-tree of 4,000 entries is a level deeper than one of 20, for
		// every probe and every index an update writes to: the cost may
		// grow by that, not double. A walk of the backlog reads a buffer
		// per hundred or so pending deliveries and one per heap page.
		if limit := 2 * n; large[name] > limit {
			t.Errorf("%s read %d buffers with 2,000 pending, %d with 10 (limit %d): its cost grows with the backlog",
				name, large[name], n, limit)
		}
		t.Logf("%s: %d buffers with 10 pending, %d with 2,000", name, n, large[name])
	}
}

// planned is a statement of the delivery path, prepared under name, with
// the arguments it is run with and what runs before it in its transaction.
type planned struct {
	name, sql string
	args      func() []any
	before    string
	// set runs first, without arguments: a setting of the transaction.
	set string
}

// queueCosts prepares the delivery path's statements on a connection of
// st while its tables are empty, fills a conversation with backlog pending
// deliveries of as many outputs (and another conversation with as many, so
// that a walk over every conversation shows too), and returns the shared
// buffers each statement then reads.
func queueCosts(t *testing.T, st *Store, backlog int) map[string]int64 {
	t.Helper()
	ctx := t.Context()
	create(t, st, "s")
	conn := genericPlans(t, st)

	conv := envelope.Conversation{Source: "test", Ref: "c"}
	now, until := at(time.Second), at(time.Hour)
	var head, second string
	b := &pgx.Batch{}
	if err := queueEnqueue(b, []store.Delivery{{ID: "dlv-new", SessionID: "s", Seq: int64(backlog + 1), To: conv}}, true, nil); err != nil {
		t.Fatal(err)
	}
	enqueue := b.QueuedQueries[0]
	// The settle of the head, as settleBatch runs it before the statements
	// that find the conversation's next delivery (which take every call's
	// delivery as an array).
	settleHeads := `UPDATE deliveries SET status = 'delivered', lease_owner = '', updated_at = now() WHERE id = ANY($1)`
	// What settleNextSQL leaves for queuedSQL: the head settled and the
	// next claimed by owner p.
	claimSecondOf := `WITH settled AS (
			UPDATE deliveries SET status = 'delivered', lease_owner = '', updated_at = now() WHERE id = ANY($1)
		)
		UPDATE deliveries SET lease_owner = 'p', updated_at = now()
		WHERE id = (SELECT id FROM deliveries WHERE conv_ref = 'c' AND status = 'pending' AND id <> ALL ($1) ORDER BY ord LIMIT 1)`
	stmts := []planned{
		{"clear_waiting", clearWaitingSQL, func() []any { return []any{[]string{head}} }, settleHeads, settleSettingsSQL},
		{"settle_next", settleNextSQL, func() []any {
			return []any{[]string{head}, []string{"p"}, []time.Time{now}, []time.Time{until}}
		}, settleHeads, settleSettingsSQL},
		{"queued", queuedSQL, func() []any { return []any{[]string{head}, []string{"p"}, []int64{5}} }, claimSecondOf, settleSettingsSQL}, // 5 queued with either backlog
		{"settle_queued", settleQueuedSQL, func() []any {
			return []any{[]string{head}, []string{second}, []string{"delivered"}, []string{""}, []string{""}, []pgtype.Timestamptz{{}}}
		}, settleHeads, settleSettingsSQL},
		{"settle_leased", settleLeasedSQL, func() []any {
			return []any{[]string{head, second}, []string{"nobody", "nobody"}, []string{"delivered", "delivered"},
				[]string{"", ""}, []string{"", ""}, []pgtype.Timestamptz{{}, {}}}
		}, "", settleSettingsSQL},
		{"claim_among", claimAmongSQL, func() []any { return []any{[]string{head, second}, "p", now, until, 2} }, "", ""},
		{"lock_settles", lockSettlesSQL, func() []any { return []any{[]string{head, second}} }, "", settleSettingsSQL},
		{"enqueue", enqueue.SQL, func() []any { return enqueue.Arguments }, "", ""},
	}
	for _, p := range stmts {
		if _, err := conn.Conn().Prepare(ctx, p.name, p.sql); err != nil {
			t.Fatalf("prepare %s: %v", p.name, err)
		}
		// The first EXECUTE makes the generic plan, on the empty tables.
		explain(t, conn.Conn(), p, "")
	}

	if _, err := st.pool.Exec(ctx, `
		INSERT INTO records (session_id, seq, direction, envelope_id, source, kind, actor_id, actor_display, actor_type,
			conv_source, conv_ref, text, refs, ts, ts_nanos, stored_at)
		SELECT 's', n, 'outbound', 'test:' || (1000000 - n), 'test', 'message', 'bot', '', 'agent', '', '', 'hi', '{}', now(), 0, now()
		FROM generate_series(1, $1::bigint) AS n`, backlog+1); err != nil {
		t.Fatal(err)
	}
	if _, err := st.pool.Exec(ctx, `UPDATE sessions SET last_seq = $1 WHERE id = 's'`, backlog+1); err != nil {
		t.Fatal(err)
	}
	var ds []store.Delivery
	for _, to := range []envelope.Conversation{conv, {Source: "test", Ref: "other"}} {
		for seq := range backlog {
			ds = append(ds, store.Delivery{SessionID: "s", Seq: int64(seq + 1), To: to, NextAttempt: t0})
		}
	}
	if err := st.Enqueue(ctx, ds); err != nil {
		t.Fatal(err)
	}
	if err := st.pool.QueryRow(ctx, `SELECT id FROM deliveries WHERE conv_ref = 'c' ORDER BY ord LIMIT 1`).Scan(&head); err != nil {
		t.Fatal(err)
	}
	if err := st.pool.QueryRow(ctx, `SELECT id FROM deliveries WHERE conv_ref = 'c' ORDER BY ord OFFSET 1 LIMIT 1`).Scan(&second); err != nil {
		t.Fatal(err)
	}

	costs := map[string]int64{}
	for _, p := range stmts {
		costs[p.name] = explain(t, conn.Conn(), p, "ANALYZE, BUFFERS, ")
	}
	return costs
}

// genericPlans returns a connection of st that plans every statement it
// prepares once, generically, and keeps the plan (as a connection does
// after a statement's first runs, when the generic plan is not dearer),
// until the test ends.
func genericPlans(t *testing.T, st *Store) *pgxpool.Conn {
	t.Helper()
	conn, err := st.pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Exec(context.Background(), "RESET plan_cache_mode")
		conn.Release()
	})
	if _, err := conn.Exec(t.Context(), "SET plan_cache_mode = force_generic_plan"); err != nil {
		t.Fatal(err)
	}
	return conn
}

// explain runs EXPLAIN (opts FORMAT JSON) EXECUTE of p, after p.before, in
// a transaction that is rolled back, and returns the shared buffers the
// execution read: hits and reads of the plan, its subplans included, and
// of the data-modifying CTEs, which run after it.
func explain(t *testing.T, conn *pgx.Conn, p planned, opts string) int64 {
	t.Helper()
	top := explainPlan(t, conn, p, opts)
	n := top.Hit + top.Read
	for _, c := range top.Plans {
		if c.Type == "ModifyTable" && c.Rel == "InitPlan" {
			n += c.Hit + c.Read
		}
	}
	return n
}

// planNode is a node of EXPLAIN's JSON output.
type planNode struct {
	Type    string `json:"Node Type"`
	Rel     string `json:"Parent Relationship"`
	Subplan string `json:"Subplan Name"`
	Index   string `json:"Index Name"`
	Hit     int64  `json:"Shared Hit Blocks"`
	Read    int64  `json:"Shared Read Blocks"`
	Plans   []planNode
}

// explainPlan runs EXPLAIN (opts FORMAT JSON) EXECUTE of p, after
// p.before, in a transaction that is rolled back, and returns the plan.
func explainPlan(t *testing.T, conn *pgx.Conn, p planned, opts string) planNode {
	t.Helper()
	ctx := t.Context()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	args := p.args()
	if p.set != "" {
		if _, err := tx.Exec(ctx, p.set); err != nil {
			t.Fatal(err)
		}
	}
	if p.before != "" {
		if _, err := tx.Exec(ctx, p.before, args[0]); err != nil {
			t.Fatal(err)
		}
	}
	params := make([]string, len(args))
	for i := range args {
		params[i] = fmt.Sprintf("$%d", i+1)
	}
	// The simple protocol puts the arguments into the text as literals:
	// EXPLAIN takes no parameters of its own.
	q := fmt.Sprintf("EXPLAIN (%sFORMAT JSON) EXECUTE %s(%s)", opts, p.name, strings.Join(params, ", "))
	var out []byte
	if err := tx.QueryRow(ctx, q, append([]any{pgx.QueryExecModeSimpleProtocol}, args...)...).Scan(&out); err != nil {
		t.Fatalf("explain %s: %v", p.name, err)
	}
	var plans []struct{ Plan planNode }
	if err := json.Unmarshal(out, &plans); err != nil || len(plans) != 1 {
		t.Fatalf("explain %s: output %s: %v", p.name, out, err)
	}
	return plans[0].Plan
}

// TestEnqueueFindsTailsByConversation: Append's enqueue finds each
// conversation's pending tail along deliveries_queue, one probe per
// conversation, whatever the table held when a connection planned it.
// Planned with 200 deliveries pending and no statistics, it used to take
// deliveries_status (status, id), since dropped (migration 0014), and read
// the pending entry of every conversation's every delivery at each call:
// with 4,000 more pending elsewhere, 11 times the buffers. An index on id
// WHERE status = 'pending' did the same when planned at 200 to 300.
func TestEnqueueFindsTailsByConversation(t *testing.T) {
	for _, backlog := range []int{50, 200, 300, 1000} {
		for _, settled := range []bool{false, true} {
			t.Run(fmt.Sprintf("planned at %d, half settled %t", backlog, settled), func(t *testing.T) {
				enqueueProbesTails(t, backlog, settled)
			})
		}
	}
}

// enqueueProbesTails plans Append's enqueue on a new connection while
// backlog deliveries are pending over 32 conversations (half of them
// settled since, when settled says so), and checks its probe of the tails
// before and after 4,000 more conversations get a pending delivery.
func enqueueProbesTails(t *testing.T, backlog int, settled bool) {
	st := openStore(t, testenv.Postgres(t), Options{})
	ctx := t.Context()
	create(t, st, "s")
	pend := func(from, n int, convs int) {
		t.Helper()
		if _, err := st.pool.Exec(ctx, `
			INSERT INTO deliveries (id, session_id, seq, event, conv_source, conv_ref, status, waiting, next_attempt, created_at, updated_at)
			SELECT 'dlv_' || n, 's', n, 0, 'webhook', 'd0:ses_' || (n % $3), 'pending', false, now(), now(), now()
			FROM generate_series($1::bigint, $2::bigint) AS n`, from, from+n-1, convs); err != nil {
			t.Fatal(err)
		}
	}
	pend(1, backlog, 32)
	if settled {
		if _, err := st.pool.Exec(ctx, `UPDATE deliveries SET status = 'delivered' WHERE seq % 2 = 0`); err != nil {
			t.Fatal(err)
		}
	}
	conn := genericPlans(t, st)
	b := &pgx.Batch{}
	if err := queueEnqueue(b, []store.Delivery{{ID: "dlv-new", SessionID: "s", Seq: 1000000, To: envelope.Conversation{Source: "webhook", Ref: "d0:ses_1"}}}, false, nil); err != nil {
		t.Fatal(err)
	}
	q := b.QueuedQueries[0]
	p := planned{name: "enqueue", sql: q.SQL, args: func() []any { return q.Arguments }}
	if _, err := conn.Conn().Prepare(ctx, p.name, p.sql); err != nil {
		t.Fatal(err)
	}
	explainPlan(t, conn.Conn(), p, "") // the generic plan, made now
	tails := func() (buffers int64, indexes []string) {
		t.Helper()
		var walk func(n planNode, in bool)
		walk = func(n planNode, in bool) {
			in = in || n.Subplan == "CTE tails"
			if in && n.Index != "" {
				indexes = append(indexes, n.Index)
			}
			if n.Subplan == "CTE tails" {
				buffers = n.Hit + n.Read
			}
			for _, c := range n.Plans {
				walk(c, in)
			}
		}
		walk(explainPlan(t, conn.Conn(), p, "ANALYZE, BUFFERS, "), false)
		return buffers, indexes
	}
	small, _ := tails()
	pend(100000, 4000, 4000) // 4,000 conversations more, one pending each
	large, indexes := tails()
	if large > 2*small || !slices.Equal(indexes, []string{"deliveries_queue"}) {
		t.Errorf("the probe of the tails read %d buffers with 4,000 more deliveries pending, %d before, along %v; want along deliveries_queue alone, a few buffers either way",
			large, small, indexes)
	}
	t.Logf("the probe of the tails: %d buffers, then %d with 4,000 more pending", small, large)
}
