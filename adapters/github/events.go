package github

import (
	"context"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"

	"github.com/google/go-github/v62/github"

	"github.com/switchboardhq/switchboard/adapters/internal/hook"
)

// Event outcomes, the values of the outcome label of
// switchboard_github_events_total.
const (
	outcomeIngested  = hook.Ingested  // stored in a session
	outcomeDuplicate = hook.Duplicate // already stored (a redelivery)
	outcomeDropped   = hook.Dropped   // the router matched no session
	outcomeOwn       = "own"          // the gateway's own comment, never ingested
	outcomeBot       = "bot"          // from another bot, dropped (allow_bots is off)
	outcomeIgnored   = "ignored"      // not an event or action the adapter handles
	outcomeError     = "error"        // refused or failed
)

// The webhook events the adapter handles.
const (
	eventPing          = "ping"
	eventIssueComment  = "issue_comment"
	eventReviewComment = "pull_request_review_comment"
	eventReview        = "pull_request_review"
	eventIssues        = "issues"
	eventPullRequest   = "pull_request"
)

var handledEvents = map[string]bool{eventIssueComment: true, eventReviewComment: true, eventReview: true, eventIssues: true, eventPullRequest: true}

// eventLabel keeps the event label of the metrics to a known set.
func eventLabel(event string) string {
	if handledEvents[event] || event == eventPing {
		return event
	}
	return "other"
}

// deliveryRE is what an X-GitHub-Delivery may hold (GitHub sends GUIDs).
var deliveryRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,200}$`)

// Handler serves webhooks at POST / (the gateway mounts it at
// /hooks/github/; "" is accepted too). Each request is verified
// (X-Hub-Signature-256 over the raw body, before any parsing), the event is
// turned into an envelope and ingested, and only then answered: a 2xx means
// the message is stored, or that it was not one to store (ping, other events
// and actions, the gateway's own comments). An ingest failure answers 500
// and an unknown bot identity 503; GitHub does not redeliver on its own. The
// envelope id is derived from the signed payload only (see commentKey), so
// a redelivery, or the same signed body replayed under any
// X-GitHub-Delivery, is deduplicated; the delivery id is only logged.
func (a *Adapter) Handler() http.Handler { return a.handler }

func (a *Adapter) newHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "" && r.URL.Path != "/" {
			hook.Error(w, http.StatusNotFound, "github: no such webhook; GitHub posts to /hooks/github")
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			hook.Error(w, http.StatusMethodNotAllowed, "github: use POST")
			return
		}
		a.serveWebhook(w, r)
	})
}

func (a *Adapter) serveWebhook(w http.ResponseWriter, r *http.Request) {
	refuse := func(err error) {
		reason := "mismatch"
		if se, ok := isSignatureError(err); ok {
			reason = se.Reason
		}
		a.metrics.rejected.WithLabelValues(reason).Inc()
		a.log.Warn("refused a webhook", "reason", reason, "err", err, "remote", r.RemoteAddr,
			"event", r.Header.Get("X-GitHub-Event"), "delivery", r.Header.Get("X-GitHub-Delivery"))
		hook.Error(w, http.StatusUnauthorized, "github: invalid webhook signature")
	}
	// What the headers alone show to be unauthentic is refused before the
	// body is read: only a mismatch depends on it.
	if err := VerifySignature(a.secret, r.Header, nil); err != nil {
		if se, ok := isSignatureError(err); !ok || se.Reason != "mismatch" {
			refuse(err)
			return
		}
	}
	body, ok := hook.ReadBody(w, r, a.cfg.MaxBody, "github", a.metrics.rejected)
	if !ok {
		return
	}
	if err := VerifySignature(a.secret, r.Header, body); err != nil {
		refuse(err)
		return
	}
	payload := body
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/x-www-form-urlencoded" {
		form, err := url.ParseQuery(string(body))
		if err != nil || form.Get("payload") == "" {
			hook.Error(w, http.StatusBadRequest, "github: form-encoded webhook without a payload field")
			return
		}
		payload = []byte(form.Get("payload"))
	}
	msg, err := a.process(r.Context(), r.Header.Get("X-GitHub-Event"), r.Header.Get("X-GitHub-Delivery"), payload)
	if err != nil {
		code, text := hook.Code(err), "github: the event was not stored; redeliver it"
		if code != http.StatusInternalServerError {
			text = err.Error()
		}
		hook.Error(w, code, text)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, msg+"\n")
}

// process handles one authentic webhook and returns once any message in it
// is stored (or not to be stored), with a short answer for GitHub's
// delivery log. An error means the event was not handled (with a
// *hook.StatusError: 400 for a malformed request, 503 while the bot
// identity is unknown, 500 when ingesting failed).
func (a *Adapter) process(ctx context.Context, event, delivery string, payload []byte) (answer string, err error) {
	outcome := outcomeError
	defer func() { a.metrics.events.WithLabelValues(eventLabel(event), outcome).Inc() }()
	switch {
	case event == "":
		return "", hook.Errorf(http.StatusBadRequest, "github: no X-GitHub-Event header")
	case event == eventPing:
		outcome = outcomeIgnored
		return "pong", nil
	case !handledEvents[event]:
		outcome = outcomeIgnored
		return "ignored: event " + event + " is not handled", nil
	case !deliveryRE.MatchString(delivery):
		return "", hook.Errorf(http.StatusBadRequest, "github: missing or malformed X-GitHub-Delivery header")
	}
	parsed, err := github.ParseWebHook(event, payload)
	if err != nil {
		return "", hook.Errorf(http.StatusBadRequest, "github: %s payload: %w", event, err)
	}
	it, err := a.normalize(parsed)
	if err != nil {
		return "", hook.Errorf(http.StatusBadRequest, "github: %s payload: %w", event, err)
	}
	if it == nil {
		outcome = outcomeIgnored
		return "ignored", nil
	}
	a.learnInstallation(it.repo, it.installation)
	lctx, cancel := context.WithTimeout(ctx, a.cfg.LookupTimeout.D())
	defer cancel()
	id, err := a.identity(lctx)
	if err != nil {
		a.log.Error("bot identity unknown; refusing the webhook", "delivery", delivery, "err", err)
		return "", hook.Errorf(http.StatusServiceUnavailable, "github: bot identity unknown: %w", err)
	}
	in, why := a.build(lctx, it, id, payload)
	if in == nil {
		outcome = why
		a.log.Debug("event not ingested", "event", event, "delivery", delivery, "outcome", why)
		return why, nil
	}
	// A catch-up working through this repository ingests older messages;
	// this one waits (bounded) until it has passed, so each conversation
	// keeps its order.
	if waited, passed := a.progress.wait(ctx, it.repo, it.ts, a.hold); !passed {
		a.log.Warn("a catch-up of the repository is still running; ingesting without waiting longer, ahead of older messages it may still bring",
			"repo", it.repo, "delivery", delivery, "waited", waited)
	}
	out, err := a.ingress.Ingest(ctx, *in)
	if err != nil {
		a.log.Error("ingest failed; redeliver the webhook", "event", event, "delivery", delivery, "err", err)
		return "", hook.Errorf(http.StatusInternalServerError, "github: ingest: %w", err)
	}
	a.seen(ctx, it)
	outcome = hook.Outcome(out)
	a.log.Debug("event handled", "event", event, "delivery", delivery, "id", in.Envelope.ID, "outcome", outcome)
	return outcome, nil
}
