package router

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/webhook"
)

// Outbound webhooks
//
// Webhook destinations ride on the outbox. A follower (consumer
// "webhooks") reads every record appended to any session's log and
// enqueues one delivery per matching, enabled destination, to the
// conversation {source: "webhook", ref: "<destination>/<session>"}: the
// outbox keeps order per conversation, hence per destination and session,
// and survives crashes. webhookSink, registered as the sink of source
// "webhook", signs and posts each delivery and records the attempt.
//
// Event types: every record is a "message" event with its direction,
// except the system records this file appends to a session's log when a
// destination gives up ("delivery.failed"; see failed). Those are inbound
// system records, which no runtime is handed and no channel is sent, so
// they only reach webhook receivers and log readers.

// The webhooks' cursor consumer and conversation source.
const (
	consumerWebhooks = "webhooks"
	// WebhookSource is the conversation source of webhook deliveries.
	WebhookSource = "webhook"
)

// failedPrefix starts the envelope id of a delivery.failed record.
const failedPrefix = "system:webhook-failed:"

// WebhookEventID is the Event id (and webhook-id header) of the event for
// record seq of session sessionID. It is stable, so a retried or replayed
// delivery carries the same id and receivers can deduplicate on it.
func WebhookEventID(sessionID string, seq int64) string {
	h := sha256.Sum256([]byte(sessionID + "\x00" + strconv.FormatInt(seq, 10)))
	return "evt_" + hex.EncodeToString(h[:16])
}

// webhookRef is the outbox anchor of destination dest and session
// sessionID; replay, when not empty, makes a separate queue for a replay.
func webhookRef(dest, replay, sessionID string) string {
	if replay != "" {
		return dest + "#" + replay + "/" + sessionID
	}
	return dest + "/" + sessionID
}

// webhookDest returns the destination id of an outbox anchor.
func webhookDest(ref string) string {
	dest, _, _ := strings.Cut(ref, "/")
	dest, _, _ = strings.Cut(dest, "#")
	return dest
}

// eventType is the webhook event type of record rec.
func eventType(rec *store.Record) envelope.EventType {
	if rec.Envelope.Kind == envelope.KindSystem && strings.HasPrefix(rec.Envelope.ID, failedPrefix) {
		return envelope.EventDeliveryFail
	}
	return envelope.EventMessage
}

// wants reports whether destination w takes events of type t of session
// sessionID.
func wants(w *store.Webhook, t envelope.EventType, sessionID string) bool {
	if w.Disabled {
		return false
	}
	if len(w.EventTypes) > 0 && !slices.Contains(w.EventTypes, string(t)) {
		return false
	}
	return len(w.Sessions) == 0 || slices.Contains(w.Sessions, sessionID)
}

// routeWebhooks turns a session's new records into webhook deliveries.
func (r *Router) routeWebhooks(ctx context.Context, w store.Work) error {
	dests, err := r.webhooks.ListWebhooks(ctx)
	if err != nil {
		return err
	}
	cursor := w.Cursor
	for cursor < w.LastSeq {
		recs, err := r.st.Read(ctx, w.SessionID, cursor, 256)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			break
		}
		ds := webhookDeliveries(dests, recs, "", r.now())
		if len(ds) > 0 {
			if err := r.st.Enqueue(ctx, ds); err != nil {
				return err
			}
			r.metrics.enqueued.Add(float64(len(ds)))
			r.kick()
		}
		cursor = recs[len(recs)-1].Seq
		if err := r.st.Advance(ctx, consumerWebhooks, w.SessionID, r.owner, cursor, r.now().Add(r.lease)); err != nil {
			return err
		}
	}
	return r.st.Advance(ctx, consumerWebhooks, w.SessionID, r.owner, cursor, time.Time{})
}

// webhookDeliveries returns the deliveries of recs to the destinations that
// want them, in record order, to the replay queue replay ("" for the live
// one).
func webhookDeliveries(dests []store.Webhook, recs []store.Record, replay string, now time.Time) []store.Delivery {
	var ds []store.Delivery
	for i := range recs {
		rec := &recs[i]
		t := eventType(rec)
		for j := range dests {
			if !wants(&dests[j], t, rec.SessionID) {
				continue
			}
			ds = append(ds, store.Delivery{
				SessionID: rec.SessionID, Seq: rec.Seq,
				To:          envelope.Conversation{Source: WebhookSource, Ref: webhookRef(dests[j].ID, replay, rec.SessionID)},
				NextAttempt: now, CreatedAt: now,
			})
		}
	}
	return ds
}

// ReplayWebhook enqueues again, for destination id, every event stored at
// or after since that the destination's filters take, in a queue of its
// own per session (in log order within a session; interleaved with live
// deliveries, which keep their own order). It returns how many deliveries
// it enqueued. It reads every session's log from the start, so it costs
// time in proportion to the store. ErrNotFound for an unknown destination.
func (r *Router) ReplayWebhook(ctx context.Context, id string, since time.Time) (int, error) {
	if r.webhooks == nil {
		return 0, errors.New("router: webhooks are not enabled")
	}
	dest, err := r.webhooks.Webhook(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("router: replay: %w", err)
	}
	if dest.Disabled {
		return 0, fmt.Errorf("router: replay: destination %s is disabled", id)
	}
	dests := []store.Webhook{dest}
	replay := "replay-" + strconv.FormatInt(r.now().UnixNano(), 36)
	n := 0
	after := ""
	for {
		sessions, err := r.st.ListSessions(ctx, after, 100)
		if err != nil {
			return n, fmt.Errorf("router: replay: %w", err)
		}
		if len(sessions) == 0 {
			break
		}
		after = sessions[len(sessions)-1].ID
		for _, s := range sessions {
			if len(dest.Sessions) > 0 && !slices.Contains(dest.Sessions, s.ID) {
				continue
			}
			var cursor int64
			for {
				recs, err := r.st.Read(ctx, s.ID, cursor, 256)
				if err != nil {
					return n, fmt.Errorf("router: replay: %w", err)
				}
				if len(recs) == 0 {
					break
				}
				cursor = recs[len(recs)-1].Seq
				recs = slices.DeleteFunc(recs, func(rec store.Record) bool { return rec.StoredAt.Before(since) })
				ds := webhookDeliveries(dests, recs, replay, r.now())
				if len(ds) > 0 {
					if err := r.st.Enqueue(ctx, ds); err != nil {
						return n, fmt.Errorf("router: replay: %w", err)
					}
					n += len(ds)
				}
			}
		}
	}
	r.kick()
	return n, nil
}

// syncWebhookConfig creates or updates the destinations declared in the
// configuration file. A declared secret that differs from the stored one
// replaces it, with the configured grace for the old one.
func (r *Router) syncWebhookConfig(ctx context.Context) error {
	var errs []error
	for _, d := range r.cfg.Webhooks.Destinations {
		w := store.Webhook{ID: d.ID, URL: d.URL, Description: d.Description, EventTypes: d.EventTypes,
			Sessions: d.Sessions, Metadata: d.Metadata, Secret: d.Secret, Origin: "config"}
		_, err := r.webhooks.CreateWebhook(ctx, w)
		if !errors.Is(err, store.ErrConflict) {
			errs = append(errs, err)
			continue
		}
		cur, err := r.webhooks.UpdateWebhook(ctx, w)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if cur.Secret != d.Secret {
			_, err := r.webhooks.RotateWebhookSecret(ctx, d.ID, d.Secret, r.now().Add(r.cfg.Webhooks.RotationGrace.D()))
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("router: webhook destinations from the configuration: %w", err)
	}
	return nil
}

// webhookSink delivers the outbox's webhook deliveries.
type webhookSink struct {
	r      *Router
	client *webhook.Client
}

// Deliver signs and posts d's event to its destination and records the
// attempt. A 2xx is success; 410 Gone disables the destination and is
// permanent; any other outcome is retried on the webhook schedule (or after
// the receiver's Retry-After), until the destination has failed for the
// configured period, when it is disabled, or the outbox gives up on the
// delivery; either emits a delivery.failed event.
func (k *webhookSink) Deliver(ctx context.Context, d adapters.Delivery) (adapters.Receipt, error) {
	r := k.r
	destID := webhookDest(d.To.Ref)
	dest, err := r.webhooks.Webhook(ctx, destID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return adapters.Receipt{}, fmt.Errorf("webhook: %w: destination %s was deleted", adapters.ErrPermanent, destID)
	case err != nil:
		return adapters.Receipt{}, fmt.Errorf("webhook: %w", err)
	case dest.Disabled:
		return adapters.Receipt{}, fmt.Errorf("webhook: %w: destination %s is disabled (%s)", adapters.ErrPermanent, destID, dest.DisabledReason)
	}
	recs, err := r.st.Read(ctx, d.SessionID, d.Seq-1, 1)
	if err != nil || len(recs) == 0 || recs[0].Seq != d.Seq {
		return adapters.Receipt{}, fmt.Errorf("webhook: read record %s/%d: %w", d.SessionID, d.Seq, errors.Join(err, store.ErrNotFound))
	}
	rec := &recs[0]
	evID := WebhookEventID(d.SessionID, d.Seq)
	ev, err := envelope.MessageEvent(evID, d.SessionID, string(rec.Direction), &rec.Envelope)
	if err != nil {
		return adapters.Receipt{}, fmt.Errorf("webhook: %w: %w", adapters.ErrPermanent, err)
	}
	if ev.Type = eventType(rec); ev.Type != envelope.EventMessage {
		ev.Direction = ""
	}
	body, err := ev.AppendJSON(nil)
	if err != nil {
		return adapters.Receipt{}, fmt.Errorf("webhook: %w: %w", adapters.ErrPermanent, err)
	}
	now := r.now()
	signer, err := webhook.NewSigner(dest.Secrets(now)...)
	if err != nil {
		return adapters.Receipt{}, fmt.Errorf("webhook: destination %s: %w: %w", destID, adapters.ErrPermanent, err)
	}
	res, postErr := k.client.Post(ctx, dest.URL, signer, evID, now, body)
	attempt := store.WebhookAttempt{
		WebhookID: destID, DeliveryID: d.ID, EventID: evID, SessionID: d.SessionID, Seq: d.Seq, Attempt: d.Attempt,
		StatusCode: res.StatusCode, Latency: res.Latency, Response: strings.ToValidUTF8(string(res.Body), "\uFFFD"),
	}
	if postErr != nil {
		attempt.Error = postErr.Error()
	} else if !res.OK() {
		attempt.Error = fmt.Sprintf("status %d", res.StatusCode)
	}
	if err := r.webhooks.RecordWebhookAttempt(context.WithoutCancel(ctx), attempt); err != nil {
		r.log.Warn("record webhook attempt", "webhook", destID, "delivery", d.ID, "err", err)
	}
	if ctx.Err() != nil {
		return adapters.Receipt{}, ctx.Err()
	}
	if postErr == nil && res.OK() {
		if !dest.FailingSince.IsZero() {
			if err := r.webhooks.SetWebhookHealth(ctx, destID, time.Time{}, false, ""); err != nil {
				r.log.Warn("webhook health", "webhook", destID, "err", err)
			}
		}
		return adapters.Receipt{}, nil
	}
	return adapters.Receipt{}, k.failed(ctx, dest, d, rec, res, postErr)
}

// failed handles a failed attempt and returns the error for the outbox.
func (k *webhookSink) failed(ctx context.Context, dest store.Webhook, d adapters.Delivery, rec *store.Record, res webhook.Result, postErr error) error {
	r := k.r
	now := r.now()
	cause := postErr
	if cause == nil {
		cause = fmt.Errorf("webhook: %s answered %d", dest.ID, res.StatusCode)
	}
	if res.StatusCode == 410 {
		if err := r.webhooks.SetWebhookHealth(ctx, dest.ID, dest.FailingSince, true, "410 Gone"); err != nil {
			return fmt.Errorf("webhook: disable %s: %w", dest.ID, err)
		}
		r.log.Warn("webhook destination disabled", "webhook", dest.ID, "reason", "410 Gone")
		k.emitFailed(ctx, dest, d, rec, "the destination answered 410 Gone and was disabled")
		return fmt.Errorf("%w: %w", adapters.ErrPermanent, cause)
	}
	since := dest.FailingSince
	if since.IsZero() {
		since = now
	}
	if disableAfter := r.cfg.Webhooks.DisableAfter.D(); disableAfter > 0 && now.Sub(since) >= disableAfter {
		reason := fmt.Sprintf("failing since %s", since.UTC().Format(time.RFC3339))
		if err := r.webhooks.SetWebhookHealth(ctx, dest.ID, since, true, reason); err != nil {
			return fmt.Errorf("webhook: disable %s: %w", dest.ID, err)
		}
		r.log.Warn("webhook destination disabled", "webhook", dest.ID, "reason", reason)
		k.emitFailed(ctx, dest, d, rec, "the destination has been failing for longer than "+disableAfter.String()+" and was disabled")
		return fmt.Errorf("%w: %w", adapters.ErrPermanent, cause)
	}
	if dest.FailingSince.IsZero() {
		if err := r.webhooks.SetWebhookHealth(ctx, dest.ID, since, false, ""); err != nil {
			r.log.Warn("webhook health", "webhook", dest.ID, "err", err)
		}
	}
	if d.Attempt >= r.cfg.Router.Outbox.MaxAttempts {
		k.emitFailed(ctx, dest, d, rec, fmt.Sprintf("the delivery failed %d times and was given up", d.Attempt))
	}
	wait := res.RetryAfter
	if wait <= 0 {
		wait = backoff(d.Attempt, r.cfg.Webhooks.Backoff.D(), r.cfg.Webhooks.MaxBackoff.D())
	}
	return &adapters.BackOff{Wait: wait, Err: cause}
}

// emitFailed appends a delivery.failed record for d to its session's log
// (see the top of this file), unless d is itself a delivery.failed event.
// It is best effort: errors are logged.
func (k *webhookSink) emitFailed(ctx context.Context, dest store.Webhook, d adapters.Delivery, rec *store.Record, why string) {
	if eventType(rec) == envelope.EventDeliveryFail {
		return
	}
	r := k.r
	env := envelope.Envelope{
		ID:     failedPrefix + dest.ID + ":" + d.ID + ":" + strconv.Itoa(d.Attempt),
		Source: "system",
		Kind:   envelope.KindSystem,
		Actor:  envelope.Actor{ID: "system:switchboard", Display: "Switchboard", Type: envelope.System},
		Text:   fmt.Sprintf("Webhook delivery %s of message %d to %s failed: %s.", d.ID, d.Seq, dest.ID, why),
		Refs:   map[string]string{"webhook": dest.ID, "delivery": d.ID, "seq": strconv.FormatInt(d.Seq, 10)},
		TS:     r.now().UTC(),
	}
	if _, err := r.st.Append(context.WithoutCancel(ctx), store.AppendRequest{SessionID: d.SessionID, Direction: store.Inbound, Envelope: env}); err != nil && !errors.Is(err, store.ErrConflict) {
		r.log.Error("append delivery.failed", "webhook", dest.ID, "delivery", d.ID, "err", err)
	}
}
