package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack/slackevents"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/internal/hook"
	"github.com/switchboardhq/switchboard/adapters/internal/links"
	"github.com/switchboardhq/switchboard/envelope"
)

// Event outcomes, the values of the outcome label of
// switchboard_slack_events_total.
const (
	outcomeIngested  = hook.Ingested  // stored in a session
	outcomeDuplicate = hook.Duplicate // already stored (a retry)
	outcomeDropped   = hook.Dropped   // the router matched no session
	outcomeOwn       = "own"          // the gateway's own message, never ingested
	outcomeIgnored   = "ignored"      // not a message the adapter handles
	outcomeError     = "error"        // refused or failed; Slack retries
)

// The inner event types the adapter handles.
const (
	typeMessage    = string(slackevents.Message)
	typeAppMention = string(slackevents.AppMention)
)

// maxLookups bounds the users.info lookups made for one event.
const maxLookups = 16

// Handler serves the Events API at POST /events (the gateway mounts it at
// /hooks/slack/). Each request is verified (signature and timestamp, before
// any parsing), the event is turned into an envelope and ingested, and only
// then answered: a 2xx means the message is stored, or that it was not one
// to store. Ingest failures answer 500 and missing identity 503, so that
// Slack retries; retries carry the same payload and deduplicate. Without a
// signing secret (Socket Mode only) every request gets 404.
func (a *Adapter) Handler() http.Handler { return a.handler }

// newHandler routes POST /events (or "events": the gateway may strip the
// mount point with or without its trailing slash).
func (a *Adapter) newHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.TrimPrefix(r.URL.Path, "/") != "events" {
			hook.Error(w, http.StatusNotFound, "slack: no such webhook; the Events API posts to /hooks/slack/events")
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			hook.Error(w, http.StatusMethodNotAllowed, "slack: use POST")
			return
		}
		a.serveEvents(w, r)
	})
}

func (a *Adapter) serveEvents(w http.ResponseWriter, r *http.Request) {
	if a.cfg.SigningSecret == "" {
		hook.Error(w, http.StatusNotFound, "slack: the Events API over HTTP is off (no signing_secret; Socket Mode is used)")
		return
	}
	refuse := func(err error) {
		reason := "mismatch"
		if se, ok := isSignatureError(err); ok {
			reason = se.Reason
		}
		a.metrics.rejected.WithLabelValues(reason).Inc()
		a.log.Warn("refused an events request", "reason", reason, "err", err, "remote", r.RemoteAddr)
		hook.Error(w, http.StatusUnauthorized, "slack: invalid request signature")
	}
	// What the headers alone show to be unauthentic (missing, malformed,
	// stale) is refused before the body is read: only a mismatch depends
	// on it.
	if err := VerifySignature([]byte(a.cfg.SigningSecret), r.Header, nil, a.now()); err != nil {
		if se, ok := isSignatureError(err); !ok || se.Reason != "mismatch" {
			refuse(err)
			return
		}
	}
	body, ok := hook.ReadBody(w, r, a.cfg.MaxBody, "slack", a.metrics.rejected)
	if !ok {
		return
	}
	if err := VerifySignature([]byte(a.cfg.SigningSecret), r.Header, body, a.now()); err != nil {
		refuse(err)
		return
	}
	if n := r.Header.Get("X-Slack-Retry-Num"); n != "" {
		a.log.Debug("events request is a retry", "retry", n, "reason", r.Header.Get("X-Slack-Retry-Reason"))
	}
	challenge, err := a.process(r.Context(), body, "http")
	if err != nil {
		code, msg := hook.Code(err), "slack: the event was not stored; retry"
		if code == http.StatusBadRequest {
			msg = err.Error()
		}
		hook.Error(w, code, msg)
		return
	}
	if challenge != "" {
		w.Header().Set("Content-Type", "application/json")
		// slackevents.ChallengeResponse has no JSON tags; Slack expects
		// the lowercase key.
		_ = json.NewEncoder(w).Encode(struct {
			Challenge string `json:"challenge"`
		}{challenge})
		return
	}
	w.WriteHeader(http.StatusOK)
}

// process handles one authentic Events API payload, from HTTP or Socket
// Mode, and returns once any message in it is stored (or not to be stored).
// It returns the challenge of a url_verification request. An error means
// the payload was not handled and should be redelivered (or, with status
// 400, is malformed).
func (a *Adapter) process(ctx context.Context, body []byte, transport string) (challenge string, err error) {
	outcome := outcomeError
	defer func() { a.metrics.events.WithLabelValues(transport, outcome).Inc() }()
	var cb slackevents.EventsAPICallbackEvent
	if err := json.Unmarshal(body, &cb); err != nil {
		return "", hook.Errorf(http.StatusBadRequest, "slack: events payload: %w", err)
	}
	switch cb.Type {
	case slackevents.URLVerification:
		var v slackevents.EventsAPIURLVerificationEvent
		if err := json.Unmarshal(body, &v); err != nil || v.Challenge == "" {
			return "", hook.Errorf(http.StatusBadRequest, "slack: url_verification without a challenge")
		}
		outcome = outcomeIgnored
		return v.Challenge, nil
	case slackevents.AppRateLimited:
		outcome = outcomeIgnored
		a.log.Warn("slack is rate-limiting this app's events; some were not delivered", "team", cb.TeamID)
		return "", nil
	case slackevents.CallbackEvent:
	default:
		outcome = outcomeIgnored
		return "", nil
	}
	if cb.InnerEvent == nil {
		return "", hook.Errorf(http.StatusBadRequest, "slack: event_callback without an event")
	}
	var ev message
	if err := json.Unmarshal(*cb.InnerEvent, &ev); err != nil {
		return "", hook.Errorf(http.StatusBadRequest, "slack: event_callback %s: event: %w", cb.EventID, err)
	}
	if ev.Type != typeAppMention && ev.Type != typeMessage {
		outcome = outcomeIgnored
		return "", nil
	}
	lctx, cancel := context.WithTimeout(ctx, a.cfg.LookupTimeout.D())
	defer cancel()
	id, err := a.identity(lctx)
	if err != nil {
		return "", hook.Errorf(http.StatusServiceUnavailable, "slack: bot identity unknown: %w", err)
	}
	in, why := a.inbound(lctx, &cb, &ev, body, id)
	if in == nil {
		outcome = why
		a.log.Debug("event not ingested", "event", cb.EventID, "type", ev.Type, "subtype", ev.Subtype, "outcome", why)
		return "", nil
	}
	// A catch-up of the same conversation stores what it fetched first, so
	// that the conversation's order holds (see CatchUp).
	unlock, err := a.convs.lock(ctx, in.Envelope.Conversation.Ref)
	if err != nil {
		return "", hook.Errorf(http.StatusServiceUnavailable, "slack: waiting for a catch-up of %s: %w", in.Envelope.Conversation.Ref, err)
	}
	out, err := a.ingest(ctx, in, false)
	unlock()
	if err != nil {
		a.log.Error("ingest failed; slack will retry", "event", cb.EventID, "id", in.Envelope.ID, "err", err)
		return "", hook.Errorf(http.StatusInternalServerError, "slack: ingest: %w", err)
	}
	outcome = hook.Outcome(out)
	return "", nil
}

// message is an inner event of type message or app_mention: the fields the
// adapter reads, for every subtype. slackevents.MessageEvent lacks app_id and
// folds message_changed into one shape, so the adapter decodes its own.
type message struct {
	Type            string      `json:"type"`
	Subtype         string      `json:"subtype"`
	Channel         string      `json:"channel"`
	ChannelType     string      `json:"channel_type"`
	User            string      `json:"user"`
	BotID           string      `json:"bot_id"`
	AppID           string      `json:"app_id"`
	Username        string      `json:"username"`
	BotProfile      *botProfile `json:"bot_profile"`
	Text            string      `json:"text"`
	TS              string      `json:"ts"`
	ThreadTS        string      `json:"thread_ts"`
	EventTS         string      `json:"event_ts"`
	DeletedTS       string      `json:"deleted_ts"`
	Message         *message    `json:"message"`
	PreviousMessage *message    `json:"previous_message"`
	Files           []file      `json:"files"`
	// ReplyCount is on a thread's root in conversations.history: how many
	// replies it has.
	ReplyCount int `json:"reply_count"`
}

type botProfile struct {
	AppID string `json:"app_id"`
	Name  string `json:"name"`
}

type file struct {
	Name  string `json:"name"`
	Title string `json:"title"`
}

// postSubtypes are the message subtypes that carry a new message.
var postSubtypes = map[string]bool{"": true, "thread_broadcast": true, "file_share": true, "me_message": true, "bot_message": true}

func (m *message) fromBot() bool {
	return m.BotID != "" || m.Subtype == "bot_message" || m.BotProfile != nil
}

// own reports whether m was written by the gateway: by its bot (bot id), its
// bot user, or its app (the event's api_app_id).
func (m *message) own(id identity, appID string) bool {
	switch {
	case id.BotID != "" && m.BotID == id.BotID:
		return true
	case id.UserID != "" && m.User == id.UserID:
		return true
	case appID != "" && (m.AppID == appID || m.BotProfile != nil && m.BotProfile.AppID == appID):
		return true
	}
	return false
}

// author returns the id that wrote m: the user, else the bot.
func (m *message) author() string {
	if m.User != "" {
		return m.User
	}
	return m.BotID
}

// direct reports whether a message in channel is a one-to-one DM.
func direct(channelType, channel string) bool {
	return channelType == "im" || channelType == "" && strings.HasPrefix(channel, "D")
}

// inbound maps an event to the router's Inbound, or returns nil and the
// outcome that says why not (own, ignored). Lookups use ctx, which bounds
// them.
func (a *Adapter) inbound(ctx context.Context, cb *slackevents.EventsAPICallbackEvent, ev *message, raw []byte, id identity) (*adapters.Inbound, string) {
	team := cb.TeamID
	if team == "" {
		team = id.TeamID
	}
	if cb.APIAppID != "" {
		a.noteAppID(cb.APIAppID)
	}
	return a.mapMessage(ctx, origin{team: team, appID: cb.APIAppID}, ev, raw, id)
}

// origin is where a message object came from: the workspace, and the app
// that received it (the event's api_app_id; "" when unknown, as for the
// objects conversations.history and conversations.replies return).
type origin struct {
	team  string
	appID string
}

// mapMessage maps one Slack message object to the router's Inbound, or
// returns nil and the outcome that says why not (own, ignored). It is the
// one mapping of both paths: the live one (the inner event of an Events API
// callback, raw the callback) and the catch-up (a message object of
// conversations.history or conversations.replies with its Channel filled
// in, raw the object as fetched), so that both give the same envelope id,
// conversation, text and Facts. Lookups use ctx, which bounds them.
func (a *Adapter) mapMessage(ctx context.Context, from origin, ev *message, raw []byte, id identity) (*adapters.Inbound, string) {
	if ev.Channel == "" || from.team == "" {
		return nil, outcomeIgnored
	}
	b := builder{a: a, ctx: ctx, team: from.team, channel: ev.Channel, id: id, appID: from.appID, raw: raw,
		direct: direct(ev.ChannelType, ev.Channel)}
	switch {
	case ev.Type == typeMessage && ev.Subtype == "message_changed":
		return b.edit(ev)
	case ev.Type == typeMessage && ev.Subtype == "message_deleted":
		return b.deleted(ev)
	case ev.Type == typeMessage && !postSubtypes[ev.Subtype]:
		return nil, outcomeIgnored // joins, topic changes, message_replied, …
	}
	return b.post(ev)
}

// builder holds what the mapping of one event needs.
type builder struct {
	a       *Adapter
	ctx     context.Context
	team    string
	channel string
	id      identity
	appID   string
	raw     []byte
	direct  bool
}

// ref returns the conversation anchor of a thread rooted at root.
func (b *builder) ref(root string) envelope.Conversation {
	return envelope.Conversation{Source: Name, Ref: b.team + "/" + b.channel + "/" + root}
}

// msgID is the envelope id of the message posted at ts.
func (b *builder) msgID(ts string) string { return Name + ":" + b.team + "/" + b.channel + "/" + ts }

// actor returns the author of m with its display name.
func (b *builder) actor(m *message, names map[string]string) envelope.Actor {
	act := envelope.Actor{ID: Name + ":" + m.author(), Type: envelope.Human, Display: names[m.User]}
	if m.fromBot() {
		act.Type = envelope.Agent
		if act.Display == "" {
			act.Display = m.Username
		}
		if act.Display == "" && m.BotProfile != nil {
			act.Display = m.BotProfile.Name
		}
	}
	return act
}

// names resolves the author of m and the users mentioned in its text,
// concurrently, within b.ctx.
func (b *builder) names(m *message) map[string]string {
	ids := mentionedUsers(m.Text)
	if m.User != "" {
		ids = append([]string{m.User}, ids...)
	}
	if len(ids) > maxLookups {
		ids = ids[:maxLookups]
	}
	return b.a.users.GetAll(b.ctx, ids, b.a.fetchUserName)
}

// text renders m's text for the envelope, without a leading mention of the
// bot; a message with only files is described by their names.
func (b *builder) text(m *message, names map[string]string) string {
	text := strings.TrimSpace(render(stripLeadingMention(m.Text, b.id.UserID), func(id string) string { return names[id] }))
	if text == "" && len(m.Files) > 0 {
		var parts []string
		for _, f := range m.Files {
			name := f.Title
			if name == "" {
				name = f.Name
			}
			parts = append(parts, "[file: "+name+"]")
		}
		text = strings.Join(parts, "\n")
	}
	return text
}

// post maps a new message (app_mention, or message without a hidden
// subtype).
func (b *builder) post(m *message) (*adapters.Inbound, string) {
	if m.own(b.id, b.appID) {
		return nil, outcomeOwn
	}
	if m.TS == "" || m.author() == "" {
		return nil, outcomeIgnored
	}
	ts, err := parseTS(m.TS)
	if err != nil {
		return nil, outcomeIgnored
	}
	names := b.names(m)
	text := b.text(m, names)
	if text == "" {
		return nil, outcomeIgnored
	}
	root := m.ThreadTS
	if root == "" {
		root = m.TS
	}
	env := envelope.Envelope{
		ID:           b.msgID(m.TS),
		Source:       Name,
		Kind:         envelope.KindMessage,
		Actor:        b.actor(m, names),
		Conversation: b.ref(root),
		Text:         text,
		Refs:         links.Refs(text),
		TS:           ts,
		Raw:          json.RawMessage(b.raw),
	}
	return &adapters.Inbound{Envelope: env, Facts: adapters.Facts{
		Where:     b.channel,
		Addressed: m.Type == typeAppMention || b.direct || mentions(m.Text, b.id.UserID),
		Direct:    b.direct,
		FromBot:   m.fromBot(),
		Sender:    m.author(),
		ChannelID: m.TS,
	}}, ""
}

// edit maps message_changed to an edit of the original message, or to a
// delete when Slack replaced a thread root by a tombstone. Changes that
// leave the text alone (unfurls, reply counts) are ignored.
func (b *builder) edit(ev *message) (*adapters.Inbound, string) {
	m := ev.Message
	if m == nil || m.TS == "" {
		return nil, outcomeIgnored
	}
	if m.own(b.id, b.appID) {
		return nil, outcomeOwn
	}
	if m.Subtype == "tombstone" {
		return b.deleted(&message{Type: ev.Type, Subtype: "message_deleted", Channel: ev.Channel,
			ChannelType: ev.ChannelType, TS: ev.TS, DeletedTS: m.TS, PreviousMessage: ev.PreviousMessage})
	}
	if ev.PreviousMessage != nil && ev.PreviousMessage.Text == m.Text {
		return nil, outcomeIgnored
	}
	if m.author() == "" {
		return nil, outcomeIgnored
	}
	ts, err := parseTS(ev.TS)
	if err != nil {
		return nil, outcomeIgnored
	}
	names := b.names(m)
	text := b.text(m, names)
	root := m.ThreadTS
	if root == "" {
		root = m.TS
	}
	env := envelope.Envelope{
		ID:           b.msgID(m.TS) + "/edit/" + ev.TS,
		Source:       Name,
		Kind:         envelope.KindEdit,
		Actor:        b.actor(m, names),
		Conversation: b.ref(root),
		Text:         text,
		Refs:         links.Refs(text).Set(envelope.RefEdits, b.msgID(m.TS)),
		TS:           ts,
		Raw:          json.RawMessage(b.raw),
	}
	return &adapters.Inbound{Envelope: env, Facts: adapters.Facts{
		Where:     b.channel,
		Addressed: b.direct || mentions(m.Text, b.id.UserID),
		Direct:    b.direct,
		FromBot:   m.fromBot(),
		Sender:    m.author(),
		ChannelID: m.TS,
	}}, ""
}

// deleted maps message_deleted to a delete of the original message.
func (b *builder) deleted(ev *message) (*adapters.Inbound, string) {
	prev := ev.PreviousMessage
	if prev != nil && prev.own(b.id, b.appID) {
		return nil, outcomeOwn
	}
	gone := ev.DeletedTS
	if gone == "" && prev != nil {
		gone = prev.TS
	}
	if gone == "" {
		return nil, outcomeIgnored
	}
	ts, err := parseTS(ev.TS)
	if err != nil {
		return nil, outcomeIgnored
	}
	root := gone
	// Slack does not say who deleted a message: the actor is its author, or
	// Slack itself when the payload does not carry the message.
	act := envelope.Actor{ID: Name + ":" + b.team, Display: "Slack", Type: envelope.System}
	sender := ""
	fromBot := false
	if prev != nil {
		if prev.ThreadTS != "" {
			root = prev.ThreadTS
		}
		if prev.author() != "" {
			var names map[string]string
			if prev.User != "" {
				names = map[string]string{prev.User: b.a.userName(b.ctx, prev.User)}
			}
			act, sender, fromBot = b.actor(prev, names), prev.author(), prev.fromBot()
		}
	}
	env := envelope.Envelope{
		ID:           b.msgID(gone) + "/delete",
		Source:       Name,
		Kind:         envelope.KindDelete,
		Actor:        act,
		Conversation: b.ref(root),
		Refs:         envelope.Refs{"deletes": b.msgID(gone)},
		TS:           ts,
		Raw:          json.RawMessage(b.raw),
	}
	return &adapters.Inbound{Envelope: env, Facts: adapters.Facts{
		Where:     b.channel,
		Direct:    b.direct,
		FromBot:   fromBot,
		Sender:    sender,
		ChannelID: gone,
	}}, ""
}

// parseTS reads a Slack timestamp ("1700000000.000100": seconds and
// microseconds).
func parseTS(ts string) (time.Time, error) {
	secs, frac, _ := strings.Cut(ts, ".")
	s, err := strconv.ParseInt(secs, 10, 64)
	if err != nil || s < 0 {
		return time.Time{}, fmt.Errorf("slack: bad ts %q", ts)
	}
	var us int64
	if frac != "" {
		if len(frac) > 6 {
			frac = frac[:6]
		}
		frac += strings.Repeat("0", 6-len(frac))
		if us, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return time.Time{}, fmt.Errorf("slack: bad ts %q", ts)
		}
	}
	return time.Unix(s, us*1000).UTC(), nil
}

// formatTS writes t as a Slack timestamp.
func formatTS(t time.Time) string {
	return fmt.Sprintf("%d.%06d", t.Unix(), t.Nanosecond()/1000)
}
