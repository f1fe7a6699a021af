// Package hook holds what the channel adapters' webhook handlers and
// delivery code share: reading a bounded request body, answering an error
// as JSON, the HTTP status of a processing failure, and the metric labels
// of an ingested message and of a failed post. Verifying a request stays
// with each channel.
package hook

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/internal/httpx"
)

// ReadBody reads r's body, at most max bytes, and reports whether it could.
// When it cannot, it has answered the request with a JSON error (see
// Error): 413 "<prefix>: request body too large" (and counted reason
// "too_large" on rejected) for a body over max, refused before reading when
// its Content-Length says so; 408 when the client did not send the body
// within the server's read deadline; 400 otherwise.
func ReadBody(w http.ResponseWriter, r *http.Request, max int64, prefix string, rejected *prometheus.CounterVec) ([]byte, bool) {
	tooLarge := func() ([]byte, bool) {
		rejected.WithLabelValues("too_large").Inc()
		Error(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("%s: request body too large (the limit is %d bytes)", prefix, max))
		return nil, false
	}
	if r.ContentLength > max {
		return tooLarge()
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var (
			mbe *http.MaxBytesError
			ne  net.Error
		)
		switch {
		case errors.As(err, &mbe):
			return tooLarge()
		case errors.As(err, &ne) && ne.Timeout():
			Error(w, http.StatusRequestTimeout, prefix+": the request body did not arrive in time; send it at once")
		default:
			Error(w, http.StatusBadRequest, prefix+": reading the request body failed")
		}
		return nil, false
	}
	return body, true
}

// Error answers a webhook request with status and the gateway's JSON error
// body, {"error": {"code", "message"}}, the code following from the
// status: invalid_request (400), invalid_signature (401), not_found (404),
// method_not_allowed (405), request_timeout (408), payload_too_large (413),
// internal (500), unavailable (503), else the status text in snake case.
func Error(w http.ResponseWriter, status int, message string) {
	httpx.WriteError(w, status, errorCode(status), message)
}

// errorCode is the error code Error sends with status.
func errorCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid_request"
	case http.StatusUnauthorized:
		return "invalid_signature"
	case http.StatusRequestEntityTooLarge:
		return "payload_too_large"
	case http.StatusInternalServerError:
		return "internal"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	return strings.ReplaceAll(strings.ToLower(http.StatusText(status)), " ", "_")
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
