package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/ids"
	"github.com/switchboardhq/switchboard/store"
)

// listConversations serves GET /v3/sessions/{id}/conversations: the
// conversations bound to the session, oldest first.
func (s *Server) listConversations(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := s.store.Session(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	bs, err := s.bindings.SessionBindings(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if bs == nil {
		bs = []store.Binding{}
	}
	writeJSON(w, http.StatusOK, struct {
		Conversations []store.Binding `json:"conversations"`
	}{bs})
}

// addConversation serves POST /v3/sessions/{id}/conversations with body
// {"source": "email", "ref": "<root@example.com>"}: it binds the
// conversation to the session by hand. 201 when bound now, 200 when it was
// bound to this session already, 409 when another session has it.
func (s *Server) addConversation(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	body, err := s.readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var conv envelope.Conversation
	if err := decodeJSON(body, &conv, "source, ref"); err != nil {
		s.writeError(w, r, err)
		return
	}
	switch {
	case conv.Source == "" || conv.Ref == "":
		s.writeError(w, r, badRequest("source and ref are both required"))
		return
	case reservedSource(conv.Source):
		s.writeError(w, r, badRequest("%q is not a channel that conversations can be bound in", conv.Source))
		return
	case len(conv.Ref) > envelope.MaxConvRefLen || len(conv.Source) > envelope.MaxSourceLen:
		s.writeError(w, r, badRequest("source or ref is too long"))
		return
	}
	if _, err := s.store.Session(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	b, created, err := s.bindings.Bind(r.Context(), store.Binding{ID: ids.New("cnv"), SessionID: id, Conversation: conv}, nil)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	switch {
	case created:
		writeJSON(w, http.StatusCreated, b)
	case b.SessionID == id:
		writeJSON(w, http.StatusOK, b)
	default:
		s.writeError(w, r, errorf(http.StatusConflict, codeStateConflict, "conversation %s is bound to another session", conv.Key()))
	}
}

// resumeConversation serves POST /v3/sessions/{id}/conversations/{cid}/resume:
// it lifts a pause (the loop breaker's) at once.
func (s *Server) resumeConversation(w http.ResponseWriter, r *http.Request) {
	id, cid := r.PathValue("id"), r.PathValue("cid")
	bs, err := s.bindings.SessionBindings(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	found := false
	for _, b := range bs {
		found = found || b.ID == cid
	}
	if !found {
		s.writeError(w, r, errorf(http.StatusNotFound, codeNotFound, "session %s has no conversation %s", echoID(id), echoID(cid)))
		return
	}
	b, err := s.bindings.PauseBinding(r.Context(), cid, time.Time{}, "")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

// listDeliveries serves GET /v3/deliveries?status=pending|delivered|dead&after=&limit=.
func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	status := store.DeliveryStatus(q.Get("status"))
	switch status {
	case "", store.Pending, store.Delivered, store.Dead:
	default:
		s.writeError(w, r, badRequest("status must be pending, delivered or dead, not %q", status))
		return
	}
	limit, err := intParam(q.Get("limit"), "limit", defaultListLimit, 1, maxListLimit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	f := store.DeliveryFilter{SessionID: q.Get("session"), Status: status, To: envelope.Conversation{Source: q.Get("source"), Ref: q.Get("ref")}}
	var list []store.Delivery
	if f.SessionID == "" && f.To == (envelope.Conversation{}) {
		list, err = s.outbox.ListDeliveries(r.Context(), status, q.Get("after"), limit+1)
	} else {
		list, err = s.sessionDeliveries(r, f, q.Get("after"), limit+1)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var resp struct {
		Deliveries []store.Delivery `json:"deliveries"`
		NextAfter  string           `json:"next_after,omitempty"`
	}
	resp.Deliveries, resp.NextAfter = page(list, limit, func(d store.Delivery) string { return d.ID })
	writeJSON(w, http.StatusOK, resp)
}

// sessionDeliveries lists the deliveries of f's session, or of the session
// f.To is bound to when f names none, for listDeliveries.
func (s *Server) sessionDeliveries(r *http.Request, f store.DeliveryFilter, after string, limit int) ([]store.Delivery, error) {
	if (f.To.Source == "") != (f.To.Ref == "") {
		return nil, badRequest("source and ref go together: give both to list the deliveries to one conversation, or neither")
	}
	if f.SessionID == "" {
		if f.To.Source == store.SourceWebhook {
			return nil, badRequest("the deliveries to a webhook destination are listed per session: add session=, or use GET /v3/webhooks/{id}/deliveries")
		}
		if s.bindings == nil {
			return nil, badRequest("conversations are not available: add session=")
		}
		b, err := s.bindings.BindingFor(r.Context(), f.To)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
			return nil, errorf(http.StatusNotFound, codeNotFound,
				"conversation %s is not bound to any session; check the source and the ref, or add session=", echoID(f.To.Key()))
		}
		if err != nil {
			return nil, err
		}
		f.SessionID = b.SessionID
	}
	return s.outbox.SessionDeliveries(r.Context(), f, after, limit)
}

// listDeliveryAttempts serves GET /v3/deliveries/{id}/attempts: the
// recorded attempts of one delivery, newest first (store.Attempt says
// which are recorded).
func (s *Server) listDeliveryAttempts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := intParam(q.Get("limit"), "limit", defaultListLimit, 1, maxListLimit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	list, err := s.outbox.DeliveryAttempts(r.Context(), r.PathValue("id"), q.Get("before"), limit+1)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeAttempts(w, list, limit)
}

// writeAttempts answers 200 with a page of attempts, newest first: list is
// up to limit+1 of them, the last one there only to tell that more follow.
func writeAttempts(w http.ResponseWriter, list []store.Attempt, limit int) {
	var resp struct {
		Attempts   []store.Attempt `json:"attempts"`
		NextBefore string          `json:"next_before,omitempty"`
	}
	resp.Attempts, resp.NextBefore = page(list, limit, func(a store.Attempt) string { return a.ID })
	writeJSON(w, http.StatusOK, resp)
}

// retryDelivery serves POST /v3/deliveries/{id}/retry: the delivery is due
// again now, whatever its status.
func (s *Server) retryDelivery(w http.ResponseWriter, r *http.Request) {
	d, err := s.outbox.RetryDelivery(r.Context(), r.PathValue("id"), s.now())
	if errors.Is(err, store.ErrNotFound) {
		s.writeError(w, r, errorf(http.StatusNotFound, codeNotFound, "delivery %s does not exist", echoID(r.PathValue("id"))))
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.onRetry != nil {
		s.onRetry()
	}
	writeJSON(w, http.StatusOK, d)
}

// reservedSource reports whether source is one of the gateway's own
// conversation sources, which are never bound by hand: broadcast ("*"),
// system notices, ref-keyed session anchors ("ref:…") and the http
// runtime's upstream sessions.
func reservedSource(source string) bool {
	return source == envelope.Broadcast.Source || source == store.SourceSystem || source == store.SourceUpstream ||
		strings.HasPrefix(source, store.SourceRefPrefix)
}
