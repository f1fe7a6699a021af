// Package retry holds the capped exponential backoff that the channel
// adapters use for their long-running loops (identity checks at start,
// reconnecting a Socket Mode or IMAP connection), the jittered Jitter
// schedule of the router's outbox and webhook retries, and the
// context-aware Sleep they all share.
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
// (so that retries of many items spread out).
func Jitter(attempt int, base, max time.Duration) time.Duration {
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	half := d / 2
	return half + rand.N(half+1)
}
