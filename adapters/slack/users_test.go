package slack

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

func TestUserCache(t *testing.T) {
	now := testNow
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	c := newUserCache(time.Hour, 4, clock)
	ctx := t.Context()

	// Concurrent misses for one id share one fetch.
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
		wg.Go(func() { names[i] = c.get(ctx, "U1", slow) })
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
		t.Fatalf("%d fetches for one id, want 1", fetches.Load())
	}

	count := func(name string, err error) func(context.Context, string) (string, error) {
		return func(context.Context, string) (string, error) { fetches.Add(1); return name, err }
	}
	// Cached until the TTL passes.
	fetches.Store(0)
	if c.get(ctx, "U1", count("Ada L.", nil)) != "Ada" || fetches.Load() != 0 {
		t.Fatal("a cached name was fetched again")
	}
	advance(time.Hour + time.Second)
	if c.get(ctx, "U1", count("Ada L.", nil)) != "Ada L." || fetches.Load() != 1 {
		t.Fatal("an expired name was not fetched again")
	}

	// Failures are remembered for negativeTTL.
	fetches.Store(0)
	boom := count("", errors.New("boom"))
	c.get(ctx, "U2", boom)
	c.get(ctx, "U2", boom)
	if fetches.Load() != 1 {
		t.Fatalf("%d fetches after a failure, want 1", fetches.Load())
	}
	advance(negativeTTL + time.Second)
	c.get(ctx, "U2", boom)
	if fetches.Load() != 2 {
		t.Fatal("a failure was remembered past negativeTTL")
	}

	// A fetch cut short by the caller's deadline is not remembered.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	c.get(cctx, "U3", func(ctx context.Context, _ string) (string, error) { return "", ctx.Err() })
	if c.get(ctx, "U3", count("Grace", nil)) != "Grace" {
		t.Fatal("a cancelled lookup was cached")
	}

	// The cache stays within its size.
	for _, id := range []string{"U4", "U5", "U6", "U7", "U8"} {
		c.get(ctx, id, count(id, nil))
	}
	c.mu.Lock()
	n := len(c.m)
	c.mu.Unlock()
	if n > 4 {
		t.Fatalf("cache holds %d entries, max 4", n)
	}
}

func TestDisplayName(t *testing.T) {
	for want, u := range map[string]slack.User{
		"ada":          {Name: "alovelace", Profile: slack.UserProfile{DisplayName: "ada", RealName: "Ada Lovelace"}},
		"Ada Lovelace": {Name: "alovelace", Profile: slack.UserProfile{RealName: "Ada Lovelace"}},
		"Grace":        {Name: "ghopper", RealName: "Grace"},
		"ghopper":      {Name: "ghopper"},
	} {
		if got := displayName(&u); got != want {
			t.Errorf("displayName = %q, want %q", got, want)
		}
	}
}
