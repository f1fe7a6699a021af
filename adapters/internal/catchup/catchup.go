// Package catchup keeps the watermarks a channel adapter's catch-up
// (adapters.CatchUpper) starts from: per scope (a Slack thread or channel, a
// GitHub repository, a Jira project), the time of the newest message the
// gateway has stored from it, and when it last saw activity there.
//
// The marks of one adapter are one value in the gateway's store
// (adapters.Deps State), under the adapter's namespace and the key
// "catch-up/marks", changed with compare-and-set, so replicas sharing a
// store share them and never lose each other's advances.
//
// Only a catch-up moves a scope's mark (Advance, after its Ingress handled
// a fetched message), so a mark only ever covers what is stored and what
// the catch-up has seen without a gap. A live message does not move it
// (Seen): live events after a restart, or after one lost webhook, would
// otherwise carry the mark past the messages the gateway missed, and the
// next catch-up would skip them. A live message makes its scope known and
// active, so the catch-up looks there. What a catch-up fetches again that
// was stored live is recognised by its envelope id.
//
// The marks are bounded: scopes idle for longer than the retention are
// dropped, and past MaxScopes the idlest go.
package catchup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/switchboardhq/switchboard/store"
)

// Key is the store key of an adapter's marks, in its namespace.
const Key = "catch-up/marks"

// MaxScopes bounds the scopes one adapter keeps marks for; past it, the
// scopes idle longest are dropped (their next message starts them again).
const MaxScopes = 5000

// retention is how long a scope's mark is kept after its last activity. A
// catch-up never looks further back than its window (24 hours by default),
// so marks older than this serve nothing.
const retention = 30 * 24 * time.Hour

// casAttempts bounds the compare-and-set retries of one change.
const casAttempts = 20

// Mark is where a scope stands.
type Mark struct {
	// Last is where the next catch-up of the scope starts: the time (the
	// channel's own timestamp) of the newest message a catch-up handled
	// there, or of the message that made the scope known.
	Last time.Time `json:"last"`
	// Cursor is the channel's own position of that message, when the
	// channel pages by it rather than by time (a Slack ts); "" otherwise.
	Cursor string `json:"cursor,omitempty"`
	// Active is the time of the newest message handled in the scope, live
	// or caught up (to activeStep), which Active and the retention use.
	Active time.Time `json:"active,omitzero"`
}

// activity is when mk last saw a message.
func (mk Mark) activity() time.Time { return later(mk.Active, mk.Last) }

// activeStep is how far a live message must be past a scope's recorded
// activity to be written: activity only selects the scopes a catch-up
// looks at (by a window of hours), so a busy thread costs a write a
// minute, not one per message.
const activeStep = time.Minute

// Marks are one adapter's watermarks. Its methods are safe for concurrent
// use; every change is durable when it returns nil.
type Marks struct {
	kv        store.KV
	namespace string
	now       func() time.Time

	mu sync.Mutex // orders this process's changes (the store orders replicas')
}

// New returns the marks of the adapter whose store namespace is namespace.
// It does no I/O.
func New(kv store.KV, namespace string, now func() time.Time) *Marks {
	if now == nil {
		now = time.Now
	}
	return &Marks{kv: kv, namespace: namespace, now: now}
}

// marksValue is the stored form.
type marksValue struct {
	Scopes map[string]Mark `json:"scopes"`
}

// Load returns every scope's mark.
func (m *Marks) Load(ctx context.Context) (map[string]Mark, error) {
	v, _, err := m.load(ctx)
	if err != nil {
		return nil, err
	}
	return v.Scopes, nil
}

// Get returns scope's mark and whether there is one.
func (m *Marks) Get(ctx context.Context, scope string) (Mark, bool, error) {
	all, err := m.Load(ctx)
	if err != nil {
		return Mark{}, false, err
	}
	mk, ok := all[scope]
	return mk, ok, nil
}

func (m *Marks) load(ctx context.Context) (marksValue, []byte, error) {
	b, err := m.kv.Value(ctx, m.namespace, Key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return marksValue{Scopes: map[string]Mark{}}, nil, nil
	case err != nil:
		return marksValue{}, nil, fmt.Errorf("catch-up marks: %w", err)
	}
	var v marksValue
	if err := json.Unmarshal(b, &v); err != nil {
		return marksValue{}, nil, fmt.Errorf("catch-up marks: decode: %w", err)
	}
	if v.Scopes == nil {
		v.Scopes = map[string]Mark{}
	}
	return v, b, nil
}

// Seen records that a live message of scope, written at at (at cursor,
// when the channel pages by cursor), was handled: a scope not known yet
// starts there (so its catch-up fetches what follows); a known one is
// marked active, its catch-up start left where it is.
func (m *Marks) Seen(ctx context.Context, scope string, at time.Time, cursor string) error {
	return m.change(ctx, func(v map[string]Mark) bool {
		cur, ok := v[scope]
		if !ok {
			v[scope] = Mark{Last: at.UTC(), Cursor: cursor, Active: at.UTC()}
			return true
		}
		if at.Sub(cur.activity()) < activeStep {
			return false
		}
		cur.Active = at.UTC()
		v[scope] = cur
		return true
	})
}

// Advance records that a catch-up handled the message of scope written at
// at (at cursor): the scope's next catch-up starts after it. A mark never
// moves back: an older message leaves it where it is.
func (m *Marks) Advance(ctx context.Context, scope string, at time.Time, cursor string) error {
	return m.change(ctx, func(v map[string]Mark) bool {
		cur, ok := v[scope]
		if ok && !at.After(cur.Last) {
			return false
		}
		cur.Last, cur.Cursor = at.UTC(), cursor
		if at.After(cur.Active) {
			cur.Active = at.UTC()
		}
		v[scope] = cur
		return true
	})
}

// Start records scope with a mark at last unless it has one: where a
// catch-up first looks at a place, it starts from now rather than from the
// beginning of its history.
func (m *Marks) Start(ctx context.Context, scope string, last time.Time, cursor string) error {
	return m.change(ctx, func(v map[string]Mark) bool {
		if _, ok := v[scope]; ok {
			return false
		}
		v[scope] = Mark{Last: last.UTC(), Cursor: cursor, Active: last.UTC()}
		return true
	})
}

// change applies fn to the stored marks with compare-and-set until it
// holds; fn reports whether it changed anything.
func (m *Marks) change(ctx context.Context, fn func(map[string]Mark) bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for range casAttempts {
		v, old, err := m.load(ctx)
		if err != nil {
			return err
		}
		if !fn(v.Scopes) {
			return nil
		}
		prune(v.Scopes, m.now())
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("catch-up marks: encode: %w", err)
		}
		set, err := m.kv.CompareAndSetValue(ctx, m.namespace, Key, old, b)
		if err != nil {
			return fmt.Errorf("catch-up marks: %w", err)
		}
		if set {
			return nil
		}
	}
	return fmt.Errorf("catch-up marks: %d concurrent changes in a row; try again", casAttempts)
}

// prune drops the marks idle for longer than retention and, past
// MaxScopes, the idlest.
func prune(v map[string]Mark, now time.Time) {
	for k, mk := range v {
		if now.Sub(mk.activity()) > retention {
			delete(v, k)
		}
	}
	if len(v) <= MaxScopes {
		return
	}
	keys := slices.SortedFunc(maps.Keys(v), func(a, b string) int { return v[a].activity().Compare(v[b].activity()) })
	for _, k := range keys[:len(keys)-MaxScopes] {
		delete(v, k)
	}
}

// Active returns the scopes that saw a message within window of now,
// oldest catch-up start first.
func Active(marks map[string]Mark, now time.Time, window time.Duration) []string {
	var out []string
	for k, mk := range marks {
		if now.Sub(mk.activity()) <= window {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b string) int {
		if c := marks[a].Last.Compare(marks[b].Last); c != 0 {
			return c
		}
		if a < b {
			return -1
		}
		return 1
	})
	return out
}

// From is where a catch-up of a scope whose mark is mk starts: at its last
// message, but never earlier than window before now. A small overlap is
// harmless: what was stored already is recognised by its envelope id.
func From(mk Mark, now time.Time, window time.Duration) time.Time {
	return later(mk.Last, now.Add(-window))
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
