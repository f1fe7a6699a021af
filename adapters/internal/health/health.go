// Package health tracks, for a channel adapter, which of its credentials
// the channel currently rejects (a revoked token, a wrong key), for the
// adapter's readiness check, its healthy gauge and its logs.
package health

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Tracker remembers why each rejected credential was rejected. It is safe
// for concurrent use; the zero Tracker is not usable, call New.
type Tracker struct {
	prefix string
	g      prometheus.Gauge
	log    *slog.Logger

	mu    sync.Mutex
	creds []string          // in the order Err reports them
	bad   map[string]string // credential → why it was rejected
}

// New returns a tracker with every credential accepted, and sets g to 1.
// prefix names the channel in errors and logs ("slack"); creds names the
// credentials in the order Err reports them. g is set to 0 while any
// credential is rejected and to 1 otherwise; log gets an error the first
// time a credential is rejected and a notice when it is accepted again.
// With a single credential the logs speak of "the credentials".
func New(prefix string, creds []string, g prometheus.Gauge, log *slog.Logger) *Tracker {
	g.Set(1)
	return &Tracker{prefix: prefix, g: g, log: log, creds: slices.Clone(creds), bad: map[string]string{}}
}

// Reject records that the channel rejected cred, and why. A credential not
// given to New is reported after those that were.
func (t *Tracker) Reject(cred, why string) {
	t.mu.Lock()
	first := t.bad[cred] == ""
	t.bad[cred] = why
	if !slices.Contains(t.creds, cred) {
		t.creds = append(t.creds, cred)
	}
	single := len(t.creds) == 1
	t.g.Set(0)
	t.mu.Unlock()
	switch {
	case !first:
	case single:
		t.log.Error(t.prefix+" rejected the credentials; the adapter is unhealthy", "reason", why)
	default:
		t.log.Error(t.prefix+" rejected a credential; the adapter is unhealthy", "credential", cred, "reason", why)
	}
}

// Accept records that the channel accepted cred, clearing an earlier
// rejection.
func (t *Tracker) Accept(cred string) {
	t.mu.Lock()
	was := t.bad[cred]
	delete(t.bad, cred)
	if len(t.bad) == 0 {
		t.g.Set(1)
	}
	single := len(t.creds) == 1
	t.mu.Unlock()
	switch {
	case was == "":
	case single:
		t.log.Info(t.prefix + " accepts the credentials again")
	default:
		t.log.Info(t.prefix+" accepts the credential again", "credential", cred)
	}
}

// Err returns nil while every credential is accepted, else one error per
// rejected credential, "<prefix>: <credential> rejected: <why>", joined in
// the order of New's creds.
func (t *Tracker) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	for _, cred := range t.creds {
		if why := t.bad[cred]; why != "" {
			errs = append(errs, fmt.Errorf("%s: %s rejected: %s", t.prefix, cred, why))
		}
	}
	return errors.Join(errs...)
}
