package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/ids"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/internal/groupcommit"
)

var (
	_ store.Outbox     = (*Store)(nil)
	_ store.RunSettler = (*Store)(nil)
)

// How the outbox keeps order
//
// Claim hands out only the oldest pending delivery of a conversation, and
// none while another delivery of the conversation is leased. Finding those
// heads must not cost a walk over every due delivery queued behind a
// failing or paused one, so each delivery carries a flag, waiting, set when
// it is known to queue behind an older pending delivery; Claim walks only
// due deliveries without it (an index holds exactly those) and still checks
// each against its conversation's queue. The flag may be false on a
// delivery that is not the head (Claim's check covers that) but never true
// on the head, or the conversation would stall.
//
// Row locks keep it so, with no lock on the conversation as a whole:
//   - Enqueue takes FOR KEY SHARE on the newest pending delivery of each
//     conversation it adds to (its tail) and, in the same statement, sets a
//     new delivery's flag only when such a locked tail exists. The tail
//     cannot leave pending until the enqueue commits, and whatever takes it
//     out of pending then sees the new delivery.
//   - Settle first takes FOR UPDATE on the deliveries it settles, the one
//     lock that conflicts with an enqueue's (so it waits for an enqueue
//     holding one as a tail), then updates them and, in later statements
//     with fresh snapshots, clears the flag of each conversation's new
//     head (or, for SettleRun, claims the head, clearing it). Clearing
//     a flag (FOR NO KEY UPDATE, as every plain UPDATE) never waits for
//     an enqueue, nor an enqueue for it: with the weaker
//     FOR SHARE it did, and a settle batch and an append that each held a
//     row the other wanted deadlocked.
//   - FOR UPDATE also makes the settle's update a key update to
//     PostgreSQL, which an enqueue that locks the tail after the settle
//     committed relies on. Its snapshot may predate the settle (it took it,
//     then waited for another conversation's tail), and its FOR KEY SHARE
//     on the pending version it saw passes over non-key updates without a
//     recheck; a key update makes that lock fail and move on to the newest
//     version, which the enqueue rechecks and finds no longer pending.
//     TestEnqueueWithASnapshotOlderThanTheTailsSettle shows it, and fails
//     with FOR NO KEY UPDATE there.
//   - SettleRun's queued deliveries (those behind a leased head, which
//     nobody else can claim while the lease holds) are locked with the
//     head by the same FOR UPDATE, and each leaves pending with its flag
//     cleared, or stays pending as the new head with its flag cleared.
//   - Claim locks the heads it leases FOR NO KEY UPDATE, which conflicts
//     with another claim's lock and a settle's, not with an enqueue's: a
//     lease leaves the delivery pending, so an enqueue behind it is right
//     to flag its delivery as waiting whether or not the claim commits.
//   - RetryDelivery clears the flag of the delivery it makes pending; it
//     only ever adds a pending delivery older than others, which cannot
//     make a flagged delivery the head.
//
// Enqueuers into one conversation are already serialised: every enqueue
// of a session's deliveries holds the session's row lock (Append, and the
// journal trigger inside its UPDATE), and a replay queue has one writer.
// A settle of a tail waits at most for one append's commit; settles of
// deliveries that are not tails, and appends to conversations with nothing
// pending, wait for nobody.
//
// Multi-statement operations are sent as one batch, which pgx runs as one
// implicit transaction (each statement with a fresh snapshot, so after a
// lock it sees what the lock's previous holders committed).

// deliveryColumns are the columns scanDelivery reads, in order.
var deliveryColumns = deliveryColumnsOf("")

func deliveryColumnsOf(alias string) string {
	cols := []string{"id", "session_id", "seq", "event", "conv_source", "conv_ref", "status", "attempts",
		"next_attempt", "last_error", "channel_id", "created_at", "updated_at"}
	if alias != "" {
		for i, c := range cols {
			cols[i] = alias + "." + c
		}
	}
	return strings.Join(cols, ", ")
}

// deliveryDest returns the scan destinations of deliveryColumns into d.
func deliveryDest(d *store.Delivery, status *string) []any {
	return []any{&d.ID, &d.SessionID, &d.Seq, &d.Event, &d.To.Source, &d.To.Ref, status, &d.Attempts,
		&d.NextAttempt, &d.LastError, &d.ChannelID, &d.CreatedAt, &d.UpdatedAt}
}

func finishDelivery(d *store.Delivery, status string) {
	d.Status = store.DeliveryStatus(status)
	d.NextAttempt = d.NextAttempt.UTC()
	d.CreatedAt = d.CreatedAt.UTC()
	d.UpdatedAt = d.UpdatedAt.UTC()
}

func scanDelivery(row pgx.Row) (store.Delivery, error) {
	var d store.Delivery
	var status string
	if err := row.Scan(deliveryDest(&d, &status)...); err != nil {
		return store.Delivery{}, err
	}
	finishDelivery(&d, status)
	return d, nil
}

// prefixedRow scans its leading columns into prefix and hands the rest to
// the caller's destinations, so that scanRecord can read a record's columns
// that follow a delivery's.
type prefixedRow struct {
	row    pgx.Row
	prefix []any
}

func (r prefixedRow) Scan(dest ...any) error {
	return r.row.Scan(append(r.prefix[:len(r.prefix):len(r.prefix)], dest...)...)
}

// Enqueue adds deliveries as pending, due at their NextAttempt (now when
// zero), in order. It is idempotent on (SessionID, Seq, Event, To): an
// existing delivery is kept unchanged, where it is in its conversation's
// queue, and of deliveries repeated in the call the first counts.
// Deliveries get a new "dlv_" id when theirs is empty and CreatedAt the
// database's clock when zero; Status, Attempts and the other outcome fields
// are ignored. Within a conversation, deliveries are ordered by when they
// were enqueued, those of one call in the call's order. The record
// (SessionID, Seq) of a delivery with Event 0 must exist, and the session
// event Event of the others must be of session SessionID with AfterSeq Seq;
// otherwise nothing is enqueued and the error wraps store.ErrNotFound. It
// costs one round trip.
func (s *Store) Enqueue(ctx context.Context, ds []store.Delivery) error {
	if err := s.checkOpen("enqueue"); err != nil {
		return err
	}
	if len(ds) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	if err := queueEnqueue(b, ds, true, nil); err != nil {
		return fmt.Errorf("postgres: enqueue: %w", err)
	}
	var missing *int64
	err := withBatch(s.pool.SendBatch(ctx, b), func(br pgx.BatchResults) error {
		return br.QueryRow().Scan(&missing)
	})
	if err != nil {
		return s.fail("enqueue", err)
	}
	if missing != nil {
		d := &ds[*missing-1]
		if d.Event != 0 {
			return fmt.Errorf("postgres: enqueue: session event %d of %q after %d: %w", d.Event, d.SessionID, d.Seq, store.ErrNotFound)
		}
		return fmt.Errorf("postgres: enqueue: record %q/%d: %w", d.SessionID, d.Seq, store.ErrNotFound)
	}
	return nil
}

// queueEnqueue queues on b the statement that enqueues ds (see Enqueue):
// the insert, under the locks of the conversations' tails, whose one row holds
// the 1-based index of the first delivery naming a record or event that
// does not exist (NULL when none; nothing is enqueued then), when verify
// asks for that check. Append queues them in its own transaction to fan
// out at commit, without the check: it has just written their records.
// The tails of the conversations lock are locked too, in the same sorted
// pass, though nothing is enqueued to them here: Append names those its
// journal trigger will enqueue to later in the transaction, so that its
// transaction takes every tail lock in one order, the order a settle
// takes its locks in (two orders deadlocked an append with a settle):
// by conversation, in the columns' collation, "C", whatever the
// database's default. (The trigger, in a state change of its own, locks
// its tails in that order too: migration 0015.)
func queueEnqueue(b *pgx.Batch, ds []store.Delivery, verify bool, lock []envelope.Conversation) error {
	n := len(ds)
	var (
		idCol, sessionCol, sourceCol, refCol = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		seqCol, eventCol                     = make([]int64, n), make([]int64, n)
		dueCol, createdCol                   = make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
	)
	for i := range ds {
		d := ds[i]
		if err := checkDelivery(&d); err != nil {
			return err
		}
		if d.ID == "" {
			d.ID = ids.New("dlv")
		}
		idCol[i], sessionCol[i], seqCol[i], eventCol[i] = d.ID, d.SessionID, d.Seq, d.Event
		sourceCol[i], refCol[i] = d.To.Source, d.To.Ref
		dueCol[i], createdCol[i] = nullTime(d.NextAttempt), nullTime(d.CreatedAt)
	}
	lockSources, lockRefs := make([]string, len(lock)), make([]string, len(lock))
	for i, c := range lock {
		lockSources[i], lockRefs[i] = c.Source, c.Ref
	}
	// The first delivery whose record or event does not exist, if any,
	// stops the insert (missingSQL). A new delivery waits when its
	// conversation has a pending tail, locked here (see "How the outbox
	// keeps order"; a tail that left pending while this waited for its
	// lock is passed over for the next newest), or an earlier new one.
	// Deliveries stored already (or repeated in the call) are left out
	// before that is counted; ON CONFLICT is only the backstop. The rows
	// are inserted in the call's order, which the identity column ord
	// records. A stored delivery is looked for by a LATERAL subquery with
	// LIMIT, which the planner must run as one probe of the unique key per
	// delivery: as NOT EXISTS, planned on tables without statistics, it
	// hashed the whole deliveries table instead, on every append.
	//
	// Append (verify false) enqueues only deliveries of the records it is
	// adding, with seqs past the session's last_seq under the session's
	// lock: none can be stored already (an enqueue that verifies refuses
	// deliveries of records that do not exist yet), so it skips that probe
	// of the unique key per delivery.
	missing, stored, unstored := `SELECT NULL::bigint AS n WHERE false`, ``, ``
	if verify {
		missing, stored, unstored = missingSQL, storedSQL, ` AND stored.found IS NULL`
	}
	b.Queue(`WITH u AS MATERIALIZED (
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[],
				$7::timestamptz[], $8::timestamptz[])
				WITH ORDINALITY AS u (conv_source, conv_ref, id, session_id, seq, event, next_attempt, created_at, n)
		), tails AS MATERIALIZED (
			SELECT c.conv_source, c.conv_ref
			FROM (SELECT DISTINCT x.conv_source COLLATE "C" AS conv_source, x.conv_ref COLLATE "C" AS conv_ref FROM (
				SELECT u.conv_source, u.conv_ref FROM u
				UNION ALL
				SELECT * FROM unnest($9::text[], $10::text[])
			) AS x ORDER BY 1, 2) AS c
			CROSS JOIN LATERAL (
				SELECT 1 FROM deliveries o
				WHERE o.status = 'pending' AND o.conv_source = c.conv_source AND o.conv_ref = c.conv_ref
				ORDER BY o.ord DESC
				LIMIT 1
				FOR KEY SHARE
			) AS t
		), missing AS MATERIALIZED (`+missing+`), inserted AS (
			INSERT INTO deliveries (id, session_id, seq, event, conv_source, conv_ref, status, waiting,
				next_attempt, created_at, updated_at)
			SELECT u.id, u.session_id, u.seq, u.event, u.conv_source, u.conv_ref, 'pending',
				row_number() OVER (PARTITION BY u.conv_source, u.conv_ref ORDER BY u.n) > 1 OR EXISTS (
					SELECT 1 FROM tails t WHERE t.conv_source = u.conv_source AND t.conv_ref = u.conv_ref),
				coalesce(u.next_attempt, now()), coalesce(u.created_at, now()), now()
			FROM (
				SELECT DISTINCT ON (u.session_id, u.seq, u.event, u.conv_source, u.conv_ref) u.*
				FROM u`+stored+`
				WHERE NOT EXISTS (SELECT 1 FROM missing)`+unstored+`
				ORDER BY u.session_id, u.seq, u.event, u.conv_source, u.conv_ref, u.n
			) AS u
			ORDER BY u.n
			ON CONFLICT (session_id, seq, event, conv_source, conv_ref) DO NOTHING
		)
		SELECT (SELECT n FROM missing)`,
		sourceCol, refCol, idCol, sessionCol, seqCol, eventCol, dueCol, createdCol, lockSources, lockRefs)
	return nil
}

// storedSQL finds, for queueEnqueue, whether each delivery of u is stored
// already (stored.found is 1).
const storedSQL = `
				LEFT JOIN LATERAL (
					SELECT 1 AS found FROM deliveries e
					WHERE e.session_id = u.session_id AND e.seq = u.seq AND e.event = u.event
						AND e.conv_source = u.conv_source AND e.conv_ref = u.conv_ref
					LIMIT 1
				) AS stored ON true`

// missingSQL finds, for queueEnqueue, the first delivery of u whose
// record or session event does not exist. Records are never deleted and a
// session's seqs have no gaps, so a record exists when its seq is at most
// the session's last_seq: a probe of the sessions key, where a probe of
// records could take the envelope index on session_id alone and walk the
// session's records. Session events are found by their index.
const missingSQL = `SELECT u.n FROM u
	WHERE CASE WHEN u.event = 0
		THEN u.seq > coalesce((SELECT s.last_seq FROM sessions s WHERE s.id = u.session_id), 0)
		ELSE (SELECT 1 FROM session_events e
			WHERE e.session_id = u.session_id AND e.after_seq = u.seq AND e.eid = u.event LIMIT 1) IS NULL
		END
	ORDER BY u.n
	LIMIT 1`

// checkDelivery rejects a delivery that cannot be enqueued.
func checkDelivery(d *store.Delivery) error {
	switch {
	case d.Event < 0:
		return fmt.Errorf("delivery event %d is negative", d.Event)
	case d.Event == 0 && d.Seq <= 0:
		return fmt.Errorf("delivery seq %d is not positive", d.Seq)
	case d.Seq < 0:
		return fmt.Errorf("delivery seq %d is negative", d.Seq)
	}
	return store.CheckDelivery(*d)
}

// Claim leases to owner, until leaseUntil, up to n pending deliveries due
// at now, each the oldest pending delivery of its conversation, skipping
// conversations whose binding is paused at now and conversations with a
// delivery under an unexpired lease (whoever holds it), so that at most one
// delivery per conversation is in flight and order within a conversation
// holds. Each claimed delivery's attempt is counted and, for a delivery of
// a record, its Envelope filled from the log. Two processes claiming at
// once never get the same delivery: candidates are locked with SKIP LOCKED
// and rechecked after locking. The earliest due come first.
func (s *Store) Claim(ctx context.Context, owner string, n int, now, leaseUntil time.Time) ([]store.Delivery, error) {
	if err := s.checkOpen("claim deliveries"); err != nil {
		return nil, err
	}
	if owner == "" {
		return nil, errors.New("postgres: claim deliveries: lease owner is empty")
	}
	if err := store.CheckText("lease owner", owner); err != nil {
		return nil, fmt.Errorf("postgres: claim deliveries: %w", err)
	}
	if n <= 0 {
		return nil, nil
	}
	s.unstick(ctx, now)
	// The due heads are found by walking deliveries_due in order, one
	// index probe per head (dueHeads), and then checked and locked one by
	// one (claimAmong): whatever the planner estimates, a call costs a
	// probe per head it looks at, never a scan of every due delivery. (A
	// single statement with the checks as anti-joins was planned from the
	// statistics: before an ANALYZE, with 20,000 due heads, it read and
	// sorted them all, 0.7 to 1.6 s a call.) When a window of heads holds
	// fewer claimable ones than asked (their conversations paused or
	// leased), the walk goes on after it, up to claimWalks windows.
	var (
		out   []store.Delivery
		after dueKey
	)
	for walk := 0; walk < claimWalks && len(out) < n; walk++ {
		heads, err := s.dueHeads(ctx, now, after, claimWindow(n))
		if err != nil {
			return nil, s.fail("claim deliveries", err)
		}
		if len(heads) == 0 {
			break
		}
		ids := make([]string, len(heads))
		for i, h := range heads {
			ids[i] = h.id
		}
		ds, err := s.claimAmong(ctx, owner, ids, n-len(out), now, leaseUntil)
		if err != nil {
			return nil, s.fail("claim deliveries", err)
		}
		out = append(out, ds...)
		if len(heads) < claimWindow(n) {
			break
		}
		after = heads[len(heads)-1]
	}
	slices.SortFunc(out, func(a, b store.Delivery) int {
		return cmp.Or(a.NextAttempt.Compare(b.NextAttempt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// claimWindow is how many due heads Claim looks at per walk for n
// deliveries; claimWalks bounds the walks of one call.
func claimWindow(n int) int { return 4*n + 64 }

const claimWalks = 16

// dueKey is a due head's place in deliveries_due's order.
type dueKey struct {
	id   string
	next time.Time
	ord  int64
}

// dueHeadsSQL walks deliveries_due from after ($2, $3; ord 0 for the
// start) in order, one index probe per step, for up to $4 pending
// deliveries that are not waiting and are due at $1: conversation heads,
// unless a head was claimed or settled since (claimAmong checks).
const dueHeadsSQL = `WITH RECURSIVE walk AS (
		(SELECT d.id, d.next_attempt, d.ord FROM deliveries d
		WHERE d.status = 'pending' AND NOT d.waiting AND d.next_attempt <= $1
			AND (d.next_attempt, d.ord) > ($2, $3)
		ORDER BY d.next_attempt, d.ord
		LIMIT 1)
		UNION ALL
		SELECT x.id, x.next_attempt, x.ord FROM walk w
		CROSS JOIN LATERAL (
			SELECT d.id, d.next_attempt, d.ord FROM deliveries d
			WHERE d.status = 'pending' AND NOT d.waiting AND d.next_attempt <= $1
				AND (d.next_attempt, d.ord) > (w.next_attempt, w.ord)
			ORDER BY d.next_attempt, d.ord
			LIMIT 1
		) x
	)
	SELECT id, next_attempt, ord FROM walk LIMIT $4`

// dueHeads returns up to limit due heads after key after, in order.
func (s *Store) dueHeads(ctx context.Context, now time.Time, after dueKey, limit int) ([]dueKey, error) {
	// The zero key (year 1, ord 0) is before every delivery.
	rows, err := s.pool.Query(ctx, dueHeadsSQL, now, after.next, after.ord, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (dueKey, error) {
		var k dueKey
		err := row.Scan(&k.id, &k.next, &k.ord)
		return k, err
	})
}

// claimAmongSQL claims for owner $2, at now $3 until $4, up to $5 of the
// deliveries $1 that Claim may hand out, looking at them in order (the
// nested loop over the unnested array keeps its order, so the statement
// stops after $5 and locks no more rows than it looks at): each is locked
// FOR NO KEY UPDATE with SKIP LOCKED (a claim leaves the delivery pending,
// so it need not conflict with an enqueue's FOR KEY SHARE on it as its
// conversation's tail: with FOR UPDATE, a claim skipped a head that an
// append in flight held, and an append waited for a claim) and checked
// after locking (pending, due, not waiting,
// not leased, the oldest pending delivery of its conversation with no
// other of it leased, its binding not paused), so two processes never get
// the same delivery. The claimed rows are updated through the row versions
// locked (their ctid, which the lock keeps until commit), one TID probe
// each: joined by id, the update was planned, on a table never analyzed,
// as a scan of every delivery.
var claimAmongSQL = `WITH claimable AS (
		SELECT l.id, l.ctid FROM unnest($1::text[]) AS c(id)
		CROSS JOIN LATERAL (
			SELECT d.id, d.ctid FROM deliveries d
			WHERE d.id = c.id AND ` + stillPendingSQL + ` AND NOT d.waiting AND d.next_attempt <= $3
				AND (d.lease_owner = '' OR d.lease_until <= $3)
				AND (` + headOrdSQL + `) = d.ord
				AND (` + otherLeasedSQL + `) IS NULL
				AND (` + pausedSQL + `) IS NULL
			FOR NO KEY UPDATE OF d SKIP LOCKED
		) AS l
		LIMIT $5
	), claimed AS (
		UPDATE deliveries d SET attempts = d.attempts + 1, lease_owner = $2, lease_until = $4, updated_at = now()
		FROM claimable
		WHERE d.ctid = claimable.ctid AND d.id = claimable.id
		RETURNING d.*
	)
	SELECT ` + claimedColumns + `
	FROM claimed c
	` + claimedRecordSQL

// The parts of Claim's and SettleRun's statements that look at a
// candidate d at now $3. Each must cost one short probe of one index
// whatever the planner estimates, for the statements are prepared once per
// connection and their generic plan kept until the next ANALYZE: on a new
// database that plan is made while the tables look empty, when any index
// and any join order cost about the same. (Planned so, the checks of a
// candidate walked its conversation's whole pending backlog, and the
// lookup of a candidate by id the whole of deliveries_queue: the cost of a
// claim grew with the backlog it was meant to drain.) So:
//   - A candidate is looked up by its id, with its status named by what it
//     is not (stillPendingSQL). Written status = 'pending', it would let
//     every partial index of pending deliveries serve the lookup, and on
//     empty tables a scan of a small partial index costs no more than a
//     probe of the key.
//   - Every check is a scalar subquery, which the planner cannot turn into
//     a join: it runs per candidate with the candidate's columns as the
//     keys of its index. As (NOT) EXISTS, it became a join the planner was
//     free to run as a scan of the whole index.
const (
	// stillPendingSQL is d.status = 'pending' for the three statuses
	// (store.DeliveryStatus) the column holds.
	stillPendingSQL = `d.status NOT IN ('delivered', 'dead')`
	// headOrdSQL: the ord of d's conversation's oldest pending delivery,
	// along deliveries_queue. d is its head when it is d's.
	headOrdSQL = `SELECT o.ord FROM deliveries o
		WHERE o.status = 'pending' AND o.conv_source = d.conv_source AND o.conv_ref = d.conv_ref
		ORDER BY o.ord LIMIT 1`
	// otherLeasedSQL: another delivery of d's conversation in flight,
	// along deliveries_leased.
	otherLeasedSQL = `SELECT 1 FROM deliveries o
		WHERE o.status = 'pending' AND o.lease_owner <> '' AND o.conv_source = d.conv_source AND o.conv_ref = d.conv_ref
			AND o.id <> d.id AND o.lease_until > $3
		LIMIT 1`
	// pausedSQL: d's conversation is paused.
	pausedSQL = `SELECT 1 FROM bindings b
		WHERE b.conv_source = d.conv_source AND b.conv_ref = d.conv_ref AND b.paused_until > $3
		LIMIT 1`
)

// atNow returns check, one of the checks above, at the time now names in
// place of $3.
func atNow(check, now string) string { return strings.ReplaceAll(check, "$3", now) }

// claimedRecordSQL joins each claimed delivery c to its record r, NULL
// for a delivery of a session event. The record is sought as the first
// key at or after (session, seq): only the primary key can answer that
// row comparison in order, so the lookup is one probe of it. Asked by
// equality, a plan made on empty tables took the envelope index (whose
// first column is the session too, and which cost the same then) and
// walked the session's records for the seq.
const claimedRecordSQL = `LEFT JOIN LATERAL (
		SELECT x.* FROM records x
		WHERE c.event = 0 AND (x.session_id, x.seq) >= (c.session_id, c.seq)
		ORDER BY x.session_id, x.seq
		LIMIT 1
	) AS r ON r.session_id = c.session_id AND r.seq = c.seq`

// claimAmong claims up to n of the deliveries ids (claimAmongSQL).
func (s *Store) claimAmong(ctx context.Context, owner string, ids []string, n int, now, leaseUntil time.Time) ([]store.Delivery, error) {
	rows, err := s.pool.Query(ctx, claimAmongSQL, ids, owner, now, leaseUntil, n)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanClaimed)
}

// claimedColumns are the columns of a claimed delivery, c, and of its
// record, r (NULL for a delivery of a session event), as scanClaimed reads
// them.
var claimedColumns = deliveryColumnsOf("c") + ", " + recordColumnsOf("r")

// skipRecord is scan destinations that discard a record's columns.
var skipRecord = make([]any, strings.Count(recordColumns, ",")+1)

// scanClaimed scans a row of claimedColumns: the delivery, with its
// Envelope and Direction filled from its record.
func scanClaimed(row pgx.CollectableRow) (store.Delivery, error) {
	var d store.Delivery
	var status string
	dest := deliveryDest(&d, &status)
	// The delivery first, to learn whether it is of a record; then, for a
	// record, the row again with the record's columns.
	if err := row.Scan(append(dest, skipRecord...)...); err != nil {
		return store.Delivery{}, err
	}
	if d.Event == 0 {
		rec, err := scanRecord(prefixedRow{row, dest})
		if err != nil {
			return store.Delivery{}, fmt.Errorf("record of delivery %s: %w", d.ID, err)
		}
		d.Envelope, d.Direction = rec.Envelope, rec.Direction
	}
	finishDelivery(&d, status)
	return d, nil
}

// Settle records the outcome of owner's attempt at delivery id and
// releases it: Delivered records s.ChannelID; Pending makes it due again at
// s.NextAttempt (the database's now when zero); Dead ends it. LastError
// becomes s.Error. It fails with ErrLeaseLost, changing nothing, when owner
// does not hold the delivery's lease (another process took it over after it
// expired, or it was settled), and with ErrNotFound for an unknown id. It
// costs one round trip.
func (s *Store) Settle(ctx context.Context, id, owner string, st store.Settlement) error {
	_, err := s.settle(ctx, settleReq{id: id, owner: owner, st: st})
	return err
}

// SettleRun settles owner's attempts at a run of one conversation's
// deliveries and, when the last left pending, claims for owner, until
// leaseUntil, the conversation's next delivery when Claim at now could
// hand it out, with up to n-1 of the deliveries queued behind it (see
// store.RunSettler), in one transaction (and the same group-commit batch
// as concurrent settles). The next delivery is never waited for: one that
// another process has locked is left for Claim.
func (s *Store) SettleRun(ctx context.Context, owner string, run []store.Outcome, n int, now, leaseUntil time.Time) ([]store.Delivery, error) {
	if err := store.CheckRun(run); err != nil {
		return nil, fmt.Errorf("postgres: settle run: %w", err)
	}
	queued := make([]store.Outcome, len(run)-1)
	for i, o := range run[1:] {
		st, err := checkSettlement(o.ID, o.Settlement)
		if err != nil {
			return nil, err
		}
		queued[i] = store.Outcome{ID: o.ID, Settlement: st}
	}
	return s.settle(ctx, settleReq{id: run[0].ID, owner: owner, st: run[0].Settlement, queued: queued,
		next: run[len(run)-1].Status != store.Pending && n > 0, n: n, now: now, leaseUntil: leaseUntil})
}

// checkSettlement checks st as the settlement of delivery id
// (store.CheckSettlement), and returns it with its attempt's id and time
// set.
func checkSettlement(id string, st store.Settlement) (store.Settlement, error) {
	if err := store.CheckSettlement(id, st); err != nil {
		return st, fmt.Errorf("postgres: settle %s: %w", id, err)
	}
	if st.Attempt != nil {
		a, err := newAttempt(*st.Attempt)
		if err != nil {
			return st, fmt.Errorf("postgres: settle %s: %w", id, err)
		}
		st.Attempt = &a
	}
	return st, nil
}

// settle checks and commits r, returning the next run it claimed.
func (s *Store) settle(ctx context.Context, r settleReq) ([]store.Delivery, error) {
	if err := s.checkOpen("settle"); err != nil {
		return nil, err
	}
	st, err := checkSettlement(r.id, r.st)
	if err != nil {
		return nil, err
	}
	r.st = st
	if r.owner == "" {
		return nil, fmt.Errorf("postgres: settle %s: %w", r.id, store.ErrLeaseLost)
	}
	next, err := s.settles.Do(ctx, r)
	if errors.Is(err, groupcommit.ErrClosed) {
		return nil, fmt.Errorf("postgres: settle: %w", store.ErrClosed)
	}
	return next, err
}

// settleReq is one Settle or SettleRun call, for the settle committer.
type settleReq struct {
	id, owner string
	st        store.Settlement
	// queued are the outcomes of the run's deliveries queued behind id
	// (SettleRun), in order.
	queued []store.Outcome
	// next asks for the conversation's next run of up to n deliveries
	// (SettleRun), claimed at now until leaseUntil.
	next            bool
	n               int
	now, leaseUntil time.Time
}

// last is the id of the last delivery r settles.
func (r *settleReq) last() string {
	if len(r.queued) > 0 {
		return r.queued[len(r.queued)-1].ID
	}
	return r.id
}

// settleLeasedSQL settles, in one statement, the leased delivery of each
// settlement of a batch ($1 their ids, $2 owners, $3 statuses, $4 channel
// ids, $5 errors, $6 next attempts): a delivery whose lease its owner
// holds gets its outcome and is released. It returns, per settlement in
// order, whether it took and whether the delivery exists. Each delivery is
// found by one probe of the primary key and updated through the row
// version found, as settleQueuedSQL does; whether it exists is a second
// probe, a LATERAL subquery with LIMIT (as EXISTS, planned on tables
// without statistics, it hashed every delivery's id). Should a batch settle one
// delivery twice, one of the two takes, as one would after the other.
const settleLeasedSQL = `WITH s AS MATERIALIZED (
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
			WITH ORDINALITY AS s(id, owner, status, channel_id, error, next_attempt, n)
	), q AS MATERIALIZED (
		SELECT l.ctid, s.* FROM s
		CROSS JOIN LATERAL (
			SELECT d.ctid FROM deliveries d
			WHERE d.id = s.id AND d.lease_owner = s.owner
			OFFSET 0
		) AS l
	), u AS (
		UPDATE deliveries d SET
			status = q.status,
			channel_id = CASE WHEN q.status = 'delivered' THEN q.channel_id ELSE d.channel_id END,
			last_error = q.error,
			next_attempt = CASE WHEN q.status = 'pending' THEN coalesce(q.next_attempt, now()) ELSE d.next_attempt END,
			lease_owner = '', lease_until = NULL, updated_at = now()
		FROM q
		WHERE d.ctid = q.ctid AND d.id = q.id
		RETURNING q.n
	)
	SELECT EXISTS (SELECT 1 FROM u WHERE u.n = s.n), e.found IS NOT NULL
	FROM s
	LEFT JOIN LATERAL (SELECT 1 AS found FROM deliveries d WHERE d.id = s.id LIMIT 1) AS e ON true
	ORDER BY s.n`

// queueSettleLeased queues settleLeasedSQL for batch.
func queueSettleLeased(b *pgx.Batch, batch []settleReq) {
	n := len(batch)
	ids, owners, statuses, channels, errs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	next := make([]pgtype.Timestamptz, n)
	for i, r := range batch {
		ids[i], owners[i], statuses[i], channels[i], errs[i], next[i] = r.id, r.owner, string(r.st.Status), r.st.ChannelID, r.st.Error, nullTime(r.st.NextAttempt)
	}
	b.Queue(settleLeasedSQL, ids, owners, statuses, channels, errs, next)
}

// settleQueuedSQL settles, after settleLeasedSQL in its transaction, the
// outcomes of the deliveries queued behind the leased ones of a batch's
// runs ($1 the leased delivery each is queued behind, $2 their ids, $3
// statuses, $4 channel ids, $5 errors, $6 next attempts), each as the
// leased one's settle does and with its attempt counted, when the leased
// one's settle took (it carries this transaction's now(), as settleNextSQL
// checks) and it is still pending, unleased, in the leased one's
// conversation. A delivery left pending is its conversation's head, so
// its waiting flag is cleared.
//
// Each delivery, and the leased one it is queued behind, is found by its
// id, one probe of the primary key (a lateral subquery per id, with its
// status named as stillPendingSQL names it, fenced by OFFSET 0 so that it
// is not flattened into a join, and its conversation checked outside it,
// where no index can serve the check), and updated through the row version
// found, as claimAmongSQL does: joined by id, the update was planned on a
// table never analyzed as a scan of every delivery.
var settleQueuedSQL = `WITH q AS MATERIALIZED (
		SELECT l.ctid, o.* FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
			AS o(lead, id, status, channel_id, error, next_attempt)
		CROSS JOIN LATERAL (
			SELECT d.conv_source, d.conv_ref FROM deliveries d
			WHERE d.id = o.lead AND d.status <> 'pending' AND d.lease_owner = '' AND d.updated_at = now()
			OFFSET 0
		) AS h
		CROSS JOIN LATERAL (
			SELECT d.ctid, d.conv_source, d.conv_ref FROM deliveries d
			WHERE d.id = o.id AND ` + stillPendingSQL + ` AND d.lease_owner = ''
			OFFSET 0
		) AS l
		WHERE l.conv_source = h.conv_source AND l.conv_ref = h.conv_ref
	)
	UPDATE deliveries d SET
		status = q.status,
		channel_id = CASE WHEN q.status = 'delivered' THEN q.channel_id ELSE d.channel_id END,
		last_error = q.error,
		next_attempt = CASE WHEN q.status = 'pending' THEN coalesce(q.next_attempt, now()) ELSE d.next_attempt END,
		attempts = d.attempts + 1, waiting = false, updated_at = now()
	FROM q
	WHERE d.ctid = q.ctid AND d.id = q.id`

// queueSettleQueued queues settleQueuedSQL for the queued outcomes of
// batch's runs, if any.
func queueSettleQueued(b *pgx.Batch, batch []settleReq) bool {
	var leads, ids, statuses, channels, errs []string
	var next []pgtype.Timestamptz
	for _, r := range batch {
		for _, o := range r.queued {
			leads, ids, statuses = append(leads, r.id), append(ids, o.ID), append(statuses, string(o.Status))
			channels, errs, next = append(channels, o.ChannelID), append(errs, o.Error), append(next, nullTime(o.NextAttempt))
		}
	}
	if len(ids) == 0 {
		return false
	}
	b.Queue(settleQueuedSQL, leads, ids, statuses, channels, errs, next)
	return true
}

// settleNextSQL runs, for the settlements of a settle batch that are
// SettleRun calls whose run's last delivery left pending ($1 those
// deliveries, $2 the owners, $3 the times now, $4 the times leases end,
// each in the order of the calls), after the settles, in their
// transaction. For each, it clears the waiting flag of the conversation's
// new head (as clearWaitingSQL) and, when the settle took, claims that
// head for the owner at now until the lease's end if Claim could hand it
// out: due, not leased, no other delivery of the conversation leased, its
// binding not paused. It returns the claimed heads, each with the
// call's place in $1 (counted from 1) first. The settle took when the
// settled row carries this transaction's now() (the settle holds its row
// lock, so no other transaction can have set it). A head is found first
// and then locked with SKIP LOCKED, so a head another process holds is
// left alone rather than passed over for a later delivery; the flag of
// such a head is still cleared, waiting for its lock. A head claimed here
// has its flag cleared by the claim's own update: one row version, where
// clearing and claiming in turn wrote two, each with an entry in every
// index of deliveries. Each delivery, conversation and head is found by a
// LATERAL subquery, one probe of an index per call, and the update finds
// the head by the ctid of the version locked, as claimAmongSQL does.
var settleNextSQL = `WITH r AS MATERIALIZED (
		SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[])
			WITH ORDINALITY AS r(id, owner, at, lease_until, n)
	), conv AS MATERIALIZED (
		SELECT r.n, r.owner, r.at, r.lease_until, c.conv_source, c.conv_ref, c.settled FROM r
		CROSS JOIN LATERAL (
			SELECT d.conv_source, d.conv_ref, d.status <> 'pending' AND d.lease_owner = '' AND d.updated_at = now() AS settled
			FROM deliveries d WHERE d.id = r.id
			OFFSET 0
		) AS c
	), head AS MATERIALIZED (
		SELECT conv.*, h.id, h.waiting FROM conv
		CROSS JOIN LATERAL (
			SELECT d.id, d.waiting FROM deliveries d
			WHERE d.status = 'pending' AND d.conv_source = conv.conv_source AND d.conv_ref = conv.conv_ref
			ORDER BY d.ord
			LIMIT 1
		) AS h
	), claimable AS MATERIALIZED (
		SELECT head.n, head.owner, head.lease_until, l.id, l.ctid FROM head
		CROSS JOIN LATERAL (
			SELECT d.id, d.ctid FROM deliveries d
			WHERE d.id = head.id AND head.settled
				AND ` + stillPendingSQL + ` AND d.next_attempt <= head.at
				AND (d.lease_owner = '' OR d.lease_until <= head.at)
				AND (` + atNow(otherLeasedSQL, "head.at") + `) IS NULL
				AND (` + atNow(pausedSQL, "head.at") + `) IS NULL
			FOR NO KEY UPDATE OF d SKIP LOCKED
		) AS l
	), claimed AS (
		UPDATE deliveries d SET attempts = d.attempts + 1, lease_owner = cl.owner, lease_until = cl.lease_until,
			waiting = false, updated_at = now()
		FROM claimable cl
		WHERE d.ctid = cl.ctid AND d.id = cl.id
		RETURNING cl.n AS call, d.*
	), cleared AS (
		UPDATE deliveries d SET waiting = false
		FROM head h
		WHERE d.id = h.id AND h.waiting AND d.waiting AND NOT EXISTS (SELECT 1 FROM claimable cl WHERE cl.n = h.n)
	)
	SELECT c.call, ` + claimedColumns + `
	FROM claimed c
	` + claimedRecordSQL + `
	ORDER BY c.call`

// queuedSQL returns, after settleNextSQL in its transaction, for each of
// its calls that wants more than the head ($1 the last deliveries settled,
// $2 the owners, $3 how many each wants), up to that many of the
// deliveries queued, unleased, behind the head that settleNextSQL claimed
// for the owner in the conversation of that delivery (the one delivery of
// the conversation the owner leased in this transaction), in order, with
// their records and the call's place in $1 (counted from 1) first. It is
// a statement of its own, not a part of settleNextSQL, so that the rows it
// returns are not counted as written (writeTracer).
var queuedSQL = `WITH r AS MATERIALIZED (
		SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY AS r(id, owner, lim, n)
	), head AS MATERIALIZED (
		SELECT r.n, r.lim, c.conv_source, c.conv_ref, h.ord FROM r
		CROSS JOIN LATERAL (
			SELECT d.conv_source, d.conv_ref FROM deliveries d WHERE d.id = r.id
			OFFSET 0
		) AS c
		CROSS JOIN LATERAL (
			SELECT d.ord FROM deliveries d
			WHERE d.status = 'pending' AND d.lease_owner = r.owner AND d.updated_at = now()
				AND d.conv_source = c.conv_source AND d.conv_ref = c.conv_ref
			ORDER BY d.ord
			LIMIT 1
		) AS h
	), queued AS MATERIALIZED (
		SELECT head.n AS call, q.* FROM head
		CROSS JOIN LATERAL (
			SELECT d.* FROM deliveries d
			WHERE d.status = 'pending' AND d.conv_source = head.conv_source AND d.conv_ref = head.conv_ref
				AND d.ord > head.ord AND d.lease_owner = ''
			ORDER BY d.ord
			LIMIT head.lim
		) AS q
	)
	SELECT c.call, ` + claimedColumns + `
	FROM queued c
	` + claimedRecordSQL + `
	ORDER BY c.call, c.ord`

// callRow scans a row of settleNextSQL or queuedSQL: the call's place
// first, then the claimed columns.
type callRow struct {
	pgx.CollectableRow
	call *int64
}

func (r callRow) Scan(dest ...any) error {
	return r.CollectableRow.Scan(append([]any{r.call}, dest...)...)
}

// queueNextRuns queues settleNextSQL for the calls of batch that ask for
// the next run, and queuedSQL when any of them wants more than the head.
// It returns their indexes in batch, and whether it queued queuedSQL.
func queueNextRuns(b *pgx.Batch, batch []settleReq) (next []int, queued bool) {
	var last, owners []string
	var ats, untils []time.Time
	var more []int64 // how many each wants behind the head
	for i := range batch {
		r := &batch[i]
		if !r.next {
			continue
		}
		next = append(next, i)
		last, owners = append(last, r.last()), append(owners, r.owner)
		ats, untils = append(ats, r.now), append(untils, r.leaseUntil)
		more = append(more, int64(max(r.n-1, 0)))
		queued = queued || r.n > 1
	}
	if len(next) == 0 {
		return nil, false
	}
	b.Queue(settleNextSQL, last, owners, ats, untils)
	if queued {
		b.Queue(queuedSQL, last, owners, more)
	}
	return next, queued
}

// readNextRuns reads what queueNextRuns queued for the calls next of
// batch, and sets the results of those whose settle took.
func readNextRuns(br pgx.BatchResults, batch []settleReq, next []int, queued bool, results []groupcommit.Result[[]store.Delivery]) error {
	if len(next) == 0 {
		return nil
	}
	runs := make([][]store.Delivery, len(next))
	steps := []string{"claim the next deliveries", "read the deliveries queued"}
	if !queued {
		steps = steps[:1]
	}
	for step, what := range steps {
		rows, _ := br.Query()
		for rows.Next() {
			var call int64
			d, err := scanClaimed(callRow{rows, &call})
			if err != nil {
				rows.Close()
				return fmt.Errorf("%s: %w", what, err)
			}
			if call < 1 || int(call) > len(next) {
				rows.Close()
				return fmt.Errorf("%s: a row of call %d of %d", what, call, len(next))
			}
			// Queued deliveries follow a claimed head; none without one.
			if step == 0 || len(runs[call-1]) > 0 {
				runs[call-1] = append(runs[call-1], d)
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	for j, i := range next {
		if results[i].Err == nil {
			results[i].Val = nextRun(runs[j], batch[i].now)
		}
	}
	return nil
}

// nextRun is the run settleNextSQL returned, claimed at now: the claimed
// head, then the deliveries queued behind it up to the first not due at
// now, with Attempts counting the attempt the owner would make.
func nextRun(ds []store.Delivery, now time.Time) []store.Delivery {
	for i := 1; i < len(ds); i++ {
		if ds[i].NextAttempt.After(now) {
			return ds[:i]
		}
		ds[i].Attempts++
	}
	return ds
}

// clearWaitingSQL clears the waiting flag of the new head of the
// conversation of each delivery $1, which left pending. Each conversation
// is found by one probe of the primary key and its head by one probe of
// deliveries_queue, each a LATERAL subquery: joined instead, the
// conversations let a plan made on empty tables walk every pending
// delivery of every conversation.
const clearWaitingSQL = `WITH head AS MATERIALIZED (
		SELECT h.id FROM unnest($1::text[]) AS r(id)
		CROSS JOIN LATERAL (
			SELECT d.conv_source, d.conv_ref FROM deliveries d WHERE d.id = r.id
			OFFSET 0
		) AS c
		CROSS JOIN LATERAL (
			SELECT o.id FROM deliveries o
			WHERE o.status = 'pending' AND o.conv_source = c.conv_source AND o.conv_ref = c.conv_ref
			ORDER BY o.ord
			LIMIT 1
		) AS h
	)
	UPDATE deliveries d SET waiting = false
	FROM head
	WHERE d.id = head.id AND d.waiting`

// settleSettingsSQL sets, in one statement, the settings of a settle
// batch's transaction:
//   - synchronous_commit off: a settlement need not wait for the WAL to
//     reach the disk. A crash that loses it leaves the delivery pending,
//     and it is delivered again under the same event id, which
//     at-least-once delivery allows. Not waiting lets go of the
//     conversations' locks sooner, which appends enqueueing to them wait
//     for.
//   - enable_seqscan off: the batch's statements all find their rows by
//     key, and must not be planned as scans. A table never analyzed
//     (autovacuum off) looks small to the planner, which planned
//     lockSettlesSQL as a scan of every delivery, delivered ones included,
//     at a cost that grew with the table, at every settle.
//   - generic plans (genericPlansSQL).
const settleSettingsSQL = `SELECT set_config('synchronous_commit', 'off', true),
	set_config('enable_seqscan', 'off', true), set_config('plan_cache_mode', 'force_generic_plan', true)`

// genericPlansSQL makes the rest of a transaction run its prepared
// statements with their generic plans, planned once per connection. The
// planner, left to choose, plans a statement that takes an array (a
// batch's ids, a run's outcomes) anew at every execution, since it
// estimates the short arrays of its first runs cheaper than the generic
// plan's guess: it planned settleQueuedSQL every time, and lockSettlesSQL,
// the enqueue and the append's lookup a third of the time, at a cost like
// executing them. The generic plans are the ones TestQueueCostIsFlatInTheBacklog
// checks.
const genericPlansSQL = "SET LOCAL plan_cache_mode = force_generic_plan"

// lockSettlesSQL locks the deliveries $1 of a settle batch at once, in
// conversation order (the order Enqueue locks tails in), so that the batch
// cannot deadlock with an enqueue or another batch, and FOR UPDATE, so
// that a settle waits for an enqueue holding one of them as its tail (see
// "How the outbox keeps order").
const lockSettlesSQL = `SELECT count(*) FROM (
		SELECT 1 FROM deliveries WHERE id = ANY($1)
		ORDER BY conv_source, conv_ref, ord
		FOR UPDATE
	) AS locked`

// commitSettles settles a batch of concurrent Settle calls in one
// transaction, one round trip (settleBatch). When the batch fails it
// settles each call alone, so one bad call fails alone.
func (s *Store) commitSettles(ctx context.Context, batch []settleReq) ([]groupcommit.Result[[]store.Delivery], error) {
	results := make([]groupcommit.Result[[]store.Delivery], len(batch))
	if len(batch) > 1 {
		err := s.settleBatch(ctx, batch, results)
		if err == nil {
			return results, nil
		}
		s.log.Warn("postgres: settle batch failed; settling one at a time", "n", len(batch), "err", err)
		clear(results) // what the failed batch read was rolled back
	}
	for i := range batch {
		if err := s.settleBatch(ctx, batch[i:i+1], results[i:i+1]); err != nil {
			results[i].Err = s.fail("settle", err)
		}
	}
	return results, nil
}

// settleBatch settles batch in one transaction, one round trip, setting
// results: the deliveries' row locks, taken at once in conversation order
// (so that the batch cannot deadlock with an enqueue or another batch),
// then the settlements as Settle and SettleRun describe, each step one
// statement for the whole batch. An error means nothing was settled, and
// results may hold what was read before it.
func (s *Store) settleBatch(ctx context.Context, batch []settleReq, results []groupcommit.Result[[]store.Delivery]) error {
	ids := make([]string, 0, len(batch))
	var attempts []store.Attempt
	for _, r := range batch {
		ids = append(ids, r.id)
		if r.st.Attempt != nil {
			attempts = append(attempts, *r.st.Attempt)
		}
		for _, o := range r.queued {
			ids = append(ids, o.ID)
			if o.Attempt != nil {
				attempts = append(attempts, *o.Attempt)
			}
		}
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(settleSettingsSQL)
	b.Queue(lockSettlesSQL, ids)
	if len(attempts) > 0 {
		queueInsertAttempts(b, attempts)
	}
	queueSettleLeased(b, batch)
	queued := queueSettleQueued(b, batch)
	var left []string // deliveries out of pending whose conversation no run continues
	for _, r := range batch {
		if !r.next && r.st.Status != store.Pending {
			left = append(left, r.id)
		}
	}
	if len(left) > 0 {
		b.Queue(clearWaitingSQL, left)
	}
	next, more := queueNextRuns(b, batch)
	b.Queue("COMMIT")
	err := withBatch(s.pool.SendBatch(ctx, b), func(br pgx.BatchResults) error {
		for range 3 { // BEGIN, the settings, the locks
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		if len(attempts) > 0 {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		rows, _ := br.Query()
		i := 0
		for rows.Next() {
			var settled, exists bool
			if err := rows.Scan(&settled, &exists); err != nil {
				rows.Close()
				return err
			}
			if i == len(batch) {
				rows.Close()
				return fmt.Errorf("settle: %d outcomes for %d settlements", i+1, len(batch))
			}
			r := &batch[i]
			switch {
			case !exists:
				results[i].Err = fmt.Errorf("postgres: settle %q: %w", r.id, store.ErrNotFound)
			case !settled:
				results[i].Err = fmt.Errorf("postgres: settle %s for %s: %w", r.id, r.owner, store.ErrLeaseLost)
			}
			i++
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if i != len(batch) {
			return fmt.Errorf("settle: %d outcomes for %d settlements", i, len(batch))
		}
		for _, ok := range []bool{queued, len(left) > 0} {
			if !ok {
				continue
			}
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		if err := readNextRuns(br, batch, next, more, results); err != nil {
			return err
		}
		return commitResult(br.Exec())
	})
	return err
}

// ListDeliveries returns up to limit deliveries with the given status (""
// for any) whose ids sort after the cursor after, in id order, without
// their envelopes.
func (s *Store) ListDeliveries(ctx context.Context, status store.DeliveryStatus, after string, limit int) ([]store.Delivery, error) {
	if err := s.checkOpen("list deliveries"); err != nil {
		return nil, err
	}
	if err := store.CheckText("after", after); err != nil {
		return nil, fmt.Errorf("postgres: list deliveries: %w", err)
	}
	if limit <= 0 {
		return nil, nil
	}
	var rows pgx.Rows
	var err error
	switch status {
	case "":
		rows, err = s.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM deliveries
			WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	case store.Pending:
		// Along deliveries_unsettled, whose predicate the query states as
		// it is written: a partial index serves only a query whose
		// conditions imply its predicate (see migration 0014 for why it is
		// not status = 'pending').
		rows, err = s.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM deliveries
			WHERE status <> 'delivered' AND status <> 'dead' AND id > $1 ORDER BY id LIMIT $2`, after, limit)
	case store.Dead:
		rows, err = s.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM deliveries
			WHERE status = 'dead' AND id > $1 ORDER BY id LIMIT $2`, after, limit)
	case store.Delivered:
		// Most deliveries: the primary key, in order, passes over the rest.
		rows, err = s.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM deliveries
			WHERE status = 'delivered' AND id > $1 ORDER BY id LIMIT $2`, after, limit)
	default:
		return nil, fmt.Errorf("postgres: list deliveries: invalid status %q", status)
	}
	if err != nil {
		return nil, s.fail("list deliveries", err)
	}
	ds, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Delivery, error) { return scanDelivery(row) })
	if err != nil {
		return nil, s.fail("list deliveries", err)
	}
	return ds, nil
}

// SessionDeliveries returns up to limit deliveries of f.SessionID after
// the cursor after, in id order, filtered by f.Status and f.To. It reads
// the session's deliveries along their unique (session_id, seq, …) index
// and sorts them.
func (s *Store) SessionDeliveries(ctx context.Context, f store.DeliveryFilter, after string, limit int) ([]store.Delivery, error) {
	if err := s.checkOpen("session deliveries"); err != nil {
		return nil, err
	}
	if err := store.CheckDeliveryFilter(f, after); err != nil {
		return nil, fmt.Errorf("postgres: session deliveries: %w", err)
	}
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM deliveries
		WHERE session_id = $1 AND id > $2 AND ($3 = '' OR status = $3)
			AND ($4 = '' OR (conv_source = $4 AND conv_ref = $5))
		ORDER BY id LIMIT $6`, f.SessionID, after, string(f.Status), f.To.Source, f.To.Ref, limit)
	if err != nil {
		return nil, s.fail("session deliveries", err)
	}
	ds, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Delivery, error) { return scanDelivery(row) })
	if err != nil {
		return nil, s.fail("session deliveries", err)
	}
	return ds, nil
}

// RetryDelivery makes delivery id pending and due at now, whatever its
// status, with its attempts, last error and channel id kept. A lease in
// flight is kept too: the attempt holding it still settles the delivery.
// ErrNotFound for an unknown id. It costs one round trip.
func (s *Store) RetryDelivery(ctx context.Context, id string, now time.Time) (store.Delivery, error) {
	if err := s.checkOpen("retry delivery"); err != nil {
		return store.Delivery{}, err
	}
	if err := store.CheckLookup("delivery", id); err != nil {
		return store.Delivery{}, fmt.Errorf("postgres: retry delivery: %w", err)
	}
	// It may become its conversation's head again (it is older than what is
	// pending), so it must not wait.
	d, err := scanDelivery(s.pool.QueryRow(ctx, `UPDATE deliveries
		SET status = 'pending', waiting = false, next_attempt = $2, updated_at = now()
		WHERE id = $1
		RETURNING `+deliveryColumns, id, now))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.Delivery{}, fmt.Errorf("postgres: retry delivery %q: %w", id, store.ErrNotFound)
	case err != nil:
		return store.Delivery{}, s.fail("retry delivery", err)
	}
	return d, nil
}

// Posted reports whether the gateway posted channelID to a conversation of
// source: a delivery to that source was settled as delivered with that
// channel id.
func (s *Store) Posted(ctx context.Context, source, channelID string) (bool, error) {
	if err := s.checkOpen("posted"); err != nil {
		return false, err
	}
	if channelID == "" || store.CheckText("source", source+channelID) != nil {
		return false, nil // nothing unstorable was ever posted
	}
	var posted bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (
		SELECT 1 FROM deliveries WHERE conv_source = $1 AND channel_id = $2 AND channel_id <> '')`,
		source, channelID).Scan(&posted)
	if err != nil {
		return false, s.fail("posted", err)
	}
	return posted, nil
}

// ChannelIDOf returns the channel id recorded on the delivery of record
// seq of sessionID to conversation to, "" when there is none.
func (s *Store) ChannelIDOf(ctx context.Context, sessionID string, seq int64, to envelope.Conversation) (string, error) {
	if err := s.checkOpen("channel id of"); err != nil {
		return "", err
	}
	if store.CheckText("conversation", sessionID+to.Source+to.Ref) != nil {
		return "", nil // nothing unstorable was ever delivered
	}
	var id string
	err := s.pool.QueryRow(ctx, `SELECT channel_id FROM deliveries
		WHERE session_id = $1 AND seq = $2 AND event = 0 AND conv_source = $3 AND conv_ref = $4`,
		sessionID, seq, to.Source, to.Ref).Scan(&id)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", nil
	case err != nil:
		return "", s.fail("channel id of", err)
	}
	return id, nil
}

// SetChannelID records channelID on the delivery of record seq of
// sessionID to conversation to when it has none.
func (s *Store) SetChannelID(ctx context.Context, sessionID string, seq int64, to envelope.Conversation, channelID string) error {
	if err := s.checkOpen("set channel id"); err != nil {
		return err
	}
	if err := store.CheckText("channel id", channelID); err != nil {
		return fmt.Errorf("postgres: set channel id: %w", err)
	}
	if store.CheckText("conversation", sessionID+to.Source+to.Ref) != nil {
		return nil // no such delivery can exist
	}
	_, err := s.pool.Exec(ctx, `UPDATE deliveries SET channel_id = $5
		WHERE session_id = $1 AND seq = $2 AND event = 0 AND conv_source = $3 AND conv_ref = $4 AND channel_id = ''`,
		sessionID, seq, to.Source, to.Ref, channelID)
	if err != nil {
		return s.fail("set channel id", err)
	}
	return nil
}
