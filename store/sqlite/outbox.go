package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/ids"
	"github.com/switchboardhq/switchboard/store"
)

var (
	errDeliveryNotFound = fmt.Errorf("sqlite: delivery: %w", store.ErrNotFound)
	errRecordNotFound   = fmt.Errorf("sqlite: enqueue: record: %w", store.ErrNotFound)
	errEventNotFound    = fmt.Errorf("sqlite: enqueue: session event: %w", store.ErrNotFound)
	errSettleLeaseLost  = fmt.Errorf("sqlite: settle: %w", store.ErrLeaseLost)
)

// deliveryColumns are the columns scanDelivery reads, of a delivery d and
// its session s.
const deliveryColumns = `d.did, d.sid, d.owner, d.id, s.id, d.seq, d.event, d.to_source, d.to_ref, d.status,
	d.attempts, d.next_attempt, d.last_error, d.channel_id, d.created_at, d.updated_at`

// deliverySelect reads what scanDelivery scans.
const deliverySelect = `SELECT ` + deliveryColumns + `
	FROM deliveries d JOIN sessions s ON s.sid = d.sid`

// pendingMin is the oldest pending delivery of the conversation (?1, ?2),
// along deliveries_queue.
const pendingMin = `(SELECT min(did) FROM deliveries WHERE status = 'pending' AND to_source = ?1 AND to_ref = ?2)`

// outboxWrites are the writer's statements for the outbox.
type outboxWrites struct {
	insert, due, claimHead, queued, lease, byID, byDID, record, event, settle, settleQueued, exists, retry, demote, promote, setChannel *sql.Stmt
}

// leasedReturning returns a delivery leased by an UPDATE as deliverySelect
// reads it.
const leasedReturning = `RETURNING did, sid, owner, id, (SELECT s.id FROM sessions s WHERE s.sid = deliveries.sid), seq, event,
	to_source, to_ref, status, attempts, next_attempt, last_error, channel_id, created_at, updated_at`

func (o *outboxWrites) defs() []stmtDef {
	return []stmtDef{
		// A new delivery is its conversation's head when nothing else to the
		// conversation is pending: it is the newest.
		{&o.insert, `INSERT INTO deliveries (id, sid, seq, event, to_source, to_ref, status, head, next_attempt, created_at, updated_at)
			VALUES (?3, ?4, ?5, ?9, ?1, ?2, 'pending',
				NOT EXISTS (SELECT 1 FROM deliveries WHERE status = 'pending' AND to_source = ?1 AND to_ref = ?2),
				?6, ?7, ?8)
			ON CONFLICT (sid, seq, event, to_source, to_ref) DO NOTHING`},
		// Along the partial index deliveries_due: only conversation heads.
		{&o.due, `SELECT d.did FROM deliveries d
			WHERE d.head = 1 AND d.next_attempt <= ?1 AND (d.lease_until IS NULL OR d.lease_until <= ?1)
				AND NOT EXISTS (SELECT 1 FROM bindings b
					WHERE b.conv_source = d.to_source AND b.conv_ref = d.to_ref AND b.paused_until > ?1)
			ORDER BY d.next_attempt, d.did LIMIT ?2`},
		// The oldest pending delivery of the conversation (?1, ?2), made its
		// head and leased to ?3 until ?4 at ?5, when Claim at ?6 could hand
		// it out: one row written where a promotion and a lease wrote two.
		// After the delivery, whether another pending delivery is queued
		// behind it (one probe of deliveries_queue), so that a run is looked
		// for only when there is one.
		{&o.claimHead, `UPDATE deliveries SET head = 1, attempts = attempts + 1, owner = ?3, lease_until = ?4, updated_at = ?5
			WHERE did = ` + pendingMin + `
				AND next_attempt <= ?6 AND (lease_until IS NULL OR lease_until <= ?6)
				AND NOT EXISTS (SELECT 1 FROM bindings b
					WHERE b.conv_source = ?1 AND b.conv_ref = ?2 AND b.paused_until > ?6)
			` + leasedReturning + `,
				EXISTS (SELECT 1 FROM deliveries q
					WHERE q.status = 'pending' AND q.to_source = ?1 AND q.to_ref = ?2 AND q.did > deliveries.did)`},
		// Up to ?4 pending deliveries of the conversation (?1, ?2) after
		// delivery ?3, unleased, in order, along deliveries_queue: the rest
		// of a run (store.RunSettler). Their records are read as the head's
		// are (fillEnvelope), mostly from the tail: with several webhook
		// destinations, each record is in as many queues, and joining the
		// records here decoded it once for each.
		{&o.queued, deliverySelect + `
			WHERE d.status = 'pending' AND d.to_source = ?1 AND d.to_ref = ?2 AND d.did > ?3
				AND d.owner IS NULL ORDER BY d.did LIMIT ?4`},
		// The leased delivery, as deliverySelect reads it.
		{&o.lease, `UPDATE deliveries SET attempts = attempts + 1, owner = ?, lease_until = ?, updated_at = ? WHERE did = ?
			` + leasedReturning},
		{&o.byID, deliverySelect + ` WHERE d.id = ?`},
		{&o.byDID, deliverySelect + ` WHERE d.did = ?`},
		{&o.record, `SELECT ` + recordColumns + ` FROM records WHERE sid = ? AND seq = ?`},
		{&o.event, `SELECT 1 FROM session_events WHERE eid = ? AND sid = ? AND after_seq = ?`},
		// The settlement ?1 of owner ?2's attempt at delivery ?3, at ?7:
		// Delivered keeps the last error and records channel id ?6 (unless
		// empty), Pending makes it due at ?4 with error ?5, Dead keeps the
		// due time with error ?5. Nothing when ?2 does not hold the lease.
		{&o.settle, `UPDATE deliveries SET status = ?1, head = head AND ?1 = 'pending',
				next_attempt = CASE WHEN ?1 = 'pending' THEN ?4 ELSE next_attempt END,
				last_error = CASE WHEN ?1 = 'delivered' THEN last_error ELSE ?5 END,
				channel_id = CASE WHEN ?1 = 'delivered' AND ?6 <> '' THEN ?6 ELSE channel_id END,
				owner = NULL, lease_until = NULL, updated_at = ?7
			WHERE id = ?3 AND status = 'pending' AND owner = ?2
			RETURNING to_source, to_ref`},
		// The settlement ?1 of an attempt at delivery ?3, queued unleased
		// in the conversation (?8, ?9) behind a delivery the run's owner
		// leased, at ?7, as settle settles, with the attempt counted: a
		// delivery left pending is its conversation's head (the run
		// settled everything before it).
		{&o.settleQueued, `UPDATE deliveries SET status = ?1, head = ?1 = 'pending', attempts = attempts + 1,
				next_attempt = CASE WHEN ?1 = 'pending' THEN ?4 ELSE next_attempt END,
				last_error = CASE WHEN ?1 = 'delivered' THEN last_error ELSE ?5 END,
				channel_id = CASE WHEN ?1 = 'delivered' AND ?6 <> '' THEN ?6 ELSE channel_id END,
				updated_at = ?7
			WHERE id = ?3 AND status = 'pending' AND owner IS NULL AND to_source = ?8 AND to_ref = ?9`},
		{&o.exists, `SELECT 1 FROM deliveries WHERE id = ?`},
		{&o.retry, `UPDATE deliveries SET status = 'pending', next_attempt = ?, updated_at = ? WHERE did = ?`},
		// demote and promote make the oldest pending delivery of the
		// conversation (?1, ?2) its one head.
		{&o.demote, `UPDATE deliveries SET head = 0
			WHERE status = 'pending' AND to_source = ?1 AND to_ref = ?2 AND head = 1 AND did <> ` + pendingMin},
		{&o.promote, `UPDATE deliveries SET head = 1 WHERE did = ` + pendingMin + ` AND head = 0`},
		{&o.setChannel, `UPDATE deliveries SET channel_id = ?5
			WHERE sid = (SELECT sid FROM sessions WHERE id = ?1) AND seq = ?2 AND event = 0
				AND to_source = ?3 AND to_ref = ?4 AND channel_id = ''`},
	}
}

// outboxReads are the readers' statements for the outbox.
type outboxReads struct {
	list, listStatus, listSession, posted, channelOf *sql.Stmt
}

func (o *outboxReads) defs() []stmtDef {
	return []stmtDef{
		{&o.list, deliverySelect + ` WHERE d.id > ? ORDER BY d.id LIMIT ?`},
		{&o.listStatus, deliverySelect + ` WHERE d.status = ? AND d.id > ? ORDER BY d.id LIMIT ?`},
		{&o.listSession, deliverySelect + ` WHERE d.sid = (SELECT sid FROM sessions WHERE id = ?1) AND d.id > ?2
			AND (?3 = '' OR d.status = ?3) AND (?4 = '' OR (d.to_source = ?4 AND d.to_ref = ?5))
			ORDER BY d.id LIMIT ?6`},
		{&o.posted, `SELECT 1 FROM deliveries WHERE to_source = ? AND channel_id = ? AND channel_id <> '' LIMIT 1`},
		{&o.channelOf, `SELECT channel_id FROM deliveries
			WHERE sid = (SELECT sid FROM sessions WHERE id = ?) AND seq = ? AND event = 0 AND to_source = ? AND to_ref = ?`},
	}
}

// deliveryRow is a delivery with the columns the writer needs besides.
type deliveryRow struct {
	store.Delivery
	did, sid int64
	owner    sql.NullString
}

func scanDelivery(row scanner) (deliveryRow, error) {
	var (
		d                      deliveryRow
		status                 string
		next, created, updated int64
	)
	if err := row.Scan(&d.did, &d.sid, &d.owner, &d.ID, &d.SessionID, &d.Seq, &d.Event, &d.To.Source, &d.To.Ref, &status,
		&d.Attempts, &next, &d.LastError, &d.ChannelID, &created, &updated); err != nil {
		return deliveryRow{}, err
	}
	d.Status = store.DeliveryStatus(status)
	if next != 0 {
		d.NextAttempt = time.Unix(0, next).UTC()
	}
	d.CreatedAt = time.Unix(0, created).UTC()
	d.UpdatedAt = time.Unix(0, updated).UTC()
	return d, nil
}

// enqueued is a delivery as Enqueue encodes it.
type enqueued struct {
	d           store.Delivery
	nextNano    int64 // 0: due at once
	createdNano int64
}

// Enqueue adds deliveries as pending, due at their NextAttempt (at once
// when zero), all in one transaction, in order. It is idempotent on
// (SessionID, Seq, Event, To): an existing delivery is kept as it is. Empty
// IDs get new ids, zero CreatedAts the current time. A delivery of a record
// or session event that does not exist fails the whole call with an error
// wrapping store.ErrNotFound.
func (s *Store) Enqueue(ctx context.Context, ds []store.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	es, err := encodeDeliveries(ds)
	if err != nil {
		return fmt.Errorf("sqlite: enqueue: %w", err)
	}
	_, err = s.write(ctx, "enqueue", func(ctx context.Context, w *writer, now int64) (groupcommitResult, error) {
		return w.enqueue(ctx, es, now)
	})
	return err
}

func encodeDeliveries(ds []store.Delivery) ([]enqueued, error) {
	es := make([]enqueued, len(ds))
	now := time.Now()
	for i, d := range ds {
		if err := store.CheckDelivery(d); err != nil {
			return nil, fmt.Errorf("delivery %d: %w", i, err)
		}
		if d.ID == "" {
			d.ID = ids.New("dlv")
		}
		if d.CreatedAt.IsZero() {
			d.CreatedAt = now
		}
		e := enqueued{d: d}
		var err error
		if e.createdNano, err = nanos("created_at", d.CreatedAt); err != nil {
			return nil, fmt.Errorf("delivery %d: %w", i, err)
		}
		if !d.NextAttempt.IsZero() {
			if e.nextNano, err = nanos("next_attempt", d.NextAttempt); err != nil {
				return nil, fmt.Errorf("delivery %d: %w", i, err)
			}
		}
		es[i] = e
	}
	return es, nil
}

func (w *writer) enqueue(ctx context.Context, es []enqueued, now int64) (groupcommitResult, error) {
	// Check every record first, so that the op fails before it writes.
	sids := make([]int64, len(es))
	for i := range es {
		d := &es[i].d
		bs, err := w.session(ctx, d.SessionID)
		if err != nil || bs == nil {
			return groupcommitResult{Err: errSessionNotFound}, err
		}
		switch {
		case d.Event == 0 && (d.Seq < 1 || d.Seq > bs.lastSeq):
			return groupcommitResult{Err: errRecordNotFound}, nil
		case d.Event != 0:
			var one int
			err := w.outbox.event.QueryRowContext(ctx, d.Event, bs.sid, d.Seq).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return groupcommitResult{Err: errEventNotFound}, nil
			}
			if err != nil {
				return groupcommitResult{}, fmt.Errorf("read session event: %w", err)
			}
		}
		sids[i] = bs.sid
	}
	for i := range es {
		e := &es[i]
		if _, err := w.outbox.insert.ExecContext(ctx, e.d.To.Source, e.d.To.Ref, e.d.ID, sids[i], e.d.Seq,
			e.nextNano, e.createdNano, now, e.d.Event); err != nil {
			return groupcommitResult{}, fmt.Errorf("insert delivery: %w", err)
		}
	}
	return groupcommitResult{}, nil
}

// Claim leases to owner, until leaseUntil, up to n pending deliveries due
// at now, each the oldest pending delivery of its conversation, skipping
// conversations whose binding is paused at now and deliveries whose lease
// has not expired (whoever holds it), and returns them with the attempt
// counted and Envelope filled, the most overdue first.
func (s *Store) Claim(ctx context.Context, owner string, n int, now, leaseUntil time.Time) ([]store.Delivery, error) {
	if n < 1 {
		return nil, nil
	}
	at, until, err := lease(owner, now, leaseUntil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim: %w", err)
	}
	res, err := s.write(ctx, "claim", func(ctx context.Context, w *writer, now int64) (groupcommitResult, error) {
		return w.claim(ctx, owner, n, at, until, now)
	})
	if err != nil {
		return nil, err
	}
	ds, _ := res.val.([]store.Delivery) // none when nil
	return ds, nil
}

// claim leases to owner, until leaseUntil, up to n deliveries due at due
// (Unix nanoseconds).
func (w *writer) claim(ctx context.Context, owner string, n int, due, leaseUntil, now int64) (groupcommitResult, error) {
	rows, err := w.outbox.due.QueryContext(ctx, due, n)
	if err != nil {
		return groupcommitResult{}, fmt.Errorf("find due deliveries: %w", err)
	}
	dids, err := collect(rows, func(row scanner) (did int64, err error) {
		err = row.Scan(&did)
		return did, err
	})
	if err != nil {
		return groupcommitResult{}, fmt.Errorf("find due deliveries: %w", err)
	}
	if len(dids) == 0 {
		return groupcommitResult{}, nil
	}
	out := make([]store.Delivery, 0, len(dids))
	for _, did := range dids {
		d, err := w.lease(ctx, did, owner, leaseUntil, now)
		if err != nil {
			return groupcommitResult{}, err
		}
		out = append(out, d)
	}
	return groupcommitResult{Val: writeResult{val: out}}, nil
}

// lease leases delivery did to owner until leaseUntil, counting the
// attempt, and returns it as Claim does, with its record's envelope.
func (w *writer) lease(ctx context.Context, did int64, owner string, leaseUntil, now int64) (store.Delivery, error) {
	d, err := scanDelivery(w.outbox.lease.QueryRowContext(ctx, owner, leaseUntil, now, did))
	if err != nil {
		return store.Delivery{}, fmt.Errorf("lease delivery: %w", err)
	}
	if err := w.fillEnvelope(ctx, &d); err != nil {
		return store.Delivery{}, err
	}
	return d.Delivery, nil
}

// fillEnvelope fills the envelope and direction of d, a delivery of a
// record, from the record: from the store's tail when it holds it (a
// delivery is mostly of a record committed lately), else from the file.
func (w *writer) fillEnvelope(ctx context.Context, d *deliveryRow) error {
	if d.Event != 0 {
		return nil
	}
	if recs, ok := w.tail.Read(d.SessionID, d.Seq-1, 1); ok {
		d.Envelope, d.Direction = recs[0].Envelope, recs[0].Direction
		return nil
	}
	rec, err := scanRecord(w.outbox.record.QueryRowContext(ctx, d.sid, d.Seq), d.SessionID)
	if err != nil {
		return fmt.Errorf("read record of delivery %s: %w", d.ID, err)
	}
	d.Envelope, d.Direction = rec.Envelope, rec.Direction
	return nil
}

// Settle records the outcome of owner's attempt at delivery id and releases
// the delivery: Delivered with the channel's id, Pending again at
// s.NextAttempt (at once when zero) or Dead, with s.Error. It fails with an
// error wrapping store.ErrLeaseLost unless owner holds the delivery's lease
// (claimed it, and nobody took it over after it expired), and with one
// wrapping store.ErrNotFound for an unknown id.
func (s *Store) Settle(ctx context.Context, id, owner string, st store.Settlement) error {
	c, err := checkSettlement(id, st)
	if err != nil {
		return err
	}
	_, err = s.write(ctx, "settle", settleRunOp(owner, []settlement{c}, 0, 0, 0, nil))
	return err
}

var _ store.RunSettler = (*Store)(nil)

// SettleRun settles owner's attempts at a run of one conversation's
// deliveries and, when the last left pending, claims the conversation's
// next run, all in one transaction (see store.RunSettler).
func (s *Store) SettleRun(ctx context.Context, owner string, run []store.Outcome, n int, now, leaseUntil time.Time) ([]store.Delivery, error) {
	if err := store.CheckRun(run); err != nil {
		return nil, fmt.Errorf("sqlite: settle run: %w", err)
	}
	at, until, err := lease(owner, now, leaseUntil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: settle: %w", err)
	}
	checked := make([]settlement, len(run))
	for i, o := range run {
		if checked[i], err = checkSettlement(o.ID, o.Settlement); err != nil {
			return nil, err
		}
	}
	var next []store.Delivery
	if _, err := s.write(ctx, "settle", settleRunOp(owner, checked, n, at, until, &next)); err != nil {
		return nil, err
	}
	return next, nil
}

// settleRunOp returns the write that settles the run of checked outcomes
// for owner, recording their attempts, and then, when the last left
// pending, makes the conversation's oldest pending delivery its head:
// claimed at at until until, with the run behind it set in *next, when n
// is positive (claimRun); next may be nil when n is not.
func settleRunOp(owner string, checked []settlement, n int, at, until int64, next *[]store.Delivery) writeOp {
	return func(ctx context.Context, w *writer, now int64) (groupcommitResult, error) {
		for i := range checked {
			if err := checked[i].record(ctx, w, now); err != nil {
				return groupcommitResult{}, err
			}
		}
		first := &checked[0]
		res, to, err := w.settle(ctx, first.id, owner, first.st, first.next, now)
		if err != nil || res.Err != nil {
			return res, err
		}
		for _, q := range checked[1:] {
			if _, err := w.outbox.settleQueued.ExecContext(ctx, string(q.st.Status), owner, q.id, q.next, q.st.Error, q.st.ChannelID, now,
				to.Source, to.Ref); err != nil {
				return groupcommitResult{}, fmt.Errorf("settle queued delivery: %w", err)
			}
		}
		switch {
		case checked[len(checked)-1].st.Status == store.Pending:
			return res, nil
		case n < 1:
			return res, w.promote(ctx, to)
		}
		// The op may run again when its batch is retried: each run sets
		// *next anew.
		*next, err = w.claimRun(ctx, to, owner, n, at, until, now)
		return res, err
	}
}

// claimRun claims for owner, until leaseUntil at now, the oldest pending
// delivery of conversation to when Claim at due could hand it out (or only
// makes it the head), and returns it with up to n-1 of the deliveries
// queued behind it that are due at due: the next run.
func (w *writer) claimRun(ctx context.Context, to envelope.Conversation, owner string, n int, due, leaseUntil, now int64) ([]store.Delivery, error) {
	var queuedBehind bool
	row := w.outbox.claimHead.QueryRowContext(ctx, to.Source, to.Ref, owner, leaseUntil, now, due)
	d, err := scanDelivery(appended{row, []any{&queuedBehind}})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, w.promote(ctx, to) // none to claim: the head waits for Claim
	case err != nil:
		return nil, fmt.Errorf("claim the conversation's next delivery: %w", err)
	}
	if err := w.fillEnvelope(ctx, &d); err != nil {
		return nil, err
	}
	run := []store.Delivery{d.Delivery}
	if n <= 1 || !queuedBehind {
		return run, nil
	}
	rows, err := w.outbox.queued.QueryContext(ctx, to.Source, to.Ref, d.did, n-1)
	if err != nil {
		return nil, fmt.Errorf("read the queued deliveries: %w", err)
	}
	queued, err := collect(rows, scanDelivery)
	if err != nil {
		return nil, fmt.Errorf("read the queued deliveries: %w", err)
	}
	for _, q := range queued {
		if q.NextAttempt.UnixNano() > due {
			break // not due: the run ends before it
		}
		if err := w.fillEnvelope(ctx, &q); err != nil {
			return nil, err
		}
		q.Attempts++ // the attempt the owner would make
		run = append(run, q.Delivery)
	}
	return run, nil
}

// appended scans a row's leading columns into the destinations Scan is
// given, and the rest into extra.
type appended struct {
	scanner
	extra []any
}

func (a appended) Scan(dest ...any) error { return a.scanner.Scan(append(dest, a.extra...)...) }

// settlement is a checked settlement of delivery id.
type settlement struct {
	id      string
	st      store.Settlement
	next    int64          // st.NextAttempt in Unix nanoseconds (nextAttempt)
	attempt *store.Attempt // to record, when not nil
}

// checkSettlement checks st as the settlement of delivery id
// (store.CheckSettlement).
func checkSettlement(id string, st store.Settlement) (settlement, error) {
	if err := store.CheckSettlement(id, st); err != nil {
		return settlement{}, fmt.Errorf("sqlite: settle %s: %w", id, err)
	}
	next, err := nextAttempt(st)
	if err != nil {
		return settlement{}, fmt.Errorf("sqlite: settle %s: %w", id, err)
	}
	c := settlement{id: id, st: st, next: next}
	if st.Attempt != nil {
		a := newAttempt(*st.Attempt)
		c.attempt = &a
	}
	return c, nil
}

// record records the settlement's attempt, if it has one.
func (c *settlement) record(ctx context.Context, w *writer, now int64) error {
	if c.attempt == nil {
		return nil
	}
	return w.recordAttempt(ctx, c.attempt, now)
}

// nextAttempt returns the NextAttempt of st, a checked settlement, in Unix
// nanoseconds: 0, due at once, when it is zero or st is not Pending.
func nextAttempt(st store.Settlement) (int64, error) {
	if st.Status != store.Pending || st.NextAttempt.IsZero() {
		return 0, nil
	}
	return nanos("next_attempt", st.NextAttempt)
}

// settle records st, with its NextAttempt as next (Unix nanoseconds), as
// the outcome of owner's attempt at delivery id, and returns the
// delivery's conversation. One statement settles and reads the delivery;
// only when it settles nothing is the delivery looked for, to tell a lost
// lease from an unknown id.
func (w *writer) settle(ctx context.Context, id, owner string, st store.Settlement, next, now int64) (groupcommitResult, envelope.Conversation, error) {
	var to envelope.Conversation
	err := w.outbox.settle.QueryRowContext(ctx, string(st.Status), owner, id, next, st.Error, st.ChannelID, now).
		Scan(&to.Source, &to.Ref)
	if errors.Is(err, sql.ErrNoRows) {
		var one int
		switch err := w.outbox.exists.QueryRowContext(ctx, id).Scan(&one); {
		case errors.Is(err, sql.ErrNoRows):
			return groupcommitResult{Err: errDeliveryNotFound}, to, nil
		case err != nil:
			return groupcommitResult{}, to, fmt.Errorf("read delivery: %w", err)
		}
		return groupcommitResult{Err: errSettleLeaseLost}, to, nil
	}
	if err != nil {
		return groupcommitResult{}, to, fmt.Errorf("settle delivery: %w", err)
	}
	return groupcommitResult{}, to, nil
}

// promote makes the oldest pending delivery of conversation to its head,
// after the settle statement took the head flag with the head out of
// pending. No other delivery of the conversation can be a head (only the
// oldest pending one is), so, unlike reHead, nothing is demoted: demoting
// walks every pending delivery of the conversation, which under a backlog
// made each settle cost the backlog's length.
func (w *writer) promote(ctx context.Context, to envelope.Conversation) error {
	if _, err := w.outbox.promote.ExecContext(ctx, to.Source, to.Ref); err != nil {
		return fmt.Errorf("update conversation head: %w", err)
	}
	return nil
}

// reHead makes the oldest pending delivery to a conversation its one head,
// after RetryDelivery made a delivery pending that may be older than the
// head.
func (w *writer) reHead(ctx context.Context, source, ref string) error {
	if _, err := w.outbox.demote.ExecContext(ctx, source, ref); err != nil {
		return fmt.Errorf("update conversation head: %w", err)
	}
	return w.promote(ctx, envelope.Conversation{Source: source, Ref: ref})
}

// ListDeliveries returns up to limit deliveries with the given status (""
// for any) and ids after the cursor after, in id order, without their
// envelopes. A limit below 1 returns nothing.
func (s *Store) ListDeliveries(ctx context.Context, status store.DeliveryStatus, after string, limit int) ([]store.Delivery, error) {
	if err := store.CheckText("after", after); err != nil {
		return nil, fmt.Errorf("sqlite: list deliveries: %w", err)
	}
	if limit < 1 {
		return nil, nil
	}
	var (
		rows *sql.Rows
		err  error
	)
	switch status {
	case "":
		rows, err = s.r.outbox.list.QueryContext(ctx, after, limit)
	case store.Pending, store.Delivered, store.Dead:
		rows, err = s.r.outbox.listStatus.QueryContext(ctx, string(status), after, limit)
	default:
		return nil, fmt.Errorf("sqlite: list deliveries: invalid status %q", status)
	}
	if err != nil {
		return nil, s.readErr("list_deliveries", err)
	}
	out, err := collect(rows, func(row scanner) (store.Delivery, error) {
		d, err := scanDelivery(row)
		return d.Delivery, err
	})
	if err != nil {
		return nil, s.readErr("list_deliveries", err)
	}
	return out, nil
}

// SessionDeliveries returns up to limit deliveries of f.SessionID after
// the cursor after, in id order, filtered by f.Status and f.To. It reads
// the session's deliveries along deliveries_record and sorts them.
func (s *Store) SessionDeliveries(ctx context.Context, f store.DeliveryFilter, after string, limit int) ([]store.Delivery, error) {
	if err := store.CheckDeliveryFilter(f, after); err != nil {
		return nil, fmt.Errorf("sqlite: session deliveries: %w", err)
	}
	if limit < 1 {
		return nil, nil
	}
	rows, err := s.r.outbox.listSession.QueryContext(ctx, f.SessionID, after, string(f.Status), f.To.Source, f.To.Ref, limit)
	if err != nil {
		return nil, s.readErr("session_deliveries", err)
	}
	out, err := collect(rows, func(row scanner) (store.Delivery, error) {
		d, err := scanDelivery(row)
		return d.Delivery, err
	})
	if err != nil {
		return nil, s.readErr("session_deliveries", err)
	}
	return out, nil
}

// RetryDelivery makes delivery id pending and due at now, whatever its
// status, keeping its attempts (and the lease of an attempt in flight), and
// returns it. An unknown id gives an error wrapping store.ErrNotFound.
func (s *Store) RetryDelivery(ctx context.Context, id string, now time.Time) (store.Delivery, error) {
	due, err := nanos("now", now)
	if err != nil {
		return store.Delivery{}, fmt.Errorf("sqlite: retry delivery: %w", err)
	}
	res, err := s.write(ctx, "retry_delivery", func(ctx context.Context, w *writer, now int64) (groupcommitResult, error) {
		return w.retryDelivery(ctx, id, due, now)
	})
	if err != nil {
		return store.Delivery{}, err
	}
	return res.val.(store.Delivery), nil
}

// retryDelivery makes delivery id pending and due at due (Unix
// nanoseconds).
func (w *writer) retryDelivery(ctx context.Context, id string, due, now int64) (groupcommitResult, error) {
	d, err := scanDelivery(w.outbox.byID.QueryRowContext(ctx, id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return groupcommitResult{Err: errDeliveryNotFound}, nil
	case err != nil:
		return groupcommitResult{}, fmt.Errorf("read delivery: %w", err)
	}
	if _, err := w.outbox.retry.ExecContext(ctx, due, now, d.did); err != nil {
		return groupcommitResult{}, fmt.Errorf("retry delivery: %w", err)
	}
	if err := w.reHead(ctx, d.To.Source, d.To.Ref); err != nil {
		return groupcommitResult{}, err
	}
	if d, err = scanDelivery(w.outbox.byDID.QueryRowContext(ctx, d.did)); err != nil {
		return groupcommitResult{}, fmt.Errorf("read delivery: %w", err)
	}
	return groupcommitResult{Val: writeResult{val: d.Delivery}}, nil
}

// Posted reports whether a delivery to a conversation of source was
// settled as delivered with channelID as the channel's id for what it
// posted. Only such settlements record a channel id, and a delivery retried
// after it was delivered keeps it: the post it made stays the gateway's.
func (s *Store) Posted(ctx context.Context, source, channelID string) (bool, error) {
	if channelID == "" {
		return false, nil
	}
	var one int
	err := s.r.outbox.posted.QueryRowContext(ctx, source, channelID).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, s.readErr("posted", err)
	}
	return true, nil
}

// ChannelIDOf returns the channel id recorded on the delivery of record
// seq of sessionID to conversation to, "" when there is none.
func (s *Store) ChannelIDOf(ctx context.Context, sessionID string, seq int64, to envelope.Conversation) (string, error) {
	var id string
	err := s.r.outbox.channelOf.QueryRowContext(ctx, sessionID, seq, to.Source, to.Ref).Scan(&id)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", nil
	case err != nil:
		return "", s.readErr("channel_id_of", err)
	}
	return id, nil
}

// SetChannelID records channelID on the delivery of record seq of
// sessionID to conversation to when it has none.
func (s *Store) SetChannelID(ctx context.Context, sessionID string, seq int64, to envelope.Conversation, channelID string) error {
	if err := store.CheckText("channel id", channelID); err != nil {
		return fmt.Errorf("sqlite: set channel id: %w", err)
	}
	_, err := s.write(ctx, "set_channel_id", func(ctx context.Context, w *writer, _ int64) (groupcommitResult, error) {
		if _, err := w.outbox.setChannel.ExecContext(ctx, sessionID, seq, to.Source, to.Ref, channelID); err != nil {
			return groupcommitResult{}, fmt.Errorf("set channel id: %w", err)
		}
		return groupcommitResult{}, nil
	})
	return err
}
