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
// upstream) are handed: {"id", "type", "session_id", "direction", "ts",
// "body"}. The body of a message event is the envelope, written verbatim;
// Direction ("inbound" or "outbound") is set on message events only.
type Event struct {
	ID        string          `json:"id"`
	Type      EventType       `json:"type"`
	SessionID string          `json:"session_id"`
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
		Direction string    `json:"direction,omitempty"`
		TS        time.Time `json:"ts"`
	}{ev.ID, ev.Type, ev.SessionID, ev.Direction, ev.TS.UTC()})
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

// MessageEvent wraps env, a message of session sessionID that went in
// direction ("inbound" or "outbound"), in an Event whose body is the envelope.
func MessageEvent(id, sessionID, direction string, env *Envelope) (Event, error) {
	body, err := env.AppendJSON(nil)
	if err != nil {
		return Event{}, err
	}
	return Event{ID: id, Type: EventMessage, SessionID: sessionID, Direction: direction, TS: env.TS, Body: body}, nil
}
