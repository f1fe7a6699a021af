package jira

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestUserCache(t *testing.T) {
	now := testNow
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	c := newUserCache(time.Hour, 4, clock)
	ctx := t.Context()

	// Concurrent misses for one reference share one fetch.
	var fetches atomic.Int32
	release, started := make(chan struct{}), make(chan struct{}, 8)
	slow := func(context.Context, string) (string, error) {
		fetches.Add(1)
		started <- struct{}{}
		<-release
		return "Ada", nil
	}
	var wg sync.WaitGroup
	names := make([]string, 8)
	for i := range names {
		wg.Go(func() { names[i] = c.get(ctx, "accountid:A1", slow) })
	}
	<-started // the others wait for this fetch, or find its result cached
	close(release)
	wg.Wait()
	for _, n := range names {
		if n != "Ada" {
			t.Fatalf("names = %q", names)
		}
	}
	if fetches.Load() != 1 {
		t.Fatalf("%d fetches for one reference, want 1", fetches.Load())
	}

	count := func(name string, err error) func(context.Context, string) (string, error) {
		return func(context.Context, string) (string, error) { fetches.Add(1); return name, err }
	}
	// Cached until the TTL passes.
	fetches.Store(0)
	if c.get(ctx, "accountid:A1", count("Ada L.", nil)) != "Ada" || fetches.Load() != 0 {
		t.Fatal("a cached name was fetched again")
	}
	advance(time.Hour + time.Second)
	if c.get(ctx, "accountid:A1", count("Ada L.", nil)) != "Ada L." || fetches.Load() != 1 {
		t.Fatal("an expired name was not fetched again")
	}

	// Names learned from payloads need no fetch.
	c.put("jdoe", "John Doe")
	c.put("", "ignored")
	if c.get(ctx, "jdoe", count("x", nil)) != "John Doe" || fetches.Load() != 1 {
		t.Fatal("a name from a payload was fetched")
	}

	// Failures are remembered for negativeTTL.
	fetches.Store(0)
	boom := count("", errors.New("boom"))
	c.get(ctx, "accountid:B2", boom)
	c.get(ctx, "accountid:B2", boom)
	if fetches.Load() != 1 {
		t.Fatalf("%d fetches after a failure, want 1", fetches.Load())
	}
	advance(negativeTTL + time.Second)
	c.get(ctx, "accountid:B2", boom)
	if fetches.Load() != 2 {
		t.Fatal("a failure was remembered past negativeTTL")
	}

	// A fetch cut short by the caller's deadline is not remembered.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	c.get(cctx, "accountid:C3", func(ctx context.Context, _ string) (string, error) { return "", ctx.Err() })
	if c.get(ctx, "accountid:C3", count("Grace", nil)) != "Grace" {
		t.Fatal("a cancelled lookup was cached")
	}

	// The cache stays within its size.
	for _, id := range []string{"u4", "u5", "u6", "u7", "u8"} {
		c.get(ctx, id, count(id, nil))
	}
	c.mu.Lock()
	n := len(c.m)
	c.mu.Unlock()
	if n > 4 {
		t.Fatalf("cache holds %d entries, max 4", n)
	}
}

func TestMentionRef(t *testing.T) {
	for in, want := range map[string]string{
		"accountid:5b10": "accountid:5b10",
		"AccountId:5b10": "accountid:5b10",
		"jdoe":           "jdoe",
		"accountid:":     "accountid:",
	} {
		if got := mentionRef(in); got != want {
			t.Errorf("mentionRef(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIdentityMatchesUsers(t *testing.T) {
	cloud := identity{AccountID: "A1"}
	dc := identity{Name: "switchboard", Key: "JIRAUSER10100"}
	for _, tc := range []struct {
		id   identity
		u    *user
		want bool
	}{
		{cloud, &user{AccountID: "A1"}, true},
		{cloud, &user{AccountID: "A2", Name: "A1"}, false},
		{cloud, &user{Name: "switchboard"}, false},
		{dc, &user{Key: "JIRAUSER10100", Name: "renamed"}, true},
		{dc, &user{Name: "Switchboard"}, true},
		{dc, &user{Key: "JIRAUSER1", Name: "switchboard"}, false},
		{dc, nil, false},
		{identity{}, &user{}, false},
	} {
		if got := tc.id.is(tc.u); got != tc.want {
			t.Errorf("%+v.is(%+v) = %v, want %v", tc.id, tc.u, got, tc.want)
		}
	}
}
