package slack

import (
	"context"
	"sync"
	"time"

	"github.com/slack-go/slack"
)

// negativeTTL is how long a failed lookup is remembered, so that a slow or
// failing users.info does not cost every event its timeout.
const negativeTTL = time.Minute

// userCache remembers display names by user id, with a TTL, and lets one
// lookup per id run at a time. It is safe for concurrent use.
type userCache struct {
	ttl  time.Duration
	max  int
	now  func() time.Time
	mu   sync.Mutex
	m    map[string]userEntry
	busy map[string]chan struct{} // closed when the lookup of the id ends
}

type userEntry struct {
	name    string
	expires time.Time
}

func newUserCache(ttl time.Duration, max int, now func() time.Time) *userCache {
	return &userCache{ttl: ttl, max: max, now: now, m: map[string]userEntry{}, busy: map[string]chan struct{}{}}
}

// get returns the cached name of id, calling fetch on a miss. Concurrent
// misses for one id wait for a single fetch (or for ctx). A failed fetch
// returns "" and is remembered for negativeTTL.
func (c *userCache) get(ctx context.Context, id string, fetch func(context.Context, string) (string, error)) string {
	for {
		c.mu.Lock()
		if e, ok := c.m[id]; ok && c.now().Before(e.expires) {
			c.mu.Unlock()
			return e.name
		}
		wait, busy := c.busy[id]
		if !busy {
			done := make(chan struct{})
			c.busy[id] = done
			c.mu.Unlock()
			name, err := fetch(ctx, id)
			ttl := c.ttl
			if err != nil {
				name, ttl = "", negativeTTL
			}
			c.mu.Lock()
			if len(c.m) >= c.max {
				c.evictLocked()
			}
			// A fetch cut short by the caller's deadline says nothing about
			// the user; remember only real answers and real failures.
			if err == nil || ctx.Err() == nil {
				c.m[id] = userEntry{name: name, expires: c.now().Add(ttl)}
			}
			delete(c.busy, id)
			close(done)
			c.mu.Unlock()
			return name
		}
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ""
		}
	}
}

// evictLocked drops expired entries and, if the cache is still full, half
// of the rest (arbitrary ones: names are cheap to fetch again).
func (c *userCache) evictLocked() {
	now := c.now()
	for id, e := range c.m {
		if !now.Before(e.expires) {
			delete(c.m, id)
		}
	}
	if len(c.m) < c.max {
		return
	}
	for id := range c.m {
		if len(c.m) <= c.max/2 {
			break
		}
		delete(c.m, id)
	}
}

// displayName picks the name Slack shows for u: the profile's display name,
// else the real name, else the username.
func displayName(u *slack.User) string {
	switch {
	case u.Profile.DisplayName != "":
		return u.Profile.DisplayName
	case u.Profile.RealName != "":
		return u.Profile.RealName
	case u.RealName != "":
		return u.RealName
	}
	return u.Name
}

// userName resolves a user id to its display name through the cache and
// users.info. It returns "" when the name is unknown.
func (a *Adapter) userName(ctx context.Context, id string) string {
	if id == "" {
		return ""
	}
	return a.users.get(ctx, id, func(ctx context.Context, id string) (string, error) {
		u, err := a.api.GetUserInfoContext(ctx, id)
		if err != nil {
			err = a.classify(err)
			if ctx.Err() == nil {
				a.log.Warn("users.info failed", "user", id, "err", err)
			}
			return "", err
		}
		return displayName(u), nil
	})
}
