package email

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/sqlite"
)

const testdata = "../../testdata/email"

var testNow = time.Date(2024, 6, 11, 12, 0, 0, 0, time.UTC)

// recorder is an Ingress that keeps what it is given.
type recorder struct {
	mu  sync.Mutex
	ins []adapters.Inbound
	ch  chan adapters.Inbound
}

func newRecorder() *recorder { return &recorder{ch: make(chan adapters.Inbound, 100)} }

func (r *recorder) Ingest(_ context.Context, in adapters.Inbound) (adapters.Outcome, error) {
	r.mu.Lock()
	r.ins = append(r.ins, in)
	r.mu.Unlock()
	r.ch <- in
	return adapters.Outcome{SessionID: "s1", Seq: 1}, nil
}

func (r *recorder) all() []adapters.Inbound {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]adapters.Inbound(nil), r.ins...)
}

// testConfig is a valid configuration.
func testConfig() *Config {
	return &Config{
		Address: "bot@switchboard.example",
		IMAP:    IMAPConfig{Addr: "127.0.0.1:1", Security: Plain, Username: "bot", Password: "pw"},
		SMTP:    SMTPConfig{Addr: "127.0.0.1:1", Security: Plain},
	}
}

// newTestStore opens a SQLite store in t's temp dir, closed when t ends:
// the adapter's state is tested against a real store.
func newTestStore(t testing.TB) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "switchboard.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return st
}

// newTestAdapter builds an adapter with its state in a fresh store.
func newTestAdapter(t testing.TB, ing adapters.Ingress, mod func(*Config)) *Adapter {
	t.Helper()
	return newStateAdapter(t, newTestStore(t), ing, mod)
}

// noState is the store.KV of tests that must not touch the adapter's state
// (parsing and mapping only): every call fails.
var noState = adaptertest.FailingKV{Err: errors.New("test: the adapter's state is not expected to be used here")}

// newStateAdapter builds an adapter with its state in st, as the gateway
// does: several adapters on one store are like replicas sharing it.
func newStateAdapter(t testing.TB, st store.KV, ing adapters.Ingress, mod func(*Config)) *Adapter {
	t.Helper()
	return newDepsAdapter(t, adapters.Deps{Ingress: ing, State: st, Now: func() time.Time { return testNow }}, mod)
}

// newDepsAdapter builds an adapter of testConfig, changed by mod, with deps.
func newDepsAdapter(t testing.TB, deps adapters.Deps, mod func(*Config)) *Adapter {
	t.Helper()
	c := testConfig()
	if mod != nil {
		mod(c)
	}
	a, err := New(c, deps)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// goldenResult is what a golden file holds.
type goldenResult struct {
	// Outcome is "ingest" or "skip: <why>".
	Outcome     string          `json:"outcome"`
	Attachments []Attachment    `json:"attachments,omitempty"`
	Facts       *adapters.Facts `json:"facts,omitempty"`
	Envelope    json.RawMessage `json:"envelope,omitempty"`
}

func TestGolden(t *testing.T) {
	fixtures, err := filepath.Glob(filepath.Join(testdata, "*.eml"))
	if err != nil || len(fixtures) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	a := newTestAdapter(t, newRecorder(), nil) // inspect reads no state
	for _, path := range fixtures {
		name := strings.TrimSuffix(filepath.Base(path), ".eml")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			m, in, skip, err := a.inspect(src)
			if err != nil {
				t.Fatal(err)
			}
			res := goldenResult{Outcome: "ingest", Attachments: m.Attachments}
			if skip != "" {
				res.Outcome = "skip: " + skip
			}
			if err := in.Envelope.Validate(0); err != nil {
				t.Fatalf("envelope does not validate: %v", err)
			}
			back, err := SourceFromRaw(in.Envelope.Raw)
			if err != nil || !bytes.Equal(back, src) {
				t.Fatalf("raw does not give the source back byte for byte (err %v)", err)
			}
			env, err := in.Envelope.AppendJSON(nil)
			if err != nil {
				t.Fatal(err)
			}
			res.Envelope, res.Facts = env, &in.Facts
			adaptertest.GoldenJSON(t, filepath.Join(testdata, name+".golden.json"), res)
		})
	}
}

// TestGoldenFilesHaveFixtures keeps testdata tidy.
func TestGoldenFilesHaveFixtures(t *testing.T) {
	fixtures, _ := filepath.Glob(filepath.Join(testdata, "*.eml"))
	var names []string // TestGolden has a case for each fixture
	for _, f := range fixtures {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".eml"))
	}
	adaptertest.CheckTidy(t, testdata, "*.eml", names)
}

// readFixture returns a fixture's parsed inbound.
func fixtureInbound(t *testing.T, name string) (adapters.Inbound, string) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(testdata, name))
	if err != nil {
		t.Fatal(err)
	}
	_, in, skip, err := newStateAdapter(t, noState, newRecorder(), nil).inspect(src)
	if err != nil {
		t.Fatal(err)
	}
	return in, skip
}

// The golden files are reviewed by eye; these spell out the properties
// that matter so that a careless -update cannot hide a regression.
func TestMappingProperties(t *testing.T) {
	cases := []struct {
		file, ref, text, skip string
		notText               []string
		refs                  envelope.Refs
	}{
		{file: "gmail.new-thread.alternative.eml", ref: "CAF=abc123+xyz@mail.gmail.com",
			text: "Flaky test in PR https://github.com/acme/widgets/pull/42\n\nHi,",
			refs: envelope.Refs{"repo": "acme/widgets", "pr": "42", "issue": "ENG-1234"}},
		{file: "gmail.reply.eml", ref: "CAF=abc123+xyz@mail.gmail.com",
			text: "Yes, please bump the timeout to 30s and push.", notText: []string{"wrote", "waits 5s", "Flaky"}},
		{file: "outlook.reply.eml", ref: "switchboard.aaaa@switchboard.example",
			text: "Ship it on Monday instead.\n\nLinus", notText: []string{"nightly", "Sent:"}},
		{file: "outlook.original-message.eml", ref: "root-classic@corp.example.com",
			text: "Use the Q2 numbers, not Q1 – they’re final now.", notText: []string{"Original", "Which quarter"}},
		{file: "apple-mail.reply.eml", ref: "apple-root@example.com",
			text: "Fixed in the branch, thanks. See https://github.com/acme/docs/tree/fix-typo", notText: []string{"iPhone", "typo on the install"},
			refs: envelope.Refs{"repo": "acme/docs", "branch": "fix-typo"}},
		{file: "signature.eml", text: "Rotate the staging keys\n\nPlease rotate the staging API keys today.", notText: []string{"Analytical", "-- "}},
		{file: "iso-8859-1.8bit.eml", text: "Grüße aus München\n\nHallo, könnt ihr bitte PROJ-77 prüfen?", refs: envelope.Refs{"issue": "PROJ-77"}},
		{file: "quoted-printable.eml", text: "Café deploy\n\nThe deploy didn’t finish: this line is long enough that the mailer wrapped it"},
		{file: "html-only.eml", text: "- the changelog\n- the tracking issue (https://github.com/acme/widgets/issues/7)", notText: []string{"alert", "color", "<"}},
		{file: "attachment.eml", text: "Attachments:\n- crash.log (text/plain, 63 B)\n- résumé.pdf (application/pdf, 52 B)", notText: []string{"panic"}},
		{file: "auto-reply.eml", skip: "auto-submitted: auto-replied"},
		{file: "bounce.eml", skip: "auto-submitted: auto-replied"},
		{file: "mailing-list.eml", skip: "precedence: list"},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			in, skip := fixtureInbound(t, tc.file)
			if skip != tc.skip {
				t.Fatalf("skip = %q, want %q", skip, tc.skip)
			}
			if tc.skip != "" {
				return
			}
			env := in.Envelope
			if tc.ref != "" && env.Conversation.Ref != tc.ref {
				t.Errorf("conversation.ref = %q, want %q", env.Conversation.Ref, tc.ref)
			}
			if env.Conversation.Source != Name || env.Source != Name || !strings.HasPrefix(env.ID, "email:") {
				t.Errorf("source/id = %q %q %q", env.Source, env.Conversation.Source, env.ID)
			}
			if !strings.Contains(env.Text, tc.text) {
				t.Errorf("text %q does not contain %q", env.Text, tc.text)
			}
			for _, s := range tc.notText {
				if strings.Contains(env.Text, s) {
					t.Errorf("text %q contains %q", env.Text, s)
				}
			}
			for k, v := range tc.refs {
				if env.Refs[k] != v {
					t.Errorf("refs.%s = %q, want %q (refs %v)", k, env.Refs[k], v, env.Refs)
				}
			}
			if !in.Facts.Addressed || in.Facts.Where != "bot@switchboard.example" || in.Facts.Sender == "" ||
				"email:"+in.Facts.ChannelID != env.ID || env.Actor.ID != "email:"+in.Facts.Sender {
				t.Errorf("facts %+v do not match envelope %s / %s", in.Facts, env.ID, env.Actor.ID)
			}
		})
	}
}

func TestRawIsLosslessFor8BitMail(t *testing.T) {
	in, _ := fixtureInbound(t, "iso-8859-1.8bit.eml")
	if !bytes.HasPrefix(in.Envelope.Raw, []byte(`{"base64":"`)) {
		t.Fatalf("raw of 8-bit latin-1 mail = %.40s…, want a base64 object", in.Envelope.Raw)
	}
	in, _ = fixtureInbound(t, "quoted-printable.eml")
	var s string
	if err := json.Unmarshal(in.Envelope.Raw, &s); err != nil || !strings.HasPrefix(s, "MIME-Version: 1.0\n") {
		t.Fatalf("raw of 7-bit mail is not the source as a JSON string: %v", err)
	}
}

func TestLoopPrevention(t *testing.T) {
	base := "From: Ada <ada@example.com>\r\nTo: bot@switchboard.example\r\nMessage-ID: <x@y>\r\nSubject: hi\r\n"
	cases := map[string]string{
		"Auto-Submitted: auto-generated\r\n":             "auto-submitted: auto-generated",
		"Auto-Submitted: no\r\n":                         "",
		"Precedence: bulk\r\n":                           "precedence: bulk",
		"Precedence: junk\r\n":                           "precedence: junk",
		"List-Post: <mailto:l@example.com>\r\n":          "mailing list (List-Post)",
		"Return-Path: <>\r\n":                            "empty return path (a bounce)",
		"Return-Path: <ada@example.com>\r\n":             "",
		"Content-Type: multipart/report; boundary=b\r\n": "delivery or disposition report",
	}
	a := newTestAdapter(t, newRecorder(), nil)
	for extra, want := range cases {
		_, _, skip, err := a.inspect([]byte(base + extra + "\r\nhello\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		if skip != want {
			t.Errorf("%q: skip = %q, want %q", extra, skip, want)
		}
	}
	_, _, skip, _ := a.inspect([]byte("From: Bot <BOT@switchboard.example>\r\nMessage-ID: <own@x>\r\n\r\nhi\r\n"))
	if skip != "from the gateway's own address" {
		t.Errorf("own mail: skip = %q", skip)
	}
}

func TestSenderAllowList(t *testing.T) {
	a := newTestAdapter(t, newRecorder(), func(c *Config) { c.Senders = []string{"ada@example.com", "@corp.example", "partner.example"} })
	for from, ok := range map[string]bool{
		"ada@example.com": true, "ADA@Example.com": true, "eve@example.com": false,
		"x@corp.example": true, "y@partner.example": true, "z@sub.partner.example": false,
	} {
		_, _, skip, err := a.inspect([]byte("From: " + from + "\r\nMessage-ID: <m@x>\r\n\r\nhi\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		if (skip == "") != ok {
			t.Errorf("%s: skip = %q, want allowed=%v", from, skip, ok)
		}
	}
}

func TestSizeLimits(t *testing.T) {
	a := newTestAdapter(t, newRecorder(), func(c *Config) { c.MaxMessage = 1000; c.MaxPart = 100 })
	body := strings.Repeat("word ", 100) // 500 bytes
	_, in, _, err := a.inspect([]byte("From: ada@example.com\r\nMessage-ID: <m@x>\r\nSubject: s\r\n\r\n" + body))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(in.Envelope.Text, "[message cut") || len(in.Envelope.Text) > 250 {
		t.Errorf("text not cut at the part limit: %q", in.Envelope.Text)
	}
	_, _, _, err = a.inspect([]byte("From: ada@example.com\r\n\r\n" + strings.Repeat("x", 2000)))
	if err != errTooLarge {
		t.Errorf("oversized message: err = %v, want errTooLarge", err)
	}
}

func TestMessageWithoutIDGetsStableID(t *testing.T) {
	a := newTestAdapter(t, newRecorder(), nil)
	src := []byte("From: ada@example.com\r\nSubject: s\r\n\r\nhello\r\n")
	_, in1, _, _ := a.inspect(src)
	_, in2, _, _ := a.inspect(src)
	if in1.Envelope.ID != in2.Envelope.ID || !strings.HasSuffix(in1.Envelope.ID, "@switchboard.invalid") {
		t.Errorf("ids %q %q", in1.Envelope.ID, in2.Envelope.ID)
	}
}

func TestConfigValidate(t *testing.T) {
	c := &Config{}
	c.defaults()
	err := c.Validate()
	for _, key := range []string{"address:", "imap.addr:", "imap.username:", "smtp.addr:"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("empty config: error %v does not name %s", err, key)
		}
	}
	c = testConfig()
	c.defaults()
	if err := c.Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
	c.IMAP.Security = "ssl"
	c.Senders = []string{"a b"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "imap.security") || !strings.Contains(err.Error(), "senders[0]") {
		t.Errorf("bad config: %v", err)
	}
	if c := testConfig(); c.SMTP.Domain == "" {
		c.defaults()
		if c.SMTP.Domain != "switchboard.example" {
			t.Errorf("smtp.domain default = %q", c.SMTP.Domain)
		}
	}
}

func TestRegistered(t *testing.T) {
	p, ok := adapters.Lookup(Name)
	if !ok {
		t.Fatal("email plugin not registered")
	}
	if _, err := p.New(p.NewConfig(), adapters.Deps{Ingress: newRecorder(), State: newTestStore(t)}); err == nil {
		t.Error("New accepted an empty config")
	}
	if _, err := New(testConfig(), adapters.Deps{Ingress: newRecorder()}); err == nil || !strings.Contains(err.Error(), "state") {
		t.Errorf("New without a state store: err = %v", err)
	}
}
