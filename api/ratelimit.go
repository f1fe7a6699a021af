package api

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// rateLimiter holds one token bucket per authenticated token. It is safe for
// concurrent use. A nil *rateLimiter limits nothing.
type rateLimiter struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	buckets sync.Map // principal.key → *rate.Limiter
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
	b, found := l.buckets.Load(key)
	if !found {
		b, _ = l.buckets.LoadOrStore(key, rate.NewLimiter(l.limit, l.burst))
	}
	lim := b.(*rate.Limiter)
	now := l.now()
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return false, time.Minute // burst < 1: never allowed
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
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
			writeRaw(w, http.StatusTooManyRequests, errorBody(codeRateLimited,
				"token "+strconv.Quote(p.name)+" is over its rate limit of "+
					strconv.FormatFloat(float64(l.limit), 'g', -1, 64)+" requests per second; retry after "+
					strconv.Itoa(secs)+"s"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
