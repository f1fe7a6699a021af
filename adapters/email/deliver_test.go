package email

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/envelope"
)

// smtpSink is a go-smtp server that keeps what it receives, and answers
// DATA with the queued errors first.
type smtpSink struct {
	addr string
	user string
	pass string

	mu      sync.Mutex
	fails   []*smtp.SMTPError
	got     []sentMail
	authd   bool
	refused bool // every login is refused

	// arrived receives a value for every mail accepted.
	arrived chan struct{}
}

type sentMail struct {
	from string
	to   []string
	data []byte
}

func newSMTPSink(t testing.TB) *smtpSink {
	t.Helper()
	s := &smtpSink{user: "bot", pass: "secret", arrived: make(chan struct{}, 100)}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &smtpSession{sink: s}, nil }))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return s
}

func (s *smtpSink) fail(e *smtp.SMTPError) { s.mu.Lock(); s.fails = append(s.fails, e); s.mu.Unlock() }

func (s *smtpSink) mails() []sentMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sentMail(nil), s.got...)
}

type smtpSession struct {
	sink *smtpSink
	cur  sentMail
	auth bool
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		s.sink.mu.Lock()
		refused := s.sink.refused
		s.sink.mu.Unlock()
		if user != s.sink.user || pass != s.sink.pass || refused {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.auth = true
		return nil
	}), nil
}
func (s *smtpSession) Reset()        { s.cur = sentMail{} }
func (s *smtpSession) Logout() error { return nil }
func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if !s.auth {
		return smtp.ErrAuthRequired
	}
	s.cur.from = from
	return nil
}
func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.to = append(s.cur.to, to)
	return nil
}
func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.sink.mu.Lock()
	defer s.sink.mu.Unlock()
	if len(s.sink.fails) > 0 {
		e := s.sink.fails[0]
		s.sink.fails = s.sink.fails[1:]
		return e
	}
	s.cur.data = b
	s.sink.got = append(s.sink.got, s.cur)
	select {
	case s.sink.arrived <- struct{}{}:
	default:
	}
	return nil
}

// waitMails waits until the sink has accepted n mails and returns them.
func (s *smtpSink) waitMails(t *testing.T, n int) []sentMail {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		if got := s.mails(); len(got) >= n {
			return got
		}
		select {
		case <-s.arrived:
		case <-timeout:
			t.Fatalf("%d mails received within 20s, want %d", len(s.mails()), n)
		}
	}
}

func newDeliverAdapter(t *testing.T, sink *smtpSink, rec *recorder) *Adapter {
	return newTestAdapter(t, rec, func(c *Config) {
		c.SMTP = SMTPConfig{Addr: sink.addr, Security: Plain, Username: sink.user, Password: sink.pass}
	})
}

// ingestFixture runs a fixture through the inbound path (thread state and
// ingress), as the watcher does.
func ingestFixture(t testing.TB, a *Adapter, src []byte) adapters.Inbound {
	t.Helper()
	m, in, skip, err := a.inspect(src)
	if err != nil || skip != "" {
		t.Fatalf("inspect: %v %q", err, skip)
	}
	if err := a.handle(context.Background(), m, in); err != nil {
		t.Fatal(err)
	}
	return in
}

func output(text string) envelope.Envelope {
	return envelope.Envelope{ID: "agent:out-1", Source: "agent", Kind: envelope.KindMessage,
		Actor: envelope.Actor{ID: "agent:s1", Type: envelope.Agent}, Text: text, TS: testNow}
}

func TestDeliverThreadedReply(t *testing.T) {
	sink := newSMTPSink(t)
	rec := newRecorder()
	a := newDeliverAdapter(t, sink, rec)
	src := []byte("From: Ada Lovelace <ada@example.com>\r\nTo: bot@switchboard.example\r\nMessage-ID: <root-1@example.com>\r\n" +
		"Subject: Fwd: Flaky test\r\nDate: Mon, 3 Jun 2024 10:00:00 +0200\r\n\r\nPlease look.\r\n")
	in := ingestFixture(t, a, src)

	d := adapters.Delivery{ID: "dlv-1", SessionID: "s1", To: in.Envelope.Conversation, Envelope: output("Bumped the timeout:\n\n- `TestRetry` now waits **30s**\n- see https://github.com/acme/widgets/pull/42"), Attempt: 1}
	rcpt, err := a.Deliver(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	mails := sink.mails()
	if len(mails) != 1 {
		t.Fatalf("%d mails sent, want 1", len(mails))
	}
	got := mails[0]
	if got.from != "bot@switchboard.example" || len(got.to) != 1 || got.to[0] != "ada@example.com" {
		t.Errorf("envelope from %q to %v", got.from, got.to)
	}
	mr, err := mail.CreateReader(bytes.NewReader(got.data))
	if err != nil {
		t.Fatal(err)
	}
	h := mr.Header
	subject, _ := h.Subject()
	msgID, _ := h.MessageID()
	inReplyTo, _ := h.MsgIDList("In-Reply-To")
	refs, _ := h.MsgIDList("References")
	to, _ := h.AddressList("To")
	for _, c := range []struct{ name, got, want string }{
		{"Subject", subject, "Re: Flaky test"},
		{"In-Reply-To", strings.Join(inReplyTo, " "), "root-1@example.com"},
		{"References", strings.Join(refs, " "), "root-1@example.com"},
		{"Auto-Submitted", h.Get("Auto-Submitted"), "auto-replied"},
		{"To", to[0].String(), `"Ada Lovelace" <ada@example.com>`},
		{"Message-ID", msgID, rcpt.ChannelID},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if !strings.HasSuffix(msgID, "@switchboard.example") {
		t.Errorf("Message-ID %q is not on the gateway's domain", msgID)
	}
	if mt, _, _ := h.ContentType(); mt != "multipart/alternative" {
		t.Errorf("Content-Type = %q, want multipart/alternative", mt)
	}
	var types []string
	var plain, html string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		mt, _, _ := p.Header.(*mail.InlineHeader).ContentType()
		b, _ := io.ReadAll(p.Body)
		types = append(types, mt)
		if mt == "text/plain" {
			plain = strings.ReplaceAll(string(b), "\r\n", "\n")
		} else {
			html = string(b)
		}
	}
	if strings.Join(types, ",") != "text/plain,text/html" {
		t.Errorf("parts %v, want text/plain then text/html", types)
	}
	if plain != d.Envelope.Text {
		t.Errorf("text/plain = %q, want the Markdown as is", plain)
	}
	for _, want := range []string{"<li><code>TestRetry</code> now waits <strong>30s</strong></li>", `<a href="https://github.com/acme/widgets/pull/42">`} {
		if !strings.Contains(html, want) {
			t.Errorf("html %q lacks %q", html, want)
		}
	}

	// A retry of the same delivery reuses the Message-ID; a second reply
	// answers the first one and keeps the whole chain.
	rcpt2, err := a.Deliver(context.Background(), d)
	if err != nil || rcpt2.ChannelID != rcpt.ChannelID {
		t.Fatalf("retry: %v, id %q want %q", err, rcpt2.ChannelID, rcpt.ChannelID)
	}
	d.ID = "dlv-2"
	rcpt3, err := a.Deliver(context.Background(), d)
	if err != nil || rcpt3.ChannelID == rcpt.ChannelID {
		t.Fatalf("second reply: %v, id %q", err, rcpt3.ChannelID)
	}
	last, _ := mail.CreateReader(bytes.NewReader(sink.mails()[2].data))
	irt, _ := last.Header.MsgIDList("In-Reply-To")
	chain, _ := last.Header.MsgIDList("References")
	if len(irt) != 1 || irt[0] != rcpt.ChannelID || strings.Join(chain, " ") != "root-1@example.com "+rcpt.ChannelID {
		t.Errorf("second reply In-Reply-To %v References %v", irt, chain)
	}

	// The user's reply to the gateway's mail lands in the same conversation.
	reply := []byte("From: Ada Lovelace <ada@example.com>\r\nMessage-ID: <reply-2@example.com>\r\nIn-Reply-To: <" + rcpt3.ChannelID + ">\r\n" +
		"References: <root-1@example.com> <" + rcpt.ChannelID + "> <" + rcpt3.ChannelID + ">\r\nSubject: Re: Flaky test\r\n\r\nThanks!\r\n")
	in2 := ingestFixture(t, a, reply)
	if in2.Envelope.Conversation != in.Envelope.Conversation {
		t.Errorf("reply conversation %v, want %v", in2.Envelope.Conversation, in.Envelope.Conversation)
	}
}

func TestDeliverFailures(t *testing.T) {
	sink := newSMTPSink(t)
	a := newDeliverAdapter(t, sink, newRecorder())
	in := ingestFixture(t, a, []byte("From: ada@example.com\r\nMessage-ID: <root-f@example.com>\r\nSubject: s\r\n\r\nhi\r\n"))
	d := adapters.Delivery{ID: "dlv-f", To: in.Envelope.Conversation, Envelope: output("ok"), Attempt: 1}

	sink.fail(&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"})
	_, err := a.Deliver(context.Background(), d)
	if err == nil || errors.Is(err, adapters.ErrPermanent) {
		t.Fatalf("4xx: err = %v, want a transient error", err)
	}
	sink.fail(&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"})
	_, err = a.Deliver(context.Background(), d)
	if !errors.Is(err, adapters.ErrPermanent) {
		t.Fatalf("5xx: err = %v, want ErrPermanent", err)
	}
	if n := len(sink.mails()); n != 0 {
		t.Fatalf("%d mails accepted during failures", n)
	}
	if _, err := a.Deliver(context.Background(), d); err != nil {
		t.Fatalf("after failures: %v", err)
	}

	// An unknown thread, or another channel's anchor, cannot be answered.
	d.To = envelope.Conversation{Source: Name, Ref: "never-seen@example.com"}
	if _, err := a.Deliver(context.Background(), d); !errors.Is(err, adapters.ErrPermanent) {
		t.Errorf("unknown thread: err = %v, want ErrPermanent", err)
	}
	d.To = envelope.Conversation{Source: "slack", Ref: "x"}
	if _, err := a.Deliver(context.Background(), d); !errors.Is(err, adapters.ErrPermanent) {
		t.Errorf("foreign anchor: err = %v, want ErrPermanent", err)
	}

	// Bad credentials are the server's 5xx: permanent too.
	a.cfg.SMTP.Password = "wrong"
	d.To = in.Envelope.Conversation
	if _, err := a.Deliver(context.Background(), d); !errors.Is(err, adapters.ErrPermanent) {
		t.Errorf("bad credentials: err = %v, want ErrPermanent", err)
	}
}

func TestDeliverUnreachableIsTransient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	a := newTestAdapter(t, newRecorder(), func(c *Config) { c.SMTP.Addr = addr })
	in := ingestFixture(t, a, []byte("From: ada@example.com\r\nMessage-ID: <root-u@example.com>\r\n\r\nhi\r\n"))
	_, err = a.Deliver(context.Background(), adapters.Delivery{ID: "d", To: in.Envelope.Conversation, Envelope: output("x")})
	if err == nil || errors.Is(err, adapters.ErrPermanent) {
		t.Errorf("err = %v, want a transient error", err)
	}
}

func TestMarkdownToHTMLEscapes(t *testing.T) {
	h := MarkdownToHTML("<script>x</script> & [a](https://e.com/?a=1&b=2)\n\n```\n<b>\n```")
	for _, bad := range []string{"<script>", "<b>"} {
		if strings.Contains(h, bad) {
			t.Errorf("html %q contains %q", h, bad)
		}
	}
	if !strings.Contains(h, "&lt;script&gt;x&lt;/script&gt; &amp; [a](https://e.com/?a=1&amp;b=2)") || !strings.Contains(h, "<pre><code>&lt;b&gt;\n</code></pre>") {
		t.Errorf("html %q", h)
	}
}

// Every code span of a line is rendered, however many there are, and the
// placeholders they stand in for while the line is rendered never leak.
func TestMarkdownToHTMLManyCodeSpans(t *testing.T) {
	var spans []string
	for i := range 20 {
		spans = append(spans, fmt.Sprintf("`span%d<>&`", i))
	}
	h := MarkdownToHTML("Steps: " + strings.Join(spans, " then ") + " and \x00`nul` https://e.com/`x`")
	for i := range 20 {
		if want := fmt.Sprintf("<code>span%d&lt;&gt;&amp;</code>", i); !strings.Contains(h, want) {
			t.Errorf("html lacks %s:\n%s", want, h)
		}
	}
	if !strings.Contains(h, "<code>nul</code>") || !strings.Contains(h, `<a href="https://e.com/%60x%60">https://e.com/`+"`x`"+`</a>`) {
		t.Errorf("html %q", h)
	}
	if strings.ContainsRune(h, 0) {
		t.Errorf("html contains a NUL byte: %q", h)
	}
}
