package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/switchboardhq/switchboard/store"
)

var errAdvanceLeaseLost = fmt.Errorf("sqlite: advance: %w", store.ErrLeaseLost)

// cursorWrites are the writer's statements for cursors. Cursors are only
// read by the writer: ClaimWork leases what it finds.
type cursorWrites struct {
	scanned, topRID, fold, setScanned, work, lease, advance *sql.Stmt
}

func (c *cursorWrites) defs() []stmtDef {
	return []stmtDef{
		{&c.scanned, `SELECT scanned_rid FROM consumers WHERE name = ?`},
		{&c.topRID, `SELECT coalesce(max(rid), 0) FROM records`},
		// The sessions with records for the runtime (Record.ForRuntime)
		// committed since the last fold, and their newest seq: a range of
		// the records table's rowid.
		{&c.fold, `INSERT INTO cursors (consumer, sid, head)
			SELECT ?1, sid, max(seq) FROM records
			WHERE rid > ?2 AND rid <= ?3 AND direction = 'inbound' AND kind <> 'system' AND no_turn = 0 GROUP BY sid
			ON CONFLICT (consumer, sid) DO UPDATE SET head = max(head, excluded.head)`},
		{&c.setScanned, `INSERT INTO consumers (name, scanned_rid) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET scanned_rid = excluded.scanned_rid`},
		// Along the partial index cursors_work: only rows with work.
		{&c.work, `SELECT c.sid, s.id, c.seq, c.head FROM cursors c JOIN sessions s ON s.sid = c.sid
			WHERE c.consumer = ?1 AND c.head > c.seq AND (c.owner IS NULL OR c.lease_until <= ?2)
			ORDER BY c.claimed_at LIMIT ?3`},
		{&c.lease, `UPDATE cursors SET owner = ?, lease_until = ?, claimed_at = ? WHERE consumer = ? AND sid = ?`},
		{&c.advance, `UPDATE cursors SET seq = max(seq, ?), owner = ?, lease_until = ?
			WHERE consumer = ? AND sid = ? AND owner = ?`},
	}
}

// ClaimWork leases to owner, until leaseUntil, up to n sessions whose log
// holds records past consumer's cursor and whose lease is free or expired
// at now (lease_until <= now), and returns them, those claimed longest ago
// first. The sessions owner holds are not returned. Its cost grows with
// the number of sessions that have work and the records appended since the
// consumer's previous call, not with the number of sessions.
func (s *Store) ClaimWork(ctx context.Context, consumer, owner string, n int, now, leaseUntil time.Time) ([]store.Work, error) {
	if n < 1 {
		return nil, nil
	}
	op, err := claimWorkOp(consumer, owner, n, now, leaseUntil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim work: %w", err)
	}
	res, err := s.write(ctx, "claim_work", op)
	if err != nil {
		return nil, err
	}
	works, _ := res.val.([]store.Work) // none when nil
	return works, nil
}

func claimWorkOp(consumer, owner string, n int, now, leaseUntil time.Time) (writeOp, error) {
	if consumer == "" {
		return nil, errors.New("empty consumer")
	}
	if err := store.CheckText("consumer", consumer); err != nil {
		return nil, err
	}
	at, until, err := lease(owner, now, leaseUntil)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, w *writer, _ int64) (groupcommitResult, error) {
		return w.claimWork(ctx, consumer, owner, n, at, until)
	}, nil
}

// lease checks a lease to owner at now until leaseUntil and returns its
// times in Unix nanoseconds.
func lease(owner string, now, leaseUntil time.Time) (at, until int64, err error) {
	if owner == "" {
		return 0, 0, errors.New("empty owner")
	}
	if err := store.CheckText("lease owner", owner); err != nil {
		return 0, 0, err
	}
	if leaseUntil.IsZero() {
		return 0, 0, errors.New("zero lease time")
	}
	if at, err = nanos("now", now); err != nil {
		return 0, 0, err
	}
	if until, err = nanos("lease", leaseUntil); err != nil {
		return 0, 0, err
	}
	return at, until, nil
}

// claimWork leases to owner, at now until leaseUntil, up to n sessions with
// records past consumer's cursor.
func (w *writer) claimWork(ctx context.Context, consumer, owner string, n int, now, leaseUntil int64) (groupcommitResult, error) {
	if err := w.foldHeads(ctx, consumer); err != nil {
		return groupcommitResult{}, err
	}
	rows, err := w.cursors.work.QueryContext(ctx, consumer, now, n)
	if err != nil {
		return groupcommitResult{}, fmt.Errorf("find work: %w", err)
	}
	type found struct {
		sid int64
		store.Work
	}
	fs, err := collect(rows, func(row scanner) (found, error) {
		var f found
		err := row.Scan(&f.sid, &f.SessionID, &f.Cursor, &f.LastSeq)
		return f, err
	})
	if err != nil {
		return groupcommitResult{}, fmt.Errorf("find work: %w", err)
	}
	if len(fs) == 0 {
		return groupcommitResult{}, nil
	}
	works := make([]store.Work, 0, len(fs))
	for _, f := range fs {
		if _, err := w.cursors.lease.ExecContext(ctx, owner, leaseUntil, now, consumer, f.sid); err != nil {
			return groupcommitResult{}, fmt.Errorf("lease work: %w", err)
		}
		works = append(works, f.Work)
	}
	return groupcommitResult{Val: writeResult{val: works}}, nil
}

// foldHeads brings consumer's cursor heads up to date with the records
// committed since its last fold.
func (w *writer) foldHeads(ctx context.Context, consumer string) error {
	var scanned, top int64
	err := w.cursors.scanned.QueryRowContext(ctx, consumer).Scan(&scanned)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read consumer: %w", err)
	}
	if err := w.cursors.topRID.QueryRowContext(ctx).Scan(&top); err != nil {
		return fmt.Errorf("read newest record: %w", err)
	}
	if top <= scanned {
		return nil
	}
	if _, err := w.cursors.fold.ExecContext(ctx, consumer, scanned, top); err != nil {
		return fmt.Errorf("fold new records: %w", err)
	}
	if _, err := w.cursors.setScanned.ExecContext(ctx, consumer, top); err != nil {
		return fmt.Errorf("update consumer: %w", err)
	}
	return nil
}

// Advance sets consumer's cursor for session sessionID to seq (never moving
// it back) and extends owner's lease to leaseUntil, or releases it when
// leaseUntil is zero. It fails with an error wrapping store.ErrLeaseLost
// unless owner holds the lease: it claimed the session and has not released
// it, and no other owner took it over after it expired.
func (s *Store) Advance(ctx context.Context, consumer, sessionID, owner string, seq int64, leaseUntil time.Time) error {
	if err := errors.Join(store.CheckText("consumer", consumer), store.CheckText("lease owner", owner)); err != nil {
		return fmt.Errorf("sqlite: advance: %w", err)
	}
	until, err := optionalNanos("lease", leaseUntil)
	if err != nil {
		return fmt.Errorf("sqlite: advance: %w", err)
	}
	_, err = s.write(ctx, "advance", func(ctx context.Context, w *writer, _ int64) (groupcommitResult, error) {
		return w.advance(ctx, consumer, sessionID, owner, seq, until)
	})
	return err
}

// advance sets consumer's cursor for session sessionID to seq if owner
// holds its lease, and extends the lease to leaseUntil (Unix nanoseconds)
// or releases it (nil).
func (w *writer) advance(ctx context.Context, consumer, sessionID, owner string, seq int64, leaseUntil any) (groupcommitResult, error) {
	bs, err := w.session(ctx, sessionID)
	if err != nil || bs == nil {
		return groupcommitResult{Err: errAdvanceLeaseLost}, err
	}
	var newOwner any
	if leaseUntil != nil {
		newOwner = owner
	}
	res, err := w.cursors.advance.ExecContext(ctx, seq, newOwner, leaseUntil, consumer, bs.sid, owner)
	if err != nil {
		return groupcommitResult{}, fmt.Errorf("update cursor: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return groupcommitResult{}, fmt.Errorf("update cursor: %w", err)
	}
	if n == 0 {
		return groupcommitResult{Err: errAdvanceLeaseLost}, nil
	}
	return groupcommitResult{}, nil
}
