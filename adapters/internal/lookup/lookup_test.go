package lookup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/internal/testclock"
)

func newTestCache(max int) (*Cache[string, string], *testclock.Clock) {
	clk := testclock.New(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	return New[string, string](Options{TTL: time.Hour, NegativeTTL: time.Minute, Max: max, Now: clk.Now}), clk
}

// counter returns a fetch answering name, err and the count of its calls.
func counter(name string, err error) (func(context.Context, string) (string, error), *atomic.Int32) {
	var n atomic.Int32
	return func(context.Context, string) (string, error) { n.Add(1); return name, err }, &n
}

func TestConcurrentMissesShareOneFetch(t *testing.T) {
	c, _ := newTestCache(4)
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
		wg.Go(func() { names[i] = c.Get(t.Context(), "U1", slow) })
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
		t.Fatalf("%d fetches for one key, want 1", fetches.Load())
	}
}

func TestTTL(t *testing.T) {
	c, clk := newTestCache(4)
	ctx := t.Context()
	c.Get(ctx, "U1", func(context.Context, string) (string, error) { return "Ada", nil })
	f, n := counter("Ada L.", nil)
	if c.Get(ctx, "U1", f) != "Ada" || n.Load() != 0 {
		t.Fatal("a cached value was fetched again")
	}
	clk.Advance(time.Hour + time.Second)
	if c.Get(ctx, "U1", f) != "Ada L." || n.Load() != 1 {
		t.Fatal("an expired value was not fetched again")
	}
}

func TestFailuresAreRememberedForNegativeTTL(t *testing.T) {
	c, clk := newTestCache(4)
	ctx := t.Context()
	boom, n := counter("ignored", errors.New("boom"))
	if v := c.Get(ctx, "U2", boom); v != "" {
		t.Errorf("a failed fetch gave %q", v)
	}
	c.Get(ctx, "U2", boom)
	if n.Load() != 1 {
		t.Fatalf("%d fetches after a failure, want 1", n.Load())
	}
	clk.Advance(time.Minute + time.Second)
	c.Get(ctx, "U2", boom)
	if n.Load() != 2 {
		t.Fatal("a failure was remembered past NegativeTTL")
	}

	// Without a NegativeTTL failures are not remembered.
	c2 := New[string, string](Options{TTL: time.Hour, Max: 4})
	boom2, n2 := counter("", errors.New("boom"))
	c2.Get(ctx, "U2", boom2)
	c2.Get(ctx, "U2", boom2)
	if n2.Load() != 2 {
		t.Errorf("%d fetches, want 2 with no NegativeTTL", n2.Load())
	}
}

func TestCancelledFetchIsNotRemembered(t *testing.T) {
	c, _ := newTestCache(4)
	cctx, cancel := context.WithCancel(t.Context())
	cancel()
	c.Get(cctx, "U3", func(ctx context.Context, _ string) (string, error) { return "", ctx.Err() })
	f, _ := counter("Grace", nil)
	if c.Get(t.Context(), "U3", f) != "Grace" {
		t.Fatal("a cancelled lookup was cached")
	}
}

func TestWaiterGivesUpWithItsContext(t *testing.T) {
	c, _ := newTestCache(4)
	release, started := make(chan struct{}), make(chan struct{})
	done := make(chan string)
	go func() {
		done <- c.Get(t.Context(), "U1", func(context.Context, string) (string, error) {
			close(started)
			<-release
			return "Ada", nil
		})
	}()
	<-started
	wctx, cancel := context.WithCancel(t.Context())
	cancel()
	f, n := counter("other", nil)
	if v := c.Get(wctx, "U1", f); v != "" || n.Load() != 0 {
		t.Errorf("a waiter with an ended context got %q after %d fetches", v, n.Load())
	}
	close(release)
	if v := <-done; v != "Ada" {
		t.Errorf("the fetching caller got %q", v)
	}
}

func TestPutAndGetAll(t *testing.T) {
	c, _ := newTestCache(8)
	c.Put("jdoe", "John Doe")
	f := func(_ context.Context, k string) (string, error) {
		if k == "bad" {
			return "", errors.New("boom")
		}
		return "name of " + k, nil
	}
	got := c.GetAll(t.Context(), []string{"jdoe", "a", "bad"}, f)
	want := map[string]string{"jdoe": "John Doe", "a": "name of a", "bad": ""}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("GetAll = %v, want %v", got, want)
	}
}

func TestSizeIsBounded(t *testing.T) {
	c, clk := newTestCache(4)
	ctx := t.Context()
	for i := range 10 {
		f, _ := counter("x", nil)
		c.Get(ctx, fmt.Sprint("U", i), f)
		if n := c.Len(); n > 4 {
			t.Fatalf("cache holds %d entries, max 4", n)
		}
	}
	// Expired entries go first: after the TTL, a new key finds room without
	// dropping live ones it does not need to.
	clk.Advance(2 * time.Hour)
	c.Put("fresh", "v")
	if n := c.Len(); n != 1 {
		t.Errorf("after expiry the cache holds %d entries, want 1", n)
	}
}
