package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Stalled conversations
//
// A delivery flagged waiting is invisible to Claim (see "How the outbox
// keeps order", outbox.go): on a conversation's head, the flag stalls the
// conversation, for nothing else clears it once the settle that should have
// has committed. The row locks are meant to make that impossible, yet under
// load (bench --e2e at 1,000/s on one gateway, 2 runs in 29) a webhook
// conversation's head was left flagged: the enqueue had locked its tail FOR
// KEY SHARE (in the tail's first version, while a claim was leasing it),
// and the settle of that tail did not see the new delivery. (When each
// lock was taken is not known for sure: a clock_timestamp() read in a
// locking SELECT is computed before the lock's wait.) The same steps
// replayed by hand block as they should, an enqueue whose snapshot
// predates the settle finds the tail settled (see "How the outbox keeps
// order"), and a churn of 540,000 deliveries through Append, Claim and
// SettleRun with this sweep off left no head flagged; the interleaving that
// does it has not been found.
//
// So Claim also sweeps, at most every stallSweepEvery: it walks the
// conversations with pending deliveries, stallSweepConvs at a time from
// where the last sweep stopped, and clears the flag of every head it finds
// flagged. Clearing a head's flag is always right (Claim still checks that
// a delivery is its conversation's head, unleased, unpaused), so the sweep
// needs no lock but the row's own. A sweep that clears a flag logs it at
// WARN: it is a stall that lasted up to stallSweepEvery.

const (
	stallSweepEvery = 5 * time.Second
	stallSweepConvs = 1000
)

// stallSweep is the state of the sweep for stalled heads: when it last
// ran, on the claimer's clock, and the last conversation it walked.
type stallSweep struct {
	mu    sync.Mutex
	last  time.Time
	after [2]string // conv_source, conv_ref; empty to start from the first
}

// due reports whether a sweep is due at now, and if so marks it begun.
func (w *stallSweep) due(now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.last.IsZero() && now.Sub(w.last) < stallSweepEvery && !now.Before(w.last) {
		return false
	}
	w.last = now
	return true
}

// walkStalledSQL walks up to $3 conversations with pending deliveries
// after ($1, $2), one probe of deliveries_queue each (a loose index scan),
// and returns how many it walked, the last of them, and the ids of their
// heads flagged waiting. It writes nothing: an idle gateway's sweeps count
// no commit.
const walkStalledSQL = `WITH RECURSIVE convs AS (
		(SELECT d.conv_source, d.conv_ref FROM deliveries d
		WHERE d.status = 'pending' AND (d.conv_source, d.conv_ref) > ($1, $2)
		ORDER BY d.conv_source, d.conv_ref
		LIMIT 1)
		UNION ALL
		SELECT x.conv_source, x.conv_ref FROM convs c
		CROSS JOIN LATERAL (
			SELECT d.conv_source, d.conv_ref FROM deliveries d
			WHERE d.status = 'pending' AND (d.conv_source, d.conv_ref) > (c.conv_source, c.conv_ref)
			ORDER BY d.conv_source, d.conv_ref
			LIMIT 1
		) x
	), walked AS MATERIALIZED (
		SELECT * FROM convs LIMIT $3
	), last AS (
		SELECT conv_source, conv_ref FROM walked ORDER BY conv_source DESC, conv_ref DESC LIMIT 1
	)
	SELECT (SELECT count(*) FROM walked), coalesce((SELECT conv_source FROM last), ''),
		coalesce((SELECT conv_ref FROM last), ''),
		ARRAY(SELECT h.id FROM walked w
			CROSS JOIN LATERAL (
				SELECT d.id, d.waiting FROM deliveries d
				WHERE d.status = 'pending' AND d.conv_source = w.conv_source AND d.conv_ref = w.conv_ref
				ORDER BY d.ord
				LIMIT 1
			) h
			WHERE h.waiting
			ORDER BY h.id)`

// clearStalledSQL clears the waiting flag of the heads $1 that
// walkStalledSQL found flagged, if they still are pending and flagged. A
// head stays its conversation's head until it leaves pending, so the flag
// it clears is a head's.
const clearStalledSQL = `UPDATE deliveries d SET waiting = false
	WHERE d.id = ANY($1) AND d.waiting AND d.status = 'pending'`

// noSeqScanSQL turns sequential scans off for the rest of a batch's
// implicit transaction: the sweep's statements must probe their indexes
// whatever a table never analyzed looks like to the planner.
const noSeqScanSQL = "SELECT set_config('enable_seqscan', 'off', true)"

// unstick runs a sweep for stalled heads if one is due at now (see
// "Stalled conversations"). A failed sweep is logged and left to the next.
func (s *Store) unstick(ctx context.Context, now time.Time) {
	if !s.stalls.due(now) {
		return
	}
	s.stalls.mu.Lock()
	after := s.stalls.after
	s.stalls.mu.Unlock()
	var (
		walked  int64
		last    [2]string
		stalled []string
		cleared int64
	)
	b := &pgx.Batch{}
	b.Queue(noSeqScanSQL)
	b.Queue(walkStalledSQL, after[0], after[1], stallSweepConvs).QueryRow(func(row pgx.Row) error {
		return row.Scan(&walked, &last[0], &last[1], &stalled)
	})
	err := s.pool.SendBatch(ctx, b).Close()
	if err == nil && len(stalled) > 0 {
		b = &pgx.Batch{}
		b.Queue(noSeqScanSQL)
		b.Queue(clearStalledSQL, stalled).Exec(func(tag pgconn.CommandTag) error {
			cleared = tag.RowsAffected()
			return nil
		})
		err = s.pool.SendBatch(ctx, b).Close()
	}
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("postgres: sweep for stalled delivery conversations failed; the next claim tries again", "err", err)
		}
		return
	}
	if walked < stallSweepConvs {
		last = [2]string{} // the walk reached the end: start over next time
	}
	s.stalls.mu.Lock()
	s.stalls.after = last
	s.stalls.mu.Unlock()
	if cleared > 0 {
		s.log.Warn("postgres: cleared the waiting flag of delivery conversation heads that no settle had cleared; their conversations had stalled",
			"cleared", cleared, "heads", stalled)
	}
}
