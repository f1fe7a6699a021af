package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-github/v62/github"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/internal/hook"
	"github.com/switchboardhq/switchboard/adapters/internal/msgparts"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/httpx"
)

// Deliver posts d's text as a comment on the issue or pull request its
// conversation anchor names ("<owner>/<repo>#<n>", with Issues.CreateComment)
// or as a reply in a review thread ("<owner>/<repo>#<n>/review-thread/<id>",
// with PullRequests.CreateCommentInReplyTo). The text is GitHub-flavoured
// Markdown and is posted unchanged, followed by an invisible provenance
// marker (an HTML comment naming the delivery) by which the adapter
// recognises its own comments when GitHub echoes them. Text longer than
// max_chars is split into several comments, posted in order.
//
// The Receipt's ChannelID is the id of the first comment posted. Deliveries
// of kind edit and delete change or withdraw such a reply (see change).
//
// Errors: a primary rate limit (403/429 with X-RateLimit-Remaining: 0)
// returns *adapters.BackOff until X-RateLimit-Reset, a secondary one
// (Retry-After, or a 403/429 rate-limit message) until Retry-After or for
// a minute; while a credential is paused, Deliver returns a BackOff without
// calling GitHub. 5xx and network errors are plain (the outbox retries).
// 404, 410, 422 and a 403 that is not a rate limit (deleted or inaccessible
// issue, locked conversation, missing permission) wrap adapters.ErrPermanent;
// so does a 401 of the personal access token, which also marks the adapter
// unhealthy (a rejected installation token is dropped and minted again).
//
// Double posts: when an attempt fails after posting some parts, the next
// attempt posts only the rest. Parts posted are remembered in memory; on a
// retry (Attempt > 1) that the process does not remember, after a restart or
// in another gateway process, the comments updated since shortly before the
// output was written are listed and those carrying this delivery's marker
// are skipped. A comment can still be posted twice when that listing fails,
// or when GitHub created a comment but the request failed before the answer
// and the listing does not show it yet (GitHub's lists are eventually
// consistent).
func (a *Adapter) Deliver(ctx context.Context, d adapters.Delivery) (adapters.Receipt, error) {
	if d.To.Source != Name {
		return adapters.Receipt{}, fmt.Errorf("github: deliver: %w: conversation source is %q", adapters.ErrPermanent, d.To.Source)
	}
	t, err := parseRef(d.To.Ref)
	if err != nil {
		return adapters.Receipt{}, fmt.Errorf("github: deliver: %w: %v", adapters.ErrPermanent, err)
	}
	switch d.Envelope.Kind {
	case envelope.KindMessage, envelope.KindSystem:
	case envelope.KindEdit, envelope.KindDelete:
		return a.change(ctx, t, d)
	default:
		return adapters.Receipt{}, fmt.Errorf("github: deliver: %w: %s envelopes are not posted", adapters.ErrPermanent, d.Envelope.Kind)
	}
	if strings.TrimSpace(d.Envelope.Text) == "" {
		return adapters.Receipt{}, fmt.Errorf("github: deliver: %w: empty text", adapters.ErrPermanent)
	}
	if !validDeliveryID(d.ID) {
		return adapters.Receipt{}, fmt.Errorf("github: deliver: %w: delivery id %q cannot go in a marker", adapters.ErrPermanent, d.ID)
	}
	parts := split(d.Envelope.Text, a.cfg.MaxChars-markerRoom)
	if len(parts) == 0 {
		return adapters.Receipt{}, fmt.Errorf("github: deliver: %w: nothing to post", adapters.ErrPermanent)
	}
	token, cred, err := a.tokenFor(ctx, t.repo())
	if err != nil {
		a.metrics.posts.WithLabelValues(hook.PostResult(err)).Inc()
		return adapters.Receipt{}, err
	}
	if wait := a.gate.wait(cred); wait > 0 {
		a.metrics.posts.WithLabelValues("rate_limited").Inc()
		return adapters.Receipt{}, &adapters.BackOff{Wait: wait, Err: fmt.Errorf("github: %s is rate-limited", cred)}
	}
	gh := a.client(token)
	posted, known := a.sent.Get(d.ID)
	posted = slices.Clone(posted) // the stored slice stays as it was
	if !known && d.Attempt > 1 {
		posted = a.findPosted(ctx, gh, cred, t, d, len(parts))
	}
	if len(posted) > len(parts) {
		posted = posted[:len(parts)]
	}
	for i := len(posted); i < len(parts); i++ {
		body := parts[i] + "\n\n" + marker(d.ID, i+1, len(parts))
		var id int64
		var resp *github.Response
		if t.thread != 0 {
			var c *github.PullRequestComment
			c, resp, err = gh.PullRequests.CreateCommentInReplyTo(ctx, t.owner, t.name, t.number, body, t.thread)
			id = c.GetID()
		} else {
			var c *github.IssueComment
			c, resp, err = gh.Issues.CreateComment(ctx, t.owner, t.name, t.number, &github.IssueComment{Body: &body})
			id = c.GetID()
		}
		if err == nil && id == 0 {
			err = errors.New("github: the created comment has no id")
		}
		if err != nil {
			a.sent.Put(d.ID, slices.Clone(posted))
			err = a.classify(cred, resp, err)
			a.metrics.posts.WithLabelValues(hook.PostResult(err)).Inc()
			return adapters.Receipt{}, fmt.Errorf("github: post comment on %s (part %d of %d): %w", d.To.Ref, i+1, len(parts), err)
		}
		if cred == credToken {
			a.health.Accept(credToken)
		}
		a.metrics.posts.WithLabelValues("ok").Inc()
		posted = append(posted, id)
	}
	a.sent.Put(d.ID, slices.Clone(posted))
	if d.Envelope.Partial() || len(parts) > 1 {
		// Edits will follow, or would need every part: remember them.
		m := msgparts.Message{Ref: d.To.Ref, Delivery: d.ID}
		for i, id := range posted {
			m.Parts = append(m.Parts, msgparts.Part{ID: strconv.FormatInt(id, 10), Sum: msgparts.Sum(parts[i] + "\n\n" + marker(d.ID, i+1, len(parts)))})
		}
		if err := a.book.Put(ctx, m); err != nil {
			a.log.Warn("could not record the parts of a reply; an edit will look for them on GitHub", "delivery", d.ID, "err", err)
		}
	}
	return adapters.Receipt{ChannelID: strconv.FormatInt(posted[0], 10)}, nil
}

// target is a parsed conversation anchor.
type target struct {
	owner, name string
	number      int
	thread      int64 // the review thread's first comment, or 0
}

func (t target) repo() string { return t.owner + "/" + t.name }

// ref is the conversation anchor of the issue or pull request number in
// repo, or of the review thread rooted at comment thread when it is not 0.
func ref(repo string, number int, thread int64) string {
	r := repo + "#" + strconv.Itoa(number)
	if thread != 0 {
		r += "/review-thread/" + strconv.FormatInt(thread, 10)
	}
	return r
}

// parseRef reads "<owner>/<repo>#<n>" or
// "<owner>/<repo>#<n>/review-thread/<comment id>".
func parseRef(r string) (target, error) {
	bad := fmt.Errorf("conversation ref %q is not <owner>/<repo>#<number>[/review-thread/<comment id>]", r)
	repo, rest, ok := strings.Cut(r, "#")
	if !ok {
		return target{}, bad
	}
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return target{}, bad
	}
	num, thread, hasThread := strings.Cut(rest, "/review-thread/")
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 {
		return target{}, bad
	}
	t := target{owner: owner, name: name, number: n}
	if hasThread {
		if t.thread, err = strconv.ParseInt(thread, 10, 64); err != nil || t.thread <= 0 {
			return target{}, bad
		}
	}
	return t, nil
}

// The provenance marker ends every comment the gateway posts:
// "<!-- switchboard:delivery=<id> -->", with " part=<i>/<n>" before the
// closing "-->" when a reply was split.
var (
	markerRE = regexp.MustCompile(`<!--\s*switchboard:delivery=([A-Za-z0-9_.:-]+)(?:\s+part=(\d+)/(\d+))?\s*-->`)
	// anyMarker finds a marker of any gateway instance in an inbound body.
	anyMarker = regexp.MustCompile(`<!--\s*switchboard:delivery=`)
	// deliveryID is what a delivery id may hold to go into a marker.
	deliveryID = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,200}$`)
)

// markerRoom is the room kept in each comment for "\n\n" and the marker.
const markerRoom = 2 + len("<!-- switchboard:delivery= part=9999/9999 -->") + 200

func validDeliveryID(id string) bool {
	return deliveryID.MatchString(id) && !strings.Contains(id, "--")
}

// marker returns the marker of part i of n of delivery id.
func marker(id string, i, n int) string {
	if n == 1 {
		return "<!-- switchboard:delivery=" + id + " -->"
	}
	return fmt.Sprintf("<!-- switchboard:delivery=%s part=%d/%d -->", id, i, n)
}

// hasMarker reports whether body carries a gateway's provenance marker.
func hasMarker(body string) bool { return anyMarker.MatchString(body) }

// markedPart returns the delivery and part number a comment's marker names
// (part 1 for an unsplit reply).
func markedPart(body string) (id string, part int, ok bool) {
	id, part, _, ok = markerOf(body)
	return id, part, ok
}

// markerOf returns the delivery, the part number and the number of parts a
// comment's marker names (part 1 of 1 for an unsplit reply).
func markerOf(body string) (id string, part, of int, ok bool) {
	m := markerRE.FindStringSubmatch(body)
	if m == nil {
		return "", 0, 0, false
	}
	part, of = 1, 1
	if m[2] != "" {
		part, _ = strconv.Atoi(m[2])
		of, _ = strconv.Atoi(m[3])
	}
	return m[1], part, of, true
}

// findPosted looks on GitHub for the parts of d that an earlier attempt
// posted, and returns their comment ids in part order (stopping at the
// first missing part). Failures are logged and give nil: the parts are then
// posted again.
func (a *Adapter) findPosted(ctx context.Context, gh *github.Client, cred string, t target, d adapters.Delivery, parts int) []int64 {
	since := d.Envelope.TS.Add(-time.Minute) // parts were posted after the output was written
	found, err := a.markedComments(ctx, gh, cred, t, d.ID, since, parts)
	if err != nil {
		a.log.Warn("could not check for an earlier attempt's comments; posting again", "delivery", d.ID, "err", err)
		return nil
	}
	var posted []int64
	for i := 1; found[i].id != 0; i++ {
		posted = append(posted, found[i].id)
	}
	if len(posted) > 0 {
		a.log.Info("resuming a delivery that an earlier attempt posted", "delivery", d.ID, "posted", len(posted), "parts", parts)
	}
	return posted
}

// markedComment is a comment found by its marker.
type markedComment struct {
	id   int64
	body string
}

// markedComments lists the comments of t updated since since (at most ten
// pages of 100) and returns, by part number, those whose marker names
// delivery and a part from 1 to maxPart. An error is classified.
func (a *Adapter) markedComments(ctx context.Context, gh *github.Client, cred string, t target, delivery string, since time.Time, maxPart int) (map[int]markedComment, error) {
	found := map[int]markedComment{}
	scan := func(body string, id int64) {
		if did, part, _, ok := markerOf(body); ok && did == delivery && part >= 1 && part <= maxPart {
			found[part] = markedComment{id: id, body: body}
		}
	}
	opts := github.ListOptions{PerPage: 100}
	for page := 0; page < 10; page++ {
		var resp *github.Response
		var err error
		if t.thread != 0 {
			var cs []*github.PullRequestComment
			cs, resp, err = gh.PullRequests.ListComments(ctx, t.owner, t.name, t.number,
				&github.PullRequestListCommentsOptions{Since: since, Sort: "created", Direction: "asc", ListOptions: opts})
			for _, c := range cs {
				scan(c.GetBody(), c.GetID())
			}
		} else {
			var cs []*github.IssueComment
			cs, resp, err = gh.Issues.ListComments(ctx, t.owner, t.name, t.number,
				&github.IssueListCommentsOptions{Since: &since, ListOptions: opts})
			for _, c := range cs {
				scan(c.GetBody(), c.GetID())
			}
		}
		if err != nil {
			return nil, a.classify(cred, resp, err)
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	return found, nil
}

// classify maps an error of a REST call made with credential cred to the
// adapter's contract: rate limits to *adapters.BackOff (and a pause of cred,
// see gate), deleted or inaccessible resources and request errors to
// adapters.ErrPermanent, a rejected personal access token or App key to
// ErrPermanent and an unhealthy adapter, a rejected installation token to a
// plain error after dropping it, and 5xx, network and context errors to
// themselves, to be retried.
func (a *Adapter) classify(cred string, resp *github.Response, err error) error {
	if err == nil {
		return nil
	}
	code := statusOf(resp)
	if code == 0 {
		return err
	}
	if wait, ok := rateLimitWait(resp.Response, err.Error(), a.now()); ok {
		a.gate.pause(cred, wait)
		return &adapters.BackOff{Wait: wait, Err: err}
	}
	switch {
	case code == http.StatusUnauthorized:
		if inst, ok := installationOf(cred); ok {
			a.forgetToken(inst)
			return err
		}
		a.health.Reject(cred, resp.Status)
		return fmt.Errorf("%w: %v", adapters.ErrPermanent, err)
	case code >= 500 || code == http.StatusRequestTimeout || code == http.StatusConflict:
		return err
	case code >= 400:
		return fmt.Errorf("%w: %v", adapters.ErrPermanent, err)
	}
	return err
}

// rateLimitWait reports whether r (a 403 or 429) is a rate limit, and how
// long to wait, following GitHub's guidance: Retry-After when present; else
// until X-RateLimit-Reset when X-RateLimit-Remaining is 0; else at least a
// minute for a 429 or a 403 whose message speaks of a rate limit.
func rateLimitWait(r *http.Response, msg string, now time.Time) (time.Duration, bool) {
	if r.StatusCode != http.StatusForbidden && r.StatusCode != http.StatusTooManyRequests {
		return 0, false
	}
	clamp := func(d time.Duration) time.Duration { return min(max(d, time.Second), 2*time.Hour) }
	if d, ok := httpx.RetryAfter(r.Header.Get("Retry-After"), now); ok {
		return clamp(d), true
	}
	if r.Header.Get("X-RateLimit-Remaining") == "0" {
		if reset, err := strconv.ParseInt(r.Header.Get("X-RateLimit-Reset"), 10, 64); err == nil {
			return clamp(time.Unix(reset, 0).Sub(now) + time.Second), true
		}
		return time.Minute, true
	}
	if r.StatusCode == http.StatusTooManyRequests || strings.Contains(strings.ToLower(msg), "rate limit") {
		return time.Minute, true
	}
	return 0, false
}

// gate remembers, per credential, until when GitHub asked the gateway to
// stop calling (a rate limit), so that other deliveries with the same
// credential wait too instead of prolonging the limit. Safe for concurrent
// use.
type gate struct {
	mu    sync.Mutex
	now   func() time.Time
	until map[string]time.Time
}

func newGate(now func() time.Time) *gate { return &gate{now: now, until: map[string]time.Time{}} }

// pause stops calls with cred for d (never shortening an existing pause).
func (g *gate) pause(cred string, d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t := g.now().Add(d); t.After(g.until[cred]) {
		g.until[cred] = t
	}
}

// wait returns how long calls with cred must still wait (0: none).
func (g *gate) wait(cred string) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	t, ok := g.until[cred]
	if !ok {
		return 0
	}
	if d := t.Sub(g.now()); d > 0 {
		return d
	}
	delete(g.until, cred)
	return 0
}
