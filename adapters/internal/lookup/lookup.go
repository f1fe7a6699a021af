// Package lookup caches the answers of slow lookups (a user's display name
// by id, say) for the channel adapters: entries expire after a TTL, the
// cache holds a bounded number of them, concurrent misses for one key share
// a single fetch, and failures are remembered briefly so that a failing API
// does not cost every caller its timeout.
package lookup

import (
	"context"
	"sync"
	"time"
)

// Options configures a Cache.
type Options struct {
	// TTL is how long a fetched value is kept.
	TTL time.Duration
	// NegativeTTL is how long a failed fetch is remembered (answered with
	// the zero value without fetching again); zero remembers none.
	NegativeTTL time.Duration
	// Max is the most entries kept; at least 1.
	Max int
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Cache maps keys to values fetched on demand. It is safe for concurrent
// use; the zero Cache is not usable, call New.
type Cache[K comparable, V any] struct {
	o    Options
	mu   sync.Mutex
	m    map[K]entry[V]
	busy map[K]chan struct{} // closed when the fetch of the key ends
}

type entry[V any] struct {
	v       V
	expires time.Time
}

// New returns an empty cache.
func New[K comparable, V any](o Options) *Cache[K, V] {
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Max = max(o.Max, 1)
	return &Cache[K, V]{o: o, m: map[K]entry[V]{}, busy: map[K]chan struct{}{}}
}

// Get returns the value cached for k, calling fetch on a miss; it returns
// the zero V when the value is unknown (the fetch failed now or within
// NegativeTTL, or ctx ended). Concurrent misses for k wait for a single
// fetch, each for at most its own ctx; the fetch runs with the ctx of the
// caller that started it, and when it fails because that ctx ended the
// failure is not remembered (it says nothing about k), so a waiter still in
// time fetches again. Get blocks at most until ctx ends, provided fetch
// honours its ctx.
func (c *Cache[K, V]) Get(ctx context.Context, k K, fetch func(context.Context, K) (V, error)) V {
	for {
		c.mu.Lock()
		if e, ok := c.m[k]; ok && c.o.Now().Before(e.expires) {
			c.mu.Unlock()
			return e.v
		}
		wait, busy := c.busy[k]
		if !busy {
			done := make(chan struct{})
			c.busy[k] = done
			c.mu.Unlock()
			v, err := fetch(ctx, k)
			ttl := c.o.TTL
			if err != nil {
				var zero V
				v, ttl = zero, c.o.NegativeTTL
			}
			c.mu.Lock()
			if (err == nil || ctx.Err() == nil) && ttl > 0 {
				c.storeLocked(k, v, ttl)
			}
			delete(c.busy, k)
			close(done)
			c.mu.Unlock()
			return v
		}
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			var zero V
			return zero
		}
	}
}

// GetAll looks up keys concurrently with Get and returns each key's value
// (zero when unknown). It returns when every lookup has.
func (c *Cache[K, V]) GetAll(ctx context.Context, keys []K, fetch func(context.Context, K) (V, error)) map[K]V {
	out := make(map[K]V, len(keys))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Go(func() {
			v := c.Get(ctx, k, fetch)
			mu.Lock()
			out[k] = v
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// Put records a value learned without a fetch (from an event payload, say),
// kept for the TTL.
func (c *Cache[K, V]) Put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.storeLocked(k, v, c.o.TTL)
}

// Len returns the number of entries held, expired ones included.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

func (c *Cache[K, V]) storeLocked(k K, v V, ttl time.Duration) {
	if _, ok := c.m[k]; !ok && len(c.m) >= c.o.Max {
		c.evictLocked()
	}
	c.m[k] = entry[V]{v: v, expires: c.o.Now().Add(ttl)}
}

// evictLocked drops expired entries and, if the cache is still full, half
// of the rest (arbitrary ones: values are cheap to fetch again).
func (c *Cache[K, V]) evictLocked() {
	now := c.o.Now()
	for k, e := range c.m {
		if !now.Before(e.expires) {
			delete(c.m, k)
		}
	}
	if len(c.m) < c.o.Max {
		return
	}
	for k := range c.m {
		if len(c.m) <= c.o.Max/2 {
			break
		}
		delete(c.m, k)
	}
}
