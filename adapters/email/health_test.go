package email

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
	"github.com/switchboardhq/switchboard/config/duration"
	"github.com/switchboardhq/switchboard/internal/testclock"
)

// newHealthAdapter builds an adapter for mb (nil: no mailbox) with its
// metrics on a registry of its own, its state in a fresh store and now as
// its clock.
func newHealthAdapter(t *testing.T, mb *mailbox, now func() time.Time, mod func(*Config)) (*Adapter, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	a := newDepsAdapter(t, adapters.Deps{Ingress: newRecorder(), State: newTestStore(t), Registry: reg, Now: now}, func(c *Config) {
		c.Senders = []string{"example.com"}
		if mb != nil {
			c.IMAP = IMAPConfig{Addr: mb.addr, Security: Plain, Username: mb.user, Password: mb.pass,
				Backoff: duration.Duration(5 * time.Millisecond), MaxBackoff: duration.Duration(20 * time.Millisecond)}
		}
		if mod != nil {
			mod(c)
		}
	})
	return a, reg
}

// metric reads, from what reg exposes, the value of the metric name whose
// labels include those given as name/value pairs; -1 when it is absent.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

// eventually waits until cond holds, failing after 20s (a guard: cond
// normally holds within milliseconds).

// mustContain fails unless err's text contains each of subs.
func mustContain(t *testing.T, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", subs)
	}
	t.Logf("Check: %v", err)
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}

func TestCheckIMAPLogin(t *testing.T) {
	mb := newMailbox(t)
	// One failed login only (no retry within the test): Dovecot slows down
	// logins from an address after failed ones.
	a, reg := newHealthAdapter(t, mb, nil, func(c *Config) {
		c.IMAP.Password = "wrong"
		c.IMAP.Backoff = duration.Duration(time.Hour)
	})
	if err := a.Check(context.Background()); err != nil {
		t.Fatalf("Check before the first login: %v", err)
	}
	if v := metric(t, reg, "switchboard_email_healthy"); v != 1 {
		t.Errorf("switchboard_email_healthy %v before the first login, want 1", v)
	}

	// A wrong password: Check names the server, what it said and the keys.
	w := runWatcher(t, a)
	adaptertest.Eventually(t, "a rejected login counted", func() bool {
		return metric(t, reg, "switchboard_email_imap_logins_total", "result", "rejected") >= 1
	})
	err := a.Check(context.Background())
	mustContain(t, err, "email: IMAP login to "+mb.addr+" as "+mb.user+" failed: [AUTHENTICATIONFAILED]",
		"; check email.imap.username and email.imap.password")
	if v := metric(t, reg, "switchboard_email_healthy"); v != 0 {
		t.Errorf("switchboard_email_healthy %v after a rejected login, want 0", v)
	}
	if v := metric(t, reg, "switchboard_email_imap_logins_total", "result", "ok"); v != -1 {
		t.Errorf("%v ok logins with a wrong password", v)
	}
	w.stop()

	// The right password: the next login clears it.
	a.cfg.IMAP.Password = mb.pass
	runWatcher(t, a)
	adaptertest.Eventually(t, "a login counted ok", func() bool {
		return metric(t, reg, "switchboard_email_imap_logins_total", "result", "ok") == 1
	})
	if err := a.Check(context.Background()); err != nil {
		t.Errorf("Check after a good login: %v", err)
	}
	if v := metric(t, reg, "switchboard_email_healthy"); v != 1 {
		t.Errorf("switchboard_email_healthy %v after a good login, want 1", v)
	}
	if v := metric(t, reg, "switchboard_email_idle_alive"); v != 1 {
		t.Errorf("switchboard_email_idle_alive %v while watching, want 1", v)
	}
}

func TestCheckIMAPUnreachable(t *testing.T) {
	addr := closedAddr(t)
	a, reg := newHealthAdapter(t, &mailbox{addr: addr, user: "bot", pass: "pw"}, nil, nil)
	runWatcher(t, a)
	adaptertest.Eventually(t, "an unreachable login counted", func() bool {
		return metric(t, reg, "switchboard_email_imap_logins_total", "result", "unreachable") >= 1
	})
	mustContain(t, a.Check(context.Background()), "email: IMAP server "+addr+" unreachable: ",
		"connection refused", "; check email.imap.addr and email.imap.security (plain)")
}

func TestLastMailSeen(t *testing.T) {
	mb := newMailbox(t)
	t1 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clk := testclock.New(t1)
	a, reg := newHealthAdapter(t, mb, clk.Now, nil)
	if v := metric(t, reg, "switchboard_email_last_mail_seen_timestamp_seconds"); v != 0 {
		t.Fatalf("last mail seen %v before any mail, want 0", v)
	}
	w := runWatcher(t, a)
	mb.deliver(t, mailFrom("Ada <ada@example.com>", "seen-1@example.com", "", "one"))
	w.waitUID(t, 1)
	if v := metric(t, reg, "switchboard_email_last_mail_seen_timestamp_seconds"); v != float64(t1.Unix()) {
		t.Errorf("last mail seen %v, want %d", v, t1.Unix())
	}

	// Mail passed over (here: from outside the allow-list) was seen too.
	t2 := t1.Add(90 * time.Second)
	clk.Set(t2)
	mb.deliver(t, mailFrom("Eve <eve@elsewhere.example>", "seen-2@elsewhere.example", "", "two"))
	w.waitUID(t, 2)
	if v := metric(t, reg, "switchboard_email_last_mail_seen_timestamp_seconds"); v != float64(t2.Unix()) {
		t.Errorf("last mail seen %v after the second mail, want %d", v, t2.Unix())
	}
	if err := a.Check(context.Background()); err != nil {
		t.Errorf("Check: %v", err)
	}
}

// TestCheckWatcherStuck: a watcher whose network path goes silent while it
// is in IDLE waits for the server (for imap.timeout, a minute here); Check
// says so within 2 poll_interval, and clears once the path works again.
func TestCheckWatcherStuck(t *testing.T) {
	mb := newMailbox(t)
	p := newProxy(t, mb.addr)
	a, reg := newHealthAdapter(t, &mailbox{addr: p.addr, user: mb.user, pass: mb.pass}, time.Now, func(c *Config) {
		c.IMAP.PollInterval = duration.Duration(250 * time.Millisecond)
	})
	w := runWatcher(t, a)
	mb.deliver(t, mailFrom("Ada <ada@example.com>", "stuck-1@example.com", "", "one"))
	w.waitUID(t, 1)
	if err := a.Check(context.Background()); err != nil {
		t.Fatalf("Check while watching: %v", err)
	}

	p.freeze()
	adaptertest.Eventually(t, "Check reports the watcher stuck", func() bool { return a.Check(context.Background()) != nil })
	mustContain(t, a.Check(context.Background()), "email: IMAP watcher of INBOX on "+p.addr+" stuck: its IDLE/poll loop last ran ",
		"(limit 500ms, 2 imap.poll_interval; last mail seen: ", "check the network path to the server")
	if v := metric(t, reg, "switchboard_email_idle_alive"); v != 0 {
		t.Errorf("switchboard_email_idle_alive %v while stuck, want 0", v)
	}

	p.thaw()
	adaptertest.Eventually(t, "Check clears after the path works again", func() bool { return a.Check(context.Background()) == nil })
	mb.deliver(t, mailFrom("Ada <ada@example.com>", "stuck-2@example.com", "", "two"))
	w.waitUID(t, 2)
	if v := metric(t, reg, "switchboard_email_idle_alive"); v != 1 {
		t.Errorf("switchboard_email_idle_alive %v after recovery, want 1", v)
	}
}

// closedAddr is an address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestCheckSMTP: the last send's connection and login make the SMTP
// health; a message the server refuses after the login does not.
func TestCheckSMTP(t *testing.T) {
	sink := newSMTPSink(t)
	down := closedAddr(t)
	a, reg := newHealthAdapter(t, nil, nil, func(c *Config) {
		c.SMTP = SMTPConfig{Addr: down, Security: Plain, Username: sink.user, Password: sink.pass}
	})
	in := ingestFixture(t, a, []byte("From: ada@example.com\r\nMessage-ID: <root-h@example.com>\r\n\r\nhi\r\n"))
	deliver := func(id string) error {
		_, err := a.Deliver(context.Background(), adapters.Delivery{ID: id, To: in.Envelope.Conversation, Envelope: output("x")})
		return err
	}
	sends := func(result string) float64 {
		return metric(t, reg, "switchboard_email_smtp_sends_total", "result", result)
	}

	// Unreachable.
	if err := deliver("d1"); err == nil {
		t.Fatal("send to a closed port succeeded")
	}
	mustContain(t, a.Check(context.Background()), "email: SMTP server "+down+" unreachable: ", "connection refused",
		"; check email.smtp.addr and email.smtp.security (plain)")
	if sends("unreachable") != 1 || metric(t, reg, "switchboard_email_healthy") != 0 {
		t.Errorf("unreachable sends %v, healthy %v; want 1, 0", sends("unreachable"), metric(t, reg, "switchboard_email_healthy"))
	}

	// Reachable, with a wrong password: the login's error replaces it.
	a.cfg.SMTP.Addr = sink.addr
	a.cfg.SMTP.Password = "wrong"
	if err := deliver("d2"); err == nil {
		t.Fatal("send with a wrong password succeeded")
	}
	err := a.Check(context.Background())
	mustContain(t, err, "email: SMTP login to "+sink.addr+" as bot failed: SMTP error 535: bad credentials",
		"; check email.smtp.username and email.smtp.password")
	if strings.Contains(err.Error(), "unreachable") {
		t.Errorf("Check still reports the earlier failure: %v", err)
	}
	if sends("rejected") != 1 {
		t.Errorf("rejected sends %v, want 1", sends("rejected"))
	}

	// Recovery.
	a.cfg.SMTP.Password = sink.pass
	if err := deliver("d3"); err != nil {
		t.Fatal(err)
	}
	if err := a.Check(context.Background()); err != nil {
		t.Errorf("Check after a good send: %v", err)
	}
	if sends("ok") != 1 || metric(t, reg, "switchboard_email_healthy") != 1 {
		t.Errorf("ok sends %v, healthy %v; want 1, 1", sends("ok"), metric(t, reg, "switchboard_email_healthy"))
	}

	// A message refused after the login is the message's fault.
	sink.fail(&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "rejected"})
	if err := deliver("d4"); !errors.Is(err, adapters.ErrPermanent) {
		t.Errorf("refused message: err = %v, want ErrPermanent", err)
	}
	if err := a.Check(context.Background()); err != nil {
		t.Errorf("Check after a refused message: %v", err)
	}
	if sends("permanent") != 1 {
		t.Errorf("permanent sends %v, want 1", sends("permanent"))
	}
}

// TestWatcherReconnectsWhenThePathGoesSilent: a watcher whose connection
// goes silent during IDLE gives up on it after imap.timeout and reads on
// over a new one, by itself.
func TestWatcherReconnectsWhenThePathGoesSilent(t *testing.T) {
	mb := newMailbox(t)
	p := newProxy(t, mb.addr)
	a, reg := newHealthAdapter(t, &mailbox{addr: p.addr, user: mb.user, pass: mb.pass}, time.Now, func(c *Config) {
		c.IMAP.PollInterval = duration.Duration(250 * time.Millisecond)
		c.IMAP.Timeout = duration.Duration(500 * time.Millisecond)
	})
	w := runWatcher(t, a)
	mb.deliver(t, mailFrom("Ada <ada@example.com>", "silent-1@example.com", "", "one"))
	w.waitUID(t, 1)

	p.freeze() // the watcher's connection, not the next one
	mb.deliver(t, mailFrom("Ada <ada@example.com>", "silent-2@example.com", "", "two"))
	w.waitUID(t, 2)
	if n := metric(t, reg, "switchboard_email_imap_logins_total", "result", "ok"); n != 2 {
		t.Errorf("%v logins, want 2 (the first and the reconnection)", n)
	}
	if err := a.Check(context.Background()); err != nil {
		t.Errorf("Check after the reconnection: %v", err)
	}
}
