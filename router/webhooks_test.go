package router_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/router"
	"github.com/switchboardhq/switchboard/router/webhooks"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/sqlite"
)

const (
	whSecret1 = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	whSecret2 = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
)

// specVerify checks a delivery the way the Standard Webhooks specification
// describes it, independently of package webhook: it returns the secrets
// (of those given) that signed it.
func specVerify(t *testing.T, h http.Header, body []byte, secrets ...string) []string {
	t.Helper()
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	if id == "" || ts == "" {
		t.Fatalf("missing webhook-id or webhook-timestamp: %v", h)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(unix, 0)).Abs() > 5*time.Minute {
		t.Fatalf("bad webhook-timestamp %q", ts)
	}
	var signed []string
	for _, secret := range secrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
		if err != nil {
			t.Fatal(err)
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte(id + "." + ts + "." + string(body)))
		want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
		for _, sig := range strings.Split(h.Get("webhook-signature"), " ") {
			if sig == want {
				signed = append(signed, secret)
			}
		}
	}
	return signed
}

// delivery is one request a receiver got.
type delivery struct {
	header http.Header
	body   []byte
	event  envelope.Event
	at     time.Time
}

// receiver is an httptest webhook receiver. answer, when set, decides the
// response to request n (from 1); it may block.
type receiver struct {
	t      testing.TB
	srv    *httptest.Server
	mu     sync.Mutex
	all    []delivery // every request
	ok     []delivery // the requests answered 2xx
	answer func(w http.ResponseWriter, r *http.Request, n int) int
}

func newReceiver(t testing.TB, answer func(w http.ResponseWriter, r *http.Request, n int) int) *receiver {
	rc := &receiver{t: t, answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		d := delivery{header: r.Header.Clone(), body: body, at: time.Now()}
		if err := json.Unmarshal(body, &d.event); err != nil {
			t.Errorf("receiver: bad JSON %q: %v", body, err)
		}
		rc.mu.Lock()
		rc.all = append(rc.all, d)
		n := len(rc.all)
		rc.mu.Unlock()
		status := http.StatusNoContent
		if rc.answer != nil {
			status = rc.answer(w, r, n)
		}
		if status >= 200 && status < 300 && r.Context().Err() == nil { // not a request the sender gave up on
			rc.mu.Lock()
			rc.ok = append(rc.ok, d)
			rc.mu.Unlock()
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) delivered() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.ok...)
}

func (rc *receiver) requests() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.all...)
}

// texts are the envelope texts of the message events delivered.
func (rc *receiver) texts() []string {
	var out []string
	for _, d := range rc.delivered() {
		var env envelope.Envelope
		if err := json.Unmarshal(d.event.Body, &env); err != nil {
			rc.t.Fatal(err)
		}
		out = append(out, env.Text)
	}
	return out
}

// whHarness runs a Router with webhooks over SQLite, or over the store
// openStore opens when set. The Sender keeps destinations for the default
// webhooks.DefaultDestTTL, on a clock that advance moves ahead of the real
// one.
type whHarness struct {
	t         testing.TB
	path      string
	cfg       string
	openStore func() (store.Store, error)
	st        store.Store
	r         *router.Router
	wh        *webhooks.Sender
	stop      func()
	skew      atomic.Int64 // how far the Sender's clock is ahead, in ns
}

const whConfig = `
webhooks:
  allow_private: true
  timeout: 300ms
  backoff: 10ms
  max_backoff: 50ms
router:
  outbox:
    max_attempts: 100
`

// whHoldConfig is whConfig for tests whose receiver holds a request until
// the test has queued more behind it: the client's timeout outlasts any
// time the queuing takes on a loaded machine, where with whConfig's 300ms
// the held request could time out and be posted again.
var whHoldConfig = strings.Replace(whConfig, "timeout: 300ms", "timeout: 1m", 1)

func newWHHarness(t testing.TB, cfg string) *whHarness {
	h := &whHarness{t: t, path: filepath.Join(t.TempDir(), "switchboard.db"), cfg: cfg}
	h.open()
	t.Cleanup(h.close)
	return h
}

func (h *whHarness) open() {
	var (
		st  store.Store
		err error
	)
	if h.openStore != nil {
		st, err = h.openStore()
	} else {
		st, err = sqlite.Open(context.Background(), h.path, sqlite.Options{})
	}
	if err != nil {
		h.t.Fatal(err)
	}
	h.st = st
	cfg, err := config.Parse([]byte(h.cfg), func(string) (string, bool) { return "", false })
	if err != nil {
		h.t.Fatal(err)
	}
	// As the gateway wires them: the configured destinations are synced
	// before the router starts.
	now := func() time.Time { return time.Now().Add(time.Duration(h.skew.Load())) }
	wh, err := webhooks.New(webhooks.Options{Config: cfg, Store: st, Logger: quietLogger, Now: now})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := wh.SyncConfig(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	r, err := router.New(router.Options{
		Config: cfg, Store: st, Webhooks: wh, Registry: prometheus.NewRegistry(),
		Logger: quietLogger, LeaseTTL: 2 * time.Second, Poll: 20 * time.Millisecond,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.r, h.wh = r, wh
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	h.stop = func() { cancel(); <-done }
}

// advance moves the Sender's clock d ahead, as if d had passed: a
// destination it keeps is read again after advance(webhooks.DefaultDestTTL).
func (h *whHarness) advance(d time.Duration) { h.skew.Add(int64(d)) }

// replay replays destination id's events since as the API does: the
// replay, then a wake for the delivery workers.
func (h *whHarness) replay(id string, since time.Time) (int, error) {
	n, err := h.wh.Replay(context.Background(), id, since)
	h.r.Wake()
	return n, err
}

func (h *whHarness) close() {
	if h.stop != nil {
		h.stop()
		h.stop = nil
		h.st.Close()
	}
}

// crash stops the router as a killed process stops: the store goes first.
func (h *whHarness) crash() {
	if h.stop != nil {
		h.st.Close()
		h.stop()
		h.stop = nil
	}
}

func (h *whHarness) addWebhook(id, url string, types ...string) {
	h.t.Helper()
	if _, err := h.st.CreateWebhook(context.Background(), store.Webhook{ID: id, URL: url, Secret: whSecret1, EventTypes: types}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *whHarness) webhook(id string) store.Webhook {
	h.t.Helper()
	w, err := h.st.Webhook(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return w
}

// send appends a message to session, inbound or outbound.
func (h *whHarness) send(session, text string, dir store.Direction) store.Record {
	h.t.Helper()
	ctx := context.Background()
	if _, _, err := h.st.CreateSession(ctx, session, nil); err != nil {
		h.t.Fatal(err)
	}
	typ := envelope.Human
	if dir == store.Outbound {
		typ = envelope.Agent
	}
	res, err := h.st.Append(ctx, store.AppendRequest{SessionID: session, Direction: dir, Envelope: envelope.Envelope{
		ID: "client:" + text, Source: "client", Kind: envelope.KindMessage,
		Actor: envelope.Actor{ID: "client:ada", Type: typ}, Text: text, TS: time.Now().UTC(),
	}})
	if err != nil {
		h.t.Fatal(err)
	}
	return res.Record
}

func TestWebhookDeliversSignedEventsInOrder(t *testing.T) {
	h := newWHHarness(t, whConfig)
	rc := newReceiver(t, nil)
	other := newReceiver(t, nil)
	h.addWebhook("all", rc.srv.URL, "message")
	h.addWebhook("failures-only", other.srv.URL, "delivery.failed")
	var recs []store.Record
	for i := range 10 {
		dir := store.Inbound
		if i%2 == 1 {
			dir = store.Outbound
		}
		recs = append(recs, h.send("ses-1", "m"+strconv.Itoa(i), dir))
	}
	waitFor(t, "10 deliveries", func() bool { return len(rc.delivered()) == 10 })
	for i, d := range rc.delivered() {
		rec := recs[i]
		if got := specVerify(t, d.header, d.body, whSecret1); len(got) != 1 {
			t.Errorf("delivery %d: signature does not verify by the specification", i)
		}
		ev := d.event
		if ev.Type != envelope.EventMessage || ev.SessionID != "ses-1" || ev.Direction != string(rec.Direction) ||
			ev.ID != webhooks.EventID("ses-1", rec.Seq) || d.header.Get("webhook-id") != ev.ID {
			t.Errorf("delivery %d: event %+v (webhook-id %s), want record %d %s", i, ev, d.header.Get("webhook-id"), rec.Seq, rec.Direction)
		}
		var env envelope.Envelope
		if err := json.Unmarshal(ev.Body, &env); err != nil || env.Text != "m"+strconv.Itoa(i) || env.ID != rec.Envelope.ID {
			t.Errorf("delivery %d: body %s, want the envelope of %q", i, ev.Body, rec.Envelope.Text)
		}
	}
	if n := len(other.requests()); n != 0 {
		t.Errorf("a destination filtered to delivery.failed got %d message events", n)
	}
	// The attempt is recorded after the receiver has answered.
	waitFor(t, "10 recorded attempts", func() bool {
		as, _ := h.st.WebhookAttempts(context.Background(), "all", "", 100)
		return len(as) >= 10
	})
	as, err := h.st.WebhookAttempts(context.Background(), "all", "", 100)
	if err != nil || len(as) != 10 {
		t.Fatalf("attempts = %d, %v; want 10", len(as), err)
	}
	if a := as[0]; a.StatusCode != 204 || a.Error != "" || a.Latency <= 0 || a.EventID == "" || a.DeliveryID == "" {
		t.Errorf("attempt = %+v", a)
	}
}

func TestWebhookRetriesServerErrorsAndTimeoutsInOrder(t *testing.T) {
	h := newWHHarness(t, whConfig)
	release := make(chan struct{})
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) int {
		switch n {
		case 1, 2:
			return http.StatusInternalServerError
		case 3: // longer than the client's timeout
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return http.StatusOK
		}
		return http.StatusOK
	})
	defer close(release)
	h.addWebhook("wh", rc.srv.URL, "message")
	for i := range 5 {
		h.send("ses-1", "m"+strconv.Itoa(i), store.Inbound)
	}
	waitFor(t, "5 deliveries", func() bool { return len(rc.delivered()) == 5 })
	if got := strings.Join(rc.texts(), ","); got != "m0,m1,m2,m3,m4" {
		t.Errorf("delivered %s, want m0..m4 in order", got)
	}
	reqs := rc.requests()
	for i := range 4 { // the first event, until it got through, then the rest
		var env envelope.Envelope
		_ = json.Unmarshal(reqs[i].event.Body, &env)
		if env.Text != "m0" {
			t.Errorf("request %d carried %s, want m0 retried", i+1, env.Text)
		}
		if reqs[i].header.Get("webhook-id") != reqs[0].header.Get("webhook-id") {
			t.Error("a retry changed webhook-id")
		}
	}
	waitFor(t, "6 recorded attempts", func() bool {
		as, _ := h.st.WebhookAttempts(context.Background(), "wh", "", 100)
		return len(as) >= 6
	})
	as, _ := h.st.WebhookAttempts(context.Background(), "wh", "", 100)
	var codes []int
	for i := len(as) - 1; i >= 0; i-- {
		codes = append(codes, as[i].StatusCode)
	}
	if len(codes) < 4 || codes[0] != 500 || codes[1] != 500 || codes[2] != 0 || !strings.Contains(as[len(as)-3].Error, "webhook: post") {
		t.Errorf("attempt statuses %v (third error %q), want 500, 500, 0 (timeout), 200…", codes, as[len(as)-3].Error)
	}
	if w := h.webhook("wh"); !w.FailingSince.IsZero() || w.Disabled {
		t.Errorf("after a success the destination is %+v", w)
	}
}

// runCounter is a SQLite store that counts the runs settled through it
// (store.RunSettler) and the outcomes they carried.
type runCounter struct {
	*sqlite.Store
	runs, outcomes atomic.Int64
}

func (c *runCounter) SettleRun(ctx context.Context, owner string, run []store.Outcome, n int, now, leaseUntil time.Time) ([]store.Delivery, error) {
	c.runs.Add(1)
	c.outcomes.Add(int64(len(run)))
	return c.Store.SettleRun(ctx, owner, run, n, now, leaseUntil)
}

// TestWebhookDeliversAQueueInRuns: a destination's queue is posted in
// order, a run of events per settlement rather than one; a failure in the
// middle of a run ends it there, and the failed event is retried before
// any event behind it is posted.
func TestWebhookDeliversAQueueInRuns(t *testing.T) {
	counter := &runCounter{}
	h := &whHarness{t: t, path: filepath.Join(t.TempDir(), "switchboard.db"), cfg: whHoldConfig}
	h.openStore = func() (store.Store, error) {
		st, err := sqlite.Open(context.Background(), h.path, sqlite.Options{})
		counter.Store = st
		return counter, err
	}
	h.open()
	t.Cleanup(h.close)

	const events, failing = 20, 8 // request 8 carries m7 and fails
	release := make(chan struct{})
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) int {
		switch n {
		case 1: // until the whole queue is behind m0
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case failing:
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	h.addWebhook("wh", rc.srv.URL, "message")
	for i := range events {
		h.send("ses-1", "m"+strconv.Itoa(i), store.Inbound)
	}
	close(release)
	waitFor(t, "every event", func() bool { return len(rc.delivered()) == events })

	var want, got []string
	for i := range events {
		want = append(want, "m"+strconv.Itoa(i))
	}
	if got := strings.Join(rc.texts(), ","); got != strings.Join(want, ",") {
		t.Errorf("delivered %s, want m0..m19 in order", got)
	}
	want = slices.Insert(want, failing, "m7") // m7 twice: failed, then retried
	for _, d := range rc.requests() {
		var env envelope.Envelope
		_ = json.Unmarshal(d.event.Body, &env)
		got = append(got, env.Text)
	}
	if !slices.Equal(got, want) {
		t.Errorf("requests carried %v, want %v", got, want)
	}
	// m0 alone, then runs: m1..m7 (ended by the failure), the retry of m7
	// and the rest. One settlement per event would be 21. A run is settled
	// after its last event reached the receiver, so wait for that.
	waitFor(t, "every outcome settled", func() bool { return counter.outcomes.Load() >= events+1 })
	if runs, outcomes := counter.runs.Load(), counter.outcomes.Load(); runs > 6 || outcomes != events+1 {
		t.Errorf("%d settlements of %d outcomes; want at most 6 for %d outcomes", runs, outcomes, events+1)
	}
}

// TestWebhookConversationsTakeTurns: with more conversations due than
// workers, a worker lets go of its conversation after a run and takes the
// oldest due delivery of any, so that one conversation's backlog does not
// hold up another's. One worker, two sessions (two conversations of the
// destination) with 40 events each, enqueued in turn: ses-2's first event
// goes out after ses-1's first run, not after all of ses-1's events.
func TestWebhookConversationsTakeTurns(t *testing.T) {
	h := newWHHarness(t, whHoldConfig+"    workers: 1\n")
	const events = 40
	release := make(chan struct{})
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) int {
		if n == 1 { // until both queues are behind ses-1's first event
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		return http.StatusOK
	})
	h.addWebhook("wh", rc.srv.URL, "message")
	for i := range events {
		h.send("ses-1", "a"+strconv.Itoa(i), store.Inbound)
		h.send("ses-2", "b"+strconv.Itoa(i), store.Inbound)
	}
	close(release)
	waitFor(t, "every event", func() bool { return len(rc.delivered()) == 2*events })

	texts := rc.texts()
	var a, b []string
	for _, text := range texts {
		if strings.HasPrefix(text, "a") {
			a = append(a, text)
		} else {
			b = append(b, text)
		}
	}
	for i := range events {
		if a[i] != "a"+strconv.Itoa(i) || b[i] != "b"+strconv.Itoa(i) {
			t.Fatalf("delivered out of order within a session: %v", texts)
		}
	}
	// a0 alone (the request held), the run behind it (up to webhookRun),
	// then ses-2's turn.
	if first := slices.Index(texts, "b0"); first > 1+16 {
		t.Errorf("ses-2's first event was delivery %d, after %v: it waited for ses-1's backlog", first+1, texts[:first])
	}
}

func TestWebhookHonoursRetryAfter(t *testing.T) {
	h := newWHHarness(t, whConfig)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) int {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			return http.StatusTooManyRequests
		}
		return http.StatusOK
	})
	h.addWebhook("wh", rc.srv.URL, "message")
	h.send("ses-1", "m0", store.Inbound)
	waitFor(t, "the delivery", func() bool { return len(rc.delivered()) == 1 })
	reqs := rc.requests()
	// Without Retry-After the schedule would retry within 50ms.
	if gap := reqs[1].at.Sub(reqs[0].at); gap < 900*time.Millisecond {
		t.Errorf("retried after %v, want Retry-After's 1s", gap)
	}
}

func TestWebhookGoneDisablesAndEmitsDeliveryFailed(t *testing.T) {
	h := newWHHarness(t, whConfig)
	gone := newReceiver(t, func(http.ResponseWriter, *http.Request, int) int { return http.StatusGone })
	watcher := newReceiver(t, nil)
	h.addWebhook("gone", gone.srv.URL)
	h.addWebhook("watcher", watcher.srv.URL, "delivery.failed")
	h.send("ses-1", "m0", store.Inbound)
	waitFor(t, "the delivery.failed event", func() bool { return len(watcher.delivered()) == 1 })
	w := h.webhook("gone")
	if !w.Disabled || w.DisabledReason != "410 Gone" {
		t.Errorf("after 410 the destination is %+v", w)
	}
	ev := watcher.delivered()[0].event
	var env envelope.Envelope
	_ = json.Unmarshal(ev.Body, &env)
	if ev.Type != envelope.EventDeliveryFail || ev.SessionID != "ses-1" || env.Refs["webhook"] != "gone" || ev.Direction != "" {
		t.Errorf("delivery.failed event = %+v, body %s", ev, ev.Body)
	}
	all := newReceiver(t, nil)
	h.addWebhook("all", all.srv.URL, "message")
	h.send("ses-1", "m1", store.Inbound)
	h.send("ses-1", "m2", store.Inbound)
	waitFor(t, "m1 and m2 to reach another destination", func() bool { return len(all.delivered()) == 2 })
	if n := len(gone.requests()); n != 1 {
		t.Errorf("the disabled destination got %d requests, want 1", n)
	}
}

func TestWebhookFailingPeriodDisables(t *testing.T) {
	h := newWHHarness(t, strings.Replace(whConfig, "  backoff: 10ms", "  disable_after: 100ms\n  backoff: 10ms", 1))
	down := newReceiver(t, func(http.ResponseWriter, *http.Request, int) int { return http.StatusBadGateway })
	watcher := newReceiver(t, nil)
	h.addWebhook("down", down.srv.URL)
	h.addWebhook("watcher", watcher.srv.URL, "delivery.failed")
	h.send("ses-1", "m0", store.Inbound)
	waitFor(t, "the delivery.failed event", func() bool { return len(watcher.delivered()) == 1 })
	w := h.webhook("down")
	if !w.Disabled || !strings.HasPrefix(w.DisabledReason, "failing since") || w.FailingSince.IsZero() {
		t.Errorf("after failing for the period the destination is %+v", w)
	}
	if n := len(down.requests()); n < 2 {
		t.Errorf("the destination got %d attempts before it was disabled, want retries", n)
	}
}

func TestWebhookSecretRotationSignsWithBoth(t *testing.T) {
	h := newWHHarness(t, whConfig)
	rc := newReceiver(t, nil)
	h.addWebhook("wh", rc.srv.URL, "message")
	h.send("ses-1", "before", store.Inbound)
	waitFor(t, "the first delivery", func() bool { return len(rc.delivered()) == 1 })
	// The Sender keeps the destination it read for DefaultDestTTL: a
	// rotation reaches the deliveries after that.
	if _, err := h.st.RotateWebhookSecret(context.Background(), "wh", whSecret2, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	h.advance(webhooks.DefaultDestTTL)
	h.send("ses-1", "during", store.Inbound)
	waitFor(t, "the second delivery", func() bool { return len(rc.delivered()) == 2 })
	if _, err := h.st.RotateWebhookSecret(context.Background(), "wh", whSecret1, time.Time{}); err != nil {
		t.Fatal(err)
	}
	h.advance(webhooks.DefaultDestTTL)
	h.send("ses-1", "after", store.Inbound)
	waitFor(t, "the third delivery", func() bool { return len(rc.delivered()) == 3 })
	ds := rc.delivered()
	for i, want := range [][]string{{whSecret1}, {whSecret1, whSecret2}, {whSecret1}} {
		got := specVerify(t, ds[i].header, ds[i].body, whSecret1, whSecret2)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("delivery %d signed by %d secrets (%q), want %d", i, len(got), ds[i].header.Get("webhook-signature"), len(want))
		}
	}
}

func TestWebhookReplay(t *testing.T) {
	h := newWHHarness(t, whConfig)
	rc := newReceiver(t, nil)
	h.addWebhook("wh", rc.srv.URL, "message")
	h.send("ses-1", "old", store.Inbound)
	h.send("ses-2", "other", store.Inbound)
	waitFor(t, "two deliveries", func() bool { return len(rc.delivered()) == 2 })
	since := time.Now()
	for i := range 3 {
		h.send("ses-1", "new"+strconv.Itoa(i), store.Outbound)
	}
	waitFor(t, "five deliveries", func() bool { return len(rc.delivered()) == 5 })
	n, err := h.replay("wh", since)
	if err != nil || n != 3 {
		t.Fatalf("Replay = %d, %v; want 3", n, err)
	}
	waitFor(t, "the replay", func() bool { return len(rc.delivered()) == 8 })
	if got := strings.Join(rc.texts()[5:], ","); got != "new0,new1,new2" {
		t.Errorf("replayed %s, want new0,new1,new2 in order", got)
	}
	live, replayed := rc.delivered()[2], rc.delivered()[5]
	if live.event.ID != replayed.event.ID {
		t.Errorf("a replay changed the event id: %s then %s", live.event.ID, replayed.event.ID)
	}
	if _, err := h.replay("nope", since); err == nil {
		t.Error("replay of an unknown destination succeeded")
	}
}

func TestWebhookRefusesPrivateDestinations(t *testing.T) {
	h := newWHHarness(t, strings.Replace(whConfig, "allow_private: true", "allow_private: false", 1))
	rc := newReceiver(t, nil)
	h.addWebhook("inside", rc.srv.URL)
	h.send("ses-1", "m0", store.Inbound)
	waitFor(t, "a refused attempt", func() bool {
		as, _ := h.st.WebhookAttempts(context.Background(), "inside", "", 1)
		return len(as) == 1
	})
	as, _ := h.st.WebhookAttempts(context.Background(), "inside", "", 1)
	if !strings.Contains(as[0].Error, "not allowed") || as[0].StatusCode != 0 {
		t.Errorf("attempt = %+v, want the address refused", as[0])
	}
	if n := len(rc.requests()); n != 0 {
		t.Errorf("the loopback receiver got %d requests", n)
	}
}

func TestWebhookResumesAfterCrash(t *testing.T) {
	h := newWHHarness(t, whConfig)
	var mu sync.Mutex
	stall := true
	stalled := make(chan struct{}, 1)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) int {
		mu.Lock()
		s := stall
		mu.Unlock()
		if s {
			select {
			case stalled <- struct{}{}:
			default:
			}
			<-r.Context().Done() // the crash cuts it off
			return http.StatusOK
		}
		return http.StatusOK
	})
	h.addWebhook("wh", rc.srv.URL, "message")
	for i := range 20 {
		h.send("ses-"+strconv.Itoa(i%2), "m"+strconv.Itoa(i), store.Inbound)
	}
	<-stalled
	h.crash()
	mu.Lock()
	stall = false
	mu.Unlock()
	h.open()
	waitFor(t, "every event after the restart", func() bool {
		seen := map[string]bool{}
		for _, txt := range rc.texts() {
			seen[txt] = true
		}
		return len(seen) == 20
	})
	// Per session, the first delivery of each event is in log order.
	for _, ses := range []string{"ses-0", "ses-1"} {
		var order []int
		for _, line := range sessionLines(t, rc, ses) {
			k, _ := strconv.Atoi(strings.TrimPrefix(line, "message m"))
			order = append(order, k)
		}
		for i := 1; i < len(order); i++ {
			if order[i] < order[i-1] {
				t.Errorf("%s delivered out of order: %v", ses, order)
				break
			}
		}
	}
}

func TestWebhookConfigDestinations(t *testing.T) {
	rc := newReceiver(t, nil)
	cfg := whConfig + `
  destinations:
    - id: declared
      url: ` + rc.srv.URL + `
      secret: ` + whSecret1 + `
      event_types: [message]
`
	cfg = strings.Replace(cfg, "router:\n  outbox:\n    max_attempts: 100\n", "", 1) + "router:\n  outbox:\n    max_attempts: 100\n"
	h := newWHHarness(t, cfg)
	h.send("ses-1", "m0", store.Inbound)
	waitFor(t, "the delivery", func() bool { return len(rc.delivered()) == 1 })
	if w := h.webhook("declared"); w.Origin != "config" || w.Secret != whSecret1 {
		t.Errorf("declared destination = %+v", w)
	}
	if got := specVerify(t, rc.delivered()[0].header, rc.delivered()[0].body, whSecret1); len(got) != 1 {
		t.Error("delivery to a declared destination does not verify")
	}
}
