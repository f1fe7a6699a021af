package store

import (
	"context"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
)

// SessionEvent is a change in a session's life: its creation, or a change
// of its state. Backends journal it in the same transaction as the change
// itself (CreateSession, Bind creating a session, SetState, an Append that
// wakes or rests the session), so the journal holds exactly the changes
// that were committed. A change and its reversal committed in one
// transaction may be journaled as no change at all.
type SessionEvent struct {
	// ID is the event's position in the journal: unique and, within one
	// session, increasing in commit order.
	ID        int64
	SessionID string
	// Type is envelope.EventSessionNew or envelope.EventSessionState.
	Type envelope.EventType
	// State is the session's state after the change; Previous the state
	// before it ("" for a creation).
	State, Previous State
	// AfterSeq places the event in the session's log: it happened after
	// record AfterSeq (the newest record when the change was committed,
	// including one appended in the same transaction) and before record
	// AfterSeq+1.
	AfterSeq int64
	At       time.Time
}

// SessionEvents reads the journal of session events.
type SessionEvents interface {
	// ReadSessionEvents returns up to limit events journaled after the
	// cursor after ("" for the start of the journal), and the cursor to
	// pass next (after itself when there is nothing new). It returns events
	// only once every event before them in the journal's order is
	// committed, so a reader that follows the cursor misses none; the
	// journal's order keeps each session's events in order by ID.
	ReadSessionEvents(ctx context.Context, after string, limit int) (events []SessionEvent, next string, err error)
	// SessionEventsOf returns the events of session sessionID with AfterSeq
	// between from and to, both included, in ID order. ErrNotFound for an
	// unknown session.
	SessionEventsOf(ctx context.Context, sessionID string, from, to int64) ([]SessionEvent, error)
}
