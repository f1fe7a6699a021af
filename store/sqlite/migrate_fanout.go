package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/ids"
	"github.com/switchboardhq/switchboard/store"
)

// goSteps are the parts of migrations written in Go, by version: each runs
// in its version's transaction, after its SQL.
var goSteps = map[int]func(ctx context.Context, conn *sql.Conn) error{
	8: drainLegacyFollowers,
}

// The router's followers that enqueued deliveries before the store fanned
// out at commit (migration 8), and where the journal follower kept its
// cursor.
const (
	legacyOutbox                      = "outbox"
	legacyWebhooks                    = "webhooks"
	legacyJournalNS, legacyJournalKey = "router", "webhooks.journal"
)

// drainLegacyFollowers is migration 8's Go step. From version 8 on, the
// writer enqueues every delivery in the transaction of the change that
// causes it (fanout.go), and the router no longer follows the log for
// them. What the followers had not enqueued yet when the previous binary
// stopped is enqueued here, once, as the writer would have: the outputs
// past the "outbox" cursors, and for webhooks the records past the
// "webhooks" cursors with the session events placed among them and those
// the journal follower had not passed. Then the two consumers are dropped.
// Deliveries are idempotent, so what a follower had enqueued already is
// kept as it is.
func drainLegacyFollowers(ctx context.Context, conn *sql.Conn) error {
	now := time.Now().UnixNano()
	d := &drainer{conn: conn, now: now}
	if err := d.outputs(ctx); err != nil {
		return fmt.Errorf("enqueue the outputs the router had not routed: %w", err)
	}
	if err := d.webhooks(ctx); err != nil {
		return fmt.Errorf("enqueue the webhook events the router had not routed: %w", err)
	}
	for _, q := range []string{
		`DELETE FROM cursors WHERE consumer IN ('outbox', 'webhooks')`,
		`DELETE FROM consumers WHERE name IN ('outbox', 'webhooks')`,
		`DELETE FROM kv WHERE namespace = 'router' AND key = 'webhooks.journal'`,
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

type drainer struct {
	conn *sql.Conn
	now  int64
}

// registered reports whether consumer ever claimed work.
func (d *drainer) registered(ctx context.Context, consumer string) (bool, error) {
	var n int
	err := d.conn.QueryRowContext(ctx, `SELECT count(*) FROM consumers WHERE name = ?`, consumer).Scan(&n)
	return n > 0, err
}

// backlogRecord is a record past a consumer's cursor.
type backlogRecord struct {
	sid int64
	rec store.Record
}

// backlog returns the records past consumer's cursors (only outputs when
// outputs is set), by session and seq, and the cursors of their sessions.
func (d *drainer) backlog(ctx context.Context, consumer string, outputs bool) ([]backlogRecord, map[int64]int64, error) {
	q := `SELECT r.sid, s.id, r.seq, r.direction, r.kind, r.envelope_id, r.conv_source, r.conv_ref, r.stored_at,
			coalesce(c.seq, 0)
		FROM records r JOIN sessions s ON s.sid = r.sid
		LEFT JOIN cursors c ON c.consumer = ? AND c.sid = r.sid
		WHERE r.seq > coalesce(c.seq, 0)`
	if outputs {
		q += ` AND r.direction = 'outbound' AND r.kind IN ('message', 'system')`
	}
	rows, err := d.conn.QueryContext(ctx, q+` ORDER BY r.sid, r.seq`, consumer)
	if err != nil {
		return nil, nil, err
	}
	cursors := map[int64]int64{}
	out, err := collect(rows, func(row scanner) (backlogRecord, error) {
		var (
			b           backlogRecord
			dir, kind   string
			stored, cur int64
		)
		e := &b.rec.Envelope
		err := row.Scan(&b.sid, &b.rec.SessionID, &b.rec.Seq, &dir, &kind, &e.ID, &e.Conversation.Source, &e.Conversation.Ref, &stored, &cur)
		b.rec.Direction, e.Kind, b.rec.StoredAt = store.Direction(dir), envelope.Kind(kind), time.Unix(0, stored).UTC()
		cursors[b.sid] = cur
		return b, err
	})
	return out, cursors, err
}

func (d *drainer) insert(ctx context.Context, sid int64, ds []store.Delivery) error {
	for i := range ds {
		if _, err := d.conn.ExecContext(ctx, `INSERT INTO deliveries (id, sid, seq, event, to_source, to_ref, status, head, next_attempt, created_at, updated_at)
			VALUES (?3, ?4, ?5, ?6, ?1, ?2, 'pending',
				NOT EXISTS (SELECT 1 FROM deliveries WHERE status = 'pending' AND to_source = ?1 AND to_ref = ?2),
				0, ?7, ?7)
			ON CONFLICT (sid, seq, event, to_source, to_ref) DO NOTHING`,
			ds[i].To.Source, ds[i].To.Ref, ids.New("dlv"), sid, ds[i].Seq, ds[i].Event, d.now); err != nil {
			return fmt.Errorf("insert delivery: %w", err)
		}
	}
	return nil
}

// outputs enqueues the outputs past the "outbox" cursors.
func (d *drainer) outputs(ctx context.Context) error {
	if ok, err := d.registered(ctx, legacyOutbox); err != nil || !ok {
		return err
	}
	recs, _, err := d.backlog(ctx, legacyOutbox, true)
	if err != nil {
		return err
	}
	for _, b := range recs {
		to, err := readTargets(&b.rec,
			func() (*sql.Rows, error) { return d.conn.QueryContext(ctx, boundSQL, b.sid) },
			func() *sql.Row { return d.conn.QueryRowContext(ctx, latestInboundSQL, b.sid, b.rec.Seq) })
		if err != nil {
			return err
		}
		var ds []store.Delivery
		for _, c := range to {
			ds = append(ds, store.Delivery{Seq: b.rec.Seq, To: c})
		}
		if err := d.insert(ctx, b.sid, ds); err != nil {
			return err
		}
	}
	return nil
}

// webhooks enqueues, per session in the session's order, the records past
// the "webhooks" cursors and the session events past the journal
// follower's cursor.
func (d *drainer) webhooks(ctx context.Context) error {
	rows, err := d.conn.QueryContext(ctx, `SELECT `+webhookColumns+` FROM webhooks ORDER BY id`)
	if err != nil {
		return err
	}
	dests, err := collect(rows, scanWebhook)
	if err != nil || len(dests) == 0 {
		return err
	}
	type item struct {
		pos, event int64 // the record's seq, or the event's after_seq and id
		typ        envelope.EventType
		at         time.Time
	}
	items := map[int64][]item{}
	ids := map[int64]string{}
	if ok, err := d.registered(ctx, legacyWebhooks); err != nil {
		return err
	} else if ok {
		recs, _, err := d.backlog(ctx, legacyWebhooks, false)
		if err != nil {
			return err
		}
		for _, b := range recs {
			items[b.sid] = append(items[b.sid], item{pos: b.rec.Seq, typ: store.EventTypeOf(&b.rec), at: b.rec.StoredAt})
			ids[b.sid] = b.rec.SessionID
		}
	}
	var journal int64
	var v []byte
	err = d.conn.QueryRowContext(ctx, `SELECT value FROM kv WHERE namespace = ? AND key = ?`, legacyJournalNS, legacyJournalKey).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return err
	default:
		journal, _ = strconv.ParseInt(string(v), 10, 64)
	}
	// The journal follower enqueued each event it passed (with the records
	// before it); the log follower only those placed before its cursor,
	// which the journal follower had passed too.
	rows, err = d.conn.QueryContext(ctx, `SELECT e.eid, s.id, e.type, e.state, e.previous, e.after_seq, e.at, e.sid
		FROM session_events e JOIN sessions s ON s.sid = e.sid
		WHERE e.eid > ? ORDER BY e.eid`, journal)
	if err != nil {
		return err
	}
	type event struct {
		store.SessionEvent
		sid int64
	}
	evs, err := collect(rows, func(row scanner) (event, error) {
		var (
			ev               event
			typ, st, prev    string
			afterSeq, atNano int64
		)
		err := row.Scan(&ev.ID, &ev.SessionID, &typ, &st, &prev, &afterSeq, &atNano, &ev.sid)
		ev.Type, ev.AfterSeq, ev.At = envelope.EventType(typ), afterSeq, time.Unix(0, atNano).UTC()
		return ev, err
	})
	if err != nil {
		return err
	}
	for _, ev := range evs {
		items[ev.sid] = append(items[ev.sid], item{pos: ev.AfterSeq, event: ev.ID, typ: ev.Type, at: ev.At})
		ids[ev.sid] = ev.SessionID
	}
	now := time.Unix(0, d.now).UTC()
	for sid, its := range items {
		// The session's order: an event placed after record k follows it.
		slices.SortStableFunc(its, func(a, b item) int {
			if c := cmp.Compare(a.pos, b.pos); c != 0 {
				return c
			}
			return cmp.Compare(a.event, b.event) // the record (event 0) first
		})
		var ds []store.Delivery
		for _, it := range its {
			ds = store.LiveWebhookDeliveries(ds, dests, ids[sid], it.pos, it.event, it.typ, it.at, now)
		}
		if err := d.insert(ctx, sid, ds); err != nil {
			return err
		}
	}
	return nil
}
