package health

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func value(g prometheus.Gauge) float64 {
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		return -1
	}
	return m.GetGauge().GetValue()
}

func TestTracker(t *testing.T) {
	var logs bytes.Buffer
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "healthy"})
	h := New("chan", []string{"bot", "app"}, g, slog.New(slog.NewTextHandler(&logs, nil)))
	if err := h.Err(); err != nil || value(g) != 1 {
		t.Fatalf("new tracker: Err = %v, gauge %v", err, value(g))
	}

	h.Reject("app", "revoked")
	h.Reject("bot", "invalid_auth")
	h.Reject("bot", "invalid_auth") // logged once
	want := "chan: bot rejected: invalid_auth\nchan: app rejected: revoked"
	if err := h.Err(); err == nil || err.Error() != want {
		t.Fatalf("Err = %v, want %q", err, want)
	}
	if value(g) != 0 {
		t.Errorf("gauge %v while rejected, want 0", value(g))
	}
	if n := strings.Count(logs.String(), "chan rejected a credential; the adapter is unhealthy"); n != 2 {
		t.Errorf("%d rejection logs, want 2:\n%s", n, logs.String())
	}

	h.Accept("bot")
	if err := h.Err(); err == nil || err.Error() != "chan: app rejected: revoked" {
		t.Errorf("Err = %v after accepting bot", err)
	}
	if value(g) != 0 {
		t.Errorf("gauge %v with app still rejected, want 0", value(g))
	}
	h.Accept("app")
	h.Accept("app") // logged once
	if err := h.Err(); err != nil || value(g) != 1 {
		t.Errorf("all accepted: Err = %v, gauge %v", err, value(g))
	}
	if n := strings.Count(logs.String(), "chan accepts the credential again"); n != 2 {
		t.Errorf("%d recovery logs, want 2:\n%s", n, logs.String())
	}
}

func TestTrackerSingleCredential(t *testing.T) {
	var logs bytes.Buffer
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "healthy"})
	h := New("jira", []string{"credentials"}, g, slog.New(slog.NewTextHandler(&logs, nil)))
	h.Reject("credentials", "401 Unauthorized")
	if err := h.Err(); err == nil || err.Error() != "jira: credentials rejected: 401 Unauthorized" {
		t.Errorf("Err = %v", err)
	}
	h.Accept("credentials")
	if err := h.Err(); err != nil || value(g) != 1 {
		t.Errorf("accepted: Err = %v, gauge %v", err, value(g))
	}
	for _, s := range []string{"jira rejected the credentials; the adapter is unhealthy", "jira accepts the credentials again"} {
		if !strings.Contains(logs.String(), s) {
			t.Errorf("no log %q in:\n%s", s, logs.String())
		}
	}
}

func TestTrackerUnlistedCredential(t *testing.T) {
	h := New("chan", []string{"bot"}, prometheus.NewGauge(prometheus.GaugeOpts{Name: "healthy"}), slog.New(slog.DiscardHandler))
	h.Reject("other", "no")
	h.Reject("bot", "yes")
	if err := h.Err(); err == nil || err.Error() != "chan: bot rejected: yes\nchan: other rejected: no" {
		t.Errorf("Err = %v", err)
	}
}

func TestTrackerFail(t *testing.T) {
	var logs bytes.Buffer
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "healthy"})
	h := New("email", []string{"imap", "smtp"}, g, slog.New(slog.NewTextHandler(&logs, nil)))
	h.Fail("smtp", "SMTP server smtp.example.com:587 unreachable: connection refused; check email.smtp.addr")
	h.Fail("smtp", "SMTP server smtp.example.com:587 unreachable: i/o timeout; check email.smtp.addr") // logged once, reported as last said
	h.Reject("imap", "[AUTHENTICATIONFAILED] bad password")
	want := "email: imap rejected: [AUTHENTICATIONFAILED] bad password\n" +
		"email: SMTP server smtp.example.com:587 unreachable: i/o timeout; check email.smtp.addr"
	if err := h.Err(); err == nil || err.Error() != want {
		t.Fatalf("Err = %v, want %q", err, want)
	}
	if value(g) != 0 {
		t.Errorf("gauge %v after Fail, want 0", value(g))
	}
	if n := strings.Count(logs.String(), "email cannot use a credential; the adapter is unhealthy"); n != 1 {
		t.Errorf("%d failure logs, want 1:\n%s", n, logs.String())
	}
	h.Accept("imap")
	h.Accept("smtp")
	if err := h.Err(); err != nil || value(g) != 1 {
		t.Errorf("accepted: Err = %v, gauge %v", err, value(g))
	}
	if n := strings.Count(logs.String(), "email accepts the credential again"); n != 2 {
		t.Errorf("%d recovery logs, want 2:\n%s", n, logs.String())
	}
}
