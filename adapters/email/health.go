package email

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// The adapter's health (Check, /readyz) is made of:
//
//   - the IMAP login: the watcher's last attempt to connect and log in;
//   - the SMTP login: the last send's connection and authentication;
//   - the watcher's loop: it must have run (logged in, fetched, come back
//     from IDLE or a poll) within watcherBound, or it is stuck;
//
// and, for the logs and metrics, when the last mail was seen.

// The connections whose health the tracker follows.
const (
	credIMAP = "imap"
	credSMTP = "smtp"
)

// Results of an IMAP login, the values of the result label of
// switchboard_email_imap_logins_total.
const (
	loginOK          = "ok"
	loginRejected    = "rejected"    // the server refused the username or password
	loginUnreachable = "unreachable" // no connection, TLS or greeting
)

// Results of a send, the values of the result label of
// switchboard_email_smtp_sends_total.
const (
	sendOK          = "ok"
	sendRejected    = "rejected"    // the server refused the username or password
	sendUnreachable = "unreachable" // no connection, TLS or greeting
	sendPermanent   = "permanent"   // the server refused the message (5xx)
	sendError       = "error"       // a transient refusal (4xx) or a connection lost while sending
)

// metrics are the adapter's Prometheus metrics.
type metrics struct {
	skipped  *prometheus.CounterVec
	logins   *prometheus.CounterVec
	sends    *prometheus.CounterVec
	healthy  prometheus.Gauge
	lastMail prometheus.Gauge
	alive    prometheus.GaugeFunc
}

// newMetrics builds the metrics and registers them on reg (when not nil);
// alive is the value of switchboard_email_idle_alive.
func newMetrics(reg prometheus.Registerer, alive func() float64) (*metrics, error) {
	m := &metrics{
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_email_skipped_total",
			Help: "Mail the watcher passed over and left unread, by reason (too_large, unreadable, refused: the router or the store cannot take it).",
		}, []string{"reason"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_email_imap_logins_total",
			Help: "IMAP logins of the watcher, by result (ok, rejected, unreachable).",
		}, []string{"result"}),
		sends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_email_smtp_sends_total",
			Help: "SMTP submissions of replies, by result (ok, rejected, unreachable, permanent, error).",
		}, []string{"result"}),
		healthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_email_healthy",
			Help: "1 unless the last IMAP login or the last SMTP send failed to connect or log in.",
		}),
		lastMail: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_email_last_mail_seen_timestamp_seconds",
			Help: "When the watcher last fetched a new message, in seconds since the epoch (0 before the first).",
		}),
		alive: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchboard_email_idle_alive",
			Help: "1 while the watcher's IDLE or poll loop has run within 2 imap.poll_interval, 0 when it is stuck or not running.",
		}, alive),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.skipped, m.logins, m.sends, m.healthy, m.lastMail, m.alive} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// watch is what the watcher last did, for Check. Its fields are written by
// Run and read by Check and the metrics.
type watch struct {
	beat     atomic.Int64 // unix nanoseconds the loop last ran; 0 before it logged in
	lastMail atomic.Int64 // unix nanoseconds a new message was last fetched; 0 before
}

// watcherBound is how long the watcher's loop may go without running
// before Check calls it stuck: it runs at least every imap.poll_interval
// (IDLE is renewed as often), so twice that leaves room for a slow fetch.
func (a *Adapter) watcherBound() time.Duration { return 2 * a.cfg.IMAP.PollInterval.D() }

// beat records that the watcher's loop ran.
func (a *Adapter) beat() { a.watch.beat.Store(a.now().UnixNano()) }

// mailSeen records that the watcher fetched a new message.
func (a *Adapter) mailSeen() {
	now := a.now()
	a.watch.lastMail.Store(now.UnixNano())
	a.metrics.lastMail.Set(float64(now.UnixNano()) / 1e9)
}

// stalled returns how long ago the watcher's loop last ran, and whether
// that is longer than watcherBound. A watcher that never logged in is not
// stalled: the IMAP login says what is wrong.
func (a *Adapter) stalled() (since time.Duration, stuck bool) {
	beat := a.watch.beat.Load()
	if beat == 0 {
		return 0, false
	}
	since = a.now().Sub(time.Unix(0, beat))
	return since, since > a.watcherBound()
}

// idleAlive is the value of switchboard_email_idle_alive.
func (a *Adapter) idleAlive() float64 {
	if _, stuck := a.stalled(); stuck || a.watch.beat.Load() == 0 {
		return 0
	}
	return 1
}

// Check reports an error while the last IMAP login or the last SMTP send
// failed to connect or log in, and while the watcher's loop has not run
// for longer than 2 imap.poll_interval, each naming what is wrong and the
// keys to check. A later successful login or send clears its error; the
// loop's clears when it runs again. It does no I/O.
func (a *Adapter) Check(context.Context) error {
	err := a.health.Err()
	if since, stuck := a.stalled(); stuck {
		seen := "none since the start"
		if n := a.watch.lastMail.Load(); n != 0 {
			seen = time.Unix(0, n).UTC().Format(time.RFC3339)
		}
		err = errors.Join(err, fmt.Errorf("email: IMAP watcher of %s on %s stuck: its IDLE/poll loop last ran %s ago (limit %s, 2 imap.poll_interval; last mail seen: %s); check the network path to the server, or restart the gateway",
			a.cfg.IMAP.Mailbox, a.cfg.IMAP.Addr, roundDuration(since), a.watcherBound(), seen))
	}
	return err
}

// imapLoggedIn records a successful IMAP login. Here and below, the health
// state is set before the metric counts it, so whoever sees the count sees
// the state that goes with it.
func (a *Adapter) imapLoggedIn() {
	a.health.Accept(credIMAP)
	a.beat()
	a.metrics.logins.WithLabelValues(loginOK).Inc()
}

// imapLoginFailed records a failed IMAP connection (during dialing, TLS or
// the greeting, login false) or login (login true), unless ctx ended.
func (a *Adapter) imapLoginFailed(ctx context.Context, login bool, err error) {
	if ctx.Err() != nil {
		return
	}
	addr := a.cfg.IMAP.Addr
	var ie *imap.Error
	if login && errors.As(err, &ie) {
		a.health.Fail(credIMAP, fmt.Sprintf("IMAP login to %s as %s failed: %s; check email.imap.username and email.imap.password",
			addr, a.cfg.IMAP.Username, imapErrorText(ie)))
		a.metrics.logins.WithLabelValues(loginRejected).Inc()
		return
	}
	a.health.Fail(credIMAP, fmt.Sprintf("IMAP server %s unreachable: %v; check email.imap.addr and email.imap.security (%s), and that the server is up",
		addr, cause(err), a.cfg.IMAP.Security))
	a.metrics.logins.WithLabelValues(loginUnreachable).Inc()
}

// imapErrorText is what the server said: "[AUTHENTICATIONFAILED]
// Authentication failed.".
func imapErrorText(e *imap.Error) string {
	text := e.Text
	if e.Code != "" {
		text = "[" + string(e.Code) + "] " + text
	}
	return strings.TrimSpace(text)
}

// sent records the outcome of a send: result, and for a failure to connect
// or log in, err. A message refused after the login leaves the SMTP login
// healthy.
func (a *Adapter) sent(result string, err error) {
	defer a.metrics.sends.WithLabelValues(result).Inc()
	addr := a.cfg.SMTP.Addr
	switch result {
	case sendRejected:
		a.health.Fail(credSMTP, fmt.Sprintf("SMTP login to %s as %s failed: %v; check email.smtp.username and email.smtp.password",
			addr, a.cfg.SMTP.Username, cause(err)))
	case sendUnreachable:
		a.health.Fail(credSMTP, fmt.Sprintf("SMTP server %s unreachable: %v; check email.smtp.addr and email.smtp.security (%s), and that the server is up",
			addr, cause(err), a.cfg.SMTP.Security))
	default:
		a.health.Accept(credSMTP)
	}
}

// cause is err without the adapter's own context ("smtp: dial: "), for
// messages that give the context themselves.
func cause(err error) error {
	if inner := errors.Unwrap(err); inner != nil {
		return inner
	}
	return err
}

// roundDuration rounds d for people: to the second from a minute up, else
// to the millisecond.
func roundDuration(d time.Duration) time.Duration {
	if d >= time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}
