package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// TestRouterQueryPlans pins the plans of the router's hot statements to
// their indexes, so that a schema or query change that turns one into a
// scan fails here rather than in production.
func TestRouterQueryPlans(t *testing.T) {
	s := newTestStore(t)
	var (
		cw cursorWrites
		ow outboxWrites
		br bindingReads
		or outboxReads
	)
	for _, tc := range []struct {
		name  string
		query string
		want  []string // each in some line of the plan
	}{
		{"fold", queryOf(cw.defs(), &cw.fold), []string{"SEARCH records USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"}},
		{"work", queryOf(cw.defs(), &cw.work), []string{"SEARCH c USING INDEX cursors_work (consumer=?)"}},
		{"due", queryOf(ow.defs(), &ow.due), []string{"SEARCH d USING INDEX deliveries_due (next_attempt<?)",
			"SEARCH b USING INDEX bindings_conversation (conv_source=? AND conv_ref=?)"}},
		{"claim head", queryOf(ow.defs(), &ow.claimHead), []string{"SEARCH deliveries USING INTEGER PRIMARY KEY (rowid=?)",
			"SEARCH deliveries USING COVERING INDEX deliveries_queue (to_source=? AND to_ref=?)",
			"SEARCH b USING INDEX bindings_conversation (conv_source=? AND conv_ref=?)"}},
		{"insert delivery", queryOf(ow.defs(), &ow.insert), []string{"SEARCH deliveries USING COVERING INDEX deliveries_queue (to_source=? AND to_ref=?)"}},
		{"demote", queryOf(ow.defs(), &ow.demote), []string{"SEARCH deliveries USING INDEX deliveries_queue (to_source=? AND to_ref=?)"}},
		{"promote", queryOf(ow.defs(), &ow.promote), []string{"SEARCH deliveries USING COVERING INDEX deliveries_queue (to_source=? AND to_ref=?)"}},
		{"binding for", queryOf(br.defs(), &br.byConv), []string{"SEARCH b USING INDEX bindings_conversation (conv_source=? AND conv_ref=?)"}},
		{"session bindings", queryOf(br.defs(), &br.ofSession), []string{"SEARCH b USING INDEX bindings_session (sid=?)"}},
		{"latest inbound", queryOf(br.defs(), &br.latestInbound), []string{"SEARCH records USING INDEX records_seq (sid=? AND seq<?)"}},
		{"list by status", queryOf(or.defs(), &or.listStatus), []string{"SEARCH d USING INDEX deliveries_status (status=? AND id>?)"}},
		{"posted", queryOf(or.defs(), &or.posted), []string{"SEARCH deliveries USING COVERING INDEX deliveries_posted (to_source=? AND channel_id=?)"}},
	} {
		plan := queryPlan(t, s.rdb, tc.query)
		for _, want := range tc.want {
			if !strings.Contains(plan, want) {
				t.Errorf("%s: plan lacks %q:\n%s", tc.name, want, plan)
			}
		}
		if strings.Contains(plan, "TEMP B-TREE FOR ORDER BY") || strings.Contains(plan, "SCAN ") {
			t.Errorf("%s: plan scans or sorts:\n%s", tc.name, plan)
		}
	}
}

// queryOf returns the query that defs prepare into dst.
func queryOf(defs []stmtDef, dst **sql.Stmt) string {
	for _, d := range defs {
		if d.dst == dst {
			return d.query
		}
	}
	panic("no such statement")
}

func queryPlan(t *testing.T, db *sql.DB, query string) string {
	t.Helper()
	args := make([]any, params(query))
	for i := range args {
		args[i] = i
	}
	rows, err := db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatalf("explain %q: %v", query, err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		b.WriteString(detail + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// params returns how many parameters query takes: the number of plain ?,
// or the highest ?N.
func params(query string) int {
	plain, top := 0, 0
	for i := 0; i < len(query); i++ {
		if query[i] != '?' {
			continue
		}
		j := i + 1
		n := 0
		for j < len(query) && query[j] >= '0' && query[j] <= '9' {
			n = 10*n + int(query[j]-'0')
			j++
		}
		if j == i+1 {
			plain++
		}
		top = max(top, n)
	}
	return max(plain, top)
}

// TestRouterBatchOutcomes commits hand-made batches that mix the router's
// writes with appends, so that the interactions inside one transaction are
// certain to occur.
func TestRouterBatchOutcomes(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	must := mustOp(t)
	conv := envelope.Conversation{Source: "test", Ref: "thread-1"}
	t0 := time.Date(2026, 6, 18, 12, 0, 0, 0, time.UTC)
	res, err := s.commitBatch(ctx, []writeOp{
		must(appendOp(appendReq("new", "test:0", "before the session"))),
		must(bindOp(store.Binding{SessionID: "new", Conversation: conv}, map[string]string{"a": "b"})),
		must(bindOp(store.Binding{SessionID: "other", Conversation: conv}, nil)), // bound a moment ago
		must(appendOp(appendReq("new", "test:1", "to the new session"))),
		must(claimWorkOp("runtime", "p1", 10, t0, t0.Add(time.Minute))), // sees the append before it
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err == nil {
		t.Error("append before the Bind that creates the session: no error")
	}
	bound := res[1].Val.val.(store.Binding)
	if res[1].Err != nil || !res[1].Val.ok {
		t.Errorf("Bind: %+v, %v; want created", bound, res[1].Err)
	}
	if b := res[2].Val.val.(store.Binding); res[2].Err != nil || res[2].Val.ok || b != bound {
		t.Errorf("second Bind in the batch: %+v (created %v), %v; want the first's binding", b, res[2].Val.ok, res[2].Err)
	}
	if r := res[3]; r.Err != nil || !r.Val.append.Created || r.Val.append.Record.Seq != 1 {
		t.Errorf("append after the Bind: %+v, %v; want seq 1", r.Val.append, r.Err)
	}
	if w, _ := res[4].Val.val.([]store.Work); res[4].Err != nil || len(w) != 1 || w[0] != (store.Work{SessionID: "new", Cursor: 0, LastSeq: 1}) {
		t.Errorf("ClaimWork after the append: %+v, %v", w, res[4].Err)
	}
	if _, err := s.Session(ctx, "other"); err == nil {
		t.Error("the refused Bind created its session")
	}

	// A Bind whose statement fails (its id is taken) fails alone, and the
	// session it created is rolled back with it.
	taken := store.Binding{ID: bound.ID, SessionID: "doomed", Conversation: envelope.Conversation{Source: "test", Ref: "thread-2"}}
	res, err = s.commitBatch(ctx, []writeOp{
		must(bindOp(taken, nil)),
		must(appendOp(appendReq("doomed", "test:1", "to a session that must not exist"))),
		must(appendOp(appendReq("new", "test:2", "beside the failure"))),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err == nil {
		t.Error("Bind with a taken id: no error")
	}
	if res[1].Err == nil {
		t.Error("append to the session of the failed Bind succeeded")
	}
	if r := res[2]; r.Err != nil || r.Val.append.Record.Seq != 2 {
		t.Errorf("append beside the failed Bind: %+v, %v", r.Val.append, r.Err)
	}
	if _, err := s.Session(ctx, "doomed"); err == nil {
		t.Error("the failed Bind's session exists")
	}
}

// TestRouterMigrationKeepsLogs upgrades a database of schema version 1
// holding sessions and records: ClaimWork then finds the records written
// before the router's tables existed.
func TestRouterMigrationKeepsLogs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "switchboard.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`,
		migrations[0],
		`INSERT INTO schema_migrations VALUES (1, 0)`,
		`INSERT INTO sessions (sid, id, state, created_at, updated_at) VALUES (1, 'old', 'idle', 0, 0), (2, 'empty', 'idle', 0, 0)`,
		`INSERT INTO records (sid, seq, envelope_id, direction, stored_at, source, kind, actor_id, actor_display,
			actor_type, conv_source, conv_ref, text, ts)
			VALUES (1, 1, 'test:1', 'inbound', 0, 'test', 'message', 'test:a', '', 'human', 'test', 't', 'one', 0),
			       (1, 2, 'test:2', 'outbound', 0, 'test', 'message', 'test:a', '', 'agent', '', '', 'two', 0)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatalf("Open of a version 1 database: %v", err)
	}
	defer s.Close()
	t0 := time.Date(2026, 6, 18, 12, 0, 0, 0, time.UTC)
	works, err := s.ClaimWork(t.Context(), "runtime", "p1", 10, t0, t0.Add(time.Minute))
	if err != nil || len(works) != 1 || works[0] != (store.Work{SessionID: "old", Cursor: 0, LastSeq: 1}) {
		t.Fatalf("ClaimWork after the upgrade = %+v, %v; want the old session's inbound record", works, err)
	}
	if c, err := s.LatestInbound(t.Context(), "old", 3); err != nil || c != (envelope.Conversation{Source: "test", Ref: "t"}) {
		t.Errorf("LatestInbound after the upgrade = %+v, %v", c, err)
	}
}

// TestOutboxHeads runs random outbox operations and checks after each that
// every conversation with pending deliveries has exactly one head, its
// oldest pending delivery, and no other delivery is a head.
func TestOutboxHeads(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	const records, convs = 40, 4
	if _, _, err := s.CreateSession(ctx, "sess", nil); err != nil {
		t.Fatal(err)
	}
	for i := range records {
		if _, err := s.Append(ctx, appendReq("sess", fmt.Sprint("test:", i), "out")); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 6, 18, 12, 0, 0, 0, time.UTC)
	now := t0
	var leased []store.Delivery
	for step := range 400 {
		now = now.Add(time.Second)
		var what string
		switch op := rng.IntN(10); {
		case op < 3:
			what = "enqueue"
			c := envelope.Conversation{Source: "test", Ref: fmt.Sprint("c", rng.IntN(convs))}
			d := store.Delivery{SessionID: "sess", Seq: 1 + rng.Int64N(records), To: c, NextAttempt: now.Add(time.Duration(rng.IntN(5)) * time.Second)}
			if err := s.Enqueue(ctx, []store.Delivery{d}); err != nil {
				t.Fatal(err)
			}
		case op < 6:
			what = "claim"
			ds, err := s.Claim(ctx, "p", 1+rng.IntN(3), now, now.Add(time.Duration(1+rng.IntN(10))*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			leased = append(leased, ds...)
		case op < 9 && len(leased) > 0:
			what = "settle"
			i := rng.IntN(len(leased))
			d := leased[i]
			leased = append(leased[:i], leased[i+1:]...)
			st := []store.Settlement{
				{Status: store.Delivered, ChannelID: d.ID},
				{Status: store.Pending, NextAttempt: now.Add(3 * time.Second)},
				{Status: store.Dead},
			}[rng.IntN(3)]
			if err := s.Settle(ctx, d.ID, "p", st); err != nil && !errors.Is(err, store.ErrLeaseLost) {
				t.Fatalf("Settle: %v", err) // the lease may have gone: fine; anything else is not
			}
		default:
			what = "retry"
			all, err := s.ListDeliveries(ctx, "", "", 1000)
			if err != nil {
				t.Fatal(err)
			}
			if len(all) == 0 {
				continue
			}
			if _, err := s.RetryDelivery(ctx, all[rng.IntN(len(all))].ID, now); err != nil {
				t.Fatal(err)
			}
		}
		checkHeads(t, s.rdb, fmt.Sprintf("step %d (%s)", step, what))
		if t.Failed() {
			return
		}
	}
}

func checkHeads(t *testing.T, db *sql.DB, when string) {
	t.Helper()
	var bad int
	err := db.QueryRowContext(context.Background(), `SELECT count(*) FROM deliveries d
		WHERE d.head <> (d.status = 'pending' AND d.did = (SELECT min(did) FROM deliveries p
			WHERE p.status = 'pending' AND p.to_source = d.to_source AND p.to_ref = d.to_ref))`).Scan(&bad)
	if err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Errorf("after %s: %d deliveries have a wrong head flag", when, bad)
	}
}
