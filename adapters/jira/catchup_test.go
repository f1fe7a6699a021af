package jira

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/testclock"
	"github.com/switchboardhq/switchboard/router"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/sqlite"
)

// rig is the round trip of a catch-up: the fake site, the adapter with the
// gateway's store as its state, and the router over a real SQLite store,
// with a route taking the OPS and WEB projects (a mention or an assignment
// starts a conversation; a bound issue takes every comment). The inbox
// runtime keeps what arrives; no agent answers.
type rig struct {
	fake  *fakeJira
	clock *testclock.Clock
	st    *sqlite.Store
	rt    *router.Router
	a     *Adapter

	mu    sync.Mutex
	waits []time.Duration // the rate-limit waits asked for
}

// window is the catch-up window of the tests.
const window = 24 * time.Hour

func newRig(t testing.TB, dataCenter bool) *rig {
	t.Helper()
	r := &rig{fake: newFakeJira(t), clock: testclock.New(testNow)}
	r.fake.now = r.clock.Now
	cfg := &Config{BaseURL: r.fake.srv.URL, Email: testEmail, APIToken: testAPIToken, WebhookSecret: testSecret}
	if dataCenter {
		r.fake.auth = "Bearer " + testPAT
		cfg.Email, cfg.APIToken, cfg.PersonalAccessToken = "", "", testPAT
	}
	routes, err := config.Parse([]byte("routes:\n  - name: jira\n    match: {source: jira, where: [\"OPS\", \"WEB\"]}\n"),
		func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "sb.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	r.st = st
	r.a, err = New(cfg, adapters.Deps{
		Ingress: adapters.IngressFunc(func(ctx context.Context, in adapters.Inbound) (adapters.Outcome, error) {
			return r.rt.Ingest(ctx, in)
		}),
		Now:        r.clock.Now,
		HTTPClient: r.fake.srv.Client(),
		Registry:   prometheus.NewRegistry(),
		State:      st,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.a.sleep = func(ctx context.Context, d time.Duration) bool {
		r.mu.Lock()
		r.waits = append(r.waits, d)
		r.mu.Unlock()
		return ctx.Err() == nil
	}
	runtimes, err := router.Runtimes(routes, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.rt, err = router.New(router.Options{
		Config: routes, Store: st, Sinks: map[string]adapters.Sink{Name: r.a}, Runtimes: runtimes,
		Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler), Poll: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.rt.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// live delivers the fake's webhook of comment id (comment_created or
// comment_updated) and wants it acknowledged.
func (r *rig) live(t testing.TB, event, id string) {
	t.Helper()
	if w := post(r.a, r.fake.webhook(t, event, id)); w.Code != http.StatusNoContent {
		t.Fatalf("webhook %s of %s: %d %s", event, id, w.Code, w.Body)
	}
}

// catchUp runs a catch-up of window looking at places.
func (r *rig) catchUp(t testing.TB, places ...string) adapters.CatchUpReport {
	t.Helper()
	rep, err := r.a.CatchUp(context.Background(), adapters.CatchUpRequest{Window: window, Places: places})
	if err != nil {
		t.Fatalf("CatchUp: %v", err)
	}
	return rep
}

// ids returns the envelope ids stored, in order, in the session bound to
// the issue (nil when it is not bound).
func (r *rig) ids(t testing.TB, key string) []string {
	t.Helper()
	var out []string
	for _, rec := range r.records(t, key) {
		out = append(out, rec.Envelope.ID)
	}
	return out
}

func (r *rig) records(t testing.TB, key string) []store.Record {
	t.Helper()
	b, err := r.st.BindingFor(context.Background(), envelope.Conversation{Source: Name, Ref: "acme.atlassian.net/" + key})
	if err != nil {
		return nil
	}
	recs, err := r.st.Read(context.Background(), b.SessionID, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var in []store.Record
	for _, rec := range recs {
		if rec.Direction == store.Inbound {
			in = append(in, rec)
		}
	}
	return in
}

// inbound counts the inbound records of every session.
func (r *rig) inbound(t testing.TB) int {
	t.Helper()
	sessions, err := r.st.ListSessions(context.Background(), "", 10000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range sessions {
		recs, err := r.st.Read(context.Background(), s.ID, 0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			if rec.Direction == store.Inbound {
				n++
			}
		}
	}
	return n
}

func (r *rig) mark(t testing.TB, project string) (time.Time, bool) {
	t.Helper()
	m, ok, err := r.a.marks.Get(context.Background(), project)
	if err != nil {
		t.Fatal(err)
	}
	return m.Last, ok
}

func (r *rig) waited() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.waits)
}

var ada = map[string]any{"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Ada Lovelace", "accountType": "atlassian"}

// mention is a wiki-markup comment mentioning the bot.
func mention(text string) string { return "[~accountid:" + botAccountID + "] " + text }

// cid is the envelope id of comment id; eid that of its edit at updated.
func cid(id string) string { return "jira:acme.atlassian.net:" + id }
func eid(id string, updated time.Time) string {
	return cid(id) + ":edit:" + strconv.FormatInt(updated.UnixMilli(), 10)
}

func wantReport(t *testing.T, got, want adapters.CatchUpReport) {
	t.Helper()
	if !got.Since.Equal(want.Since) || got.Scopes != want.Scopes || got.Found != want.Found || got.New != want.New {
		t.Errorf("report %+v, want %+v", got, want)
	}
}

// TestCatchUpAfterDowntime: the gateway starts (the route-named projects
// are started, nothing replayed), takes one comment live, and stops; in
// the meantime comments are written on the bound issue, a new mention
// starts a conversation in another route-named project, a comment the
// routes drop, an edit of the comment seen live and a comment of the bot.
// The catch-up on restart stores each message once, in order, in its
// session, the comment seen live coming back Duplicate; a second catch-up
// stores nothing.
func TestCatchUpAfterDowntime(t *testing.T) {
	r := newRig(t, false)
	t0 := testNow
	for _, k := range []string{"OPS-1", "WEB-7", "WEB-8"} {
		r.fake.addIssue(k, t0.Add(-48*time.Hour))
	}

	// First start: the places have no marks; they start at now.
	wantReport(t, r.catchUp(t, "OPS", "WEB"), adapters.CatchUpReport{})
	if s := r.fake.searchLog(); len(s) != 0 {
		t.Errorf("a first start searched %q", s)
	}

	// Live: a mention on OPS-1 binds it.
	r.clock.Set(t0.Add(time.Minute))
	c1 := r.fake.addComment("OPS-1", ada, mention("deploys to staging fail"), t0.Add(time.Minute))
	r.live(t, eventCommentCreated, c1)

	// The gateway is stopped; people keep writing.
	c2 := r.fake.addComment("OPS-1", ada, "it fails on *staging* only", t0.Add(10*time.Minute))
	c3 := r.fake.addComment("WEB-7", ada, mention("please review the release notes"), t0.Add(11*time.Minute))
	c4 := r.fake.addComment("OPS-1", ada, "and on prod since 10:00", t0.Add(12*time.Minute))
	c5 := r.fake.addComment("WEB-7", ada, "thanks!", t0.Add(13*time.Minute))
	r.fake.addComment("WEB-8", ada, "nobody asked the bot here", t0.Add(14*time.Minute))
	r.fake.editComment(c1, mention("deploys to staging and prod fail"), t0.Add(15*time.Minute))
	r.fake.addComment("OPS-1", botUser(), "On it."+marker("d1", 1), t0.Add(16*time.Minute))

	// Restart.
	r.clock.Set(t0.Add(30 * time.Minute))
	rep := r.catchUp(t, "OPS", "WEB")
	// OPS: c1 (Duplicate), its edit, c2, c4; WEB: c3, c5, w8 (dropped).
	wantReport(t, rep, adapters.CatchUpReport{Since: t0, Scopes: 2, Found: 7, New: 5})
	if got, want := r.ids(t, "OPS-1"), []string{cid(c1), cid(c2), cid(c4), eid(c1, t0.Add(15*time.Minute))}; !slices.Equal(got, want) {
		t.Errorf("OPS-1 holds %q, want %q", got, want)
	}
	if got, want := r.ids(t, "WEB-7"), []string{cid(c3), cid(c5)}; !slices.Equal(got, want) {
		t.Errorf("WEB-7 holds %q, want %q", got, want)
	}
	if got := r.ids(t, "WEB-8"); got != nil {
		t.Errorf("WEB-8 holds %q, want no session (no mention)", got)
	}
	web := r.records(t, "WEB-7")
	if len(web) == 2 && (web[0].Envelope.Text != "please review the release notes" || web[0].Envelope.Actor.Display != "Ada Lovelace") {
		t.Errorf("WEB-7's first message: %+v", web[0].Envelope)
	}
	ops := r.records(t, "OPS-1")
	if len(ops) == 4 {
		e := ops[3].Envelope
		if e.Kind != envelope.KindEdit || e.Text != "deploys to staging and prod fail" || e.Refs["edits"] != cid(c1) || !e.TS.Equal(t0.Add(15*time.Minute)) {
			t.Errorf("the edit: %+v", e)
		}
		if ops[1].Envelope.Text != "it fails on **staging** only" || ops[0].Envelope.Text != "deploys to staging fail" {
			t.Errorf("texts %q, %q", ops[0].Envelope.Text, ops[1].Envelope.Text)
		}
	}
	if n := r.inbound(t); n != 6 {
		t.Errorf("%d inbound records, want 6 (one live, five caught up)", n)
	}
	if m, _ := r.mark(t, "OPS"); !m.Equal(t0.Add(15 * time.Minute)) {
		t.Errorf("OPS marked at %s, want the edit's time", m)
	}
	if m, _ := r.mark(t, "WEB"); !m.Equal(t0.Add(14 * time.Minute)) {
		t.Errorf("WEB marked at %s, want w8's time (dropped, but handled)", m)
	}
	// JQL dates are in the account's time zone (UTC−3), to the minute;
	// both projects start where the first start put them (the live comment
	// on OPS did not move its mark), the tie broken by key.
	if s := r.fake.searchLog(); len(s) != 2 || !strings.Contains(s[0], `project = "OPS" AND updated >= "2026/06/18 09:00"`) ||
		!strings.Contains(s[1], `project = "WEB" AND updated >= "2026/06/18 09:00"`) {
		t.Errorf("searches %q", s)
	}

	// Again: everything comes back handled (the overlap at the marks).
	rep = r.catchUp(t, "OPS", "WEB")
	if rep.New != 0 || rep.Found != 2 {
		t.Errorf("second catch-up %+v, want 2 found (the edit at OPS's mark, w8 at WEB's), 0 new", rep)
	}
	if n := r.inbound(t); n != 6 {
		t.Errorf("%d inbound records after a second catch-up, want 6", n)
	}
}

// TestCatchUpAndLiveStoreOnce: a comment (and an edit) delivered live and
// caught up, in both orders, is stored once.
func TestCatchUpAndLiveStoreOnce(t *testing.T) {
	t0 := testNow
	setup := func(t *testing.T) (*rig, string) {
		r := newRig(t, false)
		r.fake.addIssue("OPS-1", t0.Add(-time.Hour))
		c0 := r.fake.addComment("OPS-1", ada, mention("hello"), t0)
		r.live(t, eventCommentCreated, c0)
		return r, c0
	}
	t.Run("live first", func(t *testing.T) {
		r, c0 := setup(t)
		c1 := r.fake.addComment("OPS-1", ada, "more", t0.Add(time.Minute))
		r.live(t, eventCommentCreated, c1)
		r.fake.editComment(c0, mention("hello again"), t0.Add(2*time.Minute))
		r.live(t, eventCommentUpdated, c0)
		r.clock.Set(t0.Add(10 * time.Minute))
		rep := r.catchUp(t, "OPS")
		// Live comments do not move the mark: the catch-up fetches all
		// three again, and each comes back Duplicate.
		wantReport(t, rep, adapters.CatchUpReport{Since: t0, Scopes: 1, Found: 3, New: 0})
		if got, want := r.ids(t, "OPS-1"), []string{cid(c0), cid(c1), eid(c0, t0.Add(2*time.Minute))}; !slices.Equal(got, want) {
			t.Errorf("OPS-1 holds %q, want %q", got, want)
		}
	})
	t.Run("catch-up first", func(t *testing.T) {
		r, c0 := setup(t)
		c1 := r.fake.addComment("OPS-1", ada, "more", t0.Add(time.Minute))
		r.fake.editComment(c0, mention("hello again"), t0.Add(2*time.Minute))
		r.clock.Set(t0.Add(10 * time.Minute))
		rep := r.catchUp(t, "OPS")
		wantReport(t, rep, adapters.CatchUpReport{Since: t0, Scopes: 1, Found: 3, New: 2})
		// Jira's late deliveries of both.
		r.live(t, eventCommentCreated, c1)
		r.live(t, eventCommentUpdated, c0)
		if got, want := r.ids(t, "OPS-1"), []string{cid(c0), cid(c1), eid(c0, t0.Add(2*time.Minute))}; !slices.Equal(got, want) {
			t.Errorf("OPS-1 holds %q, want %q", got, want)
		}
		if got := outcomes(r.a); got[outcomeDuplicate] != 2 || got[outcomeIngested] != 1 {
			t.Errorf("webhook outcomes %v, want the two late ones duplicate", got)
		}
	})
}

// TestCatchUpWithLiveTraffic: comments arrive live while a catch-up is
// between two search pages, one on an issue of the page already read and
// one on an issue of the next page. Their webhooks wait for the catch-up of
// the project, so each issue's comments are stored once and in the order
// written.
func TestCatchUpWithLiveTraffic(t *testing.T) {
	r := newRig(t, false)
	r.fake.searchCap = 1 // one issue a page
	t0 := testNow
	r.fake.addIssue("OPS-1", t0.Add(-2*time.Hour))
	r.fake.addIssue("OPS-3", t0.Add(-time.Hour))
	c0 := r.fake.addComment("OPS-1", ada, mention("first"), t0)
	d0 := r.fake.addComment("OPS-3", ada, mention("first"), t0)
	r.live(t, eventCommentCreated, c0)
	r.live(t, eventCommentCreated, d0)
	// Missed.
	c1 := r.fake.addComment("OPS-1", ada, "c1", t0.Add(5*time.Minute))
	d1 := r.fake.addComment("OPS-3", ada, "d1", t0.Add(5*time.Minute+30*time.Second))
	c2 := r.fake.addComment("OPS-1", ada, "c2", t0.Add(6*time.Minute))
	d2 := r.fake.addComment("OPS-3", ada, "d2", t0.Add(6*time.Minute+30*time.Second))
	r.clock.Set(t0.Add(8 * time.Minute))

	var (
		wg          sync.WaitGroup
		c3, d3      string
		codes       = make(chan int, 2)
		waitsBefore = adaptertest.CounterValue(r.a.metrics.catchUpWaits)
	)
	r.fake.onSearch = func(n int) {
		if n != 2 {
			return
		}
		// Between page 1 (OPS-1) and page 2 (OPS-3): new comments on both,
		// delivered live.
		c3 = r.fake.addComment("OPS-1", ada, "c3", t0.Add(8*time.Minute))
		d3 = r.fake.addComment("OPS-3", ada, "d3", t0.Add(8*time.Minute))
		for _, id := range []string{c3, d3} {
			body := r.fake.webhook(t, eventCommentCreated, id)
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes <- post(r.a, body).Code
			}()
		}
		adaptertest.Eventually(t, "two more catch-up waits", func() bool { return adaptertest.CounterValue(r.a.metrics.catchUpWaits) == waitsBefore+2 })
	}
	rep := r.catchUp(t, "OPS")
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != http.StatusNoContent {
			t.Errorf("a live webhook answered %d", code)
		}
	}
	// c0, d0 (Duplicate), c1, d1, c2, d2, and d3 (on page 2); c3 came live.
	wantReport(t, rep, adapters.CatchUpReport{Since: t0, Scopes: 1, Found: 7, New: 5})
	if got, want := r.ids(t, "OPS-1"), []string{cid(c0), cid(c1), cid(c2), cid(c3)}; !slices.Equal(got, want) {
		t.Errorf("OPS-1 holds %q, want %q", got, want)
	}
	if got, want := r.ids(t, "OPS-3"), []string{cid(d0), cid(d1), cid(d2), cid(d3)}; !slices.Equal(got, want) {
		t.Errorf("OPS-3 holds %q, want %q", got, want)
	}
	if got := outcomes(r.a); got[outcomeIngested] != 3 || got[outcomeDuplicate] != 1 {
		t.Errorf("webhook outcomes %v, want c0, d0 and c3 ingested, d3 duplicate", got)
	}
}

// TestCatchUpPagesAndRateLimits: 120 issues with a comment each, one with
// 46, caught up over three search pages and three comment pages, with a 429
// in the middle of each; on Jira Cloud (search/jql, nextPageToken) and
// Data Center (search, startAt).
func TestCatchUpPagesAndRateLimits(t *testing.T) {
	for _, dc := range []bool{false, true} {
		t.Run(map[bool]string{false: "cloud", true: "data center"}[dc], func(t *testing.T) {
			r := newRig(t, dc)
			r.fake.commentCap = 20
			t0 := testNow
			for i := 1; i <= 120; i++ {
				r.fake.addIssue(fmt.Sprintf("OPS-%d", i), t0.Add(-time.Hour+time.Duration(i)*time.Second))
			}
			c0 := r.fake.addComment("OPS-1", ada, mention("start"), t0)
			r.live(t, eventCommentCreated, c0)
			want := map[string][]string{"OPS-1": {cid(c0)}}
			at := t0
			for i := 120; i >= 1; i-- { // the newest issues are commented first
				at = at.Add(time.Second)
				key := fmt.Sprintf("OPS-%d", i)
				want[key] = append(want[key], cid(r.fake.addComment(key, ada, mention("look at "+key), at)))
			}
			for j := range 45 {
				at = at.Add(time.Second)
				want["OPS-5"] = append(want["OPS-5"], cid(r.fake.addComment("OPS-5", ada, fmt.Sprintf("more %d", j), at)))
			}
			r.fake.failAt["search#2"] = failWith(http.StatusTooManyRequests, map[string]string{"Retry-After": "1"})
			r.fake.failAt["comments#2"] = failWith(http.StatusTooManyRequests, map[string]string{"Retry-After": "2"})
			r.clock.Set(at.Add(time.Minute))

			rep := r.catchUp(t, "OPS")
			wantReport(t, rep, adapters.CatchUpReport{Since: t0, Scopes: 1, Found: 1 + 120 + 45, New: 120 + 45})
			for key, ids := range want {
				if got := r.ids(t, key); !slices.Equal(got, ids) {
					t.Errorf("%s holds %q, want %q", key, got, ids)
				}
			}
			// OPS-5 is on the first page: its comments are read before the
			// second page.
			if got := r.waited(); !slices.Equal(got, []time.Duration{2 * time.Second, time.Second}) {
				t.Errorf("waited %v, want 2s (comments) and 1s (search)", got)
			}
			search := "GET search/jql"
			if dc {
				search = "GET search"
			}
			if n := r.fake.callCount(search); n != 4 {
				t.Errorf("%d %s, want 4 (three pages of 50, 50, 20 and one 429)", n, search)
			}
			if n := r.fake.callCount("GET comment"); n != 4 {
				t.Errorf("%d comment pages, want 4 (OPS-5's 46 comments in pages of 20, and one 429)", n)
			}
			if m, _ := r.mark(t, "OPS"); !m.Equal(at) {
				t.Errorf("OPS marked at %s, want %s", m, at)
			}
		})
	}
}

// TestCatchUpSearchEndpoint: an adapter that guessed the wrong issue search
// for its site (410 Gone from the one Cloud removed, 404 from the one Data
// Center lacks) switches to the other.
func TestCatchUpSearchEndpoint(t *testing.T) {
	for _, dc := range []bool{false, true} {
		r := newRig(t, dc)
		r.fake.addIssue("OPS-1", testNow.Add(-time.Hour))
		c0 := r.fake.addComment("OPS-1", ada, mention("start"), testNow)
		r.live(t, eventCommentCreated, c0)
		c1 := r.fake.addComment("OPS-1", ada, "next", testNow.Add(time.Minute))
		r.a.search.init(!dc) // the wrong guess
		rep := r.catchUp(t, "OPS")
		if rep.New != 1 || !slices.Equal(r.ids(t, "OPS-1"), []string{cid(c0), cid(c1)}) {
			t.Errorf("data center %v: %+v, OPS-1 holds %q", dc, rep, r.ids(t, "OPS-1"))
		}
		if r.fake.callCount("GET search") != 1 || r.fake.callCount("GET search/jql") != 1 {
			t.Errorf("data center %v: searches %d (search) and %d (search/jql), want one each", dc, r.fake.callCount("GET search"), r.fake.callCount("GET search/jql"))
		}
		if got := r.a.search.legacy.Load(); got != dc {
			t.Errorf("data center %v: legacy search %v after the switch", dc, got)
		}
	}
}

// TestCatchUpSkipsOwnOldAndNew: the bot's comments (by its account, or
// carrying its marker) are not ingested; nothing written before the window
// is fetched, even where the mark is older; a route-named project seen for
// the first time is started at now, not replayed.
func TestCatchUpSkipsOwnOldAndNew(t *testing.T) {
	r := newRig(t, false)
	t0 := testNow
	r.fake.addIssue("OPS-1", t0.Add(-72*time.Hour))
	r.fake.addIssue("OPS-2", t0.Add(-72*time.Hour))
	r.fake.addIssue("WEB-1", t0.Add(-72*time.Hour))
	old := r.fake.addComment("OPS-1", ada, mention("too old"), t0.Add(-26*time.Hour))
	oldEdited := r.fake.addComment("OPS-2", ada, mention("too old too"), t0.Add(-27*time.Hour))
	r.fake.editComment(oldEdited, mention("edited, still too old"), t0.Add(-25*time.Hour))
	inWindow := r.fake.addComment("OPS-1", ada, mention("in the window"), t0.Add(-23*time.Hour))
	r.fake.addComment("OPS-1", botUser(), "my answer", t0.Add(-22*time.Hour))
	grace := map[string]any{"accountId": graceID, "displayName": "Grace Hopper", "accountType": "atlassian"}
	r.fake.addComment("OPS-1", grace, "pasted the bot's answer"+marker("d7", 1), t0.Add(-21*time.Hour))
	r.fake.addComment("WEB-1", ada, mention("before the gateway knew WEB"), t0.Add(-time.Hour))
	// OPS was last seen 30 hours ago.
	if err := r.a.marks.Seen(context.Background(), "OPS", t0.Add(-30*time.Hour), ""); err != nil {
		t.Fatal(err)
	}

	rep := r.catchUp(t, "OPS", "WEB")
	wantReport(t, rep, adapters.CatchUpReport{Since: t0.Add(-window), Scopes: 1, Found: 1, New: 1})
	if got := r.ids(t, "OPS-1"); !slices.Equal(got, []string{cid(inWindow)}) {
		t.Errorf("OPS-1 holds %q, want only %s (not %s, older than the window, nor the bot's)", got, cid(inWindow), cid(old))
	}
	if got := r.ids(t, "OPS-2"); got != nil {
		t.Errorf("OPS-2 holds %q, want nothing (written and edited before the window)", got)
	}
	if got := r.ids(t, "WEB-1"); got != nil {
		t.Errorf("WEB-1 holds %q, want nothing (a project seen for the first time starts at now)", got)
	}
	if s := r.fake.searchLog(); len(s) != 1 || !strings.Contains(s[0], `project = "OPS" AND updated >= "2026/06/17 09:00"`) {
		t.Errorf("searches %q, want one of OPS from the window's start (12:00 UTC, 09:00 in the account's zone)", s)
	}
	if m, ok := r.mark(t, "WEB"); !ok || !m.Equal(t0) {
		t.Errorf("WEB marked at %s (%v), want started at now", m, ok)
	}
	if n := r.inbound(t); n != 1 {
		t.Errorf("%d inbound records, want 1", n)
	}
}

// TestCatchUpErrors: no state store; a project Jira refuses (skipped, the
// others caught up, the error returned); a failing search (an error naming
// it, nothing fed of that project).
func TestCatchUpErrors(t *testing.T) {
	t.Run("no state", func(t *testing.T) {
		a := newTestAdapter(t, newFakeJira(t), newRecorder(), nil)
		if _, err := a.CatchUp(context.Background(), adapters.CatchUpRequest{Window: window}); err == nil || !strings.Contains(err.Error(), "no state store") {
			t.Errorf("CatchUp without a state store: %v", err)
		}
	})
	t.Run("refused project", func(t *testing.T) {
		r := newRig(t, false)
		r.fake.addIssue("OPS-1", testNow.Add(-time.Hour))
		c0 := r.fake.addComment("OPS-1", ada, mention("start"), testNow)
		r.live(t, eventCommentCreated, c0)
		c1 := r.fake.addComment("OPS-1", ada, "next", testNow.Add(time.Minute))
		if err := r.a.marks.Seen(context.Background(), "GONE", testNow.Add(-time.Minute), ""); err != nil {
			t.Fatal(err)
		}
		rep, err := r.a.CatchUp(context.Background(), adapters.CatchUpRequest{Window: window, Places: []string{"OPS", "GONE"}})
		if err == nil || !strings.Contains(err.Error(), "search GONE") || !strings.Contains(err.Error(), "does not exist for the field 'project'") {
			t.Errorf("error %v, want the refused search of GONE with Jira's message", err)
		}
		if rep.Scopes != 2 || rep.New != 1 || !slices.Equal(r.ids(t, "OPS-1"), []string{cid(c0), cid(c1)}) {
			t.Errorf("report %+v, OPS-1 holds %q: OPS was not caught up", rep, r.ids(t, "OPS-1"))
		}
	})
	t.Run("search fails", func(t *testing.T) {
		r := newRig(t, false)
		r.fake.addIssue("OPS-1", testNow.Add(-time.Hour))
		c0 := r.fake.addComment("OPS-1", ada, mention("start"), testNow)
		r.live(t, eventCommentCreated, c0)
		r.fake.addComment("OPS-1", ada, "next", testNow.Add(time.Minute))
		r.fake.failAt["search#1"] = failWith(http.StatusInternalServerError, nil)
		_, err := r.a.CatchUp(context.Background(), adapters.CatchUpRequest{Window: window, Places: []string{"OPS"}})
		if err == nil || !strings.Contains(err.Error(), "jira: catch-up: search OPS (page 1)") || !strings.Contains(err.Error(), "500") {
			t.Errorf("error %v, want the failed search named", err)
		}
		if got := r.ids(t, "OPS-1"); !slices.Equal(got, []string{cid(c0)}) {
			t.Errorf("OPS-1 holds %q after a failed catch-up", got)
		}
	})
	t.Run("rate limited for good", func(t *testing.T) {
		r := newRig(t, false)
		r.fake.addIssue("OPS-1", testNow.Add(-time.Hour))
		r.live(t, eventCommentCreated, r.fake.addComment("OPS-1", ada, mention("start"), testNow))
		for n := 1; n <= maxRateLimitTries; n++ {
			r.fake.failAt["search#"+strconv.Itoa(n)] = failWith(http.StatusTooManyRequests, map[string]string{"Retry-After": "600"})
		}
		_, err := r.a.CatchUp(context.Background(), adapters.CatchUpRequest{Window: window})
		if err == nil || !strings.Contains(err.Error(), "429") {
			t.Errorf("error %v, want the 429 after %d tries", err, maxRateLimitTries)
		}
		if w := r.waited(); len(w) != maxRateLimitTries-1 || w[0] != maxRateLimitWait {
			t.Errorf("waited %v, want %d waits capped at %s", w, maxRateLimitTries-1, maxRateLimitWait)
		}
	})
}

// TestLiveMarksItsProject: the live path makes the project of a message
// the router handled known, its catch-up starting at that message, and
// active (an edit's updated), but never moves the start of a known one
// (live events after a gap would carry it past what was missed); the bot's
// own comment records nothing.
func TestLiveMarksItsProject(t *testing.T) {
	r := newRig(t, false)
	r.fake.addIssue("OPS-1", testNow.Add(-time.Hour))
	c0 := r.fake.addComment("OPS-1", ada, mention("start"), testNow.Add(-time.Minute))
	r.live(t, eventCommentCreated, c0)
	if m, ok := r.mark(t, "OPS"); !ok || !m.Equal(testNow.Add(-time.Minute)) {
		t.Errorf("OPS marked at %s (%v), want the comment's created", m, ok)
	}
	r.fake.editComment(c0, mention("edited"), testNow)
	r.live(t, eventCommentUpdated, c0)
	mk, _, err := r.a.marks.Get(context.Background(), "OPS")
	if err != nil {
		t.Fatal(err)
	}
	if !mk.Last.Equal(testNow.Add(-time.Minute)) || !mk.Active.Equal(testNow) {
		t.Errorf("after a live edit OPS is %+v, want its start kept and its activity at the edit", mk)
	}
	own := r.fake.addComment("OPS-1", botUser(), "mine", testNow.Add(2*time.Minute))
	r.live(t, eventCommentCreated, own)
	if mk2, _, _ := r.a.marks.Get(context.Background(), "OPS"); mk2 != mk {
		t.Errorf("OPS is %+v after the bot's own comment, want unchanged %+v", mk2, mk)
	}
}

// TestJQLTime: the JQL date errs early in every case.
func TestJQLTime(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		t    time.Time
		loc  *time.Location
		want string
	}{
		{time.Date(2026, 6, 18, 12, 34, 56, 0, time.UTC), berlin, "2026/06/18 14:34"},
		{time.Date(2026, 6, 18, 12, 34, 56, 0, time.UTC), kolkata, "2026/06/18 18:04"},
		{time.Date(2026, 6, 18, 12, 34, 56, 0, time.UTC), nil, "2026/06/18 00:34"},
		// Berlin's clocks go back at 03:00 CEST (01:00 UTC) on 2026-10-25,
		// so 02:45 happens twice and Jira may read it as the later one
		// (01:45 UTC): near the change, an hour earlier.
		{time.Date(2026, 10, 25, 0, 45, 0, 0, time.UTC), berlin, "2026/10/25 01:45"},
		{time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC), berlin, "2026/10/25 02:30"},
	} {
		if got := jqlTime(tc.t, tc.loc); got != tc.want {
			t.Errorf("jqlTime(%s, %v) = %q, want %q", tc.t, tc.loc, got, tc.want)
		}
	}
}

// catchUp1000 sets up 1,000 comments missed on 100 issues and returns the
// rig, ready to catch up.
func catchUp1000(tb testing.TB) *rig {
	r := newRig(tb, false)
	t0 := testNow
	for i := 1; i <= 100; i++ {
		r.fake.addIssue(fmt.Sprintf("OPS-%d", i), t0.Add(-time.Hour))
	}
	r.live(tb, eventCommentCreated, r.fake.addComment("OPS-1", ada, mention("start"), t0))
	at := t0
	for j := range 10 {
		for i := 1; i <= 100; i++ {
			at = at.Add(time.Second)
			text := fmt.Sprintf("comment %d on issue %d, see https://github.com/acme/api/pull/%d", j, i, i)
			if j == 0 {
				text = mention(text)
			}
			r.fake.addComment(fmt.Sprintf("OPS-%d", i), ada, text, at)
		}
	}
	r.clock.Set(at.Add(time.Minute))
	return r
}

// BenchmarkCatchUp1000 measures catching up 1,000 comments on 100 issues
// against the fake, through the router into SQLite (a fresh store each
// time), 1,000 new and one seen live: go test -run XXX -bench CatchUp1000
// -benchtime 5x ./adapters/jira/.
func BenchmarkCatchUp1000(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		r := catchUp1000(b)
		b.StartTimer()
		rep, err := r.a.CatchUp(context.Background(), adapters.CatchUpRequest{Window: window, Places: []string{"OPS"}})
		if err != nil || rep.Found != 1001 || rep.New != 1000 {
			b.Fatalf("%+v, %v; want 1001 found, 1000 new", rep, err)
		}
		b.StopTimer()
		if n := r.inbound(b); n != 1001 {
			b.Fatalf("%d inbound records, want 1001", n)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/catch-up")
	b.ReportMetric(1000*float64(b.N)/b.Elapsed().Seconds(), "comments/s")
}
