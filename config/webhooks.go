package config

import (
	"fmt"
	"net/url"
	"time"

	"github.com/switchboardhq/switchboard/webhook"
)

// Webhooks configures outbound webhook delivery.
type Webhooks struct {
	// AllowPrivate lets destinations resolve to loopback, private,
	// link-local and other non-public addresses (off by default: a
	// destination URL must not reach into the gateway's own network).
	AllowPrivate bool `yaml:"allow_private"`
	// Timeout bounds one delivery attempt, from dial to the response's
	// headers (default 10s).
	Timeout Duration `yaml:"timeout"`
	// DisableAfter disables a destination whose deliveries have failed
	// without a success for this long (default 24h), and emits a
	// delivery.failed event.
	DisableAfter Duration `yaml:"disable_after"`
	// Backoff and MaxBackoff shape the retry schedule: the wait before
	// retry n is Backoff doubled n-1 times, capped at MaxBackoff, jittered
	// over its upper half (default 5s and 1h: with the outbox's 12 attempts,
	// retries spread over about 2 to 4 hours). A receiver's Retry-After
	// overrides it.
	Backoff    Duration `yaml:"backoff"`
	MaxBackoff Duration `yaml:"max_backoff"`
	// RotationGrace is how long a rotated-out secret keeps signing beside
	// the new one (default 24h).
	RotationGrace Duration `yaml:"rotation_grace"`
	// Destinations are declared here rather than through the API; they are
	// created or updated on start, under their id.
	Destinations []WebhookDestination `yaml:"destinations"`
}

// WebhookDestination is a webhook destination declared in the file.
type WebhookDestination struct {
	// ID names the destination (letters, digits, '-' and '_').
	ID          string `yaml:"id"`
	URL         string `yaml:"url"`
	Description string `yaml:"description"`
	// Secret is the signing secret, "whsec_<base64>", usually ${VAR}. Its
	// length is checked against the Standard Webhooks bounds (24 to 64
	// random bytes, see webhook.ParseSecret), which receivers' libraries
	// share; webhook.NewSecret makes 32.
	Secret     string            `yaml:"secret"`
	EventTypes []string          `yaml:"event_types"`
	Sessions   []string          `yaml:"sessions"`
	Metadata   map[string]string `yaml:"metadata"`
}

func (w *Webhooks) defaults() {
	if w.Timeout == 0 {
		w.Timeout = Duration(10 * time.Second)
	}
	if w.DisableAfter == 0 {
		w.DisableAfter = Duration(24 * time.Hour)
	}
	if w.Backoff == 0 {
		w.Backoff = Duration(5 * time.Second)
	}
	if w.MaxBackoff == 0 {
		w.MaxBackoff = Duration(time.Hour)
	}
	if w.RotationGrace == 0 {
		w.RotationGrace = Duration(24 * time.Hour)
	}
}

// ValidWebhookID reports whether id may name a webhook destination: 1 to
// 64 letters, digits, '-' and '_' (it travels in URLs and outbox anchors).
func ValidWebhookID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ValidWebhookURL checks that u is an absolute http or https URL with a
// host.
func ValidWebhookURL(u string) error {
	p, err := url.Parse(u)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a URL", u)
	case p.Scheme != "http" && p.Scheme != "https":
		return fmt.Errorf("%q: want an http or https URL", u)
	case p.Host == "":
		return fmt.Errorf("%q has no host", u)
	case p.User != nil:
		return fmt.Errorf("%q: credentials in the URL are not allowed", u)
	}
	return nil
}

func (w *Webhooks) validate() []error {
	var errs []error
	if w.Timeout < 0 {
		errs = append(errs, fieldErr("webhooks.timeout", "must not be negative"))
	}
	if w.DisableAfter < 0 {
		errs = append(errs, fieldErr("webhooks.disable_after", "must not be negative"))
	}
	if w.Backoff < 0 || w.MaxBackoff < w.Backoff {
		errs = append(errs, fieldErr("webhooks.max_backoff", "must be at least webhooks.backoff, both positive"))
	}
	if w.RotationGrace < 0 {
		errs = append(errs, fieldErr("webhooks.rotation_grace", "must not be negative"))
	}
	ids := map[string]bool{}
	for i, d := range w.Destinations {
		key := fmt.Sprintf("webhooks.destinations[%d]", i)
		switch {
		case !ValidWebhookID(d.ID):
			errs = append(errs, fieldErr(key+".id", "%q: want 1 to 64 letters, digits, '-' or '_'", d.ID))
		case ids[d.ID]:
			errs = append(errs, fieldErr(key+".id", "%q is used by another destination", d.ID))
		}
		ids[d.ID] = true
		if err := ValidWebhookURL(d.URL); err != nil {
			errs = append(errs, fieldErr(key+".url", "%v", err))
		}
		if _, err := webhook.ParseSecret(d.Secret); err != nil {
			errs = append(errs, fieldErr(key+".secret", "%v", err))
		}
	}
	return errs
}
