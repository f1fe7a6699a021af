package postgres

import (
	"context"
	"regexp"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchboardhq/switchboard/store"
)

// writeTracer counts, for store.Metrics, the transactions of the pool that
// wrote and the rows they wrote: the figures that say what a message costs.
//
// It follows each connection's transaction from the statements' ends: a
// statement that writes marks the connection's transaction as writing; the
// transaction is counted when it commits, at an explicit COMMIT or, for a
// statement or batch run outside an explicit transaction, when it ends with
// the connection idle. A transaction whose writes changed no row is not
// counted. Rows are what the command tags report: the rows a
// plain INSERT, UPDATE or DELETE changed, and the rows that a statement
// whose writes sit in a CTE returns. Rows written by triggers (the journal,
// pending work) are not seen here.
type writeTracer struct {
	metrics *store.Metrics
	mu      sync.Mutex
	conns   map[*pgx.Conn]*txCount
	// writers caches, by statement text, whether a statement that
	// returns rows writes (in a CTE): matching writes against the long
	// text of every such statement cost a sixth of the gateway's CPU.
	writers sync.Map // string → bool
	cached  atomic.Int64
}

// maxCachedStatements bounds writeTracer.writers. The store's statements
// are a fixed set, but a statement built with one placeholder per row
// has a text per row count.
const maxCachedStatements = 1024

// txCount is what one connection's open transaction has written so far.
type txCount struct {
	wrote bool
	rows  int64
}

var (
	_ pgx.QueryTracer = (*writeTracer)(nil)
	_ pgx.BatchTracer = (*writeTracer)(nil)
)

// writes matches a statement that writes rows.
var writes = regexp.MustCompile(`(?i)\b(insert\s+into|delete\s+from|update\s+[a-z_]+(\s+[a-z_]+)?\s+set)\b`)

func newWriteTracer(m *store.Metrics) *writeTracer {
	return &writeTracer{metrics: m, conns: map[*pgx.Conn]*txCount{}}
}

func (t *writeTracer) count(conn *pgx.Conn) *txCount {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.conns[conn]
	if c == nil {
		c = &txCount{}
		t.conns[conn] = c
	}
	return c
}

// forget drops a closing connection's state.
func (t *writeTracer) forget(conn *pgx.Conn) {
	t.mu.Lock()
	delete(t.conns, conn)
	t.mu.Unlock()
}

// statement accounts for one statement's end; it reports whether the
// statement ended the transaction (COMMIT or ROLLBACK).
func (t *writeTracer) statement(c *txCount, sql string, tag pgconn.CommandTag, err error) (ended bool) {
	switch {
	case err != nil:
		return false
	case tag.String() == "COMMIT":
		t.settle(c, true)
		return true
	case tag.String() == "ROLLBACK":
		t.settle(c, false)
		return true
	}
	// A write that changed nothing (an idle poll's claim) writes no WAL and
	// is not counted, as on SQLite: counted, a gateway with nothing to do
	// looked busy, and bench --preload waited for its store to go quiet
	// in vain.
	if n := tag.RowsAffected(); n > 0 && (tag.Insert() || tag.Update() || tag.Delete() || tag.Select() && t.writes(sql)) {
		c.wrote = true
		c.rows += n
	}
	return false
}

// writes reports whether sql, a statement that returns rows, writes them
// in a CTE.
func (t *writeTracer) writes(sql string) bool {
	if w, ok := t.writers.Load(sql); ok {
		return w.(bool)
	}
	w := writes.MatchString(sql)
	if t.cached.Load() < maxCachedStatements {
		if _, loaded := t.writers.LoadOrStore(sql, w); !loaded {
			t.cached.Add(1)
		}
	}
	return w
}

// settle ends c's transaction, counting it when it committed writes.
func (t *writeTracer) settle(c *txCount, committed bool) {
	if committed && c.wrote {
		t.metrics.ObserveCommit(c.rows)
	}
	*c = txCount{}
}

// querySQL is the context key of a traced query's text.
type querySQL struct{}

func (t *writeTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, querySQL{}, data.SQL)
}

func (t *writeTracer) TraceQueryEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryEndData) {
	c := t.count(conn)
	sql, _ := ctx.Value(querySQL{}).(string)
	if !t.statement(c, sql, data.CommandTag, data.Err) && conn.PgConn().TxStatus() == 'I' {
		t.settle(c, data.Err == nil) // autocommitted
	}
}

func (t *writeTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

func (t *writeTracer) TraceBatchQuery(_ context.Context, conn *pgx.Conn, data pgx.TraceBatchQueryData) {
	t.statement(t.count(conn), data.SQL, data.CommandTag, data.Err)
}

func (t *writeTracer) TraceBatchEnd(_ context.Context, conn *pgx.Conn, data pgx.TraceBatchEndData) {
	if conn.PgConn().TxStatus() == 'I' {
		// A batch outside an explicit transaction runs as one implicit
		// transaction, committed at its end unless it failed.
		t.settle(t.count(conn), data.Err == nil)
	}
}
