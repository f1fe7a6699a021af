package slack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/internal/hook"
	"github.com/switchboardhq/switchboard/envelope"
)

// metadataType is the event_type of the message metadata attached to every
// posted part, so that a retry can find what an earlier attempt posted.
const metadataType = "switchboard_delivery"

// Error codes of the Web API, by how the adapter treats them.
var (
	// authErrors mean the token is bad: the delivery is dead and the adapter
	// unhealthy.
	authErrors = map[string]bool{
		"invalid_auth": true, "account_inactive": true, "token_revoked": true,
		"token_expired": true, "not_authed": true, "org_login_required": true,
		"ekm_access_denied": true, "team_access_not_granted": true,
	}
	// transientErrors are worth retrying.
	transientErrors = map[string]bool{
		"internal_error": true, "fatal_error": true, "service_unavailable": true,
		"request_timeout": true, "ratelimited": true, "rate_limited": true,
		"team_added_to_org": true,
	}
)

// Deliver posts d's text into the thread its conversation anchor names
// ("<team>/<channel>/<thread ts>", or "<team>/<channel>" for the channel
// itself), converted from Markdown to mrkdwn and split into messages of at
// most max_chars characters on paragraph boundaries, posted in order.
//
// The Receipt's ChannelID is the ts of the first message posted; the later
// parts are recognised as the gateway's own by their bot id when Slack
// echoes them. The adapter is an adapters.Editor: an edit
// (envelope.KindEdit) replaces the text of the message d.Target, a deletion
// (envelope.KindDelete) withdraws it, every part of a split message
// included, and a partial message in a thread is streamed (see edit.go and
// README.md).
//
// Errors: a 429 returns *adapters.BackOff with Slack's Retry-After; 5xx and
// network errors are plain (the outbox retries); channel_not_found,
// not_in_channel, is_archived and other request errors wrap
// adapters.ErrPermanent; invalid_auth, account_inactive, token_revoked and
// the like wrap ErrPermanent and mark the adapter unhealthy.
//
// Double posts: when an attempt fails after posting some parts, the next
// attempt posts only the rest. The adapter remembers posted parts in memory,
// and on a retry it does not remember (another process, or a restart) it
// looks for them in the thread (conversations.replies, matching the
// delivery id in the message metadata). That lookup needs the history
// scopes; without them, or when the crash fell between Slack's answer and
// the outbox recording the receipt in a thread too long to scan, a part can
// be posted twice.
func (a *Adapter) Deliver(ctx context.Context, d adapters.Delivery) (adapters.Receipt, error) {
	if d.To.Source != Name {
		return adapters.Receipt{}, fmt.Errorf("slack: deliver: %w: conversation source is %q", adapters.ErrPermanent, d.To.Source)
	}
	channel, thread, err := parseRef(d.To.Ref)
	if err != nil {
		return adapters.Receipt{}, fmt.Errorf("slack: deliver: %w: %v", adapters.ErrPermanent, err)
	}
	switch d.Envelope.Kind {
	case envelope.KindMessage, envelope.KindSystem:
	case envelope.KindEdit, envelope.KindDelete:
		if d.Target == "" {
			return adapters.Receipt{}, fmt.Errorf("slack: deliver: %w: %s without a target message", adapters.ErrPermanent, d.Envelope.Kind)
		}
		if d.Envelope.Kind == envelope.KindEdit {
			return a.edit(ctx, channel, thread, d)
		}
		return a.withdraw(ctx, channel, d)
	default:
		return adapters.Receipt{}, fmt.Errorf("slack: deliver: %w: %s envelopes are not posted", adapters.ErrPermanent, d.Envelope.Kind)
	}
	if d.Envelope.Partial() {
		if rc, handled, err := a.startStream(ctx, channel, thread, d); handled {
			return rc, err
		}
	}
	parts := split(toMrkdwn(d.Envelope.Text), a.cfg.MaxChars)
	if len(parts) == 0 {
		return adapters.Receipt{}, fmt.Errorf("slack: deliver: %w: empty text", adapters.ErrPermanent)
	}
	posted, known := a.sent.Get(d.ID)
	posted = slices.Clone(posted) // the stored slice stays as it was
	if !known && d.Attempt > 1 {
		posted = a.findPosted(ctx, channel, thread, d)
	}
	if len(posted) > len(parts) {
		posted = posted[:len(parts)]
	}
	for i := len(posted); i < len(parts); i++ {
		opts := []slack.MsgOption{
			slack.MsgOptionText(parts[i], false),
			slack.MsgOptionMetadata(slack.SlackMetadata{EventType: metadataType, EventPayload: map[string]any{
				"delivery": d.ID, "part": i + 1, "parts": len(parts),
			}}),
		}
		if thread != "" {
			opts = append(opts, slack.MsgOptionTS(thread))
		}
		_, ts, err := a.api.PostMessageContext(ctx, channel, opts...)
		if err != nil {
			a.sent.Put(d.ID, slices.Clone(posted))
			err = a.classify(err)
			a.metrics.posts.WithLabelValues(hook.PostResult(err)).Inc()
			return adapters.Receipt{}, fmt.Errorf("slack: chat.postMessage (part %d of %d): %w", i+1, len(parts), err)
		}
		a.health.Accept(credBot)
		a.metrics.posts.WithLabelValues("ok").Inc()
		posted = append(posted, ts)
	}
	a.sent.Put(d.ID, slices.Clone(posted))
	if len(posted) > 1 {
		a.saveRecord(ctx, channel, posted[0], msgRecord{Parts: slices.Clone(posted), Sums: sums(parts)})
	}
	return adapters.Receipt{ChannelID: posted[0]}, nil
}

// parseRef splits a conversation ref into its channel and thread root.
func parseRef(ref string) (channel, thread string, err error) {
	parts := strings.Split(ref, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return "", "", fmt.Errorf("conversation ref %q is not <team>/<channel>[/<thread ts>]", ref)
	}
	if len(parts) == 3 {
		if _, err := parseTS(parts[2]); err != nil {
			return "", "", fmt.Errorf("conversation ref %q: bad thread ts", ref)
		}
		thread = parts[2]
	}
	return parts[1], thread, nil
}

// findPosted looks in the thread for the parts of d that an earlier
// attempt posted, and returns their timestamps in part order (stopping at
// the first missing part). Failures are logged and give nil: the parts are
// then posted again.
func (a *Adapter) findPosted(ctx context.Context, channel, thread string, d adapters.Delivery) []string {
	if thread == "" {
		return nil // top-level posts are not scanned
	}
	// Parts were posted after the output was written.
	oldest := formatTS(d.Envelope.TS.Add(-time.Minute))
	found := map[int]string{}
	cursor := ""
	for page := 0; page < 5; page++ {
		msgs, more, next, err := a.api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{
			ChannelID: channel, Timestamp: thread, Cursor: cursor, Oldest: oldest, Limit: 200, IncludeAllMetadata: true,
		})
		if err != nil {
			a.log.Warn("could not check the thread for an earlier attempt; posting again", "delivery", d.ID, "err", a.classify(err))
			return nil
		}
		for _, m := range msgs {
			md := m.Metadata
			if md.EventType != metadataType || md.EventPayload["delivery"] != d.ID {
				continue
			}
			if n, ok := md.EventPayload["part"].(float64); ok && n >= 1 {
				found[int(n)] = m.Timestamp
			}
		}
		if !more || next == "" {
			break
		}
		cursor = next
	}
	var posted []string
	for i := 1; found[i] != ""; i++ {
		posted = append(posted, found[i])
	}
	if len(posted) > 0 {
		a.log.Info("resuming a delivery that an earlier attempt partly posted", "delivery", d.ID, "posted", len(posted))
	}
	return posted
}

// classify maps an error of a Web API call made with the bot token to the
// adapter's contract: rate limits to *adapters.BackOff, request and
// credential errors to adapters.ErrPermanent (credential errors also mark
// the adapter unhealthy), and everything else (5xx, network) to itself, to
// be retried.
func (a *Adapter) classify(err error) error {
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		return &adapters.BackOff{Wait: rl.RetryAfter, Err: err}
	}
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		switch {
		case authErrors[se.Err]:
			a.health.Reject(credBot, se.Err)
			return fmt.Errorf("%w: %s", adapters.ErrPermanent, se.Err)
		case transientErrors[se.Err]:
			return err
		default:
			return fmt.Errorf("%w: %s", adapters.ErrPermanent, se.Err)
		}
	}
	var sc slack.StatusCodeError
	if errors.As(err, &sc) {
		switch {
		case sc.Code == http.StatusTooManyRequests:
			return &adapters.BackOff{Wait: time.Minute, Err: err}
		case sc.Code >= 500 || sc.Code == http.StatusRequestTimeout:
			return err
		case sc.Code == http.StatusUnauthorized || sc.Code == http.StatusForbidden:
			a.health.Reject(credBot, sc.Status)
			return fmt.Errorf("%w: %v", adapters.ErrPermanent, err)
		case sc.Code >= 400:
			return fmt.Errorf("%w: %v", adapters.ErrPermanent, err)
		}
	}
	return err
}
