// Package httpx holds small HTTP helpers shared by the gateway's clients
// and servers: the Retry-After parser, the JSON error body and the key of a
// client address for per-client limits.
package httpx

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryAfter parses a Retry-After value (RFC 9110 §10.2.3): delay seconds,
// else an HTTP date, which it returns relative to now. ok is false when v is
// empty, negative seconds or neither form. A date before now gives a negative
// duration and seconds too large for a Duration give the largest Duration:
// callers apply their own floor and cap.
func RetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	// ParseInt answers an out-of-range value with the nearest int64.
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if secs < 0 {
			return 0, false
		}
		if secs > math.MaxInt64/int64(time.Second) {
			return math.MaxInt64, true
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.Sub(now), true
	}
	return 0, false
}
