package email

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/switchboardhq/switchboard/store"
)

// The adapter's durable state lives in the gateway's store (adapters.Deps
// State), under the namespace Name, so that replicas sharing a PostgreSQL
// store share it:
//
//	cursor/<address>/<folder>  {"uidvalidity": …, "last_uid": …}
//	thread/<root Message-ID>   a Thread, as JSON
//
// A root Message-ID too long for a key (or not storable as one) is keyed
// by its digest instead: thread-sha256/<hex>.

// cursors remembers where the watcher stopped in each folder of the mailbox:
// the folder's UIDVALIDITY and the highest UID it has dealt with (handled,
// ignored or refused). It is safe for concurrent use; a Save is durable once
// it returns. Only one watcher may save a folder's cursor at a time.
type cursors struct {
	kv      store.KV
	address string // the mailbox's own address, part of every key
}

type cursorPos struct {
	UIDValidity uint32 `json:"uidvalidity"`
	LastUID     uint32 `json:"last_uid"`
}

func (c *cursors) key(folder string) string { return "cursor/" + c.address + "/" + folder }

// Load returns the saved position in folder, or zeros when none is saved.
func (c *cursors) Load(ctx context.Context, folder string) (uidValidity, lastUID uint32, err error) {
	b, err := c.kv.Value(ctx, Name, c.key(folder))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return 0, 0, nil
	case err != nil:
		return 0, 0, fmt.Errorf("email: load cursor: %w", err)
	}
	var p cursorPos
	if err := json.Unmarshal(b, &p); err != nil {
		return 0, 0, fmt.Errorf("email: load cursor of %s: %w", folder, err)
	}
	return p.UIDValidity, p.LastUID, nil
}

// Save records the position in folder, replacing the saved one.
func (c *cursors) Save(ctx context.Context, folder string, uidValidity, lastUID uint32) error {
	b, err := json.Marshal(cursorPos{UIDValidity: uidValidity, LastUID: lastUID})
	if err != nil {
		return fmt.Errorf("email: save cursor: %w", err)
	}
	if err := c.kv.SetValue(ctx, Name, c.key(folder), b); err != nil {
		return fmt.Errorf("email: save cursor: %w", err)
	}
	return nil
}

// Thread is what a reply needs to know about an email thread beyond its
// anchor (the root Message-ID).
type Thread struct {
	// Root is the thread root's Message-ID, the conversation ref.
	Root string `json:"root"`
	// To is who replies go to: the Reply-To, else the From, of the first
	// message the gateway saw in the thread.
	To []string `json:"to"`
	// ToName is the display name of the first To address.
	ToName string `json:"to_name,omitempty"`
	// Subject is the thread's subject without Re:/Fwd: prefixes.
	Subject string `json:"subject"`
	// References is the thread's References chain, oldest first, ending
	// with the latest message (inbound or sent); replies set In-Reply-To to
	// its last element.
	References []string `json:"references"`
	// Handled lists the Message-IDs of inbound messages handed to the
	// router, so a rescan (UIDVALIDITY change) does not hand them again.
	Handled []string `json:"handled,omitempty"`
}

// maxChain bounds References and Handled; the root is always kept.
const maxChain = 100

// addRef appends id to the References chain, keeping the root and the most
// recent entries.
func (t *Thread) addRef(id string) {
	if id == "" || (len(t.References) > 0 && t.References[len(t.References)-1] == id) {
		return
	}
	t.References = append(t.References, id)
	if len(t.References) > maxChain {
		t.References = append(t.References[:1], t.References[len(t.References)-maxChain+1:]...)
	}
}

func (t *Thread) handled(id string) bool { return slices.Contains(t.Handled, id) }

func (t *Thread) markHandled(id string) {
	if t.handled(id) {
		return
	}
	t.Handled = append(t.Handled, id)
	if len(t.Handled) > maxChain {
		t.Handled = t.Handled[len(t.Handled)-maxChain:]
	}
}

// threads keeps Thread records in the store. It is safe for concurrent
// use, also by several gateway processes: the watcher's updates on one
// replica and the replies sent by another's outbox never lose each other's
// changes.
type threads struct {
	kv store.KV
}

// threadKey is the store key of the thread rooted at root.
func threadKey(root string) string {
	k := "thread/" + root
	if len(k) <= store.MaxKVKey && utf8.ValidString(k) && !strings.ContainsRune(k, 0) {
		return k
	}
	sum := sha256.Sum256([]byte(root))
	return "thread-sha256/" + hex.EncodeToString(sum[:])
}

// load returns the thread rooted at root and its stored form; ok is false
// (and stored nil) when none is kept.
func (s *threads) load(ctx context.Context, root string) (t Thread, stored []byte, err error) {
	b, err := s.kv.Value(ctx, Name, threadKey(root))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Thread{Root: root}, nil, nil
	case err != nil:
		return Thread{}, nil, fmt.Errorf("email: load thread: %w", err)
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return Thread{}, nil, fmt.Errorf("email: load thread <%s>: %w", root, err)
	}
	return t, b, nil
}

// Load returns the thread rooted at root; ok is false when none is kept.
func (s *threads) Load(ctx context.Context, root string) (t Thread, ok bool, err error) {
	t, stored, err := s.load(ctx, root)
	return t, stored != nil, err
}

// Update applies fn to the thread rooted at root (a zero Thread with Root
// set when none is kept) and saves the result, atomically: when another
// writer changed the thread meanwhile, it reloads it and applies fn again,
// so fn must only change its argument. It returns the saved thread.
func (s *threads) Update(ctx context.Context, root string, fn func(*Thread)) (Thread, error) {
	t, stored, err := s.load(ctx, root)
	if err != nil {
		return Thread{}, err
	}
	return s.UpdateLoaded(ctx, root, t, stored, fn)
}

// UpdateLoaded is Update for a thread the caller already holds: t and
// stored as load returned them for root. Its first compare-and-set is
// against stored, so it reads the store only when another writer changed
// the thread since (then it reloads and applies fn again, as Update does).
// fn changes a copy of t; the caller's t is left as it was.
func (s *threads) UpdateLoaded(ctx context.Context, root string, t Thread, stored []byte, fn func(*Thread)) (Thread, error) {
	key := threadKey(root)
	t.To, t.References, t.Handled = slices.Clone(t.To), slices.Clone(t.References), slices.Clone(t.Handled)
	for {
		fn(&t)
		t.Root = root
		b, err := json.Marshal(t)
		if err != nil {
			return Thread{}, fmt.Errorf("email: save thread: %w", err)
		}
		set, err := s.kv.CompareAndSetValue(ctx, Name, key, stored, b)
		if err != nil {
			return Thread{}, fmt.Errorf("email: save thread: %w", err)
		}
		if set {
			return t, nil
		}
		if t, stored, err = s.load(ctx, root); err != nil {
			return Thread{}, err
		}
	}
}
