package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-github/v62/github"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/internal/hook"
	"github.com/switchboardhq/switchboard/adapters/internal/msgparts"
	"github.com/switchboardhq/switchboard/envelope"
)

var _ adapters.Editor = (*Adapter)(nil)

// EditInterval is the least time between two changes of one reply.
// GitHub's secondary rate limits allow no more than 80 content-generating
// requests a minute (and 500 an hour), and its guidance for mutating
// requests is to make them serially, at least a second apart. Every change
// of a reply is at least one PATCH, so five seconds keeps a streamed reply
// at 12 writes a minute: a few replies can stream at once on one
// credential before the limit is near, and the rest of the gateway's posts
// still fit.
const EditInterval = 5 * time.Second

// EditInterval returns EditInterval (adapters.Editor).
func (a *Adapter) EditInterval() time.Duration { return EditInterval }

// change delivers an edit (the whole new text of the reply whose first
// comment is d.Target, in t) or a deletion of that reply.
//
// A reply is the comments its text was split into; the first names it (it
// is the Receipt's ChannelID, and stays so). An edit splits the new text as
// Deliver does and makes the parts hold it: it PATCHes the parts whose body
// changed (Issues.EditComment, or PullRequests.EditComment in a review
// thread), posts the new text's extra parts after the last one, and deletes
// the parts the new text no longer needs, the last first. Every part keeps
// the provenance marker of the delivery that first posted the reply, with
// its part number and the new count. A deletion deletes every part, the
// first last. The parts of a reply are known from the adapter's book (see
// msgparts.Book: kept in the state store for streamed and split replies);
// for a reply it does not hold, the first comment is read and, when its
// marker says the reply was split, the other parts are found by their
// markers (as a retry finds them). The Receipt's ChannelID is d.Target.
//
// Errors: the first comment gone (404 or 410), or another part gone on an
// edit, wraps adapters.ErrGone; 422 and other request errors wrap
// adapters.ErrPermanent; rate limits return *adapters.BackOff as Deliver's
// do; 5xx and network errors are plain. An attempt that fails part way
// leaves the book saying what was done, and the retry does the rest.
func (a *Adapter) change(ctx context.Context, t target, d adapters.Delivery) (adapters.Receipt, error) {
	verb := "edit"
	if d.Envelope.Kind == envelope.KindDelete {
		verb = "delete"
	}
	first, err := strconv.ParseInt(d.Target, 10, 64)
	if err != nil || first <= 0 {
		return adapters.Receipt{}, fmt.Errorf("github: %s: %w: target %q is not a comment id", verb, adapters.ErrPermanent, d.Target)
	}
	var texts []string
	if verb == "edit" {
		if strings.TrimSpace(d.Envelope.Text) == "" {
			return adapters.Receipt{}, fmt.Errorf("github: edit: %w: empty text", adapters.ErrPermanent)
		}
		if !validDeliveryID(d.ID) {
			return adapters.Receipt{}, fmt.Errorf("github: edit: %w: delivery id %q cannot go in a marker", adapters.ErrPermanent, d.ID)
		}
		if texts = split(d.Envelope.Text, a.cfg.MaxChars-markerRoom); len(texts) == 0 {
			return adapters.Receipt{}, fmt.Errorf("github: edit: %w: nothing to post", adapters.ErrPermanent)
		}
	}
	token, cred, err := a.tokenFor(ctx, t.repo())
	if err != nil {
		return adapters.Receipt{}, err
	}
	if wait := a.gate.wait(cred); wait > 0 {
		return adapters.Receipt{}, &adapters.BackOff{Wait: wait, Err: fmt.Errorf("github: %s is rate-limited", cred)}
	}
	ops := &commentOps{a: a, gh: a.client(token), cred: cred, t: t}
	m, err := a.message(ctx, ops, t, d, first)
	if err != nil {
		return adapters.Receipt{}, fmt.Errorf("github: %s comment %s on %s: %w", verb, d.Target, d.To.Ref, err)
	}
	var bodies func(string) []string
	if verb == "edit" {
		bodies = func(delivery string) []string {
			out := make([]string, len(texts))
			for i, p := range texts {
				out[i] = p + "\n\n" + marker(delivery, i+1, len(texts))
			}
			return out
		}
	}
	if err := a.book.Change(ctx, &m, bodies, ops, a.log); err != nil {
		return adapters.Receipt{}, fmt.Errorf("github: %s comment %s on %s: %w", verb, d.Target, d.To.Ref, err)
	}
	return adapters.Receipt{ChannelID: d.Target}, nil
}

// message returns the reply whose first comment is first: from the book,
// else recovered from GitHub (see change). A reply without a readable
// marker is taken as one comment, whose next body names d's delivery.
func (a *Adapter) message(ctx context.Context, ops *commentOps, t target, d adapters.Delivery, first int64) (msgparts.Message, error) {
	m, ok, err := a.book.Get(ctx, d.To.Ref, d.Target)
	if err != nil {
		return msgparts.Message{}, err
	}
	if ok {
		return m, nil
	}
	body, created, err := ops.get(ctx, first)
	if err != nil {
		return msgparts.Message{}, err
	}
	m = msgparts.Message{Ref: d.To.Ref, Delivery: d.ID, Parts: []msgparts.Part{{ID: d.Target, Sum: msgparts.Sum(body)}}}
	did, part, of, ok := markerOf(body)
	if !ok || part != 1 {
		return m, nil
	}
	m.Delivery = did
	if of == 1 {
		return m, nil
	}
	found, err := a.markedComments(ctx, ops.gh, ops.cred, t, did, created.Add(-time.Minute), 10000)
	if err != nil {
		return msgparts.Message{}, fmt.Errorf("look for the parts: %w", err)
	}
	for i := 2; found[i].id != 0; i++ {
		m.Parts = append(m.Parts, msgparts.Part{ID: strconv.FormatInt(found[i].id, 10), Sum: msgparts.Sum(found[i].body)})
	}
	a.log.Info("recovered the parts of a reply from GitHub", "comment", d.Target, "parts", len(m.Parts))
	return m, nil
}

// commentOps are the comment calls in one conversation, with one
// credential (msgparts.Ops).
type commentOps struct {
	a    *Adapter
	gh   *github.Client
	cred string
	t    target
}

var _ msgparts.Ops = (*commentOps)(nil)

// gone classifies the error of a call on an existing comment: 404 and 410
// wrap adapters.ErrGone, the rest as classify says.
func (o *commentOps) gone(resp *github.Response, err error) error {
	if code := statusOf(resp); code == http.StatusNotFound || code == http.StatusGone {
		return fmt.Errorf("%w: %v", adapters.ErrGone, err)
	}
	return o.a.classify(o.cred, resp, err)
}

func parseID(id string) (int64, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: comment id %q", adapters.ErrPermanent, id)
	}
	return n, nil
}

// get reads comment id's body and creation time.
func (o *commentOps) get(ctx context.Context, id int64) (string, time.Time, error) {
	var body string
	var created time.Time
	var resp *github.Response
	var err error
	if o.t.thread != 0 {
		var c *github.PullRequestComment
		c, resp, err = o.gh.PullRequests.GetComment(ctx, o.t.owner, o.t.name, id)
		body, created = c.GetBody(), c.GetCreatedAt().Time
	} else {
		var c *github.IssueComment
		c, resp, err = o.gh.Issues.GetComment(ctx, o.t.owner, o.t.name, id)
		body, created = c.GetBody(), c.GetCreatedAt().Time
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("read comment %d: %w", id, o.gone(resp, err))
	}
	return body, created, nil
}

// Edit replaces comment id's body.
func (o *commentOps) Edit(ctx context.Context, id, body string) error {
	n, err := parseID(id)
	if err != nil {
		return err
	}
	var resp *github.Response
	if o.t.thread != 0 {
		_, resp, err = o.gh.PullRequests.EditComment(ctx, o.t.owner, o.t.name, n, &github.PullRequestComment{Body: &body})
	} else {
		_, resp, err = o.gh.Issues.EditComment(ctx, o.t.owner, o.t.name, n, &github.IssueComment{Body: &body})
	}
	return o.done("edit", resp, err)
}

// done counts a change's outcome and returns its error, classified.
func (o *commentOps) done(op string, resp *github.Response, err error) error {
	if err != nil {
		err = o.gone(resp, err)
	}
	o.a.metrics.changes.WithLabelValues(op, msgparts.Result(err)).Inc()
	return err
}

// Post adds a comment after the others (in the review thread, if any).
func (o *commentOps) Post(ctx context.Context, body string) (string, error) {
	var id int64
	var resp *github.Response
	var err error
	if o.t.thread != 0 {
		var c *github.PullRequestComment
		c, resp, err = o.gh.PullRequests.CreateCommentInReplyTo(ctx, o.t.owner, o.t.name, o.t.number, body, o.t.thread)
		id = c.GetID()
	} else {
		var c *github.IssueComment
		c, resp, err = o.gh.Issues.CreateComment(ctx, o.t.owner, o.t.name, o.t.number, &github.IssueComment{Body: &body})
		id = c.GetID()
	}
	if err == nil && id == 0 {
		err = errors.New("the created comment has no id")
	}
	if err != nil {
		err = o.a.classify(o.cred, resp, err)
		o.a.metrics.posts.WithLabelValues(hook.PostResult(err)).Inc()
		return "", err
	}
	o.a.metrics.posts.WithLabelValues("ok").Inc()
	return strconv.FormatInt(id, 10), nil
}

// Delete deletes comment id.
func (o *commentOps) Delete(ctx context.Context, id string) error {
	n, err := parseID(id)
	if err != nil {
		return err
	}
	var resp *github.Response
	if o.t.thread != 0 {
		resp, err = o.gh.PullRequests.DeleteComment(ctx, o.t.owner, o.t.name, n)
	} else {
		resp, err = o.gh.Issues.DeleteComment(ctx, o.t.owner, o.t.name, n)
	}
	return o.done("delete", resp, err)
}
