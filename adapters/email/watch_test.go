package email

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/config/duration"
	"github.com/switchboardhq/switchboard/internal/testenv"
	"github.com/switchboardhq/switchboard/store"
)

// mailbox is a private Dovecot with a client that delivers test mail.
type mailbox struct {
	addr, user, pass string
	c                *imapclient.Client
}

func newMailbox(t *testing.T) *mailbox {
	t.Helper()
	addr, user, pass, _ := testenv.Dovecot(t)
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	return &mailbox{addr: addr, user: user, pass: pass, c: c}
}

// deliver APPENDs a message to INBOX.
func (mb *mailbox) deliver(t testing.TB, src string) {
	t.Helper()
	cmd := mb.c.Append("INBOX", int64(len(src)), nil)
	if _, err := cmd.Write([]byte(src)); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

// flags reports, by UID, which INBOX messages are flagged \Seen.
func (mb *mailbox) flags(t *testing.T) map[imap.UID]bool {
	t.Helper()
	if _, err := mb.c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := mb.c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	out := map[imap.UID]bool{}
	for _, m := range msgs {
		out[m.UID] = slices.Contains(m.Flags, imap.FlagSeen)
	}
	return out
}

func mailFrom(from, id, extra, body string) string {
	return fmt.Sprintf("From: %s\r\nTo: bot@switchboard.example\r\nMessage-ID: <%s>\r\nSubject: test %s\r\nDate: Mon, 3 Jun 2024 10:00:00 +0000\r\n%s\r\n%s\r\n", from, id, id, extra, body)
}

// watcher runs an adapter's Run until stop is called.
type watcher struct {
	a      *Adapter
	cancel context.CancelFunc
	done   chan error
	uids   chan uint32
}

// waitUID waits until the watcher has finished with UID uid.
func (w *watcher) waitUID(t *testing.T, uid uint32) {
	t.Helper()
	for {
		select {
		case got := <-w.uids:
			if got >= uid {
				return
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("UID %d not finished within 20s", uid)
		}
	}
}

func startWatcher(t *testing.T, mb *mailbox, st store.KV, rec adapters.Ingress, mod func(*Config)) *watcher {
	t.Helper()
	a := newStateAdapter(t, st, rec, func(c *Config) {
		c.Senders = []string{"example.com"}
		c.IMAP = IMAPConfig{Addr: mb.addr, Security: Plain, Username: mb.user, Password: mb.pass}
		if mod != nil {
			mod(c)
		}
	})
	return runWatcher(t, a)
}

// runWatcher runs a's Run until the watcher is stopped.
func runWatcher(t *testing.T, a *Adapter) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{a: a, cancel: cancel, done: make(chan error, 1), uids: make(chan uint32, 100)}
	a.afterUID = func(uid uint32) { w.uids <- uid }
	go func() { w.done <- a.Run(ctx) }()
	t.Cleanup(w.stop)
	return w
}

func (w *watcher) stop() {
	w.cancel()
	if err := <-w.done; err != nil {
		panic(err) // Run returns nil on cancellation
	}
	w.done <- nil // later stops return at once
}

// next waits for the next ingested message.
func next(t *testing.T, rec *recorder) adapters.Inbound {
	t.Helper()
	select {
	case in := <-rec.ch:
		return in
	case <-time.After(20 * time.Second):
		t.Fatal("no message ingested within 20s")
	}
	return adapters.Inbound{}
}

// expect waits for messages with these ids, in order, and fails on any
// other (a duplicate or a message that should have been ignored).
func expect(t *testing.T, rec *recorder, ids ...string) []adapters.Inbound {
	t.Helper()
	var got []adapters.Inbound
	for _, id := range ids {
		in := next(t, rec)
		if in.Envelope.ID != "email:"+id {
			t.Fatalf("ingested %s, want email:%s", in.Envelope.ID, id)
		}
		got = append(got, in)
	}
	return got
}

func TestWatcherAgainstDovecot(t *testing.T) {
	mb := newMailbox(t)
	state := newTestStore(t)
	rec := newRecorder()

	// Waiting before the watcher starts: a new thread, an auto-reply, list
	// mail, and mail from a sender outside the allow-list.
	mb.deliver(t, mailFrom("Ada <ada@example.com>", "root@example.com", "", "Please run the tests."))
	mb.deliver(t, mailFrom("Linus <linus@example.com>", "ooo@example.com", "Auto-Submitted: auto-replied\r\n", "Out of office."))
	mb.deliver(t, mailFrom("News <news@example.com>", "bulk@example.com", "Precedence: bulk\r\nList-Id: <news.example.com>\r\n", "Sale!"))
	mb.deliver(t, mailFrom("Eve <eve@elsewhere.example>", "eve@elsewhere.example", "", "Let me in."))

	w := startWatcher(t, mb, state, rec, nil)
	first := expect(t, rec, "root@example.com")[0]

	// New mail while watching (IDLE), then a reply in the thread.
	mb.deliver(t, mailFrom("Ada <ada@example.com>", "reply@example.com",
		"In-Reply-To: <sent-1@switchboard.example>\r\nReferences: <root@example.com> <sent-1@switchboard.example>\r\n", "Also the linter."))
	reply := expect(t, rec, "reply@example.com")[0]
	w.waitUID(t, 5)
	if reply.Envelope.Conversation != first.Envelope.Conversation || first.Envelope.Conversation.Ref != "root@example.com" {
		t.Errorf("reply conversation %v, first %v", reply.Envelope.Conversation, first.Envelope.Conversation)
	}
	w.stop()

	// Only handled mail is marked \Seen; the rest is left unread.
	want := map[imap.UID]bool{1: true, 2: false, 3: false, 4: false, 5: true}
	if got := mb.flags(t); !mapsEqual(got, want) {
		t.Errorf("seen flags %v, want %v", got, want)
	}

	// Mail delivered while the gateway was stopped is handled once on start.
	mb.deliver(t, mailFrom("Ada <ada@example.com>", "offline@example.com", "", "Sent while you were down."))
	w = startWatcher(t, mb, state, rec, nil)
	expect(t, rec, "offline@example.com")
	mb.deliver(t, mailFrom("Ada <ada@example.com>", "sentinel-1@example.com", "", "sentinel"))
	expect(t, rec, "sentinel-1@example.com")
	w.waitUID(t, 7)
	w.stop()

	// A UIDVALIDITY change (here: the cursor remembers another one) rescans
	// the mailbox without handing anything over twice.
	cur := &cursors{kv: state, address: "bot@switchboard.example"}
	validity, last, err := cur.Load(context.Background(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if validity == 0 || last != 7 {
		t.Errorf("cursor: UIDVALIDITY %d, last UID %d; want last UID 7", validity, last)
	}
	if err := cur.Save(context.Background(), "INBOX", validity+1, 7); err != nil {
		t.Fatal(err)
	}
	w = startWatcher(t, mb, state, rec, nil)
	mb.deliver(t, mailFrom("Ada <ada@example.com>", "sentinel-2@example.com", "", "sentinel"))
	expect(t, rec, "sentinel-2@example.com")
	w.stop()
	if n := len(rec.all()); n != 5 {
		t.Errorf("%d messages ingested in all, want 5", n)
	}
}

func TestWatcherMovesHandledMail(t *testing.T) {
	mb := newMailbox(t)
	if err := mb.c.Create("Handled", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	mb.deliver(t, mailFrom("Ada <ada@example.com>", "move-1@example.com", "", "Move me."))
	mb.deliver(t, mailFrom("Bulk <bulk@example.com>", "stay@example.com", "Precedence: junk\r\n", "Stay."))
	w := startWatcher(t, mb, newTestStore(t), rec, func(c *Config) { c.IMAP.MoveTo = "Handled" })
	expect(t, rec, "move-1@example.com")
	mb.deliver(t, mailFrom("Ada <ada@example.com>", "move-2@example.com", "", "sentinel"))
	expect(t, rec, "move-2@example.com")
	w.waitUID(t, 3)
	w.stop()
	st, err := mb.c.Status("Handled", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if *st.NumMessages != 2 {
		t.Errorf("Handled holds %d messages, want 2", *st.NumMessages)
	}
	if got := mb.flags(t); len(got) != 1 || got[2] {
		t.Errorf("INBOX flags %v, want only the junk mail, unread", got)
	}
}

func TestWatcherReconnectsAfterDrop(t *testing.T) {
	mb := newMailbox(t)
	// The watcher reaches Dovecot through a proxy whose connections the
	// test cuts.
	p := newProxy(t, mb.addr)
	rec := newRecorder()
	mb.deliver(t, mailFrom("Ada <ada@example.com>", "before-drop@example.com", "", "one"))
	proxied := &mailbox{addr: p.addr, user: mb.user, pass: mb.pass}
	w := startWatcher(t, proxied, newTestStore(t), rec, func(c *Config) { c.IMAP.Backoff = duration.Duration(time.Millisecond) })
	expect(t, rec, "before-drop@example.com")
	w.waitUID(t, 1)
	p.cut()
	mb.deliver(t, mailFrom("Ada <ada@example.com>", "after-drop@example.com", "", "two"))
	expect(t, rec, "after-drop@example.com")
	w.stop()
}

// proxy forwards TCP connections to a server; the test can cut them, or
// freeze those open (nothing is forwarded on them until thawed, as on a
// network path that went silent).
type proxy struct {
	addr string

	mu    sync.Mutex
	links []*link
}

// link is one forwarded connection.
type link struct {
	down, up net.Conn
	gate     sync.RWMutex // held for writing while frozen
	frozen   bool         // guarded by the proxy's mu
}

func newProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			l := &link{down: c, up: up}
			p.mu.Lock()
			p.links = append(p.links, l)
			p.mu.Unlock()
			wg.Go(func() { l.pipe(up, c) })
			wg.Go(func() { l.pipe(c, up) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		wg.Wait()
	})
	return p
}

// pipe copies from src to dst until either fails, waiting while the link
// is frozen, then closes both.
func (l *link) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			l.gate.RLock()
			_, werr := dst.Write(buf[:n])
			l.gate.RUnlock()
			if werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cut closes every connection made so far.
func (p *proxy) cut() {
	p.thaw()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.links {
		l.down.Close()
		l.up.Close()
	}
	p.links = nil
}

// freeze stops forwarding on the connections open now until thaw; later
// connections are forwarded.
func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.links {
		if !l.frozen {
			l.gate.Lock()
			l.frozen = true
		}
	}
}

// thaw forwards again what frozen connections held back, and what follows.
func (p *proxy) thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.links {
		if l.frozen {
			l.frozen = false
			l.gate.Unlock()
		}
	}
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
