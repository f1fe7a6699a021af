package jira

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	gojira "github.com/andygrunwald/go-jira"
)

// negativeTTL is how long a failed lookup is remembered, so that a slow or
// failing user lookup does not cost every webhook its timeout.
const negativeTTL = time.Minute

// maxLookups bounds the user lookups made for one webhook.
const maxLookups = 16

// userCache remembers display names by user reference ("accountid:<id>" or a
// Data Center user name), with a TTL, and lets one lookup per reference run
// at a time. It is safe for concurrent use.
type userCache struct {
	ttl  time.Duration
	max  int
	now  func() time.Time
	mu   sync.Mutex
	m    map[string]userEntry
	busy map[string]chan struct{} // closed when the lookup of the reference ends
}

type userEntry struct {
	name    string
	expires time.Time
}

func newUserCache(ttl time.Duration, max int, now func() time.Time) *userCache {
	return &userCache{ttl: ttl, max: max, now: now, m: map[string]userEntry{}, busy: map[string]chan struct{}{}}
}

// get returns the cached name of ref, calling fetch on a miss. Concurrent
// misses for one reference wait for a single fetch (or for ctx). A failed
// fetch returns "" and is remembered for negativeTTL, unless it failed
// because ctx ended.
func (c *userCache) get(ctx context.Context, ref string, fetch func(context.Context, string) (string, error)) string {
	for {
		c.mu.Lock()
		if e, ok := c.m[ref]; ok && c.now().Before(e.expires) {
			c.mu.Unlock()
			return e.name
		}
		wait, busy := c.busy[ref]
		if !busy {
			done := make(chan struct{})
			c.busy[ref] = done
			c.mu.Unlock()
			name, err := fetch(ctx, ref)
			ttl := c.ttl
			if err != nil {
				name, ttl = "", negativeTTL
			}
			c.mu.Lock()
			if len(c.m) >= c.max {
				c.evictLocked()
			}
			if err == nil || ctx.Err() == nil {
				c.m[ref] = userEntry{name: name, expires: c.now().Add(ttl)}
			}
			delete(c.busy, ref)
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

// put records a name learned without a lookup (from a webhook payload).
func (c *userCache) put(ref, name string) {
	if ref == "" || name == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		c.evictLocked()
	}
	c.m[ref] = userEntry{name: name, expires: c.now().Add(c.ttl)}
}

// evictLocked drops expired entries and, if the cache is still full, half
// of the rest (arbitrary ones: names are cheap to fetch again).
func (c *userCache) evictLocked() {
	now := c.now()
	for k, e := range c.m {
		if !now.Before(e.expires) {
			delete(c.m, k)
		}
	}
	if len(c.m) < c.max {
		return
	}
	for k := range c.m {
		if len(c.m) <= c.max/2 {
			break
		}
		delete(c.m, k)
	}
}

// accountPrefix marks a mention reference that is a Cloud account id, as in
// the wiki markup [~accountid:5b10…].
const accountPrefix = "accountid:"

// mentionRef normalises the inside of a wiki mention ([~…]) to a cache
// reference: "accountid:<id>" for Cloud accounts, else the user name.
func mentionRef(s string) string {
	if len(s) > len(accountPrefix) && strings.EqualFold(s[:len(accountPrefix)], accountPrefix) {
		return accountPrefix + s[len(accountPrefix):]
	}
	return s
}

// userRef returns the cache reference of a user in a payload.
func userRef(u *user) string {
	switch {
	case u == nil:
		return ""
	case u.AccountID != "":
		return accountPrefix + u.AccountID
	}
	return u.Name
}

// userName resolves a mention reference to a display name through the cache
// and the REST API (GET /rest/api/2/user?accountId=… on Cloud, ?username=…
// on Data Center). It returns "" when the name is unknown.
func (a *Adapter) userName(ctx context.Context, ref string) string {
	if ref == "" {
		return ""
	}
	return a.users.get(ctx, ref, func(ctx context.Context, ref string) (string, error) {
		q := url.Values{}
		if id, ok := strings.CutPrefix(ref, accountPrefix); ok {
			q.Set("accountId", id)
		} else {
			q.Set("username", ref)
		}
		req, err := a.api.NewRequestWithContext(ctx, "GET", "rest/api/2/user?"+q.Encode(), nil)
		if err != nil {
			return "", err
		}
		var u gojira.User
		resp, err := a.api.Do(req, &u)
		if err != nil {
			err = a.classify(resp, err)
			if ctx.Err() == nil {
				a.log.Warn("user lookup failed", "user", ref, "err", err)
			}
			return "", fmt.Errorf("jira: GET user: %w", err)
		}
		if u.DisplayName == "" {
			return "", fmt.Errorf("jira: GET user %s: no displayName", ref)
		}
		return u.DisplayName, nil
	})
}
