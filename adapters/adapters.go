// Package adapters is the contract between Switchboard's router and its
// channels (the API, Slack, GitHub, Jira, email).
//
// An adapter turns its channel's payloads into envelopes and hands them to
// an Ingress; and, as a Sink, delivers an envelope to one of its channel's
// conversation anchors. Optional capabilities are separate one-method
// interfaces that the gateway looks for: HTTPHandler (mounted under
// /hooks/<name>/), Runner (long-running sources such as an IMAP watcher or a
// Socket Mode connection), Checker (readiness).
//
// Each adapter package registers a Plugin in its init function: a name, a
// typed configuration and a constructor. The router never switches on
// channel names.
package adapters

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// Facts are what route rules match on, beyond the envelope itself. The
// adapter that builds an envelope fills them.
type Facts struct {
	// Where is the place the message was posted, in the channel's terms:
	// a Slack channel id, a GitHub "owner/repo", a Jira project key, a
	// mailbox address. Rules match it with globs.
	Where string
	// Addressed is true when the message is meant for the gateway: the bot
	// was mentioned, a trigger word or command was used, the bot was
	// assigned, or it is a direct message.
	Addressed bool
	// Direct is true for a one-to-one conversation (a Slack DM).
	Direct bool
	// FromBot is true when another bot or app wrote the message.
	FromBot bool
	// Sender is the sender's address or handle, for allow-lists (an email
	// address, a Slack user id).
	Sender string
	// ChannelID is the channel's own id for the message (a Slack ts, a
	// GitHub comment id, a Message-ID). The router drops a message whose
	// ChannelID the gateway itself posted.
	ChannelID string
}

// Inbound is one message for the router.
type Inbound struct {
	Envelope envelope.Envelope
	Facts    Facts
}

// Outcome says what the router did with an Inbound.
type Outcome struct {
	// SessionID is the session the message went to ("" when dropped).
	SessionID string
	// Seq is the record's sequence number in the session's log.
	Seq int64
	// Duplicate is true when the envelope id was already stored.
	Duplicate bool
	// Dropped, when not empty, says why the message reached no session
	// ("no route matched", "own message", "binding paused").
	Dropped string
}

// Ingress takes inbound messages. The router implements it; adapters call it.
// Ingest returns once the message is durably stored (or dropped), so an
// adapter may acknowledge its channel after it returns nil. It is safe for
// concurrent use.
type Ingress interface {
	Ingest(ctx context.Context, in Inbound) (Outcome, error)
}

// IngressFunc adapts a function to Ingress.
type IngressFunc func(ctx context.Context, in Inbound) (Outcome, error)

// Ingest calls f.
func (f IngressFunc) Ingest(ctx context.Context, in Inbound) (Outcome, error) { return f(ctx, in) }

// Delivery is one envelope to post to one conversation.
type Delivery struct {
	// ID identifies the delivery and stays the same across retries, so a
	// channel that supports idempotency keys can use it.
	ID        string
	SessionID string
	// Seq is the delivered record's sequence number in the session's log.
	Seq int64
	// To is the conversation anchor to post into; its Source is the sink's
	// channel.
	To       envelope.Conversation
	Envelope envelope.Envelope
	// Target is set on an edit or deletion (Envelope.Kind) for a sink that
	// is an Editor: the channel's id (the Receipt.ChannelID) of the message
	// it changes, in this conversation. It is never empty there: an edit of
	// a message the channel never got is delivered as a new message.
	Target string
	// Attempt counts from 1.
	Attempt int
}

// Receipt is what a channel said about a posted message.
type Receipt struct {
	// ChannelID is the channel's id for what was posted (a Slack ts, a
	// GitHub comment id, a Message-ID), so the gateway can recognise its own
	// messages when the channel echoes them back.
	ChannelID string
}

// Sink delivers envelopes to its channel. Deliver is called by the outbox's
// workers, possibly concurrently for different conversations but never for
// the same one; it is retried on error unless the error is permanent
// (ErrPermanent) and waits as a BackOff error says.
type Sink interface {
	Deliver(ctx context.Context, d Delivery) (Receipt, error)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, d Delivery) (Receipt, error)

// Deliver calls f.
func (f SinkFunc) Deliver(ctx context.Context, d Delivery) (Receipt, error) { return f(ctx, d) }

// ErrPermanent marks a delivery error that retrying cannot fix (the issue
// was deleted, the bot was removed from the channel). Wrap it:
// fmt.Errorf("github: post comment: %w: %s", adapters.ErrPermanent, msg).
var ErrPermanent = errors.New("permanent failure")

// ErrGone marks an edit or deletion whose message is gone from the channel
// (a person deleted it). The router ends that message's updates quietly:
// the delivery counts as done, with no retry and no system record. Wrap it
// like ErrPermanent.
var ErrGone = errors.New("message is gone")

// Editor is a Sink that can change and withdraw messages it posted: its
// Deliver takes deliveries of kind envelope.KindEdit (replace the text of
// the message Delivery.Target with Envelope.Text, the whole new text) and
// envelope.KindDelete (withdraw Delivery.Target), besides messages. A
// partial message (Envelope.Partial) starts a stream that edits extend; a
// sink that streams natively may turn an edit whose text extends the
// previous one into an append. Receipt.ChannelID of an edit is the id the
// message has after it (usually Target).
//
// EditInterval is the least time the channel needs between two changes of
// one message (its rate limit for edits; 0 for none). The router holds
// quicker edits back and, under a fast stream, sends only the latest text:
// at most one change of a message per interval, and the final text always.
//
// A Sink that is not an Editor gets only messages: of a stream, the
// router sends it the final text once, as a new message; later edits and
// deletions are dropped with a log line (email).
type Editor interface {
	EditInterval() time.Duration
}

// BackOff is a delivery error that asks to wait before the next attempt (a
// 429 with Retry-After, a rate-limit reset).
type BackOff struct {
	Wait time.Duration
	Err  error
}

func (e *BackOff) Error() string {
	return fmt.Sprintf("back off %s: %v", e.Wait, e.Err)
}

// Unwrap returns the underlying error.
func (e *BackOff) Unwrap() error { return e.Err }

// HTTPHandler is an adapter that receives webhooks. Its handler is mounted
// at /hooks/<name>/ with that prefix stripped.
type HTTPHandler interface {
	Handler() http.Handler
}

// Runner is an adapter with long-running work (an IMAP watcher, a Socket
// Mode connection, a startup identity check). Run blocks until ctx ends and
// returns nil then; an error return means it failed for good.
type Runner interface {
	Run(ctx context.Context) error
}

// Checker is an adapter that can report itself unhealthy (revoked
// credentials); /readyz shows it without stopping other channels.
type Checker interface {
	Check(ctx context.Context) error
}

// CatchUpper is an adapter that can fetch, from its channel's web API, what
// was written while the gateway was not listening (stopped, crashed, cut
// off), and feed it through its Ingress as the live events would have: with
// the same envelope ids, so that a message seen live and again in a
// catch-up is stored once, and with the same triggers and own-message
// checks. The gateway runs it on start, when the adapter asks
// (Deps.RequestCatchUp, after a reconnect) and on demand, one replica at a
// time. CatchUp returns when it has looked everywhere req names, or with
// the first error that stops it; what it stored before an error stays
// stored, and its watermarks (kept in Deps.State) only ever cover what is.
type CatchUpper interface {
	CatchUp(ctx context.Context, req CatchUpRequest) (CatchUpReport, error)
}

// CatchUpRequest says how far a catch-up may look.
type CatchUpRequest struct {
	// Window bounds it: nothing written more than Window before now is
	// fetched, and a conversation idle for longer is not looked at.
	Window time.Duration
	// Places are the places the routes name explicitly for the channel
	// (Slack channel ids, GitHub owner/repo, Jira project keys: a route's
	// match.where entries without glob characters), where new conversations
	// may have started.
	Places []string
}

// CatchUpReport says what a catch-up did.
type CatchUpReport struct {
	// Since is how far back it looked: the oldest point it fetched from
	// (zero when it had nothing to look at).
	Since time.Time `json:"since,omitzero"`
	// Scopes is how many conversations and places it looked at.
	Scopes int `json:"scopes"`
	// Found is how many messages it fetched; New is how many of them were
	// stored for the first time (the others were seen live already, or
	// dropped by the routes as live messages would be).
	Found int `json:"found"`
	New   int `json:"new"`
}

// Progress is an adapter that shows, on the message that started an agent's
// turn, that the session is working on it and when it is done (Slack's 👀
// then ✅, GitHub's 👀 reaction). The router calls it with working true
// before the turn and false after, with env the triggering inbound envelope
// of the adapter's own channel. It is best effort: errors are logged, never
// retried, and must not be slow (the router bounds each call).
type Progress interface {
	Progress(ctx context.Context, env envelope.Envelope, working bool) error
}

// Config is an adapter's typed configuration section.
type Config interface {
	// Validate checks the section, naming bad keys relative to it.
	Validate() error
}

// Deps are what the gateway hands every adapter.
type Deps struct {
	Ingress  Ingress
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// Now is the clock (tests inject one).
	Now func() time.Time
	// HTTPClient is for calls to the channel's web API.
	HTTPClient *http.Client
	// State is the gateway's store, for the adapter's own durable state (an
	// IMAP cursor, what a reply needs to know about a thread), under a
	// namespace of its own (its plugin name). Adapters keep their durable
	// state here, never only in memory or in local files: replicas of the
	// gateway share the store and nothing else. Nil in tests that need no
	// state.
	State store.KV
	// RequestCatchUp, if not nil, asks the gateway to run the adapter's
	// CatchUp soon (after the adapter reconnected to its channel). It does
	// not wait.
	RequestCatchUp func()
}

// WithDefaults returns d with what is unset filled in: a Logger that
// discards, time.Now as Now, and an HTTPClient with a 30-second timeout. The
// Logger returned tags every record with adapter=name.
func (d Deps) WithDefaults(name string) Deps {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	d.Logger = d.Logger.With("adapter", name)
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.HTTPClient == nil {
		d.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	return d
}

// Adapter is a constructed adapter. It is a Sink for its channel; it may
// also implement HTTPHandler, Runner and Checker.
type Adapter interface {
	Sink
}

// Plugin declares an adapter: its name (also the envelope source and the
// /hooks/<name>/ path), a constructor for its zero configuration and the
// constructor of the adapter, which must do no I/O.
type Plugin struct {
	Name      string
	NewConfig func() Config
	New       func(cfg Config, deps Deps) (Adapter, error)
}

// Typed builds the Plugin of an adapter whose configuration type is C and
// whose constructor is newAdapter, so that adapters need not type-assert
// their configuration: newConfig returns C with its defaults.
func Typed[C Config, A Adapter](name string, newConfig func() C, newAdapter func(C, Deps) (A, error)) Plugin {
	return Plugin{
		Name:      name,
		NewConfig: func() Config { return newConfig() },
		New: func(cfg Config, deps Deps) (Adapter, error) {
			c, ok := cfg.(C)
			if !ok {
				return nil, fmt.Errorf("%s: config is %T, want %T", name, cfg, *new(C))
			}
			return newAdapter(c, deps)
		},
	}
}

var (
	regMu   sync.RWMutex
	plugins = map[string]Plugin{}
)

// Register makes a plugin available under its name. It panics on a
// duplicate or incomplete registration, which is a programming error caught
// at init.
func Register(p Plugin) {
	if p.Name == "" || p.NewConfig == nil || p.New == nil {
		panic("adapters: Register: incomplete plugin " + p.Name)
	}
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := plugins[p.Name]; dup {
		panic("adapters: Register: duplicate plugin " + p.Name)
	}
	plugins[p.Name] = p
}

// Lookup returns the plugin registered as name.
func Lookup(name string) (Plugin, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	p, ok := plugins[name]
	return p, ok
}

// Names returns the registered plugin names, sorted.
func Names() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make([]string, 0, len(plugins))
	for n := range plugins {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
