package github

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
	"github.com/switchboardhq/switchboard/adapters/internal/catchup"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/router"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/sqlite"

	"github.com/switchboardhq/switchboard/internal/testclock"
)

// catchUpRoutes is the gateway configuration of the catch-up tests: every
// acme/* repository, a trigger needed to start a conversation, sessions on
// the inbox runtime (no agent turns).
const catchUpRoutes = `
routes:
  - name: github
    match: {source: github, where: ["acme/*"]}
`

// catchUpRig is an adapter whose state store is a real SQLite store, wired
// to a router over that store, against the fake GitHub; the adapter runs on
// the fake's clock, and its rate-limit waits advance that clock instead of
// sleeping.
type catchUpRig struct {
	t     *testing.T
	fake  *fakeGitHub
	clock *testclock.Clock
	st    *sqlite.Store
	rt    *router.Router
	a     *Adapter

	mu     sync.Mutex
	sleeps []time.Duration
}

func newCatchUpRig(t *testing.T, mutate func(*Config)) *catchUpRig {
	t.Helper()
	clock := newClock()
	g := &catchUpRig{t: t, fake: newFakeGitHub(t, clock), clock: clock}
	cfg, err := config.Parse([]byte(catchUpRoutes), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	g.st, err = sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "sb.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.st.Close() })
	g.rt, err = router.New(router.Options{Config: cfg, Store: g.st, Sinks: map[string]adapters.Sink{},
		Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	c := &Config{WebhookSecret: testSecret, Token: testToken, Login: testLogin, APIURL: g.fake.url(),
		Triggers: Triggers{Mentions: []string{"agent"}, Command: "/agent"}}
	if mutate != nil {
		mutate(c)
	}
	g.a, err = New(c, adapters.Deps{
		Ingress: g.rt, State: g.st, Now: clock.Now,
		HTTPClient: g.fake.srv.Client(), Registry: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	g.a.sleep = func(_ context.Context, d time.Duration) error {
		g.mu.Lock()
		g.sleeps = append(g.sleeps, d)
		g.mu.Unlock()
		clock.Advance(d)
		return nil
	}
	g.fake.setIssue("acme/api", 12, "TestMigrate flakes")
	g.fake.setPull("acme/api", 7, prHead{Branch: "fix-flaky-test", SHA: "6dcb09b5b57875f334f61aebed695e2e4193db5e", Repo: "acme/api"})
	g.fake.setIssue("acme/web", 3, "The login page is slow")
	return g
}

// write stores a comment on GitHub at the fake's current time, as someone
// writes it while the gateway may not be listening.
func (g *catchUpRig) write(kind, repo string, number int, body string) fakeComment {
	return g.fake.addComment(fakeComment{Kind: kind, Repo: repo, Number: number, Body: body, Created: g.clock.Now()})
}

// live delivers c's webhook ("created", or "edited" with prev) and returns
// the answer.
func (g *catchUpRig) live(c fakeComment, action, prev string) string {
	g.t.Helper()
	event, body := g.fake.liveEvent(c, action, prev)
	w := serve(g.a, webhook(event, fmt.Sprintf("d-%d-%s-%d", c.ID, action, c.Updated.Unix()), body))
	if w.Code != http.StatusOK {
		g.t.Fatalf("webhook for comment %d: %d %s", c.ID, w.Code, w.Body)
	}
	return strings.TrimSpace(w.Body.String())
}

// catchUp runs a catch-up with a 24-hour window.
func (g *catchUpRig) catchUp(places ...string) adapters.CatchUpReport {
	g.t.Helper()
	rep, err := g.a.CatchUp(context.Background(), adapters.CatchUpRequest{Window: 24 * time.Hour, Places: places})
	if err != nil {
		g.t.Fatalf("CatchUp: %v", err)
	}
	return rep
}

// inbound returns the ids and texts of the inbound records of the session
// bound to conversation ref, in log order.
func (g *catchUpRig) inbound(ref string) (ids, texts []string) {
	g.t.Helper()
	b, err := g.st.BindingFor(context.Background(), envelope.Conversation{Source: Name, Ref: ref})
	if err != nil {
		g.t.Fatalf("binding of %s: %v", ref, err)
	}
	recs, err := g.st.Read(context.Background(), b.SessionID, 0, 1000)
	if err != nil {
		g.t.Fatal(err)
	}
	for _, r := range recs {
		if r.Direction == store.Inbound {
			ids = append(ids, r.Envelope.ID)
			texts = append(texts, r.Envelope.Text)
		}
	}
	return ids, texts
}

// records counts the inbound records of every session.
func (g *catchUpRig) records() int {
	g.t.Helper()
	ss, err := g.st.ListSessions(context.Background(), "", 1000)
	if err != nil {
		g.t.Fatal(err)
	}
	n := 0
	for _, s := range ss {
		recs, err := g.st.Read(context.Background(), s.ID, 0, 1000)
		if err != nil {
			g.t.Fatal(err)
		}
		for _, r := range recs {
			if r.Direction == store.Inbound {
				n++
			}
		}
	}
	return n
}

func (g *catchUpRig) mark(repo string) (catchup.Mark, bool) {
	g.t.Helper()
	mk, ok, err := catchup.New(g.st, Name, g.clock.Now).Get(context.Background(), repo)
	if err != nil {
		g.t.Fatal(err)
	}
	return mk, ok
}

func commentID(c fakeComment) string {
	if c.Kind == "review" {
		return "github:review-comment/" + strconv.FormatInt(c.ID, 10)
	}
	return "github:issue-comment/" + strconv.FormatInt(c.ID, 10)
}

// TestCatchUpAfterDowntime: the gateway stops; meanwhile people write in a
// conversation that is bound (it got live comments before), mention the bot
// on a pull request and in a review thread of the same repository, and
// mention it in a route-named repository that an earlier catch-up started;
// the gateway's own comment is echoed. One catch-up brings every comment
// to its session exactly once and in order, the comment handled live just
// before the stop comes back as a duplicate and adds nothing, and a second
// catch-up finds nothing new.
func TestCatchUpAfterDowntime(t *testing.T) {
	g := newCatchUpRig(t, nil)

	// The first start: acme/web is named by the routes and has never been
	// seen. It is started, not replayed.
	g.write("issue", "acme/web", 3, "@switchboard an old request, from before the gateway existed")
	g.clock.Advance(time.Minute)
	rep := g.catchUp("acme/web")
	if rep.Scopes != 0 || rep.Found != 0 || rep.New != 0 || !rep.Since.IsZero() {
		t.Errorf("first catch-up reported %+v, want nothing looked at", rep)
	}
	if mk, ok := g.mark("acme/web"); !ok || !mk.Last.Equal(g.clock.Now()) {
		t.Errorf("acme/web's mark is %v (%v), want started at %v", mk.Last, ok, g.clock.Now())
	}
	webStart := g.clock.Now()

	// Live: a mention starts a session on issue 12, a follow-up steers it.
	g.clock.Advance(10 * time.Minute)
	a := g.write("issue", "acme/api", 12, "@switchboard TestMigrate flakes on CI, can you look?")
	if got := g.live(a, "created", ""); got != outcomeIngested {
		t.Fatalf("live mention: %s", got)
	}
	g.clock.Advance(time.Minute)
	b := g.write("issue", "acme/api", 12, "it started after the pgx upgrade")
	if got := g.live(b, "created", ""); got != outcomeIngested {
		t.Fatalf("live follow-up: %s", got)
	}
	// Live comments make acme/api known, starting at the first, and
	// active; they never move a known repository's mark.
	if mk, _ := g.mark("acme/api"); !mk.Last.Equal(a.Updated) || !mk.Active.Equal(b.Updated) {
		t.Errorf("after the live comments acme/api's mark is %+v, want it at %v, active at %v", mk, a.Updated, b.Updated)
	}

	// The gateway is down: nothing below is delivered live.
	g.clock.Advance(5 * time.Minute)
	c := g.write("issue", "acme/api", 12, "it fails on arm64 too")
	g.clock.Advance(time.Minute)
	d := g.write("issue", "acme/api", 12, "and only with -race")
	g.clock.Advance(time.Minute)
	e := g.write("issue", "acme/api", 7, "@switchboard please rebase this onto main")
	g.clock.Advance(time.Minute)
	f := g.fake.addComment(fakeComment{Kind: "review", Repo: "acme/api", Number: 7, Path: "db/migrate.go", Line: 42,
		Body: "@switchboard can you make this loop idempotent?", Created: g.clock.Now()})
	g.clock.Advance(time.Minute)
	own := g.fake.addComment(fakeComment{Kind: "issue", Repo: "acme/api", Number: 12, User: testLogin, Created: g.clock.Now(),
		Body: "Looking into it.\n\n" + marker("dlv_1", 1, 1)})
	g.clock.Advance(time.Minute)
	w := g.write("issue", "acme/web", 3, "@agent the login page takes 9 s")
	g.clock.Advance(time.Minute)
	d2 := g.write("issue", "acme/api", 12, "/agent also check the connection pool")

	before := g.records()
	rep = g.catchUp("acme/api", "acme/web")
	if want := (adapters.CatchUpReport{Since: webStart, Scopes: 2, Found: 8, New: 6}); rep != want {
		t.Errorf("report %+v, want %+v (a and b found again but not new, the gateway's own comment not found)", rep, want)
	}
	if got := g.records(); got != before+6 {
		t.Errorf("%d inbound records after the catch-up, want %d", got, before+6)
	}
	for _, cv := range []struct {
		ref   string
		ids   []string
		texts []string
	}{
		{"acme/api#12", []string{commentID(a), commentID(b), commentID(c), commentID(d), commentID(d2)},
			[]string{"TestMigrate flakes on CI, can you look?", "it started after the pgx upgrade", "it fails on arm64 too", "and only with -race", "also check the connection pool"}},
		{"acme/api#7", []string{commentID(e)}, []string{"please rebase this onto main"}},
		{fmt.Sprintf("acme/api#7/review-thread/%d", f.ID), []string{commentID(f)}, []string{"can you make this loop idempotent?"}},
		{"acme/web#3", []string{commentID(w)}, []string{"the login page takes 9 s"}},
	} {
		ids, texts := g.inbound(cv.ref)
		if !slices.Equal(ids, cv.ids) || !slices.Equal(texts, cv.texts) {
			t.Errorf("session of %s holds\n%q %q\nwant\n%q %q", cv.ref, ids, texts, cv.ids, cv.texts)
		}
	}
	_ = own
	if mk, _ := g.mark("acme/api"); !mk.Last.Equal(d2.Updated) {
		t.Errorf("acme/api's mark is %v, want the newest comment's %v", mk.Last, d2.Updated)
	}
	if mk, _ := g.mark("acme/web"); !mk.Last.Equal(w.Updated) {
		t.Errorf("acme/web's mark is %v, want %v", mk.Last, w.Updated)
	}
	if n := adaptertest.CounterValue(g.a.metrics.catchUp.WithLabelValues(outcomeOwn)); n != 1 {
		t.Errorf("%v own comments counted, want 1", n)
	}

	// Nothing new: a second catch-up stores nothing.
	before = g.records()
	rep = g.catchUp("acme/api", "acme/web")
	if rep.New != 0 || rep.Scopes != 2 || g.records() != before {
		t.Errorf("second catch-up: %+v and %d new records, want nothing new", rep, g.records()-before)
	}
}

// TestCatchUpAndLiveStoreOnce: a comment delivered live and fetched by a
// catch-up, in either order, is stored once; so is an edit, whose envelope
// id the catch-up makes as the "edited" webhook does.
func TestCatchUpAndLiveStoreOnce(t *testing.T) {
	g := newCatchUpRig(t, nil)
	start := g.write("issue", "acme/api", 12, "@switchboard TestMigrate flakes")
	g.live(start, "created", "")

	// Live first, then the catch-up.
	g.clock.Advance(time.Minute)
	x := g.write("issue", "acme/api", 12, "it fails on arm64")
	if got := g.live(x, "created", ""); got != outcomeIngested {
		t.Fatalf("live: %s", got)
	}
	before := g.records()
	if rep := g.catchUp(); rep.New != 0 || rep.Found != 2 {
		t.Errorf("catch-up after the live comments: %+v, want both found again and not new", rep)
	}
	if g.records() != before {
		t.Errorf("the catch-up added %d records", g.records()-before)
	}

	// The catch-up first, then the late webhook.
	g.clock.Advance(time.Minute)
	y := g.write("issue", "acme/api", 12, "and with -race")
	if rep := g.catchUp(); rep.New != 1 {
		t.Errorf("catch-up: %+v, want the new comment stored", rep)
	}
	if got := g.live(y, "created", ""); got != outcomeDuplicate {
		t.Errorf("the late webhook after the catch-up: %s, want %s", got, outcomeDuplicate)
	}

	// An edit made while the gateway was down: the catch-up's envelope is
	// the "edited" webhook's.
	g.clock.Advance(time.Minute)
	g.fake.editComment(x.ID, "it fails on arm64 and amd64", g.clock.Now())
	if rep := g.catchUp(); rep.New != 1 {
		t.Errorf("catch-up of the edit: %+v, want one new envelope", rep)
	}
	edited := g.fake.commentsCopy()[1]
	if got := g.live(edited, "edited", x.Body); got != outcomeDuplicate {
		t.Errorf("the edit's webhook after the catch-up: %s, want %s", got, outcomeDuplicate)
	}
	ids, texts := g.inbound("acme/api#12")
	wantIDs := []string{commentID(start), commentID(x), commentID(y),
		commentID(x) + "/edit/" + edited.Updated.UTC().Format(time.RFC3339Nano)}
	if !slices.Equal(ids, wantIDs) || texts[3] != "it fails on arm64 and amd64" {
		t.Errorf("session holds %q %q, want %q", ids, texts, wantIDs)
	}
}

// TestCatchUpMapsAsTheWebhook: what a catch-up hands the router for a
// comment is what the comment's webhook hands it (envelope and Facts),
// but for raw, which is the comment as the API listed it: an issue
// comment, a comment on a pull request (with the head's refs), a review
// comment in a thread, and an edit.
func TestCatchUpMapsAsTheWebhook(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	fake.setIssue("acme/api", 12, "TestMigrate flakes")
	fake.setPull("acme/api", 7, prHead{Branch: "fix", SHA: "6dcb09b5b57875f334f61aebed695e2e4193db5e", Repo: "fork/api"})
	now := fake.clock.Now()
	cs := []fakeComment{
		fake.addComment(fakeComment{Kind: "issue", Repo: "acme/api", Number: 12, Created: now.Add(time.Minute),
			Body: "@switchboard see https://github.com/acme/api/pull/7 and OPS-17"}),
		fake.addComment(fakeComment{Kind: "issue", Repo: "acme/api", Number: 7, Created: now.Add(2 * time.Minute), User: "grace",
			Body: "/agent run the tests"}),
		fake.addComment(fakeComment{Kind: "review", Repo: "acme/api", Number: 7, Created: now.Add(3 * time.Minute),
			Path: "db/migrate.go", Line: 42, InReplyTo: 1600000001, Body: "@agent idempotent, please"}),
		fake.addComment(fakeComment{Kind: "issue", Repo: "acme/api", Number: 12, Created: now.Add(-time.Hour),
			Updated: now.Add(4 * time.Minute), Body: "@switchboard edited: look at the logs"}),
	}
	liveRec, caughtRec := newRecorder(), newRecorder()
	mk := func(in adapters.Ingress) *Adapter {
		a, err := New(&Config{WebhookSecret: testSecret, Token: testToken, Login: testLogin, APIURL: fake.url(),
			Triggers: Triggers{Mentions: []string{"agent"}, Command: "/agent"}}, adapters.Deps{
			Ingress: in, State: newTestKV(t), Now: fake.clock.Now, HTTPClient: fake.srv.Client(), Registry: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	live, caught := mk(liveRec), mk(caughtRec)
	for i, c := range cs {
		action, prev := "created", ""
		if i == 3 {
			action, prev = "edited", "@switchboard look at the logs"
		}
		event, body := fake.liveEvent(c, action, prev)
		if w := serve(live, webhook(event, fmt.Sprintf("d%d", i), body)); w.Code != http.StatusOK {
			t.Fatalf("webhook %d: %d %s", i, w.Code, w.Body)
		}
	}
	// The other adapter saw nothing since now, and catches up.
	if err := caught.marks.Seen(context.Background(), "acme/api", now, ""); err != nil {
		t.Fatal(err)
	}
	fake.clock.Advance(10 * time.Minute)
	rep, err := caught.CatchUp(context.Background(), adapters.CatchUpRequest{Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Found != 4 {
		t.Errorf("found %d, want 4", rep.Found)
	}
	lives, caughts := liveRec.All(), caughtRec.All()
	if len(lives) != 4 || len(caughts) != 4 {
		t.Fatalf("%d live and %d caught-up messages, want 4 and 4", len(lives), len(caughts))
	}
	// The catch-up goes in order of creation: the edited comment (created
	// before the mark) first.
	order := []int{3, 0, 1, 2}
	for i, j := range order {
		l, c := lives[j], caughts[i]
		if !strings.Contains(string(c.Envelope.Raw), `"issue_url"`) && !strings.Contains(string(c.Envelope.Raw), `"pull_request_url"`) {
			t.Errorf("comment %d: raw is not the listed comment: %s", j, c.Envelope.Raw)
		}
		l.Envelope.Raw, c.Envelope.Raw = nil, nil
		if fmt.Sprintf("%+v", l) != fmt.Sprintf("%+v", c) {
			t.Errorf("comment %d:\nlive   %+v\ncaught %+v", j, l, c)
		}
	}
	if caughts[2].Envelope.Refs[envelope.RefBranch] != "fix" || caughts[2].Envelope.Refs["head_repo"] != "fork/api" {
		t.Errorf("the pull request comment's refs %v lack the head", caughts[2].Envelope.Refs)
	}
	if caughts[0].Envelope.Kind != envelope.KindEdit {
		t.Errorf("the edited comment came as %s, want an edit", caughts[0].Envelope.Kind)
	}
}

// newTestKV is a SQLite store for marks only.
func newTestKV(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "kv.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestCatchUpLiveDuringCatchUp: a comment written and delivered live while
// a catch-up is between two pages of its repository waits for the catch-up
// to pass it, so it lands after the older comments the catch-up brings,
// once.
func TestCatchUpLiveDuringCatchUp(t *testing.T) {
	g := newCatchUpRig(t, nil)
	g.a.perPage = 2
	g.a.hold = 15 * time.Second // the test's guard, not a wait it expects
	start := g.write("issue", "acme/api", 12, "@switchboard TestMigrate flakes")
	g.live(start, "created", "")
	var want []string
	want = append(want, commentID(start))
	for i := range 5 {
		g.clock.Advance(time.Minute)
		want = append(want, commentID(g.write("issue", "acme/api", 12, fmt.Sprintf("finding %d", i+1))))
	}

	var m fakeComment
	liveDone := make(chan string, 1)
	var sawWaiting atomic.Bool
	g.fake.setBeforeList(func(kind string, page int) {
		if kind != "issue" || page != 2 || m.ID != 0 {
			return
		}
		g.clock.Advance(time.Minute)
		m = g.write("issue", "acme/api", 12, "never mind, found it")
		go func() {
			event, body := g.fake.liveEvent(m, "created", "")
			w := serve(g.a, webhook(event, "d-live", body))
			liveDone <- fmt.Sprintf("%d %s", w.Code, strings.TrimSpace(w.Body.String()))
		}()
		// Answer page 2 only once the live webhook waits (or, if it does
		// not wait, has been stored).
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if g.a.progress.waiters("acme/api") > 0 {
				sawWaiting.Store(true)
				return
			}
			if len(liveDone) > 0 {
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
	rep := g.catchUp()
	got := <-liveDone
	if !sawWaiting.Load() {
		t.Error("the live webhook did not wait for the catch-up")
	}
	if got != "200 "+outcomeDuplicate {
		t.Errorf("the live webhook was answered %q, want 200 %s (the catch-up stored it first, in order)", got, outcomeDuplicate)
	}
	want = append(want, commentID(m))
	ids, _ := g.inbound("acme/api#12")
	if !slices.Equal(ids, want) {
		t.Errorf("session holds\n%q\nwant\n%q", ids, want)
	}
	if rep.New != 6 {
		t.Errorf("report %+v, want 6 new (5 written while down, 1 during the catch-up)", rep)
	}
	if mk, _ := g.mark("acme/api"); !mk.Last.Equal(m.Updated) {
		t.Errorf("mark %v, want %v", mk.Last, m.Updated)
	}
}

// TestCatchUpPagesAndRateLimits: the listings are followed page by page
// through their Link headers; a 429 with Retry-After and a primary rate
// limit (403, X-RateLimit-Remaining 0) in the middle are waited out as
// they say, and the catch-up goes on.
func TestCatchUpPagesAndRateLimits(t *testing.T) {
	g := newCatchUpRig(t, nil)
	g.a.perPage = 3
	start := g.write("issue", "acme/api", 12, "@switchboard TestMigrate flakes")
	g.live(start, "created", "")
	since := start.Created.UTC().Format(time.RFC3339)
	wantIssue := []string{commentID(start)}
	wantPR := []string{}
	for i := range 10 {
		g.clock.Advance(time.Minute)
		if i%3 == 2 {
			wantPR = append(wantPR, commentID(g.write("issue", "acme/api", 7, fmt.Sprintf("@agent PR step %d", i))))
			continue
		}
		wantIssue = append(wantIssue, commentID(g.write("issue", "acme/api", 12, fmt.Sprintf("finding %d", i))))
	}
	g.clock.Advance(time.Minute)
	reset := g.clock.Now().Add(30 * time.Second).Unix()
	// Requests: issue comments page 1, review comments page 1, issue
	// comments page 2 (429, then 403), page 2 again, …
	g.fake.failLists(nil, nil,
		failWith(http.StatusTooManyRequests, map[string]string{"Retry-After": "1"}, "You have exceeded a secondary rate limit."),
		failWith(http.StatusForbidden, map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": strconv.FormatInt(reset, 10)},
			"API rate limit exceeded for user ID 77."))
	rep := g.catchUp()
	if rep.Found != 11 || rep.New != 10 || rep.Scopes != 1 {
		t.Errorf("report %+v, want 11 found (one seen live), 10 new", rep)
	}
	if ids, _ := g.inbound("acme/api#12"); !slices.Equal(ids, wantIssue) {
		t.Errorf("issue 12 holds %q, want %q", ids, wantIssue)
	}
	if ids, _ := g.inbound("acme/api#7"); !slices.Equal(ids, wantPR) {
		t.Errorf("pull request 7 holds %q, want %q", ids, wantPR)
	}
	g.mu.Lock()
	sleeps := slices.Clone(g.sleeps)
	g.mu.Unlock()
	// The reset is 30s after the first request, 29s after the second; a
	// second is added against clock skew.
	if !slices.Equal(sleeps, []time.Duration{time.Second, 30 * time.Second}) {
		t.Errorf("waited %v, want [1s 30s] (Retry-After, then until X-RateLimit-Reset)", sleeps)
	}
	var want []string
	for _, l := range []string{"issue 1", "review 1", "issue 2", "issue 2", "issue 2", "issue 3", "issue 4"} {
		kind, page, _ := strings.Cut(l, " ")
		want = append(want, "acme/api "+kind+" since="+since+" page="+page)
	}
	if got := g.fake.listedCopy(); !slices.Equal(got, want) {
		t.Errorf("listing requests\n%q\nwant\n%q", got, want)
	}
	// One fetch of each issue and pull request, however many comments.
	if n := g.fake.callCount("GET /repos/{owner}/{repo}/issues/{n}"); n != 2 {
		t.Errorf("%d issue fetches, want 2 (issue 12, pull request 7)", n)
	}
}

// TestCatchUpErrors: a failure other than a rate limit ends the catch-up
// with an error naming what failed; what it stored stays stored and its
// mark holds, so the next catch-up resumes there and stores the rest once.
// A rate limit longer than a catch-up waits ends it too; so does a missing
// state store.
func TestCatchUpErrors(t *testing.T) {
	g := newCatchUpRig(t, nil)
	g.a.perPage = 2
	start := g.write("issue", "acme/api", 12, "@switchboard TestMigrate flakes")
	g.live(start, "created", "")
	var want []string
	want = append(want, commentID(start))
	for i := range 5 {
		g.clock.Advance(time.Minute)
		want = append(want, commentID(g.write("issue", "acme/api", 12, fmt.Sprintf("finding %d", i+1))))
	}
	g.fake.failLists(nil, nil, failWith(http.StatusBadGateway, nil, "Server Error"))
	rep, err := g.a.CatchUp(context.Background(), adapters.CatchUpRequest{Window: 24 * time.Hour})
	if err == nil || !strings.Contains(err.Error(), "github: catch-up: acme/api: list issue comments (page 2)") || !strings.Contains(err.Error(), "502") {
		t.Fatalf("CatchUp error %v, want one naming the listing and the 502", err)
	}
	if rep.New != 1 {
		t.Errorf("report %+v, want the first page's new comment counted", rep)
	}
	ids, _ := g.inbound("acme/api#12")
	if !slices.Equal(ids, want[:2]) {
		t.Errorf("after the failure the session holds %q, want %q", ids, want[:2])
	}
	if mk, _ := g.mark("acme/api"); !mk.Last.Equal(g.fake.commentsCopy()[1].Created) {
		t.Errorf("mark %v, want the last stored comment's creation", mk.Last)
	}
	rep = g.catchUp()
	if rep.New != 4 {
		t.Errorf("the resumed catch-up: %+v, want the 4 remaining comments new", rep)
	}
	if ids, _ := g.inbound("acme/api#12"); !slices.Equal(ids, want) {
		t.Errorf("after resuming the session holds %q, want %q", ids, want)
	}

	g.clock.Advance(time.Minute)
	g.write("issue", "acme/api", 12, "one more")
	g.fake.failLists(failWith(http.StatusTooManyRequests, map[string]string{"Retry-After": "3600"}, "slow down"))
	if _, err := g.a.CatchUp(context.Background(), adapters.CatchUpRequest{Window: 24 * time.Hour}); err == nil ||
		!strings.Contains(err.Error(), "rate-limited for 1h0m0s") {
		t.Errorf("CatchUp under an hour-long rate limit: %v, want an error saying so", err)
	}

	// A repository GitHub refuses (deleted, or the token lost access) is
	// reported, and does not hold the others up. (The hour-long rate limit
	// is over first.)
	g.clock.Advance(time.Hour + time.Minute)
	if err := g.a.marks.Seen(context.Background(), "acme/gone", g.clock.Now().Add(-2*time.Hour), ""); err != nil {
		t.Fatal(err)
	}
	last := g.write("issue", "acme/api", 12, "the last one")
	g.fake.failLists(failWith(http.StatusNotFound, nil, "Not Found"))
	rep, err = g.a.CatchUp(context.Background(), adapters.CatchUpRequest{Window: 24 * time.Hour})
	if err == nil || !strings.Contains(err.Error(), "acme/gone: list issue comments (page 1)") || !errors.Is(err, adapters.ErrPermanent) {
		t.Errorf("CatchUp with a refused repository: %v, want a permanent error naming it", err)
	}
	if rep.Scopes != 2 || rep.New != 2 {
		t.Errorf("report %+v, want both repositories looked at and acme/api's two comments new", rep)
	}
	if ids, _ := g.inbound("acme/api#12"); ids[len(ids)-1] != commentID(last) {
		t.Errorf("acme/api was not caught up after the refused repository: %q", ids)
	}

	a := newTestAdapter(t, g.fake, newRecorder(), nil)
	if _, err := a.CatchUp(context.Background(), adapters.CatchUpRequest{Window: time.Hour}); err == nil ||
		!strings.Contains(err.Error(), "no state store is configured") {
		t.Errorf("CatchUp without a state store: %v", err)
	}
}

// TestCatchUpSkipsOwnBotsAndOld: the gateway's own comments (by its login,
// with its marker, or made through its App) are not ingested nor found;
// another bot's are found and dropped as the webhook would drop them;
// nothing older than the window is fetched, and a repository idle longer
// than the window is only looked at when the routes name it.
func TestCatchUpSkipsOwnBotsAndOld(t *testing.T) {
	g := newCatchUpRig(t, nil)
	start := g.write("issue", "acme/api", 12, "@switchboard TestMigrate flakes")
	g.live(start, "created", "")
	g.clock.Advance(time.Minute)
	g.fake.addComment(fakeComment{Kind: "issue", Repo: "acme/api", Number: 12, User: testLogin, Created: g.clock.Now(), Body: "On it."})
	g.fake.addComment(fakeComment{Kind: "issue", Repo: "acme/api", Number: 12, User: "grace", Created: g.clock.Now(),
		Body: "copied from the bot:\n\n" + marker("dlv_2", 1, 1)})
	g.fake.addComment(fakeComment{Kind: "issue", Repo: "acme/api", Number: 12, User: "grace", AppID: 999, Created: g.clock.Now(),
		Body: "through another app, still a person's message"})
	g.fake.addComment(fakeComment{Kind: "issue", Repo: "acme/api", Number: 12, User: "dependabot[bot]", UserType: "Bot",
		Created: g.clock.Now(), Body: "@switchboard Bumps pgx from 5.5.0 to 5.5.1."})
	before := g.records()
	rep := g.catchUp()
	if rep.Found != 3 || rep.New != 1 {
		t.Errorf("report %+v, want 3 found (the live one, the app's, the other bot's), 1 new", rep)
	}
	if g.records() != before+1 {
		t.Errorf("%d records added, want 1", g.records()-before)
	}
	if n := adaptertest.CounterValue(g.a.metrics.catchUp.WithLabelValues(outcomeOwn)); n != 2 {
		t.Errorf("%v own comments, want 2", n)
	}
	if n := adaptertest.CounterValue(g.a.metrics.catchUp.WithLabelValues(outcomeBot)); n != 1 {
		t.Errorf("%v bot comments, want 1", n)
	}

	// 30 hours later acme/api is idle for longer than the window: not
	// looked at, unless the routes name it; then only the window's last 24
	// hours are fetched.
	g.clock.Advance(6 * time.Hour)
	old := g.write("issue", "acme/api", 12, "written 24 hours before the catch-up and a bit")
	g.clock.Advance(24*time.Hour + time.Minute)
	recent := g.write("issue", "acme/api", 12, "written within the window")
	if rep := g.catchUp(); rep.Scopes != 0 || rep.Found != 0 {
		t.Errorf("catch-up with acme/api idle for 30h: %+v, want nothing looked at", rep)
	}
	listed := len(g.fake.listedCopy())
	rep = g.catchUp("acme/api")
	floor := g.clock.Now().Add(-24 * time.Hour)
	if rep.Scopes != 1 || rep.New != 1 || !rep.Since.Equal(floor) {
		t.Errorf("catch-up naming acme/api: %+v, want 1 new since %v", rep, floor)
	}
	for _, l := range g.fake.listedCopy()[listed:] {
		if !strings.Contains(l, "since="+floor.UTC().Format(time.RFC3339)) {
			t.Errorf("listed %q, want since the window's start", l)
		}
	}
	ids, _ := g.inbound("acme/api#12")
	if slices.Contains(ids, commentID(old)) || !slices.Contains(ids, commentID(recent)) {
		t.Errorf("session holds %q: want %s and not %s", ids, commentID(recent), commentID(old))
	}

	// A place the routes name, seen for the first time, is started: its
	// history is not fetched.
	g.fake.setIssue("acme/new", 1, "history")
	g.fake.addComment(fakeComment{Kind: "issue", Repo: "acme/new", Number: 1, Created: g.clock.Now().Add(-time.Minute), Body: "@switchboard old"})
	listed = len(g.fake.listedCopy())
	if rep := g.catchUp("acme/new", "not-a-repo", "acme/*"); rep.Scopes != 1 || rep.New != 0 {
		t.Errorf("catch-up of a new place: %+v, want only acme/api (active) looked at", rep)
	}
	for _, l := range g.fake.listedCopy()[listed:] {
		if !strings.HasPrefix(l, "acme/api ") {
			t.Errorf("listed %q: a new place was listed", l)
		}
	}
	if mk, ok := g.mark("acme/new"); !ok || !mk.Last.Equal(g.clock.Now()) {
		t.Errorf("acme/new's mark %v (%v), want started now", mk.Last, ok)
	}
}

// TestCatchUpAsApp: with a GitHub App the listings use the installation's
// token, the App's own comments (performed_via_github_app) are skipped, and
// the App's failed webhook deliveries since the catch-up's start are
// redelivered: each delivery whose every attempt failed once (its newest
// attempt), not one a later attempt delivered, not an event the adapter
// does not handle, not one older than the catch-up looks.
func TestCatchUpAsApp(t *testing.T) {
	g := newCatchUpRig(t, asApp(t, func(ac *AppConfig) { ac.Slug = testSlug }))
	g.a.perPage = 2
	g.fake.setInstallation("acme/api", 99)
	start := g.write("issue", "acme/api", 12, "@switchboard-app TestMigrate flakes")
	g.live(start, "created", "")
	g.clock.Advance(time.Minute)
	g.fake.addComment(fakeComment{Kind: "issue", Repo: "acme/api", Number: 12, User: "ada", AppID: testAppID,
		Created: g.clock.Now(), Body: "posted by the app on ada's behalf"})
	c := g.write("issue", "acme/api", 12, "it fails on arm64")
	now := g.clock.Now()
	g.fake.setDeliveries([]fakeDelivery{ // newest first
		{ID: 9, GUID: "g1", At: now, Status: 200, Event: "issue_comment"}, // g1's redelivery, delivered
		{ID: 8, GUID: "g4", At: now.Add(-10 * time.Second), Status: 0, Event: "pull_request_review"},
		{ID: 7, GUID: "g4", At: now.Add(-20 * time.Second), Status: 502, Event: "pull_request_review"},
		{ID: 6, GUID: "g3", At: now.Add(-30 * time.Second), Status: 502, Event: "push"},
		{ID: 5, GUID: "g2", At: now.Add(-40 * time.Second), Status: 500, Event: "issues"},
		{ID: 4, GUID: "g1", At: now.Add(-50 * time.Second), Status: 502, Event: "issue_comment"},
		{ID: 3, GUID: "g0", At: now.Add(-time.Hour), Status: 502, Event: "issue_comment"}, // before the mark
	})
	rep := g.catchUp()
	if rep.Found != 2 || rep.New != 1 {
		t.Errorf("report %+v, want 2 found (the live one, one new), the app's own not found", rep)
	}
	if ids, _ := g.inbound("acme/api#12"); !slices.Equal(ids, []string{commentID(start), commentID(c)}) {
		t.Errorf("session holds %q", ids)
	}
	g.fake.mu.Lock()
	redelivered := slices.Clone(g.fake.redelivered)
	g.fake.mu.Unlock()
	if !slices.Equal(redelivered, []int64{5, 8}) {
		t.Errorf("redelivered %v, want [5 8] (g2, then g4's newest attempt)", redelivered)
	}
	if n := g.fake.callCount("GET /app/hook/deliveries"); n != 4 {
		t.Errorf("%d delivery pages, want 4 (2 per page, stopping at the one before the mark)", n)
	}
}

// TestLiveMarkFailureKeepsTheWebhook: when the catch-up mark cannot be
// saved, the webhook is still answered as handled (the message is stored);
// the failure is only logged.
func TestLiveMarkFailureKeepsTheWebhook(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	fake.setIssue("acme/api", 12, "TestMigrate flakes")
	rec := newRecorder()
	a, err := New(&Config{WebhookSecret: testSecret, Token: testToken, Login: testLogin, APIURL: fake.url()}, adapters.Deps{
		Ingress: rec, State: adaptertest.FailingKV{Err: errors.New("database is locked")}, Now: fake.clock.Now, HTTPClient: fake.srv.Client(), Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	c := fake.addComment(fakeComment{Kind: "issue", Repo: "acme/api", Number: 12, Created: fake.clock.Now(), Body: "@switchboard hi"})
	event, body := fake.liveEvent(c, "created", "")
	if w := serve(a, webhook(event, "d1", body)); w.Code != http.StatusOK || len(rec.All()) != 1 {
		t.Errorf("webhook answered %d %s with %d ingested, want 200 and 1", w.Code, w.Body, len(rec.All()))
	}
	if _, err := a.CatchUp(context.Background(), adapters.CatchUpRequest{Window: time.Hour}); err == nil || !strings.Contains(err.Error(), "database is locked") {
		t.Errorf("CatchUp with a failing store: %v", err)
	}
}

// TestCatchUpProgressWait: a live event of a repository being caught up
// waits until the catch-up passes its time or ends, and no longer than the
// hold; other repositories do not wait.
func TestCatchUpProgressWait(t *testing.T) {
	p := newCatchUpProgress()
	t0 := time.Date(2026, 6, 18, 12, 0, 0, 0, time.UTC)
	if _, passed := p.wait(t.Context(), "acme/api", t0, time.Hour); !passed {
		t.Error("waited with no catch-up running")
	}
	p.begin("acme/api")
	if _, passed := p.wait(t.Context(), "acme/web", t0, time.Hour); !passed {
		t.Error("another repository waited")
	}
	if waited, passed := p.wait(t.Context(), "Acme/API", t0, 20*time.Millisecond); passed || waited < 20*time.Millisecond {
		t.Errorf("wait behind a catch-up that has not passed: %s %v, want the hold and false", waited, passed)
	}
	done := make(chan bool)
	go func() {
		_, passed := p.wait(t.Context(), "acme/api", t0.Add(2*time.Minute), time.Hour)
		done <- passed
	}()
	adaptertest.Eventually(t, "the waiter", func() bool { return p.waiters("acme/api") == 1 })
	p.advance("acme/api", t0.Add(time.Minute))
	select {
	case <-done:
		t.Fatal("released before the catch-up passed its time")
	case <-time.After(20 * time.Millisecond):
	}
	p.advance("acme/api", t0.Add(2*time.Minute))
	if !<-done {
		t.Error("not released when the catch-up passed its time")
	}
	go func() {
		_, passed := p.wait(t.Context(), "acme/api", t0.Add(time.Hour), time.Hour)
		done <- passed
	}()
	adaptertest.Eventually(t, "the waiter", func() bool { return p.waiters("acme/api") == 1 })
	p.end("acme/api")
	if !<-done {
		t.Error("not released when the catch-up ended")
	}
}
