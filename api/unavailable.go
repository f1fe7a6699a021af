package api

import (
	"net/http"
	"strconv"
	"sync"
	"time"
)

// When the store cannot write (store.ErrUnavailable: disk full, read-only,
// connection lost), requests are answered 503 with Retry-After, /readyz
// reports the server not ready, and the failure is logged once per
// unavailableLogEvery rather than once per request.
const (
	// unavailableRetryAfter is the Retry-After of a 503 for an unavailable
	// store.
	unavailableRetryAfter = 5 * time.Second
	// unavailableLogEvery is the least time between two log lines about an
	// unavailable store; the requests that failed in between are counted
	// in the next line.
	unavailableLogEvery = 10 * time.Second
	// unavailableReadyFor is how long /readyz reports not ready after a
	// store write failed unavailable, unless a write succeeds before.
	unavailableReadyFor = 10 * time.Second
)

// writeHealth follows whether the store's writes fail unavailable, for
// /readyz and the logging of such failures. It is safe for concurrent use.
type writeHealth struct {
	mu sync.Mutex
	// failing: the last write that reached the store failed unavailable.
	failing  bool
	lastFail time.Time // when it failed
	lastErr  error     // and why
	// logged is when the last line about an unavailable store was logged;
	// suppressed counts the failures since that were not logged.
	logged     time.Time
	suppressed int
}

// failed records a write that failed unavailable at now with err. It
// reports whether the failure should be logged and, if so, how many
// failures since the last line were not.
func (h *writeHealth) failed(now time.Time, err error) (logIt bool, suppressed int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failing, h.lastFail, h.lastErr = true, now, err
	if !h.logged.IsZero() && now.Sub(h.logged) < unavailableLogEvery {
		h.suppressed++
		return false, 0
	}
	suppressed, h.suppressed, h.logged = h.suppressed, 0, now
	return true, suppressed
}

// succeeded records a write that succeeded. recovered reports whether
// writes had been failing, and suppressed how many failures since the last
// log line were not logged.
func (h *writeHealth) succeeded() (recovered bool, suppressed int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.failing {
		return false, 0
	}
	recovered, suppressed = true, h.suppressed
	h.failing, h.lastErr, h.suppressed, h.logged = false, nil, 0, time.Time{}
	return recovered, suppressed
}

// unready returns why the server is not ready at now, or nil: the last
// write failed unavailable less than unavailableReadyFor ago.
func (h *writeHealth) unready(now time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failing && now.Sub(h.lastFail) < unavailableReadyFor {
		return h.lastErr
	}
	return nil
}

// storeUnavailable reports err, which wraps store.ErrUnavailable, to the
// client as 503 with Retry-After, and logs it unless another such failure
// was logged less than unavailableLogEvery ago.
func (s *Server) storeUnavailable(w http.ResponseWriter, r *http.Request, err error) *apiError {
	if logIt, suppressed := s.health.failed(s.now(), err); logIt {
		s.logger.ErrorContext(r.Context(), "api: the store cannot write; requests are answered 503 until it can",
			"method", r.Method, "path", r.URL.Path, "err", err, "suppressed", suppressed)
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(unavailableRetryAfter/time.Second)))
	return errorf(http.StatusServiceUnavailable, codeUnavailable,
		"the store cannot write now (disk full, read-only or unreachable); retry in a few seconds")
}

// watchWrites is middleware that records, for /readyz, that the store
// wrote: a request other than GET or HEAD that succeeded (2xx).
func (s *Server) watchWrites(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if status := sw.status; status != 0 && (status < 200 || status > 299) {
			return
		}
		if recovered, suppressed := s.health.succeeded(); recovered {
			s.logger.InfoContext(r.Context(), "api: the store writes again", "suppressed", suppressed)
		}
	})
}
