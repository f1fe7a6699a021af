package api

import (
	"context"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/switchboardhq/switchboard/internal/ids"
	"github.com/switchboardhq/switchboard/store"
)

// Session listing and metadata limits.
const (
	defaultListLimit = 50
	maxListLimit     = 500
	maxMetadataKeys  = 64
	maxMetadataKey   = 128
	maxMetadataValue = 4096
)

// NewSessionID returns a new session id, "ses_" and the hex of a UUIDv7, so
// that ids sort by creation time.
func NewSessionID() string { return ids.New("ses") }

// sessionJSON is a session as the API shows it.
func sessionJSON(s store.Session) store.Session {
	if s.Metadata == nil {
		s.Metadata = map[string]string{}
	}
	s.CreatedAt = s.CreatedAt.UTC()
	s.UpdatedAt = s.UpdatedAt.UTC()
	return s
}

// createSession serves POST /v3/sessions: an optional body
// {"metadata": {"key": "value"}}; 201 with the new session.
func (s *Server) createSession(w http.ResponseWriter, r *http.Request) {
	body, err := s.readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req struct {
		Metadata map[string]string `json:"metadata"`
	}
	if len(body) > 0 {
		if err := decodeJSON(body, &req, "metadata"); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if err := checkMetadata(req.Metadata); err != nil {
		s.writeError(w, r, err)
		return
	}
	id := NewSessionID()
	sess, _, err := s.store.CreateSession(r.Context(), id, req.Metadata)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v3/sessions/"+id)
	writeJSON(w, http.StatusCreated, sessionJSON(sess))
}

func checkMetadata(md map[string]string) error {
	if len(md) > maxMetadataKeys {
		return badRequest("metadata has %d keys, more than %d", len(md), maxMetadataKeys)
	}
	for k, v := range md {
		switch {
		case k == "" || len(k) > maxMetadataKey:
			return badRequest("metadata key %q must be 1 to %d bytes", k, maxMetadataKey)
		case len(v) > maxMetadataValue:
			return badRequest("metadata.%s is longer than %d bytes", k, maxMetadataValue)
		case !utf8.ValidString(k) || !utf8.ValidString(v):
			return badRequest("metadata must be valid UTF-8")
		}
	}
	return nil
}

// getSession serves GET /v3/sessions/{id}.
func (s *Server) getSession(w http.ResponseWriter, r *http.Request) {
	sess, err := s.store.Session(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sessionJSON(sess))
}

// listSessions serves GET /v3/sessions?after=ID&limit=N: sessions in id
// (creation) order after the cursor, with next_after set to the cursor of the
// next page while there is one; with order=newest, newest first before the
// cursor before=, with next_before.
func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := intParam(q.Get("limit"), "limit", defaultListLimit, 1, maxListLimit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	f := sessionFilter{state: store.State(q.Get("state")), route: q.Get("route"), source: q.Get("source")}
	if f.state != "" && !f.state.Valid() {
		s.writeError(w, r, badRequest("state must be %q or %q, not %q", store.Idle, store.Running, f.state))
		return
	}
	// Oldest first pages forward with after=; newest first backward with
	// before= (session ids sort by creation time).
	list, cursor := s.store.ListSessions, q.Get("after")
	switch order := q.Get("order"); {
	case order == "newest":
		if cursor != "" {
			s.writeError(w, r, badRequest("order=newest pages with before=, not after="))
			return
		}
		list, cursor = s.store.ListSessionsBefore, q.Get("before")
	case order != "" && order != "oldest":
		s.writeError(w, r, badRequest("order must be oldest or newest, not %q", order))
		return
	case q.Get("before") != "":
		s.writeError(w, r, badRequest("before= pages with order=newest; oldest first pages with after="))
		return
	}
	var (
		sessions []store.Session
		next     string
	)
	if f != (sessionFilter{}) {
		sessions, next, err = s.findSessions(r.Context(), f, list, cursor, limit)
	} else {
		// One more than asked for tells whether there is a next page.
		var all []store.Session
		all, err = list(r.Context(), cursor, limit+1)
		sessions, next = page(all, limit, func(s store.Session) string { return s.ID })
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var resp struct {
		Sessions   []store.Session `json:"sessions"`
		NextAfter  string          `json:"next_after,omitempty"`
		NextBefore string          `json:"next_before,omitempty"`
	}
	resp.Sessions = sessions
	if q.Get("order") == "newest" {
		resp.NextBefore = next
	} else {
		resp.NextAfter = next
	}
	for i, sess := range resp.Sessions {
		resp.Sessions[i] = sessionJSON(sess)
	}
	writeJSON(w, http.StatusOK, resp)
}

// sessionFilter selects sessions by state, by the route that created them
// (metadata store.MetaRoute) and by the source of a conversation bound to
// them; empty fields select any.
type sessionFilter struct {
	state         store.State
	route, source string
}

// How many sessions one filtered listing looks at, at most: a page may
// hold fewer matches than asked (even none) and still a next_after. A
// source filter reads each session's bindings, so it looks at fewer.
const (
	sessionScanMax       = 5000
	sessionScanMaxSource = 500
	sessionScanBatch     = 500
)

// findSessions returns up to limit sessions from the cursor on that match
// f, in list's order (ListSessions or ListSessionsBefore), looking at
// sessionScanMax sessions at most, and the cursor to go on from ("" at the
// end of the sessions).
func (s *Server) findSessions(ctx context.Context, f sessionFilter, list func(context.Context, string, int) ([]store.Session, error), after string, limit int) ([]store.Session, string, error) {
	scanMax := sessionScanMax
	if f.source != "" {
		scanMax = sessionScanMaxSource
	}
	out := []store.Session{}
	for scanned := 0; scanned < scanMax; {
		n := min(sessionScanBatch, scanMax-scanned)
		batch, err := list(ctx, after, n)
		if err != nil {
			return nil, "", err
		}
		for _, sess := range batch {
			scanned++
			after = sess.ID
			ok, err := s.matches(ctx, f, &sess)
			if err != nil {
				return nil, "", err
			}
			if ok {
				out = append(out, sess)
				if len(out) == limit {
					return out, after, nil
				}
			}
		}
		if len(batch) < n {
			return out, "", nil // the end
		}
	}
	return out, after, nil
}

// matches reports whether sess matches f.
func (s *Server) matches(ctx context.Context, f sessionFilter, sess *store.Session) (bool, error) {
	if (f.state != "" && sess.State != f.state) || (f.route != "" && sess.Metadata[store.MetaRoute] != f.route) {
		return false, nil
	}
	if f.source == "" {
		return true, nil
	}
	if s.bindings == nil {
		return false, nil // no router: nothing is bound
	}
	bs, err := s.bindings.SessionBindings(ctx, sess.ID)
	if err != nil {
		return false, err
	}
	for _, b := range bs {
		if b.Conversation.Source == f.source {
			return true, nil
		}
	}
	return false, nil
}

// page trims list, read with a limit of limit+1, to one page of at most
// limit items. next is the id of the page's last item when list held more,
// else "". The page is never nil, so that it encodes as [] and not null.
func page[T any](list []T, limit int, id func(T) string) (items []T, next string) {
	if len(list) > limit {
		return list[:limit], id(list[limit-1])
	}
	if list == nil {
		return []T{}, ""
	}
	return list, ""
}

// intParam parses the query parameter name, def when empty, which must lie
// in [lo, hi].
func intParam(v, name string, def, lo, hi int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, badRequest("%s must be a whole number from %d to %d, not %q", name, lo, hi, v)
	}
	return n, nil
}
