// Package hook holds what the channel adapters' webhook handlers and
// delivery code share: reading a bounded request body, the HTTP status of a
// processing failure, and the metric labels of an ingested message and of a
// failed post. Verifying a request stays with each channel.
package hook

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/adapters"
)

// ReadBody reads r's body, at most max bytes, and reports whether it could.
// When it cannot, it has answered the request: 413 "<prefix>: request body
// too large" (and counted reason "too_large" on rejected) for a body over
// max, 400 "<prefix>: reading the request body failed" otherwise.
func ReadBody(w http.ResponseWriter, r *http.Request, max int64, prefix string, rejected *prometheus.CounterVec) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			rejected.WithLabelValues("too_large").Inc()
			http.Error(w, prefix+": request body too large", http.StatusRequestEntityTooLarge)
			return nil, false
		}
		http.Error(w, prefix+": reading the request body failed", http.StatusBadRequest)
		return nil, false
	}
	return body, true
}

// StatusError is a processing failure with the HTTP status to answer it
// with.
type StatusError struct {
	Code int
	Err  error
}

func (e *StatusError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *StatusError) Unwrap() error { return e.Err }

// Errorf returns a *StatusError with code and the error
// fmt.Errorf(format, args...).
func Errorf(code int, format string, args ...any) error {
	return &StatusError{Code: code, Err: fmt.Errorf(format, args...)}
}

// Code returns the HTTP status for err: the Code of the first *StatusError
// in its chain, else 500.
func Code(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return http.StatusInternalServerError
}

// The outcome labels Outcome returns.
const (
	Ingested  = "ingested"  // stored in a session
	Duplicate = "duplicate" // already stored (a redelivery)
	Dropped   = "dropped"   // the router matched no session
)

// Outcome returns the outcome label of a message the router took:
// Duplicate, Dropped or Ingested.
func Outcome(out adapters.Outcome) string {
	switch {
	case out.Duplicate:
		return Duplicate
	case out.Dropped != "":
		return Dropped
	}
	return Ingested
}

// PostResult returns the result label of a failed post: "rate_limited" for
// an *adapters.BackOff, "permanent" for adapters.ErrPermanent, "error"
// otherwise.
func PostResult(err error) string {
	var bo *adapters.BackOff
	switch {
	case errors.As(err, &bo):
		return "rate_limited"
	case errors.Is(err, adapters.ErrPermanent):
		return "permanent"
	}
	return "error"
}
