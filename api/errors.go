package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/switchboardhq/switchboard/internal/httpx"
	"github.com/switchboardhq/switchboard/store"
)

// Error codes, the "code" of an error response. Clients switch on these; the
// message is for people.
const (
	codeInvalidRequest   = "invalid_request"        // 400
	codeUnauthorized     = "unauthorized"           // 401
	codeForbidden        = "forbidden"              // 403
	codeCSRF             = "csrf_token_invalid"     // 403, console cookie without X-CSRF-Token
	codeNotBound         = "conversation_not_bound" // 403
	codeNotFound         = "not_found"              // 404
	codeOutputNotFound   = "output_not_found"       // 404
	codeMethodNotAllowed = "method_not_allowed"     // 405
	codeRequestTimeout   = "request_timeout"        // 408
	codeStateConflict    = "conflict"               // 409
	codeTooLarge         = "payload_too_large"      // 413
	codeUnsupportedMedia = "unsupported_media_type" // 415
	codeConflict         = "idempotency_conflict"   // 422
	codeTextTooLong      = "text_too_long"          // 422
	codeNotEditable      = "not_editable"           // 422
	codeRateLimited      = "rate_limited"           // 429
	codeInternal         = "internal"               // 500
	codeNotImplemented   = "not_implemented"        // 501
	codeUnavailable      = "unavailable"            // 503
)

// statusClientClosed is recorded (never seen by anyone) when the client went
// away before its request finished, after nginx's convention.
const statusClientClosed = 499

// apiError is an error with the HTTP status and code it is reported with.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *apiError {
	return errorf(http.StatusBadRequest, codeInvalidRequest, format, args...)
}

// writeJSON writes v as the JSON response body with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the server's own response types reach here; a failure is a bug.
		writeRaw(w, http.StatusInternalServerError, httpx.ErrorBody(codeInternal, "cannot encode the response"))
		return
	}
	writeRaw(w, status, b)
}

// writeRaw writes b, already JSON, as the response body with the given status.
func writeRaw(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// invalidInput is the message of an error wrapping store.ErrInvalid: what
// the store's input rules said, without the backend's context.
func invalidInput(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, store.ErrInvalid.Error()+": "); i >= 0 {
		msg = msg[i+len(store.ErrInvalid.Error())+2:]
	}
	return "the request holds what cannot be stored: " + msg
}

// writeError reports err to the client as {"error": {"code", "message"}}.
// An *apiError keeps its status and code; the store's sentinel errors map to
// their statuses (ErrInvalid, input the store's rules refuse, to 400;
// ErrUnavailable, a store that cannot write, to 503 with Retry-After, logged
// at most once per unavailableLogEvery); anything else is logged and
// reported as a 500 without its details.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
	case errors.Is(err, store.ErrNotFound):
		ae = errorf(http.StatusNotFound, codeNotFound, "session %s does not exist", echoID(r.PathValue("id")))
	case errors.Is(err, store.ErrInvalid):
		ae = badRequest("%s", invalidInput(err))
	case errors.Is(err, store.ErrClosed):
		ae = errorf(http.StatusServiceUnavailable, codeUnavailable, "the server is shutting down; retry shortly")
	case errors.Is(err, store.ErrUnavailable):
		ae = s.storeUnavailable(w, r, err)
	case r.Context().Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		// The client has gone: nobody reads this response, but the status
		// shows up in the metrics.
		w.WriteHeader(statusClientClosed)
		return
	default:
		s.logger.ErrorContext(r.Context(), "api: request failed",
			"method", r.Method, "path", r.URL.Path, "err", err)
		ae = errorf(http.StatusInternalServerError, codeInternal, "internal error; it has been logged")
	}
	if ae.Status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard"`)
	}
	writeRaw(w, ae.Status, httpx.ErrorBody(ae.Code, ae.Message))
}

// maxEchoedID bounds how much of an id from the request an error message
// quotes back.
const maxEchoedID = 64

// echoID is id quoted for an error message, cut to maxEchoedID bytes (at a
// character boundary) with "…" after it when longer, so that a huge path
// segment is not sent back.
func echoID(id string) string {
	if len(id) <= maxEchoedID {
		return strconv.Quote(id)
	}
	cut := maxEchoedID
	for cut > 0 && !utf8.RuneStart(id[cut]) {
		cut--
	}
	return strconv.Quote(id[:cut]) + "…"
}
