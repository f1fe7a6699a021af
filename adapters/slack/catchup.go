package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/internal/catchup"
	"github.com/switchboardhq/switchboard/envelope"
)

// Catch-up (adapters.CatchUpper): what people wrote while the gateway was
// not listening, fetched with conversations.replies (threads) and
// conversations.history (channels) and fed through the live path's mapping.
//
// Scopes, kept in the catch-up marks (adapters/internal/catchup):
//   - a thread, keyed by its conversation ref "<team>/<channel>/<root ts>",
//     with the ts of the newest message stored from it as its cursor;
//   - a channel, keyed "channel:<team>/<channel>", with the ts of the newest
//     top-level message stored from it.
//
// Both live and caught-up messages mark the thread they belong to and, when
// they are top-level, their channel.

// Bounds of one catch-up.
const (
	// catchUpPageSize is the limit asked of each listing call (Slack
	// advises at most 200).
	catchUpPageSize = 200
	// catchUpMaxPages caps the pages read per scope; what is past it waits
	// for the next catch-up (threads) or is not fetched (channels).
	catchUpMaxPages = 100
	// maxRateLimitWaits bounds the 429s waited out for one call in a row.
	maxRateLimitWaits = 10
	// maxRetryAfter bounds one wait on a 429.
	maxRetryAfter = 2 * time.Minute
	// maxPageBytes caps one listing response kept for the messages' raw
	// JSON.
	maxPageBytes = 32 << 20
	// catchUpAuthTimeout bounds auth.test when a catch-up needs the bot's
	// identity before Run learned it.
	catchUpAuthTimeout = 15 * time.Second
)

// channelScopePrefix starts the key of a channel's scope.
const channelScopePrefix = "channel:"

// goneErrors are the answers that say a scope can no longer be read (the
// thread or channel was deleted or archived, the bot was removed): the
// scope is skipped with a warning, as there is nothing to catch up there.
var goneErrors = map[string]bool{
	"thread_not_found": true, "channel_not_found": true, "not_in_channel": true, "is_archived": true,
}

// CatchUp fetches what was written while the gateway was not listening and
// feeds it through the Ingress as the live events would have been: the
// same mapping (envelope ids "slack:<team>/<channel>/<ts>", conversation
// refs, text, Facts), the same own-message checks (by bot id and bot user;
// by app id once a live event named it), raw the message object as the API
// returned it. What was seen live comes back Duplicate.
//
// It looks at every scope whose mark is within req.Window of now, oldest
// first, from the mark's ts (or from req.Window before now, whichever is
// later; and from where the mark stood when the gateway stopped listening,
// when live messages have moved it on since): a thread with
// conversations.replies, a channel with conversations.history, and then
// each new thread root found there with replies with conversations.replies.
// Each place of req.Places (a channel id) is a channel scope; one with no
// mark yet is started at now and not fetched. Messages are fed oldest
// first per conversation, and a live message of a conversation being
// caught up waits until its catch-up is done, so that the conversation's
// order holds. Each ingested message marks its scopes, so a catch-up that
// stops halfway resumes there.
//
// Pages are catchUpPageSize messages, at most catchUpMaxPages per scope
// (logged when reached). A 429 is waited out (its Retry-After, at least a
// second and at most maxRetryAfter, honouring ctx); a thread or channel
// that is gone is skipped with a warning; any other error stops the
// catch-up and is returned, with the report of what was done until then.
// Without a state store it returns an error at once.
func (a *Adapter) CatchUp(ctx context.Context, req adapters.CatchUpRequest) (adapters.CatchUpReport, error) {
	if a.marks == nil {
		return adapters.CatchUpReport{}, errors.New("slack: catch-up: no state store is configured")
	}
	if req.Window <= 0 {
		return adapters.CatchUpReport{}, fmt.Errorf("slack: catch-up: window %s is not positive", req.Window)
	}
	id, err := a.identityWithin(ctx, catchUpAuthTimeout)
	if err != nil {
		return adapters.CatchUpReport{}, fmt.Errorf("slack: catch-up: bot identity unknown: %w", err)
	}
	marks, err := a.marks.Load(ctx)
	if err != nil {
		return adapters.CatchUpReport{}, fmt.Errorf("slack: catch-up: %w", err)
	}
	run := &catchUpRun{a: a, id: id, now: a.now(), window: req.Window, marks: marks,
		appID: a.knownAppID(), done: map[string]time.Time{}}
	keys := catchup.Active(marks, run.now, req.Window)
	for _, place := range req.Places {
		if place == "" || strings.ContainsAny(place, "/ ") {
			a.log.Warn("catch-up: not a channel id; skipped", "place", place)
			continue
		}
		key := channelScope(id.TeamID, place)
		if slices.Contains(keys, key) {
			continue
		}
		if _, ok := marks[key]; ok {
			keys = append(keys, key) // idle for longer than the window
			continue
		}
		if err := a.marks.Start(ctx, key, run.now, formatTS(run.now)); err != nil {
			return run.rep, fmt.Errorf("slack: catch-up: start %s: %w", key, err)
		}
		run.rep.Scopes++
		a.log.Info("catch-up: first look at a channel; starting from now", "channel", place)
	}
	for _, key := range keys {
		if err := run.scope(ctx, key); err != nil {
			return run.rep, err
		}
	}
	a.log.Info("catch-up done", "scopes", run.rep.Scopes, "found", run.rep.Found, "new", run.rep.New, "since", run.rep.Since)
	return run.rep, nil
}

// catchUpRun is one CatchUp.
type catchUpRun struct {
	a      *Adapter
	id     identity
	appID  string
	now    time.Time
	window time.Duration
	marks  map[string]catchup.Mark
	done   map[string]time.Time // scope → what it was fetched after, in this run
	rep    adapters.CatchUpReport
}

// position is where a listing starts: after the message at ts (or the time
// it writes), exclusive.
type position struct {
	ts string
	t  time.Time
}

// scope catches up the scope key.
func (r *catchUpRun) scope(ctx context.Context, key string) error {
	sc, ok := parseScope(key)
	if !ok || sc.team != r.id.TeamID {
		r.a.log.Debug("catch-up: not a scope of this workspace; skipped", "scope", key)
		return nil
	}
	after := r.from(r.marks[key])
	if t, ok := r.done[key]; ok && !t.After(after.t) {
		return nil // fetched already, from as far back
	}
	r.done[key] = after.t
	r.rep.Scopes++
	if r.rep.Since.IsZero() || after.t.Before(r.rep.Since) {
		r.rep.Since = after.t
	}
	var err error
	if sc.root == "" {
		err = r.channel(ctx, sc, after)
	} else {
		var unlock func()
		if unlock, err = r.a.convs.lock(ctx, key); err == nil {
			err = r.thread(ctx, sc, after)
			unlock()
		}
	}
	return err
}

// from is where the catch-up of a scope marked mk starts.
func (r *catchUpRun) from(mk catchup.Mark) position {
	from := catchup.From(mk, r.now, r.window)
	if from.Equal(mk.Last) && mk.Cursor != "" {
		if t, err := parseTS(mk.Cursor); err == nil {
			return position{ts: mk.Cursor, t: t}
		}
	}
	ts := formatTS(from)
	t, _ := parseTS(ts) // to the microsecond, as Slack compares
	return position{ts: ts, t: t}
}

// thread feeds the replies of thread sc posted after after, page by page
// (conversations.replies lists them oldest first). The caller holds the
// thread's lock.
func (r *catchUpRun) thread(ctx context.Context, sc scope, after position) error {
	cursor := ""
	for page := 1; ; page++ {
		if page > catchUpMaxPages {
			r.a.log.Warn("catch-up: page cap reached in a thread; the rest waits for the next catch-up", "thread", sc.key, "pages", catchUpMaxPages)
			return nil
		}
		msgs, next, err := r.a.listReplies(ctx, sc.channel, sc.root, after.ts, cursor)
		if gone(err) {
			r.a.log.Warn("catch-up: thread gone; skipped", "thread", sc.key, "err", err)
			return nil
		}
		if err != nil {
			return fmt.Errorf("slack: catch-up: replies of %s: %w", sc.key, err)
		}
		for _, f := range msgs {
			// The thread's root comes first on every call, however old.
			if !f.at.After(after.t) {
				continue
			}
			if err := r.feed(ctx, sc, f); err != nil {
				return fmt.Errorf("slack: catch-up: replies of %s: %w", sc.key, err)
			}
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}

// channel feeds the top-level messages of channel sc posted after after,
// oldest first, each new thread root with the replies it has
// (conversations.history lists newest first, so the pages are read before
// any is fed).
func (r *catchUpRun) channel(ctx context.Context, sc scope, after position) error {
	var all []fetched
	cursor := ""
	for page := 1; ; page++ {
		if page > catchUpMaxPages {
			r.a.log.Warn("catch-up: page cap reached in a channel; its older messages are not fetched", "channel", sc.channel, "pages", catchUpMaxPages)
			break
		}
		msgs, next, err := r.a.listHistory(ctx, sc.channel, after.ts, cursor)
		if gone(err) {
			r.a.log.Warn("catch-up: channel gone; skipped", "channel", sc.channel, "err", err)
			return nil
		}
		if err != nil {
			return fmt.Errorf("slack: catch-up: history of %s: %w", sc.channel, err)
		}
		all = append(all, msgs...)
		if next == "" {
			break
		}
		cursor = next
	}
	slices.SortStableFunc(all, func(x, y fetched) int { return x.at.Compare(y.at) })
	for _, f := range all {
		if !f.at.After(after.t) {
			continue
		}
		root := f.msg.ThreadTS
		if root == "" {
			root = f.msg.TS
		}
		thread := scope{key: sc.team + "/" + sc.channel + "/" + root, team: sc.team, channel: sc.channel, root: root}
		if err := r.rootWithReplies(ctx, sc, thread, f); err != nil {
			return err
		}
	}
	return nil
}

// rootWithReplies feeds f, a message of channel sc's history, and, when it
// is a thread root with replies not fetched in this run, its replies,
// holding the thread's lock.
func (r *catchUpRun) rootWithReplies(ctx context.Context, sc, thread scope, f fetched) error {
	unlock, err := r.a.convs.lock(ctx, thread.key)
	if err != nil {
		return fmt.Errorf("slack: catch-up: history of %s: %w", sc.channel, err)
	}
	defer unlock()
	if err := r.feed(ctx, sc, f); err != nil {
		return fmt.Errorf("slack: catch-up: history of %s: %w", sc.channel, err)
	}
	if thread.root != f.msg.TS || f.msg.ReplyCount == 0 {
		return nil
	}
	if t, ok := r.done[thread.key]; ok && !t.After(f.at) {
		return nil
	}
	r.done[thread.key] = f.at
	r.rep.Scopes++
	return r.thread(ctx, thread, position{ts: f.msg.TS, t: f.at})
}

// feed maps f as the live path would and ingests it; sc is the scope being
// caught up, whose start advances past f.
func (r *catchUpRun) feed(ctx context.Context, sc scope, f fetched) error {
	lctx, cancel := context.WithTimeout(ctx, r.a.cfg.LookupTimeout.D())
	in, why := r.a.mapMessage(lctx, origin{team: sc.team, appID: r.appID}, &f.msg, f.raw, r.id)
	cancel()
	if in == nil {
		r.a.log.Debug("catch-up: message not ingested", "channel", sc.channel, "ts", f.msg.TS, "subtype", f.msg.Subtype, "outcome", why)
		return nil
	}
	r.rep.Found++
	out, err := r.a.ingest(ctx, in, true)
	if err != nil {
		return fmt.Errorf("ingest %s: %w", in.Envelope.ID, err)
	}
	if out.SessionID != "" && out.Dropped == "" && !out.Duplicate {
		r.rep.New++
	}
	return nil
}

// ingest hands in to the Ingress and, once it is handled (stored, or
// dropped by the routes), records it in the catch-up marks (markHandled).
// The caller holds the lock of in's conversation.
func (a *Adapter) ingest(ctx context.Context, in *adapters.Inbound, caughtUp bool) (adapters.Outcome, error) {
	in.Envelope.Sanitize()
	out, err := a.ingress.Ingest(ctx, *in)
	if err != nil {
		return out, err
	}
	a.noteAsker(in)
	a.markHandled(ctx, in, caughtUp)
	return out, nil
}

// markHandled records a handled message in the catch-up marks: its
// thread's scope and, for a top-level message, its channel's. A message a
// catch-up fetched moves the scopes' marks past it (Advance); a live one
// only makes them known and active (Seen), since live messages after a gap
// must not carry a mark past what was missed. Edits and deletes record
// nothing. A failure is logged, not returned: the message is stored, and a
// mark left behind costs a later catch-up only duplicates.
func (a *Adapter) markHandled(ctx context.Context, in *adapters.Inbound, caughtUp bool) {
	if a.marks == nil || in.Envelope.Kind != envelope.KindMessage {
		return
	}
	mark := a.marks.Seen
	if caughtUp {
		mark = a.marks.Advance
	}
	ts, ref := in.Facts.ChannelID, in.Envelope.Conversation.Ref
	if err := mark(ctx, ref, in.Envelope.TS, ts); err != nil {
		a.log.Warn("catch-up mark not saved", "scope", ref, "err", err)
	}
	if place, ok := strings.CutSuffix(ref, "/"+ts); ok {
		if err := mark(ctx, channelScopePrefix+place, in.Envelope.TS, ts); err != nil {
			a.log.Warn("catch-up mark not saved", "scope", channelScopePrefix+place, "err", err)
		}
	}
}

// socketConnected is called when a Socket Mode connection is up: after a
// reconnect, it asks the gateway for a catch-up of what was missed while
// the connection was down.
func (a *Adapter) socketConnected(ctx context.Context) {
	if !a.socketUp.Swap(true) {
		return // the first connection: the gateway catches up on start
	}
	if a.requestCatchUp != nil {
		a.log.Info("socket mode reconnected; asking for a catch-up")
		a.requestCatchUp()
	}
}

// noteAppID remembers the app's id, named by live events, for the catch-up's
// own-message check.
func (a *Adapter) noteAppID(id string) {
	if cur, _ := a.appID.Load().(string); cur != id {
		a.appID.Store(id)
	}
}

// knownAppID returns the app's id if a live event named it, else "".
func (a *Adapter) knownAppID() string {
	id, _ := a.appID.Load().(string)
	return id
}

// scope is a parsed scope key.
type scope struct {
	key                 string
	team, channel, root string // root is "" for a channel's scope
}

// channelScope is the key of a channel's scope.
func channelScope(team, channel string) string { return channelScopePrefix + team + "/" + channel }

// parseScope reads a scope key: "<team>/<channel>/<root ts>" or
// "channel:<team>/<channel>".
func parseScope(key string) (scope, bool) {
	if rest, ok := strings.CutPrefix(key, channelScopePrefix); ok {
		team, channel, ok := strings.Cut(rest, "/")
		if !ok || team == "" || channel == "" || strings.Contains(channel, "/") {
			return scope{}, false
		}
		return scope{key: key, team: team, channel: channel}, true
	}
	parts := strings.Split(key, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return scope{}, false
	}
	if _, err := parseTS(parts[2]); err != nil {
		return scope{}, false
	}
	return scope{key: key, team: parts[0], channel: parts[1], root: parts[2]}, true
}

// fetched is a message object as a listing returned it.
type fetched struct {
	msg message
	raw json.RawMessage // the object's JSON, as fetched
	at  time.Time       // its ts
}

// listReplies reads one page of conversations.replies: the messages of the
// thread rooted at root in channel posted after oldest (and the root), and
// the cursor of the next page ("" for none).
func (a *Adapter) listReplies(ctx context.Context, channel, root, oldest, cursor string) ([]fetched, string, error) {
	var (
		more bool
		next string
	)
	body, err := a.listing(ctx, "conversations.replies", func(ctx context.Context) error {
		var err error
		_, more, next, err = a.api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{
			ChannelID: channel, Timestamp: root, Oldest: oldest, Cursor: cursor, Limit: catchUpPageSize,
		})
		return err
	})
	if err != nil {
		return nil, "", err
	}
	if !more {
		next = ""
	}
	msgs, err := decodeListing(body, channel)
	return msgs, next, err
}

// listHistory reads one page of conversations.history: top-level messages
// of channel posted after oldest, newest first, and the cursor of the next
// page ("" for none).
func (a *Adapter) listHistory(ctx context.Context, channel, oldest, cursor string) ([]fetched, string, error) {
	var (
		more bool
		next string
	)
	body, err := a.listing(ctx, "conversations.history", func(ctx context.Context) error {
		res, err := a.api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{
			ChannelID: channel, Oldest: oldest, Cursor: cursor, Limit: catchUpPageSize,
		})
		if res != nil {
			more, next = res.HasMore, res.ResponseMetaData.NextCursor
		}
		return err
	})
	if err != nil {
		return nil, "", err
	}
	if !more {
		next = ""
	}
	msgs, err := decodeListing(body, channel)
	return msgs, next, err
}

// listing makes one listing call, through the adapter's API client, keeping
// its response body (for the messages' raw JSON), and waits out 429s.
// goneErrors wrap errGone; other errors are classified as for Deliver.
func (a *Adapter) listing(ctx context.Context, method string, call func(context.Context) error) ([]byte, error) {
	for waits := 0; ; waits++ {
		kept := &capture{}
		err := call(context.WithValue(ctx, captureKey{}, kept))
		var rl *slack.RateLimitedError
		switch {
		case err == nil:
			return kept.body, nil
		case goneErrors[apiError(err)]:
			return nil, fmt.Errorf("%w: %s", errGone, apiError(err))
		case !errors.As(err, &rl):
			return nil, a.classify(err)
		case waits == maxRateLimitWaits:
			return nil, fmt.Errorf("%s: still rate limited after %d waits: %w", method, waits, err)
		}
		wait := min(max(rl.RetryAfter, time.Second), maxRetryAfter)
		a.log.Info("catch-up: rate limited; waiting", "method", method, "wait", wait)
		if !a.sleep(ctx, wait) {
			return nil, fmt.Errorf("%s: waiting out a rate limit: %w", method, ctx.Err())
		}
	}
}

// decodeListing reads the messages of a listing response, each with its own
// JSON and its channel filled in (the API objects lack it).
func decodeListing(body []byte, channel string) ([]fetched, error) {
	var page struct {
		Messages []json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, fmt.Errorf("decode messages: %w", err)
	}
	out := make([]fetched, 0, len(page.Messages))
	for _, raw := range page.Messages {
		var m message
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("decode message: %w", err)
		}
		at, err := parseTS(m.TS)
		if err != nil {
			continue // not a message the live path would take either
		}
		if m.Type == "" {
			m.Type = typeMessage
		}
		m.Channel = channel
		out = append(out, fetched{msg: m, raw: raw, at: at})
	}
	return out, nil
}

// errGone is what a listing returns for goneErrors.
var errGone = errors.New("gone")

// gone reports whether err says the thread or channel can no longer be read.
func gone(err error) bool { return errors.Is(err, errGone) }

// captureKey is the context key under which a listing call asks the API
// client to keep the response body.
type captureKey struct{}

// capture receives a kept response body.
type capture struct{ body []byte }

// capturingClient is the API client's HTTP client: it passes requests
// through, and keeps the body of a successful response (up to
// maxPageBytes) for a request whose context carries a *capture, so that
// the catch-up can give each message object's JSON as fetched while
// slack-go decodes the answer as usual.
type capturingClient struct{ c *http.Client }

// Do sends req.
func (c capturingClient) Do(req *http.Request) (*http.Response, error) {
	resp, err := c.c.Do(req)
	if err != nil {
		return resp, err
	}
	kept, ok := req.Context().Value(captureKey{}).(*capture)
	if !ok || resp.StatusCode != http.StatusOK {
		return resp, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPageBytes+1))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if len(body) > maxPageBytes {
		return nil, fmt.Errorf("response larger than %d bytes", maxPageBytes)
	}
	kept.body = body
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// convLocks serialises, per conversation ref, the live path's ingest of a
// message and the catch-up of that conversation. Entries live while held
// or awaited.
type convLocks struct {
	mu sync.Mutex
	m  map[string]*convLock
}

type convLock struct {
	sem  chan struct{}
	refs int // holders and waiters
}

// lock takes the lock of key, waiting while another holds it unless ctx
// ends first; it returns the function that releases it.
func (l *convLocks) lock(ctx context.Context, key string) (func(), error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*convLock{}
	}
	c := l.m[key]
	if c == nil {
		c = &convLock{sem: make(chan struct{}, 1)}
		l.m[key] = c
	}
	c.refs++
	l.mu.Unlock()
	select {
	case c.sem <- struct{}{}:
		return func() { <-c.sem; l.release(key, c) }, nil
	case <-ctx.Done():
		l.release(key, c)
		return nil, ctx.Err()
	}
}

func (l *convLocks) release(key string, c *convLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.refs--; c.refs == 0 {
		delete(l.m, key)
	}
}
