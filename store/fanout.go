package store

import (
	"slices"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
)

// Fan-out at commit
//
// Every backend writes, in the transaction that commits a change, the
// outbox deliveries the change causes, so that no follower has to find
// them afterwards with a claim and a cursor of its own per session:
//
//   - an outbound message, system record, edit or deletion goes to its conversations
//     (OutputTargets): the conversation it names, every conversation of the
//     session for envelope.Broadcast, else the conversation of the session's
//     newest inbound record before it; each only when it is bound to the
//     session and its source is a channel (Deliverable);
//   - every record, and every session event (a session created, a state
//     changed), goes to each webhook destination that takes it
//     (Webhook.Takes), created before it happened, in a queue per
//     destination and session (WebhookConversation), in the session's
//     order: an event placed after record k comes after record k.
//
// Deliveries are enqueued as Enqueue would: pending, due at once,
// idempotent on (SessionID, Seq, Event, To). The conformance suite checks
// it (storetest, FanOut). The router runs no follower to enqueue
// deliveries: it only delivers what the store enqueued.
//
// The runtime's work is marked in the same transaction too: an inbound
// record for the runtime (Record.ForRuntime) makes its session work for
// the cursors' consumers (Cursors). Whether the session's agent is to take
// a turn on it is the router's decision, made as it appends the record
// (AppendRequest.NoTurn): a session whose agent reads its log itself
// costs the runtime nothing. The turn itself cannot run at commit, so the
// runtime's dispatcher still claims the sessions that have work.

// Reserved conversation sources: anchors the gateway keeps for itself,
// which no channel delivers to.
const (
	// SourceUpstream binds an http runtime's upstream session to a local one.
	SourceUpstream = "upstream"
	// SourceRefPrefix starts the source of a binding that keys a session by
	// a ref ("ref:pr").
	SourceRefPrefix = "ref:"
	// SourceSystem is the source of the gateway's own system envelopes.
	SourceSystem = "system"
	// SourceWebhook is the source of outbound webhook deliveries.
	SourceWebhook = "webhook"
)

// Deliverable reports whether an output can be delivered to conversation
// c through a channel: c names one, and it is none of the gateway's own
// anchors.
func Deliverable(c envelope.Conversation) bool {
	switch {
	case c.IsZero(), c.Source == envelope.Broadcast.Source, c.Source == envelope.SourceClient,
		c.Source == SourceUpstream, c.Source == SourceSystem, c.Source == SourceWebhook,
		strings.HasPrefix(c.Source, SourceRefPrefix):
		return false
	}
	return true
}

// ForRuntime reports whether a record of direction dir and kind kind can be
// one a runtime acts on: an inbound message, edit or deletion, not a system
// notice. It is one unless it was appended NoTurn (Record.ForRuntime). Only
// such records are work for the cursors' consumers (Cursors).
func ForRuntime(dir Direction, kind envelope.Kind) bool {
	return dir == Inbound && kind != envelope.KindSystem
}

// IsOutput reports whether record rec is an output that channels deliver:
// anything outbound, a message, a system notice or an edit or deletion of
// an earlier output (which goes where that output went: the API names the
// conversation on it, see OutputTargets).
func IsOutput(rec *Record) bool {
	return rec.Direction == Outbound && rec.Envelope.Kind.Valid()
}

// OutputTargets returns the conversations output rec goes to (see the top
// of this file), given the conversations bound to its session (bound) and
// the conversation of the session's newest inbound record before it that
// names one (latest, zero when none).
func OutputTargets(rec *Record, bound []envelope.Conversation, latest envelope.Conversation) []envelope.Conversation {
	conv := rec.Envelope.Conversation
	var out []envelope.Conversation
	switch {
	case conv == envelope.Broadcast:
		for _, c := range bound {
			if Deliverable(c) {
				out = append(out, c)
			}
		}
	case !conv.IsZero():
		if Deliverable(conv) && slices.Contains(bound, conv) {
			out = append(out, conv)
		}
	default:
		if Deliverable(latest) && slices.Contains(bound, latest) {
			out = append(out, latest)
		}
	}
	return out
}

// DeliveryFailedPrefix starts the envelope id of the system record that
// reports a webhook delivery given up: its event type is
// envelope.EventDeliveryFail.
const DeliveryFailedPrefix = "system:webhook-failed:"

// EventTypeOf is the webhook event type of record rec.
func EventTypeOf(rec *Record) envelope.EventType {
	if rec.Envelope.Kind == envelope.KindSystem && strings.HasPrefix(rec.Envelope.ID, DeliveryFailedPrefix) {
		return envelope.EventDeliveryFail
	}
	return envelope.EventMessage
}

// Takes reports whether destination w takes an event of type t of session
// sessionID.
func (w *Webhook) Takes(t envelope.EventType, sessionID string) bool {
	if w.Disabled {
		return false
	}
	if len(w.EventTypes) > 0 && !slices.Contains(w.EventTypes, string(t)) {
		return false
	}
	return len(w.Sessions) == 0 || slices.Contains(w.Sessions, sessionID)
}

// TakesSessionEvents reports whether w takes some kind of session event.
func (w *Webhook) TakesSessionEvents() bool {
	return !w.Disabled && (len(w.EventTypes) == 0 ||
		slices.Contains(w.EventTypes, string(envelope.EventSessionNew)) ||
		slices.Contains(w.EventTypes, string(envelope.EventSessionState)))
}

// WebhookRef is the outbox anchor ref of destination dest and session
// sessionID; replay, when not empty, makes a separate queue for a replay.
func WebhookRef(dest, replay, sessionID string) string {
	if replay != "" {
		return dest + "#" + replay + "/" + sessionID
	}
	return dest + "/" + sessionID
}

// WebhookDest returns the destination id of a webhook anchor's ref.
func WebhookDest(ref string) string {
	dest, _, _ := strings.Cut(ref, "/")
	dest, _, _ = strings.Cut(dest, "#")
	return dest
}

// LiveWebhookDeliveries appends to ds the live deliveries of one item of a
// session to the destinations of dests that take it: a record (event 0) or
// a session event (its journal id, placed after record seq), of type t,
// which happened at at. A destination created after the item gets it only
// through a replay.
func LiveWebhookDeliveries(ds []Delivery, dests []Webhook, sessionID string, seq, event int64, t envelope.EventType, at, now time.Time) []Delivery {
	for i := range dests {
		w := &dests[i]
		if !w.Takes(t, sessionID) || at.Before(w.CreatedAt) {
			continue
		}
		ds = append(ds, Delivery{
			SessionID: sessionID, Seq: seq, Event: event,
			To:          envelope.Conversation{Source: SourceWebhook, Ref: WebhookRef(w.ID, "", sessionID)},
			NextAttempt: now, CreatedAt: now,
		})
	}
	return ds
}
