package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// The store fans out at commit (see "Fan-out at commit" in package
// store): Append enqueues the deliveries of the records it adds in their
// transaction (fanOut below), and the journal trigger those of the session
// events (migration 0007).

// fanOut computes, for one append batch, the deliveries of the records it
// adds. What it needs is read in the batch's first round trip, under the
// sessions' locks: the webhook destinations and, for the sessions with
// outputs, their bindings. The conversation of each session's newest
// inbound record comes with the session's row: tryCommit enters it in
// latestConv as it reads the rows, record keeps it up to date through the
// batch, and tryCommit writes it back to the rows.
type fanOut struct {
	outputs []string // sessions with outputs, sorted after queueReads

	dests      []store.Webhook
	bound      map[string][]envelope.Conversation
	latestConv map[string]envelope.Conversation

	deliveries []store.Delivery
	// lockOnly are the webhook conversations the journal trigger may
	// enqueue state changes to, whose tails the batch's enqueue locks
	// with the others (queueEnqueue).
	lockOnly []envelope.Conversation
}

// stateChanged notes that session sessionID's state changes in the batch:
// the journal trigger enqueues the change to each destination that takes
// it.
func (f *fanOut) stateChanged(sessionID string) {
	for i := range f.dests {
		if w := &f.dests[i]; w.Takes(envelope.EventSessionState, sessionID) {
			f.lockOnly = append(f.lockOnly, envelope.Conversation{Source: store.SourceWebhook, Ref: store.WebhookRef(w.ID, "", sessionID)})
		}
	}
}

// want notes what request r will need.
func (f *fanOut) want(r *store.AppendRequest) {
	rec := store.Record{Direction: r.Direction, Envelope: r.Envelope}
	if store.IsOutput(&rec) {
		f.outputs = append(f.outputs, r.SessionID)
	}
}

// queueReads queues the reads on b.
func (f *fanOut) queueReads(b *pgx.Batch) {
	b.Queue(`SELECT id, event_types, sessions, disabled, created_at FROM webhooks ORDER BY id`)
	slices.Sort(f.outputs)
	f.outputs = slices.Compact(f.outputs)
	if len(f.outputs) > 0 {
		b.Queue(`SELECT session_id, conv_source, conv_ref FROM bindings
			WHERE session_id = ANY($1) ORDER BY session_id, created_at, id`, f.outputs)
	}
}

// scanReads reads what queueReads queued, from br.
func (f *fanOut) scanReads(br pgx.BatchResults) error {
	rows, _ := br.Query()
	dests, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Webhook, error) {
		var w store.Webhook
		err := row.Scan(&w.ID, &w.EventTypes, &w.Sessions, &w.Disabled, &w.CreatedAt)
		return w, err
	})
	if err != nil {
		return err
	}
	f.dests = dests
	f.bound = map[string][]envelope.Conversation{}
	if len(f.outputs) > 0 {
		return scanConversations(br, func(id string, c envelope.Conversation) { f.bound[id] = append(f.bound[id], c) })
	}
	return nil
}

// scanConversations hands add each (session id, conversation) row of br's
// next result.
func scanConversations(br pgx.BatchResults, add func(id string, c envelope.Conversation)) error {
	rows, _ := br.Query()
	for rows.Next() {
		var id string
		var c envelope.Conversation
		if err := rows.Scan(&id, &c.Source, &c.Ref); err != nil {
			rows.Close()
			return err
		}
		add(id, c)
	}
	return rows.Err()
}

// record adds the deliveries of rec, a record the batch adds, in the
// batch's order (hence each session's).
func (f *fanOut) record(rec *store.Record) {
	if rec.Direction == store.Inbound && rec.Envelope.Conversation.Source != "" {
		f.latestConv[rec.SessionID] = rec.Envelope.Conversation
	}
	if store.IsOutput(rec) {
		for _, c := range store.OutputTargets(rec, f.bound[rec.SessionID], f.latestConv[rec.SessionID]) {
			f.deliveries = append(f.deliveries, store.Delivery{SessionID: rec.SessionID, Seq: rec.Seq, To: c})
		}
	}
	f.deliveries = store.LiveWebhookDeliveries(f.deliveries, f.dests, rec.SessionID, rec.Seq, 0,
		store.EventTypeOf(rec), rec.StoredAt, rec.StoredAt)
}

// drainLegacyFollowers enqueues, once, what the router's outbox and webhook
// followers had not enqueued when the last gateway before migration 0007
// stopped, as Append would have at commit: the outputs past the "outbox"
// cursors, and for webhooks the records past the "webhooks" cursors and
// the session events past the journal follower's saved cursor. Then it
// drops the two consumers (their pending work and cursors), so that appends
// no longer mark work for them. It runs in one transaction under an
// advisory lock, so replicas opening at once drain once; after the drop it
// finds nothing to do. Deliveries are idempotent, so what a follower had
// enqueued already (and what the new binary enqueued since) stays as it
// is.
func drainLegacyFollowers(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '/drain-legacy-followers', 0))`); err != nil {
			return err
		}
		var outbox, webhooks bool
		if err := tx.QueryRow(ctx, `SELECT
				EXISTS (SELECT 1 FROM consumers WHERE name = 'outbox'),
				EXISTS (SELECT 1 FROM consumers WHERE name = 'webhooks')`).Scan(&outbox, &webhooks); err != nil {
			return err
		}
		if !outbox && !webhooks {
			return nil
		}
		var ds []store.Delivery
		if outbox {
			out, err := legacyOutputs(ctx, tx)
			if err != nil {
				return fmt.Errorf("enqueue the outputs the router had not routed: %w", err)
			}
			ds = append(ds, out...)
		}
		if webhooks {
			out, err := legacyWebhookItems(ctx, tx)
			if err != nil {
				return fmt.Errorf("enqueue the webhook events the router had not routed: %w", err)
			}
			ds = append(ds, out...)
		}
		for len(ds) > 0 {
			n := min(len(ds), 1000)
			b := &pgx.Batch{}
			if err := queueEnqueue(b, ds[:n], true, nil); err != nil {
				return err
			}
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return err
			}
			ds = ds[n:]
		}
		_, err := tx.Exec(ctx, `DELETE FROM pending_work WHERE consumer IN ('outbox', 'webhooks');
			DELETE FROM cursors WHERE consumer IN ('outbox', 'webhooks');
			DELETE FROM consumers WHERE name IN ('outbox', 'webhooks');
			DELETE FROM kv WHERE namespace = 'router' AND key = 'webhooks.journal'`)
		return err
	})
}

// legacyRecords returns the records past consumer's cursors (only outputs
// when outputs is set), by session and seq.
func legacyRecords(ctx context.Context, tx pgx.Tx, consumer string, outputs bool) ([]store.Record, error) {
	q := `SELECT r.session_id, r.seq, r.direction, r.kind, r.envelope_id, r.conv_source, r.conv_ref, r.stored_at
		FROM cursors c JOIN records r ON r.session_id = c.session_id AND r.seq > c.seq
		WHERE c.consumer = $1`
	if outputs {
		q += ` AND r.direction = 'outbound' AND r.kind IN ('message', 'system')`
	}
	rows, err := tx.Query(ctx, q+` ORDER BY r.session_id, r.seq`, consumer)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Record, error) {
		var rec store.Record
		var dir, kind string
		e := &rec.Envelope
		err := row.Scan(&rec.SessionID, &rec.Seq, &dir, &kind, &e.ID, &e.Conversation.Source, &e.Conversation.Ref, &rec.StoredAt)
		rec.Direction, e.Kind = store.Direction(dir), envelope.Kind(kind)
		return rec, err
	})
}

func legacyOutputs(ctx context.Context, tx pgx.Tx) ([]store.Delivery, error) {
	recs, err := legacyRecords(ctx, tx, "outbox", true)
	if err != nil {
		return nil, err
	}
	var ds []store.Delivery
	for i := range recs {
		rec := &recs[i]
		rows, err := tx.Query(ctx, `SELECT conv_source, conv_ref FROM bindings WHERE session_id = $1 ORDER BY created_at, id`, rec.SessionID)
		if err != nil {
			return nil, err
		}
		bound, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (c envelope.Conversation, err error) {
			err = row.Scan(&c.Source, &c.Ref)
			return c, err
		})
		if err != nil {
			return nil, err
		}
		var latest envelope.Conversation
		err = tx.QueryRow(ctx, `SELECT conv_source, conv_ref FROM records
			WHERE session_id = $1 AND seq < $2 AND direction = 'inbound' AND conv_source <> ''
			ORDER BY seq DESC LIMIT 1`, rec.SessionID, rec.Seq).Scan(&latest.Source, &latest.Ref)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, err
		}
		for _, c := range store.OutputTargets(rec, bound, latest) {
			ds = append(ds, store.Delivery{SessionID: rec.SessionID, Seq: rec.Seq, To: c})
		}
	}
	return ds, nil
}

// legacyWebhookItems returns the webhook deliveries of the records past
// the "webhooks" cursors and of the session events past the journal
// follower's cursor, per session in the session's order.
func legacyWebhookItems(ctx context.Context, tx pgx.Tx) ([]store.Delivery, error) {
	rows, err := tx.Query(ctx, `SELECT id, event_types, sessions, disabled, created_at FROM webhooks ORDER BY id`)
	if err != nil {
		return nil, err
	}
	dests, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Webhook, error) {
		var w store.Webhook
		err := row.Scan(&w.ID, &w.EventTypes, &w.Sessions, &w.Disabled, &w.CreatedAt)
		return w, err
	})
	if err != nil || len(dests) == 0 {
		return nil, err
	}
	type item struct {
		pos, event int64
		typ        envelope.EventType
		at         time.Time
	}
	items := map[string][]item{}
	recs, err := legacyRecords(ctx, tx, "webhooks", false)
	if err != nil {
		return nil, err
	}
	for i := range recs {
		rec := &recs[i]
		items[rec.SessionID] = append(items[rec.SessionID], item{pos: rec.Seq, typ: store.EventTypeOf(rec), at: rec.StoredAt})
	}
	var cursor string
	err = tx.QueryRow(ctx, `SELECT convert_from(value, 'UTF8') FROM kv WHERE namespace = 'router' AND key = 'webhooks.journal'`).Scan(&cursor)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	xid, eid, err := parseEventCursor(cursor)
	if err != nil {
		xid, eid = "0", 0 // an unreadable cursor: every event, idempotently
	}
	rows, err = tx.Query(ctx, `SELECT session_id, eid, type, after_seq, at FROM session_events
		WHERE (xid, eid) > ($1::text::xid8, $2) ORDER BY eid`, xid, eid)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var (
			sessionID, typ string
			it             item
		)
		if err := rows.Scan(&sessionID, &it.event, &typ, &it.pos, &it.at); err != nil {
			rows.Close()
			return nil, err
		}
		it.typ = envelope.EventType(typ)
		items[sessionID] = append(items[sessionID], it)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var ds []store.Delivery
	for _, sessionID := range slices.Sorted(maps.Keys(items)) {
		its := items[sessionID]
		// The session's order: an event placed after record k follows it.
		slices.SortStableFunc(its, func(a, b item) int {
			if c := cmp.Compare(a.pos, b.pos); c != 0 {
				return c
			}
			return cmp.Compare(a.event, b.event)
		})
		for _, it := range its {
			ds = store.LiveWebhookDeliveries(ds, dests, sessionID, it.pos, it.event, it.typ, it.at, it.at)
		}
	}
	return ds, nil
}
