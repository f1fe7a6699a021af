package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/ids"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/webhook"
)

// WebhookOptions serve the outbound webhook endpoints (/v3/webhooks), all
// of them admin-only.
type WebhookOptions struct {
	// Store holds the destinations and their attempts.
	Store store.Webhooks
	// Replay enqueues again, for destination id, the events since a time
	// and returns how many (webhooks.Sender.Replay, then a wake of the
	// router's delivery workers). Nil: 501.
	Replay func(ctx context.Context, id string, since time.Time) (int, error)
	// RotationGrace is how long a rotated-out secret keeps signing (default
	// 24h).
	RotationGrace time.Duration
}

// eventTypes are the event types a destination may filter on.
var eventTypes = []string{string(envelope.EventMessage), string(envelope.EventSessionNew),
	string(envelope.EventSessionState), string(envelope.EventDeliveryFail)}

// webhookRequest is the body of POST /v3/webhooks and PATCH
// /v3/webhooks/{id}; in a PATCH, absent fields are left as they are.
type webhookRequest struct {
	URL         *string            `json:"url"`
	Description *string            `json:"description"`
	EventTypes  *[]string          `json:"event_types"`
	Sessions    *[]string          `json:"sessions"`
	Metadata    *map[string]string `json:"metadata"`
	// Disabled, in a PATCH, disables the destination by hand or enables it
	// again (which also clears its failing state).
	Disabled *bool `json:"disabled"`
}

const webhookFields = "url, description, event_types, sessions, metadata, disabled"

// apply copies the fields set in q onto w and validates the result.
func (q *webhookRequest) apply(w *store.Webhook) error {
	if q.URL != nil {
		w.URL = *q.URL
	}
	if q.Description != nil {
		w.Description = *q.Description
	}
	if q.EventTypes != nil {
		w.EventTypes = *q.EventTypes
	}
	if q.Sessions != nil {
		w.Sessions = *q.Sessions
	}
	if q.Metadata != nil {
		w.Metadata = *q.Metadata
	}
	if err := config.ValidWebhookURL(w.URL); err != nil {
		return badRequest("url: %v", err)
	}
	if len(w.Description) > 1024 {
		return badRequest("description: longer than 1024 bytes")
	}
	for _, t := range w.EventTypes {
		if !slices.Contains(eventTypes, t) {
			return badRequest("event_types: unknown event type %q (want one of %v)", t, eventTypes)
		}
	}
	if len(w.Sessions) > 1000 || len(w.Metadata) > 64 {
		return badRequest("too many sessions (1000 at most) or metadata keys (64 at most)")
	}
	return nil
}

// webhookNotFound is the 404 of an unknown destination.
func webhookNotFound(id string) error {
	return errorf(http.StatusNotFound, codeNotFound, "webhook %s does not exist", echoID(id))
}

func (s *Server) webhookErr(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, store.ErrNotFound) {
		err = webhookNotFound(r.PathValue("id"))
	}
	s.writeError(w, r, err)
}

// createWebhook serves POST /v3/webhooks. The response (201) carries the
// destination's signing secret, the only time it is shown.
func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request) {
	body, err := s.readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var q webhookRequest
	if err := decodeJSON(body, &q, webhookFields); err != nil {
		s.writeError(w, r, err)
		return
	}
	if q.URL == nil {
		s.writeError(w, r, badRequest("url is required"))
		return
	}
	wh := store.Webhook{ID: ids.New("wh"), Origin: "api"}
	if err := q.apply(&wh); err != nil {
		s.writeError(w, r, err)
		return
	}
	if wh.Secret, err = webhook.NewSecret(); err != nil {
		s.writeError(w, r, err)
		return
	}
	wh.Disabled = q.Disabled != nil && *q.Disabled
	if wh.Disabled {
		wh.DisabledReason = "disabled by hand"
	}
	out, err := s.webhooks.Store.CreateWebhook(r.Context(), wh)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, struct {
		store.Webhook
		Secret string `json:"secret"`
	}{out, out.Secret})
}

// listWebhooks serves GET /v3/webhooks (secrets are never listed).
func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	list, err := s.webhooks.Store.ListWebhooks(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if list == nil {
		list = []store.Webhook{}
	}
	writeJSON(w, http.StatusOK, struct {
		Webhooks []store.Webhook `json:"webhooks"`
	}{list})
}

// getWebhook serves GET /v3/webhooks/{id}.
func (s *Server) getWebhook(w http.ResponseWriter, r *http.Request) {
	wh, err := s.webhooks.Store.Webhook(r.Context(), r.PathValue("id"))
	if err != nil {
		s.webhookErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wh)
}

// patchWebhook serves PATCH /v3/webhooks/{id}: the fields given replace
// the destination's; "disabled" disables or re-enables it.
func (s *Server) patchWebhook(w http.ResponseWriter, r *http.Request) {
	body, err := s.readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var q webhookRequest
	if err := decodeJSON(body, &q, webhookFields); err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, id := r.Context(), r.PathValue("id")
	wh, err := s.webhooks.Store.Webhook(ctx, id)
	if err != nil {
		s.webhookErr(w, r, err)
		return
	}
	if err := q.apply(&wh); err != nil {
		s.writeError(w, r, err)
		return
	}
	if wh, err = s.webhooks.Store.UpdateWebhook(ctx, wh); err != nil {
		s.webhookErr(w, r, err)
		return
	}
	if q.Disabled != nil && *q.Disabled != wh.Disabled {
		reason := ""
		if *q.Disabled {
			reason = "disabled by hand"
		}
		if err := s.webhooks.Store.SetWebhookHealth(ctx, id, time.Time{}, *q.Disabled, reason); err != nil {
			s.webhookErr(w, r, err)
			return
		}
		if wh, err = s.webhooks.Store.Webhook(ctx, id); err != nil {
			s.webhookErr(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, wh)
}

// deleteWebhook serves DELETE /v3/webhooks/{id} (204). Deliveries still
// queued for it fail for good when their turn comes.
func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	if err := s.webhooks.Store.DeleteWebhook(r.Context(), r.PathValue("id")); err != nil {
		s.webhookErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// rotateWebhookSecret serves POST /v3/webhooks/{id}/rotate-secret: a new
// secret, returned once, signs from now on; the old one signs alongside it
// until previous_expires.
func (s *Server) rotateWebhookSecret(w http.ResponseWriter, r *http.Request) {
	secret, err := webhook.NewSecret()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	grace := s.webhooks.RotationGrace
	if grace <= 0 {
		grace = 24 * time.Hour
	}
	wh, err := s.webhooks.Store.RotateWebhookSecret(r.Context(), r.PathValue("id"), secret, s.now().Add(grace))
	if err != nil {
		s.webhookErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		store.Webhook
		Secret          string    `json:"secret"`
		PreviousExpires time.Time `json:"previous_expires"`
	}{wh, wh.Secret, wh.PrevExpires})
}

// listWebhookDeliveries serves GET /v3/webhooks/{id}/deliveries?before=&limit=:
// the destination's delivery attempts, newest first.
func (s *Server) listWebhookDeliveries(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := intParam(q.Get("limit"), "limit", defaultListLimit, 1, maxListLimit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, id := r.Context(), r.PathValue("id")
	if _, err := s.webhooks.Store.Webhook(ctx, id); err != nil {
		s.webhookErr(w, r, err)
		return
	}
	list, err := s.webhooks.Store.WebhookAttempts(ctx, id, q.Get("before"), limit+1)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeAttempts(w, list, limit)
}

// replayWebhook serves POST /v3/webhooks/{id}/replay?since=RFC3339: every
// event stored since then is delivered again (202 with the count).
func (s *Server) replayWebhook(w http.ResponseWriter, r *http.Request) {
	if s.webhooks.Replay == nil {
		s.writeError(w, r, errorf(http.StatusNotImplemented, codeNotImplemented, "replay is not available"))
		return
	}
	since, err := time.Parse(time.RFC3339, r.URL.Query().Get("since"))
	if err != nil {
		s.writeError(w, r, badRequest("since must be an RFC 3339 time such as 2026-06-18T12:00:00Z"))
		return
	}
	wh, err := s.webhooks.Store.Webhook(r.Context(), r.PathValue("id"))
	if err != nil {
		s.webhookErr(w, r, err)
		return
	}
	if wh.Disabled {
		s.writeError(w, r, errorf(http.StatusConflict, codeStateConflict, "webhook %q is disabled (%s); enable it first", wh.ID, wh.DisabledReason))
		return
	}
	n, err := s.webhooks.Replay(r.Context(), wh.ID, since)
	if err != nil {
		s.webhookErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, struct {
		Enqueued int `json:"enqueued"`
	}{n})
}
