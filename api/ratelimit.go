package api

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/switchboardhq/switchboard/internal/httpx"
)

// pruneEvery is how many new buckets a rateLimiter creates between sweeps
// of the buckets that have filled up again.
const pruneEvery = 1024

// rateLimiter holds one token bucket per authenticated token. It is safe for
// concurrent use. A nil *rateLimiter limits nothing.
//
// Session tokens make a key per session, so buckets are not kept forever:
// every pruneEvery new buckets, those whose bucket is full again are
// dropped, since a full bucket behaves exactly like the new one that
// replaces it on the key's next request.
type rateLimiter struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	buckets sync.Map      // principal.key → *rate.Limiter
	misses  atomic.Uint64 // lookups that found no bucket, to pace the sweeps
}

// newRateLimiter returns a limiter allowing perSecond requests per token with
// the given burst, or nil (no limit) when perSecond is negative.
func newRateLimiter(perSecond float64, burst int, now func() time.Time) *rateLimiter {
	if perSecond < 0 {
		return nil
	}
	return &rateLimiter{limit: rate.Limit(perSecond), burst: burst, now: now}
}

// allow takes one request from key's bucket. When the bucket is empty it
// takes nothing and returns how long until a request would be allowed.
func (l *rateLimiter) allow(key string) (ok bool, retryAfter time.Duration) {
	now := l.now()
	for {
		lim := l.bucket(key, now)
		res := lim.ReserveN(now, 1)
		if !res.OK() {
			return false, time.Minute // burst < 1: never allowed
		}
		if d := res.DelayFrom(now); d > 0 {
			res.CancelAt(now)
			return false, d
		}
		// A sweep may have dropped the bucket, as full, before the token
		// was taken from it: take it again from the key's new bucket.
		if cur, _ := l.buckets.Load(key); cur == lim {
			return true, 0
		}
	}
}

// bucket returns key's bucket, creating it when there is none; every
// pruneEvery creations it first sweeps out the buckets full again at now.
func (l *rateLimiter) bucket(key string, now time.Time) *rate.Limiter {
	if b, ok := l.buckets.Load(key); ok {
		return b.(*rate.Limiter)
	}
	if l.misses.Add(1)%pruneEvery == 0 {
		l.prune(now)
	}
	b, _ := l.buckets.LoadOrStore(key, rate.NewLimiter(l.limit, l.burst))
	return b.(*rate.Limiter)
}

// prune drops the buckets that are full at now.
func (l *rateLimiter) prune(now time.Time) {
	full := float64(l.burst)
	l.buckets.Range(func(k, v any) bool {
		if lim := v.(*rate.Limiter); lim.TokensAt(now) >= full {
			l.buckets.CompareAndDelete(k, lim)
		}
		return true
	})
}

// middleware is HTTP middleware that runs after authenticate and answers 429
// with Retry-After (whole seconds, at least 1) when the caller's token has
// used up its rate. Requests without a principal pass.
func (l *rateLimiter) middleware(next http.Handler) http.Handler {
	if l == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := principalFrom(r.Context())
		if p == nil {
			next.ServeHTTP(w, r)
			return
		}
		if ok, wait := l.allow(p.key); !ok {
			secs := max(1, int(math.Ceil(wait.Seconds())))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			writeRaw(w, http.StatusTooManyRequests, httpx.ErrorBody(codeRateLimited,
				"token "+strconv.Quote(p.name)+" is over its rate limit of "+
					strconv.FormatFloat(float64(l.limit), 'g', -1, 64)+" requests per second; retry after "+
					strconv.Itoa(secs)+"s"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
