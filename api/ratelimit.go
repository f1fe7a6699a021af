package api

import (
	"fmt"
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

// failureKeysMax bounds the client addresses whose failed authentications
// are counted at once.
const failureKeysMax = 16384

// rateLimiter holds one token bucket per key: per authenticated token for
// the request rate, per client address for failed authentications. It is
// safe for concurrent use. A nil *rateLimiter limits nothing.
//
// Session tokens make a key per session, so buckets are not kept forever:
// every pruneEvery new buckets, those whose bucket is full again are
// dropped, since a full bucket behaves exactly like the new one that
// replaces it on the key's next request. With maxKeys set, at most that
// many buckets are kept: while they are all held, new keys share one
// overflow bucket until a sweep makes room.
type rateLimiter struct {
	limit   rate.Limit
	burst   int
	now     func() time.Time
	maxKeys int // 0: unbounded

	buckets  sync.Map      // key → *rate.Limiter
	size     atomic.Int64  // buckets held
	misses   atomic.Uint64 // lookups that found no bucket, to pace the sweeps
	overflow *rate.Limiter // shared by new keys while maxKeys buckets are held
}

// newRateLimiter returns a limiter allowing perSecond requests per token with
// the given burst, or nil (no limit) when perSecond is negative.
func newRateLimiter(perSecond float64, burst int, now func() time.Time) *rateLimiter {
	if perSecond < 0 {
		return nil
	}
	return &rateLimiter{limit: rate.Limit(perSecond), burst: burst, now: now, overflow: rate.NewLimiter(rate.Limit(perSecond), burst)}
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
		if cur, _ := l.buckets.Load(key); cur == lim || lim == l.overflow {
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
	if l.maxKeys > 0 && l.size.Load() >= int64(l.maxKeys) {
		return l.overflow
	}
	b, loaded := l.buckets.LoadOrStore(key, rate.NewLimiter(l.limit, l.burst))
	if !loaded {
		l.size.Add(1)
	}
	return b.(*rate.Limiter)
}

// wait returns how long until key's bucket holds a token again: 0 when it
// holds one now (or l is nil). It takes nothing and creates no bucket.
func (l *rateLimiter) wait(key string) time.Duration {
	if l == nil {
		return 0
	}
	now := l.now()
	b, ok := l.buckets.Load(key)
	lim, _ := b.(*rate.Limiter)
	if !ok {
		if l.maxKeys == 0 || l.size.Load() < int64(l.maxKeys) {
			return 0
		}
		lim = l.overflow
	}
	t := lim.TokensAt(now)
	if t >= 1 {
		return 0
	}
	return time.Duration((1 - t) / float64(l.limit) * float64(time.Second))
}

// take takes a token from key's bucket, if it holds one. A nil l does
// nothing.
func (l *rateLimiter) take(key string) {
	if l != nil {
		l.allow(key)
	}
}

// prune drops the buckets that are full at now.
func (l *rateLimiter) prune(now time.Time) {
	full := float64(l.burst)
	l.buckets.Range(func(k, v any) bool {
		if lim := v.(*rate.Limiter); lim.TokensAt(now) >= full && l.buckets.CompareAndDelete(k, lim) {
			l.size.Add(-1)
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
			secs := retryAfter(w, wait)
			writeRaw(w, http.StatusTooManyRequests, httpx.ErrorBody(codeRateLimited,
				"token "+strconv.Quote(p.name)+" is over its rate limit of "+
					strconv.FormatFloat(float64(l.limit), 'g', -1, 64)+" requests per second; retry after "+
					strconv.Itoa(secs)+"s"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// retryAfter sets the Retry-After header of a 429 to wait, in whole
// seconds and at least 1, and returns the seconds.
func retryAfter(w http.ResponseWriter, wait time.Duration) int {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return secs
}

// streamSlots counts the event streams and long polls each token holds
// open, up to max. It is safe for concurrent use; a token holding none has
// no entry.
type streamSlots struct {
	max int

	mu   sync.Mutex
	open map[string]int // principal.key → streams open
}

// acquire takes one of key's slots, reporting false when all are held.
func (s *streamSlots) acquire(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[key] >= s.max {
		return false
	}
	s.open[key]++
	return true
}

// release gives back a slot acquire took.
func (s *streamSlots) release(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[key]--; s.open[key] <= 0 {
		delete(s.open, key)
	}
}

// streamRetryAfter is the Retry-After of a refused stream or long poll.
const streamRetryAfter = 5 * time.Second

// openStream admits a request that holds its connection open (an event
// stream, a long poll) for the caller's token. When the token already
// holds its limit of streams, openStream answers 429 and returns false;
// otherwise the caller must call the returned release when done. (The
// server's read deadline does not end such a request: net/http lifts it
// once the request is read. Its write deadline would: the stream and the
// long poll set their own before writing.)
func (s *Server) openStream(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	p := principalFrom(r.Context())
	if p == nil {
		return func() {}, true
	}
	if !s.streams.acquire(p.key) {
		secs := retryAfter(w, streamRetryAfter)
		writeRaw(w, http.StatusTooManyRequests, httpx.ErrorBody(codeRateLimited, fmt.Sprintf(
			"token %q already holds %d open event streams and long polls, its limit (limits.streams_per_token); "+
				"close one, or retry after %ds", p.name, s.streams.max, secs)))
		return nil, false
	}
	return func() { s.streams.release(p.key) }, true
}
