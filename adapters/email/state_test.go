package email

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/store"
)

func TestCursorInStore(t *testing.T) {
	st := newTestStore(t)
	ctx := context.Background()
	c := &cursors{kv: st, address: "bot@switchboard.example"}
	if v, last, err := c.Load(ctx, "INBOX"); err != nil || v != 0 || last != 0 {
		t.Fatalf("fresh cursor: %d %d %v; want zeros", v, last, err)
	}
	if err := c.Save(ctx, "INBOX", 1700000000, 42); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(ctx, "Archive", 7, 3); err != nil {
		t.Fatal(err)
	}
	other := &cursors{kv: st, address: "other@switchboard.example"}
	if err := other.Save(ctx, "INBOX", 9, 9); err != nil {
		t.Fatal(err)
	}
	// Another adapter on the same store (a restart, another replica) sees it.
	again := &cursors{kv: st, address: "bot@switchboard.example"}
	if v, last, err := again.Load(ctx, "INBOX"); err != nil || v != 1700000000 || last != 42 {
		t.Errorf("INBOX cursor: %d %d %v; want 1700000000 42", v, last, err)
	}
	if v, last, err := again.Load(ctx, "Archive"); err != nil || v != 7 || last != 3 {
		t.Errorf("Archive cursor: %d %d %v; want 7 3", v, last, err)
	}
}

// Replicas share thread state through the store: one watches the mailbox,
// another's outbox sends the reply, and concurrent updates from both lose
// nothing.
func TestThreadsSharedByReplicas(t *testing.T) {
	st := newTestStore(t)
	sink := newSMTPSink(t)
	smtpCfg := func(c *Config) {
		c.SMTP = SMTPConfig{Addr: sink.addr, Security: Plain, Username: sink.user, Password: sink.pass}
	}
	watcher := newStateAdapter(t, st, newRecorder(), smtpCfg)
	sender := newStateAdapter(t, st, newRecorder(), smtpCfg)
	in := ingestFixture(t, watcher, []byte("From: Ada <ada@example.com>\r\nTo: bot@switchboard.example\r\n"+
		"Message-ID: <shared-root@example.com>\r\nSubject: Shared\r\n\r\nHello.\r\n"))
	if _, err := sender.Deliver(context.Background(),
		adapters.Delivery{ID: "dlv-shared", To: in.Envelope.Conversation, Envelope: output("Hi."), Attempt: 1}); err != nil {
		t.Fatalf("reply from the other replica: %v", err)
	}
	if mails := sink.mails(); len(mails) != 1 || !strings.Contains(string(mails[0].data), "In-Reply-To: <shared-root@example.com>") {
		t.Fatalf("the other replica's reply is not threaded: %d mails", len(mails))
	}

	const goroutines, each = 4, 10
	var wg sync.WaitGroup
	var want []string
	for g := range goroutines {
		a := watcher
		if g%2 == 1 {
			a = sender
		}
		for i := range each {
			want = append(want, fmt.Sprintf("g%d-%d@example.com", g, i))
		}
		wg.Go(func() {
			for i := range each {
				if _, err := a.threads.Update(context.Background(), "shared-root@example.com", func(th *Thread) {
					th.addRef(fmt.Sprintf("g%d-%d@example.com", g, i))
				}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	th, ok, err := watcher.threads.Load(context.Background(), "shared-root@example.com")
	if err != nil || !ok {
		t.Fatalf("thread: ok %v, err %v", ok, err)
	}
	for _, id := range want {
		if !slices.Contains(th.References, id) {
			t.Errorf("concurrent update %s lost; references %v", id, th.References)
		}
	}
	if th.References[0] != "shared-root@example.com" || len(th.To) != 1 || th.To[0] != "ada@example.com" {
		t.Errorf("thread %+v lost its root or originator", th)
	}
}

func TestThreadWithLongRoot(t *testing.T) {
	a := newTestAdapter(t, newRecorder(), nil)
	ctx := context.Background()
	long := strings.Repeat("x", 2000) + "@example.com"
	if _, err := a.threads.Update(ctx, long, func(th *Thread) { th.Subject = "long" }); err != nil {
		t.Fatal(err)
	}
	if _, err := a.threads.Update(ctx, "short@example.com", func(th *Thread) { th.Subject = "short" }); err != nil {
		t.Fatal(err)
	}
	th, ok, err := a.threads.Load(ctx, long)
	if err != nil || !ok || th.Root != long || th.Subject != "long" {
		t.Errorf("long root: ok %v, err %v, subject %q", ok, err, th.Subject)
	}
	if _, ok, err := a.threads.Load(ctx, "unknown@example.com"); err != nil || ok {
		t.Errorf("unknown thread: ok %v, err %v", ok, err)
	}
}

// countingKV counts the reads and compare-and-sets made through it.
type countingKV struct {
	store.KV
	mu          sync.Mutex
	reads, cass int
}

func (c *countingKV) Value(ctx context.Context, ns, key string) ([]byte, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	return c.KV.Value(ctx, ns, key)
}

func (c *countingKV) CompareAndSetValue(ctx context.Context, ns, key string, old, value []byte) (bool, error) {
	c.mu.Lock()
	c.cass++
	c.mu.Unlock()
	return c.KV.CompareAndSetValue(ctx, ns, key, old, value)
}

func (c *countingKV) take() (reads, cass int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	reads, cass, c.reads, c.cass = c.reads, c.cass, 0, 0
	return reads, cass
}

// Without concurrent writers, an inbound mail costs two thread reads and a
// delivery one: the update after a load compares against what was loaded.
func TestThreadStoreRoundTrips(t *testing.T) {
	sink := newSMTPSink(t)
	kv := &countingKV{KV: newTestStore(t)}
	a := newStateAdapter(t, kv, newRecorder(), func(c *Config) {
		c.SMTP = SMTPConfig{Addr: sink.addr, Security: Plain, Username: sink.user, Password: sink.pass}
	})
	in := ingestFixture(t, a, []byte("From: ada@example.com\r\nMessage-ID: <count-root@example.com>\r\nSubject: Count\r\n\r\nHi.\r\n"))
	if reads, cass := kv.take(); reads != 2 || cass != 2 {
		t.Errorf("inbound mail: %d reads, %d compare-and-sets; want 2, 2", reads, cass)
	}
	if _, err := a.Deliver(context.Background(), adapters.Delivery{ID: "dlv-count", To: in.Envelope.Conversation, Envelope: output("Hi."), Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	if reads, cass := kv.take(); reads != 1 || cass != 1 {
		t.Errorf("delivery: %d reads, %d compare-and-sets; want 1, 1", reads, cass)
	}
	th, ok, err := a.threads.Load(context.Background(), "count-root@example.com")
	if err != nil || !ok || len(th.References) != 2 || !th.handled("count-root@example.com") {
		t.Errorf("thread %+v, ok %v, err %v", th, ok, err)
	}
}

// UpdateLoaded with a record another writer has replaced since reloads it
// and loses neither update; the caller's copy is left alone.
func TestThreadUpdateLoadedConflict(t *testing.T) {
	a := newTestAdapter(t, newRecorder(), nil)
	ctx := context.Background()
	const root = "conflict@example.com"
	if _, err := a.threads.Update(ctx, root, func(th *Thread) { th.addRef(root) }); err != nil {
		t.Fatal(err)
	}
	th, stored, err := a.threads.load(ctx, root)
	if err != nil || stored == nil {
		t.Fatalf("load: %v", err)
	}
	if _, err := a.threads.Update(ctx, root, func(th *Thread) { th.addRef("other@example.com") }); err != nil {
		t.Fatal(err)
	}
	calls := 0
	got, err := a.threads.UpdateLoaded(ctx, root, th, stored, func(th *Thread) {
		calls++
		th.addRef("mine@example.com")
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{root, "other@example.com", "mine@example.com"}; !slices.Equal(got.References, want) || calls != 2 {
		t.Errorf("references %v after %d calls; want %v after 2", got.References, calls, want)
	}
	if !slices.Equal(th.References, []string{root}) {
		t.Errorf("caller's thread changed: %v", th.References)
	}
	saved, _, err := a.threads.Load(ctx, root)
	if err != nil || !slices.Equal(saved.References, got.References) {
		t.Errorf("saved references %v, err %v; want %v", saved.References, err, got.References)
	}
}
