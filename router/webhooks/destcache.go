package webhooks

import (
	"context"
	"sync"
	"time"

	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/webhook"
)

// DefaultDestTTL is how long a Sender keeps a destination it read from the
// store when Options.DestTTL is zero.
const DefaultDestTTL = time.Second

// maxCachedDests bounds a Sender's destination cache. Caching one more
// destination when it holds this many first drops the expired entries
// and, when that frees no room, every entry.
const maxCachedDests = 1024

// dest is a destination as Deliver uses it: the stored destination and a
// signer for its secrets.
type dest struct {
	w store.Webhook
	// signer signs with w.Secrets(t) for any t from when w was read until
	// signUntil (no bound when zero); nil when those secrets make none.
	signer    *webhook.Signer
	signUntil time.Time
}

// signerAt returns a signer for d's secrets at now: the one built when d
// was read while its secrets are still those, a new one after (once the
// previous secret's grace period is over), so that no delivery is signed
// with a secret past its PrevExpires.
func (d *dest) signerAt(now time.Time) (*webhook.Signer, error) {
	if d.signer != nil && (d.signUntil.IsZero() || now.Before(d.signUntil)) {
		return d.signer, nil
	}
	return webhook.NewSigner(d.w.Secrets(now)...)
}

// cachedDest is an entry of a destCache.
type cachedDest struct {
	d dest
	// expires is when the entry stops being handed out: the read's time
	// plus the TTL, or the destination's PrevExpires when that comes first.
	expires time.Time
}

// destCache keeps destinations read from the store for a while, by id. Its
// methods are safe for concurrent use.
type destCache struct {
	ttl time.Duration // > 0

	mu sync.Mutex
	m  map[string]cachedDest
	// gen counts the drops: a read that began before one does not store
	// what it read, which may be older than the change the drop was for.
	gen uint64
}

func newDestCache(ttl time.Duration) *destCache {
	return &destCache{ttl: ttl, m: make(map[string]cachedDest)}
}

// get returns destination id if an entry for it lasts at now.
func (c *destCache) get(id string, now time.Time) (dest, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok {
		return dest{}, false
	}
	if !now.Before(e.expires) {
		delete(c.m, id)
		return dest{}, false
	}
	return e.d, true
}

// generation returns the count of drops so far, for put.
func (c *destCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put stores destination d, read at readAt, under id, unless a drop came
// since generation returned gen. The entry lasts until readAt plus the TTL,
// or until d's PrevExpires when it is set, after readAt and sooner.
func (c *destCache) put(id string, d dest, readAt time.Time, gen uint64) {
	expires := readAt.Add(c.ttl)
	if pe := d.w.PrevExpires; !pe.IsZero() && pe.After(readAt) && pe.Before(expires) {
		expires = pe
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if _, ok := c.m[id]; !ok && len(c.m) >= maxCachedDests {
		for k, e := range c.m {
			if !readAt.Before(e.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxCachedDests {
			clear(c.m)
		}
	}
	c.m[id] = cachedDest{d: d, expires: expires}
}

// drop forgets destination id, or every destination when id is "".
func (c *destCache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id == "" {
		clear(c.m)
	} else {
		delete(c.m, id)
	}
	c.gen++
}

// len returns how many entries the cache holds, expired or not.
func (c *destCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// destination returns destination id as Deliver uses it: from the cache
// while an entry for it lasts, otherwise read from the store (and cached,
// unless the cache is off or the destination is disabled or its secrets
// make no signer). Errors are the store's (store.ErrNotFound for an
// unknown id) and are not cached.
func (s *Sender) destination(ctx context.Context, id string) (dest, error) {
	now := s.now()
	var gen uint64
	if s.dests != nil {
		if d, ok := s.dests.get(id, now); ok {
			return d, nil
		}
		gen = s.dests.generation()
	}
	w, err := s.st.Webhook(ctx, id)
	if err != nil {
		return dest{}, err
	}
	d := dest{w: w}
	signer, err := webhook.NewSigner(w.Secrets(now)...)
	if err != nil {
		return d, nil // signerAt reports it, after Deliver's disabled check
	}
	d.signer = signer
	if w.PrevSecret != "" && w.PrevExpires.After(now) {
		d.signUntil = w.PrevExpires
	}
	// A disabled destination is not cached: once enabled again (and
	// replayed), its deliveries must not be refused for the TTL.
	if s.dests != nil && !w.Disabled {
		s.dests.put(id, d, now, gen)
	}
	return d, nil
}

// forget drops destination id's cache entry ("" drops them all), so that
// the next delivery reads the store; it is called after every change the
// Sender makes to a destination.
func (s *Sender) forget(id string) {
	if s.dests != nil {
		s.dests.drop(id)
	}
}

// setHealth records destination id's health (store.Webhooks'
// SetWebhookHealth) and drops its cache entry, whether or not the store
// took the change.
func (s *Sender) setHealth(ctx context.Context, id string, failingSince time.Time, disabled bool, reason string) error {
	defer s.forget(id)
	return s.st.SetWebhookHealth(ctx, id, failingSince, disabled, reason)
}
