package email

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
	"github.com/switchboardhq/switchboard/envelope"
)

// TestContract runs the channel adapters' contract against a private
// Dovecot and an SMTP sink. Mail comes by IMAP, not webhooks, and SMTP has
// no rate-limit answer with a wait.
func TestContract(t *testing.T) {
	p, _ := adapters.Lookup(Name)
	adaptertest.Run(t, p, adaptertest.Features{NoWebhooks: true, NoRateLimit: true}, adaptertest.Channel{
		Config: `
address: bot@switchboard.example
imap: {addr: "imap.example.com:993", username: bot, password: secret}
smtp: {addr: "smtp.example.com:587", username: bot, password: secret}
`,
		Required: []string{"address", "imap.addr", "imap.username", "smtp.addr", "smtp.password"},
		Invalid: []adaptertest.Invalid{
			{Key: "address", Value: "Bot <bot@switchboard.example>"},
			{Key: "senders", Value: "['ada example.com']"},
			{Key: "max_message", Value: "-1"},
			{Key: "max_part", Value: "big"},
			{Key: "senders", Value: "ada@example.com"},
			{Key: "imap.poll_interval", Value: "often"},
			{Key: "imap.addr", Value: "imap.example.com"},
			{Key: "imap.security", Value: "ssl"},
			{Key: "imap.move_to", Value: "INBOX"},
			{Key: "imap.poll_interval", Value: "-1m"},
			{Key: "smtp.security", Value: "none"},
			{Key: "smtp.timeout", Value: "-1s"},
		},
		Open: contractFake,
	})
}

// contractFake is the private mailbox and SMTP server of one contract
// check.
func contractFake(t *testing.T) adaptertest.Fake {
	mb := newMailbox(t)
	sink := newSMTPSink(t)
	n := 0
	// The watcher's progress: UIDs count from 1 in the fresh mailbox, one
	// a mail appended.
	handled, sent := make(chan uint32, 100), uint32(0)
	mailBy := func(from, body string) []byte {
		n++
		return []byte(mailFrom(from, fmt.Sprintf("contract-%d@example.com", n), "", body))
	}
	return adaptertest.Fake{
		New: func(t testing.TB, deps adapters.Deps) adapters.Adapter {
			// No allow-list: the gateway's own mail must be dropped for
			// being its own.
			a := newDepsAdapter(t, deps, func(c *Config) {
				c.IMAP = IMAPConfig{Addr: mb.addr, Security: Plain, Username: mb.user, Password: mb.pass}
				c.SMTP = SMTPConfig{Addr: sink.addr, Security: Plain, Username: sink.user, Password: sink.pass}
			})
			a.afterUID = func(uid uint32) { handled <- uid }
			return a
		},
		Message: func(testing.TB) []byte { return mailBy("Ada Lovelace <ada@example.com>", "Please look at the build.") },
		Own:     func(testing.TB) []byte { return mailBy("Switchboard <bot@switchboard.example>", "The build is green.") },
		Send: func(t testing.TB, _ adapters.Adapter, mail []byte) {
			mb.deliver(t, string(mail))
			sent++
			for {
				select {
				case uid := <-handled:
					if uid >= sent {
						return
					}
				case <-time.After(20 * time.Second):
					t.Fatalf("the watcher did not handle UID %d within 20s", sent)
				}
			}
		},
		To: func(t testing.TB, a adapters.Adapter) envelope.Conversation {
			// The gateway replies only in threads it received.
			return ingestFixture(t, a.(*Adapter), mailBy("ada@example.com", "hi")).Envelope.Conversation
		},
		RefuseCredentials: func(testing.TB) func() {
			return adaptertest.Toggle(&sink.mu, func(on bool) { sink.refused = on })
		},
	}
}
