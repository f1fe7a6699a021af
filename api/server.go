// Package api is Switchboard's HTTP API: the Steer API through which people
// and scripts create sessions and send them messages, the agent-facing API
// through which a session's agent reads its log (pull, long poll or
// Server-Sent Events) and posts outputs, and the operational endpoints
// /healthz, /readyz and /metrics.
//
// Every /v3 request carries a bearer token. Tokens have scopes: admin may do
// everything; steer may create, list and read sessions, send messages and
// read logs; agent may only read the logs of, and post outputs to, the
// sessions named on the token. Errors are always JSON:
//
//	{"error": {"code": "not_found", "message": "session \"ses_…\" does not exist"}}
package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/store"
)

// Defaults for Limits and Options.
const (
	DefaultMaxBody             int64   = 1 << 20  // 1 MiB
	DefaultMaxText             int     = 32 << 10 // 32 KiB
	DefaultRatePerSecond       float64 = 1000
	DefaultBurst               int     = 2000
	DefaultHeartbeat                   = 15 * time.Second
	DefaultFailedAuthPerMinute int     = 60
	DefaultStreamsPerToken     int     = 64

	// MaxWait caps the wait of a long poll (GET …/messages?wait=).
	MaxWait = 60 * time.Second
)

// Limits bound what one client may send. Zero fields take the defaults.
type Limits struct {
	// MaxBody is the largest request body accepted, in bytes (413 above it).
	MaxBody int64
	// MaxText is the longest message text accepted, in bytes (422 above it).
	MaxText int
	// RatePerSecond is the sustained request rate allowed per token (429 above
	// it); negative disables rate limiting.
	RatePerSecond float64
	// Burst is how many requests a token may make at once above the rate.
	// Zero means DefaultBurst with the default rate, else twice the rate.
	Burst int
	// FailedAuthPerMinute is how many requests with a missing or unknown
	// token one client address (see httpx.ClientKey) may make per minute,
	// in bursts of as many; past it the address's requests are answered
	// 429 before their token is looked at. Zero means
	// DefaultFailedAuthPerMinute; negative disables the limit.
	FailedAuthPerMinute int
	// StreamsPerToken caps the event streams and long polls one token may
	// hold open at once (429 above it); zero means DefaultStreamsPerToken.
	StreamsPerToken int
}

// withDefaults returns l with zero fields set to the defaults.
func (l Limits) withDefaults() Limits {
	if l.MaxBody <= 0 {
		l.MaxBody = DefaultMaxBody
	}
	if l.MaxText <= 0 {
		l.MaxText = DefaultMaxText
	}
	if l.RatePerSecond == 0 {
		l.RatePerSecond = DefaultRatePerSecond
		if l.Burst <= 0 {
			l.Burst = DefaultBurst
		}
	}
	if l.Burst <= 0 {
		l.Burst = max(1, int(2*l.RatePerSecond))
	}
	if l.FailedAuthPerMinute == 0 {
		l.FailedAuthPerMinute = DefaultFailedAuthPerMinute
	}
	if l.StreamsPerToken <= 0 {
		l.StreamsPerToken = DefaultStreamsPerToken
	}
	return l
}

// StaticToken is a token from the configuration or SWITCHBOARD_TOKEN, held in
// memory rather than in the store.
type StaticToken struct {
	// Name identifies the token's principal: messages sent with it have the
	// actor id "client:<Name>", outputs "agent:<Name>".
	Name   string
	Secret string
	Scopes []store.Scope
	// Sessions lists the sessions an agent-scoped token may act on.
	Sessions []string
}

// Options configure a Server. Store is required.
type Options struct {
	// Store holds sessions, logs and tokens.
	Store store.Store
	// Log is where appends go and logs are read from; nil means Store.
	// Tests set it to a wrapper of the store's Log to watch what the server
	// reads and appends.
	Log store.Log
	// Tokens are the static tokens, checked before the store's.
	Tokens []StaticToken
	// Limits bound request sizes and rates.
	Limits Limits
	// Registry receives the HTTP metrics; nil records none.
	Registry prometheus.Registerer
	// Gatherer is what GET /metrics serves; nil means Registry when it is also
	// a Gatherer (a *prometheus.Registry), and with neither /metrics is 404.
	Gatherer prometheus.Gatherer
	// Logger receives server errors and failed readiness checks; nil
	// discards them.
	Logger *slog.Logger
	// Now is the clock for envelope timestamps and rate limits; nil means
	// time.Now.
	Now func() time.Time
	// Bindings and Outbox, when set, serve the router's endpoints:
	// /v3/sessions/{id}/conversations and /v3/deliveries.
	Bindings store.Bindings
	Outbox   store.Outbox
	// Checks report the health of the channels (adapters) by name; /readyz
	// lists them. A failing channel does not make the gateway unready: the
	// other channels keep working.
	Checks map[string]adapters.Checker
	// LastInbound, if not nil, says when each source last delivered a
	// message to this replica (/readyz's last_event).
	LastInbound func() map[string]time.Time
	// CatchUps, if not nil, serves POST /v3/channels/{name}/catch-up and
	// adds each channel's last catch-up to /readyz.
	CatchUps CatchUps
	// SessionKey, when set, makes the server accept session-scoped tokens
	// minted by SessionToken with this key.
	SessionKey []byte
	// OnRetry, if set, is called after a delivery is made due again (the
	// router uses it to wake its delivery workers).
	OnRetry func()
	// Heartbeat is how often an idle event stream sends a comment to keep
	// proxies from closing it; 0 means DefaultHeartbeat.
	Heartbeat time.Duration
	// Webhooks, when set, serves the outbound webhook endpoints
	// (/v3/webhooks; see webhooks.go).
	Webhooks *WebhookOptions
	// Console, when set, makes /v3 accept the operator console's session
	// cookie in place of a bearer token (see console.go).
	Console ConsoleSessions
}

// Server is the HTTP API. It is an http.Handler, safe for concurrent use.
type Server struct {
	store     store.Store
	log       store.Log
	limits    Limits
	logger    *slog.Logger
	now       func() time.Time
	heartbeat time.Duration

	auth    *authenticator
	limiter *rateLimiter
	// failures limits failed authentications per client address.
	failures *rateLimiter
	streams  *streamSlots
	metrics  *httpMetrics
	handler  http.Handler
	mux      *http.ServeMux
	// patterns are the patterns registered on mux by routes, in order, but
	// for the catch-all "/": what the OpenAPI document must describe.
	patterns []string

	bindings store.Bindings
	outbox   store.Outbox
	onRetry  func()
	webhooks *WebhookOptions
	checks   map[string]adapters.Checker
	catchUps CatchUps
	lastIn   func() map[string]time.Time
	// sessionKey verifies session-scoped tokens (see SessionToken).
	sessionKey []byte
	// console resolves console session cookies; nil takes none.
	console ConsoleSessions

	// health follows failed store writes, for /readyz (see unavailable.go).
	health writeHealth

	shutdownOnce sync.Once
	done         chan struct{} // closed by Shutdown
}

// New builds a Server from opts. It does no I/O: the store is first used by
// the first request.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("api: options: Store is required")
	}
	auth, err := newAuthenticator(opts.Store, opts.Tokens)
	if err != nil {
		return nil, err
	}
	s := &Server{
		store:      opts.Store,
		log:        opts.Log,
		limits:     opts.Limits.withDefaults(),
		logger:     opts.Logger,
		now:        opts.Now,
		heartbeat:  opts.Heartbeat,
		bindings:   opts.Bindings,
		outbox:     opts.Outbox,
		onRetry:    opts.OnRetry,
		webhooks:   opts.Webhooks,
		checks:     opts.Checks,
		catchUps:   opts.CatchUps,
		lastIn:     opts.LastInbound,
		sessionKey: opts.SessionKey,
		console:    opts.Console,
		auth:       auth,
		done:       make(chan struct{}),
	}
	if s.log == nil {
		s.log = opts.Store
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.heartbeat <= 0 {
		s.heartbeat = DefaultHeartbeat
	}
	s.limiter = newRateLimiter(s.limits.RatePerSecond, s.limits.Burst, s.now)
	if n := s.limits.FailedAuthPerMinute; n > 0 {
		s.failures = newRateLimiter(float64(n)/60, n, s.now)
		s.failures.maxKeys = failureKeysMax
	}
	s.streams = &streamSlots{max: s.limits.StreamsPerToken, open: map[string]int{}}
	if s.metrics, err = newHTTPMetrics(opts.Registry); err != nil {
		return nil, fmt.Errorf("api: register metrics: %w", err)
	}
	gatherer := opts.Gatherer
	if g, ok := opts.Registry.(prometheus.Gatherer); ok && gatherer == nil {
		gatherer = g
	}
	s.routes(gatherer)
	s.handler = s.metrics.middleware(s.watchWrites(s.mux))
	return s, nil
}

// access is what a route needs of the caller's token.
type access int

const (
	// public routes need no token.
	public access = iota
	// steering: create, list and read sessions, send messages (admin, steer).
	steering
	// reading: read a session's log (admin, steer, or agent for the session).
	reading
	// output: post a session's outputs (admin, or agent for the session).
	output
	// administration: gateway-wide operations such as the outbox (admin).
	administration
)

// methods are those used by some route, for the Allow header of a 405.
var methods = []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete}

func (s *Server) routes(gatherer prometheus.Gatherer) {
	s.mux = http.NewServeMux()
	handle := func(pattern string, a access, h http.HandlerFunc) {
		var handler http.Handler = h
		if a != public {
			handler = s.authenticate(a)(s.limiter.middleware(handler))
		}
		s.mux.Handle(pattern, handler)
		s.patterns = append(s.patterns, pattern)
	}
	handle("GET /v3/openapi.json", public, serveOpenAPI)
	handle("POST /v3/sessions", steering, s.createSession)
	handle("GET /v3/sessions", steering, s.listSessions)
	handle("GET /v3/sessions/{id}", steering, s.getSession)
	handle("POST /v3/sessions/{id}/messages", steering, s.postMessage)
	handle("GET /v3/sessions/{id}/messages", reading, s.readMessages)
	handle("GET /v3/sessions/{id}/stream", reading, s.stream)
	handle("POST /v3/sessions/{id}/outputs", output, s.postOutput)
	if s.bindings != nil {
		handle("GET /v3/sessions/{id}/conversations", reading, s.listConversations)
		handle("POST /v3/sessions/{id}/conversations", administration, s.addConversation)
		handle("POST /v3/sessions/{id}/conversations/{cid}/resume", steering, s.resumeConversation)
		handle("GET /v3/conversations", steering, s.findConversation)
	}
	if s.outbox != nil {
		handle("GET /v3/deliveries", administration, s.listDeliveries)
		handle("POST /v3/deliveries/{id}/retry", administration, s.retryDelivery)
		handle("GET /v3/deliveries/{id}/attempts", administration, s.listDeliveryAttempts)
	}
	if s.webhooks != nil && s.webhooks.Store != nil {
		handle("POST /v3/webhooks", administration, s.createWebhook)
		handle("GET /v3/webhooks", administration, s.listWebhooks)
		handle("GET /v3/webhooks/{id}", administration, s.getWebhook)
		handle("PATCH /v3/webhooks/{id}", administration, s.patchWebhook)
		handle("DELETE /v3/webhooks/{id}", administration, s.deleteWebhook)
		handle("POST /v3/webhooks/{id}/rotate-secret", administration, s.rotateWebhookSecret)
		handle("GET /v3/webhooks/{id}/deliveries", administration, s.listWebhookDeliveries)
		handle("POST /v3/webhooks/{id}/replay", administration, s.replayWebhook)
	}

	if s.catchUps != nil {
		handle("POST /v3/channels/{name}/catch-up", administration, s.catchUp)
	}

	handle("GET /healthz", public, s.healthz)
	handle("GET /readyz", public, s.readyz)
	if gatherer != nil {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
		s.patterns = append(s.patterns, "GET /metrics")
	}
	s.mux.HandleFunc("/", s.unmatched)
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

// Shutdown ends every open event stream and long poll, so that
// http.Server.Shutdown, which waits for requests in flight, can finish. It
// returns at once and is safe to call more than once; pass it to
// http.Server.RegisterOnShutdown. Other requests are served as before.
func (s *Server) Shutdown() {
	s.shutdownOnce.Do(func() { close(s.done) })
}

// unmatched answers requests that no route matches: 405 with Allow when the
// path exists for another method, else 404.
func (s *Server) unmatched(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range methods {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/" && pattern != "" {
			allowed = append(allowed, m)
			if m == http.MethodGet {
				allowed = append(allowed, http.MethodHead)
			}
		}
	}
	if len(allowed) > 0 {
		list := strings.Join(allowed, ", ")
		w.Header().Set("Allow", list)
		s.writeError(w, r, errorf(http.StatusMethodNotAllowed, codeMethodNotAllowed,
			"%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, list))
		return
	}
	s.writeError(w, r, errorf(http.StatusNotFound, codeNotFound, "no route for %s %s", r.Method, r.URL.Path))
}

// healthz reports that the process serves requests.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyzTimeout bounds the store ping of /readyz.
const readyzTimeout = 2 * time.Second

// readyz reports whether the store answers and writes: 200, or 503 with
// the reason. The store is taken not to write while its last write failed
// unavailable (store.ErrUnavailable) less than unavailableReadyFor ago.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyzTimeout)
	defer cancel()
	if err := s.health.unready(s.now()); err != nil {
		// Logged already, at most once per unavailableLogEvery.
		w.Header().Set("Retry-After", strconv.Itoa(int(unavailableRetryAfter/time.Second)))
		s.writeError(w, r, errorf(http.StatusServiceUnavailable, codeUnavailable, "store cannot write: %v", err))
		return
	}
	if err := s.store.Ping(ctx); err != nil {
		s.logger.WarnContext(ctx, "api: readiness check failed", "err", err)
		s.writeError(w, r, errorf(http.StatusServiceUnavailable, codeUnavailable, "store is not ready: %v", err))
		return
	}
	resp := struct {
		Status   string                   `json:"status"`
		Channels map[string]string        `json:"channels,omitempty"`
		CatchUp  map[string]CatchUpStatus `json:"catch_up,omitempty"`
		// LastEvent is when each channel (by source) last delivered a
		// message to this replica.
		LastEvent map[string]time.Time `json:"last_event,omitempty"`
	}{Status: "ready"}
	if s.catchUps != nil {
		resp.CatchUp = s.catchUps.CatchUpStatus()
	}
	if s.lastIn != nil {
		if m := s.lastIn(); len(m) > 0 {
			resp.LastEvent = m
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.checks)) {
		if resp.Channels == nil {
			resp.Channels = map[string]string{}
		}
		resp.Channels[name] = "ok"
		if err := s.checks[name].Check(ctx); err != nil {
			resp.Channels[name] = "unhealthy: " + err.Error()
			resp.Status = "degraded"
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// HashToken returns the SHA-256 of a token secret, the form in which tokens
// are stored and compared.
func HashToken(secret string) [32]byte { return sha256.Sum256([]byte(secret)) }
