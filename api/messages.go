package api

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/google/uuid"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// The sources and actor namespaces of envelopes made by the API.
const (
	sourceClient = envelope.SourceClient // messages sent through the Steer API
	sourceAgent  = "agent"               // outputs posted by a session's agent
)

// Limits of the read endpoints and idempotency keys.
const (
	defaultReadLimit = 100
	maxReadLimit     = 1000
	maxKeyLen        = 255
	// writeSlack is added to a long poll's wait for its write deadline.
	writeSlack = 30 * time.Second
)

// messageRequest is the body of POST /v3/sessions/{id}/messages.
type messageRequest struct {
	Text           string        `json:"text"`
	IdempotencyKey *string       `json:"idempotency_key"`
	Refs           envelope.Refs `json:"refs"`
	Conversation   *struct {
		Ref string `json:"ref"`
	} `json:"conversation"`
	Actor *actorRequest `json:"actor"`
}

const messageFields = "text, idempotency_key, refs, conversation.ref, actor.display"

// outputRequest is the body of POST /v3/sessions/{id}/outputs.
type outputRequest struct {
	// Kind is message (the default), edit (refs.edits names the output
	// whose whole text becomes Text) or delete (refs.deletes names it).
	Kind envelope.Kind `json:"kind"`
	// Partial marks a message or edit of a stream: later edits extend it,
	// and an edit without it ends the stream.
	Partial        bool                   `json:"partial"`
	Text           string                 `json:"text"`
	IdempotencyKey *string                `json:"idempotency_key"`
	Refs           envelope.Refs          `json:"refs"`
	Conversation   *envelope.Conversation `json:"conversation"`
	Actor          *actorRequest          `json:"actor"`
	// Broadcast asks the router to send the output to every conversation
	// bound to the session (its conversation is then envelope.Broadcast).
	Broadcast bool `json:"broadcast"`
	// State, if "idle", marks the agent's turn as finished.
	State store.State `json:"state"`
}

const outputFields = "kind, partial, text, idempotency_key, refs, conversation.source, conversation.ref, actor.display, broadcast, state"

type actorRequest struct {
	Display string `json:"display"`
}

// postMessage serves POST /v3/sessions/{id}/messages: it appends an inbound
// envelope from the caller to the session's log and wakes the session.
func (s *Server) postMessage(w http.ResponseWriter, r *http.Request) {
	var req messageRequest
	body, err := s.readJSON(w, r, &req, messageFields)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	key, err := idempotencyKey(r, req.IdempotencyKey)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p := principalFrom(r.Context())
	env := envelope.Envelope{
		ID:           sourceClient + ":" + key,
		Source:       sourceClient,
		Kind:         envelope.KindMessage,
		Actor:        envelope.Actor{ID: sourceClient + ":" + p.name, Type: envelope.Human},
		Conversation: envelope.Conversation{Source: sourceClient},
		Text:         req.Text,
		Refs:         req.Refs,
		TS:           s.now().UTC(),
		Raw:          body,
	}
	if req.Actor != nil {
		env.Actor.Display = req.Actor.Display
	}
	if req.Conversation != nil {
		env.Conversation.Ref = req.Conversation.Ref
	}
	s.appendEnvelope(w, r, store.AppendRequest{
		SessionID: r.PathValue("id"),
		Direction: store.Inbound,
		Envelope:  env,
		Wake:      true,
	}, nil)
}

// postOutput serves POST /v3/sessions/{id}/outputs: it appends an outbound
// envelope from the session's agent and, with "state": "idle", marks the
// session idle.
func (s *Server) postOutput(w http.ResponseWriter, r *http.Request) {
	var req outputRequest
	body, err := s.readJSON(w, r, &req, outputFields)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	key, err := idempotencyKey(r, req.IdempotencyKey)
	if err == nil && req.State != "" && req.State != store.Idle {
		err = badRequest("state must be %q (the turn is finished) or absent, not %q", store.Idle, req.State)
	}
	if err == nil {
		err = checkOutputKind(&req)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sessionID := r.PathValue("id")
	if req.Partial {
		req.Refs = req.Refs.Set(envelope.RefPartial, "true")
	}
	p := principalFrom(r.Context())
	env := envelope.Envelope{
		ID:     sourceAgent + ":" + key,
		Source: sourceAgent,
		Kind:   req.Kind,
		Actor:  envelope.Actor{ID: sourceAgent + ":" + p.name, Type: envelope.Agent},
		Text:   req.Text,
		Refs:   req.Refs,
		TS:     s.now().UTC(),
		Raw:    body,
	}
	if req.Actor != nil {
		env.Actor.Display = req.Actor.Display
	}
	if req.Conversation != nil {
		env.Conversation = *req.Conversation
	}
	if req.Broadcast {
		// Stored in the log, so the router's output routing sees it.
		env.Conversation = envelope.Broadcast
	}
	if err := s.resolveChange(r.Context(), sessionID, &env); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.appendEnvelope(w, r, store.AppendRequest{
		SessionID: sessionID,
		Direction: store.Outbound,
		Envelope:  env,
		// "state": "idle" ends the agent's turn in the same transaction.
		Rest: req.State == store.Idle,
	}, s.checkOutputConversation)
}

// checkOutputKind checks what an output request's kind asks of its other
// fields, defaulting the kind to message.
func checkOutputKind(req *outputRequest) error {
	if req.Kind == "" {
		req.Kind = envelope.KindMessage
	}
	if _, ok := req.Refs[envelope.RefPartial]; ok {
		return badRequest(`refs.%s is set by the gateway: send "partial": true instead`, envelope.RefPartial)
	}
	edits, deletes := req.Refs[envelope.RefEdits], req.Refs[envelope.RefDeletes]
	switch req.Kind {
	case envelope.KindMessage:
		if edits != "" || deletes != "" {
			return badRequest(`refs.edits and refs.deletes belong to "kind": "edit" and "kind": "delete"; a message names neither`)
		}
	case envelope.KindEdit:
		if edits == "" || deletes != "" {
			return badRequest(`an edit names the output it changes in refs.edits (its message id, like "agent:answer-1") and nothing in refs.deletes`)
		}
	case envelope.KindDelete:
		switch {
		case deletes == "" || edits != "":
			return badRequest(`a deletion names the output it withdraws in refs.deletes (its message id, like "agent:answer-1") and nothing in refs.edits`)
		case req.Partial:
			return badRequest(`a deletion cannot be partial`)
		case req.Text != "":
			return badRequest(`a deletion has no text`)
		}
	default:
		return badRequest(`kind must be "message", "edit" or "delete", not %q`, req.Kind)
	}
	if req.Kind != envelope.KindMessage && (req.Conversation != nil || req.Broadcast) {
		return badRequest("an %s goes where the output it changes went: omit conversation and broadcast", req.Kind)
	}
	return nil
}

// resolveChange checks the output an edit or deletion names and sets the
// conversation the change goes to (store.ResolveChange), with the API's
// errors.
func (s *Server) resolveChange(ctx context.Context, sessionID string, env *envelope.Envelope) error {
	field := "refs." + envelope.RefEdits
	if env.Kind == envelope.KindDelete {
		field = "refs." + envelope.RefDeletes
	}
	err := store.ResolveChange(ctx, s.log, s.bindings, sessionID, env)
	switch {
	case errors.Is(err, store.ErrNoSuchOutput):
		return errorf(http.StatusNotFound, codeOutputNotFound,
			"session %s has no output %q (%s): an %s names an earlier output of the same session by its message id", sessionID, env.Target(), field, env.Kind)
	case errors.Is(err, store.ErrNotEditable):
		return errorf(http.StatusUnprocessableEntity, codeNotEditable,
			"%s: %v; name the output message itself (the id the stream started with)", field, err)
	}
	return err
}

// checkOutputConversation refuses, with 403, an output to a conversation
// that is not bound to the session (store.CheckOutputConversation). Without
// bindings (no router) only the conversations that need none are allowed.
func (s *Server) checkOutputConversation(ctx context.Context, sessionID string, conv envelope.Conversation) error {
	bindings := s.bindings
	if bindings == nil {
		bindings = noBindings{}
	}
	err := store.CheckOutputConversation(ctx, bindings, sessionID, conv)
	if errors.Is(err, store.ErrNotBound) {
		return errorf(http.StatusForbidden, codeNotBound,
			"conversation %s is not bound to session %s: an output goes only to its session's conversations. "+
				"Omit conversation to answer the latest one, send \"broadcast\": true for all of them, "+
				"or have an admin bind it first with POST /v3/sessions/%s/conversations",
			conv.Key(), sessionID, sessionID)
	}
	return err
}

// noBindings is the empty set of bindings of a server without a router.
type noBindings struct{ store.Bindings }

func (noBindings) BindingFor(context.Context, envelope.Conversation) (store.Binding, error) {
	return store.Binding{}, store.ErrNotFound
}

// appendEnvelope validates req's envelope, appends it and writes the
// response: 202 with the new record, 200 with Idempotent-Replayed for a
// repeated key, 422 for a reused key or a text over the limit. check, when
// not nil, is called with the valid envelope before the append; its error
// is the answer.
func (s *Server) appendEnvelope(w http.ResponseWriter, r *http.Request, req store.AppendRequest, check func(ctx context.Context, sessionID string, conv envelope.Conversation) error) {
	ctx := r.Context()
	env := &req.Envelope
	if env.Text == "" && env.Kind != envelope.KindDelete {
		s.writeError(w, r, badRequest("text is required: send {\"text\": \"…\"}"))
		return
	}
	if n := len(env.Text); n > s.limits.MaxText {
		s.writeError(w, r, errorf(http.StatusUnprocessableEntity, codeTextTooLong,
			"text is %d bytes, longer than the limit of %d", n, s.limits.MaxText))
		return
	}
	if err := env.Validate(0); err != nil {
		s.writeError(w, r, badRequest("%v", err))
		return
	}
	// The store's input rules, before check looks anything up: an
	// unstorable field is a 400, an unstorable session id a 404.
	if err := store.CheckAppend(req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if check != nil {
		if err := check(ctx, req.SessionID, env.Conversation); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	res, err := s.log.Append(ctx, req)
	if errors.Is(err, store.ErrConflict) {
		s.writeError(w, r, errorf(http.StatusUnprocessableEntity, codeConflict,
			"idempotency key %q was already used in this session for a different request (text or refs differ); use a new key",
			keyOf(env.ID)))
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusAccepted
	if !res.Created {
		status = http.StatusOK
		w.Header().Set("Idempotent-Replayed", "true")
	}
	if res.Record.SessionID == "" {
		res.Record.SessionID = req.SessionID
	}
	b := make([]byte, 0, 512+len(res.Record.Envelope.Raw))
	b = append(b, `{"message":`...)
	b, err = appendRecord(b, &res.Record)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	b = append(b, `,"session":{"id":`...)
	b = appendString(b, res.Record.SessionID)
	b = append(b, `,"state":`...)
	b = appendString(b, string(res.State))
	b = append(b, "}}"...)
	writeRaw(w, status, b)
}

// keyOf returns the idempotency key of an envelope id made by the API.
func keyOf(id string) string {
	_, key, _ := strings.Cut(id, ":")
	return key
}

// readJSON reads the request body (see readBody), which must be UTF-8 as
// JSON is (RFC 8259) with no lone surrogate escape (so that raw stays
// readable by strict readers), and decodes it into v (see decodeJSON). It returns the
// body as received.
func (s *Server) readJSON(w http.ResponseWriter, r *http.Request, v any, allowed string) ([]byte, error) {
	body, err := s.readBody(w, r)
	if err != nil {
		return nil, err
	}
	if err := envelope.CheckJSONText(body); err != nil {
		if errors.Is(err, envelope.ErrLoneSurrogate) {
			return nil, badRequest("the request body is not valid JSON text: %v; escape a character outside the BMP as a surrogate pair (\\ud83d\\ude00) or send it as UTF-8", err)
		}
		return nil, badRequest("the request body is not valid UTF-8: %v", err)
	}
	return body, decodeJSON(body, v, allowed)
}

// idempotencyKey returns the request's idempotency key: the body's
// idempotency_key or the Idempotency-Key header (a bare or quoted string),
// which must agree when both are given, or a new unique key when neither is.
func idempotencyKey(r *http.Request, fromBody *string) (string, error) {
	header := strings.TrimSpace(r.Header.Get("Idempotency-Key"))
	if len(header) >= 2 && header[0] == '"' && header[len(header)-1] == '"' {
		header = header[1 : len(header)-1] // the draft's structured-field string form
	}
	key := header
	if fromBody != nil {
		if *fromBody == "" {
			return "", badRequest("idempotency_key must not be empty; leave it out to have one generated")
		}
		if header != "" && header != *fromBody {
			return "", badRequest("the Idempotency-Key header %q and the body's idempotency_key %q differ; send one, or the same in both",
				header, *fromBody)
		}
		key = *fromBody
	}
	if key == "" {
		return uuid.Must(uuid.NewV7()).String(), nil
	}
	if len(key) > maxKeyLen {
		return "", badRequest("idempotency key is %d bytes, longer than %d", len(key), maxKeyLen)
	}
	for _, c := range key {
		if unicode.IsControl(c) || c == utf8.RuneError {
			return "", badRequest("idempotency key %q holds a control character or invalid UTF-8", key)
		}
	}
	return key, nil
}

// readMessages serves GET /v3/sessions/{id}/messages?after=SEQ&limit=N&wait=D:
// up to limit records after the cursor, in order, waiting up to D (capped at
// MaxWait) for one to be appended when there are none yet. A request that
// may wait counts against the token's limit of open streams (see
// openStream).
func (s *Server) readMessages(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	q := r.URL.Query()
	after, err := seqParam(q.Get("after"), "after")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	limit, err := intParam(q.Get("limit"), "limit", defaultReadLimit, 1, maxReadLimit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	wait, err := waitParam(q.Get("wait"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	release := func() {}
	if wait > 0 {
		var ok bool
		if release, ok = s.openStream(w, r); !ok {
			return
		}
	}
	recs, err := s.poll(r.Context(), id, after, limit, wait)
	release() // the wait is over: the answer is not a stream
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if wait > 0 {
		// Outlive a server-wide WriteTimeout shorter than the wait.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(writeSlack))
	}
	size := 64
	for i := range recs {
		size += 256 + len(recs[i].Envelope.Raw) + len(recs[i].Envelope.Text)
	}
	b := make([]byte, 0, size)
	b = append(b, `{"messages":[`...)
	next := after
	for i := range recs {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = appendRecord(b, &recs[i]); err != nil {
			s.writeError(w, r, err)
			return
		}
		next = recs[i].Seq
	}
	b = append(b, `],"next_after":`...)
	b = strconv.AppendInt(b, next, 10)
	b = append(b, '}')
	writeRaw(w, http.StatusOK, b)
}

// poll reads up to limit records of session id after the cursor. When there
// are none it waits up to wait for an append, and returns what is there when
// one is signalled, when the wait ends, or when the server shuts down (then
// possibly nothing). It returns ctx's error if the client goes.
func (s *Server) poll(ctx context.Context, id string, after int64, limit int, wait time.Duration) ([]store.Record, error) {
	if wait <= 0 {
		return s.log.Read(ctx, id, after, limit)
	}
	// Subscribe before reading, so that an append between the read and the
	// wait is not missed.
	changed, cancel := s.log.Subscribe(id)
	defer cancel()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		recs, err := s.log.Read(ctx, id, after, limit)
		if err != nil || len(recs) > 0 {
			return recs, err
		}
		select {
		case <-changed:
		case <-timer.C:
			return s.log.Read(ctx, id, after, limit)
		case <-s.done:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// seqParam parses a sequence-number cursor: 0 when empty.
func seqParam(v, name string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, badRequest("%s must be a sequence number (a whole number, 0 or more), not %q", name, v)
	}
	return n, nil
}

// waitParam parses a long-poll wait, a Go duration ("30s", "1m") or a
// number of seconds ("30"), capped at MaxWait.
func waitParam(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		secs, err2 := strconv.ParseFloat(v, 64)
		if err2 != nil || secs != secs { // NaN
			return 0, badRequest("wait must be a duration such as \"30s\" or a number of seconds, not %q", v)
		}
		d = time.Duration(min(secs, MaxWait.Seconds()) * float64(time.Second))
	}
	if d < 0 {
		return 0, badRequest("wait must not be negative, not %q", v)
	}
	return min(d, MaxWait), nil
}

// appendRecord appends the JSON of rec to b:
// {"seq", "direction", "envelope", "stored_at"}, with the envelope's raw
// payload verbatim.
func appendRecord(b []byte, rec *store.Record) ([]byte, error) {
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, rec.Seq, 10)
	b = append(b, `,"direction":`...)
	b = appendString(b, string(rec.Direction))
	b = append(b, `,"envelope":`...)
	b, err := rec.Envelope.AppendJSON(b)
	if err != nil {
		return b, err
	}
	b = append(b, `,"stored_at":"`...)
	b = rec.StoredAt.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...), nil
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
