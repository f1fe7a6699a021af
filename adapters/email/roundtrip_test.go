package email

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
	"github.com/switchboardhq/switchboard/store"
)

// sentHeader is what a test checks of a reply the gateway sent.
type sentHeader struct {
	to, subject, messageID, autoSubmitted string
	inReplyTo, references                 []string
}

func parseSent(t *testing.T, m sentMail) sentHeader {
	t.Helper()
	r, err := mail.CreateReader(bytes.NewReader(m.data))
	if err != nil {
		t.Fatal(err)
	}
	var h sentHeader
	h.to = strings.Join(m.to, ",")
	h.subject, _ = r.Header.Subject()
	h.messageID, _ = r.Header.MessageID()
	h.inReplyTo, _ = r.Header.MsgIDList("In-Reply-To")
	h.references, _ = r.Header.MsgIDList("References")
	h.autoSubmitted = r.Header.Get("Auto-Submitted")
	return h
}

// TestRoundTripThroughTheRouter drives a whole email conversation: a mail
// in the private Dovecot starts a session through a real router, an exec
// agent answers, the answer arrives at the SMTP server as a threaded reply,
// and a reply to that reply steers the same session and is answered in the
// same thread. The adapter's state is in the router's own store.
func TestRoundTripThroughTheRouter(t *testing.T) {
	mb := newMailbox(t)
	sink := newSMTPSink(t)
	st := runRouter(t, mb, sink, "#!/bin/sh\ncat > /dev/null\necho \"**answer** $(date +%s%N)\"\n")

	mb.deliver(t, mailFrom("Ada Lovelace <ada@example.com>", "rt-root@example.com", "", "Please look at the build."))
	first := parseSent(t, sink.waitMails(t, 1)[0])
	for _, c := range []struct{ what, got, want string }{
		{"To", first.to, "ada@example.com"},
		{"Subject", first.subject, "Re: test rt-root@example.com"},
		{"In-Reply-To", strings.Join(first.inReplyTo, " "), "rt-root@example.com"},
		{"References", strings.Join(first.references, " "), "rt-root@example.com"},
		{"Auto-Submitted", first.autoSubmitted, "auto-replied"},
	} {
		if c.got != c.want {
			t.Errorf("first reply: %s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if !strings.HasSuffix(first.messageID, "@switchboard.example") {
		t.Errorf("first reply: Message-ID %q is not on the gateway's domain", first.messageID)
	}

	// Ada answers the gateway's reply, quoting it.
	mb.deliver(t, mailFrom("Ada Lovelace <ada@example.com>", "rt-reply@example.com",
		"In-Reply-To: <"+first.messageID+">\r\nReferences: <rt-root@example.com> <"+first.messageID+">\r\n",
		"And the tests too.\r\n\r\nOn Mon, Switchboard wrote:\r\n> answer"))
	second := parseSent(t, sink.waitMails(t, 2)[1])
	if second.subject != "Re: test rt-root@example.com" || second.to != "ada@example.com" {
		t.Errorf("second reply: subject %q to %q", second.subject, second.to)
	}
	if got, want := strings.Join(second.inReplyTo, " "), "rt-reply@example.com"; got != want {
		t.Errorf("second reply: In-Reply-To %q, want %q", got, want)
	}
	if got, want := strings.Join(second.references, " "), "rt-root@example.com "+first.messageID+" rt-reply@example.com"; got != want {
		t.Errorf("second reply: References %q, want %q", got, want)
	}
	if second.messageID == first.messageID {
		t.Errorf("both replies have Message-ID %q", first.messageID)
	}

	// One session holds the whole thread: two mails in, two answers out.
	sessions, err := st.ListSessions(context.Background(), "", 10)
	if err != nil || len(sessions) != 1 {
		t.Fatalf("sessions %v (%v), want one", sessions, err)
	}
	recs, err := st.Read(context.Background(), sessions[0].ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, r := range recs {
		dirs = append(dirs, string(r.Direction))
	}
	if want := []string{"inbound", "outbound", "inbound", "outbound"}; strings.Join(dirs, " ") != strings.Join(want, " ") {
		t.Fatalf("log directions %v, want %v", dirs, want)
	}
	if recs[2].Envelope.ID != "email:rt-reply@example.com" || recs[2].Envelope.Text != "And the tests too." {
		t.Errorf("the reply was stored as %s %q, want only the new text", recs[2].Envelope.ID, recs[2].Envelope.Text)
	}
	if recs[0].Direction != store.Inbound || recs[0].Envelope.Conversation.Ref != "rt-root@example.com" {
		t.Errorf("first record %+v", recs[0].Envelope.Conversation)
	}
	if mails := sink.mails(); len(mails) != 2 {
		t.Errorf("%d mails sent, want 2", len(mails))
	}
}

// runRouter runs, until t ends, the adapter on mailbox mb and SMTP server
// sink, a real router over a fresh store, and a route to an exec agent
// with the given script, and returns the store.
func runRouter(t *testing.T, mb *mailbox, sink *smtpSink, script string) store.Store {
	t.Helper()
	_, st := adaptertest.RunRouter(t, Name, "", script, func(in adapters.Ingress, kv store.KV) *Adapter {
		return newStateAdapter(t, kv, in, func(c *Config) {
			c.Senders = []string{"example.com"}
			c.IMAP = IMAPConfig{Addr: mb.addr, Security: Plain, Username: mb.user, Password: mb.pass}
			c.SMTP = SMTPConfig{Addr: sink.addr, Security: Plain, Username: sink.user, Password: sink.pass}
		})
	})
	return st
}

// TestStreamedAnswerIsMailedOnce checks that an agent that streams its
// answer (50 chunks over 5 s) is answered by one mail with the final text:
// mail cannot be edited, so the partial states are not sent.
func TestStreamedAnswerIsMailedOnce(t *testing.T) {
	mb := newMailbox(t)
	sink := newSMTPSink(t)
	st := runRouter(t, mb, sink, `#!/bin/sh
cat >/dev/null
i=1
while [ $i -le 50 ]; do
  echo "@switchboard {\"append\": \"part$i \"}"
  sleep 0.1
  i=$((i+1))
done
echo '@switchboard {"append": "the end"}'
`)
	mb.deliver(t, mailFrom("Ada Lovelace <ada@example.com>", "stream-root@example.com", "", "Stream me an answer."))
	mail := sink.waitMails(t, 1)[0]
	want := ""
	for i := 1; i <= 50; i++ {
		want += fmt.Sprintf("part%d ", i)
	}
	want += "the end"
	if got := plainText(t, mail.data); got != want {
		t.Errorf("the mail's text is %q, want the final text %q", got, want)
	}
	// Every update is in the log; the outbox has nothing left to send.
	sessions, err := st.ListSessions(context.Background(), "", 10)
	if err != nil || len(sessions) != 1 {
		t.Fatalf("sessions %v (%v), want one", sessions, err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ds, err := st.ListDeliveries(context.Background(), store.Pending, "", 100)
		if err == nil && len(ds) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries still pending: %v %v", ds, err)
		}
	}
	recs, err := st.Read(context.Background(), sessions[0].ID, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(recs); n < 3 || recs[len(recs)-1].Envelope.Text != want || recs[len(recs)-1].Envelope.Partial() {
		t.Errorf("%d records ending %+v, want the stream ending with the final text", n, recs[len(recs)-1].Envelope)
	}
	if mails := sink.mails(); len(mails) != 1 {
		t.Errorf("%d mails sent, want 1", len(mails))
	}
}

// plainText returns the text/plain part of mail data, trimmed.
func plainText(t *testing.T, data []byte) string {
	t.Helper()
	r, err := mail.CreateReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for {
		p, err := r.NextPart()
		if err != nil {
			t.Fatalf("no text/plain part: %v", err)
		}
		if ct := p.Header.Get("Content-Type"); strings.HasPrefix(ct, "text/plain") {
			b, err := io.ReadAll(p.Body)
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(string(b))
		}
	}
}
