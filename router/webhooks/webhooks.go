// Package webhooks sends a session's log and session events to outbound
// webhook destinations, signed as the Standard Webhooks specification says.
//
// Webhook destinations ride on the router's outbox. Every delivery goes to
// the conversation {source: "webhook", ref: "<destination>/<session>"}: the
// outbox keeps order per conversation, hence per destination and session,
// and survives crashes. The store enqueues the deliveries in the
// transaction of the change that makes them (see "Fan-out at commit" in
// package store); the router claims them and hands each to a Sender, which
// builds its event, signs and posts it, records the attempt and tracks the
// destination's health.
//
// What is sent is a session's items in the session's order: its log
// records ("message" events with a direction, or "delivery.failed"; see
// below) and its session events from the store's journal
// ("session.created", "session.state_changed"), each placed after the
// record it followed (store.SessionEvent.AfterSeq). Replay enqueues them
// again, in a queue of their own.
//
// A destination that gives up appends a "delivery.failed" system record to
// the session's log (see emitFailed). Those are inbound system records,
// which no runtime is handed and no channel is sent, so they only reach
// webhook receivers and log readers.
package webhooks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/retry"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/webhook"
)

// Store is what outbound webhooks need of the store: the log and sessions
// to build events from and to append delivery.failed notices to, the
// outbox to enqueue replays into, the destinations, and the journal of
// session events.
type Store interface {
	store.Sessions
	store.Log
	Enqueue(ctx context.Context, ds []store.Delivery) error
	store.Webhooks
	store.SessionEvents
}

// Options configure a Sender.
type Options struct {
	// Config gives the webhooks section (client, retry schedule, health)
	// and the outbox's max_attempts.
	Config *config.Config
	Store  Store
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// DestTTL is how long Deliver keeps using a destination (its URL,
	// state and signer) it read from the store before reading it again:
	// zero means DefaultDestTTL (one second), a negative value reads it for
	// every delivery. See Deliver.
	DestTTL time.Duration
}

// Sender delivers the outbox's webhook deliveries; see the package doc.
// Its methods are safe for concurrent use.
type Sender struct {
	cfg    *config.Config
	st     Store
	log    *slog.Logger
	now    func() time.Time
	client *webhook.Client
	dests  *destCache // nil when Options.DestTTL is negative
}

// New builds a Sender. It does no I/O.
func New(opts Options) (*Sender, error) {
	if opts.Config == nil || opts.Store == nil {
		return nil, errors.New("webhooks: Config and Store are required")
	}
	s := &Sender{cfg: opts.Config, st: opts.Store, log: opts.Logger, now: opts.Now}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	switch ttl := opts.DestTTL; {
	case ttl == 0:
		s.dests = newDestCache(DefaultDestTTL)
	case ttl > 0:
		s.dests = newDestCache(ttl)
	}
	s.client = webhook.NewClient(webhook.ClientOptions{
		AllowPrivate: s.cfg.Webhooks.AllowPrivate,
		Timeout:      s.cfg.Webhooks.Timeout.D(),
		IdlePerHost:  s.cfg.Router.Outbox.Workers, // the posts the outbox has in flight
	})
	return s, nil
}

// Source is the conversation source of webhook deliveries.
const Source = store.SourceWebhook

// failedKey starts the store.AppendNotice key of a delivery.failed record
// (AppendNotice makes the id "system:" + key, so the record's id starts
// with store.DeliveryFailedPrefix.)
const failedKey = "webhook-failed:"

// EventID is the Event id (and webhook-id header) of the event for
// record seq of session sessionID. It is stable, so a retried or replayed
// delivery carries the same id and receivers can deduplicate on it.
func EventID(sessionID string, seq int64) string {
	h := sha256.Sum256([]byte(sessionID + "\x00" + strconv.FormatInt(seq, 10)))
	return "evt_" + hex.EncodeToString(h[:16])
}

// SessionEventID is the Event id (and webhook-id header) of session event
// eid of session sessionID; stable like EventID, and never equal to
// one.
func SessionEventID(sessionID string, eid int64) string {
	h := sha256.Sum256([]byte(sessionID + "\x00event\x00" + strconv.FormatInt(eid, 10)))
	return "evt_" + hex.EncodeToString(h[:16])
}

// wantsSessionEvents reports whether any destination of dests takes
// session events.
func wantsSessionEvents(dests []store.Webhook) bool {
	return slices.ContainsFunc(dests, func(w store.Webhook) bool { return w.TakesSessionEvents() })
}

// item is one thing of a session a destination may be sent: a record or
// a session event, as a delivery without a destination, with its event
// type and when it happened.
type item struct {
	d   store.Delivery
	typ envelope.EventType
	at  time.Time
}

// sessionItems merges a session's records recs (in seq order) and its
// session events evs (in ID order) into the session's order: an event
// placed after record k (AfterSeq k) comes after it and before record k+1.
func sessionItems(recs []store.Record, evs []store.SessionEvent) []item {
	items := make([]item, 0, len(recs)+len(evs))
	i, j := 0, 0
	for i < len(recs) || j < len(evs) {
		if j < len(evs) && (i == len(recs) || evs[j].AfterSeq < recs[i].Seq) {
			ev := &evs[j]
			items = append(items, item{store.Delivery{SessionID: ev.SessionID, Seq: ev.AfterSeq, Event: ev.ID}, ev.Type, ev.At})
			j++
			continue
		}
		rec := &recs[i]
		items = append(items, item{store.Delivery{SessionID: rec.SessionID, Seq: rec.Seq}, store.EventTypeOf(rec), rec.StoredAt})
		i++
	}
	return items
}

// webhookDeliveries returns the deliveries of a session's items to the
// destinations that want them, in order, to the replay queue replay (""
// for the live one). Live deliveries go only to destinations created
// before the item happened: what happened before a destination existed is
// sent to it only by a replay.
func webhookDeliveries(dests []store.Webhook, items []item, replay string, now time.Time) []store.Delivery {
	var ds []store.Delivery
	for _, it := range items {
		for j := range dests {
			if !dests[j].Takes(it.typ, it.d.SessionID) || (replay == "" && it.at.Before(dests[j].CreatedAt)) {
				continue
			}
			d := it.d
			d.To = envelope.Conversation{Source: Source, Ref: store.WebhookRef(dests[j].ID, replay, d.SessionID)}
			d.NextAttempt, d.CreatedAt = now, now
			ds = append(ds, d)
		}
	}
	return ds
}

// sessionPages hands fn, a page of up to 256 records at a time and in the
// session's order, the records (from, last] of session sessionID and, with
// events, its session events placed in [from, last], each once; to is the
// newest record position the page covers. keep, when not nil, filters them
// by when they happened. It stops at fn's first error.
func (s *Sender) sessionPages(ctx context.Context, sessionID string, from, last int64, events bool, keep func(at time.Time) bool, fn func(to int64, items []item) error) error {
	evFrom := from // events at from belong to the first page only
	for {
		to := min(from+256, last)
		var (
			recs []store.Record
			evs  []store.SessionEvent
			err  error
		)
		if to > from {
			if recs, err = s.st.Read(ctx, sessionID, from, int(to-from)); err != nil {
				return err
			}
		}
		if events && evFrom <= to {
			if evs, err = s.st.SessionEventsOf(ctx, sessionID, evFrom, to); err != nil {
				return err
			}
		}
		if keep != nil {
			recs = slices.DeleteFunc(recs, func(rec store.Record) bool { return !keep(rec.StoredAt) })
			evs = slices.DeleteFunc(evs, func(ev store.SessionEvent) bool { return !keep(ev.At) })
		}
		if err := fn(to, sessionItems(recs, evs)); err != nil {
			return err
		}
		if to >= last {
			return nil
		}
		from, evFrom = to, to+1
	}
}

// Replay enqueues again, for destination id, every event stored at
// or after since that the destination's filters take, in a queue of its
// own per session (in log order within a session; interleaved with live
// deliveries, which keep their own order). It returns how many deliveries
// it enqueued; the router's delivery workers find them at their next look
// (Router.Wake makes it now). It reads every session's log from the start,
// so it costs time in proportion to the store. ErrNotFound for an unknown
// destination. It drops what Deliver cached of the destination, so the
// deliveries it enqueues see the destination as it is now.
func (s *Sender) Replay(ctx context.Context, id string, since time.Time) (int, error) {
	s.forget(id)
	dest, err := s.st.Webhook(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("webhooks: replay: %w", err)
	}
	if dest.Disabled {
		return 0, fmt.Errorf("webhooks: replay: destination %s is disabled", id)
	}
	dests := []store.Webhook{dest}
	replay := "replay-" + strconv.FormatInt(s.now().UnixNano(), 36)
	n := 0
	after := ""
	for {
		sessions, err := s.st.ListSessions(ctx, after, 100)
		if err != nil {
			return n, fmt.Errorf("webhooks: replay: %w", err)
		}
		if len(sessions) == 0 {
			break
		}
		after = sessions[len(sessions)-1].ID
		for _, sess := range sessions {
			if len(dest.Sessions) > 0 && !slices.Contains(dest.Sessions, sess.ID) {
				continue
			}
			keep := func(at time.Time) bool { return !at.Before(since) }
			err := s.sessionPages(ctx, sess.ID, 0, sess.LastSeq, wantsSessionEvents(dests), keep, func(_ int64, items []item) error {
				ds := webhookDeliveries(dests, items, replay, s.now())
				if len(ds) == 0 {
					return nil
				}
				if err := s.st.Enqueue(ctx, ds); err != nil {
					return err
				}
				n += len(ds)
				return nil
			})
			if err != nil {
				return n, fmt.Errorf("webhooks: replay: %w", err)
			}
		}
	}
	return n, nil
}

// SyncConfig creates or updates the destinations declared in the
// configuration file. A declared secret that differs from the stored one
// replaces it, with the configured grace for the old one. The gateway calls
// it at start. It drops whatever Deliver cached of any destination.
func (s *Sender) SyncConfig(ctx context.Context) error {
	defer s.forget("")
	var errs []error
	for _, d := range s.cfg.Webhooks.Destinations {
		w := store.Webhook{ID: d.ID, URL: d.URL, Description: d.Description, EventTypes: d.EventTypes,
			Sessions: d.Sessions, Metadata: d.Metadata, Secret: d.Secret, Origin: "config"}
		_, err := s.st.CreateWebhook(ctx, w)
		if !errors.Is(err, store.ErrConflict) {
			errs = append(errs, err)
			continue
		}
		cur, err := s.st.UpdateWebhook(ctx, w)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if cur.Secret != d.Secret {
			_, err := s.st.RotateWebhookSecret(ctx, d.ID, d.Secret, s.now().Add(s.cfg.Webhooks.RotationGrace.D()))
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("webhooks: destinations from the configuration: %w", err)
	}
	return nil
}

// Deliver signs and posts d's event to its destination and returns the
// attempt it made, for the router to record with the delivery's
// settlement (nil when it made none). A 2xx is success; 410 Gone disables
// the destination and is permanent; any other outcome is retried on the
// webhook schedule (or after the receiver's Retry-After), until the
// destination has failed for the configured period, when it is disabled,
// or the outbox gives up on the delivery; either emits a delivery.failed
// event. Its errors are the outbox's, as a channel's Sink gives them:
// adapters.ErrPermanent ends the delivery, an adapters.BackOff says when
// to try again.
//
// Deliver reads the destination from the store and then keeps it, with a
// signer for its secrets, for Options.DestTTL (one second by default) or
// until its previous secret's grace period ends, whichever comes first;
// no delivery is signed with a secret past its PrevExpires. So a change
// made to a destination other than by this Sender (through the API or by
// another replica: a secret rotation, disabling or deleting it, a new URL)
// reaches deliveries within DestTTL. After a rotation the old secret alone
// may keep signing that long, which the rotation's grace period
// (webhooks.rotation_grace, when not shorter than DestTTL) covers: a
// receiver that accepts the old secret through the grace period verifies
// every delivery. A change Deliver makes itself (recording that the
// destination fails or recovered, disabling it) is seen by the next
// delivery. Lookup errors (store.ErrNotFound included) and disabled
// destinations are not kept, so a destination created or enabled again is
// delivered to at once. At most 1024 destinations are kept at a time.
func (s *Sender) Deliver(ctx context.Context, d store.Delivery) (*store.Attempt, error) {
	destID := store.WebhookDest(d.To.Ref)
	cd, err := s.destination(ctx, destID)
	dest := cd.w
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("webhook: %w: destination %s was deleted", adapters.ErrPermanent, destID)
	case err != nil:
		return nil, fmt.Errorf("webhook: %w", err)
	case dest.Disabled:
		return nil, fmt.Errorf("webhook: %w: destination %s is disabled (%s)", adapters.ErrPermanent, destID, dest.DisabledReason)
	}
	ev, failedRec, err := s.event(ctx, &d)
	if err != nil {
		return nil, err
	}
	evID := ev.ID
	body, err := ev.AppendJSON(nil)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w: %w", adapters.ErrPermanent, err)
	}
	now := s.now()
	signer, err := cd.signerAt(now)
	if err != nil {
		return nil, fmt.Errorf("webhook: destination %s: %w: %w", destID, adapters.ErrPermanent, err)
	}
	res, postErr := s.client.Post(ctx, dest.URL, signer, evID, now, body)
	attempt := &store.Attempt{
		WebhookID: destID, DeliveryID: d.ID, EventID: evID, SessionID: d.SessionID, Seq: d.Seq, Attempt: d.Attempts,
		StatusCode: res.StatusCode, Latency: res.Latency, Response: envelope.Clean(string(res.Body)), At: now,
	}
	if postErr != nil {
		attempt.Error = envelope.Clean(postErr.Error())
	} else if !res.OK() {
		attempt.Error = fmt.Sprintf("status %d", res.StatusCode)
	}
	if ctx.Err() != nil {
		return attempt, ctx.Err()
	}
	if postErr == nil && res.OK() {
		if !dest.FailingSince.IsZero() {
			if err := s.setHealth(ctx, destID, time.Time{}, false, ""); err != nil {
				s.log.Warn("webhook health", "webhook", destID, "err", err)
			}
		}
		return attempt, nil
	}
	return attempt, s.failed(ctx, dest, &d, failedRec, res, postErr)
}

// event builds the Event that delivery d sends. failed reports whether it
// is itself a delivery.failed event (whose failure is never reported by
// another).
func (s *Sender) event(ctx context.Context, d *store.Delivery) (ev envelope.Event, failed bool, err error) {
	if d.Event != 0 {
		ev, err = s.sessionEvent(ctx, d.SessionID, d.Seq, d.Event)
		return ev, false, err
	}
	rec := &store.Record{SessionID: d.SessionID, Seq: d.Seq, Direction: d.Direction, Envelope: d.Envelope}
	if d.Direction == "" { // not from Claim: read the record
		recs, err := s.st.Read(ctx, d.SessionID, d.Seq-1, 1)
		if err != nil || len(recs) == 0 || recs[0].Seq != d.Seq {
			return ev, false, fmt.Errorf("webhook: read record %s/%d: %w", d.SessionID, d.Seq, errors.Join(err, store.ErrNotFound))
		}
		rec = &recs[0]
	}
	ev, err = envelope.MessageEvent(EventID(d.SessionID, d.Seq), d.SessionID, string(rec.Direction), &rec.Envelope)
	if err != nil {
		return ev, false, fmt.Errorf("webhook: %w: %w", adapters.ErrPermanent, err)
	}
	ev.Seq = rec.Seq
	if ev.Type = store.EventTypeOf(rec); ev.Type != envelope.EventMessage {
		ev.Direction = ""
	}
	return ev, ev.Type == envelope.EventDeliveryFail, nil
}

// sessionEvent builds the Event of session event eid of session sessionID,
// placed after record afterSeq.
func (s *Sender) sessionEvent(ctx context.Context, sessionID string, afterSeq, eid int64) (envelope.Event, error) {
	evs, err := s.st.SessionEventsOf(ctx, sessionID, afterSeq, afterSeq)
	if err != nil {
		return envelope.Event{}, fmt.Errorf("webhook: read session event %s/%d: %w", sessionID, eid, err)
	}
	i := slices.IndexFunc(evs, func(ev store.SessionEvent) bool { return ev.ID == eid })
	if i < 0 {
		return envelope.Event{}, fmt.Errorf("webhook: %w: session event %s/%d: %w", adapters.ErrPermanent, sessionID, eid, store.ErrNotFound)
	}
	se := &evs[i]
	var body any
	switch se.Type {
	case envelope.EventSessionNew:
		sess, err := s.st.Session(ctx, sessionID)
		if err != nil {
			return envelope.Event{}, fmt.Errorf("webhook: read session %s: %w", sessionID, err)
		}
		body = envelope.SessionCreated{ID: sessionID, State: string(se.State), Metadata: sess.Metadata, CreatedAt: sess.CreatedAt}
	default:
		body = envelope.StateChanged{State: string(se.State), PreviousState: string(se.Previous), AfterSeq: se.AfterSeq}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return envelope.Event{}, fmt.Errorf("webhook: %w: %w", adapters.ErrPermanent, err)
	}
	return envelope.Event{ID: SessionEventID(sessionID, eid), Type: se.Type, SessionID: sessionID, TS: se.At, Body: b}, nil
}

// failed handles a failed attempt and returns the error for the outbox.
func (s *Sender) failed(ctx context.Context, dest store.Webhook, d *store.Delivery, isFailed bool, res webhook.Result, postErr error) error {
	now := s.now()
	cause := postErr
	if cause == nil {
		cause = fmt.Errorf("webhook: %s answered %d", dest.ID, res.StatusCode)
	}
	if res.StatusCode == 410 {
		if err := s.setHealth(ctx, dest.ID, dest.FailingSince, true, "410 Gone"); err != nil {
			return fmt.Errorf("webhook: disable %s: %w", dest.ID, err)
		}
		s.log.Warn("webhook destination disabled", "webhook", dest.ID, "reason", "410 Gone")
		s.emitFailed(ctx, dest, d, isFailed, "the destination answered 410 Gone and was disabled")
		return fmt.Errorf("%w: %w", adapters.ErrPermanent, cause)
	}
	since := dest.FailingSince
	if since.IsZero() {
		since = now
	}
	if disableAfter := s.cfg.Webhooks.DisableAfter.D(); disableAfter > 0 && now.Sub(since) >= disableAfter {
		reason := fmt.Sprintf("failing since %s", since.UTC().Format(time.RFC3339))
		if err := s.setHealth(ctx, dest.ID, since, true, reason); err != nil {
			return fmt.Errorf("webhook: disable %s: %w", dest.ID, err)
		}
		s.log.Warn("webhook destination disabled", "webhook", dest.ID, "reason", reason)
		s.emitFailed(ctx, dest, d, isFailed, "the destination has been failing for longer than "+disableAfter.String()+" and was disabled")
		return fmt.Errorf("%w: %w", adapters.ErrPermanent, cause)
	}
	if dest.FailingSince.IsZero() {
		if err := s.setHealth(ctx, dest.ID, since, false, ""); err != nil {
			s.log.Warn("webhook health", "webhook", dest.ID, "err", err)
		}
	}
	if d.Attempts >= s.cfg.Router.Outbox.MaxAttempts {
		s.emitFailed(ctx, dest, d, isFailed, fmt.Sprintf("the delivery failed %d times and was given up", d.Attempts))
	}
	wait := res.RetryAfter
	if wait <= 0 {
		wait = retry.Jitter(d.Attempts, s.cfg.Webhooks.Backoff.D(), s.cfg.Webhooks.MaxBackoff.D())
	}
	return &adapters.BackOff{Wait: wait, Err: cause}
}

// emitFailed appends a delivery.failed record for d to its session's log
// (see the package doc), unless d is itself a delivery.failed event
// (isFailed). It is best effort: errors are logged.
func (s *Sender) emitFailed(ctx context.Context, dest store.Webhook, d *store.Delivery, isFailed bool, why string) {
	if isFailed {
		return
	}
	what := fmt.Sprintf("message %d", d.Seq)
	refs := map[string]string{"webhook": dest.ID, "delivery": d.ID, "seq": strconv.FormatInt(d.Seq, 10)}
	if d.Event != 0 {
		what = fmt.Sprintf("session event %d (after message %d)", d.Event, d.Seq)
		refs["event"] = strconv.FormatInt(d.Event, 10)
	}
	key := failedKey + dest.ID + ":" + d.ID + ":" + strconv.Itoa(d.Attempts)
	text := fmt.Sprintf("Webhook delivery %s of %s to %s failed: %s.", d.ID, what, dest.ID, why)
	if err := store.AppendNotice(context.WithoutCancel(ctx), s.st, d.SessionID, key, text, store.Inbound, refs, s.now()); err != nil {
		s.log.Error("append delivery.failed", "webhook", dest.ID, "delivery", d.ID, "err", err)
	}
}
