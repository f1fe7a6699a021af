package email

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/switchboardhq/switchboard/adapters"
)

// Deliver sends d's text as a reply in the thread d.To names, to the
// thread's originator: "Re: <subject>", In-Reply-To and References from the
// thread, Auto-Submitted: auto-replied, the Markdown as text/plain with an
// HTML alternative. Its Message-ID is derived from d.ID, so a retry after an
// unknown outcome reuses it (and the recipient's client can fold the
// duplicate). A 4xx answer is returned as a plain error (retried); a 5xx
// answer, or a thread the gateway has no record of, wraps
// adapters.ErrPermanent. It blocks until the server accepted the message or
// failed, bounded by smtp.timeout; it is safe for concurrent use.
func (a *Adapter) Deliver(ctx context.Context, d adapters.Delivery) (adapters.Receipt, error) {
	if d.To.Source != Name || d.To.Ref == "" {
		return adapters.Receipt{}, fmt.Errorf("email: deliver: %w: conversation %s is not an email thread", adapters.ErrPermanent, d.To.Key())
	}
	th, stored, err := a.threads.load(ctx, d.To.Ref)
	if err != nil {
		return adapters.Receipt{}, fmt.Errorf("email: deliver: %w", err)
	}
	if stored == nil || len(th.To) == 0 {
		return adapters.Receipt{}, fmt.Errorf("email: deliver: %w: no record of thread <%s> (the gateway replies only to threads it received)", adapters.ErrPermanent, d.To.Ref)
	}
	id := a.messageID(d.ID)
	msg, err := a.compose(th, id, d.Envelope.Text)
	if err != nil {
		return adapters.Receipt{}, fmt.Errorf("email: deliver: %w: %v", adapters.ErrPermanent, err)
	}
	if err := a.send(ctx, th.To, msg); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code >= 500 {
			return adapters.Receipt{}, fmt.Errorf("email: deliver: %w: %v", adapters.ErrPermanent, err)
		}
		return adapters.Receipt{}, fmt.Errorf("email: deliver: %w", err)
	}
	// The mail is sent: a failure to record it must not cause a resend. The
	// thread is read again only if it changed since it was loaded above.
	if _, err := a.threads.UpdateLoaded(ctx, d.To.Ref, th, stored, func(t *Thread) { t.addRef(id) }); err != nil {
		a.log.Warn("email: reply sent but thread not updated", "thread", d.To.Ref, "err", err)
	}
	return adapters.Receipt{ChannelID: id}, nil
}

// messageID derives the Message-ID (without brackets) of the reply for a
// delivery: stable across retries, unique per delivery.
func (a *Adapter) messageID(deliveryID string) string {
	sum := sha256.Sum256([]byte(deliveryID))
	return "switchboard." + hex.EncodeToString(sum[:16]) + "@" + a.cfg.SMTP.Domain
}

// compose builds the reply.
func (a *Adapter) compose(th Thread, id, text string) ([]byte, error) {
	var h mail.Header
	h.SetDate(a.now())
	h.SetAddressList("From", []*mail.Address{{Name: a.cfg.DisplayName, Address: a.cfg.Address}})
	to := make([]*mail.Address, len(th.To))
	for i, addr := range th.To {
		to[i] = &mail.Address{Address: addr}
	}
	if len(to) == 1 {
		to[0].Name = th.ToName
	}
	h.SetAddressList("To", to)
	subject := th.Subject
	if subject == "" {
		subject = "(no subject)"
	}
	h.SetSubject("Re: " + subject)
	h.SetMessageID(id)
	if n := len(th.References); n > 0 {
		h.SetMsgIDList("In-Reply-To", th.References[n-1:])
		h.SetMsgIDList("References", th.References)
	}
	h.Set("Auto-Submitted", "auto-replied")
	h.Set("X-Auto-Response-Suppress", "All")

	var buf bytes.Buffer
	alt, err := mail.CreateInlineWriter(&buf, h) // multipart/alternative
	if err != nil {
		return nil, err
	}
	for _, part := range []struct{ typ, body string }{
		{"text/plain", text},
		{"text/html", MarkdownToHTML(text)},
	} {
		var ph mail.InlineHeader
		ph.SetContentType(part.typ, map[string]string{"charset": "utf-8"})
		w, err := alt.CreatePart(ph)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write([]byte(part.body)); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	}
	if err := alt.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// send submits msg to the SMTP server, and records the outcome (see sent)
// unless ctx ended.
func (a *Adapter) send(ctx context.Context, to []string, msg []byte) error {
	result, err := a.submit(ctx, to, msg)
	if ctx.Err() == nil {
		a.sent(result, err)
	}
	return err
}

// submit submits msg to the SMTP server and says how it went: one of the
// send* results.
func (a *Adapter) submit(ctx context.Context, to []string, msg []byte) (result string, err error) {
	timeout := a.cfg.SMTP.Timeout.D()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host, _, _ := net.SplitHostPort(a.cfg.SMTP.Addr)
	tlsCfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	dialer := &net.Dialer{Timeout: timeout}
	var conn net.Conn
	if a.cfg.SMTP.Security == TLS {
		conn, err = (&tls.Dialer{NetDialer: dialer, Config: tlsCfg}).DialContext(ctx, "tcp", a.cfg.SMTP.Addr)
	} else {
		conn, err = dialer.DialContext(ctx, "tcp", a.cfg.SMTP.Addr)
	}
	if err != nil {
		return sendUnreachable, fmt.Errorf("smtp: dial: %w", err)
	}
	// Cancellation closes the connection, which unblocks any command.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var c *smtp.Client
	if a.cfg.SMTP.Security == StartTLS {
		c, err = smtp.NewClientStartTLS(conn, tlsCfg)
		if err != nil {
			conn.Close()
			return sendUnreachable, fmt.Errorf("smtp: starttls: %w", err)
		}
	} else {
		c = smtp.NewClient(conn)
	}
	defer c.Close()
	c.CommandTimeout, c.SubmissionTimeout = timeout, timeout
	if err := c.Hello(a.cfg.SMTP.Domain); err != nil {
		return sendUnreachable, fmt.Errorf("smtp: hello: %w", err)
	}
	if a.cfg.SMTP.Username != "" {
		if err := c.Auth(sasl.NewPlainClient("", a.cfg.SMTP.Username, a.cfg.SMTP.Password)); err != nil {
			var se *smtp.SMTPError
			if errors.As(err, &se) {
				return sendRejected, fmt.Errorf("smtp: auth: %w", err)
			}
			return sendUnreachable, fmt.Errorf("smtp: auth: %w", err)
		}
	}
	if err := c.SendMail(a.cfg.Address, to, bytes.NewReader(msg)); err != nil {
		if ctx.Err() != nil {
			return sendError, fmt.Errorf("smtp: send: %w", ctx.Err())
		}
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code >= 500 {
			return sendPermanent, fmt.Errorf("smtp: send: %w", err)
		}
		return sendError, fmt.Errorf("smtp: send: %w", err)
	}
	_ = c.Quit()
	return sendOK, nil
}
