package store

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboardhq/switchboard/envelope"
)

// The input rules that every backend holds to, written once so that SQLite
// and PostgreSQL refuse the same input in the same way. PostgreSQL's text
// and jsonb types refuse a NUL byte and invalid UTF-8, which SQLite would
// keep; rather than each backend deciding, both call these checks first.
//
// Two kinds of input are told apart:
//
//   - Values a write stores (an envelope, session metadata, a new id, a
//     cursor) must be storable: CheckAppend, CheckID, CheckText and
//     CheckMetadata refuse them with an error wrapping ErrInvalid, which the
//     API answers with 400.
//   - Ids that only name something already stored (the session of a Read or
//     an Append, a delivery to retry, a webhook to fetch) are looked up:
//     CheckLookup answers an id that no stored thing can have with an error
//     wrapping ErrNotFound, as the lookup itself would on SQLite, which the
//     API answers with 404.
//
// Raw is not checked: both backends keep it as bytes (BLOB, bytea), byte
// for byte, whatever it holds.

// The range of envelope times every backend can hold: SQLite keeps Unix
// nanoseconds in an int64 (the years 1678 to 2262), PostgreSQL's
// timestamptz holds more.
var (
	MinTime = time.Unix(0, -1<<63).UTC()
	MaxTime = time.Unix(0, 1<<63-1).UTC()
)

// CheckText reports, wrapping ErrInvalid, why v cannot be stored in field:
// it must be valid UTF-8 without NUL bytes. An empty v is fine.
func CheckText(field, v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s is not valid UTF-8; send UTF-8 text", ErrInvalid, field)
	}
	if strings.IndexByte(v, 0) >= 0 {
		return fmt.Errorf("%w: %s contains a NUL byte (\\u0000), which cannot be stored; remove it", ErrInvalid, field)
	}
	return nil
}

// CheckID reports, wrapping ErrInvalid, why id cannot be stored as a new
// identifier in field: it must be non-empty, at most envelope.MaxIDLen
// bytes, and storable text (CheckText).
func CheckID(field, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: %s is empty", ErrInvalid, field)
	case len(id) > envelope.MaxIDLen:
		return fmt.Errorf("%w: %s is %d bytes, more than %d", ErrInvalid, field, len(id), envelope.MaxIDLen)
	}
	return CheckText(field, id)
}

// CheckMetadata reports, wrapping ErrInvalid, why metadata (session or
// webhook metadata, named field) cannot be stored: every key and value must
// be storable text (CheckText).
func CheckMetadata(field string, metadata map[string]string) error {
	for k, v := range metadata {
		if err := CheckText(field+" key", k); err != nil {
			return err
		}
		if err := CheckText(field+"."+k, v); err != nil {
			return err
		}
	}
	return nil
}

// CheckLookup reports, wrapping ErrNotFound, that id (of a what: "session",
// "delivery", "webhook") cannot name anything stored, because no write
// could have stored it (see CheckText). It returns nil for any other id,
// which the lookup then finds or not.
func CheckLookup(what, id string) error {
	if id == "" || CheckText(what, id) != nil {
		return fmt.Errorf("%s %q: %w", what, id, ErrNotFound)
	}
	return nil
}

// CheckAppend reports why req cannot be appended by any backend, naming the
// field. An unstorable session id cannot name a session: the error wraps
// ErrNotFound (CheckLookup). Everything else wraps ErrInvalid:
//
//   - the direction is inbound or outbound, and NoTurn is only on an
//     inbound record;
//   - the envelope id is non-empty and at most envelope.MaxIDLen bytes, the
//     source at most envelope.MaxSourceLen, the conversation ref at most
//     envelope.MaxConvRefLen;
//   - every text field (id, source, kind, actor id, display and type,
//     conversation source and ref, text, refs values) is valid UTF-8
//     without NUL bytes;
//   - refs keep envelope's limits (envelope.Refs.Validate);
//   - ts lies within MinTime and MaxTime.
//
// It does not check what envelope.Validate adds for the API (known kinds,
// namespaced ids, non-empty text), nor Raw, which is stored byte for byte.
func CheckAppend(req AppendRequest) error {
	if err := CheckLookup("session", req.SessionID); err != nil {
		return err
	}
	if !req.Direction.Valid() {
		return fmt.Errorf("%w: direction %q is not inbound or outbound", ErrInvalid, req.Direction)
	}
	if req.NoTurn && req.Direction != Inbound {
		return fmt.Errorf("%w: no-turn is for inbound records; an output never asks for a turn", ErrInvalid)
	}
	e := &req.Envelope
	if err := CheckID("envelope id", e.ID); err != nil {
		return err
	}
	switch {
	case len(e.Source) > envelope.MaxSourceLen:
		return fmt.Errorf("%w: source is %d bytes, more than %d", ErrInvalid, len(e.Source), envelope.MaxSourceLen)
	case len(e.Conversation.Ref) > envelope.MaxConvRefLen:
		return fmt.Errorf("%w: conversation.ref is %d bytes, more than %d", ErrInvalid, len(e.Conversation.Ref), envelope.MaxConvRefLen)
	case e.TS.Before(MinTime) || e.TS.After(MaxTime):
		return fmt.Errorf("%w: ts %s is outside %s to %s", ErrInvalid, e.TS.Format(time.RFC3339),
			MinTime.Format(time.RFC3339), MaxTime.Format(time.RFC3339))
	}
	for _, f := range [...]struct{ name, v string }{
		{"source", e.Source}, {"kind", string(e.Kind)},
		{"actor.id", e.Actor.ID}, {"actor.display", e.Actor.Display}, {"actor.type", string(e.Actor.Type)},
		{"conversation.source", e.Conversation.Source}, {"conversation.ref", e.Conversation.Ref}, {"text", e.Text},
	} {
		if err := CheckText(f.name, f.v); err != nil {
			return err
		}
	}
	if err := e.Refs.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	for _, k := range e.Refs.Keys() {
		if err := CheckText("refs."+k, e.Refs[k]); err != nil {
			return err
		}
	}
	return nil
}

// CheckBinding reports, wrapping ErrInvalid, why Bind cannot store b with
// the metadata of the session it may create: the session id as CheckID,
// a non-empty conversation source, and storable text in every field.
func CheckBinding(b Binding, metadata map[string]string) error {
	if err := CheckID("session id", b.SessionID); err != nil {
		return err
	}
	if b.Conversation.Source == "" {
		return fmt.Errorf("%w: conversation.source is empty", ErrInvalid)
	}
	for _, f := range [...]struct{ name, v string }{
		{"binding id", b.ID}, {"conversation.source", b.Conversation.Source},
		{"conversation.ref", b.Conversation.Ref}, {"route", b.Route}, {"paused reason", b.PausedReason},
	} {
		if err := CheckText(f.name, f.v); err != nil {
			return err
		}
	}
	return CheckMetadata("metadata", metadata)
}

// CheckDelivery reports, wrapping ErrInvalid, why Enqueue cannot store d:
// it needs a session id and a conversation source, and storable text in
// every field.
func CheckDelivery(d Delivery) error {
	switch {
	case d.SessionID == "":
		return fmt.Errorf("%w: delivery session id is empty", ErrInvalid)
	case d.To.Source == "":
		return fmt.Errorf("%w: delivery conversation.source is empty", ErrInvalid)
	}
	for _, f := range [...]struct{ name, v string }{
		{"delivery id", d.ID}, {"delivery session id", d.SessionID},
		{"delivery conversation.source", d.To.Source}, {"delivery conversation.ref", d.To.Ref},
	} {
		if err := CheckText(f.name, f.v); err != nil {
			return err
		}
	}
	return nil
}

// CheckSettlement reports why s cannot settle delivery id in any backend:
// an id that cannot name a stored delivery wraps ErrNotFound
// (CheckLookup); an unknown status, or a channel id, error or attempt
// that is not storable text (CheckText, CheckAttempt), wraps ErrInvalid.
func CheckSettlement(id string, s Settlement) error {
	switch s.Status {
	case Delivered, Pending, Dead:
	default:
		return fmt.Errorf("%w: invalid settlement status %q", ErrInvalid, s.Status)
	}
	if err := CheckLookup("delivery", id); err != nil {
		return err
	}
	if err := errors.Join(CheckText("channel id", s.ChannelID), CheckText("delivery error", s.Error)); err != nil {
		return err
	}
	if s.Attempt != nil {
		return CheckAttempt(*s.Attempt)
	}
	return nil
}

// CheckRun reports, wrapping ErrInvalid, why run cannot be settled as one
// (RunSettler.SettleRun): it has no outcome, or one before the last is
// Pending. Each outcome is CheckSettlement's to check.
func CheckRun(run []Outcome) error {
	if len(run) == 0 {
		return fmt.Errorf("%w: a run has no outcomes", ErrInvalid)
	}
	for _, o := range run[:len(run)-1] {
		if o.Status == Pending {
			return fmt.Errorf("%w: delivery %s: only a run's last outcome may be pending", ErrInvalid, o.ID)
		}
	}
	return nil
}

// CheckWebhook reports, wrapping ErrInvalid, why w's fields cannot be
// stored by CreateWebhook or UpdateWebhook: every text field, event type,
// session and metadata entry must be storable text (CheckText).
func CheckWebhook(w Webhook) error {
	for _, f := range [...]struct{ name, v string }{
		{"webhook id", w.ID}, {"url", w.URL}, {"description", w.Description}, {"secret", w.Secret},
		{"previous secret", w.PrevSecret}, {"disabled reason", w.DisabledReason}, {"origin", w.Origin},
	} {
		if err := CheckText(f.name, f.v); err != nil {
			return err
		}
	}
	for _, list := range [...]struct {
		name string
		vs   []string
	}{{"event_types", w.EventTypes}, {"sessions", w.Sessions}} {
		for _, v := range list.vs {
			if err := CheckText(list.name, v); err != nil {
				return err
			}
		}
	}
	return CheckMetadata("metadata", w.Metadata)
}

// CheckAttempt reports, wrapping ErrInvalid, why a cannot be
// recorded: its text fields must be storable (CheckText).
func CheckAttempt(a Attempt) error {
	for _, f := range [...]struct{ name, v string }{
		{"attempt id", a.ID}, {"webhook id", a.WebhookID}, {"delivery id", a.DeliveryID}, {"event id", a.EventID},
		{"session id", a.SessionID}, {"response", a.Response}, {"error", a.Error},
	} {
		if err := CheckText(f.name, f.v); err != nil {
			return err
		}
	}
	return nil
}

// CheckDeliveryFilter reports whether f and the cursor after can select
// deliveries: a session id, a known status or none, and a conversation
// given whole or not at all. It wraps ErrInvalid.
func CheckDeliveryFilter(f DeliveryFilter, after string) error {
	if f.SessionID == "" {
		return fmt.Errorf("%w: a session id is required", ErrInvalid)
	}
	switch f.Status {
	case "", Pending, Delivered, Dead:
	default:
		return fmt.Errorf("%w: status %q is not pending, delivered or dead", ErrInvalid, f.Status)
	}
	if (f.To.Source == "") != (f.To.Ref == "") {
		return fmt.Errorf("%w: a conversation needs both its source and its ref", ErrInvalid)
	}
	for _, v := range [...]struct{ field, v string }{{"session id", f.SessionID}, {"source", f.To.Source}, {"ref", f.To.Ref}, {"after", after}} {
		if err := CheckText(v.field, v.v); err != nil {
			return err
		}
	}
	return nil
}
