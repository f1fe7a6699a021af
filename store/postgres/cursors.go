package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboardhq/switchboard/store"
)

var _ store.Cursors = (*Store)(nil)

// How cursors find work
//
// A consumer's work is the sessions whose woken_seq (the newest record a
// runtime acts on: inbound, not a system notice) is past its cursor. So
// that finding it never scans every session, the table pending_work holds,
// per consumer, the sessions that may be behind: a trigger on sessions adds
// a row for every consumer in the transaction that raises woken_seq, and
// Advance deletes the consumer's row once its cursor has reached woken_seq.
// Advance decides that under a share lock on the session row, which waits
// for an appender in flight and keeps the next one out until it commits, so
// a row is never deleted while an append the consumer has not seen commits.
// The same trigger creates a session's cursor rows with its first record,
// so every pending row has its cursor row to lock and lease.
//
// The trigger knows the consumers from the table consumers. A consumer's
// first ClaimWork registers it and, in the same transaction, creates the
// cursor rows of the sessions that have records and marks those behind,
// holding a SHARE lock on sessions so that no append slips between the
// trigger's view of the consumers and that scan.

// ClaimWork leases to owner, until leaseUntil, up to n sessions whose log
// holds records past the consumer's cursor and whose lease is free or
// expired at now, oldest pending first. The sessions owner holds are not
// returned, and their rows are neither locked nor written. Two processes claiming
// at once never get the same session: candidates are locked with SKIP
// LOCKED and rechecked after locking. It costs one round trip (a few more
// for a consumer's first call in this process).
func (s *Store) ClaimWork(ctx context.Context, consumer, owner string, n int, now, leaseUntil time.Time) ([]store.Work, error) {
	if err := s.checkOpen("claim work"); err != nil {
		return nil, err
	}
	if err := checkLeaseArgs(consumer, owner); err != nil {
		return nil, fmt.Errorf("postgres: claim work: %w", err)
	}
	if n <= 0 {
		return nil, nil
	}
	if err := s.registerConsumer(ctx, consumer); err != nil {
		return nil, s.fail("claim work", err)
	}
	// Every lookup is a probe of a primary key whatever the planner
	// estimates: the candidates are found through pending_work's index, each
	// checked by LATERAL subqueries with LIMIT 1 (which keep them from being
	// flattened into a join the planner may cost from stale statistics: after
	// a burst over 100,000 sessions, before ANALYZE, the plain join took a
	// second per call), then each candidate's cursor is locked with SKIP
	// LOCKED and rechecked after locking, so a row another process claimed
	// since this statement's snapshot fails the lease condition. A locked
	// candidate is skipped, so a call may claim fewer than n.
	rows, err := s.pool.Query(ctx, `WITH candidates AS MATERIALIZED (
			SELECT p.session_id, p.since
			FROM pending_work p
			CROSS JOIN LATERAL (
				SELECT 1 FROM cursors c
				WHERE c.consumer = p.consumer AND c.session_id = p.session_id
					AND (c.lease_owner = '' OR c.lease_until <= $3)
					AND c.seq < (SELECT s.woken_seq FROM sessions s WHERE s.id = p.session_id)
				LIMIT 1
			) AS behind
			WHERE p.consumer = $1
			ORDER BY p.since, p.session_id
			LIMIT $4
		), claimable AS (
			SELECT l.session_id, candidates.since
			FROM candidates
			CROSS JOIN LATERAL (
				SELECT c.session_id FROM cursors c
				WHERE c.consumer = $1 AND c.session_id = candidates.session_id
					AND (c.lease_owner = '' OR c.lease_until <= $3)
					AND c.seq < (SELECT s.woken_seq FROM sessions s WHERE s.id = c.session_id)
				FOR UPDATE SKIP LOCKED
			) AS l
		), claimed AS (
			UPDATE cursors c SET lease_owner = $2, lease_until = $5
			FROM claimable
			WHERE c.consumer = $1 AND c.session_id = claimable.session_id
			RETURNING c.session_id, c.seq
		)
		SELECT claimed.session_id, claimed.seq, s.woken_seq
		FROM claimed
		JOIN claimable ON claimable.session_id = claimed.session_id
		JOIN sessions s ON s.id = claimed.session_id
		ORDER BY claimable.since, claimed.session_id`,
		consumer, owner, now, n, leaseUntil)
	if err != nil {
		return nil, s.fail("claim work", err)
	}
	works, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Work, error) {
		var w store.Work
		err := row.Scan(&w.SessionID, &w.Cursor, &w.LastSeq)
		return w, err
	})
	if err != nil {
		return nil, s.fail("claim work", err)
	}
	return works, nil
}

// Advance sets the consumer's cursor for the session to seq (never moving
// it back) and extends owner's lease to leaseUntil, or releases it when
// leaseUntil is zero. It fails with ErrLeaseLost, changing nothing, when
// owner does not hold the lease: another process took it over after it
// expired, or owner released it. An expired lease nobody took over is still
// owner's. It costs one round trip.
func (s *Store) Advance(ctx context.Context, consumer, sessionID, owner string, seq int64, leaseUntil time.Time) error {
	if err := s.checkOpen("advance"); err != nil {
		return err
	}
	if err := checkLeaseArgs(consumer, owner); err != nil {
		return fmt.Errorf("postgres: advance: %w", err)
	}
	b := &pgx.Batch{}
	b.Queue(`UPDATE cursors SET
			seq = greatest(seq, $4),
			lease_owner = CASE WHEN $5::timestamptz IS NULL THEN '' ELSE lease_owner END,
			lease_until = $5
		WHERE consumer = $1 AND session_id = $2 AND lease_owner = $3
		RETURNING seq`,
		consumer, sessionID, owner, seq, nullTime(leaseUntil))
	// When the cursor has caught up in this statement's snapshot, lock the
	// session row (waiting for an appender in flight) and recheck against
	// the newest last_seq before forgetting the pending work.
	b.Queue(`WITH caught_up AS MATERIALIZED (
			SELECT s.id FROM sessions s
			WHERE s.id = $2 AND s.woken_seq <= (
				SELECT c.seq FROM cursors c WHERE c.consumer = $1 AND c.session_id = $2)
			FOR SHARE OF s
		)
		DELETE FROM pending_work p USING caught_up
		WHERE p.consumer = $1 AND p.session_id = caught_up.id`,
		consumer, sessionID)
	held := false
	err := withBatch(s.pool.SendBatch(ctx, b), func(br pgx.BatchResults) error {
		var newSeq int64
		switch err := br.QueryRow().Scan(&newSeq); {
		case err == nil:
			held = true
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		_, err := br.Exec()
		return err
	})
	if err != nil {
		return s.fail("advance", err)
	}
	if !held {
		return fmt.Errorf("postgres: advance %s cursor of %q for %s: %w", consumer, sessionID, owner, store.ErrLeaseLost)
	}
	return nil
}

// registerConsumer makes sure consumer is in the consumers table, so that
// appends create its cursor rows and mark its work, and, when it registers
// it, that every session with records has the consumer's cursor row and
// those behind are marked. It remembers consumers known to be registered,
// so it costs nothing after a consumer's first call.
func (s *Store) registerConsumer(ctx context.Context, consumer string) error {
	if _, ok := s.consumers.Load(consumer); ok {
		return nil
	}
	var known bool
	if err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM consumers WHERE name = $1)", consumer).Scan(&known); err != nil {
		return err
	}
	if !known {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			// SHARE waits for appenders holding ROW EXCLUSIVE and keeps new
			// ones out until commit: an append either committed before the
			// scan below (which sees its last_seq) or runs its trigger after
			// this transaction (and sees the consumer).
			if _, err := tx.Exec(ctx, "LOCK TABLE sessions IN SHARE MODE"); err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, "INSERT INTO consumers (name) VALUES ($1) ON CONFLICT DO NOTHING", consumer)
			if err != nil || tag.RowsAffected() == 0 {
				return err // registered meanwhile by another process, with its backlog
			}
			_, err = tx.Exec(ctx, `INSERT INTO cursors (consumer, session_id)
				SELECT $1, id FROM sessions WHERE last_seq > 0
				ORDER BY id
				ON CONFLICT DO NOTHING`, consumer)
			if err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO pending_work (consumer, session_id)
				SELECT $1, s.id FROM sessions s
				JOIN cursors c ON c.consumer = $1 AND c.session_id = s.id
				WHERE s.woken_seq > c.seq
				ORDER BY s.id
				ON CONFLICT DO NOTHING`, consumer)
			return err
		})
		if err != nil {
			return fmt.Errorf("register consumer %q: %w", consumer, err)
		}
		s.log.Info("postgres: registered cursor consumer", "consumer", consumer)
	}
	s.consumers.Store(consumer, true)
	return nil
}

func checkLeaseArgs(consumer, owner string) error {
	switch {
	case consumer == "":
		return errors.New("consumer is empty")
	case owner == "":
		return errors.New("lease owner is empty")
	}
	return errors.Join(store.CheckText("consumer", consumer), store.CheckText("lease owner", owner))
}
