// Package gateway assembles a running Switchboard from its configuration:
// the store, the adapters, the router with its runtimes and webhooks, the
// HTTP API, the console and the metrics registry. cmd/switchboard calls it;
// tests use it to run a whole gateway in process.
package gateway

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/switchboardhq/switchboard/adapters"
	_ "github.com/switchboardhq/switchboard/adapters/all" // every channel
	"github.com/switchboardhq/switchboard/api"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/console"
	"github.com/switchboardhq/switchboard/router"
	"github.com/switchboardhq/switchboard/router/runtime"
	"github.com/switchboardhq/switchboard/router/webhooks"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/postgres"
	"github.com/switchboardhq/switchboard/store/sqlite"
)

// TokenEnv is the environment variable whose value, when set, is an admin
// token (for scripts and tests).
const TokenEnv = "SWITCHBOARD_TOKEN"

// Gateway is an assembled gateway. Create it with New, run it with Serve.
type Gateway struct {
	cfg      *config.Config
	log      *slog.Logger
	store    store.Store
	registry *prometheus.Registry
	api      *api.Server
	handler  http.Handler
	router   *router.Router
	adapters []builtAdapter
	catchUps *catchUps
}

// Options are what New needs beyond the configuration.
type Options struct {
	Logger *slog.Logger
	// Getenv reads the environment (nil: os.LookupEnv).
	Getenv func(string) (string, bool)
	// Announce is where a newly created bootstrap admin token is printed,
	// once (nil: os.Stderr).
	Announce io.Writer
}

// New opens the store named by cfg (running its migrations), makes sure an
// admin token exists and builds the HTTP handler. Close releases it.
func New(ctx context.Context, cfg *config.Config, opts Options) (*Gateway, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.LookupEnv
	}
	announce := opts.Announce
	if announce == nil {
		announce = os.Stderr
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	st, err := openStore(ctx, cfg, log, store.NewMetrics(reg))
	if err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, log: log, store: st, registry: reg}
	if err := g.build(ctx, getenv, announce); err != nil {
		st.Close()
		return nil, err
	}
	return g, nil
}

// build assembles the router, the adapters and the HTTP handler.
func (g *Gateway) build(ctx context.Context, getenv func(string) (string, bool), announce io.Writer) error {
	cfg, log, st := g.cfg, g.log, g.store
	tokens, err := g.tokens(ctx, getenv, announce)
	if err != nil {
		return err
	}
	key := []byte(cfg.Router.SessionKey)
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	}
	tokenTTL := cfg.SessionTokenTTL()
	sessions := router.NewSessionMap(st)
	runtimes, err := router.Runtimes(cfg, sessions)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	// The router takes the adapters' sinks and the adapters take the router
	// as their ingress: the ingress is bound once the router exists.
	var rt *router.Router
	ingress := adapters.IngressFunc(func(ctx context.Context, in adapters.Inbound) (adapters.Outcome, error) {
		return rt.Ingest(ctx, in)
	})
	// Likewise the adapters ask for a catch-up (after a reconnect) before
	// the catch-up runner that takes the request exists.
	var cu *catchUps
	requestCatchUp := func(name string) {
		if cu != nil {
			cu.request(name)
		}
	}
	built, err := buildAdapters(cfg, adapters.Deps{
		Ingress:    ingress,
		Logger:     log,
		Registry:   g.registry,
		Now:        time.Now,
		HTTPClient: &http.Client{Timeout: 30 * time.Second},
		State:      st,
	}, requestCatchUp)
	if err != nil {
		return err
	}
	cu = newCatchUps(cfg, st, built, log, g.registry)
	sinks := map[string]adapters.Sink{}
	for _, b := range built {
		sinks[b.name] = b.a
	}
	wh, err := webhooks.New(webhooks.Options{Config: cfg, Store: st, Logger: log})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	if err := wh.SyncConfig(ctx); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	rt, err = router.New(router.Options{
		Config:       cfg,
		Store:        st,
		Webhooks:     wh,
		Sinks:        sinks,
		Runtimes:     runtimes,
		SessionToken: func(id string) string { return api.SessionToken(key, id, time.Now().Add(tokenTTL)) },
		LeaseTTL:     cfg.Router.Lease.D(),
		Logger:       log,
		Registry:     g.registry,
	})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	var sessionsHook http.Handler
	if secrets := upstreamSecrets(cfg); len(secrets) > 0 {
		hh, err := runtime.NewHookHandler(runtime.HookConfig{Secrets: secrets, Sessions: sessions, Deliver: rt.DeliverOutput, Logger: log})
		if err != nil {
			return fmt.Errorf("gateway: /hooks/sessions: %w", err)
		}
		sessionsHook = hh
	}
	checks := map[string]adapters.Checker{}
	for _, b := range built {
		if c, ok := b.a.(adapters.Checker); ok {
			checks[b.name] = c
		}
	}
	consoleSessions := console.NewSessions(st, cfg.Console.SessionTTL.D(), nil)
	a, err := api.New(api.Options{
		Store:  st,
		Log:    rt.Log(),
		Tokens: tokens,
		Limits: api.Limits{
			MaxBody: cfg.Limits.MaxBody, MaxText: cfg.Limits.MaxText,
			RatePerSecond: cfg.Limits.RatePerSecond, Burst: cfg.Limits.Burst,
			FailedAuthPerMinute: cfg.Limits.FailedAuthPerMinute, StreamsPerToken: cfg.Limits.StreamsPerToken,
		},
		Registry: g.registry,
		Gatherer: g.registry,
		Logger:   log,
		Bindings: st,
		Outbox:   st,
		OnRetry:  rt.Wake,
		Webhooks: &api.WebhookOptions{Store: st, Replay: func(ctx context.Context, id string, since time.Time) (int, error) {
			n, err := wh.Replay(ctx, id, since)
			rt.Wake()
			return n, err
		}, RotationGrace: cfg.Webhooks.RotationGrace.D()},
		SessionKey:  key,
		Checks:      checks,
		CatchUps:    cu,
		LastInbound: rt.LastInbound,
		Console:     consoleSessions,
	})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	con, err := console.New(console.Options{
		Sessions: consoleSessions, Login: a, Logger: log,
		Secure: strings.HasPrefix(cfg.PublicURL, "https://"),
	})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(console.Prefix, con)
	mux.Handle("/hooks/", hooks(built, sessionsHook))
	mux.Handle("/", a)
	handler := lingering(mux, min(lingerTimeout, cfg.Limits.ReadTimeout.D()))
	g.api, g.handler, g.router, g.adapters, g.catchUps = a, handler, rt, built, cu
	return nil
}

func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger, m *store.Metrics) (store.Store, error) {
	if cfg.Store == "sqlite" {
		if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
			return nil, fmt.Errorf("gateway: data directory: %w", err)
		}
		path := filepath.Join(cfg.Data, "switchboard.db")
		st, err := sqlite.Open(ctx, path, sqlite.Options{Metrics: m, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		log.Info("store open", "engine", "sqlite", "path", path)
		return st, nil
	}
	st, err := postgres.Open(ctx, cfg.Store, postgres.Options{Metrics: m, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	log.Info("store open", "engine", "postgres")
	return st, nil
}

// tokens returns the static tokens (config and environment) and, when there
// are none and the store holds none, creates an admin token and prints it.
func (g *Gateway) tokens(ctx context.Context, getenv func(string) (string, bool), announce io.Writer) ([]api.StaticToken, error) {
	var out []api.StaticToken
	for _, t := range g.cfg.Tokens {
		out = append(out, api.StaticToken{Name: t.Name, Secret: t.Secret, Scopes: t.Scopes, Sessions: t.Sessions})
	}
	if v, ok := getenv(TokenEnv); ok && strings.TrimSpace(v) != "" {
		out = append(out, api.StaticToken{Name: "env", Secret: strings.TrimSpace(v), Scopes: []store.Scope{store.ScopeAdmin}})
	}
	if len(out) > 0 {
		return out, nil
	}
	n, err := g.store.CountTokens(ctx)
	if err != nil {
		return nil, fmt.Errorf("gateway: tokens: %w", err)
	}
	if n > 0 {
		return nil, nil
	}
	secret := api.NewTokenSecret()
	if err := g.store.CreateToken(ctx, store.Token{
		ID: "tok_admin", Hash: api.HashToken(secret), Name: "admin",
		Scopes: []store.Scope{store.ScopeAdmin}, CreatedAt: time.Now().UTC(),
	}); err != nil {
		return nil, fmt.Errorf("gateway: create admin token: %w", err)
	}
	fmt.Fprintf(announce, "\nCreated an admin token. It is shown only this once; keep it:\n\n  export SWITCHBOARD_TOKEN=%s\n\n", secret)
	return nil, nil
}

// Store is the gateway's store, for tests and tools that must reach past
// the API (preloading data, setting state no endpoint sets).
func (g *Gateway) Store() store.Store { return g.store }

// Handler is the gateway's HTTP handler.
func (g *Gateway) Handler() http.Handler { return g.handler }

// Serve answers HTTP on ln until ctx ends, then stops taking connections and
// waits up to grace for requests in flight. It does not close ln's gateway.
//
// The connections are bounded by the config's limits: how many are open at
// once and per client address (max_conns, max_conns_per_client), and how
// long reading a request (header_timeout, read_timeout), writing an
// ordinary response (write_timeout) and an idle connection (idle_timeout)
// may take. Event streams and long polls lift the read and write deadlines
// of their connection, and are capped per token instead
// (streams_per_token).
func (g *Gateway) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	lim := g.cfg.Limits
	srv := &http.Server{
		Handler:           g.handler,
		ReadHeaderTimeout: lim.HeaderTimeout.D(),
		ReadTimeout:       lim.ReadTimeout.D(),
		WriteTimeout:      lim.WriteTimeout.D(),
		IdleTimeout:       lim.IdleTimeout.D(),
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	ln = newLimitListener(ln, lim.MaxConns, max(0, lim.MaxConnsPerClient))
	srv.RegisterOnShutdown(g.api.Shutdown) // ends streams and long polls

	// The router and the adapters' long-running work stop with ctx; they
	// are waited for after the HTTP server has drained.
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = g.router.Run(bg) }()
	wg.Go(func() { g.catchUps.Run(bg) })
	for _, b := range g.adapters {
		if r, ok := b.a.(adapters.Runner); ok {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := r.Run(bg); err != nil && bg.Err() == nil {
					g.log.Error("adapter stopped", "adapter", b.name, "err", err)
				}
			}()
		}
	}
	defer func() { stopBG(); wg.Wait() }()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	g.log.Info("listening", "addr", ln.Addr().String())
	g.log.Info("operator console", "url", "http://"+ln.Addr().String()+console.Prefix)
	select {
	case err := <-errc:
		return fmt.Errorf("gateway: serve: %w", err)
	case <-ctx.Done():
	}
	g.log.Info("shutting down", "grace", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = srv.Close()
	}
	<-errc
	return err
}

// Close releases the store, waiting for appends in flight.
func (g *Gateway) Close() error { return g.store.Close() }
