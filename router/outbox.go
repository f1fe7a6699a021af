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
			// Every free worker got one: others may wait for a worker.
			r.outboxFull.Store(err == nil && len(ds) == free)
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

// webhookRun is how many deliveries of a webhook destination's
// conversation a worker takes at a time when the store can hand them out
// together (store.RunSettler): it posts them in turn and settles them in
// one commit, so that a conversation with a queue waits for one commit
// per run rather than one per delivery. A channel's conversation goes one
// delivery at a time: its edits are planned against what the channel
// holds (changes.go) and its sends are paced.
const webhookRun = 16

// deliverOne makes one attempt at d and settles it; when the store can
// hand it the conversation's next deliveries with the settlement
// (store.RunSettler), it goes on with those, so that a conversation with a
// queue costs one commit per run of deliveries rather than a settle and a
// claim per delivery. It returns when the conversation has nothing more
// due for it.
//
// While conversations wait for a worker (outboxFull), a worker lets go of
// its conversation after the run its settlement claimed (up to
// webhookRun deliveries), and takes the oldest due delivery of any
// conversation: no conversation waits for another's backlog to drain.
func (r *Router) deliverOne(ctx context.Context, d store.Delivery) {
	run := []store.Delivery{d}
	handedOut := r.now()
	for turn := 0; len(run) > 0; turn++ {
		run = r.attemptRun(ctx, run, handedOut, turn > 0 && r.outboxFull.Load())
		handedOut = r.now()
	}
}

// attemptRun attempts the deliveries of run in turn, run[0] leased at
// handedOut and the rest queued behind it, until one is not delivered,
// the lease's first third is spent or ctx ends; settles what it attempted;
// and returns the conversation's next run when the settlement claimed one
// (never when last).
func (r *Router) attemptRun(ctx context.Context, run []store.Delivery, handedOut time.Time, last bool) []store.Delivery {
	var (
		done = make([]store.Outcome, 0, len(run))
		// The queued deliveries are the owner's only while run[0]'s lease
		// holds: each must be posted, and the run settled, well within it.
		deadline = handedOut.Add(r.lease * 2 / 3)
		cutoff   = handedOut.Add(r.lease / 3)
	)
	for i := range run {
		if i > 0 && (ctx.Err() != nil || !r.now().Before(cutoff)) {
			break
		}
		s, ok := r.attempt(ctx, &run[i], deadline)
		done = append(done, store.Outcome{ID: run[i].ID, Settlement: s})
		if !ok || s.Status != store.Delivered {
			break
		}
	}
	return r.settle(ctx, run[0].To, done, last)
}

// attempt makes one attempt at d, posting it by deadline, and returns its
// settlement; ok is false when the attempt was not made and d goes back to
// the queue (its conversation paused, or shutting down).
func (r *Router) attempt(ctx context.Context, d *store.Delivery, deadline time.Time) (s store.Settlement, ok bool) {
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
			return s, false
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
		plan, err = r.planChange(ctx, r.sinks[d.To.Source], d)
	}
	if err == nil && plan.act != actPost {
		if plan.reason == reasonCannotEdit {
			r.log.Info("change dropped: the channel cannot edit a message it posted", "delivery", d.ID, "to", d.To.Key(),
				"kind", d.Envelope.Kind, "message", d.Envelope.Target())
		}
		r.metrics.deliveries.WithLabelValues(d.To.Source, plan.result()).Inc()
		return plan.settlement(), true
	}
	start := r.now()
	if err == nil {
		rc, attempt, err = r.post(ctx, d, &plan, deadline.Sub(start))
	}
	if ctx.Err() != nil {
		// Shutting down: hand the delivery back, due now, for whoever runs
		// next (its outcome is unknown; the sink's idempotency covers it).
		return store.Settlement{Status: store.Pending, Error: "interrupted by shutdown", NextAttempt: r.now(), Attempt: attempt}, false
	}
	now := r.now()
	result := "delivered"
	switch {
	case err == nil:
		s = store.Settlement{Status: store.Delivered, ChannelID: rc.ChannelID}
		r.metrics.deliverySeconds.WithLabelValues(d.To.Source).Observe(now.Sub(start).Seconds())
		r.metrics.e2eSeconds.WithLabelValues(d.To.Source).Observe(now.Sub(d.Envelope.TS).Seconds())
		r.posted(ctx, d, &plan, rc, now)
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
	r.metrics.deliveries.WithLabelValues(d.To.Source, result).Inc()
	return s, true
}

// settle records the outcomes of a run of attempts at deliveries to
// conversation to, and returns the conversation's next run when the
// settlement claimed one; when last, it claims none.
func (r *Router) settle(ctx context.Context, to envelope.Conversation, done []store.Outcome, last bool) []store.Delivery {
	if rs, ok := r.st.(store.RunSettler); ok {
		n := 1
		switch {
		case ctx.Err() != nil, last:
			n = 0 // shutting down, or the worker's turn is over: claim nothing more
		case to.Source == store.SourceWebhook:
			n = webhookRun
		}
		now := r.now()
		next, err := rs.SettleRun(context.WithoutCancel(ctx), r.owner, done, n, now, now.Add(r.lease))
		if err != nil {
			r.log.Error("settle deliveries", "delivery", done[0].ID, "n", len(done), "err", err)
		}
		return next
	}
	// Without runs, Claim hands out one delivery at a time.
	for _, o := range done {
		if err := r.st.Settle(context.WithoutCancel(ctx), o.ID, r.owner, o.Settlement); err != nil {
			r.log.Error("settle delivery", "delivery", o.ID, "err", err)
		}
	}
	return nil
}

// post makes the attempt at d through the webhook sink or its channel's
// sink, bounded by timeout. attempt is the webhook attempt to record with
// the settlement, if one was made.
func (r *Router) post(ctx context.Context, d *store.Delivery, plan *changePlan, timeout time.Duration) (rc adapters.Receipt, attempt *store.Attempt, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
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
