package email

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-message/mail"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/retry"
	"github.com/switchboardhq/switchboard/store"
)

// Run watches the mailbox until ctx ends, then returns nil. It connects,
// logs in and selects the mailbox, hands every message after the saved
// cursor to the router, then waits for new mail with IDLE, renewed every
// imap.poll_interval (or polls that often when the server lacks IDLE).
// After a failure it reconnects, waiting imap.backoff, doubled after each
// failure up to imap.max_backoff. Its logins, and how recently its loop
// ran, are what Check reports of IMAP. Only one Run may be active per
// mailbox, across every gateway process sharing the store.
//
// Each message is handled in UID order: loop-prone mail and mail from
// senders outside the allow-list is logged and left unread; other mail is
// recorded in its thread, ingested, then marked \Seen (or moved to
// imap.move_to). The cursor is saved after each message, so mail that
// arrives while the gateway is down is handled on the next start, once.
// One message never stops the mailbox: mail that is too large, cannot be
// parsed, or cannot be stored (see refused) is logged, counted in
// switchboard_email_skipped_total{reason} and left unread, and the cursor
// moves past it; only a transient failure (the store or the IMAP server
// not answering) retries the same message.
func (a *Adapter) Run(ctx context.Context) error {
	bo := retry.Backoff{Min: a.cfg.IMAP.Backoff.D(), Max: a.cfg.IMAP.MaxBackoff.D()}
	for {
		progressed, err := a.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if progressed {
			bo.Reset() // it ran fine for a while: start over
		}
		wait := bo.Next()
		a.log.Warn("email: imap connection ended; reconnecting", "err", err, "in", wait)
		if !retry.Sleep(ctx, wait) {
			return nil
		}
	}
}

// session runs one connection until it fails or ctx ends. progressed is
// true once the mailbox was selected.
func (a *Adapter) session(ctx context.Context) (progressed bool, err error) {
	// The handler runs on the connection's reader: it only signals.
	newMail := make(chan struct{}, 1)
	signal := func() {
		select {
		case newMail <- struct{}{}:
		default:
		}
	}
	c, err := a.dialIMAP(ctx, &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				signal()
			}
		},
	})
	if err != nil {
		a.imapLoginFailed(ctx, false, err)
		return false, err
	}
	defer c.Close()
	// Cancellation closes the connection, which unblocks every command.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	if err := c.Login(a.cfg.IMAP.Username, a.cfg.IMAP.Password).Wait(); err != nil {
		a.imapLoginFailed(ctx, true, err)
		return false, fmt.Errorf("imap: login: %w", err)
	}
	a.imapLoggedIn()
	mailbox := a.cfg.IMAP.Mailbox
	sel, err := c.Select(mailbox, nil).Wait()
	if err != nil {
		return false, fmt.Errorf("imap: select %s: %w", mailbox, err)
	}
	validity, last, err := a.cursor.Load(ctx, mailbox)
	if err != nil {
		return false, err
	}
	if validity != sel.UIDValidity {
		if validity != 0 {
			a.log.Warn("email: UIDVALIDITY changed; rescanning the mailbox (handled mail is recognised by Message-ID)",
				"was", validity, "now", sel.UIDValidity)
		}
		last = 0
		if err := a.cursor.Save(ctx, mailbox, sel.UIDValidity, 0); err != nil {
			return false, err
		}
	}
	a.log.Info("email: watching", "folder", mailbox, "uidvalidity", sel.UIDValidity, "after_uid", last,
		"idle", c.Caps().Has(imap.CapIdle))
	for {
		if last, err = a.fetchNew(ctx, c, sel.UIDValidity, last); err != nil {
			return true, err
		}
		if err := a.waitForMail(ctx, c, newMail); err != nil {
			return true, err
		}
		a.beat()
	}
}

// dialIMAP connects as imap.security says.
func (a *Adapter) dialIMAP(ctx context.Context, h *imapclient.UnilateralDataHandler) (*imapclient.Client, error) {
	host, _, _ := net.SplitHostPort(a.cfg.IMAP.Addr)
	timeout := a.cfg.IMAP.Timeout.D()
	opts := &imapclient.Options{
		UnilateralDataHandler: h,
		TLSConfig:             &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12},
	}
	dialer := &net.Dialer{Timeout: timeout}
	var conn net.Conn
	var err error
	if a.cfg.IMAP.Security == TLS {
		conn, err = (&tls.Dialer{NetDialer: dialer, Config: opts.TLSConfig}).DialContext(ctx, "tcp", a.cfg.IMAP.Addr)
	} else {
		conn, err = dialer.DialContext(ctx, "tcp", a.cfg.IMAP.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("imap: dial: %w", err)
	}
	var c *imapclient.Client
	if a.cfg.IMAP.Security == StartTLS {
		if c, err = imapclient.NewStartTLS(conn, opts); err != nil {
			conn.Close()
			return nil, fmt.Errorf("imap: starttls: %w", err)
		}
	} else {
		c = imapclient.New(conn, opts)
	}
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, fmt.Errorf("imap: greeting: %w", err)
	}
	return c, nil
}

// waitForMail returns when the server announced new mail, the poll
// interval passed (IDLE is renewed as often, so that the loop runs and
// proves the connection alive), or the connection failed; a server that
// does not end IDLE or answer NOOP within imap.timeout counts as failed.
func (a *Adapter) waitForMail(ctx context.Context, c *imapclient.Client, newMail <-chan struct{}) error {
	if c.Caps().Has(imap.CapIdle) || c.Caps().Has(imap.CapIMAP4rev2) {
		var idle *imapclient.IdleCommand
		err := a.within(c, func() (err error) {
			idle, err = c.Idle()
			return err
		})
		if err != nil {
			return fmt.Errorf("imap: idle: %w", err)
		}
		t := time.NewTimer(a.cfg.IMAP.PollInterval.D())
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-newMail:
		case <-c.Closed():
		case <-t.C:
		}
		err = a.within(c, func() error {
			if err := idle.Close(); err != nil {
				return err
			}
			return idle.Wait()
		})
		if err != nil {
			return fmt.Errorf("imap: idle: %w", err)
		}
		return ctx.Err()
	}
	t := time.NewTimer(a.cfg.IMAP.PollInterval.D())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-newMail:
	case <-t.C:
	}
	if err := a.within(c, func() error { return c.Noop().Wait() }); err != nil {
		return fmt.Errorf("imap: noop: %w", err)
	}
	return nil
}

// within runs cmd, closing the connection if it has not returned after
// imap.timeout (the server, or the path to it, went silent), which makes
// it return an error and the watcher reconnect.
func (a *Adapter) within(c *imapclient.Client, cmd func() error) error {
	t := time.AfterFunc(a.cfg.IMAP.Timeout.D(), func() { c.Close() })
	defer t.Stop()
	return cmd()
}

// fetchNew handles every message with a UID above last, in order, saving
// the cursor after each, and returns the new last UID.
func (a *Adapter) fetchNew(ctx context.Context, c *imapclient.Client, validity, last uint32) (uint32, error) {
	mailbox := a.cfg.IMAP.Mailbox
	data, err := c.UIDSearch(&imap.SearchCriteria{
		UID: []imap.UIDSet{{imap.UIDRange{Start: imap.UID(last + 1), Stop: 0}}},
	}, nil).Wait()
	if err != nil {
		return last, fmt.Errorf("imap: search: %w", err)
	}
	// "n:*" always includes the highest UID, even when it is below n.
	var uids []imap.UID
	for _, uid := range data.AllUIDs() {
		if uint32(uid) > last {
			uids = append(uids, uid)
		}
	}
	slices.Sort(uids)
	for _, uid := range uids {
		if err := a.fetchOne(ctx, c, uid); err != nil {
			return last, err
		}
		last = uint32(uid)
		if err := a.cursor.Save(ctx, mailbox, validity, last); err != nil {
			return last, err
		}
		a.beat()
		if a.afterUID != nil {
			a.afterUID(last)
		}
	}
	return last, nil
}

// fetchOne reads and handles one message. Only failures that a retry can
// fix (the connection, the router, the store) are errors: a
// message that is too large or unreadable is logged and passed over.
func (a *Adapter) fetchOne(ctx context.Context, c *imapclient.Client, uid imap.UID) error {
	set := imap.UIDSetNum(uid)
	meta, err := c.Fetch(set, &imap.FetchOptions{UID: true, RFC822Size: true}).Collect()
	if err != nil {
		return fmt.Errorf("imap: fetch %d: %w", uid, err)
	}
	if len(meta) == 0 {
		return nil // expunged meanwhile
	}
	a.mailSeen()
	log := a.log.With("uid", uint32(uid))
	if a.cfg.MaxMessage > 0 && meta[0].RFC822Size > a.cfg.MaxMessage {
		log.Warn("email: message left unread: larger than max_message", "size", meta[0].RFC822Size, "max_message", a.cfg.MaxMessage)
		a.metrics.skipped.WithLabelValues(skipTooLarge).Inc()
		return nil
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(set, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		return fmt.Errorf("imap: fetch %d: %w", uid, err)
	}
	if len(msgs) == 0 {
		return nil
	}
	src := msgs[0].FindBodySection(section)
	m, in, skip, err := a.inspect(src)
	if err != nil {
		reason := skipUnreadable
		if errors.Is(err, errTooLarge) {
			reason = skipTooLarge
		}
		log.Warn("email: message left unread: cannot read it", "err", err)
		a.metrics.skipped.WithLabelValues(reason).Inc()
		return nil
	}
	log = log.With("message_id", m.MessageID, "from", in.Facts.Sender)
	if skip != "" {
		log.Info("email: message left unread: not acted on", "reason", skip)
		return nil
	}
	if err := a.handle(ctx, m, in); err != nil {
		if !a.refused(ctx, m.MessageID, err) {
			return err // transient: reconnect after a back-off and try again
		}
		log.Error("email: message left unread: it cannot be stored; later mail is read on", "err", err)
		a.metrics.skipped.WithLabelValues(skipRefused).Inc()
		return nil
	}
	a.failing = failing{}
	if a.cfg.IMAP.MoveTo != "" {
		if _, err := c.Move(set, a.cfg.IMAP.MoveTo).Wait(); err != nil {
			return fmt.Errorf("imap: move %d to %s: %w", uid, a.cfg.IMAP.MoveTo, err)
		}
		return nil
	}
	if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err != nil {
		return fmt.Errorf("imap: mark %d seen: %w", uid, err)
	}
	return nil
}

// Reasons a message is passed over, the values of the reason label of
// switchboard_email_skipped_total.
const (
	skipTooLarge   = "too_large"  // larger than max_message
	skipUnreadable = "unreadable" // not a message that can be parsed
	skipRefused    = "refused"    // the router or the store cannot take it
)

// maxAttempts is how many times in a row handling one message may fail,
// while the store answers, before the message is passed over.
const maxAttempts = 3

// failing counts the consecutive failures to handle one message. It
// belongs to the one Run of the adapter.
type failing struct {
	messageID string
	attempts  int
}

// refused reports whether err, returned by handle for the message
// messageID, means that the message itself cannot be stored, so that the
// watcher passes it over instead of retrying it for ever and reading no
// later mail. That is so when the router or the store refused it outright
// (an invalid envelope, a permanent error), or when handling it failed
// maxAttempts times in a row while the store answered (a refusal whose kind
// the adapter does not know). A failure while ctx ends or the store does not
// answer is transient: the message is tried again, however often.
func (a *Adapter) refused(ctx context.Context, messageID string, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var invalid *envelope.ValidationError
	if errors.As(err, &invalid) || errors.Is(err, adapters.ErrPermanent) || errors.Is(err, store.ErrInvalid) {
		return true
	}
	if _, _, perr := a.cursor.Load(ctx, a.cfg.IMAP.Mailbox); perr != nil {
		return false // the store does not answer
	}
	if a.failing.messageID != messageID {
		a.failing = failing{messageID: messageID}
	}
	a.failing.attempts++
	a.log.Warn("email: handling a message failed while the store answers", "message_id", messageID,
		"attempt", a.failing.attempts, "of", maxAttempts, "err", err)
	return a.failing.attempts >= maxAttempts
}

// handle records m in its thread and hands it to the router, unless the
// thread says it was handed over before (a rescan after a UIDVALIDITY
// change, a crash between ingesting and saving the cursor). It is also what
// makes replies possible: the thread keeps who to answer and the References
// chain.
func (a *Adapter) handle(ctx context.Context, m *Message, in adapters.Inbound) error {
	root := in.Envelope.Conversation.Ref
	th, stored, err := a.threads.load(ctx, root)
	if err != nil {
		return err
	}
	if th.handled(m.MessageID) {
		a.log.Info("email: message already handled", "message_id", m.MessageID)
		return nil
	}
	_, err = a.threads.UpdateLoaded(ctx, root, th, stored, func(t *Thread) {
		if len(t.To) == 0 {
			to := m.ReplyTo
			if len(to) == 0 && m.From != nil {
				to = []*mail.Address{m.From}
			}
			for _, addr := range to {
				t.To = append(t.To, addr.Address)
			}
			if len(to) > 0 {
				t.ToName = to[0].Name
			}
		}
		if t.Subject == "" {
			t.Subject = stripSubjectPrefixes(m.Subject)
		}
		if len(m.References) > 0 {
			t.References = nil
			for _, id := range m.References {
				t.addRef(id)
			}
		} else if len(t.References) == 0 {
			for _, id := range m.InReplyTo {
				t.addRef(id)
			}
		}
		t.addRef(m.MessageID)
	})
	if err != nil {
		return err
	}
	out, err := a.ingress.Ingest(ctx, in)
	if err != nil {
		return fmt.Errorf("email: ingest %s: %w", m.MessageID, err)
	}
	a.log.Info("email: message handled", "message_id", m.MessageID, "session", out.SessionID,
		"duplicate", out.Duplicate, "dropped", out.Dropped)
	_, err = a.threads.Update(ctx, root, func(t *Thread) { t.markHandled(m.MessageID) })
	return err
}
