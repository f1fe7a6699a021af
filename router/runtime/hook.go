package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/httpx"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/webhook"
)

// DefaultHookMaxBody caps the body of a hook request when HookConfig.MaxBody
// is 0.
const DefaultHookMaxBody = 1 << 20

// DeliverFunc hands an output of the upstream to the router: env is to be
// appended to local session sessionID as the agent's output. It returns nil
// once the output is durably committed (or was already).
type DeliverFunc func(ctx context.Context, sessionID string, env envelope.Envelope) error

// HookConfig configures a HookHandler.
type HookConfig struct {
	// Secrets are the upstream's Standard Webhooks signing secrets
	// ("whsec_…"); several while the upstream rotates its secret.
	Secrets []string
	// Sessions maps upstream sessions back to local ones.
	Sessions SessionMap
	// Deliver receives each output; the request is answered 2xx only after
	// it returned nil.
	Deliver DeliverFunc
	// MaxBody caps the request body; 0 means DefaultHookMaxBody.
	MaxBody int64
	// Logger receives failures of Deliver and of the session map; nil
	// discards them.
	Logger *slog.Logger
	// Now is the clock the signature timestamp is checked against; nil means
	// time.Now.
	Now func() time.Time
}

// HookHandler is the http.Handler for POST /hooks/sessions, where an upstream
// agent service (the http runtime's) delivers the outputs of its sessions as
// signed Events: {"id", "type", "session_id", "ts", "body"}, the body of a
// message event being the envelope.
//
// A request must carry a valid Standard Webhooks signature made with one of
// the configured secrets (else 401). Events other than "message" are
// acknowledged with 204 and ignored, and so are message events that echo
// what the gateway itself sent upstream: those whose "direction" is
// "inbound", or, when the event has no direction, whose envelope's actor is
// human. For an output, the upstream session is mapped to the local one (an
// unknown upstream session is a 404) and the envelope is handed to Deliver,
// with two changes: its conversation is the local anchor that the upstream
// named in conversation.ref as "source/ref" (the form HTTP sends), or none,
// so that the router routes it to the session's latest conversation; and its
// raw is the event exactly as received. Deliver refuses a named conversation
// that is not bound to the session (store.ErrNotBound).
//
// An output may be an edit or deletion (envelope kinds edit and delete,
// naming an earlier output of the session in refs.edits or refs.deletes,
// and partial for a stream, as the outputs API takes them): it goes where
// that output went.
//
// The answer is 204 once Deliver returned nil; errors are JSON
// {"error": {"code", "message"}} with 400 (malformed event or envelope), 401,
// 403 (the envelope names a conversation not bound to the session), 404
// (also output_not_found: an edit of an output the session does not
// have), 405, 409 (the envelope id is already used in the session for another
// message), 413, 422 (not_editable: an edit of something that is not an
// output message) or 500. Upstreams retry on failure: Deliver must be
// idempotent on the envelope id, as the store's Append is.
//
// HookHandler is safe for concurrent use.
type HookHandler struct {
	verifier *webhook.Verifier
	sessions SessionMap
	deliver  DeliverFunc
	maxBody  int64
	logger   *slog.Logger
	now      func() time.Time
}

var _ http.Handler = (*HookHandler)(nil)

// NewHookHandler checks cfg and returns the handler. It does no I/O.
func NewHookHandler(cfg HookConfig) (*HookHandler, error) {
	v, err := webhook.NewVerifier(cfg.Secrets...)
	if err != nil {
		return nil, fmt.Errorf("runtime: hook: %w", err)
	}
	if cfg.Sessions == nil {
		return nil, errors.New("runtime: hook: a session map is required")
	}
	if cfg.Deliver == nil {
		return nil, errors.New("runtime: hook: a deliver function is required")
	}
	if cfg.MaxBody < 0 {
		return nil, fmt.Errorf("runtime: hook: max body %d is negative", cfg.MaxBody)
	}
	h := &HookHandler{
		verifier: v,
		sessions: cfg.Sessions,
		deliver:  cfg.Deliver,
		maxBody:  orDefault(cfg.MaxBody, DefaultHookMaxBody),
		logger:   cfg.Logger,
		now:      cfg.Now,
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h, nil
}

// hookEvent is the part of an Event the handler reads. Direction is not (yet)
// a field of envelope.Event; upstreams that send it let echoes be recognised
// without guessing.
type hookEvent struct {
	ID        string             `json:"id"`
	Type      envelope.EventType `json:"type"`
	SessionID string             `json:"session_id"`
	Direction store.Direction    `json:"direction"`
	Body      json.RawMessage    `json:"body"`
}

// ServeHTTP handles one delivery; see HookHandler.
func (h *HookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
		return
	}
	// Refuse what the headers alone show too large, forged or replayed
	// before reading the body.
	if r.ContentLength > h.maxBody {
		writeError(w, http.StatusRequestEntityTooLarge, "payload_too_large",
			fmt.Sprintf("the body is larger than %d bytes", h.maxBody))
		return
	}
	if err := h.verifier.CheckHeaders(r.Header, h.now()); err != nil {
		writeError(w, http.StatusUnauthorized, "invalid_signature", strings.TrimPrefix(err.Error(), "webhook: "))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, "payload_too_large",
				fmt.Sprintf("the body is larger than %d bytes", h.maxBody))
			return
		}
		writeError(w, http.StatusBadRequest, "invalid_request", "cannot read the body")
		return
	}
	if err := h.verifier.Verify(r.Header, body, h.now()); err != nil {
		writeError(w, http.StatusUnauthorized, "invalid_signature", strings.TrimPrefix(err.Error(), "webhook: "))
		return
	}

	if err := envelope.CheckJSONText(body); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "the body is not valid JSON text: "+err.Error())
		return
	}
	var ev hookEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "the body is not a JSON event")
		return
	}
	if ev.Type != envelope.EventMessage || ev.Direction == store.Inbound {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if ev.SessionID == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "session_id is required")
		return
	}
	var env envelope.Envelope
	if err := json.Unmarshal(ev.Body, &env); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "body: "+jsonProblem(err))
		return
	}
	if ev.Direction == "" && env.Actor.Type == envelope.Human {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	env.Conversation = localConversation(env.Conversation.Ref)
	env.Raw = body
	if err := env.Validate(0); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_envelope", "body."+err.Error())
		return
	}

	ctx := r.Context()
	local, ok, err := h.sessions.Local(ctx, ev.SessionID)
	switch {
	case err != nil:
		h.logger.ErrorContext(ctx, "runtime: hook: look up local session", "upstream_session", ev.SessionID, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error; it has been logged")
		return
	case !ok:
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("upstream session %q is not known here", ev.SessionID))
		return
	}
	if err := h.deliver(ctx, local, env); err != nil {
		switch {
		case errors.Is(err, store.ErrNoSuchOutput):
			writeError(w, http.StatusNotFound, "output_not_found",
				strings.TrimPrefix(err.Error(), store.ErrNoSuchOutput.Error()+": ")+": an edit or deletion names an earlier output of the same session by its envelope id")
		case errors.Is(err, store.ErrNotEditable):
			writeError(w, http.StatusUnprocessableEntity, "not_editable",
				strings.TrimPrefix(err.Error(), store.ErrNotEditable.Error()+": ")+": name the output message itself")
		case errors.Is(err, store.ErrNotFound):
			writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("session %q does not exist", local))
		case errors.Is(err, store.ErrNotBound):
			writeError(w, http.StatusForbidden, "conversation_not_bound",
				strings.TrimPrefix(err.Error(), store.ErrNotBound.Error()+": ")+
					": an output goes only to its session's conversations; leave conversation.ref empty to answer the latest one")
		case errors.Is(err, store.ErrConflict):
			writeError(w, http.StatusConflict, "idempotency_conflict",
				fmt.Sprintf("envelope id %q is already used in the session for a different message", env.ID))
		default:
			h.logger.ErrorContext(ctx, "runtime: hook: deliver output", "session", local, "envelope", env.ID, "err", err)
			writeError(w, http.StatusInternalServerError, "internal", "internal error; it has been logged")
		}
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// localConversation reads the "source/ref" anchor that HTTP sends upstream
// back into a conversation; anything else is no conversation.
func localConversation(ref string) envelope.Conversation {
	source, rest, ok := strings.Cut(ref, "/")
	if !ok || source == "" || rest == "" {
		return envelope.Conversation{}
	}
	return envelope.Conversation{Source: source, Ref: rest}
}

// jsonProblem describes a decoding error without echoing the input.
func jsonProblem(err error) string {
	var ve *envelope.ValidationError
	if errors.As(err, &ve) {
		return ve.Error()
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%s has the wrong type", te.Field)
	}
	return "is not a JSON envelope"
}

// writeError writes {"error": {"code", "message"}} with status, as every
// Switchboard endpoint does.
var writeError = httpx.WriteError
