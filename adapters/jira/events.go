package jira

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	gojira "github.com/andygrunwald/go-jira"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/internal/hook"
	"github.com/switchboardhq/switchboard/adapters/internal/links"
	"github.com/switchboardhq/switchboard/envelope"
)

// Event outcomes, the values of the outcome label of
// switchboard_jira_events_total.
const (
	outcomeIngested  = hook.Ingested  // stored in a session
	outcomeDuplicate = hook.Duplicate // already stored (a retry, or the second of a double delivery)
	outcomeDropped   = hook.Dropped   // the router matched no session
	outcomeOwn       = "own"          // the gateway's own comment, never ingested
	outcomeIgnored   = "ignored"      // not an event the adapter handles
	outcomeError     = "error"        // refused or failed; Jira retries
)

// The webhook events the adapter handles (the webhookEvent field).
const (
	eventCommentCreated = "comment_created"
	eventCommentUpdated = "comment_updated"
	eventCommentDeleted = "comment_deleted"
	eventIssueCreated   = "jira:issue_created"
	eventIssueUpdated   = "jira:issue_updated"
)

// Headers Jira Cloud sets on webhook requests.
const (
	// HeaderWebhookID identifies one delivery and stays the same across
	// Jira's retries. It is not signed: the adapter logs it, and makes no
	// envelope id of it.
	HeaderWebhookID = "X-Atlassian-Webhook-Identifier"
	// HeaderWebhookRetry counts retries.
	HeaderWebhookRetry = "X-Atlassian-Webhook-Retry"
)

// Handler serves Jira webhooks at POST / (signed with X-Hub-Signature) and
// POST /<url_token> (the gateway mounts it at /hooks/jira/). Each request is
// authenticated before parsing, turned into an envelope and ingested, and
// only then answered: a 2xx means the message is stored, or that it was not
// one to store. Ingest failures answer 500 and an unknown bot account 503,
// so that Jira retries; retries map to the same envelope id and deduplicate.
func (a *Adapter) Handler() http.Handler { return a.handler }

func (a *Adapter) newHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := strings.Trim(r.URL.Path, "/")
		if strings.Contains(token, "/") || token != "" && a.cfg.URLToken == "" {
			hook.Error(w, http.StatusNotFound, "jira: no such webhook")
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			hook.Error(w, http.StatusMethodNotAllowed, "jira: use POST")
			return
		}
		a.serveWebhook(w, r, token)
	})
}

func (a *Adapter) serveWebhook(w http.ResponseWriter, r *http.Request, token string) {
	refuse := func(err error) {
		reason := authReason(err)
		a.metrics.rejected.WithLabelValues(reason).Inc()
		a.log.Warn("refused a webhook request", "reason", reason, "err", err, "remote", r.RemoteAddr)
		if reason == "token" {
			hook.Error(w, http.StatusNotFound, "jira: no such webhook")
			return
		}
		hook.Error(w, http.StatusUnauthorized, "jira: invalid webhook signature")
	}
	// What the URL and headers alone show to be unauthentic is refused
	// before the body is read: only a signature mismatch depends on it.
	if err := a.authenticate(token, r.Header, nil); err != nil && authReason(err) != "mismatch" {
		refuse(err)
		return
	}
	body, ok := hook.ReadBody(w, r, a.cfg.MaxBody, "jira", a.metrics.rejected)
	if !ok {
		return
	}
	if err := a.authenticate(token, r.Header, body); err != nil {
		refuse(err)
		return
	}
	if n := r.Header.Get(HeaderWebhookRetry); n != "" {
		a.log.Debug("webhook is a retry", "retry", n, "identifier", r.Header.Get(HeaderWebhookID))
	}
	if err := a.process(r.Context(), r.Header.Get(HeaderWebhookID), body); err != nil {
		code, msg := hook.Code(err), "jira: the event was not stored; retry"
		if code == http.StatusBadRequest {
			msg = err.Error()
		}
		hook.Error(w, code, msg)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// process handles one authentic webhook payload and returns once any message
// in it is stored (or not to be stored). hookID is the webhook identifier
// header ("" when absent), for the logs only: it is not signed, so no
// envelope id is made of it (see issueEventID). An error means the payload was not handled and
// should be redelivered (or, with status 400, is malformed).
func (a *Adapter) process(ctx context.Context, hookID string, body []byte) error {
	var ev webhook
	if err := json.Unmarshal(body, &ev); err != nil {
		a.metrics.events.WithLabelValues("other", outcomeError).Inc()
		return hook.Errorf(http.StatusBadRequest, "jira: webhook payload: %w", err)
	}
	label := eventLabel(ev.WebhookEvent)
	outcome := outcomeError
	defer func() { a.metrics.events.WithLabelValues(label, outcome).Inc() }()
	if !ev.handled() {
		outcome = outcomeIgnored
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, a.cfg.LookupTimeout.D())
	defer cancel()
	id, err := a.identity(lctx)
	if err != nil {
		return hook.Errorf(http.StatusServiceUnavailable, "jira: bot account unknown: %w", err)
	}
	in, why, err := a.mapEvent(lctx, &ev, body, id)
	if err != nil {
		return err
	}
	if in == nil {
		outcome = why
		a.log.Debug("webhook not ingested", "event", ev.WebhookEvent, "type", ev.IssueEventTypeName, "outcome", why, "identifier", hookID)
		return nil
	}
	if err := a.awaitCatchUp(ctx, in.Facts.Where); err != nil {
		return hook.Errorf(http.StatusServiceUnavailable, "jira: waiting for the catch-up of %s: %w", in.Facts.Where, err)
	}
	out, err := a.ingest(ctx, *in, false)
	if err != nil {
		a.log.Error("ingest failed; jira will retry", "event", ev.WebhookEvent, "id", in.Envelope.ID, "identifier", hookID, "err", err)
		return hook.Errorf(http.StatusInternalServerError, "jira: ingest: %w", err)
	}
	outcome = hook.Outcome(out)
	return nil
}

// mapEvent maps one event to the router's Inbound, or returns nil and the
// outcome that says why not (own, ignored). The event is a webhook as Jira
// sent it, or one a catch-up rebuilt from the REST API's issue and comment
// (see CatchUp): both go through this one mapping, so they make the same
// envelope ids, anchors and Facts. raw is the envelope's raw payload. ctx
// bounds the lookups the mapping makes (the issue of a comment event that
// lacks it, the names of mentioned users). An error means the event could
// not be mapped now and should be tried again.
func (a *Adapter) mapEvent(ctx context.Context, ev *webhook, raw []byte, id identity) (*adapters.Inbound, string, error) {
	b, err := a.newBuilder(ctx, ev, raw, id)
	if err != nil {
		return nil, "", err
	}
	in, why := b.inbound()
	if in == nil {
		return nil, why, nil
	}
	in.Envelope.Sanitize()
	return in, "", nil
}

// ingest hands in to the router and, once the router handled it (stored it,
// found it a duplicate or dropped it by the routes), records it in the
// catch-up mark of its project (Facts.Where), at the envelope's time (a
// comment's created, an edit's updated, else the event's time). A comment a
// catch-up fetched (caughtUp) moves the mark past it; a live one only makes
// the project known and active, since live events after a gap must not
// carry the mark past what was missed. A mark that cannot be saved is
// logged at Warn and does not fail the message: the next catch-up then
// looks a little further back, which the envelope ids make harmless.
func (a *Adapter) ingest(ctx context.Context, in adapters.Inbound, caughtUp bool) (adapters.Outcome, error) {
	out, err := a.ingress.Ingest(ctx, in)
	if err != nil {
		return out, err
	}
	if a.marks != nil && in.Facts.Where != "" && !in.Envelope.TS.IsZero() {
		mark := a.marks.Seen
		if caughtUp {
			mark = a.marks.Advance
		}
		if err := mark(ctx, in.Facts.Where, in.Envelope.TS, ""); err != nil {
			a.log.Warn("could not save the catch-up mark", "project", in.Facts.Where, "id", in.Envelope.ID, "err", err)
		}
	}
	return out, nil
}

// eventLabel keeps the event label of the metrics to a small set.
func eventLabel(ev string) string {
	switch ev {
	case eventCommentCreated, eventCommentUpdated, eventCommentDeleted:
		return ev
	case eventIssueCreated, eventIssueUpdated:
		return strings.TrimPrefix(ev, "jira:")
	}
	return "other"
}

// webhook is a Jira webhook payload: the fields the adapter reads.
type webhook struct {
	Timestamp          json.Number `json:"timestamp"`
	WebhookEvent       string      `json:"webhookEvent"`
	IssueEventTypeName string      `json:"issue_event_type_name"`
	User               *user       `json:"user"`
	Issue              *issue      `json:"issue"`
	Comment            *comment    `json:"comment"`
	Changelog          *changelog  `json:"changelog"`
}

// handled reports whether the event is one the adapter may turn into a
// message; whether it does depends on the payload and the configuration.
func (ev *webhook) handled() bool {
	switch ev.WebhookEvent {
	case eventCommentCreated, eventCommentUpdated, eventCommentDeleted, eventIssueCreated:
		return true
	case eventIssueUpdated:
		return ev.Comment != nil || ev.Changelog != nil || ev.IssueEventTypeName == "issue_assigned"
	}
	return false
}

type user struct {
	Self        string `json:"self"`
	AccountID   string `json:"accountId"`
	AccountType string `json:"accountType"`
	Name        string `json:"name"`
	Key         string `json:"key"`
	DisplayName string `json:"displayName"`
}

// ref returns the id the envelope uses for u: the Cloud account id, else the
// Data Center user key, else the user name.
func (u *user) ref() string {
	switch {
	case u == nil:
		return ""
	case u.AccountID != "":
		return u.AccountID
	case u.Key != "":
		return u.Key
	}
	return u.Name
}

// app reports whether u is an app (Forge or Connect app, automation).
func (u *user) app() bool { return u != nil && u.AccountType == "app" }

type issue struct {
	ID     string                     `json:"id"`
	Self   string                     `json:"self"`
	Key    string                     `json:"key"`
	Fields map[string]json.RawMessage `json:"fields"`
}

type comment struct {
	ID           string          `json:"id"`
	Self         string          `json:"self"`
	Author       *user           `json:"author"`
	UpdateAuthor *user           `json:"updateAuthor"`
	Body         json.RawMessage `json:"body"`
	Created      string          `json:"created"`
	Updated      string          `json:"updated"`
}

type changelog struct {
	ID    string       `json:"id"`
	Items []changeItem `json:"items"`
}

type changeItem struct {
	Field   string  `json:"field"`
	FieldID string  `json:"fieldId"`
	From    *string `json:"from"`
	To      *string `json:"to"`
}

// fields are the issue fields the adapter reads.
type fields struct {
	Summary     string
	Updated     string          // when the issue last changed (a Jira timestamp)
	Description json.RawMessage // a wiki markup string or an ADF document
	Project     string
	Assignee    *user
	Reporter    *user
	// Strings are the other string-valued fields (custom fields included),
	// in key order, searched for links to GitHub.
	Strings []string
}

func readFields(raw map[string]json.RawMessage) fields {
	var f fields
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := raw[k]
		switch k {
		case "summary":
			_ = json.Unmarshal(v, &f.Summary)
		case "updated":
			_ = json.Unmarshal(v, &f.Updated)
		case "description":
			if len(v) > 0 && string(v) != "null" {
				f.Description = v
			}
		case "project":
			var p struct {
				Key string `json:"key"`
			}
			_ = json.Unmarshal(v, &p)
			f.Project = p.Key
		case "assignee":
			_ = json.Unmarshal(v, &f.Assignee)
		case "reporter":
			_ = json.Unmarshal(v, &f.Reporter)
		default:
			var s string
			if len(v) > 0 && v[0] == '"' && json.Unmarshal(v, &s) == nil && s != "" {
				f.Strings = append(f.Strings, s)
			}
		}
	}
	return f
}

// builder holds what the mapping of one webhook needs.
type builder struct {
	a      *Adapter
	ctx    context.Context // bounds lookups
	ev     *webhook
	raw    []byte
	id     identity
	site   string
	key    string // the issue key
	fields fields
}

// The issue is named by its id or key: letters, digits, "-", "_" and ".";
// anything else (an escape, a path) is not an issue this adapter looks up.
var commentIssueRe = regexp.MustCompile(`/issue/([A-Za-z0-9][A-Za-z0-9_.-]*)/comment/`)

// newBuilder prepares the mapping of ev: it finds the site and the issue
// (through the API when a comment event lacks the issue).
func (a *Adapter) newBuilder(ctx context.Context, ev *webhook, raw []byte, id identity) (*builder, error) {
	b := &builder{a: a, ctx: ctx, ev: ev, raw: raw, id: id}
	if ev.Issue != nil {
		b.key = ev.Issue.Key
		b.fields = readFields(ev.Issue.Fields)
	} else if ev.Comment != nil {
		if m := commentIssueRe.FindStringSubmatch(ev.Comment.Self); m != nil {
			key, project, err := a.issueByID(ctx, m[1])
			if err != nil && !errors.Is(err, adapters.ErrPermanent) {
				return nil, hook.Errorf(http.StatusServiceUnavailable, "jira: issue of comment %s: %w", ev.Comment.ID, err)
			}
			b.key, b.fields.Project = key, project
		}
	}
	if b.fields.Project == "" {
		b.fields.Project, _, _ = strings.Cut(b.key, "-")
	}
	b.site = a.site(ev)
	for _, u := range []*user{ev.User, b.fields.Assignee, b.fields.Reporter} {
		if u != nil {
			a.learnUser(userRef(u), u.DisplayName)
		}
	}
	if ev.Comment != nil {
		a.learnUser(userRef(ev.Comment.Author), ev.Comment.Author.display())
		a.learnUser(userRef(ev.Comment.UpdateAuthor), ev.Comment.UpdateAuthor.display())
	}
	return b, nil
}

// display returns u's display name ("" for nil).
func (u *user) display() string {
	if u == nil {
		return ""
	}
	return u.DisplayName
}

// issueByID returns the key and project of an issue.
func (a *Adapter) issueByID(ctx context.Context, id string) (key, project string, err error) {
	is, resp, err := a.api.Issue.GetWithContext(ctx, id, &gojira.GetQueryOptions{Fields: "project"})
	if err != nil {
		return "", "", a.classify(resp, err)
	}
	if is.Fields != nil && is.Fields.Project.Key != "" {
		project = is.Fields.Project.Key
	}
	return is.Key, project, nil
}

// site returns the site of an event: the configured one, else the host of
// the issue's (or comment's, or user's) self URL, else the REST API's host.
func (a *Adapter) site(ev *webhook) string {
	if a.cfg.Site != "" {
		return strings.ToLower(a.cfg.Site)
	}
	var selfs []string
	if ev.Issue != nil {
		selfs = append(selfs, ev.Issue.Self)
	}
	if ev.Comment != nil {
		selfs = append(selfs, ev.Comment.Self)
	}
	if ev.User != nil {
		selfs = append(selfs, ev.User.Self)
	}
	selfs = append(selfs, a.cfg.BaseURL)
	for _, s := range selfs {
		if u, err := url.Parse(s); err == nil && u.Host != "" {
			return strings.ToLower(u.Host)
		}
	}
	return "jira"
}

// inbound maps the webhook to the router's Inbound, or returns nil and the
// outcome that says why not (own, ignored).
func (b *builder) inbound() (*adapters.Inbound, string) {
	if b.key == "" {
		return nil, outcomeIgnored
	}
	ev := b.ev
	switch ev.WebhookEvent {
	case eventCommentCreated:
		return b.comment(envelope.KindMessage)
	case eventCommentUpdated:
		return b.comment(envelope.KindEdit)
	case eventCommentDeleted:
		return b.comment(envelope.KindDelete)
	case eventIssueCreated:
		if !b.a.cfg.DescriptionSteers && !b.id.is(b.fields.Assignee) {
			return nil, outcomeIgnored
		}
		return b.issueEvent("issue_created")
	case eventIssueUpdated:
		if ev.Comment != nil {
			switch ev.IssueEventTypeName {
			case "issue_comment_edited":
				return b.comment(envelope.KindEdit)
			case "issue_comment_deleted":
				return b.comment(envelope.KindDelete)
			}
			return b.comment(envelope.KindMessage)
		}
		if b.assignedToBot() {
			return b.issueEvent("issue_assigned")
		}
	}
	return nil, outcomeIgnored
}

// assignedToBot reports whether this update assigned the issue to the bot:
// a changelog item moving the assignee to the bot's account, or, without a
// changelog, an issue_assigned event whose assignee is the bot.
func (b *builder) assignedToBot() bool {
	if cl := b.ev.Changelog; cl != nil {
		for _, it := range cl.Items {
			if it.FieldID != "assignee" && it.Field != "assignee" || it.To == nil {
				continue
			}
			to := *it.To
			return to != "" && (to == b.id.AccountID || to == b.id.Key || strings.EqualFold(to, b.id.Name))
		}
		return false
	}
	return b.ev.IssueEventTypeName == "issue_assigned" && b.id.is(b.fields.Assignee)
}

// ref returns the conversation anchor of the issue.
func (b *builder) ref() envelope.Conversation {
	return envelope.Conversation{Source: Name, Ref: b.site + "/" + b.key}
}

// commentID is the envelope id of a comment.
func (b *builder) commentID(id string) string { return Name + ":" + b.site + ":" + id }

// actor returns the envelope actor for u.
func actor(u *user) envelope.Actor {
	act := envelope.Actor{ID: Name + ":" + u.ref(), Display: u.DisplayName, Type: envelope.Human}
	if u.app() {
		act.Type = envelope.Agent
	}
	return act
}

// comment maps a comment event, arriving as comment_* or as
// jira:issue_updated with a comment, to an envelope of kind k.
func (b *builder) comment(k envelope.Kind) (*adapters.Inbound, string) {
	c := b.ev.Comment
	if c == nil || c.ID == "" {
		return nil, outcomeIgnored
	}
	author := c.Author
	if author == nil {
		author = c.UpdateAuthor
	}
	if b.id.is(c.Author) || b.id.is(c.UpdateAuthor) {
		return nil, outcomeOwn
	}
	if author == nil || author.ref() == "" {
		return nil, outcomeIgnored
	}
	if k == envelope.KindDelete {
		if bodyMarked(c.Body) {
			return nil, outcomeOwn
		}
		return b.deleted(c, author)
	}
	r := b.render(c.Body)
	if r.marked {
		return nil, outcomeOwn
	}
	if r.text == "" && k == envelope.KindMessage {
		return nil, outcomeIgnored
	}
	act := actor(author)
	env := envelope.Envelope{
		ID:           b.commentID(c.ID),
		Source:       Name,
		Kind:         k,
		Actor:        act,
		Conversation: b.ref(),
		Text:         r.text,
		Refs:         b.refs(r.text),
		TS:           b.parseTime(c.Created),
		Raw:          json.RawMessage(b.raw),
	}
	if k == envelope.KindEdit {
		editor := c.UpdateAuthor
		if editor == nil || editor.ref() == "" {
			editor = author
		}
		ts := b.parseTime(c.Updated)
		env.ID = b.commentID(c.ID) + ":edit:" + strconv.FormatInt(ts.UnixMilli(), 10)
		env.Actor = actor(editor)
		env.TS = ts
		env.Refs[envelope.RefEdits] = b.commentID(c.ID)
		author = editor
	}
	return &adapters.Inbound{Envelope: env, Facts: adapters.Facts{
		Where:     b.fields.Project,
		Addressed: r.mentioned || b.id.is(b.fields.Assignee),
		FromBot:   author.app(),
		Sender:    author.ref(),
		ChannelID: c.ID,
	}}, ""
}

// deleted maps a deleted comment to a delete of its envelope. Jira does not
// say who deleted a comment: the actor is its author.
func (b *builder) deleted(c *comment, author *user) (*adapters.Inbound, string) {
	env := envelope.Envelope{
		ID:           b.commentID(c.ID) + ":delete",
		Source:       Name,
		Kind:         envelope.KindDelete,
		Actor:        actor(author),
		Conversation: b.ref(),
		Refs:         envelope.Refs{envelope.RefIssue: b.key, "deletes": b.commentID(c.ID)},
		TS:           b.eventTime(),
		Raw:          json.RawMessage(b.raw),
	}
	return &adapters.Inbound{Envelope: env, Facts: adapters.Facts{
		Where:     b.fields.Project,
		FromBot:   author.app(),
		Sender:    author.ref(),
		ChannelID: c.ID,
	}}, ""
}

// issueEvent maps a new issue, or an issue assigned to the bot, to a
// message with the issue's key, summary and description.
func (b *builder) issueEvent(what string) (*adapters.Inbound, string) {
	who := b.ev.User
	if who == nil && what == "issue_created" {
		who = b.fields.Reporter
	}
	if who == nil || who.ref() == "" {
		return nil, outcomeIgnored
	}
	if b.id.is(who) {
		return nil, outcomeOwn
	}
	r := b.render(b.fields.Description)
	if r.marked {
		return nil, outcomeOwn
	}
	text := b.key + ": " + strings.TrimSpace(b.fields.Summary)
	if r.text != "" {
		text += "\n\n" + r.text
	}
	env := envelope.Envelope{
		ID:           b.issueEventID(what),
		Source:       Name,
		Kind:         envelope.KindMessage,
		Actor:        actor(who),
		Conversation: b.ref(),
		Text:         text,
		Refs:         b.refs(text).Set("jira_event", what),
		TS:           b.eventTime(),
		Raw:          json.RawMessage(b.raw),
	}
	return &adapters.Inbound{Envelope: env, Facts: adapters.Facts{
		Where:     b.fields.Project,
		Addressed: r.mentioned || b.id.is(b.fields.Assignee),
		FromBot:   who.app(),
		Sender:    who.ref(),
	}}, ""
}

// issueEventID is the id of an envelope for an event without a comment,
// made of fields of the (signed) payload only, never of the unsigned
// X-Atlassian-Webhook-Identifier header: the same body sent again, under any
// identifier, is the same message, and a genuinely new event has a new id.
//
//	jira:<site>:issue_created:<key>                       an issue is created once
//	jira:<site>:issue_assigned:<key>:changelog:<id>       the change that assigned it
//	jira:<site>:issue_assigned:<key>:updated:<unix ms>    without a changelog: the issue's updated
//	jira:<site>:issue_assigned:<key>:<timestamp>          else the webhook's timestamp
//	jira:<site>:issue_assigned:<key>:sha256:<digest>      else a digest of the payload
func (b *builder) issueEventID(what string) string {
	id := Name + ":" + b.site + ":" + what + ":" + b.key
	if what == "issue_created" {
		return id
	}
	if cl := b.ev.Changelog; cl != nil && cl.ID != "" {
		return id + ":changelog:" + cl.ID
	}
	if t, ok := parseJiraTime(b.fields.Updated); ok {
		return id + ":updated:" + strconv.FormatInt(t.UnixMilli(), 10)
	}
	if ts := b.ev.Timestamp.String(); ts != "" {
		return id + ":" + ts
	}
	sum := sha256.Sum256(b.raw)
	return id + ":sha256:" + hex.EncodeToString(sum[:12])
}

// refs returns the refs of a message about the issue: issue is the issue
// key; repo, pr, branch and commit come from GitHub links in the text, then
// in the summary, the description and other text fields.
func (b *builder) refs(text string) envelope.Refs {
	r := envelope.Refs{envelope.RefIssue: b.key}
	r = links.AddTo(r, text)
	r = links.AddTo(r, b.fields.Summary)
	if d := b.fields.Description; len(d) > 0 {
		if d[0] == '"' {
			var s string
			if json.Unmarshal(d, &s) == nil {
				r = links.AddTo(r, s)
			}
		} else {
			r = links.AddTo(r, string(d)) // ADF: hrefs are in attrs
		}
	}
	for _, s := range b.fields.Strings {
		r = links.AddTo(r, s)
	}
	return r
}

// eventTime is the webhook's timestamp (milliseconds), else the clock.
func (b *builder) eventTime() time.Time {
	if ms, err := b.ev.Timestamp.Int64(); err == nil && ms > 0 {
		return time.UnixMilli(ms).UTC()
	}
	return b.a.now().UTC()
}

// Jira's timestamps: "2019-01-07T16:55:51.184-0330".
var timeLayouts = []string{
	"2006-01-02T15:04:05.000-0700",
	"2006-01-02T15:04:05-0700",
	time.RFC3339Nano,
}

// parseTime reads a Jira timestamp, falling back to the event's time.
func (b *builder) parseTime(s string) time.Time {
	if t, ok := parseJiraTime(s); ok {
		return t
	}
	return b.eventTime()
}

// parseJiraTime reads a Jira timestamp, in UTC.
func parseJiraTime(s string) (time.Time, bool) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// rendered is a body turned into Markdown.
type rendered struct {
	text      string
	mentioned bool // the bot was mentioned
	marked    bool // the body carries the gateway's provenance marker
}

// bodyMarked reports whether a body (wiki markup or ADF) carries the
// provenance marker.
func bodyMarked(body json.RawMessage) bool {
	if len(body) == 0 {
		return false
	}
	switch body[0] {
	case '"':
		var s string
		return json.Unmarshal(body, &s) == nil && hasMarker(s)
	case '{':
		var doc adfNode
		return json.Unmarshal(body, &doc) == nil && hasMarker(adfPlainText(&doc))
	}
	return false
}

// botMark stands for a mention of the bot while a body is rendered. Private
// use characters are removed from bodies first, so it cannot be forged.
const botMark = "\uE000"

// render turns a comment body or description (a wiki markup string, or an
// ADF document) into Markdown with mentions resolved and a leading mention
// of the bot removed.
func (b *builder) render(body json.RawMessage) rendered {
	var r rendered
	if len(body) == 0 || string(body) == "null" {
		return r
	}
	var md string
	switch body[0] {
	case '"':
		var s string
		if err := json.Unmarshal(body, &s); err != nil {
			return r
		}
		s = strings.ReplaceAll(s, botMark, "")
		r.marked = hasMarker(s)
		names := b.names(wikiMentions(s))
		md = wikiToMarkdown(s, b.mentionFunc(names))
	case '{':
		var doc adfNode
		if err := json.Unmarshal(body, &doc); err != nil {
			return r
		}
		plain := adfPlainText(&doc)
		r.marked = hasMarker(plain)
		names := b.names(adfMentions(&doc))
		md = adfToMarkdown(&doc, b.mentionFunc(names)) // drops botMark from text nodes
	default:
		return r
	}
	r.mentioned = strings.Contains(md, botMark)
	if rest, ok := strings.CutPrefix(strings.TrimLeft(md, " \t\n"), botMark); ok {
		md = strings.TrimLeft(rest, " \t\n:,")
	}
	r.text = strings.TrimSpace(strings.ReplaceAll(md, botMark, "@"+b.botName()))
	return r
}

// botName is how a mention of the bot reads.
func (b *builder) botName() string {
	switch {
	case b.id.DisplayName != "":
		return b.id.DisplayName
	case b.id.Name != "":
		return b.id.Name
	}
	return b.id.AccountID
}

// isBot reports whether a mention reference names the bot.
func (b *builder) isBot(ref string) bool {
	if id, ok := strings.CutPrefix(ref, accountPrefix); ok {
		return b.id.AccountID != "" && id == b.id.AccountID
	}
	return ref != "" && (strings.EqualFold(ref, b.id.Name) || ref == b.id.Key)
}

// names resolves the mentioned users (not the bot) concurrently, within
// b.ctx.
func (b *builder) names(refs []string) map[string]string {
	var todo []string
	for _, ref := range refs {
		if ref != "" && !b.isBot(ref) {
			todo = append(todo, ref)
		}
	}
	if len(todo) > maxLookups {
		todo = todo[:maxLookups]
	}
	return b.a.users.GetAll(b.ctx, todo, b.a.fetchUserName)
}

// mentionFunc returns how the renderers write a mention: botMark for the
// bot, else "@Display Name", else the hint the body carries (ADF's
// attrs.text), else "@" and the account id or user name.
func (b *builder) mentionFunc(names map[string]string) func(ref, hint string) string {
	return func(ref, hint string) string {
		if b.isBot(ref) {
			return botMark
		}
		if n := names[ref]; n != "" {
			return "@" + n
		}
		if hint = strings.TrimPrefix(strings.TrimSpace(hint), "@"); hint != "" {
			return "@" + hint
		}
		return "@" + strings.TrimPrefix(ref, accountPrefix)
	}
}
