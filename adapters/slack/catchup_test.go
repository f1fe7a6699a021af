package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/testclock"
	"github.com/switchboardhq/switchboard/store"
)

// catchUpRoutes bind a thread on a mention in the two channels the tests
// use; later messages in a bound thread need none. Sessions are inbox ones:
// no agent runs.
const catchUpRoutes = `
routes:
  - name: slack
    match: {source: slack, where: ["C0BOUND", "C0PLACE", "C0OLD", "C0NEW", "C0BENCH*"]}
`

// t0 is when the tests' conversations start, three hours before testNow.
var t0 = testNow.Add(-3 * time.Hour)

// at is the Slack ts of t0+d.
func at(d time.Duration) string { return formatTS(t0.Add(d)) }

// flakyKV is a store.KV whose writes fail while failing is set.
type flakyKV struct {
	store.KV
	failing atomic.Bool
}

func (k *flakyKV) CompareAndSetValue(ctx context.Context, ns, key string, old, value []byte) (bool, error) {
	if k.failing.Load() {
		return false, errors.New("disk full")
	}
	return k.KV.CompareAndSetValue(ctx, ns, key, old, value)
}

// catchUpGateway is the round-trip harness (newGateway) on clk, its state
// in the store through a flakyKV.
func catchUpGateway(t testing.TB, fake *fakeSlack, clk *testclock.Clock) (*gateway, *flakyKV) {
	t.Helper()
	kv := &flakyKV{}
	gw := newGateway(t, fake, catchUpRoutes, func(d *adapters.Deps) {
		d.Now = clk.Now
		kv.KV = d.State
		d.State = kv
	}, nil)
	return gw, kv
}

// live delivers m, posted in channel, as Slack's Events API would (a
// message event, signed at the adapter's clock), and returns the status.
func live(a *Adapter, channel string, m fakeMsg) int {
	ev := struct {
		fakeMsg
		Channel     string `json:"channel"`
		ChannelType string `json:"channel_type"`
		EventTS     string `json:"event_ts"`
	}{m, channel, "channel", m.TS}
	if ev.Type == "" {
		ev.Type = "message"
	}
	if strings.HasPrefix(channel, "D") {
		ev.ChannelType = "im"
	}
	inner, _ := json.Marshal(ev)
	w := httptest.NewRecorder()
	a.Handler().ServeHTTP(w, signedRequest(callback("Ev"+m.TS, string(inner)), testSecret, a.now()))
	return w.Code
}

// writeLive writes m in channel and delivers it live, which must succeed.
func writeLive(t testing.TB, fake *fakeSlack, a *Adapter, channel string, m fakeMsg) {
	t.Helper()
	fake.write(channel, m)
	if code := live(a, channel, m); code != http.StatusOK {
		t.Fatalf("live %s: status %d", m.TS, code)
	}
}

// threadLog returns the inbound records of the session bound to the thread
// rooted at root in channel, in log order.
func threadLog(t testing.TB, gw *gateway, channel, root string) []store.Record {
	t.Helper()
	ctx := context.Background()
	b, err := gw.st.BindingFor(ctx, envelope.Conversation{Source: Name, Ref: "T0TEST/" + channel + "/" + root})
	if err != nil {
		t.Fatalf("binding of %s/%s: %v", channel, root, err)
	}
	recs, err := gw.st.Read(ctx, b.SessionID, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var in []store.Record
	for _, r := range recs {
		if r.Direction == store.Inbound {
			in = append(in, r)
		}
	}
	return in
}

// texts are the records' texts.
func texts(recs []store.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Envelope.Text)
	}
	return out
}

// inboundCount counts the inbound records of every session.
func inboundCount(t testing.TB, gw *gateway) int {
	t.Helper()
	ctx := context.Background()
	sessions, err := gw.st.ListSessions(ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range sessions {
		recs, err := gw.st.Read(ctx, s.ID, 0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Direction == store.Inbound {
				n++
			}
		}
	}
	return n
}

// day is the catch-up window of the tests.
const day = 24 * time.Hour

// TestCatchUpAfterDowntime: while the gateway is stopped, people reply in
// a bound thread and mention the bot in a route-named channel; the
// catch-up brings every message to its session once and in order, and a
// message handled live whose mark was not saved comes back Duplicate.
func TestCatchUpAfterDowntime(t *testing.T) {
	fake := newFakeSlack(t)
	fake.setUsers(map[string]string{"U0ADA": "Ada", "U0BOB": "Bob"})
	clk := testclock.New(t0)
	gw, kv := catchUpGateway(t, fake, clk)
	a := gw.a
	ctx := t.Context()

	// The route-named channel has history before the gateway first looks:
	// it is not replayed.
	fake.write("C0PLACE", fakeMsg{User: "U0BOB", Text: "<@U0BOTUSER> from last year", TS: formatTS(t0.Add(-time.Hour))})
	rep, err := a.CatchUp(ctx, adapters.CatchUpRequest{Window: day, Places: []string{"C0PLACE"}})
	if err != nil {
		t.Fatal(err)
	}
	if rep != (adapters.CatchUpReport{Scopes: 1}) {
		t.Fatalf("first catch-up = %+v, want one place started and nothing fetched", rep)
	}
	if calls := fake.listCalls(); len(calls) != 0 {
		t.Fatalf("first catch-up made listing calls: %v", calls)
	}

	// Live: a mention binds a thread; a reply is stored but its mark is
	// not saved (the webhook still succeeds).
	r1 := at(time.Minute)
	writeLive(t, fake, a, "C0BOUND", fakeMsg{User: "U0ADA", Text: "<@U0BOTUSER> the build is red", TS: r1})
	kv.failing.Store(true)
	writeLive(t, fake, a, "C0BOUND", fakeMsg{User: "U0ADA", Text: "it started yesterday", TS: at(2 * time.Minute), ThreadTS: r1})
	kv.failing.Store(false)

	// Stopped: nothing is delivered live.
	r2 := at(20 * time.Minute)
	fake.write("C0BOUND",
		fakeMsg{User: "U0BOB", Text: "missed one", TS: at(10 * time.Minute), ThreadTS: r1},
		fakeMsg{BotID: "B0OWN", Text: "working on it", TS: at(11 * time.Minute), ThreadTS: r1},
		fakeMsg{User: "U0ADA", Text: "missed two", TS: at(12 * time.Minute), ThreadTS: r1},
		fakeMsg{User: "U0BOTUSER", Text: "still working", TS: at(13 * time.Minute), ThreadTS: r1},
	)
	fake.write("C0PLACE",
		fakeMsg{User: "U0BOB", Text: "<@U0BOTUSER> can you check the deploy?", TS: r2},
		fakeMsg{User: "U0BOB", Text: "it is prod", TS: at(21 * time.Minute), ThreadTS: r2},
		fakeMsg{User: "U0ADA", Text: "lunch anyone?", TS: at(22 * time.Minute)},
	)
	clk.Set(t0.Add(time.Hour))
	rep, err = a.CatchUp(ctx, adapters.CatchUpRequest{Window: day, Places: []string{"C0PLACE"}})
	if err != nil {
		t.Fatal(err)
	}
	// Since: the place's start. Found: the bound thread's three (one seen
	// live), the place's root, its reply and the chatter; New: all but the
	// one seen live and the chatter no route takes. Scopes: the thread,
	// both channels and the place's new thread.
	if want := (adapters.CatchUpReport{Since: t0, Scopes: 4, Found: 6, New: 4}); rep != want {
		t.Fatalf("catch-up = %+v, want %+v", rep, want)
	}
	if got, want := texts(threadLog(t, gw, "C0BOUND", r1)), []string{"the build is red", "it started yesterday", "missed one", "missed two"}; !slices.Equal(got, want) {
		t.Errorf("bound thread = %q, want %q", got, want)
	}
	recs := threadLog(t, gw, "C0PLACE", r2)
	if got, want := texts(recs), []string{"can you check the deploy?", "it is prod"}; !slices.Equal(got, want) {
		t.Errorf("new thread = %q, want %q", got, want)
	}
	if recs[0].Envelope.ID != "slack:T0TEST/C0PLACE/"+r2 || recs[0].Envelope.Conversation.Ref != "T0TEST/C0PLACE/"+r2 || recs[0].Envelope.Actor.Display != "Bob" {
		t.Errorf("caught-up envelope = %+v", recs[0].Envelope)
	}
	var raw fakeMsg
	if err := json.Unmarshal(recs[1].Envelope.Raw, &raw); err != nil || raw.Text != "it is prod" || raw.ThreadTS != r2 {
		t.Errorf("raw = %s (%v), want the message object as fetched", recs[1].Envelope.Raw, err)
	}
	if n := inboundCount(t, gw); n != 6 {
		t.Errorf("%d inbound records, want 6", n)
	}

	// Nothing new: the next catch-up finds nothing.
	rep, err = a.CatchUp(ctx, adapters.CatchUpRequest{Window: day, Places: []string{"C0PLACE"}})
	if err != nil || rep.Found != 0 || rep.New != 0 {
		t.Fatalf("second catch-up = %+v, %v; want nothing found", rep, err)
	}
}

// TestCatchUpMapsAsLive: a message fetched by the catch-up becomes the
// envelope and Facts the live event gave (but for raw), in a channel and
// in a DM.
func TestCatchUpMapsAsLive(t *testing.T) {
	for _, channel := range []string{"C0BOUND", "D0DM"} {
		t.Run(channel, func(t *testing.T) {
			fake := newFakeSlack(t)
			fake.setUsers(map[string]string{"U0ADA": "Ada"})
			rec := newRecorder()
			a := newTestAdapterWith(t, fake, rec, nil, func(d *adapters.Deps) { d.State = &adaptertest.MemoryKV{} })
			root := at(time.Minute)
			msgs := []fakeMsg{
				{User: "U0ADA", Text: "<@U0BOTUSER> see https://github.com/acme/api/pull/42", TS: root},
				{User: "U0ADA", Text: "and <@U0BOTUSER> this", TS: at(2 * time.Minute), ThreadTS: root, Edited: &fakeEdited{User: "U0ADA", TS: at(3 * time.Minute)}},
				{BotID: "B0THEIRS", Subtype: "bot_message", Username: "ci", Text: "build failed", TS: at(4 * time.Minute), ThreadTS: root},
			}
			writeLive(t, fake, a, channel, msgs[0])
			for _, m := range msgs[1:] {
				fake.write(channel, m)
			}
			if _, err := a.CatchUp(t.Context(), adapters.CatchUpRequest{Window: day}); err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs[1:] {
				if code := live(a, channel, m); code != http.StatusOK {
					t.Fatalf("live %s: %d", m.TS, code)
				}
			}
			got := rec.all()
			if len(got) != 5 {
				t.Fatalf("%d ingested, want 5 (one live, two caught up, the same two live)", len(got))
			}
			for i := 1; i <= 2; i++ {
				caught, liveIn := got[i], got[i+2]
				if caught.Envelope.ID != liveIn.Envelope.ID {
					t.Fatalf("ids differ: %s and %s", caught.Envelope.ID, liveIn.Envelope.ID)
				}
				caught.Envelope.Raw, liveIn.Envelope.Raw = nil, nil
				cj, _ := json.Marshal(caught)
				lj, _ := json.Marshal(liveIn)
				if string(cj) != string(lj) {
					t.Errorf("caught up:\n%s\nlive:\n%s", cj, lj)
				}
			}
			if f := got[1].Facts; !f.Addressed || f.Direct != (channel == "D0DM") || f.Sender != "U0ADA" || f.Where != channel {
				t.Errorf("facts = %+v", f)
			}
			if f := got[2].Facts; !f.FromBot || got[2].Envelope.Actor.Type != envelope.Agent {
				t.Errorf("another bot's message: facts %+v actor %+v", f, got[2].Envelope.Actor)
			}
		})
	}
}

// TestCatchUpAndLiveStoreOnce: a message delivered both live and by a
// catch-up, in either order, is stored once.
func TestCatchUpAndLiveStoreOnce(t *testing.T) {
	root := at(time.Minute)
	start := fakeMsg{User: "U0ADA", Text: "<@U0BOTUSER> hello", TS: root}
	m := fakeMsg{User: "U0ADA", Text: "the message", TS: at(5 * time.Minute), ThreadTS: root}

	t.Run("catch-up first", func(t *testing.T) {
		fake := newFakeSlack(t)
		clk := testclock.New(t0.Add(10 * time.Minute))
		gw, _ := catchUpGateway(t, fake, clk)
		writeLive(t, fake, gw.a, "C0BOUND", start)
		fake.write("C0BOUND", m)
		rep, err := gw.a.CatchUp(t.Context(), adapters.CatchUpRequest{Window: day})
		if err != nil || rep.Found != 1 || rep.New != 1 {
			t.Fatalf("catch-up = %+v, %v", rep, err)
		}
		// Slack's last retry of the event arrives after all.
		if code := live(gw.a, "C0BOUND", m); code != http.StatusOK {
			t.Fatalf("live: %d", code)
		}
		if got := outcomes(gw.a, "http"); got[outcomeDuplicate] != 1 {
			t.Errorf("outcomes = %v, want the live one a duplicate", got)
		}
		if got := texts(threadLog(t, gw, "C0BOUND", root)); !slices.Equal(got, []string{"hello", "the message"}) {
			t.Errorf("log = %q", got)
		}
	})

	t.Run("live first", func(t *testing.T) {
		fake := newFakeSlack(t)
		clk := testclock.New(t0.Add(10 * time.Minute))
		gw, _ := catchUpGateway(t, fake, clk)
		writeLive(t, fake, gw.a, "C0BOUND", start)
		// The gateway restarts (a new adapter on the same store). Its first
		// live event is a retry Slack kept for it; an earlier message, n,
		// Slack gave up on.
		n := fakeMsg{User: "U0BOB", Text: "given up on", TS: at(3 * time.Minute), ThreadTS: root}
		fake.write("C0BOUND", n)
		a2 := newTestAdapterWith(t, fake, adapters.IngressFunc(gw.rt.Ingest), nil, func(d *adapters.Deps) {
			d.Now, d.State = clk.Now, gw.st
		})
		writeLive(t, fake, a2, "C0BOUND", m)
		rep, err := a2.CatchUp(t.Context(), adapters.CatchUpRequest{Window: day})
		if err != nil {
			t.Fatal(err)
		}
		// The catch-up starts where the thread stood before the live
		// message moved its mark: it finds n, and m again.
		if rep.Found != 2 || rep.New != 1 {
			t.Fatalf("catch-up = %+v, want n and m found, n new", rep)
		}
		got := texts(threadLog(t, gw, "C0BOUND", root))
		slices.Sort(got)
		if !slices.Equal(got, []string{"given up on", "hello", "the message"}) {
			t.Errorf("log = %q, want each message once", got)
		}
	})
}

// TestLiveMessageDuringCatchUp: a live message of a thread being caught up
// (delivered between two pages) waits for it: stored once, after the
// messages written before it.
func TestLiveMessageDuringCatchUp(t *testing.T) {
	fake := newFakeSlack(t)
	fake.pageMax = 2
	clk := testclock.New(t0.Add(time.Hour))
	gw, _ := catchUpGateway(t, fake, clk)
	a := gw.a
	root := at(time.Minute)
	writeLive(t, fake, a, "C0BOUND", fakeMsg{User: "U0ADA", Text: "<@U0BOTUSER> start", TS: root})
	for i := range 5 {
		fake.write("C0BOUND", fakeMsg{User: "U0ADA", Text: fmt.Sprintf("missed %d", i+1), TS: at(time.Duration(10+i) * time.Minute), ThreadTS: root})
	}
	late := fakeMsg{User: "U0BOB", Text: "live meanwhile", TS: at(30 * time.Minute), ThreadTS: root}
	liveDone := make(chan int, 1)
	key := "T0TEST/C0BOUND/" + root
	fake.onList = func(method string, call int) {
		if method != "conversations.replies" || call != 2 {
			return
		}
		fake.write("C0BOUND", late)
		go func() { liveDone <- live(a, "C0BOUND", late) }()
		// Answer page 2 only once the live message waits for the thread.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			a.convs.mu.Lock()
			waiting := a.convs.m[key] != nil && a.convs.m[key].refs == 2
			a.convs.mu.Unlock()
			if waiting {
				return
			}
			if time.Now().After(deadline) {
				t.Error("the live message did not wait for the catch-up of its thread")
				return
			}
		}
	}
	rep, err := a.CatchUp(t.Context(), adapters.CatchUpRequest{Window: day})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-liveDone:
		if code != http.StatusOK {
			t.Fatalf("live: %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the live message never got through")
	}
	if rep.Found != 6 || rep.New != 6 {
		t.Errorf("catch-up = %+v, want 6 found and new (the live one was written before the last pages)", rep)
	}
	want := []string{"start", "missed 1", "missed 2", "missed 3", "missed 4", "missed 5", "live meanwhile"}
	if got := texts(threadLog(t, gw, "C0BOUND", root)); !slices.Equal(got, want) {
		t.Errorf("log = %q, want %q", got, want)
	}
	if got := outcomes(a, "http"); got[outcomeDuplicate] != 1 {
		t.Errorf("outcomes = %v, want the live one a duplicate", got)
	}
}

// TestCatchUpPaginatesAndWaitsOutRateLimits: threads and channels over
// several pages, a 429 in the middle of each, waited out as Retry-After
// says.
func TestCatchUpPaginatesAndWaitsOutRateLimits(t *testing.T) {
	fake := newFakeSlack(t)
	fake.pageMax = 2
	clk := testclock.New(t0)
	gw, _ := catchUpGateway(t, fake, clk)
	a := gw.a
	var waits []time.Duration
	a.sleep = func(_ context.Context, d time.Duration) bool { waits = append(waits, d); return true }
	ctx := t.Context()
	if _, err := a.CatchUp(ctx, adapters.CatchUpRequest{Window: day, Places: []string{"C0PLACE"}}); err != nil {
		t.Fatal(err)
	}
	root := at(time.Minute)
	writeLive(t, fake, a, "C0BOUND", fakeMsg{User: "U0ADA", Text: "<@U0BOTUSER> start", TS: root})
	var want []string
	for i := range 7 {
		text := fmt.Sprintf("reply %d", i+1)
		fake.write("C0BOUND", fakeMsg{User: "U0ADA", Text: text, TS: at(time.Duration(10+i) * time.Minute), ThreadTS: root})
		want = append(want, text)
	}
	var roots []string
	for i := range 5 {
		ts := at(time.Duration(30+i) * time.Minute)
		roots = append(roots, ts)
		fake.write("C0PLACE", fakeMsg{User: "U0BOB", Text: fmt.Sprintf("<@U0BOTUSER> question %d", i+1), TS: ts})
	}
	for i := range 3 {
		fake.write("C0PLACE", fakeMsg{User: "U0BOB", Text: fmt.Sprintf("detail %d", i+1), TS: at(time.Duration(40+i) * time.Minute), ThreadTS: roots[2]})
	}
	fake.failList("conversations.replies", nil, rateLimited(1))
	fake.failList("conversations.history", nil, rateLimited(1))
	clk.Set(t0.Add(time.Hour))

	rep, err := a.CatchUp(ctx, adapters.CatchUpRequest{Window: day, Places: []string{"C0PLACE"}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Found != 15 || rep.New != 15 || rep.Scopes != 4 {
		t.Errorf("catch-up = %+v, want 15 found and new in 4 scopes", rep)
	}
	if !slices.Equal(waits, []time.Duration{time.Second, time.Second}) {
		t.Errorf("waits = %v, want two of 1s", waits)
	}
	if got := texts(threadLog(t, gw, "C0BOUND", root)); !slices.Equal(got, append([]string{"start"}, want...)) {
		t.Errorf("bound thread = %q", got)
	}
	for i, r := range roots {
		want := []string{fmt.Sprintf("question %d", i+1)}
		if i == 2 {
			want = append(want, "detail 1", "detail 2", "detail 3")
		}
		if got := texts(threadLog(t, gw, "C0PLACE", r)); !slices.Equal(got, want) {
			t.Errorf("thread %d = %q, want %q", i+1, got, want)
		}
	}
	// Pages: the channel 3 (+1 rate limited), its new thread 2 (+1 rate
	// limited), the bound thread 4. Each call after the first of a listing
	// carries the cursor of the one before (the same after a 429), and
	// every call the same oldest.
	byList := map[string][]url.Values{}
	for _, c := range fake.listCalls() {
		k := c.method + " " + c.form.Get("channel") + " " + c.form.Get("ts")
		byList[k] = append(byList[k], c.form)
	}
	for _, tc := range []struct {
		list, oldest string
		calls        int
		retried      int // the call repeated after a 429 (0: none)
	}{
		{"conversations.history C0PLACE ", formatTS(t0), 4, 2},
		{"conversations.replies C0PLACE " + roots[2], roots[2], 3, 2},
		{"conversations.replies C0BOUND " + root, root, 4, 0},
		{"conversations.history C0BOUND ", root, 1, 0},
	} {
		calls := byList[tc.list]
		if len(calls) != tc.calls {
			t.Errorf("%s: %d calls, want %d", tc.list, len(calls), tc.calls)
			continue
		}
		for i, c := range calls {
			if c.Get("oldest") != tc.oldest || c.Get("inclusive") != "0" || c.Get("limit") != "200" {
				t.Errorf("%s call %d = %v", tc.list, i+1, c)
			}
			repeat := tc.retried > 0 && i == tc.retried
			switch {
			case i == 0 && c.Get("cursor") != "":
				t.Errorf("%s: the first call has a cursor", tc.list)
			case i > 0 && repeat != (c.Get("cursor") == calls[i-1].Get("cursor")):
				t.Errorf("%s call %d: cursor %q after %q", tc.list, i+1, c.Get("cursor"), calls[i-1].Get("cursor"))
			}
		}
	}
	if len(byList) != 4 {
		t.Errorf("listings %v, want 4", byList)
	}
}

// TestCatchUpErrorsAndResume: an error other than a 429 stops the catch-up
// with what failed; the next one resumes after what was stored. A thread
// that is gone is skipped; a long 429 ends with the context.
func TestCatchUpErrorsAndResume(t *testing.T) {
	fake := newFakeSlack(t)
	fake.pageMax = 2
	clk := testclock.New(t0.Add(time.Hour))
	gw, _ := catchUpGateway(t, fake, clk)
	a := gw.a
	ctx := t.Context()
	root := at(time.Minute)
	writeLive(t, fake, a, "C0BOUND", fakeMsg{User: "U0ADA", Text: "<@U0BOTUSER> start", TS: root})
	for i := range 6 {
		fake.write("C0BOUND", fakeMsg{User: "U0ADA", Text: fmt.Sprintf("reply %d", i+1), TS: at(time.Duration(10+i) * time.Minute), ThreadTS: root})
	}
	fake.failList("conversations.replies", nil, failWith(http.StatusInternalServerError, nil, nil))
	rep, err := a.CatchUp(ctx, adapters.CatchUpRequest{Window: day})
	if err == nil || !strings.Contains(err.Error(), "slack: catch-up: replies of T0TEST/C0BOUND/"+root) || !strings.Contains(err.Error(), "500") {
		t.Fatalf("err = %v, want the failed replies call", err)
	}
	if rep.New != 2 {
		t.Fatalf("report = %+v, want the first page's 2 stored", rep)
	}
	fake.failList("conversations.replies", failWith(http.StatusOK, nil, map[string]any{"ok": false, "error": "missing_scope", "needed": "channels:history"}))
	if _, err := a.CatchUp(ctx, adapters.CatchUpRequest{Window: day}); err == nil || !strings.Contains(err.Error(), "missing_scope") {
		t.Fatalf("err = %v, want missing_scope", err)
	}
	before := len(fake.listCalls())
	rep, err = a.CatchUp(ctx, adapters.CatchUpRequest{Window: day})
	if err != nil || rep.New != 4 || rep.Found != 4 {
		t.Fatalf("resumed catch-up = %+v, %v; want the 4 others", rep, err)
	}
	for _, c := range fake.listCalls()[before:] {
		if c.method == "conversations.replies" {
			if c.form.Get("oldest") != at(11*time.Minute) {
				t.Errorf("resumed from %v, want after reply 2", c.form)
			}
			break
		}
	}
	want := []string{"start", "reply 1", "reply 2", "reply 3", "reply 4", "reply 5", "reply 6"}
	if got := texts(threadLog(t, gw, "C0BOUND", root)); !slices.Equal(got, want) {
		t.Errorf("log = %q", got)
	}

	// A deleted thread is skipped, not an error.
	fake.mu.Lock()
	fake.channels["C0BOUND"] = slices.DeleteFunc(fake.channels["C0BOUND"], func(m fakeMsg) bool { return m.TS == root })
	fake.mu.Unlock()
	if rep, err := a.CatchUp(ctx, adapters.CatchUpRequest{Window: day}); err != nil || rep.Found != 0 {
		t.Fatalf("catch-up with the thread gone = %+v, %v", rep, err)
	}

	// A 429 asking for a minute, with the context ending first.
	fake.write("C0BOUND", fakeMsg{User: "U0ADA", Text: "<@U0BOTUSER> again", TS: at(50 * time.Minute)})
	if code := live(a, "C0BOUND", fakeMsg{User: "U0ADA", Text: "<@U0BOTUSER> again", TS: at(50 * time.Minute)}); code != http.StatusOK {
		t.Fatal(code)
	}
	fake.failList("conversations.replies", rateLimited(60))
	// Long enough for the request to get its 429 on a loaded machine, far
	// shorter than the minute asked for.
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	began := time.Now()
	if _, err := a.CatchUp(short, adapters.CatchUpRequest{Window: day}); err == nil || !strings.Contains(err.Error(), "rate limit") {
		t.Fatalf("err = %v, want the rate limit wait cut short", err)
	}
	if d := time.Since(began); d > 20*time.Second {
		t.Errorf("took %s", d)
	}
}

// TestCatchUpSkipsOwnOldAndNew: the bot's own messages are not ingested;
// nothing older than the window is fetched, nor an idle thread looked at;
// a route-named channel seen for the first time is started, not replayed.
func TestCatchUpSkipsOwnOldAndNew(t *testing.T) {
	fake := newFakeSlack(t)
	clk := testclock.New(t0.Add(-2 * day))
	gw, _ := catchUpGateway(t, fake, clk)
	a := gw.a
	ctx := t.Context()

	// Two days ago: a thread in C0OLD (its channel a route-named place).
	old := formatTS(clk.Now().Add(-time.Minute))
	writeLive(t, fake, a, "C0OLD", fakeMsg{User: "U0ADA", Text: "<@U0BOTUSER> old one", TS: old})
	clk.Set(t0)
	root := at(time.Minute)
	writeLive(t, fake, a, "C0BOUND", fakeMsg{User: "U0ADA", Text: "<@U0BOTUSER> start", TS: root}) // names the app: A0TEST
	fake.write("C0BOUND",
		fakeMsg{BotID: "B0OWN", Text: "own bot", TS: at(2 * time.Minute), ThreadTS: root},
		fakeMsg{User: "U0BOTUSER", Text: "own bot user", TS: at(3 * time.Minute), ThreadTS: root},
		fakeMsg{BotID: "B0OTHER", AppID: "A0TEST", Text: "own app", TS: at(4 * time.Minute), ThreadTS: root},
		fakeMsg{User: "U0ADA", Text: "a person", TS: at(5 * time.Minute), ThreadTS: root},
	)
	fake.write("C0OLD",
		fakeMsg{User: "U0ADA", Text: "in the old thread", TS: at(6 * time.Minute), ThreadTS: old},
		fakeMsg{User: "U0ADA", Text: "<@U0BOTUSER> older than the window", TS: formatTS(testNow.Add(-day - time.Hour))},
		fakeMsg{User: "U0ADA", Text: "<@U0BOTUSER> within it", TS: at(7 * time.Minute)},
	)
	fake.write("C0NEW", fakeMsg{User: "U0ADA", Text: "<@U0BOTUSER> before the first look", TS: at(8 * time.Minute)})
	clk.Set(testNow)

	rep, err := a.CatchUp(ctx, adapters.CatchUpRequest{Window: day, Places: []string{"C0OLD", "C0NEW"}})
	if err != nil {
		t.Fatal(err)
	}
	calls := fake.listCalls()
	// Found: the person in the bound thread, the mention within the window.
	if rep.Found != 2 || rep.New != 2 {
		t.Errorf("catch-up = %+v, want 2 found and new", rep)
	}
	if got := texts(threadLog(t, gw, "C0BOUND", root)); !slices.Equal(got, []string{"start", "a person"}) {
		t.Errorf("bound thread = %q, want the bot's messages left out", got)
	}
	if got := texts(threadLog(t, gw, "C0OLD", at(7*time.Minute))); !slices.Equal(got, []string{"within it"}) {
		t.Errorf("C0OLD thread = %q", got)
	}
	edge := formatTS(testNow.Add(-day))
	for _, c := range calls {
		switch {
		case c.form.Get("channel") == "C0NEW":
			t.Errorf("a place seen for the first time was fetched: %v", c.form)
		case c.form.Get("ts") == old:
			t.Errorf("a thread idle for longer than the window was looked at: %v", c.form)
		case c.form.Get("channel") == "C0OLD" && c.form.Get("oldest") != edge:
			t.Errorf("C0OLD fetched from %s, want the window's edge %s", c.form.Get("oldest"), edge)
		}
		if o, _ := parseTS(c.form.Get("oldest")); o.Before(testNow.Add(-day)) {
			t.Errorf("fetched from %s, before the window", c.form.Get("oldest"))
		}
	}
	if mk, ok, err := a.marks.Get(ctx, channelScope("T0TEST", "C0NEW")); err != nil || !ok || !mk.Last.Equal(testNow) {
		t.Errorf("C0NEW mark = %+v %v %v, want started now", mk, ok, err)
	}

	// Written after the start: the next catch-up fetches it, only it.
	fake.write("C0NEW", fakeMsg{User: "U0ADA", Text: "<@U0BOTUSER> after the first look", TS: formatTS(testNow.Add(time.Minute))})
	clk.Set(testNow.Add(time.Hour))
	rep, err = a.CatchUp(ctx, adapters.CatchUpRequest{Window: day, Places: []string{"C0OLD", "C0NEW"}})
	if err != nil || rep.Found != 1 || rep.New != 1 {
		t.Fatalf("next catch-up = %+v, %v; want the one message after the start", rep, err)
	}
}

// TestCatchUpWithoutState: without a state store the live path works and
// CatchUp says what is missing.
func TestCatchUpWithoutState(t *testing.T) {
	fake := newFakeSlack(t)
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	if code := live(a, "C0BOUND", fakeMsg{User: "U0ADA", Text: "<@U0BOTUSER> hi", TS: at(time.Minute)}); code != http.StatusOK {
		t.Fatal(code)
	}
	if len(rec.all()) != 1 {
		t.Fatal("not ingested")
	}
	if _, err := a.CatchUp(t.Context(), adapters.CatchUpRequest{Window: day}); err == nil || !strings.Contains(err.Error(), "no state store") {
		t.Fatalf("err = %v", err)
	}
}

// TestSocketReconnectAsksForCatchUp: a Socket Mode reconnect (not the first
// connection) asks the gateway for a catch-up, which starts where the
// thread stood when the connection dropped although the new connection's
// first event moved its mark.
func TestSocketReconnectAsksForCatchUp(t *testing.T) {
	fake := newFakeSlack(t)
	ws := newSocketServer(t)
	fake.wsURL = ws.url()
	rec := newRecorder()
	requests := make(chan struct{}, 4)
	a := newTestAdapterWith(t, fake, rec, func(c *Config) { c.SigningSecret, c.AppToken = "", testAppToken }, func(d *adapters.Deps) {
		d.State = &adaptertest.MemoryKV{}
		d.RequestCatchUp = func() { requests <- struct{}{} }
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	event := func(m fakeMsg) []byte {
		b, _ := json.Marshal(struct {
			fakeMsg
			Channel string `json:"channel"`
		}{m, "C0BOUND"})
		return callback("Ev"+m.TS, string(b))
	}
	root := at(time.Minute)
	c1 := ws.accept(t)
	write(t, c1, eventsAPI("e1", event(fakeMsg{Type: "message", User: "U0ADA", Text: "<@U0BOTUSER> start", TS: root}), 0))
	readAck(t, c1, "e1")
	select {
	case <-requests:
		t.Fatal("the first connection asked for a catch-up")
	case <-time.After(50 * time.Millisecond):
	}
	fake.write("C0BOUND", fakeMsg{User: "U0ADA", Text: "<@U0BOTUSER> start", TS: root},
		fakeMsg{User: "U0ADA", Text: "while it was down", TS: at(2 * time.Minute), ThreadTS: root})

	c1.UnderlyingConn().Close()
	c2 := ws.accept(t)
	select {
	case <-requests:
	case <-time.After(10 * time.Second):
		t.Fatal("the reconnect did not ask for a catch-up")
	}
	after := fakeMsg{Type: "message", User: "U0ADA", Text: "after the reconnect", TS: at(3 * time.Minute), ThreadTS: root}
	fake.write("C0BOUND", after)
	write(t, c2, eventsAPI("e2", event(after), 0))
	readAck(t, c2, "e2")
	rep, err := a.CatchUp(ctx, adapters.CatchUpRequest{Window: day})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Found != 2 || rep.New != 1 {
		t.Errorf("catch-up = %+v, want the missed message new and the live one again", rep)
	}
	var got []string
	for _, in := range rec.all() {
		got = append(got, in.Envelope.Text)
	}
	if want := []string{"start", "after the reconnect", "while it was down", "after the reconnect"}; !slices.Equal(got, want) {
		t.Errorf("ingested %q, want %q", got, want)
	}
}
