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

// The writer fans out at commit (see "Fan-out at commit" in package
// store): the writes that add a record, create a session or change its
// state also enqueue, in the same transaction, the deliveries they cause.

// fanOutWrites are the writer's statements for fan-out.
type fanOutWrites struct {
	bound, latestInbound, lastEvent, webhooks *sql.Stmt
}

func (f *fanOutWrites) defs() []stmtDef {
	return []stmtDef{
		{&f.bound, boundSQL},
		{&f.latestInbound, latestInboundSQL},
		{&f.lastEvent, `SELECT eid, type, state, previous, after_seq, at FROM session_events
			WHERE sid = ? ORDER BY eid DESC LIMIT 1`},
		{&f.webhooks, `SELECT ` + webhookColumns + ` FROM webhooks ORDER BY id`},
	}
}

// destinations returns the webhook destinations, read once and kept until
// a webhook write or another connection's commit (see commitTx).
func (w *writer) destinations(ctx context.Context) ([]store.Webhook, error) {
	if w.destsValid {
		return w.dests, nil
	}
	rows, err := w.fanOut.webhooks.QueryContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("read webhooks: %w", err)
	}
	dests, err := collect(rows, scanWebhook)
	if err != nil {
		return nil, fmt.Errorf("read webhooks: %w", err)
	}
	w.dests, w.destsValid = dests, true
	w.eventDests = false
	for i := range dests {
		w.eventDests = w.eventDests || dests[i].TakesSessionEvents()
	}
	return dests, nil
}

// fanOutRecord enqueues the deliveries of record rec, just inserted in
// session bs: to its conversations when it is an output, and to the webhook
// destinations that take it.
func (w *writer) fanOutRecord(ctx context.Context, bs *batchSession, rec *store.Record, now int64) error {
	dests, err := w.destinations(ctx)
	if err != nil {
		return err
	}
	at := time.Unix(0, now).UTC()
	var ds []store.Delivery
	if store.IsOutput(rec) {
		to, err := w.outputTargets(ctx, bs, rec)
		if err != nil {
			return err
		}
		for _, c := range to {
			ds = append(ds, store.Delivery{SessionID: rec.SessionID, Seq: rec.Seq, To: c})
		}
	}
	ds = store.LiveWebhookDeliveries(ds, dests, rec.SessionID, rec.Seq, 0, store.EventTypeOf(rec), rec.StoredAt, at)
	return w.insertDeliveries(ctx, bs.sid, ds, now)
}

// The conversations bound to session ?1, and the conversation of its
// newest inbound record before seq ?2 that names one (along records_seq,
// back from the output).
const (
	boundSQL         = `SELECT conv_source, conv_ref FROM bindings WHERE sid = ? ORDER BY created_at, bid`
	latestInboundSQL = `SELECT conv_source, conv_ref FROM records
		WHERE sid = ? AND seq < ? AND direction = 'inbound' AND conv_source <> ''
		ORDER BY seq DESC LIMIT 1`
)

// outputTargets returns the conversations output rec of session bs goes to.
func (w *writer) outputTargets(ctx context.Context, bs *batchSession, rec *store.Record) ([]envelope.Conversation, error) {
	return readTargets(rec,
		func() (*sql.Rows, error) { return w.fanOut.bound.QueryContext(ctx, bs.sid) },
		func() *sql.Row { return w.fanOut.latestInbound.QueryRowContext(ctx, bs.sid, rec.Seq) })
}

// readTargets returns the conversations output rec goes to
// (store.OutputTargets), reading its session's bindings through bound
// (boundSQL) and, when rec names no conversation, its latest conversation
// through latest (latestInboundSQL).
func readTargets(rec *store.Record, bound func() (*sql.Rows, error), latest func() *sql.Row) ([]envelope.Conversation, error) {
	rows, err := bound()
	if err != nil {
		return nil, fmt.Errorf("read bindings: %w", err)
	}
	convs, err := collect(rows, func(row scanner) (c envelope.Conversation, err error) {
		err = row.Scan(&c.Source, &c.Ref)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("read bindings: %w", err)
	}
	if len(convs) == 0 {
		return nil, nil
	}
	var last envelope.Conversation
	if rec.Envelope.Conversation.IsZero() {
		if err := latest().Scan(&last.Source, &last.Ref); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("read latest inbound conversation: %w", err)
		}
	}
	return store.OutputTargets(rec, convs, last), nil
}

// fanOutEvent enqueues, for the destinations that take session events,
// the deliveries of the session event just journaled for session bs.
func (w *writer) fanOutEvent(ctx context.Context, bs *batchSession, now int64) error {
	dests, err := w.destinations(ctx)
	if err != nil || !w.eventDests {
		return err
	}
	var (
		ev       store.SessionEvent
		typ      string
		at       int64
		state    string
		previous string
	)
	err = w.fanOut.lastEvent.QueryRowContext(ctx, bs.sid).Scan(&ev.ID, &typ, &state, &previous, &ev.AfterSeq, &at)
	if err != nil {
		return fmt.Errorf("read session event: %w", err)
	}
	ev.Type = envelope.EventType(typ)
	ds := store.LiveWebhookDeliveries(nil, dests, bs.id, ev.AfterSeq, ev.ID, ev.Type, time.Unix(0, at).UTC(), time.Unix(0, now).UTC())
	return w.insertDeliveries(ctx, bs.sid, ds, now)
}

// insertDeliveries enqueues ds, all of session sid, in order.
func (w *writer) insertDeliveries(ctx context.Context, sid int64, ds []store.Delivery, now int64) error {
	for i := range ds {
		d := &ds[i]
		if _, err := w.outbox.insert.ExecContext(ctx, d.To.Source, d.To.Ref, ids.New("dlv"), sid, d.Seq,
			0, now, now, d.Event); err != nil {
			return fmt.Errorf("insert delivery: %w", err)
		}
	}
	return nil
}
