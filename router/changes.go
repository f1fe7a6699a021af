package router

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// Live replies: edits, deletions and streams
//
// An output that changes an earlier one (envelope.KindEdit or KindDelete,
// naming it in refs) is delivered where that output went, after it: the
// store enqueues it to the same conversation, whose deliveries go in order.
// Before posting it the router plans it (planChange):
//
//   - Coalescing. An edit that a later edit or deletion of the same message
//     to the same conversation supersedes is not sent: it is done. Under a
//     fast stream only the latest text reaches the channel, and after a
//     crash the latest state of a message is sent once, not every state
//     it went through.
//   - Pacing. A sink that is an adapters.Editor says how often one message
//     may change (EditInterval). A change due sooner waits, pending, until
//     the interval has passed since the last change the router posted; by
//     then later edits have usually superseded it. So a message changes at
//     most once per interval, and the final text always lands.
//   - The channel's id. The sink changes the message by the id the channel
//     gave it (adapters.Delivery.Target), found with store.ChannelIDOf. An
//     edit of a message the channel never got (its delivery died, or the
//     channel cannot edit and skipped the stream's start) is posted as a
//     new message, whose id is then recorded as the message's
//     (store.SetChannelID), so that later changes find it.
//   - Channels that cannot edit (a Sink that is not an Editor, such as
//     email) get only finished text: a partial message or edit is skipped;
//     the first final text of a message is posted once, as a new message;
//     later edits and deletions are dropped with a log line.
//   - A message the channel reports gone (adapters.ErrGone: a person
//     deleted it) ends its updates quietly.

// changeAction is what planChange decided for a delivery.
type changeAction int

const (
	// actPost posts the (possibly rewritten) delivery.
	actPost changeAction = iota
	// actSkip settles the delivery as done without posting (see reason).
	actSkip
	// actWait puts the delivery back, due at the plan's until.
	actWait
)

// changePlan is how to deliver one output to a channel.
type changePlan struct {
	act    changeAction
	reason string    // with actSkip: why, for the log and metrics
	until  time.Time // with actWait
	// target is the channel's id of the message changed (adapters.Delivery.Target).
	target string
	// asMessage posts an edit as a new message; the message it edits
	// (record targetSeq) then takes the channel id of the post.
	asMessage bool
	targetSeq int64
	// paceKey, when not empty, is the message whose last change this
	// delivery is (for pacing), posted at the time it succeeds.
	paceKey string
}

// reasonCannotEdit is the reason of a change skipped because its channel
// cannot edit (it is logged).
const reasonCannotEdit = "cannot edit"

// supersedeLookahead bounds how many records after an edit the router reads
// to find a later edit of the same message.
const supersedeLookahead = 256

// planChange decides how to deliver d to its channel through sink.
func (r *Router) planChange(ctx context.Context, sink adapters.Sink, d *store.Delivery) (changePlan, error) {
	env := &d.Envelope
	editor, canEdit := sink.(adapters.Editor)
	switch env.Kind {
	case envelope.KindMessage:
		switch {
		case env.Partial() && !canEdit:
			return changePlan{act: actSkip, reason: "partial"}, nil
		case canEdit && env.Partial():
			return changePlan{act: actPost, paceKey: paceKey(d.To, env.ID)}, nil
		}
		return changePlan{act: actPost}, nil
	case envelope.KindEdit, envelope.KindDelete:
	default:
		return changePlan{act: actPost}, nil
	}
	targetID := env.Target()
	if targetID == "" {
		return changePlan{act: actSkip, reason: "no target"}, nil
	}
	if env.Kind == envelope.KindEdit {
		later, err := r.superseded(ctx, d)
		if err != nil {
			return changePlan{}, err
		}
		if later {
			return changePlan{act: actSkip, reason: "coalesced"}, nil
		}
		if env.Partial() && !canEdit {
			return changePlan{act: actSkip, reason: "partial"}, nil
		}
	}
	target, err := r.st.Lookup(ctx, d.SessionID, targetID)
	if errors.Is(err, store.ErrNotFound) {
		// Not written through the API, which refuses such changes.
		return changePlan{act: actSkip, reason: "no target"}, nil
	}
	if err != nil {
		return changePlan{}, fmt.Errorf("find the message %q changes: %w", targetID, err)
	}
	channelID, err := r.st.ChannelIDOf(ctx, d.SessionID, target.Seq, d.To)
	if err != nil {
		return changePlan{}, fmt.Errorf("find the channel id of %q: %w", targetID, err)
	}
	key := paceKey(d.To, targetID)
	switch {
	case channelID == "" && env.Kind == envelope.KindDelete:
		return changePlan{act: actSkip, reason: "not posted"}, nil
	case channelID == "":
		// The channel never got the message: this text is its first.
		return changePlan{act: actPost, asMessage: true, targetSeq: target.Seq, paceKey: key}, nil
	case !canEdit:
		return changePlan{act: actSkip, reason: reasonCannotEdit}, nil
	}
	if until := r.pace.due(key, editor.EditInterval(), r.now()); !until.IsZero() {
		return changePlan{act: actWait, until: until}, nil
	}
	return changePlan{act: actPost, target: channelID, paceKey: key}, nil
}

// superseded reports whether a later record of d's session edits or
// deletes the message d edits, in the same conversation.
func (r *Router) superseded(ctx context.Context, d *store.Delivery) (bool, error) {
	recs, err := r.st.Read(ctx, d.SessionID, d.Seq, supersedeLookahead)
	if err != nil {
		return false, fmt.Errorf("look for later edits: %w", err)
	}
	target := d.Envelope.Target()
	for i := range recs {
		e := &recs[i].Envelope
		if recs[i].Direction == store.Outbound && e.Target() == target && e.Conversation == d.Envelope.Conversation {
			return true, nil
		}
	}
	return false, nil
}

// paceKey names a message in a conversation for pacing.
func paceKey(to envelope.Conversation, messageID string) string {
	return to.Source + "\x00" + to.Ref + "\x00" + messageID
}

// pacer remembers when each message was last changed through a channel
// that limits how often it may be (adapters.Editor). It lives in memory: a
// restarted process or another replica may change a message once more
// within an interval, which the channel's own 429 then paces.
type pacer struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// pacerMax bounds the pacer; entries older than pacerKeep go first.
const (
	pacerMax  = 4096
	pacerKeep = time.Minute
)

// due returns when the message key may change next, zero when now.
func (p *pacer) due(key string, interval time.Duration, now time.Time) time.Time {
	if interval <= 0 {
		return time.Time{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if next := p.last[key].Add(interval); now.Before(next) {
		return next
	}
	return time.Time{}
}

// changed records that message key changed at now.
func (p *pacer) changed(key string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == nil {
		p.last = map[string]time.Time{}
	}
	if len(p.last) >= pacerMax {
		for k, t := range p.last {
			if now.Sub(t) > pacerKeep {
				delete(p.last, k)
			}
		}
		if len(p.last) >= pacerMax {
			clear(p.last)
		}
	}
	p.last[key] = now
}

// settlement is the outcome of a plan that posts nothing.
func (p *changePlan) settlement() store.Settlement {
	if p.act == actWait {
		return store.Settlement{Status: store.Pending, NextAttempt: p.until}
	}
	return store.Settlement{Status: store.Delivered}
}

// result is the attempts metric's result of a plan that posts nothing.
func (p *changePlan) result() string {
	switch {
	case p.act == actWait:
		return "paced"
	case p.reason == "coalesced":
		return "coalesced"
	}
	return "skipped"
}

// posted does what follows a successful post of d under plan: it records
// the channel id of a message first posted by an edit of it, and the time
// of the message's change for pacing.
func (r *Router) posted(ctx context.Context, d *store.Delivery, plan *changePlan, rc adapters.Receipt, now time.Time) {
	if plan.asMessage && rc.ChannelID != "" {
		if err := r.st.SetChannelID(context.WithoutCancel(ctx), d.SessionID, plan.targetSeq, d.To, rc.ChannelID); err != nil {
			// Later edits will post the message anew rather than change it.
			r.log.Error("record the channel id of a message posted by its edit", "delivery", d.ID, "err", err)
		}
	}
	if plan.paceKey != "" {
		r.pace.changed(plan.paceKey, now)
	}
}

// asMessage returns edit e as a new message with e's text.
func asMessage(e envelope.Envelope) envelope.Envelope {
	refs := make(envelope.Refs, len(e.Refs))
	for k, v := range e.Refs {
		if k != envelope.RefEdits {
			refs[k] = v
		}
	}
	e.Kind, e.Refs = envelope.KindMessage, refs
	return e
}
