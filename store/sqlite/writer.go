package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/cputime"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/internal/groupcommit"
)

// groupcommitResult is the outcome of one writeOp as the committer reports it.
type groupcommitResult = groupcommit.Result[writeResult]

// Errors the writer hands back per request. They are built once: a batch
// never allocates for the common outcomes.
var (
	errSessionNotFound = fmt.Errorf("sqlite: session: %w", store.ErrNotFound)
	errConflict        = fmt.Errorf("sqlite: append: %w", store.ErrConflict)
)

// writeOp is one write for the single writer: it runs inside the batch's
// IMMEDIATE transaction on the writer connection, with the batch's time now
// (Unix nanoseconds). Each write method builds its own op as a closure over
// its arguments, whose column values the calling goroutine has encoded
// already, so that the writer only runs SQL. A statement failing is the
// returned error (the batch is then retried without the op); an expected
// outcome such as a missing session is the result's Err. An op may run
// again when its batch is retried, so it must report only through its
// result.
type writeOp func(ctx context.Context, w *writer, now int64) (groupcommitResult, error)

// writeResult is the value of one writeOp.
type writeResult struct {
	append store.AppendResult // Append's, not boxed: the hot path
	ok     bool               // CreateSession: created; SetState: changed; Bind: created; CompareAndSetValue: set
	val    any                // any other op's value
}

// maxCachedSessions bounds the writer's session cache; past it the cache is
// emptied and refills from the table.
const maxCachedSessions = 1 << 16

// session is what the writer knows of a session: enough to assign the next
// seq and apply Wake.
type session struct {
	sid     int64
	state   store.State
	lastSeq int64
}

// batchSession is a session as one batch sees and changes it.
type batchSession struct {
	session
	id string
	// publish: a record was added or a session event was journaled (the
	// session was created or its state changed), so its subscribers are
	// signalled after commit.
	publish bool
}

// recordKey is the idempotency key inside the writer.
type recordKey struct {
	sid int64
	id  string
}

// writer owns the writer connection and its statements. Only the committer's
// single worker uses it, so it needs no lock.
//
// It caches sessions between batches. The cache is only valid while no other
// connection writes the file: every batch starts by comparing PRAGMA
// data_version, which changes when another connection (another Store on the
// same file, another process) has committed, and empties the cache if so.
type writer struct {
	begin, commit, rollback, dataVersion, totalChanges *sql.Stmt

	sessionForWrite  *sql.Stmt
	sessionByID      *sql.Stmt
	insertSession    *sql.Stmt
	updateState      *sql.Stmt
	insertRecord     *sql.Stmt
	recordByEnvelope *sql.Stmt
	insertToken      *sql.Stmt
	insertAttempt    *sql.Stmt

	bindings bindingWrites
	cursors  cursorWrites
	outbox   outboxWrites
	kv       kvWrites
	fanOut   fanOutWrites

	all []*sql.Stmt // every prepared statement, to close

	cache   map[string]session // across batches; see above
	version int64              // data_version the cache is valid for

	// The webhook destinations, for fan-out: valid, like cache, while no
	// other connection commits, and until a webhook write (see writeFunc).
	dests      []store.Webhook
	destsValid bool
	eventDests bool // some destination takes session events

	// Scratch reused from batch to batch.
	batch    map[string]*batchSession // nil value: known not to exist
	records  map[recordKey]store.Record
	appended []store.Record // the records the batch added, in order
	// tail is the store's: filled after each commit, and read for the
	// records of deliveries.
	tail *store.Tail
}

func newWriter(ctx context.Context, conn *sql.Conn, tail *store.Tail) (*writer, error) {
	w := &writer{
		tail:    tail,
		cache:   make(map[string]session),
		version: -1,
		batch:   make(map[string]*batchSession),
		records: make(map[recordKey]store.Record),
	}
	stmts := []stmtDef{
		{&w.begin, `BEGIN IMMEDIATE`},
		{&w.commit, `COMMIT`},
		{&w.rollback, `ROLLBACK`},
		{&w.dataVersion, `PRAGMA data_version`},
		{&w.totalChanges, `SELECT total_changes()`},
		{&w.sessionForWrite, `SELECT sid, state, coalesce((SELECT max(seq) FROM records r WHERE r.sid = s.sid), 0)
			FROM sessions s WHERE id = ?`},
		{&w.sessionByID, sessionSelect + ` WHERE s.id = ?`},
		{&w.insertSession, `INSERT INTO sessions (id, state, metadata, created_at, updated_at)
			VALUES (?, 'idle', ?, ?, ?) ON CONFLICT (id) DO NOTHING`},
		{&w.updateState, `UPDATE sessions SET state = ?, updated_at = ? WHERE sid = ?`},
		{&w.insertRecord, `INSERT INTO records (sid, seq, envelope_id, direction, stored_at, source, kind,
			actor_id, actor_display, actor_type, conv_source, conv_ref, text, refs, ts, raw, no_turn)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (sid, envelope_id) DO NOTHING`},
		{&w.recordByEnvelope, `SELECT ` + recordColumns + ` FROM records WHERE sid = ? AND envelope_id = ?`},
		{&w.insertToken, `INSERT INTO tokens (id, hash, name, scopes, sessions, created_at) VALUES (?, ?, ?, ?, ?, ?)`},
		{&w.insertAttempt, `INSERT INTO webhook_attempts (id, webhook_id, delivery_id, event_id,
			session_id, seq, attempt, status_code, latency_ns, response, error, at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`},
	}
	stmts = append(stmts, w.bindings.defs()...)
	stmts = append(stmts, w.cursors.defs()...)
	stmts = append(stmts, w.outbox.defs()...)
	stmts = append(stmts, w.kv.defs()...)
	stmts = append(stmts, w.fanOut.defs()...)
	for _, st := range stmts {
		p, err := conn.PrepareContext(ctx, st.query)
		if err != nil {
			w.close()
			return nil, fmt.Errorf("prepare %q: %w", st.query, err)
		}
		*st.dst = p
		w.all = append(w.all, p)
	}
	return w, nil
}

// stmtDef is a statement to prepare into *dst.
type stmtDef struct {
	dst   **sql.Stmt
	query string
}

func (w *writer) close() error {
	var errs []error
	for _, st := range w.all {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

// commitBatch is the group committer's CommitFunc. It commits ops in one
// transaction. When a statement of one op fails (a constraint that request
// breaks, say), nothing was committed: that op gets the error and the others
// are committed again without it, so one bad request cannot fail its
// neighbours. A failure of the transaction itself (begin, commit, I/O) fails
// the whole batch.
func (s *Store) commitBatch(ctx context.Context, ops []writeOp) ([]groupcommitResult, error) {
	// The committer runs this on its one worker, locked to its thread
	// (Open): the thread's CPU time is the writer's.
	if start, ok := cputime.Thread(); ok {
		defer func() {
			// Called on another goroutine (a test's), the two readings may
			// be of different threads.
			if end, _ := cputime.Thread(); end > start {
				s.metrics.ObserveWriterCPU(end - start)
			}
		}()
	}
	results := make([]groupcommitResult, len(ops))
	failed, err := s.w.commitTx(ctx, ops, results, &s.hub, s.metrics)
	if err == nil {
		return results, nil
	}
	s.metrics.Error("commit")
	s.log.Warn("sqlite: group commit failed", "ops", len(ops), "err", err)
	pending := make([]int, len(ops)) // indexes into ops of the ops to retry
	for i := range pending {
		pending[i] = i
	}
	retry := make([]writeOp, 0, len(ops))
	for {
		// The file cannot take writes (full, read-only, I/O): no request is
		// to blame, and retrying the others one by one would only fail
		// each again.
		if failed < 0 || unavailable(err) {
			return nil, fmt.Errorf("sqlite: commit: %w", err)
		}
		results[pending[failed]] = groupcommitResult{Err: fmt.Errorf("sqlite: commit: %w", err)}
		pending = slices.Delete(pending, failed, failed+1)
		if len(pending) == 0 {
			return results, nil
		}
		retry = retry[:0]
		for _, i := range pending {
			retry = append(retry, ops[i])
		}
		sub := make([]groupcommitResult, len(retry))
		if failed, err = s.w.commitTx(ctx, retry, sub, &s.hub, s.metrics); err == nil {
			for j, i := range pending {
				results[i] = sub[j]
			}
			return results, nil
		}
		s.log.Warn("sqlite: group commit retry failed", "ops", len(retry), "err", err)
	}
}

// commitTx runs ops in one IMMEDIATE transaction, writing their outcomes to
// results. A non-nil error means the transaction was rolled back and results
// are meaningless; failed is then the index of the op whose statement
// failed, or -1 when the transaction itself failed. After the commit,
// subscribers of every session that got a record or a session event are
// signalled.
func (w *writer) commitTx(ctx context.Context, ops []writeOp, results []groupcommitResult, hub *store.Hub, m *store.Metrics) (failed int, err error) {
	clear(w.batch)
	clear(w.records)
	w.appended = w.appended[:0]

	if _, err := w.begin.ExecContext(ctx); err != nil {
		return -1, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			// After a failed COMMIT the transaction may still be open; after
			// some errors SQLite has rolled it back already and this fails
			// harmlessly. What the batch cached may not have happened.
			_, _ = w.rollback.ExecContext(ctx)
			clear(w.cache)
			w.destsValid = false
			w.tail.Reset() // a failed COMMIT may have committed
		}
	}()
	var version int64
	if err := w.dataVersion.QueryRowContext(ctx).Scan(&version); err != nil {
		return -1, fmt.Errorf("read data version: %w", err)
	}
	if version != w.version {
		clear(w.cache)
		w.destsValid = false
		w.tail.Reset()
		w.version = version
	}

	// Rows changed by the batch, triggers included, for the metrics.
	var changesBefore, changesAfter int64
	if err := w.totalChanges.QueryRowContext(ctx).Scan(&changesBefore); err != nil {
		return -1, fmt.Errorf("read changes: %w", err)
	}
	now := time.Now().UnixNano()
	for i, op := range ops {
		var err error
		if results[i], err = op(ctx, w, now); err != nil {
			return i, err
		}
	}
	if err := w.totalChanges.QueryRowContext(ctx).Scan(&changesAfter); err != nil {
		return -1, fmt.Errorf("read changes: %w", err)
	}
	if _, err := w.commit.ExecContext(ctx); err != nil {
		return -1, fmt.Errorf("commit: %w", err)
	}
	if rows := changesAfter - changesBefore; rows > 0 {
		m.ObserveCommit(rows)
	}

	if len(w.cache)+len(w.batch) > maxCachedSessions {
		clear(w.cache)
	}
	w.tail.Append(w.appended) // before the subscribers hear of them
	for i := range w.appended {
		if w.appended[i].ForRuntime() {
			hub.PublishWork()
			break
		}
	}
	for id, bs := range w.batch {
		if bs == nil {
			continue
		}
		w.cache[id] = bs.session
		if bs.publish {
			hub.Publish(id)
		}
	}
	return -1, nil
}

// session returns the batch's view of session id, or nil when it does not
// exist.
func (w *writer) session(ctx context.Context, id string) (*batchSession, error) {
	if bs, ok := w.batch[id]; ok {
		return bs, nil
	}
	bs := &batchSession{id: id}
	if c, ok := w.cache[id]; ok {
		bs.session = c
	} else {
		var state string
		err := w.sessionForWrite.QueryRowContext(ctx, id).Scan(&bs.sid, &state, &bs.lastSeq)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			w.batch[id] = nil
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("read session: %w", err)
		}
		bs.state = store.State(state)
	}
	w.batch[id] = bs
	return bs, nil
}

// setSessionState changes a session's state in the table and the batch,
// and fans out the session event.
func (w *writer) setSessionState(ctx context.Context, bs *batchSession, state store.State, now int64) error {
	if _, err := w.updateState.ExecContext(ctx, string(state), now, bs.sid); err != nil {
		return fmt.Errorf("update session state: %w", err)
	}
	bs.state = state
	bs.publish = true
	return w.fanOutEvent(ctx, bs, now)
}

// newSession inserts session id, idle, with metadata meta (JSON text) and
// created at now, and enters it in the batch. It returns nil when a session
// of that id exists already.
func (w *writer) newSession(ctx context.Context, id, meta string, now int64) (*batchSession, error) {
	res, err := w.insertSession.ExecContext(ctx, id, meta, now, now)
	if err != nil {
		return nil, fmt.Errorf("insert session: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return nil, fmt.Errorf("insert session: %w", err)
	}
	if n == 0 {
		return nil, nil
	}
	sid, err := res.LastInsertId()
	if err != nil {
		return nil, fmt.Errorf("insert session: %w", err)
	}
	bs := &batchSession{session: session{sid: sid, state: store.Idle}, id: id, publish: true}
	w.batch[id] = bs // it may have been known as missing
	if err := w.fanOutEvent(ctx, bs, now); err != nil {
		return nil, err
	}
	return bs, nil
}

func (w *writer) append(ctx context.Context, op *appendArgs, now int64) (groupcommitResult, error) {
	bs, err := w.session(ctx, op.req.SessionID)
	if err != nil || bs == nil {
		return groupcommitResult{Err: errSessionNotFound}, err
	}
	e := &op.req.Envelope
	key := recordKey{bs.sid, e.ID}
	orig, seen := w.records[key]
	if !seen {
		seq := bs.lastSeq + 1
		res, err := w.insertRecord.ExecContext(ctx, bs.sid, seq, e.ID, string(op.req.Direction), now,
			e.Source, string(e.Kind), e.Actor.ID, e.Actor.Display, string(e.Actor.Type),
			e.Conversation.Source, e.Conversation.Ref, e.Text, op.refs, op.tsNano, []byte(e.Raw), op.req.NoTurn)
		if err != nil {
			return groupcommitResult{}, fmt.Errorf("insert record: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return groupcommitResult{}, fmt.Errorf("insert record: %w", err)
		}
		if n == 1 {
			bs.lastSeq = seq
			bs.publish = true
			rec := store.Record{
				SessionID: op.req.SessionID,
				Seq:       seq,
				Direction: op.req.Direction,
				Envelope:  *e,
				StoredAt:  time.Unix(0, now).UTC(),
				NoTurn:    op.req.NoTurn,
			}
			// The record's deliveries, then its state change's: an event
			// is placed after the record.
			if err := w.fanOutRecord(ctx, bs, &rec, now); err != nil {
				return groupcommitResult{}, err
			}
			switch {
			case op.req.Wake && bs.state == store.Idle:
				if err := w.setSessionState(ctx, bs, store.Running, now); err != nil {
					return groupcommitResult{}, err
				}
			case op.req.Rest && !op.req.Wake && bs.state == store.Running:
				if err := w.setSessionState(ctx, bs, store.Idle, now); err != nil {
					return groupcommitResult{}, err
				}
			}
			rec.Envelope.TS = time.Unix(0, op.tsNano).UTC()
			w.records[key] = rec
			w.appended = append(w.appended, rec)
			return groupcommitResult{Val: writeResult{append: store.AppendResult{
				Record: rec, Created: true, State: bs.state,
			}}}, nil
		}
		// Committed by an earlier transaction: fetch the original.
		orig, err = scanRecord(w.recordByEnvelope.QueryRowContext(ctx, bs.sid, e.ID), op.req.SessionID)
		if err != nil {
			return groupcommitResult{}, fmt.Errorf("read original record: %w", err)
		}
		w.records[key] = orig
	}
	out := groupcommitResult{Val: writeResult{append: store.AppendResult{Record: orig, State: bs.state}}}
	if !envelope.Equivalent(&orig.Envelope, e) {
		out.Err = errConflict
	}
	return out, nil
}

func (w *writer) createSession(ctx context.Context, id, meta string, now int64) (groupcommitResult, error) {
	bs, err := w.newSession(ctx, id, meta, now)
	if err != nil {
		return groupcommitResult{}, err
	}
	if bs != nil {
		sess, err := decodeSession(id, string(store.Idle), meta, now, now, 0)
		if err != nil {
			return groupcommitResult{}, err
		}
		return groupcommitResult{Val: writeResult{val: sess, ok: true}}, nil
	}
	// The table is up to date with this batch's own writes.
	sess, err := scanSession(w.sessionByID.QueryRowContext(ctx, id))
	if err != nil {
		return groupcommitResult{}, fmt.Errorf("read session: %w", err)
	}
	return groupcommitResult{Val: writeResult{val: sess}}, nil
}

func (w *writer) setState(ctx context.Context, id string, state store.State, now int64) (groupcommitResult, error) {
	bs, err := w.session(ctx, id)
	if err != nil || bs == nil {
		return groupcommitResult{Err: errSessionNotFound}, err
	}
	if bs.state == state {
		return groupcommitResult{}, nil
	}
	if err := w.setSessionState(ctx, bs, state, now); err != nil {
		return groupcommitResult{}, err
	}
	return groupcommitResult{Val: writeResult{ok: true}}, nil
}
