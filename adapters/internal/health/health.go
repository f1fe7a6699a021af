// Package health tracks, for a channel adapter, which of its credentials
// the channel currently rejects (a revoked token, a wrong key) or cannot
// be used (the server is unreachable), for the adapter's readiness check,
// its healthy gauge and its logs.
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
	bad   map[string]string // credential → what Err reports of it, after the prefix
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
	if t.record(cred, cred+" rejected: "+why) {
		t.logFirst(cred, "rejected the credentials", "rejected a credential", why)
	}
}

// Fail records that cred cannot be used for a reason that is not only the
// channel rejecting it (its server is unreachable, a login failed for a
// reason the adapter tells apart). what is the whole statement, what failed
// and how to fix it ("IMAP login to imap.example.com:993 failed: …; check
// email.imap.password"): Err reports it as "<prefix>: <what>". It counts
// as a rejection for the gauge, and Accept clears it.
func (t *Tracker) Fail(cred, what string) {
	if t.record(cred, what) {
		t.logFirst(cred, "cannot use the credentials", "cannot use a credential", what)
	}
}

// record keeps what as what is wrong with cred and reports whether cred
// was fine before.
func (t *Tracker) record(cred, what string) (first bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, was := t.bad[cred]
	t.bad[cred] = what
	if !slices.Contains(t.creds, cred) {
		t.creds = append(t.creds, cred)
	}
	t.g.Set(0)
	return !was
}

// logFirst logs the first problem with cred.
func (t *Tracker) logFirst(cred, single, several, reason string) {
	t.mu.Lock()
	one := len(t.creds) == 1
	t.mu.Unlock()
	if one {
		t.log.Error(t.prefix+" "+single+"; the adapter is unhealthy", "reason", reason)
		return
	}
	t.log.Error(t.prefix+" "+several+"; the adapter is unhealthy", "credential", cred, "reason", reason)
}

// Accept records that the channel accepted cred, clearing an earlier
// rejection.
func (t *Tracker) Accept(cred string) {
	t.mu.Lock()
	_, was := t.bad[cred]
	delete(t.bad, cred)
	if len(t.bad) == 0 {
		t.g.Set(1)
	}
	single := len(t.creds) == 1
	t.mu.Unlock()
	switch {
	case !was:
	case single:
		t.log.Info(t.prefix + " accepts the credentials again")
	default:
		t.log.Info(t.prefix+" accepts the credential again", "credential", cred)
	}
}

// Err returns nil while every credential is accepted, else one error per
// rejected credential, "<prefix>: <credential> rejected: <why>" (or
// "<prefix>: <what>" after Fail), joined in the order of New's creds.
func (t *Tracker) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	for _, cred := range t.creds {
		if what, ok := t.bad[cred]; ok {
			errs = append(errs, fmt.Errorf("%s: %s", t.prefix, what))
		}
	}
	return errors.Join(errs...)
}
