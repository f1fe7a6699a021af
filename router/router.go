// Package router is the heart of Switchboard: it binds conversations to
// sessions, hands each session's messages to its agent runtime in order, and
// routes every output back through the session's conversations via a
// durable outbox.
//
// Everything the router does is driven by the session log: Ingest appends
// inbound envelopes; a dispatcher follows each session's log (a durable
// per-session cursor, leased to one process at a time) and runs the
// session's runtime; the store writes each record's outbox deliveries (to
// the session's conversations and to webhook destinations) in the
// transaction that commits it (see "Fan-out at commit" in package store); delivery workers post them
// through the adapters' Sinks. A crash at any point resumes from the cursors
// and the outbox, so nothing acknowledged is lost.
package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/ids"
	"github.com/switchboardhq/switchboard/router/runtime"
	"github.com/switchboardhq/switchboard/store"
)

// Store is what the router needs of the store.
type Store interface {
	store.Sessions
	store.Log
	store.Bindings
	store.Cursors
	store.Outbox
}

// WebhookSink delivers the outbox's deliveries to webhook destinations
// (package router/webhooks). Unlike a channel's adapters.Sink it is handed
// the store's delivery, which may be of a session event rather than a
// record, and it returns the attempt it made (nil when it made none),
// which the router records with the delivery's settlement; its errors mean
// what a Sink's do (adapters.ErrPermanent, adapters.BackOff).
type WebhookSink interface {
	Deliver(ctx context.Context, d store.Delivery) (*store.Attempt, error)
}

// MetaRoute is the session metadata key naming the route that created it.
const MetaRoute = store.MetaRoute

// Options configure a Router.
type Options struct {
	Config *config.Config
	Store  Store
	// Sinks deliver outputs, by conversation source ("slack", "github").
	// Conversations of other sources (such as "client") get no deliveries.
	// A sink that is also an adapters.Progress is told when an agent's turn
	// on one of its messages starts and ends.
	Sinks map[string]adapters.Sink
	// Runtimes serve sessions, by route name. Routes with runtime inbox
	// need none.
	Runtimes map[string]runtime.Runtime
	// SessionToken mints the session-scoped token handed to a runtime.
	SessionToken func(sessionID string) string
	Logger       *slog.Logger
	Registry     prometheus.Registerer
	// LeaseTTL is how long a claimed session or delivery stays leased
	// without renewal (default 30s); a dead process's work is taken over
	// after it.
	LeaseTTL time.Duration
	// Poll is how often the router looks for work it was not told about:
	// another replica's appends, due retries, expired leases (default 1s).
	Poll time.Duration
	// Webhooks, when set, delivers the outbox's deliveries of source
	// "webhook" (which the store enqueues for the webhook destinations).
	// Without it they are dead on their first attempt.
	Webhooks WebhookSink
}

// Router routes messages between channels and sessions. Its methods are
// safe for concurrent use; Run does its background work.
type Router struct {
	cfg      *config.Config
	st       Store
	sinks    map[string]adapters.Sink
	runtimes map[string]runtime.Runtime
	token    func(string) string
	log      *slog.Logger
	now      func() time.Time
	owner    string
	lease    time.Duration
	poll     time.Duration
	metrics  *metrics
	breaker  *breaker
	kickc    chan struct{} // wakes the delivery workers
	// outboxFull is set while due deliveries wait for a delivery worker
	// (the last claim took as many as there were free workers): a worker
	// then lets go of its conversation after the run its settlement
	// claimed (deliverOne).
	outboxFull atomic.Bool
	webhooks   WebhookSink
	turns      *turns
	pace       pacer // when messages were last changed (changes.go)
	lastIn     lastInbound
}

// lastInbound is when each source last handed the router a message, as this
// process saw it, for the operators' view of the channels. It holds at most
// maxLastInbound sources.
type lastInbound struct {
	mu sync.Mutex
	m  map[string]time.Time
}

const maxLastInbound = 256

func (l *lastInbound) seen(source string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]time.Time{}
	}
	if _, ok := l.m[source]; ok || len(l.m) < maxLastInbound {
		l.m[source] = at
	}
}

// LastInbound returns when each source last handed this router a message
// (through Ingest), since the process started: what a channel last
// delivered to this replica.
func (r *Router) LastInbound() map[string]time.Time {
	r.lastIn.mu.Lock()
	defer r.lastIn.mu.Unlock()
	return maps.Clone(r.lastIn.m)
}

var _ adapters.Ingress = (*Router)(nil)

// New builds a Router. It does no I/O.
func New(opts Options) (*Router, error) {
	if opts.Config == nil || opts.Store == nil {
		return nil, errors.New("router: Config and Store are required")
	}
	r := &Router{
		cfg:      opts.Config,
		st:       opts.Store,
		sinks:    opts.Sinks,
		runtimes: opts.Runtimes,
		token:    opts.SessionToken,
		log:      opts.Logger,
		now:      time.Now,
		lease:    opts.LeaseTTL,
		poll:     opts.Poll,
		webhooks: opts.Webhooks,
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	host, _ := os.Hostname()
	// owner names this process in leases.
	r.owner = fmt.Sprintf("%s:%d:%s", host, os.Getpid(), ids.New("p")[2+20:])
	if r.lease <= 0 {
		r.lease = 30 * time.Second
	}
	if r.poll <= 0 {
		r.poll = time.Second
	}
	if r.token == nil {
		r.token = func(string) string { return "" }
	}
	for i := range r.cfg.Routes {
		rt := &r.cfg.Routes[i]
		if hasRuntime(rt) && r.runtimes[rt.Name] == nil {
			return nil, fmt.Errorf("router: route %q: no %s runtime was built for it", rt.Name, rt.Runtime)
		}
	}
	r.metrics = newMetrics(opts.Registry)
	r.breaker = newBreaker()
	r.kickc = make(chan struct{}, 1)
	r.turns = newTurns(r.cfg)
	return r, nil
}

// Run does the router's background work until ctx ends: it dispatches
// sessions' messages to their runtimes, routes outputs into the outbox and
// delivers them. It returns nil after ctx ends and everything it started has
// stopped.
func (r *Router) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	start := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	start((&follower{r: r, consumer: consumerRuntime, parallel: r.cfg.Router.MaxParallel, fn: r.dispatch}).run)
	// The store enqueues every delivery in the transaction of the change
	// that causes it (see "Fan-out at commit" in package store); the router only delivers.
	start(r.deliverLoop)
	wg.Wait()
	return nil
}

// Ingest routes an inbound message to its session and stores it: the
// session bound to the conversation, else the first route rule that
// matches. A message that
// reaches no session is dropped (Outcome.Dropped says why), never an error.
func (r *Router) Ingest(ctx context.Context, in adapters.Inbound) (adapters.Outcome, error) {
	env := &in.Envelope
	r.lastIn.seen(env.Source, r.now())
	if in.Facts.ChannelID != "" {
		own, err := r.st.Posted(ctx, env.Source, in.Facts.ChannelID)
		if err != nil {
			return adapters.Outcome{}, fmt.Errorf("router: ingest: %w", err)
		}
		if own {
			return r.drop(env, "own message"), nil
		}
	}
	if env.Conversation.IsZero() {
		return r.drop(env, "no conversation"), nil
	}
	b, err := r.st.BindingFor(ctx, env.Conversation)
	switch {
	case err == nil:
		if b.Paused(r.now()) {
			return r.drop(env, "binding paused: "+b.PausedReason), nil
		}
		if rt, ok := r.cfg.Route(b.Route); ok {
			if ok, why := match(rt, &in, true); !ok {
				return r.drop(env, "bound conversation, but "+why), nil
			}
		} else if in.Facts.FromBot {
			return r.drop(env, "from a bot"), nil
		}
	case errors.Is(err, store.ErrNotFound):
		rt, why := r.route(&in)
		if rt == nil {
			return r.drop(env, "no route matched ("+why+")"), nil
		}
		if b, err = r.bind(ctx, rt, env); err != nil {
			return adapters.Outcome{}, err
		}
	default:
		return adapters.Outcome{}, fmt.Errorf("router: ingest: %w", err)
	}
	if env.Actor.Type != envelope.Human || in.Facts.FromBot {
		rt, _ := r.cfg.Route(b.Route)
		if tripped, reason := r.breaker.inbound(b, rt, r.now()); tripped {
			if err := r.pause(ctx, b, reason); err != nil {
				return adapters.Outcome{}, err
			}
			return r.drop(env, "loop breaker: "+reason), nil
		}
	}
	return r.appendInbound(ctx, b.SessionID, env)
}

func (r *Router) drop(env *envelope.Envelope, why string) adapters.Outcome {
	r.metrics.dropped.WithLabelValues(env.Source, dropLabel(why)).Inc()
	r.log.Info("message dropped", "id", env.ID, "source", env.Source, "conversation", env.Conversation.Ref, "reason", why)
	return adapters.Outcome{Dropped: why}
}

// dropLabel keeps the metric's label set small.
func dropLabel(why string) string {
	head, _, _ := strings.Cut(why, " (")
	head, _, _ = strings.Cut(head, ":")
	return head
}

func (r *Router) appendInbound(ctx context.Context, sessionID string, env *envelope.Envelope) (adapters.Outcome, error) {
	req := store.AppendRequest{SessionID: sessionID, Direction: store.Inbound, Envelope: *env, Wake: true}
	r.markTurn(ctx, &req)
	res, err := r.st.Append(ctx, req)
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return adapters.Outcome{}, fmt.Errorf("router: append: %w", err)
	}
	r.metrics.ingested.WithLabelValues(env.Source).Inc()
	return adapters.Outcome{SessionID: sessionID, Seq: res.Record.Seq, Duplicate: !res.Created}, nil
}

// route returns the first route that takes in, or nil and why not.
func (r *Router) route(in *adapters.Inbound) (*config.Route, string) {
	why := "no routes"
	for i := range r.cfg.Routes {
		rt := &r.cfg.Routes[i]
		ok, w := match(rt, in, false)
		if ok {
			return rt, ""
		}
		if rt.Match.Source == "" || rt.Match.Source == in.Envelope.Source {
			why = w
		}
	}
	return nil, why
}

// bind finds or creates the session that route rt gives env's conversation,
// and binds the conversation to it.
func (r *Router) bind(ctx context.Context, rt *config.Route, env *envelope.Envelope) (store.Binding, error) {
	meta := map[string]string{MetaRoute: rt.Name}
	target := ids.New("ses")
	switch rt.Session.By {
	case "fixed":
		target = rt.Session.ID
	case "ref":
		if v := env.Refs[rt.Session.Ref]; v != "" {
			if repo := env.Refs[envelope.RefRepo]; repo != "" && rt.Session.Ref != envelope.RefRepo {
				v = repo + "#" + v
			}
			key := envelope.Conversation{Source: "ref:" + rt.Session.Ref, Ref: v}
			kb, _, err := r.st.Bind(ctx, store.Binding{SessionID: target, Conversation: key, Route: rt.Name}, meta)
			if err != nil {
				return store.Binding{}, fmt.Errorf("router: bind %s: %w", key.Key(), err)
			}
			target = kb.SessionID
		}
	}
	b, created, err := r.st.Bind(ctx, store.Binding{SessionID: target, Conversation: env.Conversation, Route: rt.Name}, meta)
	if err != nil {
		return store.Binding{}, fmt.Errorf("router: bind %s: %w", env.Conversation.Key(), err)
	}
	if created {
		r.metrics.bindings.WithLabelValues(rt.Name).Inc()
		r.log.Info("conversation bound", "conversation", env.Conversation.Key(), "session", b.SessionID, "route", rt.Name)
	}
	return b, nil
}

// routeOf returns the route serving session s: the route that created it,
// else the configured default route, else nil (inbox).
func (r *Router) routeOf(s store.Session) *config.Route {
	if name := s.Metadata[MetaRoute]; name != "" {
		if rt, ok := r.cfg.Route(name); ok {
			return rt
		}
	}
	if rt, ok := r.cfg.Route(r.cfg.Router.DefaultRoute); ok {
		return rt
	}
	return nil
}

// pause pauses binding b for the route's cooldown and records why in the
// session's log as a system envelope, so nobody misses it.
func (r *Router) pause(ctx context.Context, b store.Binding, reason string) error {
	rt, _ := r.cfg.Route(b.Route)
	cooldown := budgetOf(rt).Cooldown.D()
	now := r.now()
	until := now.Add(cooldown)
	if _, err := r.st.PauseBinding(ctx, b.ID, until, reason); err != nil {
		return fmt.Errorf("router: pause binding: %w", err)
	}
	r.metrics.paused.Inc()
	r.log.Warn("conversation paused by the loop breaker", "session", b.SessionID, "conversation", b.Conversation.Key(), "reason", reason, "until", until)
	text := fmt.Sprintf("Switchboard paused the conversation %s until %s: %s. Resume it sooner with POST /v3/sessions/%s/conversations/%s/resume.",
		b.Conversation.Key(), until.UTC().Format(time.RFC3339), reason, b.SessionID, b.ID)
	return r.appendSystem(ctx, b.SessionID, "pause:"+b.ID+":"+until.UTC().Format(time.RFC3339Nano), text, store.Inbound, nil)
}

// appendSystem appends a notice from the gateway to a session's log (see
// store.AppendNotice).
func (r *Router) appendSystem(ctx context.Context, sessionID, key, text string, dir store.Direction, refs envelope.Refs) error {
	if err := store.AppendNotice(ctx, r.st, sessionID, key, text, dir, refs, r.now()); err != nil {
		return fmt.Errorf("router: %w", err)
	}
	return nil
}

// Runtimes builds the runtime of every exec and http route of cfg, by route
// name. It does no I/O.
func Runtimes(cfg *config.Config, sessions runtime.SessionMap) (map[string]runtime.Runtime, error) {
	out := map[string]runtime.Runtime{}
	for _, rt := range cfg.Routes {
		switch rt.Runtime {
		case "exec":
			x, err := runtime.NewExec(runtime.ExecConfig{
				Command:    rt.Exec.Command,
				Dir:        rt.Exec.Dir,
				Env:        rt.Exec.Env,
				User:       rt.Exec.User,
				Timeout:    rt.Exec.Timeout.D(),
				GatewayURL: cfg.PublicURL,
				MaxOutput:  cfg.Limits.MaxText,
			})
			if err != nil {
				return nil, fmt.Errorf("router: route %q: %w", rt.Name, err)
			}
			out[rt.Name] = x
		case "http":
			h, err := runtime.NewHTTP(runtime.HTTPConfig{BaseURL: rt.HTTP.URL, Token: rt.HTTP.Token, Sessions: sessions})
			if err != nil {
				return nil, fmt.Errorf("router: route %q: %w", rt.Name, err)
			}
			out[rt.Name] = h
		}
	}
	return out, nil
}
