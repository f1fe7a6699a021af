package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
)

// Binding ties a conversation anchor to a session. A conversation is bound
// to at most one session; a session may have many conversations.
type Binding struct {
	ID           string                `json:"id"`
	SessionID    string                `json:"session_id"`
	Conversation envelope.Conversation `json:"conversation"`
	// Route is the name of the route rule that made the binding ("" when
	// bound by hand or through the API).
	Route string `json:"route,omitempty"`
	// PausedUntil, when in the future, pauses the binding: inbound messages
	// are dropped and deliveries to it wait. PausedReason says why.
	PausedUntil  time.Time `json:"paused_until,omitzero"`
	PausedReason string    `json:"paused_reason,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
}

// Paused reports whether b is paused at now.
func (b Binding) Paused(now time.Time) bool { return b.PausedUntil.After(now) }

// Bindings stores conversation bindings.
type Bindings interface {
	// Bind binds b.Conversation to b.SessionID, creating that session (idle,
	// with metadata) when it does not exist, all in one transaction. When the
	// conversation is already bound it changes nothing and returns the
	// existing binding with created false. b.ID and b.CreatedAt are set by
	// Bind when empty.
	Bind(ctx context.Context, b Binding, metadata map[string]string) (out Binding, created bool, err error)
	// BindingFor returns the binding of conv, or ErrNotFound.
	BindingFor(ctx context.Context, conv envelope.Conversation) (Binding, error)
	// SessionBindings lists the bindings of a session, oldest first.
	SessionBindings(ctx context.Context, sessionID string) ([]Binding, error)
	// PauseBinding pauses binding id until the given time with a reason, or
	// resumes it when until is zero. ErrNotFound for an unknown binding.
	PauseBinding(ctx context.Context, id string, until time.Time, reason string) (Binding, error)
	// LatestInbound returns the conversation of the newest inbound record of
	// the session with Seq < before that names one (zero if none).
	LatestInbound(ctx context.Context, sessionID string, before int64) (envelope.Conversation, error)
}

// ErrNotBound: an output names a conversation that is not bound to its
// session. See CheckOutputConversation.
var ErrNotBound = errors.New("conversation is not bound to the session")

// CheckOutputConversation enforces the rule that an agent's output reaches
// only its own session's conversations: conv, as named by an output of
// sessionID, must be zero (the session's latest conversation),
// envelope.Broadcast (every conversation bound to the session), a
// conversation of envelope.SourceClient (a thread of the session's own log,
// which no channel delivers to), or a conversation bound to sessionID. Any
// other conversation is refused with an error wrapping ErrNotBound; to
// start a new conversation from a session, bind it to the session first.
func CheckOutputConversation(ctx context.Context, b Bindings, sessionID string, conv envelope.Conversation) error {
	if conv.IsZero() || conv == envelope.Broadcast || conv.Source == envelope.SourceClient {
		return nil
	}
	got, err := b.BindingFor(ctx, conv)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return err
	case got.SessionID == sessionID:
		return nil
	}
	return fmt.Errorf("%w: conversation %s is not bound to session %s", ErrNotBound, conv.Key(), sessionID)
}

// Errors of ResolveChange.
var (
	// ErrNoSuchOutput: an edit or deletion names an output its session
	// does not have.
	ErrNoSuchOutput = errors.New("no such output in the session")
	// ErrNotEditable: an edit or deletion names a record that is not an
	// output message (an inbound message, or an edit itself).
	ErrNotEditable = errors.New("not an output message")
)

// ResolveChange checks the edit or deletion env, an output of session
// sessionID, and sets its conversation to the one the output it changes
// went to (ChangeConversation), as every writer of such an output must:
// the change is delivered there, after the output. It names that output in
// refs (envelope.Target), which must be an output message of the same
// session: else the error wraps ErrNoSuchOutput or ErrNotEditable. b may
// be nil. Envelopes of other kinds are left as they are.
func ResolveChange(ctx context.Context, l Log, b Bindings, sessionID string, env *envelope.Envelope) error {
	if env.Kind != envelope.KindEdit && env.Kind != envelope.KindDelete {
		return nil
	}
	id := env.Target()
	rec, err := l.Lookup(ctx, sessionID, id)
	if errors.Is(err, ErrNotFound) || id == "" {
		return fmt.Errorf("%w: session %s has no output %q", ErrNoSuchOutput, sessionID, id)
	}
	if err != nil {
		return err
	}
	if rec.Direction != Outbound || rec.Envelope.Kind != envelope.KindMessage {
		what := "an inbound message"
		if rec.Direction == Outbound {
			what = "an output of kind " + string(rec.Envelope.Kind)
		}
		return fmt.Errorf("%w: %q is %s", ErrNotEditable, id, what)
	}
	rec.SessionID = sessionID
	env.Conversation, err = ChangeConversation(ctx, b, &rec)
	return err
}

// ChangeConversation returns the conversation that an edit or deletion of
// output rec goes to: the one rec went to. For an output that named none
// that is the conversation of the session's newest inbound record before
// it, as fan-out resolved it (OutputTargets); for one that went nowhere,
// the session's own client thread, which no channel delivers to. b may be
// nil (no bindings: no conversation was resolved).
func ChangeConversation(ctx context.Context, b Bindings, rec *Record) (envelope.Conversation, error) {
	conv := rec.Envelope.Conversation
	if conv.IsZero() && b != nil {
		var err error
		if conv, err = b.LatestInbound(ctx, rec.SessionID, rec.Seq); err != nil {
			return envelope.Conversation{}, err
		}
	}
	if conv.IsZero() {
		conv = envelope.Conversation{Source: envelope.SourceClient}
	}
	return conv, nil
}

// Work is a session with records a consumer has not processed yet.
type Work struct {
	SessionID string
	// Cursor is the last seq the consumer processed; LastSeq the newest in
	// the log.
	Cursor, LastSeq int64
}

// Cursors track, per consumer ("runtime") and session, how far through the
// log the consumer has got, and lease sessions to one process at a time so
// that per-session order holds across replicas. A consumer's work is the
// records a runtime acts on (Record.ForRuntime): outputs, system notices
// and messages appended NoTurn past the cursor make none.
type Cursors interface {
	// ClaimWork leases to owner, until leaseUntil, up to n sessions whose log
	// holds records for the runtime past the consumer's cursor and whose
	// lease is free or expired at now (lease until <= now). A session whose
	// lease is still owner's is not returned: owner has it in hand already,
	// and the claim neither extends nor writes its lease. Work.LastSeq is
	// the newest such record.
	ClaimWork(ctx context.Context, consumer, owner string, n int, now, leaseUntil time.Time) ([]Work, error)
	// Advance sets the consumer's cursor for the session to seq (never
	// moving it back) and extends the lease to leaseUntil, or releases it
	// when leaseUntil is zero. A leaseUntil at a time owner chooses holds
	// the session from every claim until then, after which any owner's
	// claim may take it (a failing session's backoff). It fails with
	// ErrLeaseLost when owner no longer holds the lease.
	Advance(ctx context.Context, consumer, sessionID, owner string, seq int64, leaseUntil time.Time) error
	// Cursor returns the consumer's cursor for the session: the last seq it
	// processed, 0 when it has processed none.
	Cursor(ctx context.Context, consumer, sessionID string) (int64, error)
}

// DeliveryStatus is where a delivery is in its life.
type DeliveryStatus string

// The delivery statuses.
const (
	Pending   DeliveryStatus = "pending"
	Delivered DeliveryStatus = "delivered"
	Dead      DeliveryStatus = "dead"
)

// Delivery is one outbox entry: the record (SessionID, Seq) to be posted to
// the conversation To, or, when Event is not 0, the session event of that
// journal ID, which happened after record Seq (its AfterSeq).
type Delivery struct {
	ID        string                `json:"id"`
	SessionID string                `json:"session_id"`
	Seq       int64                 `json:"seq"`
	Event     int64                 `json:"event,omitempty"`
	To        envelope.Conversation `json:"to"`
	Status    DeliveryStatus        `json:"status"`
	Attempts  int                   `json:"attempts"`
	// NextAttempt is when a pending delivery is due.
	NextAttempt time.Time `json:"next_attempt"`
	LastError   string    `json:"last_error,omitempty"`
	// ChannelID is the channel's id for the posted message, once delivered.
	ChannelID string    `json:"channel_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Envelope and Direction are the record's, filled by Claim (empty for
	// an event), so that delivering it needs no read of the log.
	Envelope  envelope.Envelope `json:"-"`
	Direction Direction         `json:"-"`
}

// DeliveryFilter selects a session's deliveries for SessionDeliveries.
type DeliveryFilter struct {
	SessionID string
	Status    DeliveryStatus        // "" for any
	To        envelope.Conversation // zero for any
}

// Settlement is the outcome of one delivery attempt.
type Settlement struct {
	Status    DeliveryStatus // Delivered, Pending (retry at NextAttempt) or Dead
	ChannelID string         // with Delivered
	Error     string         // with Pending or Dead
	// NextAttempt is when to retry, with Pending.
	NextAttempt time.Time
	// Attempt, when not nil, is the attempt the outcome came from (to a
	// webhook, or a channel's attempt that Attempt says is recorded):
	// Settle records it in the settlement's transaction, as
	// RecordWebhookAttempt does (ID and At set when empty), whether or not
	// the lease is still owner's, so that the attempt costs no commit of
	// its own.
	Attempt *Attempt
}

// Outcome is the settlement of one delivery of a run (RunSettler).
type Outcome struct {
	ID string
	Settlement
}

// RunSettler is an Outbox that lets the owner of a conversation's leased
// delivery go on with the conversation at the cost of one commit per run
// of deliveries, rather than a settle and a claim per delivery. It is
// optional; the router looks for it with a type assertion.
//
// A run is a leased delivery and the deliveries queued behind it in its
// conversation that SettleRun handed out with it, in order. While owner's
// lease on the run's first delivery holds, nobody else can claim any of
// them (Claim hands out only a conversation's oldest pending delivery, and
// none while another of the conversation is leased), so owner may attempt
// them in turn and settle what it attempted together.
type RunSettler interface {
	// SettleRun settles, in one transaction, owner's attempts at a prefix
	// of a run: run[0] is owner's leased delivery, settled as Settle
	// settles it; run[1:] are, in order, the deliveries queued behind it
	// that the SettleRun which handed it out returned with it, each
	// settled likewise with its attempt counted (one that is no longer
	// pending and unleased in run[0]'s conversation is left as it is).
	// Every outcome but the last must be Delivered or Dead. ErrLeaseLost,
	// with nothing settled, when owner's lease on run[0] has gone. A last
	// outcome of Pending leaves that delivery the head of its
	// conversation, due at its NextAttempt and unleased.
	//
	// When the last outcome left pending (Delivered or Dead) and n is
	// positive, SettleRun then claims for owner, until leaseUntil, the
	// conversation's next delivery when Claim at now could hand it out,
	// with its attempt counted and its envelope filled as Claim fills
	// them, and returns it followed by up to n-1 of the deliveries queued
	// behind it, in order, due at now, envelopes filled, unleased, with
	// Attempts counting the attempt owner would make: the next run. It
	// returns nothing else.
	SettleRun(ctx context.Context, owner string, run []Outcome, n int, now, leaseUntil time.Time) (next []Delivery, err error)
}

// Outbox holds deliveries of session outputs to conversations.
type Outbox interface {
	// Enqueue adds deliveries as pending, due at their NextAttempt, in
	// order. It is idempotent on (SessionID, Seq, Event, To): an existing
	// delivery is kept where it is.
	Enqueue(ctx context.Context, ds []Delivery) error
	// Claim leases to owner, until leaseUntil, up to n pending deliveries
	// due at now, each the oldest pending delivery of its conversation (so
	// order within a conversation holds), skipping conversations whose
	// binding is paused, with the attempt counted.
	Claim(ctx context.Context, owner string, n int, now, leaseUntil time.Time) ([]Delivery, error)
	// Settle records the outcome of owner's attempt at delivery id and
	// releases it. ErrLeaseLost when owner's lease has gone.
	Settle(ctx context.Context, id, owner string, s Settlement) error
	// ListDeliveries returns up to limit deliveries with the given status
	// ("" for any) and ids after the cursor after, in id order.
	ListDeliveries(ctx context.Context, status DeliveryStatus, after string, limit int) ([]Delivery, error)
	// SessionDeliveries returns up to limit deliveries of session
	// f.SessionID (required) with ids after the cursor after, in id order:
	// only those with status f.Status when it is not "", and only those to
	// the conversation f.To when it is not zero (a webhook destination's
	// deliveries of the session are to {webhook, "<destination>/<session>"}).
	// A session unknown or without deliveries lists none.
	SessionDeliveries(ctx context.Context, f DeliveryFilter, after string, limit int) ([]Delivery, error)
	// DeliveryAttempts returns up to limit recorded attempts of delivery id
	// (Attempt says which are recorded) with ids before the cursor before
	// ("" for the newest), newest first.
	DeliveryAttempts(ctx context.Context, id, before string, limit int) ([]Attempt, error)
	// RetryDelivery makes delivery id pending and due now, whatever its
	// status, with its attempts kept. ErrNotFound for an unknown id.
	RetryDelivery(ctx context.Context, id string, now time.Time) (Delivery, error)
	// Posted reports whether the gateway posted channelID to a conversation
	// of source (a delivered delivery recorded it).
	Posted(ctx context.Context, source, channelID string) (bool, error)
	// ChannelIDOf returns the channel's id for record seq of the session
	// in conversation to: the ChannelID of the record's delivery there,
	// "" when it has none (not delivered yet, dead, or never enqueued).
	// Edits find the message they change with it.
	ChannelIDOf(ctx context.Context, sessionID string, seq int64, to envelope.Conversation) (string, error)
	// SetChannelID records channelID as the channel's id for record seq of
	// the session in conversation to, on the record's delivery there, when
	// that delivery has none yet; otherwise (or when there is no such
	// delivery) it changes nothing. The router uses it when a message the
	// channel never got (a stream's partial start, on a channel that
	// cannot edit) is posted by a later edit of it.
	SetChannelID(ctx context.Context, sessionID string, seq int64, to envelope.Conversation, channelID string) error
}
