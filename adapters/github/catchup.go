package github

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-github/v62/github"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/internal/catchup"
	"github.com/switchboardhq/switchboard/adapters/internal/hook"
	"github.com/switchboardhq/switchboard/envelope"
)

// Bounds of a catch-up.
const (
	// catchUpPerPage is the page size of the listings (GitHub's largest).
	catchUpPerPage = 100
	// catchUpMaxPages caps the pages of one listing (of one repository, in
	// one catch-up); the rest waits for the next catch-up.
	catchUpMaxPages = 100
	// catchUpMaxWait is the longest rate-limit wait a catch-up sits out;
	// a longer one ends it with an error.
	catchUpMaxWait = 2 * time.Minute
	// catchUpWaits caps the rate-limit waits of one request.
	catchUpWaits = 5
	// catchUpHold is how long a live event of a repository that a
	// catch-up is working through waits for it to pass (within GitHub's
	// 10-second webhook timeout).
	catchUpHold = 5 * time.Second
	// redeliverMax caps the webhook redeliveries one catch-up asks for.
	redeliverMax = 1000
)

// CatchUp fetches, with the REST API, the issue comments and pull request
// review comments written while the gateway was not listening, and feeds
// each through the Ingress exactly as its webhook would have been (see
// adapters.CatchUpper): the same mapping (issueCommentItem,
// reviewCommentItem and build), hence the same envelope id, conversation,
// refs, Facts and own-comment checks, so a comment seen live is stored once.
//
// A scope is a repository ("owner/repo", as Facts.Where); its mark (kept in
// the gateway's store, see catchup.Marks) is the time of the newest comment
// handled there, which the webhook handler advances too. CatchUp looks at
// every repository whose mark is within req.Window of now, and at each
// place of req.Places (an "owner/repo" named by the routes): one with no
// mark is started at now, to the second (nothing fetched: a first start
// replays no history), one with a mark older than the window is looked at
// from the window's start. For each, from the mark (never earlier than req.Window
// before now), it lists
//
//	GET /repos/{owner}/{repo}/issues/comments?since=…&sort=created&direction=asc&per_page=100
//	GET /repos/{owner}/{repo}/pulls/comments?since=…&sort=created&direction=asc&per_page=100
//
// (since filters on updated_at), following the Link header's next page, at
// most catchUpMaxPages pages each, and merges the two lists in order of
// creation, so every conversation gets its comments oldest first. Each
// comment's issue or pull request is fetched once per run (GET
// /repos/{owner}/{repo}/issues/{n}, GET /repos/{owner}/{repo}/pulls/{n}).
// A comment created at or after the point fetched from gives the envelope
// its "created" webhook would ("github:issue-comment/<id>", with its
// current body); one created before it (listed because it was edited
// since), the envelope of its "edited" webhook ("…/edit/<updated_at>").
// Deletions,
// reviews and issue or pull request events are not listed.
//
// After each comment ingested the repository's mark advances to its
// creation time, so a catch-up that stops halfway resumes there; after a
// repository is listed to the end, to the newest updated_at handled. A rate
// limit (403 or 429 with Retry-After or X-RateLimit-Reset) is waited out,
// within ctx, when it asks for at most catchUpMaxWait. A repository GitHub
// refuses (404, 403 without a rate limit, 410, 422: deleted, renamed, no
// access) is skipped, and the error naming it returned once the others are
// caught up; any other failure (5xx, network, ingest, ctx) ends the
// catch-up at once with an error naming the repository and the call. While
// a repository is caught up, its live webhooks wait (at most catchUpHold)
// until the catch-up has passed them, so they do not overtake older
// comments.
//
// With a GitHub App, it then lists the App's webhook deliveries since the
// oldest point it fetched from and asks GitHub to redeliver each one (of an
// event the adapter handles) whose every attempt failed; they arrive as
// webhooks and are deduplicated like any redelivery.
//
// The report's Scopes counts the repositories listed (not the places only
// started); Found the comments fetched other than the gateway's own; New
// those the router stored for the first time. It returns an error when the
// adapter has no state store. One CatchUp runs at a time per adapter.
func (a *Adapter) CatchUp(ctx context.Context, req adapters.CatchUpRequest) (adapters.CatchUpReport, error) {
	var rep adapters.CatchUpReport
	if a.marks == nil {
		return rep, errors.New("github: catch-up: no state store is configured")
	}
	if req.Window <= 0 {
		return rep, fmt.Errorf("github: catch-up: the window (%s) must be positive", req.Window)
	}
	a.catchMu.Lock()
	defer a.catchMu.Unlock()

	lctx, cancel := context.WithTimeout(ctx, a.cfg.LookupTimeout.D())
	id, err := a.identity(lctx)
	cancel()
	if err != nil {
		return rep, fmt.Errorf("github: catch-up: bot identity: %w", err)
	}
	now := a.now()
	marks, err := a.marks.Load(ctx)
	if err != nil {
		return rep, fmt.Errorf("github: catch-up: %w", err)
	}
	type scope struct {
		repo string
		from time.Time
	}
	var scopes []scope
	covered := map[string]bool{} // lower-case repositories already in scopes
	for _, repo := range catchup.Active(marks, now, req.Window) {
		if !validRepo(repo) {
			a.log.Warn("catch-up: a mark that is not owner/repo; skipped", "scope", repo)
			continue
		}
		scopes = append(scopes, scope{repo, catchup.From(marks[repo], now, req.Window)})
		covered[strings.ToLower(repo)] = true
	}
	marked := map[string]string{} // lower-case → the repository as marked
	for _, k := range slices.Sorted(maps.Keys(marks)) {
		if _, dup := marked[strings.ToLower(k)]; !dup {
			marked[strings.ToLower(k)] = k
		}
	}
	started := 0
	for _, place := range req.Places {
		if !validRepo(place) {
			a.log.Warn("catch-up: a place that is not owner/repo; skipped", "place", place)
			continue
		}
		low := strings.ToLower(place)
		if covered[low] {
			continue
		}
		covered[low] = true
		if k, ok := marked[low]; ok {
			scopes = append(scopes, scope{k, catchup.From(marks[k], now, req.Window)})
			continue
		}
		// From the start of the current second: GitHub's timestamps are
		// whole seconds, so a comment written later in this second carries
		// a time before now, and since (rounded up) would pass it by.
		if err := a.marks.Start(ctx, place, now.Truncate(time.Second), ""); err != nil {
			return rep, fmt.Errorf("github: catch-up: start %s: %w", place, err)
		}
		started++
	}
	var refused []error // repositories GitHub refuses (gone, no access)
	for _, s := range scopes {
		since := ceilSecond(s.from)
		if rep.Since.IsZero() || since.Before(rep.Since) {
			rep.Since = since
		}
		rep.Scopes++
		if err := a.catchUpRepo(ctx, s.repo, since, id, &rep); err != nil {
			if !errors.Is(err, adapters.ErrPermanent) || ctx.Err() != nil {
				return rep, err
			}
			// One repository that cannot be read does not hold the others up.
			a.log.Warn("catch-up: GitHub refuses a repository; going on with the others", "repo", s.repo, "err", err)
			refused = append(refused, err)
		}
	}
	redelivered := 0
	if a.app != nil && !rep.Since.IsZero() {
		if redelivered, err = a.redeliverFailed(ctx, rep.Since); err != nil {
			return rep, errors.Join(append(refused, fmt.Errorf("github: catch-up: redeliver failed webhooks: %w", err))...)
		}
	}
	a.log.Info("caught up", "since", rep.Since, "repositories", rep.Scopes, "started", started,
		"found", rep.Found, "new", rep.New, "redelivered", redelivered, "refused", len(refused))
	return rep, errors.Join(refused...)
}

// validRepo reports whether s is an "owner/repo" name.
func validRepo(s string) bool {
	owner, name, ok := strings.Cut(s, "/")
	return ok && validLogin(owner) && name != "" && len(name) <= 100 && strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == ""
}

// ceilSecond rounds t up to a whole second: GitHub's since has second
// precision, and rounding down would reach before the window.
func ceilSecond(t time.Time) time.Time {
	if r := t.Truncate(time.Second); r.Before(t) {
		return r.Add(time.Second)
	}
	return t
}

// advanceMark moves repo's catch-up mark to t, after a catch-up handled
// what came before it (a failure is logged: it costs a longer catch-up,
// never a message).
func (a *Adapter) advanceMark(ctx context.Context, repo string, t time.Time) {
	if a.marks == nil || t.IsZero() || repo == "" {
		return
	}
	if err := a.marks.Advance(ctx, repo, t, ""); err != nil {
		a.log.Warn("could not save the catch-up mark", "repo", repo, "err", err)
	}
}

// seen records in the catch-up marks the repository of it, a webhook's
// item that was handled (stored, or dropped by the routes), at its
// comment's updated_at or review's submitted_at: a repository not known
// yet starts there, a known one is marked active. A live event never
// moves a known repository's mark: live events after a gap (a restart, a
// failed delivery) would carry it past what was missed.
func (a *Adapter) seen(ctx context.Context, it *item) {
	if a.marks == nil || it.seenAt.IsZero() || it.repo == "" {
		return
	}
	if err := a.marks.Seen(ctx, it.repo, it.seenAt, ""); err != nil {
		a.log.Warn("could not save the catch-up mark", "repo", it.repo, "err", err)
	}
}

// fetched is a comment a catch-up listed.
type fetched struct {
	raw      json.RawMessage // the comment's JSON as GitHub sent it
	review   bool            // a pull request review comment, not an issue comment
	created  time.Time
	updated  time.Time
	number   int   // the issue or pull request it is on
	appID    int64 // performed_via_github_app.id (0: none)
	issue    *github.IssueComment
	pullComm *github.PullRequestComment
}

// before reports whether f comes before g in a repository's catch-up:
// created earlier, then issue comments first, then by id.
func (f *fetched) before(g *fetched) bool {
	if c := f.created.Compare(g.created); c != 0 {
		return c < 0
	}
	if f.review != g.review {
		return !f.review
	}
	return f.id() < g.id()
}

func (f *fetched) id() int64 {
	if f.review {
		return f.pullComm.GetID()
	}
	return f.issue.GetID()
}

// appMark is performed_via_github_app in a listed comment, which
// go-github's comment types do not carry.
type appMark struct {
	App *struct {
		ID int64 `json:"id"`
	} `json:"performed_via_github_app"`
}

func (m appMark) id() int64 {
	if m.App == nil {
		return 0
	}
	return m.App.ID
}

// decodeIssueComment reads an element of GET …/issues/comments.
func decodeIssueComment(raw json.RawMessage) (*fetched, error) {
	var c struct {
		github.IssueComment
		appMark
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	n, ok := numberIn(c.GetIssueURL(), "issues")
	if !ok || c.GetID() <= 0 || c.CreatedAt == nil || c.UpdatedAt == nil {
		return nil, errors.New("no id, issue_url, created_at or updated_at")
	}
	return &fetched{raw: raw, created: tsOf(c.CreatedAt), updated: tsOf(c.UpdatedAt), number: n,
		appID: c.appMark.id(), issue: &c.IssueComment}, nil
}

// decodeReviewComment reads an element of GET …/pulls/comments.
func decodeReviewComment(raw json.RawMessage) (*fetched, error) {
	var c struct {
		github.PullRequestComment
		appMark
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	n, ok := numberIn(c.GetPullRequestURL(), "pulls")
	if !ok || c.GetID() <= 0 || c.CreatedAt == nil || c.UpdatedAt == nil {
		return nil, errors.New("no id, pull_request_url, created_at or updated_at")
	}
	return &fetched{raw: raw, review: true, created: tsOf(c.CreatedAt), updated: tsOf(c.UpdatedAt), number: n,
		appID: c.appMark.id(), pullComm: &c.PullRequestComment}, nil
}

// numberIn reads the number at the end of an API URL ".../<kind>/<n>".
func numberIn(u, kind string) (int, bool) {
	rest, num, ok := strings.Cut(u[max(0, strings.LastIndex(u, "/"+kind+"/")):], "/"+kind+"/")
	if !ok || rest != "" {
		return 0, false
	}
	n, err := strconv.Atoi(num)
	return n, err == nil && n > 0
}

// repoCatchUp is one repository's part of a catch-up.
type repoCatchUp struct {
	a     *Adapter
	repo  string // as the scope names it
	owner string
	name  string
	since time.Time
	id    identity
	rep   *adapters.CatchUpReport

	// The issues and pull requests fetched in this run (nil: gone), their
	// bodies dropped.
	issues map[int]*github.Issue
	pulls  map[int]*github.PullRequest
}

// catchUpRepo catches repo up from since.
func (a *Adapter) catchUpRepo(ctx context.Context, repo string, since time.Time, id identity, rep *adapters.CatchUpReport) error {
	owner, name, _ := strings.Cut(repo, "/")
	r := &repoCatchUp{a: a, repo: repo, owner: owner, name: name, since: since, id: id, rep: rep,
		issues: map[int]*github.Issue{}, pulls: map[int]*github.PullRequest{}}
	base := "repos/" + url.PathEscape(owner) + "/" + url.PathEscape(name)
	lists := [2]*lister{
		{a: a, repo: repo, what: "issue comments", path: base + "/issues/comments", since: since, decode: decodeIssueComment, page: 1},
		{a: a, repo: repo, what: "review comments", path: base + "/pulls/comments", since: since, decode: decodeReviewComment, page: 1},
	}
	a.progress.begin(repo)
	defer a.progress.end(repo)
	var newest time.Time // the newest updated_at handled
	for {
		var next *lister
		for _, l := range lists {
			f, err := l.peek(ctx)
			if err != nil {
				return err
			}
			if l.capped {
				// What the other list holds past this point waits too: the
				// mark must not pass what this one did not reach.
				return nil
			}
			if f != nil && (next == nil || f.before(next.buf[0])) {
				next = l
			}
		}
		if next == nil {
			break
		}
		f := next.buf[0]
		if err := r.handle(ctx, f); err != nil {
			return err
		}
		next.pop()
		a.progress.advance(repo, f.created)
		if f.updated.After(newest) {
			newest = f.updated
		}
	}
	// Everything listed is handled: what was updated before the newest of it
	// needs no second look.
	a.advanceMark(ctx, repo, newest)
	return nil
}

// handle maps one listed comment as its webhook would be and ingests it.
func (r *repoCatchUp) handle(ctx context.Context, f *fetched) error {
	a := r.a
	kind := envelope.KindMessage
	if f.created.Before(r.since) {
		kind = envelope.KindEdit // listed because it was edited since
	}
	var it *item
	var err error
	if f.review {
		pr, gerr := r.pull(ctx, f.number)
		if gerr != nil {
			return gerr
		}
		if pr == nil {
			pr = &github.PullRequest{Number: github.Int(f.number)}
		}
		it, err = a.reviewCommentItem(kind, r.repo, pr, f.pullComm, f.pullComm.User, 0)
	} else {
		iss, gerr := r.issue(ctx, f.number)
		if gerr != nil {
			return gerr
		}
		if iss == nil {
			a.metrics.catchUp.WithLabelValues("skipped").Inc()
			return nil // gone (logged by issue)
		}
		it, err = a.issueCommentItem(kind, r.repo, iss, f.issue, f.issue.User, 0)
		if err == nil && it.isPR {
			pr, gerr := r.pull(ctx, f.number)
			if gerr != nil {
				return gerr
			}
			if h, ok := headOf(pr); ok {
				it.head = &h
			}
		}
	}
	if err != nil {
		a.metrics.catchUp.WithLabelValues("skipped").Inc()
		a.log.Warn("catch-up: a comment that cannot be mapped; skipped", "repo", r.repo, "comment", f.id(), "err", err)
		return nil
	}
	it.appID = f.appID
	in, why := a.build(ctx, it, r.id, f.raw)
	if why != outcomeOwn {
		r.rep.Found++
	}
	if in == nil {
		a.metrics.catchUp.WithLabelValues(why).Inc()
		return nil
	}
	out, err := a.ingress.Ingest(ctx, *in)
	if err != nil {
		return fmt.Errorf("github: catch-up: %s: ingest %s: %w", r.repo, in.Envelope.ID, err)
	}
	outcome := hook.Outcome(out)
	a.metrics.catchUp.WithLabelValues(outcome).Inc()
	if outcome == outcomeIngested {
		r.rep.New++
	}
	a.advanceMark(ctx, r.repo, f.created)
	return nil
}

// issue returns issue (or pull request) n, fetched once per run; nil when
// GitHub says it is gone.
func (r *repoCatchUp) issue(ctx context.Context, n int) (*github.Issue, error) {
	if iss, ok := r.issues[n]; ok {
		return iss, nil
	}
	var iss *github.Issue
	err := r.a.catchUpCall(ctx, r.repoAuth, func(gh *github.Client) (resp *github.Response, err error) {
		iss, resp, err = gh.Issues.Get(ctx, r.owner, r.name, n)
		return resp, err
	})
	switch {
	case gone(err):
		r.a.log.Warn("catch-up: the issue of a comment is gone; its comments are skipped", "repo", r.repo, "issue", n, "err", err)
		iss = nil
	case err != nil:
		return nil, fmt.Errorf("github: catch-up: %s: get issue #%d: %w", r.repo, n, err)
	default:
		iss.Body = nil // only its number and kind are needed
	}
	r.issues[n] = iss
	return iss, nil
}

// pull returns pull request n, fetched once per run; nil when GitHub says
// it is gone (its comments then go without the head, as a webhook's would
// when the pull request cannot be fetched).
func (r *repoCatchUp) pull(ctx context.Context, n int) (*github.PullRequest, error) {
	if pr, ok := r.pulls[n]; ok {
		return pr, nil
	}
	var pr *github.PullRequest
	err := r.a.catchUpCall(ctx, r.repoAuth, func(gh *github.Client) (resp *github.Response, err error) {
		pr, resp, err = gh.PullRequests.Get(ctx, r.owner, r.name, n)
		return resp, err
	})
	switch {
	case gone(err):
		r.a.log.Warn("catch-up: a pull request is gone; its comments go without its head", "repo", r.repo, "pr", n, "err", err)
		pr = nil
	case err != nil:
		return nil, fmt.Errorf("github: catch-up: %s: get pull request #%d: %w", r.repo, n, err)
	default:
		pr.Body = nil
	}
	r.pulls[n] = pr
	return pr, nil
}

// repoAuth returns the token for the repository's calls.
func (r *repoCatchUp) repoAuth(ctx context.Context) (token, cred string, err error) {
	return r.a.tokenFor(ctx, r.repo)
}

// gone reports whether err is GitHub saying a resource does not exist
// (any longer) or is not visible: 404 or 410.
func gone(err error) bool {
	var er *github.ErrorResponse
	if !errors.As(err, &er) || er.Response == nil {
		return false
	}
	return er.Response.StatusCode == http.StatusNotFound || er.Response.StatusCode == http.StatusGone
}

// catchUpCall makes one REST call of a catch-up with the credential auth
// gives, waiting out rate limits: the credential's pause (see gate) and a
// 403 or 429 that asks for a wait, each at most catchUpMaxWait, at most
// catchUpWaits times. Other errors are returned classified as for Deliver.
func (a *Adapter) catchUpCall(ctx context.Context, auth func(context.Context) (token, cred string, err error), call func(*github.Client) (*github.Response, error)) error {
	for waits := 0; ; waits++ {
		token, cred, err := auth(ctx)
		if err == nil {
			if w := a.gate.wait(cred); w > 0 {
				err = &adapters.BackOff{Wait: w, Err: fmt.Errorf("%s is rate-limited", cred)}
			} else {
				var resp *github.Response
				if resp, err = call(a.client(token)); err == nil {
					if cred == credToken || cred == credApp {
						a.health.Accept(cred)
					}
					return nil
				}
				err = a.classify(cred, resp, err)
			}
		}
		var bo *adapters.BackOff
		switch {
		case !errors.As(err, &bo):
			return err
		case bo.Wait > catchUpMaxWait:
			return fmt.Errorf("rate-limited for %s, longer than a catch-up waits (%s): %w", bo.Wait, catchUpMaxWait, err)
		case waits == catchUpWaits:
			return fmt.Errorf("still rate-limited after %d waits: %w", waits, err)
		}
		a.log.Info("catch-up: rate-limited; waiting", "wait", bo.Wait, "err", bo.Err)
		if err := a.sleep(ctx, bo.Wait); err != nil {
			return err
		}
	}
}

// lister pages through one of a repository's comment listings, a page at a
// time, as the merge in catchUpRepo consumes it.
type lister struct {
	a      *Adapter
	repo   string
	what   string // "issue comments", for errors and logs
	path   string // relative to the API URL
	since  time.Time
	decode func(json.RawMessage) (*fetched, error)

	page   int // the next page to fetch, 0 after the last
	pages  int // fetched so far
	buf    []*fetched
	capped bool // stopped at catchUpMaxPages
}

// peek returns the next comment of the listing, fetching the next page
// when needed; nil at the end (or at the page cap, with capped set).
func (l *lister) peek(ctx context.Context) (*fetched, error) {
	for len(l.buf) == 0 && l.page > 0 {
		if l.pages == catchUpMaxPages {
			l.capped, l.page = true, 0
			l.a.log.Warn("catch-up: page cap reached; the rest waits for the next catch-up",
				"repo", l.repo, "listing", l.what, "pages", l.pages)
			break
		}
		q := url.Values{
			"since":     {l.since.UTC().Format(time.RFC3339)},
			"sort":      {"created"},
			"direction": {"asc"},
			"per_page":  {strconv.Itoa(l.a.perPage)},
			"page":      {strconv.Itoa(l.page)},
		}
		var raws []json.RawMessage
		next := 0
		err := l.a.catchUpCall(ctx, func(ctx context.Context) (string, string, error) { return l.a.tokenFor(ctx, l.repo) },
			func(gh *github.Client) (*github.Response, error) {
				req, err := gh.NewRequest(http.MethodGet, l.path+"?"+q.Encode(), nil)
				if err != nil {
					return nil, err
				}
				raws = nil
				resp, err := gh.Do(ctx, req, &raws)
				if resp != nil {
					next = resp.NextPage
				}
				return resp, err
			})
		if err != nil {
			return nil, fmt.Errorf("github: catch-up: %s: list %s (page %d): %w", l.repo, l.what, l.page, err)
		}
		l.pages++
		for _, raw := range raws {
			f, err := l.decode(raw)
			if err != nil {
				l.a.metrics.catchUp.WithLabelValues("skipped").Inc()
				l.a.log.Warn("catch-up: a listed comment that does not decode; skipped", "repo", l.repo, "listing", l.what, "err", err)
				continue
			}
			l.buf = append(l.buf, f)
		}
		if next <= l.page {
			next = 0 // the last page (or a Link that goes nowhere new)
		}
		l.page = next
	}
	if len(l.buf) == 0 {
		return nil, nil
	}
	return l.buf[0], nil
}

// pop drops the comment peek returned.
func (l *lister) pop() {
	l.buf[0] = nil
	l.buf = l.buf[1:]
}

// catchUpProgress tracks the repositories a catch-up is working through
// and how far it got (the creation time of the last comment it handled),
// so that a live webhook of such a repository can wait until the catch-up
// has passed it rather than overtake the older comments it is bringing.
// Safe for concurrent use.
type catchUpProgress struct {
	mu    sync.Mutex
	repos map[string]*repoProgress // lower-case owner/repo
}

type repoProgress struct {
	at      time.Time
	changed chan struct{} // closed (and replaced) when at moves or the catch-up ends
	waiting int
}

func newCatchUpProgress() *catchUpProgress {
	return &catchUpProgress{repos: map[string]*repoProgress{}}
}

// begin marks repo as being caught up, from nowhere yet.
func (p *catchUpProgress) begin(repo string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.repos[strings.ToLower(repo)] == nil {
		p.repos[strings.ToLower(repo)] = &repoProgress{changed: make(chan struct{})}
	}
}

// advance records that the catch-up of repo has handled everything
// created up to t.
func (p *catchUpProgress) advance(repo string, t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rp := p.repos[strings.ToLower(repo)]
	if rp == nil || !t.After(rp.at) {
		return
	}
	rp.at = t
	close(rp.changed)
	rp.changed = make(chan struct{})
}

// end marks the catch-up of repo as over, releasing every waiter.
func (p *catchUpProgress) end(repo string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if rp := p.repos[strings.ToLower(repo)]; rp != nil {
		close(rp.changed)
		delete(p.repos, strings.ToLower(repo))
	}
}

// wait returns once no catch-up of repo is running or the running one has
// passed t (passed true), or after hold or when ctx ends (passed false),
// with how long it waited.
func (p *catchUpProgress) wait(ctx context.Context, repo string, t time.Time, hold time.Duration) (waited time.Duration, passed bool) {
	start := time.Now()
	var timeout <-chan time.Time
	for {
		p.mu.Lock()
		rp := p.repos[strings.ToLower(repo)]
		if rp == nil || !rp.at.Before(t) {
			p.mu.Unlock()
			return time.Since(start), true
		}
		changed := rp.changed
		rp.waiting++
		p.mu.Unlock()
		if timeout == nil {
			timer := time.NewTimer(hold)
			defer timer.Stop()
			timeout = timer.C
		}
		var done bool
		select {
		case <-changed:
		case <-timeout:
			done = true
		case <-ctx.Done():
			done = true
		}
		p.mu.Lock()
		rp.waiting--
		p.mu.Unlock()
		if done {
			return time.Since(start), false
		}
	}
}

// waiters returns how many live events wait for the catch-up of repo.
func (p *catchUpProgress) waiters(repo string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if rp := p.repos[strings.ToLower(repo)]; rp != nil {
		return rp.waiting
	}
	return 0
}

// redeliverFailed lists the App's webhook deliveries made since since
// (GET /app/hook/deliveries, newest first, by cursor) and asks GitHub to
// redeliver (POST /app/hook/deliveries/{id}/attempts) the latest attempt of
// each delivery, of an event the adapter handles, whose every attempt
// failed. It returns how many it asked for. A redelivery GitHub refuses is
// logged and skipped.
func (a *Adapter) redeliverFailed(ctx context.Context, since time.Time) (int, error) {
	auth := func(context.Context) (string, string, error) {
		tok, err := a.app.jwt()
		return tok, credApp, err
	}
	type attempts struct {
		ok     bool  // one attempt was answered 2xx
		failed int64 // the newest failed attempt
		event  string
	}
	byGUID := map[string]*attempts{}
	var guids []string // newest first
	opts := &github.ListCursorOptions{PerPage: a.perPage}
	for pages := 0; ; pages++ {
		if pages == catchUpMaxPages {
			a.log.Warn("catch-up: page cap reached listing the app's webhook deliveries", "pages", pages)
			break
		}
		var ds []*github.HookDelivery
		cursor := ""
		err := a.catchUpCall(ctx, auth, func(gh *github.Client) (*github.Response, error) {
			var resp *github.Response
			var err error
			ds, resp, err = gh.Apps.ListHookDeliveries(ctx, opts)
			if resp != nil {
				cursor = resp.Cursor
			}
			return resp, err
		})
		if err != nil {
			return 0, fmt.Errorf("list the app's deliveries: %w", err)
		}
		older := false
		for _, d := range ds {
			if d.GetDeliveredAt().Time.Before(since) {
				older = true
				continue
			}
			g := d.GetGUID()
			at := byGUID[g]
			if at == nil {
				at = &attempts{}
				byGUID[g] = at
				guids = append(guids, g)
			}
			switch code := d.GetStatusCode(); {
			case code >= 200 && code < 300:
				at.ok = true
			case at.failed == 0:
				at.failed, at.event = d.GetID(), d.GetEvent()
			}
		}
		if older || cursor == "" || cursor == opts.Cursor {
			break
		}
		opts.Cursor = cursor
	}
	n := 0
	for _, g := range slices.Backward(guids) { // oldest first
		at := byGUID[g]
		if at.ok || at.failed == 0 || !handledEvents[at.event] {
			continue
		}
		if n == redeliverMax {
			a.log.Warn("catch-up: redelivery cap reached; the rest of the failed deliveries are not redelivered", "cap", redeliverMax)
			break
		}
		err := a.catchUpCall(ctx, auth, func(gh *github.Client) (*github.Response, error) {
			_, resp, err := gh.Apps.RedeliverHookDelivery(ctx, at.failed)
			var accepted *github.AcceptedError
			if errors.As(err, &accepted) {
				err = nil // 202: queued
			}
			return resp, err
		})
		if err != nil {
			if ctx.Err() != nil {
				return n, ctx.Err()
			}
			a.log.Warn("catch-up: GitHub refused to redeliver a failed webhook", "delivery", g, "event", at.event, "err", err)
			continue
		}
		n++
	}
	return n, nil
}
