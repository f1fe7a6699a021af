package jira

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/internal/catchup"
)

// Bounds of a catch-up's reads.
const (
	// searchPageSize is the maxResults of an issue search page (Jira may
	// answer fewer; the pages follow what it answers).
	searchPageSize = 50
	// commentPageSize is the maxResults of a page of an issue's comments.
	commentPageSize = 100
	// maxSearchPages caps the search pages read per project (5,000 issues).
	maxSearchPages = 100
	// maxCommentPages caps the comment pages read per issue (10,000
	// comments).
	maxCommentPages = 100
	// maxRateLimitWait caps one wait after a 429.
	maxRateLimitWait = 2 * time.Minute
	// maxRateLimitTries caps the tries of one request answered 429.
	maxRateLimitTries = 6
	// catchUpGateWait caps how long a webhook waits for a running catch-up
	// of its project (see awaitCatchUp).
	catchUpGateWait = 10 * time.Second
	// unknownZoneLead is how much earlier a JQL date is written when the
	// account's time zone is unknown: UTC−12 is the earliest zone.
	unknownZoneLead = 12 * time.Hour
)

// jqlLayout is the JQL date format Jira reads to the minute.
const jqlLayout = "2006/01/02 15:04"

// searchFields are the issue fields a catch-up asks for: those a
// comment_created webhook's issue carries (so the mapping finds the same
// links and assignee in them), updated, and the comments.
var searchFields = []string{"summary", "issuetype", "project", "assignee", "priority", "status", "updated", "comment"}

// errProjectRefused marks a search Jira refused for one project (400: it
// does not exist or the account cannot browse it; 403; 404): the catch-up
// goes on with the other projects and returns the error at the end.
var errProjectRefused = errors.New("jira refused the project's search")

// CatchUp fetches, with the REST API v2, the comments written while the
// gateway was not listening and feeds them through the Ingress as their
// webhooks would have been, through the same mapping (mapEvent): same
// envelope ids, anchors, Facts and own-comment checks.
//
// Scopes are Jira projects, marked (adapters/internal/catchup) with the
// time of the newest comment handled in them: the live path marks the
// project of every message the router handled. CatchUp looks at the
// projects whose mark is within req.Window of now, and at the projects
// req.Places name that have a mark; a place without one is started at now
// and not fetched. For each, from catchup.From (never older than the
// window), it searches the issues updated since then (JQL, see jqlTime),
// reads their comments (from the search, else from the issue's comment
// list) and feeds, oldest first across the project, every comment not the
// bot's that was created or edited since then:
//
//   - created since then: the comment_created envelope
//     ("jira:<site>:<comment id>"), with the comment's current text; if it
//     comes back Duplicate (the gateway saw it) and it was edited after,
//     the comment_updated envelope of that edit as well;
//   - created before but edited since then: the comment_updated envelope
//     ("jira:<site>:<comment id>:edit:<updated, Unix ms>").
//
// Deletions and issue events (assignment to the bot, new issues) are not
// caught up. Each message is marked once the router handled it, so a
// catch-up that fails resumes where it stopped. While a project is caught
// up, this process's webhooks of that project wait for it (at most
// catchUpGateWait), so an issue's comments are stored in the order they
// were written. One CatchUp runs at a time per adapter; a second waits.
//
// Rate limits (429, 503 with Retry-After) are waited out; a project Jira
// refuses to search (400, 403, 404) is skipped and its error returned at
// the end, joined; any other failure stops the catch-up with an error
// saying what failed.
func (a *Adapter) CatchUp(ctx context.Context, req adapters.CatchUpRequest) (adapters.CatchUpReport, error) {
	var rep adapters.CatchUpReport
	if a.marks == nil {
		return rep, errors.New("jira: catch-up: no state store is configured")
	}
	if req.Window <= 0 {
		return rep, fmt.Errorf("jira: catch-up: window %s is not positive", req.Window)
	}
	select {
	case a.catchUpSem <- struct{}{}:
		defer func() { <-a.catchUpSem }()
	case <-ctx.Done():
		return rep, fmt.Errorf("jira: catch-up: %w", ctx.Err())
	}
	id, err := a.identityWithin(ctx, 15*time.Second)
	if err != nil {
		return rep, fmt.Errorf("jira: catch-up: %w", err)
	}
	now := a.now()
	marks, err := a.marks.Load(ctx)
	if err != nil {
		return rep, fmt.Errorf("jira: catch-up: %w", err)
	}
	scopes := catchup.Active(marks, now, req.Window)
	for _, p := range req.Places {
		p = strings.TrimSpace(p)
		if p == "" || slices.Contains(scopes, p) {
			continue
		}
		if _, ok := marks[p]; ok {
			scopes = append(scopes, p)
			continue
		}
		if err := a.marks.Start(ctx, p, now, ""); err != nil {
			return rep, fmt.Errorf("jira: catch-up: start %s: %w", p, err)
		}
		a.log.Info("catch-up: a project seen for the first time starts from now", "project", p)
	}
	a.gate.hold(scopes)
	defer a.gate.releaseAll(scopes)

	loc := a.jqlZone(id)
	var refused []error
	for _, project := range scopes {
		from := catchup.From(marks[project], now, req.Window)
		if rep.Since.IsZero() || from.Before(rep.Since) {
			rep.Since = from
		}
		rep.Scopes++
		err := a.catchUpProject(ctx, project, from, loc, id, &rep)
		a.gate.release(project)
		if errors.Is(err, errProjectRefused) {
			a.log.Warn("catch-up: project skipped", "project", project, "err", err)
			refused = append(refused, err)
			continue
		}
		if err != nil {
			return rep, err
		}
	}
	a.log.Info("catch-up done", "since", rep.Since, "projects", rep.Scopes, "found", rep.Found, "new", rep.New)
	return rep, errors.Join(refused...)
}

// missed is a comment event a catch-up feeds.
type missed struct {
	// at is when the live event was: the comment's created, or its
	// updated for an edit. It is the envelope's ts and the feeding order.
	at    time.Time
	event string // eventCommentCreated or eventCommentUpdated
	issue *issue
	c     *comment
	raw   json.RawMessage // the comment as fetched
	// ifSeen marks the edit of a comment created since the mark: it is fed
	// only when the creation comes back Duplicate.
	ifSeen bool
}

// catchUpProject fetches the comment events of project since from and feeds
// them, oldest first, counting them in rep.
func (a *Adapter) catchUpProject(ctx context.Context, project string, from time.Time, loc *time.Location, id identity, rep *adapters.CatchUpReport) error {
	list, err := a.missedComments(ctx, project, from, loc)
	if err != nil {
		return err
	}
	seen := map[string]bool{} // comments whose creation came back Duplicate
	for _, m := range list {
		if m.ifSeen && !seen[m.c.ID] {
			continue
		}
		ev := webhook{WebhookEvent: m.event, Issue: m.issue, Comment: m.c}
		lctx, cancel := context.WithTimeout(ctx, a.cfg.LookupTimeout.D())
		in, why, err := a.mapEvent(lctx, &ev, m.raw, id)
		cancel()
		if err != nil {
			return fmt.Errorf("jira: catch-up: %s comment %s: %w", m.issue.Key, m.c.ID, err)
		}
		if in == nil {
			a.log.Debug("catch-up: comment not ingested", "issue", m.issue.Key, "comment", m.c.ID, "outcome", why)
			continue
		}
		rep.Found++
		out, err := a.ingest(ctx, *in, true)
		if err != nil {
			return fmt.Errorf("jira: catch-up: ingest %s: %w", in.Envelope.ID, err)
		}
		switch {
		case out.Duplicate:
			if m.event == eventCommentCreated {
				seen[m.c.ID] = true
			}
		case out.Dropped == "":
			rep.New++
		}
	}
	return nil
}

// missedComments returns the comment events of project since from, sorted
// by their time (ties in the order fetched: issues by creation, comments by
// creation).
func (a *Adapter) missedComments(ctx context.Context, project string, from time.Time, loc *time.Location) ([]missed, error) {
	var out []missed
	err := a.searchProject(ctx, project, from, loc, func(raw json.RawMessage) error {
		is := new(issue)
		if err := json.Unmarshal(raw, is); err != nil {
			return fmt.Errorf("jira: catch-up: search %s: an issue: %w", project, err)
		}
		if is.Key == "" {
			return nil
		}
		comments, complete := embeddedComments(is.Fields["comment"])
		delete(is.Fields, "comment") // not a field the mapping reads
		var updated string
		_ = json.Unmarshal(is.Fields["updated"], &updated)
		if t, ok := parseJiraTime(updated); ok && t.Before(from) {
			return nil // matched by the JQL's coarser date only
		}
		if !complete {
			var err error
			if comments, err = a.issueComments(ctx, is.Key); err != nil {
				return err
			}
		}
		for _, cr := range comments {
			c := new(comment)
			if err := json.Unmarshal(cr, c); err != nil || c.ID == "" {
				a.log.Warn("catch-up: unreadable comment skipped", "issue", is.Key, "err", err)
				continue
			}
			out = appendMissed(out, is, c, cr, from)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(x, y missed) int { return x.at.Compare(y.at) })
	return out, nil
}

// appendMissed appends the events of comment c of is that happened since
// from: its creation (and its later edit, if the creation turns out seen),
// or its edit.
func appendMissed(out []missed, is *issue, c *comment, raw json.RawMessage, from time.Time) []missed {
	created, okC := parseJiraTime(c.Created)
	updated, okU := parseJiraTime(c.Updated)
	switch {
	case !okC && !okU:
		return out
	case !okU:
		updated = created
	case !okC:
		created = updated
	}
	if updated.Before(from) {
		return out
	}
	m := missed{issue: is, c: c, raw: raw}
	if !created.Before(from) {
		m.at, m.event = created, eventCommentCreated
		out = append(out, m)
		if updated.After(created) {
			m.at, m.event, m.ifSeen = updated, eventCommentUpdated, true
			out = append(out, m)
		}
		return out
	}
	m.at, m.event = updated, eventCommentUpdated
	return append(out, m)
}

// searchPage is a page of GET /rest/api/2/search (startAt, total) or of
// GET /rest/api/2/search/jql (nextPageToken, isLast).
type searchPage struct {
	Issues        []json.RawMessage `json:"issues"`
	Total         int               `json:"total"`
	NextPageToken string            `json:"nextPageToken"`
	IsLast        bool              `json:"isLast"`
}

// commentPage is a page of an issue's comments: the comment field of a
// searched issue, or GET /rest/api/2/issue/<key>/comment.
type commentPage struct {
	StartAt  int               `json:"startAt"`
	Total    int               `json:"total"`
	Comments []json.RawMessage `json:"comments"`
}

// searchEndpoint is the issue search the site answers. Jira Cloud removed
// GET /rest/api/2/search (it answers 410 Gone) for GET
// /rest/api/2/search/jql, paged by nextPageToken; Data Center has only the
// former, paged by startAt. The adapter starts with the one its
// credentials suggest (a personal access token: Data Center) and switches
// when the site answers 410 or 404.
type searchEndpoint struct{ legacy atomic.Bool }

func (s *searchEndpoint) init(dataCenter bool) { s.legacy.Store(dataCenter) }

// searchProject calls fn with each issue of project updated since from, in
// the order they were created, page by page (at most maxSearchPages).
// Ordering by creation keeps the pages stable while issues are updated
// during the search, where ordering by updated would move them to the end
// and shift the next pages.
func (a *Adapter) searchProject(ctx context.Context, project string, from time.Time, loc *time.Location, fn func(json.RawMessage) error) error {
	jql := fmt.Sprintf(`project = %s AND updated >= "%s" ORDER BY created ASC, key ASC`, jqlString(project), jqlTime(from, loc))
	startAt, token, switched := 0, "", false
	for page := 1; ; page++ {
		if page > maxSearchPages {
			a.log.Warn("catch-up: page cap reached; the project's later issues are not looked at", "project", project, "pages", maxSearchPages)
			return nil
		}
		legacy := a.search.legacy.Load()
		q := url.Values{"jql": {jql}, "maxResults": {strconv.Itoa(searchPageSize)}, "fields": {strings.Join(searchFields, ",")}}
		path := "rest/api/2/search/jql"
		if legacy {
			path = "rest/api/2/search"
			q.Set("startAt", strconv.Itoa(startAt))
		} else if token != "" {
			q.Set("nextPageToken", token)
		}
		var p searchPage
		status, err := a.getJSON(ctx, path+"?"+q.Encode(), &p)
		if err != nil && page == 1 && !switched && (legacy && status == http.StatusGone || !legacy && status == http.StatusNotFound) {
			a.search.legacy.CompareAndSwap(legacy, !legacy)
			a.log.Info("catch-up: the site has the other issue search; switching", "answered", status, "legacy", !legacy)
			switched, page = true, 0
			continue
		}
		if err != nil {
			if status == http.StatusBadRequest || status == http.StatusForbidden || status == http.StatusNotFound {
				err = fmt.Errorf("%w: %w", errProjectRefused, err)
			}
			return fmt.Errorf("jira: catch-up: search %s (page %d): %w", project, page, err)
		}
		for _, raw := range p.Issues {
			if err := fn(raw); err != nil {
				return err
			}
		}
		if len(p.Issues) == 0 {
			return nil
		}
		if legacy {
			startAt += len(p.Issues)
			if startAt >= p.Total {
				return nil
			}
		} else {
			if p.IsLast || p.NextPageToken == "" {
				return nil
			}
			token = p.NextPageToken
		}
	}
}

// embeddedComments returns the comments of a searched issue's comment field
// and whether they are all of them (the search returns the first ones only:
// 20 on Jira Cloud).
func embeddedComments(raw json.RawMessage) ([]json.RawMessage, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, false
	}
	var p commentPage
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, false
	}
	return p.Comments, p.StartAt == 0 && len(p.Comments) >= p.Total
}

// issueComments returns all the comments of an issue, oldest first, with
// GET /rest/api/2/issue/<key>/comment paged by startAt (at most
// maxCommentPages).
func (a *Adapter) issueComments(ctx context.Context, key string) ([]json.RawMessage, error) {
	var all []json.RawMessage
	for page := 1; ; page++ {
		if page > maxCommentPages {
			a.log.Warn("catch-up: page cap reached; the issue's later comments are not looked at", "issue", key, "pages", maxCommentPages)
			return all, nil
		}
		q := url.Values{"startAt": {strconv.Itoa(len(all))}, "maxResults": {strconv.Itoa(commentPageSize)}, "orderBy": {"created"}}
		var p commentPage
		if _, err := a.getJSON(ctx, "rest/api/2/issue/"+url.PathEscape(key)+"/comment?"+q.Encode(), &p); err != nil {
			return nil, fmt.Errorf("jira: catch-up: comments of %s (page %d): %w", key, page, err)
		}
		all = append(all, p.Comments...)
		if len(p.Comments) == 0 || len(all) >= p.Total {
			return all, nil
		}
	}
}

// getJSON GETs path (relative to base_url, query included) into v with the
// adapter's API client. A 429, or a 503 with Retry-After, is waited out
// (Retry-After, else X-RateLimit-Reset, else DefaultRetryAfter; at most
// maxRateLimitWait; within ctx) and the request sent again, up to
// maxRateLimitTries tries. Other failures return the status (0 without an
// answer) and an error carrying Jira's message.
func (a *Adapter) getJSON(ctx context.Context, path string, v any) (int, error) {
	for try := 1; ; try++ {
		req, err := a.api.NewRequestWithContext(ctx, http.MethodGet, path, nil)
		if err != nil {
			return 0, err
		}
		resp, err := a.api.Do(req, v)
		if err == nil {
			a.health.Accept(credentials)
			return resp.StatusCode, nil
		}
		status := 0
		if resp != nil && resp.Response != nil {
			status = resp.StatusCode
			if status >= 300 {
				if msg := errorMessage(resp.Body); msg != "" {
					err = fmt.Errorf("%w: %s", err, msg)
				}
			}
		}
		err = a.classify(resp, err)
		var bo *adapters.BackOff
		if !errors.As(err, &bo) || try >= maxRateLimitTries {
			return status, err
		}
		wait := min(bo.Wait, maxRateLimitWait)
		a.log.Info("catch-up: rate limited; waiting", "path", req.URL.Path, "wait", wait, "try", try)
		if !a.sleep(ctx, wait) {
			return status, ctx.Err()
		}
	}
}

// errorMessage reads Jira's error messages from an error answer (its first
// 8 KiB), "" when there are none.
func errorMessage(body io.Reader) string {
	if body == nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(body, 8<<10))
	var e struct {
		ErrorMessages []string          `json:"errorMessages"`
		Errors        map[string]string `json:"errors"`
	}
	if json.Unmarshal(b, &e) != nil {
		return ""
	}
	msgs := e.ErrorMessages
	for _, k := range slices.Sorted(maps.Keys(e.Errors)) {
		msgs = append(msgs, k+": "+e.Errors[k])
	}
	return strings.Join(msgs, "; ")
}

// jqlString quotes s as a JQL string.
func jqlString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// jqlTime writes t as a JQL date, which Jira reads to the minute in the
// time zone of the account searching, loc. It errs early, never late: the
// minute is truncated; near a daylight saving change (whose repeated hour
// Jira may read either way) it is an hour earlier; and with the zone
// unknown (nil) it is written in UTC unknownZoneLead earlier, which is
// early in every zone. The comments are then filtered by their exact
// times, so the overlap only costs a few more issues read.
func jqlTime(t time.Time, loc *time.Location) string {
	if loc == nil {
		return t.UTC().Add(-unknownZoneLead).Format(jqlLayout)
	}
	_, before := t.Add(-2 * time.Hour).In(loc).Zone()
	_, after := t.Add(2 * time.Hour).In(loc).Zone()
	if before != after {
		t = t.Add(-time.Hour)
	}
	return t.In(loc).Format(jqlLayout)
}

// jqlZone returns the location of the account's time zone, nil when Jira
// did not say or it is not known here.
func (a *Adapter) jqlZone(id identity) *time.Location {
	if id.TimeZone == "" {
		a.log.Warn("catch-up: the account's time zone is unknown; searching from 12 hours earlier")
		return nil
	}
	loc, err := time.LoadLocation(id.TimeZone)
	if err != nil {
		a.log.Warn("catch-up: the account's time zone is unknown here; searching from 12 hours earlier", "time_zone", id.TimeZone, "err", err)
		return nil
	}
	return loc
}

// catchUpGate holds the projects a catch-up is feeding. Their webhooks wait
// for it (awaitCatchUp), so that a comment arriving live while the older
// comments of its issue are being caught up is stored after them.
type catchUpGate struct {
	mu   sync.Mutex
	busy map[string]chan struct{} // closed when the project is done
}

func (g *catchUpGate) hold(projects []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.busy == nil {
		g.busy = map[string]chan struct{}{}
	}
	for _, p := range projects {
		if _, ok := g.busy[p]; !ok {
			g.busy[p] = make(chan struct{})
		}
	}
}

func (g *catchUpGate) release(project string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ch, ok := g.busy[project]; ok {
		close(ch)
		delete(g.busy, project)
	}
}

func (g *catchUpGate) releaseAll(projects []string) {
	for _, p := range projects {
		g.release(p)
	}
}

// done returns the channel closed when the catch-up of project is done, nil
// when none is running.
func (g *catchUpGate) done(project string) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.busy[project]
}

// awaitCatchUp waits while a catch-up of project runs in this process, at
// most catchUpGateWait (then the message is stored anyway, perhaps before
// older comments of its issue), and returns ctx's error if it ends first.
func (a *Adapter) awaitCatchUp(ctx context.Context, project string) error {
	done := a.gate.done(project)
	if done == nil {
		return nil
	}
	a.metrics.catchUpWaits.Inc()
	t := time.NewTimer(catchUpGateWait)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		a.log.Warn("a catch-up of the project is still running; storing the webhook's message without waiting further", "project", project)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
