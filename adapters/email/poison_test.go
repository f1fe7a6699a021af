package email

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// strictIngress refuses, as PostgreSQL does, an envelope with a NUL byte or
// invalid UTF-8 in a text column, and whatever refuse refuses; it hands the
// rest to rec. It counts the attempts per envelope id.
type strictIngress struct {
	rec    *recorder
	refuse func(env *envelope.Envelope) error

	mu       sync.Mutex
	attempts map[string]int
}

func (s *strictIngress) Ingest(ctx context.Context, in adapters.Inbound) (adapters.Outcome, error) {
	env := &in.Envelope
	s.mu.Lock()
	if s.attempts == nil {
		s.attempts = map[string]int{}
	}
	s.attempts[env.ID]++
	s.mu.Unlock()
	fields := []string{env.ID, env.Source, env.Actor.ID, env.Actor.Display, env.Conversation.Source, env.Conversation.Ref, env.Text}
	for k, v := range env.Refs {
		fields = append(fields, k, v)
	}
	for _, f := range fields {
		if !utf8.ValidString(f) || strings.ContainsRune(f, 0) {
			return adapters.Outcome{}, fmt.Errorf("test store: append: %q is not storable text", f)
		}
	}
	if s.refuse != nil {
		if err := s.refuse(env); err != nil {
			return adapters.Outcome{}, err
		}
	}
	return s.rec.Ingest(ctx, in)
}

func (s *strictIngress) tries(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[id]
}

// counterValue reads a counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// skippedTotal sums switchboard_email_skipped_total over its reasons.
func skippedTotal(t *testing.T, v *prometheus.CounterVec) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 10)
	v.Collect(ch)
	close(ch)
	total := 0.0
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		total += d.GetCounter().GetValue()
	}
	return total
}

// The poison mails of the hardening issue: each was refused at append on
// PostgreSQL, and the watcher retried its UID for ever.
const (
	poisonQP = "From: Ada <ada@example.com>\r\nTo: bot@switchboard.example\r\nMessage-ID: <qp-nul@example.com>\r\n" +
		"Subject: qp\r\nDate: Mon, 3 Jun 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nrun=00 the tests\r\n"
	poisonSubject = "From: Ada <ada@example.com>\r\nTo: bot@switchboard.example\r\nMessage-ID: <subject-nul@example.com>\r\n" +
		"Subject: =?UTF-8?Q?nul=00here?=\r\nDate: Mon, 3 Jun 2024 10:00:00 +0000\r\n\r\nsee the subject\r\n"
	poison8bitID = "From: Ada <ada@example.com>\r\nTo: bot@switchboard.example\r\nMessage-ID: <caf\xe9-8bit@example.com>\r\n" +
		"Subject: 8-bit id\r\nDate: Mon, 3 Jun 2024 10:00:00 +0000\r\n\r\nan 8-bit Message-ID\r\n"
	poisonFilename = "From: Ada <ada@example.com>\r\nTo: bot@switchboard.example\r\nMessage-ID: <filename@example.com>\r\n" +
		"Subject: attachment\r\nDate: Mon, 3 Jun 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nthe log is attached\r\n" +
		"--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=UTF-8''a%80\r\n\r\nxyz\r\n--b1--\r\n"
)

// TestWatcherReadsOnPastPoisonMail: mail that PostgreSQL cannot store as
// sent is cleaned (NUL stripped, invalid UTF-8 replaced, an 8-bit
// Message-ID replaced by its digest) and stored, and the good mail after
// it is read.
func TestWatcherReadsOnPastPoisonMail(t *testing.T) {
	mb := newMailbox(t)
	rec := newRecorder()
	ing := &strictIngress{rec: rec}
	for _, src := range []string{poisonQP, poisonSubject, poison8bitID, poisonFilename} {
		mb.deliver(t, src)
	}
	mb.deliver(t, mailFrom("Ada <ada@example.com>", "good@example.com", "", "Good mail."))
	w := startWatcher(t, mb, newTestStore(t), ing, nil)
	var got []envelope.Envelope
	for range 5 {
		got = append(got, next(t, rec).Envelope)
	}
	w.waitUID(t, 5)
	w.stop()

	if got[0].ID != "email:qp-nul@example.com" || got[0].Text != "qp\n\nrun the tests" {
		t.Errorf("=00 in a quoted-printable body: id %q, text %q", got[0].ID, got[0].Text)
	}
	if got[1].ID != "email:subject-nul@example.com" || !strings.HasPrefix(got[1].Text, "nulhere\n\n") {
		t.Errorf("NUL in an encoded-word subject: id %q, text %q", got[1].ID, got[1].Text)
	}
	if !strings.HasPrefix(got[2].ID, "email:sha256-") || !strings.HasSuffix(got[2].ID, "@switchboard.invalid") ||
		got[2].Conversation.Ref != strings.TrimPrefix(got[2].ID, "email:") {
		t.Errorf("8-bit Message-ID: id %q, conversation %q; want the digest as both", got[2].ID, got[2].Conversation.Ref)
	}
	if src, err := SourceFromRaw(got[2].Raw); err != nil || string(src) != poison8bitID {
		t.Errorf("8-bit Message-ID: raw does not give the source back byte for byte (%v)", err)
	}
	if got[3].ID != "email:filename@example.com" || !strings.Contains(got[3].Text, "- a\uFFFD (application/octet-stream") {
		t.Errorf("filename*=UTF-8''a%%80: id %q, text %q", got[3].ID, got[3].Text)
	}
	if got[4].ID != "email:good@example.com" {
		t.Errorf("the mail after the poison is %q", got[4].ID)
	}
	for _, id := range []string{"email:qp-nul@example.com", "email:subject-nul@example.com", "email:filename@example.com", "email:good@example.com"} {
		if n := ing.tries(id); n != 1 {
			t.Errorf("%s handed over %d times, want once", id, n)
		}
	}
	if n := skippedTotal(t, w.a.metrics.skipped); n != 0 {
		t.Errorf("%v mails skipped, want none: each can be cleaned", n)
	}
}

// TestWatcherSkipsMailTheStoreRefuses: a mail that the router or the store
// refuses (an invalid envelope at once; an unknown refusal after
// maxAttempts tries while the store answers) is left unread and counted,
// and the watcher reads on.
func TestWatcherSkipsMailTheStoreRefuses(t *testing.T) {
	mb := newMailbox(t)
	rec := newRecorder()
	ing := &strictIngress{rec: rec, refuse: func(env *envelope.Envelope) error {
		switch env.ID {
		case "email:invalid@example.com":
			return fmt.Errorf("router: append: %w", &envelope.ValidationError{Field: "ts", Message: "is out of range"})
		case "email:refused@example.com":
			return errors.New("router: append: value too long for the column")
		}
		return nil
	}}
	mb.deliver(t, mailFrom("Ada <ada@example.com>", "invalid@example.com", "", "one"))
	mb.deliver(t, mailFrom("Ada <ada@example.com>", "refused@example.com", "", "two"))
	mb.deliver(t, mailFrom("Ada <ada@example.com>", "good@example.com", "", "three"))
	state := newTestStore(t)
	w := startWatcher(t, mb, state, ing, func(c *Config) { c.IMAP.Backoff = 1 })
	expect(t, rec, "good@example.com")
	w.waitUID(t, 3)
	w.stop()

	if n := ing.tries("email:invalid@example.com"); n != 1 {
		t.Errorf("the invalid envelope was tried %d times, want once", n)
	}
	if n := ing.tries("email:refused@example.com"); n != maxAttempts {
		t.Errorf("the refused mail was tried %d times, want %d", n, maxAttempts)
	}
	if n := skippedTotal(t, w.a.metrics.skipped); n != 2 || counterValue(t, w.a.metrics.skipped.WithLabelValues(skipRefused)) != 2 {
		t.Errorf("switchboard_email_skipped_total{reason=refused} = %v, want 2", n)
	}
	if _, last, err := (&cursors{kv: state, address: "bot@switchboard.example"}).Load(context.Background(), "INBOX"); err != nil || last != 3 {
		t.Errorf("cursor at UID %d (%v), want 3", last, err)
	}
	want := map[imap.UID]bool{1: false, 2: false, 3: true}
	if got := mb.flags(t); !mapsEqual(got, want) {
		t.Errorf("seen flags %v, want %v (skipped mail left unread)", got, want)
	}
}

// flakyKV is a store.KV that fails every call while down is set.
type flakyKV struct {
	store.KV
	down atomic.Bool
}

var errDown = errors.New("test: store unavailable")

func (f *flakyKV) Value(ctx context.Context, ns, key string) ([]byte, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.KV.Value(ctx, ns, key)
}

// TestRefusedTellsTransientFromPermanent: a failure while the store does not
// answer, or while the watcher stops, never passes a message over; an
// invalid envelope does at once, another failure after maxAttempts in a
// row.
func TestRefusedTellsTransientFromPermanent(t *testing.T) {
	kv := &flakyKV{KV: newTestStore(t)}
	a := newStateAdapter(t, kv, newRecorder(), nil)
	ctx := context.Background()
	storeDown := fmt.Errorf("email: ingest <m1>: router: append: %w", errDown)

	kv.down.Store(true)
	for i := range 2 * maxAttempts {
		if a.refused(ctx, "m1", storeDown) {
			t.Fatalf("attempt %d: passed over while the store does not answer", i+1)
		}
	}
	kv.down.Store(false)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	for i := range 2 * maxAttempts {
		if a.refused(canceled, "m1", context.Canceled) {
			t.Fatalf("attempt %d: passed over while stopping", i+1)
		}
	}
	other := errors.New("router: append: refused")
	for i := 1; i <= maxAttempts; i++ {
		if got := a.refused(ctx, "m1", other); got != (i == maxAttempts) {
			t.Fatalf("attempt %d with the store answering: refused = %v", i, got)
		}
	}
	if a.refused(ctx, "m2", other) {
		t.Error("another message inherited the first one's attempts")
	}
	if !a.refused(ctx, "m3", fmt.Errorf("router: %w", &envelope.ValidationError{Field: "text", Message: "is not valid UTF-8"})) {
		t.Error("an invalid envelope is not passed over at once")
	}
	if !a.refused(ctx, "m4", fmt.Errorf("router: %w: gone", adapters.ErrPermanent)) {
		t.Error("a permanent error is not passed over at once")
	}
	if !a.refused(ctx, "m5", fmt.Errorf("router: append: %w: text contains a NUL byte", store.ErrInvalid)) {
		t.Error("an envelope the store refuses as invalid is not passed over at once")
	}
}

// TestConvertKeepsWhatAStoreRefusesOutOfTextColumns: a source with a NUL
// byte keeps raw as {"base64": …} (no "\u0000" for a text or jsonb column),
// and a Date no store can hold gives way to the gateway's clock.
func TestConvertKeepsWhatAStoreRefusesOutOfTextColumns(t *testing.T) {
	src := []byte("From: ada@example.com\r\nMessage-ID: <nul@example.com>\r\nDate: Mon, 3 Jun 10024 10:00:00 +0000\r\n\r\nbinary\x00body\r\n")
	m, err := Parse(src, "bot@switchboard.example", 0)
	if err != nil {
		t.Fatal(err)
	}
	m.Date = time.Date(10024, 6, 3, 10, 0, 0, 0, time.UTC) // whether or not the parser reads it
	in := convert(m, src, "bot@switchboard.example", testNow)
	env := in.Envelope
	if !strings.HasPrefix(string(env.Raw), `{"base64":`) {
		t.Errorf("raw = %.40s…, want {\"base64\": …} for a source with a NUL", env.Raw)
	}
	if back, err := SourceFromRaw(env.Raw); err != nil || string(back) != string(src) {
		t.Errorf("raw does not give the source back (%v)", err)
	}
	if !env.TS.Equal(testNow) {
		t.Errorf("ts = %s, want the gateway's clock for a date past year 9999", env.TS)
	}
	if strings.ContainsRune(env.Text, 0) || !strings.Contains(env.Text, "binarybody") {
		t.Errorf("text = %q, want the NUL stripped", env.Text)
	}
	if err := env.Validate(0); err != nil {
		t.Error(err)
	}
}
