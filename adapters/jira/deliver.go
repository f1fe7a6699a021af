package jira

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	gojira "github.com/andygrunwald/go-jira"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/internal/hook"
	"github.com/switchboardhq/switchboard/adapters/internal/msgparts"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/httpx"
)

// issueKeyRe is a Jira issue key. Project keys are uppercase by default;
// Data Center admins may allow other patterns.
var issueKeyRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*-[1-9][0-9]*$`)

// DefaultRetryAfter is the wait after a 429 that says neither Retry-After
// nor X-RateLimit-Reset.
const DefaultRetryAfter = time.Minute

// Deliver posts d's text as a comment on the issue its conversation anchor
// names ("<site>/<ISSUE-KEY>"), converted from Markdown to wiki markup, with
// the provenance marker appended. A reply longer than max_chars is posted as
// several comments, in order. The Receipt's ChannelID is the id of the
// first comment. Deliveries of kind edit and delete change or withdraw such
// a reply (see change).
//
// Errors: a 429 (or a 503 with Retry-After) returns *adapters.BackOff with
// Jira's Retry-After (else X-RateLimit-Reset, else DefaultRetryAfter); other
// 5xx and network errors are plain (the outbox retries); 404 (a deleted
// issue, or one the account cannot see), 403 and other request errors wrap
// adapters.ErrPermanent; 401 and a Data Center login denial wrap
// ErrPermanent and mark the adapter unhealthy.
//
// Double posts: when an attempt fails after posting some parts, the next
// attempt posts only the rest. The adapter remembers posted parts in memory,
// and on a retry it does not remember (after a restart, or in another
// gateway process) it reads the issue's latest comments and skips parts
// whose marker names this delivery. A part can still be posted twice when
// that read fails or the issue got more than 100 comments in between.
func (a *Adapter) Deliver(ctx context.Context, d adapters.Delivery) (adapters.Receipt, error) {
	if d.To.Source != Name {
		return adapters.Receipt{}, fmt.Errorf("jira: deliver: %w: conversation source is %q", adapters.ErrPermanent, d.To.Source)
	}
	key, err := a.parseRef(d.To.Ref)
	if err != nil {
		return adapters.Receipt{}, fmt.Errorf("jira: deliver: %w: %v", adapters.ErrPermanent, err)
	}
	switch d.Envelope.Kind {
	case envelope.KindMessage, envelope.KindSystem:
	case envelope.KindEdit, envelope.KindDelete:
		return a.change(ctx, key, d)
	default:
		return adapters.Receipt{}, fmt.Errorf("jira: deliver: %w: %s envelopes are not posted", adapters.ErrPermanent, d.Envelope.Kind)
	}
	parts := renderComments(d.Envelope.Text, a.cfg.MaxChars)
	if len(parts) == 0 {
		return adapters.Receipt{}, fmt.Errorf("jira: deliver: %w: empty text", adapters.ErrPermanent)
	}
	posted, known := a.sent.Get(d.ID)
	posted = slices.Clone(posted) // the stored slice stays as it was
	if !known && d.Attempt > 1 {
		posted = a.findPosted(ctx, key, d.ID)
	}
	if len(posted) > len(parts) {
		posted = posted[:len(parts)]
	}
	for i := len(posted); i < len(parts); i++ {
		body := appendMarker(parts[i], marker(d.ID, i+1))
		c, resp, err := a.api.Issue.AddCommentWithContext(ctx, key, &gojira.Comment{Body: body})
		if err == nil && (c == nil || c.ID == "") {
			err = errors.New("the answer has no comment id")
		}
		if err != nil {
			a.sent.Put(d.ID, slices.Clone(posted))
			err = a.classify(resp, err)
			a.metrics.posts.WithLabelValues(hook.PostResult(err)).Inc()
			return adapters.Receipt{}, fmt.Errorf("jira: add comment to %s (part %d of %d): %w", key, i+1, len(parts), err)
		}
		a.health.Accept(credentials)
		a.metrics.posts.WithLabelValues("ok").Inc()
		posted = append(posted, c.ID)
	}
	a.sent.Put(d.ID, slices.Clone(posted))
	if d.Envelope.Partial() || len(parts) > 1 {
		// Edits will follow, or would need every part: remember them.
		m := msgparts.Message{Ref: d.To.Ref, Delivery: d.ID}
		for i, id := range posted {
			m.Parts = append(m.Parts, msgparts.Part{ID: id, Sum: msgparts.Sum(appendMarker(parts[i], marker(d.ID, i+1)))})
		}
		if err := a.book.Put(ctx, m); err != nil {
			a.log.Warn("could not record the parts of a reply", "delivery", d.ID, "err", err)
		}
	}
	return adapters.Receipt{ChannelID: posted[0]}, nil
}

// parseRef reads a conversation anchor "<site>/<ISSUE-KEY>" and returns the
// issue key. With a configured site, the anchor must name it.
func (a *Adapter) parseRef(ref string) (string, error) {
	i := strings.LastIndexByte(ref, '/')
	if i <= 0 {
		return "", fmt.Errorf("conversation ref %q is not <site>/<ISSUE-KEY>", ref)
	}
	site, key := ref[:i], ref[i+1:]
	if !issueKeyRe.MatchString(key) {
		return "", fmt.Errorf("conversation ref %q: %q is not an issue key", ref, key)
	}
	if a.cfg.Site != "" && !strings.EqualFold(site, a.cfg.Site) {
		return "", fmt.Errorf("conversation ref %q is on another site than %q", ref, a.cfg.Site)
	}
	return key, nil
}

// findPosted looks among the issue's latest comments for the parts of a
// delivery that an earlier attempt posted, and returns their ids in part
// order (stopping at the first missing part). Failures are logged and give
// nil: the parts are then posted again.
func (a *Adapter) findPosted(ctx context.Context, key, delivery string) []string {
	q := url.Values{"orderBy": {"-created"}, "maxResults": {"100"}}
	req, err := a.api.NewRequestWithContext(ctx, "GET", "rest/api/2/issue/"+url.PathEscape(key)+"/comment?"+q.Encode(), nil)
	if err != nil {
		return nil
	}
	var page struct {
		Comments []struct {
			ID   string `json:"id"`
			Body string `json:"body"`
		} `json:"comments"`
	}
	resp, err := a.api.Do(req, &page)
	if err != nil {
		a.log.Warn("could not check the issue for an earlier attempt; posting again", "delivery", delivery, "issue", key, "err", a.classify(resp, err))
		return nil
	}
	var posted []string
	for part := 1; ; part++ {
		m, found := marker(delivery, part), ""
		for _, c := range page.Comments {
			if strings.Contains(c.Body, m) {
				found = c.ID
				break
			}
		}
		if found == "" {
			break
		}
		posted = append(posted, found)
	}
	if len(posted) > 0 {
		a.log.Info("resuming a delivery that an earlier attempt partly posted", "delivery", delivery, "posted", len(posted))
	}
	return posted
}

// classify maps the error of a REST call to the adapter's contract: rate
// limits to *adapters.BackOff, request and credential errors to
// adapters.ErrPermanent (credential errors also mark the adapter
// unhealthy), and everything else (5xx, network) to itself, to be retried.
// It drains and closes the response body.
func (a *Adapter) classify(resp *gojira.Response, err error) error {
	if resp == nil || resp.Response == nil {
		return err
	}
	if resp.Body != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}
	code := resp.StatusCode
	switch {
	case code == http.StatusTooManyRequests:
		return &adapters.BackOff{Wait: retryAfter(resp.Header, a.now(), DefaultRetryAfter), Err: err}
	case code == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
		return &adapters.BackOff{Wait: retryAfter(resp.Header, a.now(), DefaultRetryAfter), Err: err}
	case code >= 500 || code == http.StatusRequestTimeout || code == http.StatusConflict:
		return err
	case code == http.StatusUnauthorized:
		a.health.Reject(credentials, resp.Status)
		return fmt.Errorf("%w: %v", adapters.ErrPermanent, err)
	case code == http.StatusForbidden && loginDenied(resp.Header):
		a.health.Reject(credentials, resp.Status+" ("+resp.Header.Get("X-Seraph-LoginReason")+")")
		return fmt.Errorf("%w: %v", adapters.ErrPermanent, err)
	case code >= 400:
		return fmt.Errorf("%w: %v", adapters.ErrPermanent, err)
	}
	return err
}

// loginDenied reports whether Jira Data Center refused the credentials
// themselves (X-Seraph-LoginReason), rather than the action.
func loginDenied(h http.Header) bool {
	r := h.Get("X-Seraph-LoginReason")
	return strings.Contains(r, "AUTHENTICATED_FAILED") || strings.Contains(r, "AUTHENTICATION_DENIED")
}

// retryAfter reads how long to wait from Retry-After (seconds or an HTTP
// date), else X-RateLimit-Reset (an ISO 8601 time, as Jira Cloud sends it),
// else returns def.
func retryAfter(h http.Header, now time.Time, def time.Duration) time.Duration {
	if d, ok := httpx.RetryAfter(h.Get("Retry-After"), now); ok {
		return max(d, 0)
	}
	if v := strings.TrimSpace(h.Get("X-RateLimit-Reset")); v != "" {
		for _, l := range []string{time.RFC3339, "2006-01-02T15:04Z07:00"} {
			if t, err := time.Parse(l, v); err == nil {
				return max(t.Sub(now), 0)
			}
		}
	}
	return def
}
