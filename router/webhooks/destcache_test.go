package webhooks

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/testclock"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/sqlite"
	"github.com/switchboardhq/switchboard/webhook"
)

const (
	testSecret1 = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	testSecret2 = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
)

// countingStore is a Store that counts destination lookups and can run a
// hook inside Webhook (before the lookup) and Read.
type countingStore struct {
	Store
	lookups   atomic.Int64
	onWebhook func()
	onRead    func()
}

func (c *countingStore) Webhook(ctx context.Context, id string) (store.Webhook, error) {
	c.lookups.Add(1)
	if c.onWebhook != nil {
		c.onWebhook()
	}
	return c.Store.Webhook(ctx, id)
}

func (c *countingStore) Read(ctx context.Context, sessionID string, after int64, limit int) ([]store.Record, error) {
	if c.onRead != nil {
		c.onRead()
	}
	return c.Store.Read(ctx, sessionID, after, limit)
}

// request is one request a testReceiver got.
type request struct {
	header http.Header
	body   []byte
}

// testReceiver is a webhook receiver answering status (204 when zero).
type testReceiver struct {
	srv    *httptest.Server
	status atomic.Int32
	mu     sync.Mutex
	reqs   []request
}

func (rc *testReceiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.reqs...)
}

// destFixture is a Sender over SQLite (behind a countingStore) with a
// test clock, a receiver, destination "wh" (signed with testSecret1) and
// a record to deliver to it.
type destFixture struct {
	t     *testing.T
	st    *countingStore
	clock *testclock.Clock
	rc    *testReceiver
	s     *Sender
	rec   store.Record
}

func newDestFixture(t *testing.T, ttl time.Duration) *destFixture {
	t.Helper()
	ctx := context.Background()
	sq, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "switchboard.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sq.Close() })
	cfg, err := config.Parse([]byte("webhooks:\n  allow_private: true\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	f := &destFixture{t: t, st: &countingStore{Store: sq}, clock: testclock.New(time.Now()), rc: &testReceiver{}}
	f.rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.rc.mu.Lock()
		f.rc.reqs = append(f.rc.reqs, request{header: r.Header.Clone(), body: body})
		f.rc.mu.Unlock()
		status := int(f.rc.status.Load())
		if status == 0 {
			status = http.StatusNoContent
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(f.rc.srv.Close)
	f.s, err = New(Options{Config: cfg, Store: f.st, Logger: slog.New(slog.DiscardHandler), Now: f.clock.Now, DestTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sq.CreateWebhook(ctx, store.Webhook{ID: "wh", URL: f.rc.srv.URL, Secret: testSecret1}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := sq.CreateSession(ctx, "ses-1", nil); err != nil {
		t.Fatal(err)
	}
	res, err := sq.Append(ctx, store.AppendRequest{SessionID: "ses-1", Direction: store.Inbound, Envelope: envelope.Envelope{
		ID: "client:m0", Source: "client", Kind: envelope.KindMessage,
		Actor: envelope.Actor{ID: "client:ada", Type: envelope.Human}, Text: "m0", TS: time.Now().UTC(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	f.rec = res.Record
	return f
}

// deliver delivers f's record to destination id, as its first attempt.
// The delivery carries no record, so Deliver reads it (and runs onRead).
func (f *destFixture) deliver(id string) (*store.Attempt, error) {
	return f.s.Deliver(context.Background(), store.Delivery{
		ID: "dlv_1", SessionID: f.rec.SessionID, Seq: f.rec.Seq, Attempts: 1,
		To: envelope.Conversation{Source: Source, Ref: store.WebhookRef(id, "", f.rec.SessionID)},
	})
}

// mustDeliver delivers f's record to "wh" and wants it accepted.
func (f *destFixture) mustDeliver() {
	f.t.Helper()
	if a, err := f.deliver("wh"); err != nil || a == nil || a.Error != "" {
		f.t.Fatalf("Deliver = %+v, %v; want a success", a, err)
	}
}

// lookups is how many times Deliver read a destination from the store.
func (f *destFixture) lookups() int64 { return f.st.lookups.Load() }

// wantLookups fails the test unless the store was asked for a destination
// want times so far.
func (f *destFixture) wantLookups(want int64, why string) {
	f.t.Helper()
	if got := f.lookups(); got != want {
		f.t.Fatalf("%s: %d destination lookups, want %d", why, got, want)
	}
}

// signedBy returns the secrets, of testSecret1 and testSecret2 in that
// order, that signed the receiver's last request.
func (f *destFixture) signedBy() []string {
	f.t.Helper()
	reqs := f.rc.requests()
	if len(reqs) == 0 {
		f.t.Fatal("the receiver got no request")
	}
	last := reqs[len(reqs)-1]
	var out []string
	for _, secret := range []string{testSecret1, testSecret2} {
		v, err := webhook.NewVerifier(secret)
		if err != nil {
			f.t.Fatal(err)
		}
		if v.Verify(last.header, last.body, f.clock.Now()) == nil {
			out = append(out, secret)
		}
	}
	return out
}

// wantSignedBy fails the test unless the receiver's last request was
// signed by want (of testSecret1 and testSecret2, in that order).
func (f *destFixture) wantSignedBy(why string, want ...string) {
	f.t.Helper()
	got := f.signedBy()
	if !slices.Equal(got, want) {
		f.t.Errorf("%s: signed by %q, want %q", why, got, want)
	}
}

func (f *destFixture) rotate(secret string, prevExpires time.Time) {
	f.t.Helper()
	if _, err := f.st.Store.RotateWebhookSecret(context.Background(), "wh", secret, prevExpires); err != nil {
		f.t.Fatal(err)
	}
}

func TestDeliverReadsADestinationOncePerTTL(t *testing.T) {
	f := newDestFixture(t, 0) // DefaultDestTTL
	f.mustDeliver()
	f.mustDeliver()
	f.wantLookups(1, "two deliveries within the TTL")
	f.clock.Advance(DefaultDestTTL - time.Nanosecond)
	f.mustDeliver()
	f.wantLookups(1, "a delivery just before the TTL is over")
	f.clock.Advance(time.Nanosecond)
	f.mustDeliver()
	f.wantLookups(2, "a delivery once the TTL is over")
	if n := len(f.rc.requests()); n != 4 {
		t.Errorf("the receiver got %d requests, want 4", n)
	}
}

func TestDeliverWithoutCacheReadsEveryTime(t *testing.T) {
	f := newDestFixture(t, -1)
	for range 3 {
		f.mustDeliver()
	}
	f.wantLookups(3, "three deliveries with DestTTL < 0")
}

func TestDeliverUsesARotatedSecretAfterTheTTL(t *testing.T) {
	f := newDestFixture(t, 5*time.Second)
	f.mustDeliver()
	f.wantSignedBy("before the rotation", testSecret1)
	f.rotate(testSecret2, time.Time{}) // no grace: the old secret is gone at once
	f.clock.Advance(time.Second)
	f.mustDeliver()
	f.wantSignedBy("within the TTL (the destination as read before the rotation)", testSecret1)
	f.clock.Advance(4 * time.Second)
	f.mustDeliver()
	f.wantSignedBy("after the TTL", testSecret2)
	f.wantLookups(2, "three deliveries over one TTL and a bit")
}

func TestDeliverNeverSignsWithAPreviousSecretPastItsExpiry(t *testing.T) {
	t.Run("between deliveries", func(t *testing.T) {
		f := newDestFixture(t, 0)
		f.rotate(testSecret2, f.clock.Now().Add(300*time.Millisecond))
		f.mustDeliver()
		f.wantSignedBy("during the grace period", testSecret1, testSecret2)
		f.clock.Advance(299 * time.Millisecond)
		f.mustDeliver()
		f.wantSignedBy("just before the grace period ends", testSecret1, testSecret2)
		f.wantLookups(1, "two deliveries within the grace period")
		f.clock.Advance(time.Millisecond) // the grace period is over, the TTL is not
		f.mustDeliver()
		f.wantSignedBy("once the grace period is over", testSecret2)
		f.wantLookups(2, "a delivery once the grace period is over")
	})
	t.Run("during a delivery", func(t *testing.T) {
		f := newDestFixture(t, 0)
		expires := f.clock.Now().Add(300 * time.Millisecond)
		f.rotate(testSecret2, expires)
		f.mustDeliver()
		f.wantSignedBy("during the grace period", testSecret1, testSecret2)
		// The next delivery finds the destination cached, then the grace
		// period ends while it reads its record, before it signs.
		f.st.onRead = func() { f.clock.Advance(expires.Sub(f.clock.Now())) }
		f.mustDeliver()
		f.wantLookups(1, "a delivery that found the destination cached")
		f.wantSignedBy("a delivery signed after the grace period", testSecret2)
	})
}

func TestDeliverReadsAgainAfterItChangesTheDestination(t *testing.T) {
	ctx := context.Background()
	f := newDestFixture(t, time.Hour)
	f.rc.status.Store(http.StatusInternalServerError)
	_, err := f.deliver("wh")
	if bo, ok := errors.AsType[*adapters.BackOff](err); !ok || bo == nil {
		t.Fatalf("Deliver to a failing destination = %v, want a BackOff", err)
	}
	w, err := f.st.Store.Webhook(ctx, "wh")
	if err != nil || w.FailingSince.IsZero() {
		t.Fatalf("after a failure the destination is %+v, %v; want failing", w, err)
	}
	// The receiver recovers: the next delivery must see that the
	// destination was failing to record the recovery.
	f.rc.status.Store(0)
	f.mustDeliver()
	f.wantLookups(2, "a delivery after one that marked the destination failing")
	if w, err := f.st.Store.Webhook(ctx, "wh"); err != nil || !w.FailingSince.IsZero() {
		t.Fatalf("after a success the destination is %+v, %v; want healthy", w, err)
	}
	f.mustDeliver()
	f.wantLookups(3, "a delivery after one that recorded the recovery")
	f.mustDeliver()
	f.wantLookups(3, "a delivery to a destination nothing changed")

	f.rc.status.Store(http.StatusGone)
	if _, err := f.deliver("wh"); !errors.Is(err, adapters.ErrPermanent) {
		t.Fatalf("Deliver answered 410 = %v, want permanent", err)
	}
	n := len(f.rc.requests())
	if _, err := f.deliver("wh"); !errors.Is(err, adapters.ErrPermanent) {
		t.Fatalf("Deliver to the destination 410 disabled = %v, want permanent", err)
	}
	f.wantLookups(4, "a delivery after one that disabled the destination")
	if got := len(f.rc.requests()); got != n {
		t.Errorf("the destination disabled by a 410 got %d more requests", got-n)
	}
}

func TestDeliverKeepsNoMissesNorDisabledDestinations(t *testing.T) {
	ctx := context.Background()
	f := newDestFixture(t, time.Hour)
	if _, err := f.deliver("later"); !errors.Is(err, adapters.ErrPermanent) {
		t.Fatalf("Deliver to an unknown destination = %v, want permanent", err)
	}
	if _, err := f.st.Store.CreateWebhook(ctx, store.Webhook{ID: "later", URL: f.rc.srv.URL, Secret: testSecret1}); err != nil {
		t.Fatal(err)
	}
	if a, err := f.deliver("later"); err != nil || a.Error != "" {
		t.Fatalf("Deliver to a destination created after a miss = %+v, %v; want a success", a, err)
	}

	// Disabled by hand (as the API does), while not cached.
	if err := f.st.Store.SetWebhookHealth(ctx, "wh", time.Time{}, true, "by hand"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.deliver("wh"); !errors.Is(err, adapters.ErrPermanent) {
		t.Fatalf("Deliver to a disabled destination = %v, want permanent", err)
	}
	if err := f.st.Store.SetWebhookHealth(ctx, "wh", time.Time{}, false, ""); err != nil {
		t.Fatal(err)
	}
	f.mustDeliver() // enabled again: at once, with no clock advance
}

func TestDeliverStoresNoDestinationReadBeforeADrop(t *testing.T) {
	f := newDestFixture(t, time.Hour)
	// A change Deliver makes (elsewhere) drops the entry while this read
	// is under way: what it read may predate the change, so it is not kept.
	f.st.onWebhook = func() { f.s.forget("wh") }
	f.mustDeliver()
	f.st.onWebhook = nil
	f.mustDeliver()
	f.wantLookups(2, "a delivery after a read a drop overtook")
	f.mustDeliver()
	f.wantLookups(2, "a delivery after an undisturbed read")
}

func TestDeliverConcurrentlyReadsADestinationAtMostOncePerWorker(t *testing.T) {
	f := newDestFixture(t, time.Hour)
	const workers, each = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Go(func() {
			for range each {
				if a, err := f.deliver("wh"); err != nil || a.Error != "" {
					errs <- errors.Join(err, errors.New(a.Error))
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := f.lookups(); got < 1 || got > workers {
		t.Errorf("%d deliveries over %d workers made %d destination lookups, want 1 to %d", workers*each, workers, got, workers)
	}
}

func TestDestCacheIsBounded(t *testing.T) {
	c := newDestCache(time.Second)
	t0 := time.Now()
	for i := range maxCachedDests {
		at := t0
		if i%2 == 0 {
			at = t0.Add(-time.Second) // expired at t0
		}
		c.put("d"+strconv.Itoa(i), dest{}, at, c.generation())
	}
	if n := c.len(); n != maxCachedDests {
		t.Fatalf("the cache holds %d entries, want %d", n, maxCachedDests)
	}
	c.put("one-more", dest{}, t0, c.generation())
	if n := c.len(); n != maxCachedDests/2+1 {
		t.Errorf("after one more entry in a full cache of which half expired, it holds %d, want %d", n, maxCachedDests/2+1)
	}
	if _, ok := c.get("d1", t0); !ok {
		t.Error("an entry that had not expired was dropped to make room")
	}
	for i := range maxCachedDests {
		c.put("e"+strconv.Itoa(i), dest{}, t0, c.generation())
	}
	if n := c.len(); n > maxCachedDests {
		t.Errorf("the cache holds %d entries, more than its bound %d", n, maxCachedDests)
	}
	if _, ok := c.get("e"+strconv.Itoa(maxCachedDests-1), t0); !ok {
		t.Error("the entry just stored is missing")
	}
}
