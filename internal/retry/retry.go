// Package retry is the one backoff of the module. Backoff, a capped
// exponential backoff, paces the long-running loops: the channel adapters'
// identity checks at start and reconnects (Socket Mode, IMAP), the router's
// store retries, the Postgres store's append retries and listener
// reconnects, and the client's Stream. Jitter (and JitterAt) is the jittered schedule of
// retries that many callers make at once: the router's outbox and webhook
// retries and the http runtime's requests. Sleep is the context-aware wait
// they all share.
package retry

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Backoff is a capped exponential backoff: the first Next is Min, each
// later one doubles, up to Max. It is not safe for concurrent use.
type Backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// Next returns the next wait.
func (b *Backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = b.Min
	} else {
		b.cur = min(b.cur*2, b.Max)
	}
	return b.cur
}

// Reset starts the schedule over from Min.
func (b *Backoff) Reset() { b.cur = 0 }

// Sleep waits d or until ctx ends, and reports whether d elapsed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Wait is Sleep for callers that want an error: nil when d elapsed, else
// ctx's error. Its signature suits the injectable sleep of a client under
// test.
func Wait(ctx context.Context, d time.Duration) error {
	if !Sleep(ctx, d) {
		return ctx.Err()
	}
	return nil
}

// Until calls try until it returns nil, waiting as b says between calls and
// logging each failure as what. It reports whether try succeeded; false
// means ctx ended first.
func Until(ctx context.Context, b *Backoff, log *slog.Logger, what string, try func() error) bool {
	for {
		err := try()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		wait := b.Next()
		log.Warn(what+" failed; retrying", "err", err, "in", wait)
		if !Sleep(ctx, wait) {
			return false
		}
	}
}

// Jitter is the wait before retry number attempt+1 of a durable queue: base
// doubled per attempt, capped at max, with full jitter over its upper half
// (so that retries of many items spread out). It is JitterAt with a random
// f.
func Jitter(attempt int, base, max time.Duration) time.Duration {
	return JitterAt(attempt, base, max, rand.Float64())
}

// JitterAt is Jitter with its random draw given, for callers that supply
// their own (tests that want exact waits): f in [0, 1] places the wait in
// the upper half of the step, 0 at half of it, 1 at all of it. The step is
// base doubled attempt-1 times (base for attempt 1 or less), capped at
// limit; it never overflows, however large attempt is.
func JitterAt(attempt int, base, limit time.Duration, f float64) time.Duration {
	d := base
	for i := 1; i < attempt && d > 0 && d < limit; i++ {
		if d > limit/2 {
			d = limit
			break
		}
		d *= 2
	}
	d = min(d, limit)
	half := d / 2
	return half + time.Duration(min(max(f, 0), 1)*float64(d-half))
}
