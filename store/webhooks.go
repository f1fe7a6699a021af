package store

import (
	"context"
	"time"
)

// Webhook is an outbound webhook destination: where events of the
// gateway's sessions are posted, signed with its secret(s).
type Webhook struct {
	ID          string `json:"id"`
	URL         string `json:"url"`
	Description string `json:"description,omitempty"`
	// EventTypes filters the events sent ("message", "delivery.failed", …);
	// empty means every type.
	EventTypes []string `json:"event_types"`
	// Sessions filters the sessions whose events are sent; empty means all.
	Sessions []string          `json:"sessions"`
	Metadata map[string]string `json:"metadata"`
	// Secret is the current signing secret ("whsec_…"). PrevSecret, while
	// PrevExpires is in the future, signs alongside it (a rotation's grace
	// period). Neither is ever written out by the API after creation.
	Secret      string    `json:"-"`
	PrevSecret  string    `json:"-"`
	PrevExpires time.Time `json:"-"`
	// Disabled destinations get no new deliveries; DisabledReason says why
	// (410 Gone, failing for too long, by hand).
	Disabled       bool   `json:"disabled"`
	DisabledReason string `json:"disabled_reason,omitempty"`
	// FailingSince is when the current run of failed attempts began (zero
	// while deliveries succeed).
	FailingSince time.Time `json:"failing_since,omitzero"`
	// Origin is "api" or "config" (declared in the configuration file).
	Origin    string    `json:"origin"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Secrets returns the secrets that sign a delivery at now: the current one,
// then the previous one while its grace period lasts.
func (w Webhook) Secrets(now time.Time) []string {
	out := []string{w.Secret}
	if w.PrevSecret != "" && w.PrevExpires.After(now) {
		out = append(out, w.PrevSecret)
	}
	return out
}

// Attempt is one recorded attempt at a delivery: to a webhook destination
// (WebhookID set), or to a channel's conversation (WebhookID empty).
// Every webhook attempt is recorded. A channel delivery's attempts are
// recorded from its first failure on, the one that delivers it included,
// so that one that succeeds at once costs no row (its Delivery says all).
type Attempt struct {
	// ID is assigned when recorded; ids sort in record order.
	ID         string `json:"id"`
	WebhookID  string `json:"webhook_id,omitempty"`
	DeliveryID string `json:"delivery_id"`
	EventID    string `json:"event_id"`
	SessionID  string `json:"session_id"`
	Seq        int64  `json:"seq"`
	Attempt    int    `json:"attempt"`
	// StatusCode is the HTTP status, 0 when no response came (and for a
	// channel's attempt, whose Error holds what its API answered).
	StatusCode int           `json:"status_code"`
	Latency    time.Duration `json:"latency_ns"`
	// Response is the start of the response body.
	Response string    `json:"response,omitempty"`
	Error    string    `json:"error,omitempty"`
	At       time.Time `json:"at"`
}

// Webhooks stores webhook destinations and the log of delivery attempts.
type Webhooks interface {
	// CreateWebhook stores w (ID, Secret and URL required; CreatedAt and
	// UpdatedAt set when zero). ErrConflict when the id is taken.
	CreateWebhook(ctx context.Context, w Webhook) (Webhook, error)
	// Webhook returns destination id, or ErrNotFound.
	Webhook(ctx context.Context, id string) (Webhook, error)
	// ListWebhooks returns every destination, in id order.
	ListWebhooks(ctx context.Context) ([]Webhook, error)
	// UpdateWebhook replaces the descriptive fields of destination w.ID (URL,
	// Description, EventTypes, Sessions, Metadata); secrets and health are
	// left alone. ErrNotFound for an unknown id.
	UpdateWebhook(ctx context.Context, w Webhook) (Webhook, error)
	// DeleteWebhook removes destination id and its attempts. ErrNotFound for
	// an unknown id.
	DeleteWebhook(ctx context.Context, id string) error
	// RotateWebhookSecret makes secret the current secret of destination id
	// and keeps the old one signing until prevExpires (zero: drop it now).
	// ErrNotFound for an unknown id.
	RotateWebhookSecret(ctx context.Context, id, secret string, prevExpires time.Time) (Webhook, error)
	// SetWebhookHealth sets the failing-since time and the disabled flag with
	// its reason. ErrNotFound for an unknown id.
	SetWebhookHealth(ctx context.Context, id string, failingSince time.Time, disabled bool, reason string) error
	// RecordWebhookAttempt appends a to the attempts log (ID and At set when
	// empty).
	RecordWebhookAttempt(ctx context.Context, a Attempt) error
	// WebhookAttempts returns up to limit attempts of destination webhookID
	// with ids before the cursor before ("" for the newest), newest first.
	WebhookAttempts(ctx context.Context, webhookID, before string, limit int) ([]Attempt, error)
}
