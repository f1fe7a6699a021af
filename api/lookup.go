package api

import (
	"errors"
	"net/http"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// findConversation serves GET /v3/conversations?source=&ref=: the binding
// of one conversation, which names its session, or 404 when it is bound to
// none. It is one indexed lookup, so that the console can find a session
// by where it talks (a Slack thread, a GitHub issue) among any number.
func (s *Server) findConversation(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	conv := envelope.Conversation{Source: q.Get("source"), Ref: q.Get("ref")}
	switch {
	case conv.Source == "" || conv.Ref == "":
		s.writeError(w, r, badRequest("source and ref are both required, as in ?source=github&ref=acme/app%%237"))
		return
	case len(conv.Ref) > envelope.MaxConvRefLen || len(conv.Source) > envelope.MaxSourceLen:
		s.writeError(w, r, badRequest("source or ref is too long"))
		return
	}
	b, err := s.bindings.BindingFor(r.Context(), conv)
	if errors.Is(err, store.ErrNotFound) {
		s.writeError(w, r, errorf(http.StatusNotFound, codeNotFound,
			"conversation %s is not bound to any session; check the source and the ref (GET /v3/sessions/{id}/conversations lists a session's)", echoID(conv.Key())))
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}
