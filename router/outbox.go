package router

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/retry"
	"github.com/switchboardhq/switchboard/store"
)

// Wake makes the delivery workers look for due deliveries now (after a
// delivery was retried by hand). It never blocks.
func (r *Router) Wake() { r.kick() }

// kick wakes the delivery workers.
func (r *Router) kick() {
	select {
	case r.kickc <- struct{}{}:
	default:
	}
}

// deliverLoop claims due deliveries and posts them through their sinks,
// keeping up to the configured number of attempts in flight: a slow sink
// holds up only its own conversation. It returns when ctx ends, after the
// attempts in flight are done.
func (r *Router) deliverLoop(ctx context.Context) {
	workers := r.cfg.Router.Outbox.Workers
	ticker := time.NewTicker(r.poll)
	defer ticker.Stop()
	// The store enqueues with every change it signals (see "Fan-out at commit" in package store):
	// look for deliveries after each burst of them.
	changed, cancel := r.st.Subscribe(store.AllSessions)
	defer cancel()
	var (
		wg       sync.WaitGroup
		inflight atomic.Int64
		freed    = make(chan struct{}, 1)
	)
	defer wg.Wait()
	for {
		if free := workers - int(inflight.Load()); free > 0 {
			now := r.now()
			ds, err := r.st.Claim(ctx, r.owner, free, now, now.Add(r.lease))
			if err != nil && ctx.Err() == nil {
				r.log.Error("claim deliveries", "err", err)
			}
			for _, d := range ds {
				inflight.Add(1)
				wg.Add(1)
				go func() {
					defer wg.Done()
					r.deliverOne(ctx, d)
					inflight.Add(-1)
					select {
					case freed <- struct{}{}:
					default:
					}
				}()
			}
			if len(ds) == free {
				continue // there may be more due now
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-r.kickc:
		case <-freed:
		case <-ticker.C:
		case <-changed:
			// Gather a moment's worth of changes into one claim.
			if !retry.Sleep(ctx, claimCoalesce) {
				return
			}
		}
	}
}

// deliverOne makes one attempt at d and settles it; when the store can
// hand it the conversation's next delivery with the settlement
// (store.SettleNexter), it goes on with that one, so that a conversation
// with a queue costs one commit per delivery rather than a settle and a
// claim. It returns when the conversation has nothing more due for it.
func (r *Router) deliverOne(ctx context.Context, d store.Delivery) {
	for {
		next := r.attempt(ctx, d)
		if next == nil {
			return
		}
		d = *next
	}
}

// attempt makes one attempt at d and settles it, and returns the
// conversation's next delivery when the settlement claimed it.
func (r *Router) attempt(ctx context.Context, d store.Delivery) *store.Delivery {
	if d.To.Source != store.SourceWebhook && d.Attempts == 1 && (d.Envelope.Kind == envelope.KindMessage || d.Envelope.Kind == envelope.KindSystem) {
		// The loop breaker counts each output once, at its first attempt;
		// edits of a message are not new outputs.
		paused, err := r.checkOutputBudget(ctx, d.To)
		if err != nil || paused {
			// Back in the queue: a paused conversation's deliveries wait
			// until it is resumed.
			// Paused: due at once, since Claim skips a paused conversation.
			// Failed: try again after the outbox's backoff, never at once.
			s := store.Settlement{Status: store.Pending, Error: "the conversation is paused by the loop breaker", NextAttempt: r.now()}
			if err != nil {
				o := &r.cfg.Router.Outbox
				s.Error, s.NextAttempt = err.Error(), r.now().Add(retry.Jitter(d.Attempts, o.Backoff.D(), o.MaxBackoff.D()))
				r.log.Error("loop breaker", "delivery", d.ID, "err", err)
			}
			if serr := r.st.Settle(context.WithoutCancel(ctx), d.ID, r.owner, s); serr != nil {
				r.log.Error("settle delivery", "delivery", d.ID, "err", serr)
			}
			return nil
		}
	}
	var (
		plan    changePlan
		err     error
		rc      adapters.Receipt
		attempt *store.Attempt
	)
	if d.To.Source != store.SourceWebhook {
		// An edit or deletion may be coalesced, paced or rewritten
		// (changes.go); a failure to plan it is a failed attempt.
		plan, err = r.planChange(ctx, r.sinks[d.To.Source], &d)
	}
	if err == nil && plan.act != actPost {
		if plan.reason == reasonCannotEdit {
			r.log.Info("change dropped: the channel cannot edit a message it posted", "delivery", d.ID, "to", d.To.Key(),
				"kind", d.Envelope.Kind, "message", d.Envelope.Target())
		}
		return r.settle(ctx, &d, plan.settlement(), plan.result())
	}
	start := r.now()
	if err == nil {
		rc, attempt, err = r.post(ctx, &d, &plan)
	}
	if ctx.Err() != nil {
		// Shutting down: hand the delivery back, due now, for whoever runs
		// next (its outcome is unknown; the sink's idempotency covers it).
		s := store.Settlement{Status: store.Pending, Error: "interrupted by shutdown", NextAttempt: r.now(), Attempt: attempt}
		if serr := r.st.Settle(context.WithoutCancel(ctx), d.ID, r.owner, s); serr != nil {
			r.log.Warn("release delivery", "delivery", d.ID, "err", serr)
		}
		return nil
	}
	now := r.now()
	var s store.Settlement
	result := "delivered"
	switch {
	case err == nil:
		s = store.Settlement{Status: store.Delivered, ChannelID: rc.ChannelID}
		r.metrics.deliverySeconds.WithLabelValues(d.To.Source).Observe(now.Sub(start).Seconds())
		r.metrics.e2eSeconds.WithLabelValues(d.To.Source).Observe(now.Sub(d.Envelope.TS).Seconds())
		r.posted(ctx, &d, &plan, rc, now)
	case errors.Is(err, adapters.ErrGone):
		// A person deleted the message: its updates end here, quietly.
		s = store.Settlement{Status: store.Delivered, Error: err.Error()}
		result = "gone"
		r.log.Info("message gone from its channel; its update is dropped", "delivery", d.ID, "to", d.To.Key(), "err", err)
		err = nil
	case errors.Is(err, adapters.ErrPermanent):
		s = store.Settlement{Status: store.Dead, Error: err.Error()}
		result = "dead"
	default:
		o := &r.cfg.Router.Outbox
		wait := retry.Jitter(d.Attempts, o.Backoff.D(), o.MaxBackoff.D())
		var bo *adapters.BackOff
		if errors.As(err, &bo) && bo.Wait > 0 {
			wait = bo.Wait
		}
		s = store.Settlement{Status: store.Pending, Error: err.Error(), NextAttempt: now.Add(wait)}
		result = "retry"
		if d.Attempts >= o.MaxAttempts || now.Sub(d.CreatedAt) > o.MaxAge.D() {
			s.Status = store.Dead
			result = "dead"
		}
	}
	s.Attempt = attempt
	if attempt == nil && d.To.Source != store.SourceWebhook && (err != nil || d.LastError != "") {
		// A channel's attempts are recorded from the first failure on
		// (store.Attempt): one that succeeds at once, or after a paced
		// wait (which is no failure), costs no row.
		s.Attempt = &store.Attempt{DeliveryID: d.ID, EventID: d.Envelope.ID, SessionID: d.SessionID, Seq: d.Seq,
			Attempt: d.Attempts, Latency: now.Sub(start), Error: s.Error, At: now}
	}
	if err != nil {
		r.log.Warn("delivery failed", "delivery", d.ID, "to", d.To.Key(), "attempt", d.Attempts, "result", result, "err", err)
	}
	return r.settle(ctx, &d, s, result)
}

// settle records the outcome s of the attempt at d, counted as result,
// and returns the conversation's next delivery when the settlement
// claimed it.
func (r *Router) settle(ctx context.Context, d *store.Delivery, s store.Settlement, result string) *store.Delivery {
	r.metrics.deliveries.WithLabelValues(d.To.Source, result).Inc()
	if sn, ok := r.st.(store.SettleNexter); ok && s.Status != store.Pending && ctx.Err() == nil {
		now := r.now()
		next, serr := sn.SettleNext(context.WithoutCancel(ctx), d.ID, r.owner, s, now, now.Add(r.lease))
		if serr != nil {
			r.log.Error("settle delivery", "delivery", d.ID, "err", serr)
		}
		return next
	}
	if serr := r.st.Settle(context.WithoutCancel(ctx), d.ID, r.owner, s); serr != nil {
		r.log.Error("settle delivery", "delivery", d.ID, "err", serr)
	}
	return nil
}

// post makes the attempt at d through the webhook sink or its channel's
// sink, bounded to two thirds of the lease. attempt is the webhook
// attempt to record with the settlement, if one was made.
func (r *Router) post(ctx context.Context, d *store.Delivery, plan *changePlan) (rc adapters.Receipt, attempt *store.Attempt, err error) {
	ctx, cancel := context.WithTimeout(ctx, r.lease*2/3)
	defer cancel()
	if d.To.Source == store.SourceWebhook {
		if r.webhooks == nil {
			return rc, nil, fmt.Errorf("%w: outbound webhooks are not enabled", adapters.ErrPermanent)
		}
		attempt, err = r.webhooks.Deliver(ctx, *d)
		return rc, attempt, err
	}
	sink := r.sinks[d.To.Source]
	if sink == nil {
		return rc, nil, fmt.Errorf("%w: no sink for %q", adapters.ErrPermanent, d.To.Source)
	}
	ad := adapters.Delivery{ID: d.ID, SessionID: d.SessionID, Seq: d.Seq, To: d.To, Envelope: d.Envelope, Target: plan.target, Attempt: d.Attempts}
	if plan.asMessage {
		ad.Envelope = asMessage(d.Envelope)
	}
	rc, err = sink.Deliver(ctx, ad)
	return rc, nil, err
}
