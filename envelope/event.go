package envelope

import (
	"encoding/json"
	"fmt"
	"time"
)

// EventType names what an Event reports.
type EventType string

// The event types.
const (
	EventMessage      EventType = "message"
	EventSessionNew   EventType = "session.created"
	EventSessionState EventType = "session.state_changed"
	EventDeliveryFail EventType = "delivery.failed"
)

// Event is what outside consumers (webhook receivers, the http runtime's
// upstream) are handed: {"id", "type", "session_id", "seq", "direction",
// "ts", "body"}. The body of a message event is the envelope, written
// verbatim; Direction ("inbound" or "outbound") is set on message events
// only. Seq, when not 0, is the record's number in the session's log
// (message and delivery.failed events).
type Event struct {
	ID        string          `json:"id"`
	Type      EventType       `json:"type"`
	SessionID string          `json:"session_id"`
	Seq       int64           `json:"seq,omitempty"`
	Direction string          `json:"direction,omitempty"`
	TS        time.Time       `json:"ts"`
	Body      json.RawMessage `json:"body"`
}

// AppendJSON appends the encoding of ev to b with Body copied verbatim.
func (ev *Event) AppendJSON(b []byte) ([]byte, error) {
	head, err := json.Marshal(struct {
		ID        string    `json:"id"`
		Type      EventType `json:"type"`
		SessionID string    `json:"session_id"`
		Seq       int64     `json:"seq,omitempty"`
		Direction string    `json:"direction,omitempty"`
		TS        time.Time `json:"ts"`
	}{ev.ID, ev.Type, ev.SessionID, ev.Seq, ev.Direction, ev.TS.UTC()})
	if err != nil {
		return b, fmt.Errorf("envelope: marshal event: %w", err)
	}
	b = append(b, head[:len(head)-1]...)
	b = append(b, `,"body":`...)
	if len(ev.Body) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, ev.Body...)
	}
	return append(b, '}'), nil
}

// MarshalJSON encodes ev with AppendJSON.
func (ev Event) MarshalJSON() ([]byte, error) { return ev.AppendJSON(nil) }

// SessionCreated is the body of a session.created event: the new session.
type SessionCreated struct {
	ID        string            `json:"id"`
	State     string            `json:"state"`
	Metadata  map[string]string `json:"metadata"`
	CreatedAt time.Time         `json:"created_at"`
}

// StateChanged is the body of a session.state_changed event. AfterSeq
// places the change in the session's log: it came after the message event
// of record AfterSeq (0: before any) and before the next one.
type StateChanged struct {
	State         string `json:"state"`
	PreviousState string `json:"previous_state"`
	AfterSeq      int64  `json:"after_seq"`
}

// MessageEvent wraps env, a message of session sessionID that went in
// direction ("inbound" or "outbound"), in an Event whose body is the envelope.
func MessageEvent(id, sessionID, direction string, env *Envelope) (Event, error) {
	body, err := env.AppendJSON(nil)
	if err != nil {
		return Event{}, err
	}
	return Event{ID: id, Type: EventMessage, SessionID: sessionID, Direction: direction, TS: env.TS, Body: body}, nil
}
