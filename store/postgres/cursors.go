package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboardhq/switchboard/store"
)

var _ store.Cursors = (*Store)(nil)

// How cursors find work
//
// A consumer's work is the sessions whose woken_seq (the newest record a
// runtime acts on: inbound, not a system notice, not appended NoTurn) is
// past its cursor. So that finding it never scans every session, the
// table pending_work holds, per consumer, the sessions that may be
// behind: a trigger on sessions adds
// a row for every consumer, holding the new woken_seq, in the transaction
// that raises woken_seq (or raises the row's seq), and Advance deletes the
// consumer's row once its cursor has reached the row's seq. The two meet
// on the row's lock, so a row is never deleted while an append the
// consumer has not seen commits: a delete waits for the append that
// updated the row and rechecks its seq; an append waits for the delete and
// then inserts the row anew.
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
// expired at now, in the order their work became pending. The sessions
// owner holds are not returned, and their rows are neither locked nor
// written. Two processes claiming at once never get the same session:
// candidates are locked with SKIP LOCKED and rechecked after locking. It
// costs one round trip (a few more for a consumer's first call in this
// process).
//
// A claim resumes where this process's last one left off (see claimFrom),
// so that it does not walk, every time, the index entries of the work
// done since autovacuum last ran: a drain of 100,000 sessions' backlog,
// each claim walking from the start, slowed to 150 sessions a second.
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
	from, err := s.registerConsumer(ctx, consumer)
	if err != nil {
		return nil, s.fail("claim work", err)
	}
	since, wrap := from.start(time.Now())
	rows, err := s.pool.Query(ctx, claimWorkSQL, consumer, owner, now, n, leaseUntil, since, wrap)
	if err != nil {
		return nil, s.fail("claim work", err)
	}
	var newest time.Time
	works, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Work, error) {
		var w store.Work
		var at time.Time
		err := row.Scan(&w.SessionID, &w.Cursor, &w.LastSeq, &at)
		if at.After(newest) {
			newest = at
		}
		return w, err
	})
	if err != nil {
		return nil, s.fail("claim work", err)
	}
	from.claimed(newest)
	return works, nil
}

// claimWorkSQL claims work ($4 sessions at most) for consumer $1 and owner
// $2, at $3 until $5. Its candidates come from pending_work's since index
// from $6 on, then, when $7, from before $6. Every lookup is a probe of a
// primary key whatever the planner estimates: each candidate is checked by
// LATERAL subqueries with LIMIT 1 (which keep them from being flattened
// into a join the planner may cost from stale statistics: after a burst
// over 100,000 sessions, before ANALYZE, the plain join took a second per
// call), then its cursor is locked with SKIP LOCKED and rechecked after
// locking, so a row another process claimed since this statement's
// snapshot fails the lease condition. A locked candidate is skipped, so a
// call may claim fewer than $4. The claimed cursors are updated through
// the row versions locked (their ctid, which the lock keeps until commit),
// one TID probe each: joined to the claimable rows by key alone, or given
// the keys as an array, the update was planned as a scan of every cursor
// of the consumer, a read of every session per claim.
const claimWorkSQL = `WITH candidates AS MATERIALIZED (
		SELECT * FROM (
			(SELECT p.session_id, p.since
			FROM pending_work p
			CROSS JOIN LATERAL (` + claimBehindSQL + `) AS behind
			WHERE p.consumer = $1 AND p.since >= $6
			ORDER BY p.since, p.session_id
			LIMIT $4)
			UNION ALL
			(SELECT p.session_id, p.since
			FROM pending_work p
			CROSS JOIN LATERAL (` + claimBehindSQL + `) AS behind
			WHERE $7 AND p.consumer = $1 AND p.since < $6
			ORDER BY p.since, p.session_id
			LIMIT $4)
		) AS u
		LIMIT $4
	), claimable AS (
		SELECT l.session_id, l.ctid, candidates.since
		FROM candidates
		CROSS JOIN LATERAL (
			SELECT c.session_id, c.ctid FROM cursors c
			WHERE c.consumer = $1 AND c.session_id = candidates.session_id AND ` + claimableCursorSQL + `
			FOR UPDATE SKIP LOCKED
		) AS l
	), claimed AS (
		UPDATE cursors c SET lease_owner = $2, lease_until = $5
		FROM claimable
		WHERE c.ctid = claimable.ctid AND c.consumer = $1 AND c.session_id = claimable.session_id
		RETURNING c.session_id, c.seq
	)
	SELECT claimed.session_id, claimed.seq, s.woken_seq, claimable.since
	FROM claimed
	JOIN claimable ON claimable.session_id = claimed.session_id
	JOIN sessions s ON s.id = claimed.session_id
	ORDER BY claimable.since, claimed.session_id`

// claimBehindSQL finds whether pending_work row p's session is behind and
// free to claim.
const claimBehindSQL = `SELECT 1 FROM cursors c
	WHERE c.consumer = p.consumer AND c.session_id = p.session_id AND ` + claimableCursorSQL + `
	LIMIT 1`

// claimableCursorSQL holds for cursor c when its lease is free or expired
// at $3 and it is behind its session's newest record for the runtime.
const claimableCursorSQL = `(c.lease_owner = '' OR c.lease_until <= $3)
	AND c.seq < (SELECT s.woken_seq FROM sessions s WHERE s.id = c.session_id)`

// claimFrom is where a consumer's claims in this process resume, in
// pending_work's since order.
//
// Work is deleted from pending_work once done, but its index entries stay
// until a vacuum, at the head of the since order, where the oldest work
// is. A claim from the start walks them all, and the more work was done
// since the last vacuum (or the longer autovacuum is off), the longer the
// walk. So a claim starts at the newest work this process claimed, less
// claimResumeMargin (work whose transaction began earlier but committed
// later has an older since). What is left behind that point is the work
// in hand, here or elsewhere, and the work of a lease that ran out; a
// claim looks there too when the last such look was claimWrapEvery ago.
// A session released with work left is given a new since (Advance), so
// that the next claim finds it ahead.
type claimFrom struct {
	mu     sync.Mutex
	newest time.Time // the newest since claimed; zero: none yet
	wrapAt time.Time // when the next claim looks before the start too
}

const (
	claimResumeMargin = time.Second
	claimWrapEvery    = time.Second
)

// start returns where a claim at now starts, and whether it also looks
// before that.
func (f *claimFrom) start(now time.Time) (since time.Time, wrap bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.newest.IsZero() {
		return time.Unix(0, 0), false
	}
	if wrap = !now.Before(f.wrapAt); wrap {
		f.wrapAt = now.Add(claimWrapEvery)
	}
	return f.newest.Add(-claimResumeMargin), wrap
}

// claimed moves the start on to newest, the newest since of a claim.
func (f *claimFrom) claimed(newest time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if newest.After(f.newest) {
		f.newest = newest
	}
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
	// Forget the pending work the cursor has reached (see migration 12 for
	// why an append in flight is never lost by it).
	b.Queue(`DELETE FROM pending_work
		WHERE consumer = $1 AND session_id = $2
			AND seq <= (SELECT c.seq FROM cursors c WHERE c.consumer = $1 AND c.session_id = $2)`,
		consumer, sessionID)
	if leaseUntil.IsZero() {
		// Released with work left: it becomes pending anew, ahead of
		// where claims resume (see claimFrom).
		b.Queue(`UPDATE pending_work SET since = now()
			WHERE consumer = $1 AND session_id = $2
				AND (SELECT c.lease_owner FROM cursors c WHERE c.consumer = $1 AND c.session_id = $2) = ''`,
			consumer, sessionID)
	}
	held := false
	err := withBatch(s.pool.SendBatch(ctx, b), func(br pgx.BatchResults) error {
		var newSeq int64
		switch err := br.QueryRow().Scan(&newSeq); {
		case err == nil:
			held = true
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if _, err := br.Exec(); err != nil {
			return err
		}
		if leaseUntil.IsZero() {
			_, err := br.Exec()
			return err
		}
		return nil
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
// with where their claims resume, so it costs nothing after a consumer's
// first call.
func (s *Store) registerConsumer(ctx context.Context, consumer string) (*claimFrom, error) {
	if from, ok := s.consumers.Load(consumer); ok {
		return from.(*claimFrom), nil
	}
	var known bool
	if err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM consumers WHERE name = $1)", consumer).Scan(&known); err != nil {
		return nil, err
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
			_, err = tx.Exec(ctx, `INSERT INTO pending_work (consumer, session_id, seq)
				SELECT $1, s.id, s.woken_seq FROM sessions s
				JOIN cursors c ON c.consumer = $1 AND c.session_id = s.id
				WHERE s.woken_seq > c.seq
				ORDER BY s.id
				ON CONFLICT DO NOTHING`, consumer)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("register consumer %q: %w", consumer, err)
		}
		s.log.Info("postgres: registered cursor consumer", "consumer", consumer)
	}
	from, _ := s.consumers.LoadOrStore(consumer, &claimFrom{})
	return from.(*claimFrom), nil
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
