// Package envelope defines the channel-agnostic message that every inbound
// and outbound message becomes, whatever its channel.
//
// The JSON shape of Envelope is Switchboard's public contract:
//
//	{"id": "client:abc123", "source": "client", "kind": "message",
//	 "actor": {"id": "client:user-7", "display": "Ada", "type": "human"},
//	 "conversation": {"source": "client", "ref": "thread-42"},
//	 "text": "also check the CI config", "refs": {}, "ts": "2026-06-18T12:00:00Z",
//	 "raw": {}}
//
// Raw holds the original payload byte for byte. encoding/json compacts a
// json.RawMessage when it marshals it, so code that must keep Raw verbatim
// writes envelopes with AppendJSON (which Envelope.MarshalJSON also uses)
// and never nests them in a value that it hands to json.Marshal.
package envelope

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind says what an envelope does to a conversation.
type Kind string

// The envelope kinds.
const (
	// KindMessage is a new message: the only kind that needs text.
	KindMessage Kind = "message"
	// KindEdit replaces the text of an earlier message, named in refs["edits"].
	KindEdit Kind = "edit"
	// KindDelete withdraws an earlier message, named in refs["deletes"].
	KindDelete Kind = "delete"
	// KindSystem is a notice from the gateway itself (a failed run, a paused
	// binding).
	KindSystem Kind = "system"
)

// Valid reports whether k is one of the known kinds.
func (k Kind) Valid() bool {
	switch k {
	case KindMessage, KindEdit, KindDelete, KindSystem:
		return true
	}
	return false
}

// ActorType says who or what wrote a message.
type ActorType string

// The actor types.
const (
	Human  ActorType = "human"
	Agent  ActorType = "agent"
	System ActorType = "system"
)

// Valid reports whether t is human, agent or system.
func (t ActorType) Valid() bool { return t == Human || t == Agent || t == System }

// Actor is the author of an envelope. ID is namespaced by source
// ("slack:U123", "github:octocat").
type Actor struct {
	ID      string    `json:"id"`
	Display string    `json:"display,omitempty"`
	Type    ActorType `json:"type"`
}

// Conversation is the opaque anchor that replies are routed through. The core
// compares Source and Ref for equality and never parses Ref; only the adapter
// of Source gives it meaning.
type Conversation struct {
	Source string `json:"source"`
	Ref    string `json:"ref"`
}

// Broadcast, as an output's conversation, sends the output to every
// conversation bound to the session.
var Broadcast = Conversation{Source: "*"}

// SourceClient is the source of messages sent through the Steer API. Its
// conversations ("client/thread-42") are threads within one session's log:
// no channel delivers to them and they are never bound.
const SourceClient = "client"

// IsZero reports whether c names no conversation.
func (c Conversation) IsZero() bool { return c.Source == "" && c.Ref == "" }

// Key is c as one string, "source/ref", for maps and log lines.
func (c Conversation) Key() string { return c.Source + "/" + c.Ref }

// Envelope is one message, inbound or outbound, in the shape shared by every
// channel. The zero value is not valid; see Validate.
type Envelope struct {
	// ID is the idempotency key, namespaced by source ("client:nudge-1"). It is
	// deduplicated per session, not globally.
	ID     string `json:"id"`
	Source string `json:"source"`
	Kind   Kind   `json:"kind"`
	Actor  Actor  `json:"actor"`
	// Conversation is the reply anchor; it may be zero on an output, which then
	// goes to the session's most recent conversation.
	Conversation Conversation `json:"conversation"`
	Text         string       `json:"text"`
	Refs         Refs         `json:"refs"`
	TS           time.Time    `json:"ts"`
	// Raw is the original payload, kept byte for byte and never read by the
	// core. It is JSON; a payload that is not JSON is stored as a JSON string.
	Raw json.RawMessage `json:"raw"`
}

// Limits used by Validate, in bytes (MaxRefs is a count). Every string
// field but text (bounded by the caller's maxText) and raw (bounded by the
// request or payload it was read from) has one, so no field can carry an
// unbounded value into the log, the outbox and every event.
const (
	MaxIDLen      = 512
	MaxRefKeyLen  = 64
	MaxRefValLen  = 2048
	MaxRefs       = 64
	MaxSourceLen  = 64
	MaxConvRefLen = 1024
	MaxActorIDLen = 512
	// MaxDisplayLen bounds actor.display: far above any channel's display
	// name (Slack's are at most 80 characters, an email From phrase fits a
	// header line).
	MaxDisplayLen = 512
)

// Target returns the envelope id of the message an edit or deletion
// changes (refs.edits or refs.deletes), "" for any other kind.
func (e *Envelope) Target() string {
	switch e.Kind {
	case KindEdit:
		return e.Refs[RefEdits]
	case KindDelete:
		return e.Refs[RefDeletes]
	}
	return ""
}

// Partial reports whether e is an unfinished output of a stream
// (refs.partial is "true"): later edits of the same message follow.
func (e *Envelope) Partial() bool { return e.Refs[RefPartial] == "true" }

// ValidationError is returned by Validate and by decoding; Field names the
// offending JSON field ("actor.type", "refs.pr").
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Message }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Validate checks e and returns a *ValidationError naming the first bad field.
// maxText bounds the length of Text in bytes; 0 means no bound.
func (e *Envelope) Validate(maxText int) error {
	switch {
	case e.ID == "":
		return invalid("id", "is required")
	case len(e.ID) > MaxIDLen:
		return invalid("id", "is longer than %d bytes", MaxIDLen)
	case !strings.Contains(e.ID, ":"):
		return invalid("id", "must be namespaced by source, like %q", "client:abc123")
	case e.Source == "":
		return invalid("source", "is required")
	case len(e.Source) > MaxSourceLen:
		return invalid("source", "is longer than %d bytes", MaxSourceLen)
	case !e.Kind.Valid():
		return invalid("kind", "unknown kind %q (want message, edit, delete or system)", e.Kind)
	case e.Actor.ID == "":
		return invalid("actor.id", "is required")
	case len(e.Actor.ID) > MaxActorIDLen:
		return invalid("actor.id", "is longer than %d bytes", MaxActorIDLen)
	case !strings.Contains(e.Actor.ID, ":"):
		return invalid("actor.id", "must be namespaced, like %q", "slack:U123")
	case len(e.Actor.Display) > MaxDisplayLen:
		return invalid("actor.display", "is %d bytes, longer than the limit of %d", len(e.Actor.Display), MaxDisplayLen)
	case !utf8.ValidString(e.Actor.Display):
		return invalid("actor.display", "is not valid UTF-8")
	case !e.Actor.Type.Valid():
		return invalid("actor.type", "unknown actor type %q (want human, agent or system)", e.Actor.Type)
	case e.Conversation.Ref != "" && e.Conversation.Source == "":
		return invalid("conversation.source", "is required when conversation.ref is set")
	case len(e.Conversation.Source) > MaxSourceLen:
		return invalid("conversation.source", "is longer than %d bytes", MaxSourceLen)
	case len(e.Conversation.Ref) > MaxConvRefLen:
		return invalid("conversation.ref", "is longer than %d bytes", MaxConvRefLen)
	case e.Kind == KindMessage && strings.TrimSpace(e.Text) == "":
		return invalid("text", "must not be empty on a message")
	case maxText > 0 && len(e.Text) > maxText:
		return invalid("text", "is %d bytes, longer than the limit of %d", len(e.Text), maxText)
	case !utf8.ValidString(e.Text):
		return invalid("text", "is not valid UTF-8")
	case e.TS.IsZero():
		return invalid("ts", "is required")
	}
	if err := e.Refs.Validate(); err != nil {
		return err
	}
	if len(e.Raw) > 0 && !json.Valid(e.Raw) {
		return invalid("raw", "is not valid JSON")
	}
	return nil
}

// Equivalent reports whether a and b carry the same request: the same text,
// kind and refs. It decides whether a reused idempotency key is a replay (the
// same request again) or a conflict.
func Equivalent(a, b *Envelope) bool {
	if a.Text != b.Text || a.Kind != b.Kind || len(a.Refs) != len(b.Refs) {
		return false
	}
	for k, v := range a.Refs {
		if w, ok := b.Refs[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// wire is Envelope without Raw, so that Raw can be spliced in verbatim.
type wire struct {
	ID           string       `json:"id"`
	Source       string       `json:"source"`
	Kind         Kind         `json:"kind"`
	Actor        Actor        `json:"actor"`
	Conversation Conversation `json:"conversation"`
	Text         string       `json:"text"`
	Refs         Refs         `json:"refs"`
	TS           time.Time    `json:"ts"`
}

// AppendJSON appends the JSON encoding of e to b, with Raw copied verbatim
// (an empty Raw is written as null).
func (e *Envelope) AppendJSON(b []byte) ([]byte, error) {
	w := wire{e.ID, e.Source, e.Kind, e.Actor, e.Conversation, e.Text, e.Refs, e.TS.UTC()}
	if w.Refs == nil {
		w.Refs = Refs{}
	}
	head, err := json.Marshal(w)
	if err != nil {
		return b, fmt.Errorf("envelope: marshal: %w", err)
	}
	b = append(b, head[:len(head)-1]...) // drop the closing brace
	b = append(b, `,"raw":`...)
	if len(e.Raw) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, e.Raw...)
	}
	return append(b, '}'), nil
}

// MarshalJSON encodes e with AppendJSON. Note that encoding/json compacts the
// result when e is nested in another value; see the package doc.
func (e Envelope) MarshalJSON() ([]byte, error) { return e.AppendJSON(nil) }

// UnmarshalJSON decodes e, keeping Raw as the exact bytes of the "raw" field.
func (e *Envelope) UnmarshalJSON(data []byte) error {
	var w struct {
		wire
		Raw json.RawMessage `json:"raw"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*e = Envelope{w.ID, w.Source, w.Kind, w.Actor, w.Conversation, w.Text, w.Refs, w.TS, nil}
	if len(w.Raw) > 0 && !bytes.Equal(w.Raw, []byte("null")) {
		e.Raw = append(json.RawMessage(nil), w.Raw...)
	}
	return nil
}
