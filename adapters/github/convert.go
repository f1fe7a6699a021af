package github

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-github/v62/github"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/internal/links"
	"github.com/switchboardhq/switchboard/envelope"
)

// item is a handled webhook event reduced to what the mapping needs, the
// same for every event type.
type item struct {
	kind         envelope.Kind
	repo         string // "owner/name"
	number       int    // issue or pull request number
	isPR         bool
	thread       int64 // review thread's first comment (0: not a review comment)
	title        string
	body         string // the comment, review or issue body
	withTitle    bool   // the text is title + body (issue and pull request events)
	sender       *github.User
	author       *github.User // of the comment or review (nil for issue and pull request events, whose actor is the sender)
	commentID    int64
	appID        int64 // performed_via_github_app.id of the event (see build for comments)
	installation int64
	ts           time.Time
	head         *prHead // from the payload; nil when it has none
	refs         envelope.Refs
	changedFrom  *string // edits: the previous body, when GitHub says
	trigger      string  // set by a label or assignment event
	labels       []string
	assignees    []string
	assignee     string // assigned events: who was assigned
	// seenAt is, for a comment, its updated_at and, for a review, its
	// submitted_at: what the repository's catch-up mark advances to once it
	// is handled (zero for issue and pull request events, which a catch-up
	// does not fetch).
	seenAt time.Time
	// key identifies the event from signed payload fields only (see
	// commentKey); the envelope id is "github:" + key.
	key string
}

// normalize reduces a parsed event to an item, or returns nil for an action
// the adapter does not handle. It does no I/O.
func (a *Adapter) normalize(parsed any) (*item, error) {
	switch e := parsed.(type) {
	case *github.IssueCommentEvent:
		return a.issueComment(e)
	case *github.PullRequestReviewCommentEvent:
		return a.reviewComment(e)
	case *github.PullRequestReviewEvent:
		return reviewSubmitted(e)
	case *github.IssuesEvent:
		return a.issueEvent(e)
	case *github.PullRequestEvent:
		return a.pullRequestEvent(e)
	}
	return nil, nil
}

// commentKind maps a comment action to an envelope kind ("" to ignore).
func commentKind(action string) envelope.Kind {
	switch action {
	case "created":
		return envelope.KindMessage
	case "edited":
		return envelope.KindEdit
	case "deleted":
		return envelope.KindDelete
	}
	return ""
}

var errIncomplete = errors.New("missing repository, issue, pull request, comment or sender")

// appMarks reads performed_via_github_app.id from a payload's comment,
// which go-github's comment types do not carry. It costs a second parse of
// the payload, so build calls it only for an App.
func appMarks(raw []byte) int64 {
	var p struct {
		Comment struct {
			App *struct {
				ID int64 `json:"id"`
			} `json:"performed_via_github_app"`
		} `json:"comment"`
	}
	if json.Unmarshal(raw, &p) != nil || p.Comment.App == nil {
		return 0
	}
	return p.Comment.App.ID
}

func (a *Adapter) issueComment(e *github.IssueCommentEvent) (*item, error) {
	kind := commentKind(e.GetAction())
	if kind == "" {
		return nil, nil
	}
	it, err := a.issueCommentItem(kind, e.Repo.GetFullName(), e.Issue, e.Comment, e.Sender, e.GetInstallation().GetID())
	if err != nil {
		return nil, err
	}
	if e.Changes != nil && e.Changes.Body != nil && e.Changes.Body.From != nil {
		it.changedFrom = e.Changes.Body.From
	}
	return it, nil
}

// issueCommentItem maps an action of kind on comment c of issue (or pull
// request) iss in repo, performed by sender, to an item. It is the one
// mapping of an issue comment: the issue_comment webhook uses it, and so
// does CatchUp for a comment it fetched (with the comment's author as the
// sender). It does no I/O.
func (a *Adapter) issueCommentItem(kind envelope.Kind, repo string, iss *github.Issue, c *github.IssueComment, sender *github.User, installation int64) (*item, error) {
	if c == nil || iss == nil || repo == "" || sender == nil || iss.GetNumber() <= 0 || c.GetID() <= 0 {
		return nil, errIncomplete
	}
	return &item{
		kind: kind, repo: repo, number: iss.GetNumber(), isPR: iss.IsPullRequest(),
		body: c.GetBody(), sender: sender, author: c.User, commentID: c.GetID(),
		installation: installation,
		ts:           commentTS(kind, c.CreatedAt, c.UpdatedAt, a.now()),
		seenAt:       tsOf(c.UpdatedAt),
		key:          commentKey("issue-comment", kind, c.GetID(), c.UpdatedAt, c.GetBody()),
	}, nil
}

func (a *Adapter) reviewComment(e *github.PullRequestReviewCommentEvent) (*item, error) {
	kind := commentKind(e.GetAction())
	if kind == "" {
		return nil, nil
	}
	it, err := a.reviewCommentItem(kind, e.Repo.GetFullName(), e.PullRequest, e.Comment, e.Sender, e.GetInstallation().GetID())
	if err != nil {
		return nil, err
	}
	if e.Changes != nil && e.Changes.Body != nil && e.Changes.Body.From != nil {
		it.changedFrom = e.Changes.Body.From
	}
	return it, nil
}

// reviewCommentItem maps an action of kind on review comment c of pull
// request pr in repo, performed by sender, to an item in the comment's
// review-thread conversation, with pr's head when pr has one. Like
// issueCommentItem, it serves the pull_request_review_comment webhook and
// CatchUp alike. It does no I/O.
func (a *Adapter) reviewCommentItem(kind envelope.Kind, repo string, pr *github.PullRequest, c *github.PullRequestComment, sender *github.User, installation int64) (*item, error) {
	if c == nil || pr == nil || repo == "" || sender == nil || pr.GetNumber() <= 0 || c.GetID() <= 0 {
		return nil, errIncomplete
	}
	thread := c.GetInReplyTo()
	if thread == 0 {
		thread = c.GetID()
	}
	it := &item{
		kind: kind, repo: repo, number: pr.GetNumber(), isPR: true, thread: thread,
		body: c.GetBody(), sender: sender, author: c.User, commentID: c.GetID(),
		installation: installation,
		ts:           commentTS(kind, c.CreatedAt, c.UpdatedAt, a.now()),
		seenAt:       tsOf(c.UpdatedAt),
		key:          commentKey("review-comment", kind, c.GetID(), c.UpdatedAt, c.GetBody()),
	}
	if h, ok := headOf(pr); ok {
		it.head = &h
	}
	line := c.GetLine()
	if line == 0 {
		line = c.GetOriginalLine()
	}
	it.refs = it.refs.Set("path", c.GetPath())
	if line > 0 {
		it.refs = it.refs.Set("line", strconv.Itoa(line))
	}
	return it, nil
}

// reviewSubmitted maps a submitted review with a body; a review without one
// (an approval, or only line comments, which arrive on their own) is
// ignored.
func reviewSubmitted(e *github.PullRequestReviewEvent) (*item, error) {
	if e.GetAction() != "submitted" {
		return nil, nil
	}
	rv, pr := e.Review, e.PullRequest
	if rv == nil || pr == nil || e.Repo.GetFullName() == "" || e.Sender == nil || pr.GetNumber() <= 0 || rv.GetID() <= 0 {
		return nil, errIncomplete
	}
	if strings.TrimSpace(rv.GetBody()) == "" {
		return nil, nil
	}
	it := &item{
		kind: envelope.KindMessage, repo: e.Repo.GetFullName(), number: pr.GetNumber(), isPR: true,
		body: rv.GetBody(), sender: e.Sender, author: rv.User, installation: e.GetInstallation().GetID(),
		ts:     rv.GetSubmittedAt().Time.UTC(),
		seenAt: tsOf(rv.SubmittedAt),
		key:    "review/" + strconv.FormatInt(rv.GetID(), 10),
	}
	if h, ok := headOf(pr); ok {
		it.head = &h
	}
	it.refs = it.refs.Set("review", strconv.FormatInt(rv.GetID(), 10))
	it.refs = it.refs.Set("review_state", strings.ToLower(rv.GetState()))
	return it, nil
}

// issueEvent maps issues opened (when opened_steers), labeled with the
// trigger label, and assigned (to be checked against the identity).
func (a *Adapter) issueEvent(e *github.IssuesEvent) (*item, error) {
	iss := e.Issue
	if iss == nil || e.Repo.GetFullName() == "" || e.Sender == nil || iss.GetNumber() <= 0 {
		return nil, errIncomplete
	}
	it := &item{
		kind: envelope.KindMessage, repo: e.Repo.GetFullName(), number: iss.GetNumber(),
		title: iss.GetTitle(), body: iss.GetBody(), withTitle: true,
		sender: e.Sender, installation: e.GetInstallation().GetID(),
	}
	for _, l := range iss.Labels {
		it.labels = append(it.labels, l.GetName())
	}
	for _, u := range iss.Assignees {
		it.assignees = append(it.assignees, u.GetLogin())
	}
	return a.openedLabeledAssigned(it, e.GetAction(), e.Label, e.Assignee, iss.CreatedAt, iss.UpdatedAt)
}

// pullRequestEvent maps pull_request like issueEvent, with the head from
// the payload.
func (a *Adapter) pullRequestEvent(e *github.PullRequestEvent) (*item, error) {
	pr := e.PullRequest
	if pr == nil || e.Repo.GetFullName() == "" || e.Sender == nil || pr.GetNumber() <= 0 {
		return nil, errIncomplete
	}
	it := &item{
		kind: envelope.KindMessage, repo: e.Repo.GetFullName(), number: pr.GetNumber(), isPR: true,
		title: pr.GetTitle(), body: pr.GetBody(), withTitle: true,
		sender: e.Sender, installation: e.GetInstallation().GetID(),
		appID: e.GetPerformedViaGithubApp().GetID(),
	}
	if h, ok := headOf(pr); ok {
		it.head = &h
	}
	for _, l := range pr.Labels {
		it.labels = append(it.labels, l.GetName())
	}
	for _, u := range pr.Assignees {
		it.assignees = append(it.assignees, u.GetLogin())
	}
	return a.openedLabeledAssigned(it, e.GetAction(), e.Label, e.Assignee, pr.CreatedAt, pr.UpdatedAt)
}

func (a *Adapter) openedLabeledAssigned(it *item, action string, label *github.Label, assignee *github.User, created, updated *github.Timestamp) (*item, error) {
	what := "issue/"
	if it.isPR {
		what = "pull/"
	}
	key := what + it.repo + "#" + strconv.Itoa(it.number) + "/" + action
	switch action {
	case "opened":
		if !a.cfg.OpenedSteers {
			return nil, nil
		}
		it.ts = tsOf(created)
		it.key = key
	case "labeled":
		if a.cfg.Triggers.Label == "" || !strings.EqualFold(label.GetName(), a.cfg.Triggers.Label) {
			return nil, nil
		}
		it.trigger = triggerLabel
		it.refs = it.refs.Set("label", label.GetName())
		it.ts = tsOf(updated)
		it.key = key + "/" + label.GetName() + stamp(updated)
	case "assigned":
		if !*a.cfg.Triggers.Assignment || assignee.GetLogin() == "" {
			return nil, nil
		}
		it.assignee = assignee.GetLogin()
		it.ts = tsOf(updated)
		it.key = key + "/" + assignee.GetLogin() + stamp(updated)
	default:
		return nil, nil
	}
	if it.ts.IsZero() {
		it.ts = a.now().UTC()
	}
	return it, nil
}

// The envelope id of an event is "github:" + a key made of signed payload
// fields only, never of the unsigned X-GitHub-Delivery header: the same
// signed body sent again, under any delivery id, is the same message, and
// the session log stores it once. The keys are
//
//	issue-comment/<id>                        a comment on an issue or pull request
//	issue-comment/<id>/edit/<updated_at>      an edit of it (each edit its own)
//	issue-comment/<id>/delete                 its deletion
//	review-comment/<id>[/edit/…|/delete]      the same for review comments
//	review/<id>                               a submitted review
//	issue/<owner>/<repo>#<n>/opened           an issue opened (pull/… for a pull request)
//	issue/<owner>/<repo>#<n>/labeled/<label>@<updated_at>
//	issue/<owner>/<repo>#<n>/assigned/<login>@<updated_at>
//
// An edit without updated_at is keyed by a digest of its body instead, and
// a key too long for an envelope id by "sha256-<digest of the key>".

// commentKey is the key of a comment event of kind on a comment of the
// given type ("issue-comment", "review-comment").
func commentKey(typ string, kind envelope.Kind, id int64, updated *github.Timestamp, body string) string {
	key := typ + "/" + strconv.FormatInt(id, 10)
	switch kind {
	case envelope.KindEdit:
		if t := tsOf(updated); !t.IsZero() {
			return key + "/edit/" + t.Format(time.RFC3339Nano)
		}
		sum := sha256.Sum256([]byte(body))
		return key + "/edit/sha256-" + hex.EncodeToString(sum[:16])
	case envelope.KindDelete:
		return key + "/delete"
	}
	return key
}

// stamp is "@<t>" for a key, or "" when the payload has no t.
func stamp(t *github.Timestamp) string {
	if tt := tsOf(t); !tt.IsZero() {
		return "@" + tt.Format(time.RFC3339Nano)
	}
	return ""
}

// commentTS is the time of a comment event: its creation, its last update
// for an edit, and now for a delete (GitHub does not say when).
func commentTS(kind envelope.Kind, created, updated *github.Timestamp, now time.Time) time.Time {
	var t time.Time
	switch kind {
	case envelope.KindMessage:
		t = tsOf(created)
	case envelope.KindEdit:
		t = tsOf(updated)
	}
	if t.IsZero() {
		t = now.UTC()
	}
	return t
}

// tsOf returns t in UTC, or the zero time for nil.
func tsOf(t *github.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.Time.UTC()
}

// build maps an item to the router's Inbound, or returns nil and the
// outcome that says why not (own, bot, ignored). It may fetch the pull
// request's head within ctx.
func (a *Adapter) build(ctx context.Context, it *item, id identity, raw []byte) (*adapters.Inbound, string) {
	sender := it.sender.GetLogin()
	if sender == "" || !strings.Contains(it.repo, "/") {
		return nil, outcomeIgnored
	}
	switch {
	case hasMarker(it.body) || it.changedFrom != nil && hasMarker(*it.changedFrom):
		return nil, outcomeOwn
	case id.own(sender) || id.own(it.author.GetLogin()):
		return nil, outcomeOwn
	case id.AppID != 0 && it.appID == id.AppID:
		return nil, outcomeOwn
	case id.AppID != 0 && it.commentID != 0 && appMarks(raw) == id.AppID:
		return nil, outcomeOwn
	}
	fromBot := it.sender.GetType() == "Bot" || strings.HasSuffix(sender, "[bot]")
	if fromBot && !a.cfg.AllowBots {
		return nil, outcomeBot
	}
	if it.kind == envelope.KindEdit && it.changedFrom != nil && *it.changedFrom == it.body {
		return nil, outcomeIgnored
	}
	if it.assignee != "" {
		if !id.own(it.assignee) {
			return nil, outcomeIgnored
		}
		it.trigger = triggerAssignment
	}

	ad := a.addresser(id)
	text, trigger := ad.address(it.body)
	if it.withTitle {
		titleText, titleTrigger := ad.address(it.title)
		if trigger == "" {
			trigger = titleTrigger
		}
		text = strings.TrimSpace(titleText + "\n\n" + text)
		if trigger == "" && a.cfg.Triggers.Label != "" && containsFold(it.labels, a.cfg.Triggers.Label) {
			trigger = triggerLabel
		}
		if trigger == "" && *a.cfg.Triggers.Assignment && containsOwn(it.assignees, id) {
			trigger = triggerAssignment
		}
	}
	if it.trigger != "" {
		trigger = it.trigger
	}
	if it.kind == envelope.KindDelete {
		text, trigger = "", ""
	} else if text == "" {
		return nil, outcomeIgnored
	}

	if it.ts.IsZero() {
		it.ts = a.now().UTC()
	}
	refs := envelope.Refs{envelope.RefRepo: it.repo}
	num := strconv.Itoa(it.number)
	if it.isPR {
		refs[envelope.RefPR] = num
		head := it.head
		if head != nil {
			a.heads.Put(headKey(it.repo, it.number), *head)
		} else if h, ok := a.pullHead(ctx, it.repo, it.number); ok {
			head = &h
		}
		if head != nil {
			refs = head.addTo(refs, it.repo, it.number)
		}
	} else {
		refs[envelope.RefIssue] = num
	}
	for k, v := range it.refs {
		refs = refs.Set(k, v)
	}
	channelID := ""
	if it.commentID != 0 {
		channelID = strconv.FormatInt(it.commentID, 10)
		refs = refs.Set("comment", channelID)
		switch it.kind {
		case envelope.KindEdit:
			refs = refs.Set(envelope.RefEdits, channelID)
		case envelope.KindDelete:
			refs = refs.Set("deletes", channelID)
		}
	}
	refs = refs.Set("trigger", trigger)
	refs = links.AddTo(refs, text)

	actor := envelope.Actor{ID: Name + ":" + sender, Display: sender, Type: envelope.Human}
	if fromBot {
		actor.Type = envelope.Agent
	}
	key := it.key
	if len(Name)+1+len(key) > envelope.MaxIDLen {
		sum := sha256.Sum256([]byte(key))
		key = "sha256-" + hex.EncodeToString(sum[:])
	}
	env := envelope.Envelope{
		ID:           Name + ":" + key,
		Source:       Name,
		Kind:         it.kind,
		Actor:        actor,
		Conversation: envelope.Conversation{Source: Name, Ref: ref(it.repo, it.number, it.thread)},
		Text:         text,
		Refs:         refs,
		TS:           it.ts,
		Raw:          json.RawMessage(raw),
	}
	env.Sanitize()
	return &adapters.Inbound{Envelope: env, Facts: adapters.Facts{
		Where:     it.repo,
		Addressed: trigger != "",
		FromBot:   fromBot,
		Sender:    sender,
		ChannelID: channelID,
	}}, ""
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

func containsOwn(logins []string, id identity) bool {
	for _, l := range logins {
		if id.own(l) {
			return true
		}
	}
	return false
}
