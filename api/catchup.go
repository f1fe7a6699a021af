package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/config/duration"
)

// CatchUps runs the channels' catch-ups after downtime
// (adapters.CatchUpper) for POST /v3/channels/{name}/catch-up, and reports
// the last one of each channel on /readyz.
type CatchUps interface {
	// CatchUp runs channel's catch-up now and returns what it did. Its
	// error wraps ErrNoCatchUp for a channel that has none and
	// ErrCatchUpRunning when one is running already (here or on another
	// replica).
	CatchUp(ctx context.Context, channel string) (adapters.CatchUpReport, error)
	// CatchUpStatus returns the last catch-up of each channel that has
	// run one.
	CatchUpStatus() map[string]CatchUpStatus
}

// Errors of CatchUps.CatchUp.
var (
	ErrNoCatchUp      = errors.New("no catch-up for this channel")
	ErrCatchUpRunning = errors.New("a catch-up of this channel is running")
)

// CatchUpStatus is the outcome of a channel's last catch-up.
type CatchUpStatus struct {
	adapters.CatchUpReport
	// At is when it started, Took how long it ran.
	At   time.Time         `json:"at"`
	Took duration.Duration `json:"took"`
	// Trigger says what ran it: start, reconnect or request.
	Trigger string `json:"trigger"`
	// Error is why it stopped early ("" when it finished).
	Error string `json:"error,omitempty"`
}

// catchUp runs a channel's catch-up: 200 with what it did; 404 for a
// channel without one; 409 while one is running.
func (s *Server) catchUp(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	rep, err := s.catchUps.CatchUp(r.Context(), name)
	switch {
	case errors.Is(err, ErrNoCatchUp):
		s.writeError(w, r, errorf(http.StatusNotFound, codeNotFound, "channel %s has no catch-up (channels that have one: slack, github, jira, when configured)", echoID(name)))
		return
	case errors.Is(err, ErrCatchUpRunning):
		w.Header().Set("Retry-After", "60")
		s.writeError(w, r, errorf(http.StatusConflict, codeStateConflict, "a catch-up of %s is running already (on this or another replica); try again when it is done", echoID(name)))
		return
	case err != nil && r.Context().Err() == nil:
		// It ran and stopped early: what it stored stays stored.
		s.logger.WarnContext(r.Context(), "api: catch-up failed", "channel", name, "err", err)
		writeJSON(w, http.StatusBadGateway, struct {
			Channel string `json:"channel"`
			adapters.CatchUpReport
			Error string `json:"error"`
		}{name, rep, err.Error()})
		return
	case err != nil:
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Channel string `json:"channel"`
		adapters.CatchUpReport
	}{name, rep})
}
