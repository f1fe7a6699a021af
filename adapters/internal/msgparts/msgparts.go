// Package msgparts lets an adapter that posts a long reply as several
// comments (GitHub, Jira) edit and withdraw it as one message: it keeps,
// per message, the comment ids of its parts and a digest of what each holds
// (a Message, in a Book), and changes the parts to hold a new text with as
// few calls as it can (Apply, Withdraw, and Book.Change, which records
// every step).
//
// A message is named by its first comment's id, which is the Receipt's
// ChannelID of its delivery and so the Delivery.Target of its edits; an
// edit never deletes the first comment, so the name stays.
package msgparts

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/internal/bounded"
	"github.com/switchboardhq/switchboard/adapters/internal/hook"
	"github.com/switchboardhq/switchboard/store"
)

// Message is a reply posted as one or more comments.
type Message struct {
	// Ref is the conversation anchor the comments are in.
	Ref string `json:"ref"`
	// Delivery is the delivery id the parts' provenance markers name (the
	// delivery that first posted the message).
	Delivery string `json:"delivery"`
	// Parts are the comments, in order; the first names the message.
	Parts []Part `json:"parts"`
}

// Part is one comment of a message.
type Part struct {
	ID string `json:"id"`
	// Sum is the digest (Sum) of the body the comment was last given; ""
	// when unknown, which makes the next Apply rewrite it.
	Sum string `json:"sum,omitempty"`
}

// First returns the id of the message's first comment ("" when it has no
// parts).
func (m *Message) First() string {
	if len(m.Parts) == 0 {
		return ""
	}
	return m.Parts[0].ID
}

// Sum returns a short digest of a comment body.
func Sum(body string) string {
	h := sha256.Sum256([]byte(body))
	return base64.RawURLEncoding.EncodeToString(h[:12])
}

// Book remembers messages: in the adapter's state store when it has one
// (shared by the gateway's replicas and kept across restarts), else in
// memory. It holds a bounded number of them (Slots in the store, as many in
// memory): a message whose slot another took is forgotten, and the adapter
// then recovers it from the channel. Safe for concurrent use.
type Book struct {
	kv        store.KV // nil: memory only
	namespace string
	mem       *bounded.Map[string, Message]
}

// Slots is how many messages a Book holds.
const Slots = 4096

// NewBook returns a Book keeping messages in kv under namespace (the
// adapter's plugin name), or in memory when kv is nil.
func NewBook(kv store.KV, namespace string) *Book {
	return &Book{kv: kv, namespace: namespace, mem: bounded.NewMap[string, Message](Slots)}
}

// memKey is a message's key in memory.
func memKey(ref, first string) string { return ref + "\x00" + first }

// slot is a message's key in the store: one of Slots, by a hash of its
// conversation and first comment.
func slot(ref, first string) string {
	h := fnv.New32a()
	h.Write([]byte(memKey(ref, first)))
	return fmt.Sprintf("parts/%d", h.Sum32()%Slots)
}

// Get returns the message whose first comment is first in conversation
// ref, and whether the Book holds it. With a store, it is read there (what
// another replica wrote last); the memory answers when the store does not
// hold it. An error is the store's.
func (b *Book) Get(ctx context.Context, ref, first string) (Message, bool, error) {
	if b.kv != nil {
		v, err := b.kv.Value(ctx, b.namespace, slot(ref, first))
		switch {
		case err == nil:
			var m Message
			if json.Unmarshal(v, &m) == nil && m.Ref == ref && m.First() == first {
				return m, true, nil
			}
		case !errors.Is(err, store.ErrNotFound):
			return Message{}, false, fmt.Errorf("read parts of %s: %w", first, err)
		}
	}
	m, ok := b.mem.Get(memKey(ref, first))
	if ok {
		m.Parts = append([]Part(nil), m.Parts...)
	}
	return m, ok, nil
}

// Put records m (which must have parts), in memory and, with a store,
// there. An error is the store's; the memory holds m all the same.
func (b *Book) Put(ctx context.Context, m Message) error {
	if len(m.Parts) == 0 {
		return errors.New("msgparts: a message without parts")
	}
	m.Parts = append([]Part(nil), m.Parts...)
	b.mem.Put(memKey(m.Ref, m.First()), m)
	if b.kv == nil {
		return nil
	}
	v, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := b.kv.SetValue(ctx, b.namespace, slot(m.Ref, m.First()), v); err != nil {
		return fmt.Errorf("record parts of %s: %w", m.First(), err)
	}
	return nil
}

// Forget drops the message whose first comment is first from memory (a
// store's slot is left to be taken by another message).
func (b *Book) Forget(ref, first string) { b.mem.Delete(memKey(ref, first)) }

// Ops are a channel's calls on one conversation's comments. Their errors
// follow the adapters' contract; a comment that no longer exists is an
// error wrapping adapters.ErrGone.
type Ops interface {
	Edit(ctx context.Context, id, body string) error
	Post(ctx context.Context, body string) (id string, err error)
	Delete(ctx context.Context, id string) error
}

// Apply makes m's comments hold bodies, in order: it edits the parts whose
// body differs from what they were last given (a part with an unknown Sum
// is always rewritten), posts the bodies beyond the last part after it, and
// deletes the surplus parts, the last first. It calls save after every
// change with m as it now stands, so that an attempt that fails part way
// leaves m saying what is done, and the next attempt does only the rest.
// bodies must not be empty; the first comment is never deleted. A part
// that is gone (a person deleted it) ends it with an error wrapping
// adapters.ErrGone: the message is no longer whole.
func Apply(ctx context.Context, m *Message, bodies []string, ops Ops, save func()) error {
	if len(bodies) == 0 || len(m.Parts) == 0 {
		return fmt.Errorf("%w: nothing to apply", adapters.ErrPermanent)
	}
	for i, body := range bodies {
		sum := Sum(body)
		if i < len(m.Parts) {
			if m.Parts[i].Sum == sum {
				continue
			}
			if err := ops.Edit(ctx, m.Parts[i].ID, body); err != nil {
				return fmt.Errorf("edit part %d of %d: %w", i+1, len(bodies), err)
			}
			m.Parts[i].Sum = sum
			save()
			continue
		}
		id, err := ops.Post(ctx, body)
		if err != nil {
			return fmt.Errorf("post part %d of %d: %w", i+1, len(bodies), err)
		}
		m.Parts = append(m.Parts, Part{ID: id, Sum: sum})
		save()
	}
	for len(m.Parts) > len(bodies) {
		last := len(m.Parts) - 1
		if err := ops.Delete(ctx, m.Parts[last].ID); err != nil && !errors.Is(err, adapters.ErrGone) {
			return fmt.Errorf("delete surplus part %d: %w", last+1, err)
		}
		m.Parts = m.Parts[:last]
		save()
	}
	return nil
}

// Withdraw deletes m's comments, the last first, so that the first, which
// names the message, goes last: a part already gone counts as deleted, but
// the first being gone is returned (wrapping adapters.ErrGone). It calls
// save after every deletion but the first comment's.
func Withdraw(ctx context.Context, m *Message, ops Ops, save func()) error {
	for len(m.Parts) > 1 {
		last := len(m.Parts) - 1
		if err := ops.Delete(ctx, m.Parts[last].ID); err != nil && !errors.Is(err, adapters.ErrGone) {
			return fmt.Errorf("delete part %d: %w", last+1, err)
		}
		m.Parts = m.Parts[:last]
		save()
	}
	if len(m.Parts) == 1 {
		if err := ops.Delete(ctx, m.Parts[0].ID); err != nil {
			return fmt.Errorf("delete part 1: %w", err)
		}
	}
	return nil
}

// Change makes m, a message the book returned or recovered, hold a new
// text, or withdraws it: with bodies (which give the parts' bodies, their
// markers naming m's delivery), Apply; with bodies nil, Withdraw, after
// which the message is forgotten. Every step is recorded in the book; a
// failure to record is logged (on log), not returned.
func (b *Book) Change(ctx context.Context, m *Message, bodies func(delivery string) []string, ops Ops, log *slog.Logger) error {
	save := func() {
		if err := b.Put(ctx, *m); err != nil {
			log.Warn("could not record the parts of a reply", "comment", m.First(), "err", err)
		}
	}
	if bodies != nil {
		return Apply(ctx, m, bodies(m.Delivery), ops, save)
	}
	ref, first := m.Ref, m.First()
	err := Withdraw(ctx, m, ops, save)
	if err == nil || errors.Is(err, adapters.ErrGone) {
		b.Forget(ref, first)
	}
	return err
}

// Result is the metric label of an edit or deletion's outcome: ok, gone,
// rate_limited, permanent or error.
func Result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, adapters.ErrGone):
		return "gone"
	}
	return hook.PostResult(err)
}
