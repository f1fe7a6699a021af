package jira

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"time"

	gojira "github.com/andygrunwald/go-jira"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/internal/hook"
	"github.com/switchboardhq/switchboard/adapters/internal/msgparts"
	"github.com/switchboardhq/switchboard/envelope"
)

var _ adapters.Editor = (*Adapter)(nil)

// EditInterval is the least time between two changes of one reply. Jira
// Cloud's rate limits are cost-based and unpublished: writes cost more than
// reads, and besides the budget of the account there is a per-issue write
// limit (RateLimit-Reason jira-per-issue-on-write). Every change of a
// comment is a write on the issue that also fires a comment_updated
// webhook to every subscriber (the gateway among them) and, under the
// default notification scheme, an "issue comment edited" notification to
// the issue's watchers. Five seconds keeps a streamed reply at 12 writes a
// minute on its issue, which Jira Cloud and Data Center take without a
// 429 and watchers' batched e-mails absorb.
const EditInterval = 5 * time.Second

// EditInterval returns EditInterval (adapters.Editor).
func (a *Adapter) EditInterval() time.Duration { return EditInterval }

// commentIDRe is a Jira comment id.
var commentIDRe = regexp.MustCompile(`^[1-9][0-9]{0,18}$`)

// change delivers an edit (the whole new text of the reply whose first
// comment is d.Target, on issue key) or a deletion of that reply.
//
// A reply is the comments its text was split into; the first names it (it
// is the Receipt's ChannelID, and stays so). An edit renders and splits the
// new text as Deliver does and makes the parts hold it: it updates the
// parts whose body changed (Issue.UpdateCommentWithContext, PUT
// /rest/api/2/issue/{key}/comment/{id}), adds the new text's extra parts
// after the last one, and deletes the parts the new text no longer needs,
// the last first. Every part carries the provenance marker of the delivery
// that first posted the reply, with its part number. A deletion deletes
// every part (DELETE …/comment/{id}), the first last. The parts of a reply
// are known from the adapter's book (msgparts.Book: kept in the state store
// for streamed and split replies); a reply it does not hold is read from
// Jira and taken as one comment, whose new body carries d's marker (Jira's
// markers are hashes, so the other parts of a split reply cannot be found
// by them). The Receipt's ChannelID is d.Target.
//
// Errors: the first comment gone (404), or another part gone on an edit,
// wraps adapters.ErrGone; 400, 403 and other request errors wrap
// adapters.ErrPermanent (401 also marks the adapter unhealthy); a 429 (or a
// 503 with Retry-After) returns *adapters.BackOff with Jira's Retry-After;
// other 5xx and network errors are plain. An attempt that fails part way
// leaves the book saying what was done, and the retry does the rest.
func (a *Adapter) change(ctx context.Context, key string, d adapters.Delivery) (adapters.Receipt, error) {
	verb := "edit"
	if d.Envelope.Kind == envelope.KindDelete {
		verb = "delete"
	}
	if !commentIDRe.MatchString(d.Target) {
		return adapters.Receipt{}, fmt.Errorf("jira: %s: %w: target %q is not a comment id", verb, adapters.ErrPermanent, d.Target)
	}
	var texts []string
	if verb == "edit" {
		if texts = renderComments(d.Envelope.Text, a.cfg.MaxChars); len(texts) == 0 {
			return adapters.Receipt{}, fmt.Errorf("jira: edit: %w: empty text", adapters.ErrPermanent)
		}
	}
	ops := &commentOps{a: a, key: key}
	m, err := a.message(ctx, ops, d)
	if err != nil {
		return adapters.Receipt{}, fmt.Errorf("jira: %s comment %s on %s: %w", verb, d.Target, key, err)
	}
	var bodies func(string) []string
	if verb == "edit" {
		bodies = func(delivery string) []string {
			out := make([]string, len(texts))
			for i, w := range texts {
				out[i] = appendMarker(w, marker(delivery, i+1))
			}
			return out
		}
	}
	if err := a.book.Change(ctx, &m, bodies, ops, a.log); err != nil {
		return adapters.Receipt{}, fmt.Errorf("jira: %s comment %s on %s: %w", verb, d.Target, key, err)
	}
	return adapters.Receipt{ChannelID: d.Target}, nil
}

// message returns the reply whose first comment is d.Target: from the
// book, else read from Jira as one comment (see change).
func (a *Adapter) message(ctx context.Context, ops *commentOps, d adapters.Delivery) (msgparts.Message, error) {
	m, ok, err := a.book.Get(ctx, d.To.Ref, d.Target)
	if err != nil || ok {
		return m, err
	}
	body, err := ops.get(ctx, d.Target)
	if err != nil {
		return msgparts.Message{}, err
	}
	return msgparts.Message{Ref: d.To.Ref, Delivery: d.ID, Parts: []msgparts.Part{{ID: d.Target, Sum: msgparts.Sum(body)}}}, nil
}

// commentOps are the comment calls on one issue (msgparts.Ops).
type commentOps struct {
	a   *Adapter
	key string
}

var _ msgparts.Ops = (*commentOps)(nil)

// gone classifies the error of a call on an existing comment: 404 wraps
// adapters.ErrGone, the rest as classify says. It closes the response body.
func (o *commentOps) gone(resp *gojira.Response, err error) error {
	if resp != nil && resp.Response != nil && resp.StatusCode == http.StatusNotFound {
		_ = o.a.classify(resp, err) // drains and closes the body
		return fmt.Errorf("%w: %v", adapters.ErrGone, err)
	}
	return o.a.classify(resp, err)
}

// path is the REST path of comment id.
func (o *commentOps) path(id string) string {
	return "rest/api/2/issue/" + url.PathEscape(o.key) + "/comment/" + url.PathEscape(id)
}

// get reads comment id's body (GET /rest/api/2/issue/{key}/comment/{id}).
func (o *commentOps) get(ctx context.Context, id string) (string, error) {
	req, err := o.a.api.NewRequestWithContext(ctx, http.MethodGet, o.path(id), nil)
	if err != nil {
		return "", err
	}
	var c gojira.Comment
	resp, err := o.a.api.Do(req, &c)
	if err != nil {
		return "", fmt.Errorf("read comment %s: %w", id, o.gone(resp, err))
	}
	o.a.health.Accept(credentials)
	return c.Body, nil
}

// Edit replaces comment id's body.
func (o *commentOps) Edit(ctx context.Context, id, body string) error {
	_, resp, err := o.a.api.Issue.UpdateCommentWithContext(ctx, o.key, &gojira.Comment{ID: id, Body: body})
	return o.done("edit", resp, err)
}

// done counts a change's outcome and returns its error, classified.
func (o *commentOps) done(op string, resp *gojira.Response, err error) error {
	if err != nil {
		err = o.gone(resp, err)
	} else {
		o.a.health.Accept(credentials)
	}
	o.a.metrics.changes.WithLabelValues(op, msgparts.Result(err)).Inc()
	return err
}

// Post adds a comment to the issue.
func (o *commentOps) Post(ctx context.Context, body string) (string, error) {
	c, resp, err := o.a.api.Issue.AddCommentWithContext(ctx, o.key, &gojira.Comment{Body: body})
	if err == nil && (c == nil || c.ID == "") {
		err = errors.New("the answer has no comment id")
	}
	if err != nil {
		err = o.a.classify(resp, err)
		o.a.metrics.posts.WithLabelValues(hook.PostResult(err)).Inc()
		return "", err
	}
	o.a.health.Accept(credentials)
	o.a.metrics.posts.WithLabelValues("ok").Inc()
	return c.ID, nil
}

// Delete deletes comment id. It makes the request itself rather than with
// Issue.DeleteCommentWithContext, which drops the response and with it the
// status and Retry-After that say what a failure means.
func (o *commentOps) Delete(ctx context.Context, id string) error {
	req, err := o.a.api.NewRequestWithContext(ctx, http.MethodDelete, o.path(id), nil)
	if err != nil {
		return err
	}
	resp, err := o.a.api.Do(req, nil)
	if err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}
	return o.done("delete", resp, err)
}
