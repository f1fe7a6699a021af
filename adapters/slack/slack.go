// Package slack is Switchboard's Slack adapter: a person mentions the bot in
// a channel (or DMs it), the thread becomes a conversation bound to a
// session, and whatever the session says is posted back into the thread.
//
// Inbound, it takes Events API callbacks over HTTP (POST /events under the
// gateway's /hooks/slack/, signed with the app's signing secret) or over
// Socket Mode (an xapp- app token; no public URL needed), turns app_mention
// and message events into envelopes and hands them to the router. Outbound,
// it posts replies with chat.postMessage into the conversation's thread,
// converting the agent's Markdown to Slack mrkdwn; as an adapters.Editor it
// edits and deletes them (chat.update, chat.delete) and streams partial
// replies (chat.startStream, appendStream, stopStream), see edit.go.
//
// Conversation anchors (envelope.Conversation.Ref) are "<team>/<channel>/<thread
// root ts>"; envelope ids are "slack:<team>/<channel>/<ts>" for messages (see
// README.md for why not the event id). The adapter registers itself as the
// "slack" plugin.
package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/slack-go/slack"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/internal/bounded"
	"github.com/switchboardhq/switchboard/adapters/internal/catchup"
	"github.com/switchboardhq/switchboard/adapters/internal/health"
	"github.com/switchboardhq/switchboard/adapters/internal/lookup"
	"github.com/switchboardhq/switchboard/config/duration"
	"github.com/switchboardhq/switchboard/internal/retry"
	"github.com/switchboardhq/switchboard/store"
)

// Name is the plugin name, the envelope source and the conversation source.
const Name = "slack"

func init() {
	adapters.Register(adapters.Typed(Name, func() *Config { c := &Config{}; c.defaults(); return c }, New))
}

// Compile-time checks of the capabilities the gateway looks for.
var (
	_ adapters.Adapter     = (*Adapter)(nil)
	_ adapters.HTTPHandler = (*Adapter)(nil)
	_ adapters.Runner      = (*Adapter)(nil)
	_ adapters.Checker     = (*Adapter)(nil)
	_ adapters.CatchUpper  = (*Adapter)(nil)
	_ adapters.Editor      = (*Adapter)(nil)
	_ adapters.Progress    = (*Adapter)(nil)
)

// Config is the "adapters: slack:" section of the gateway's configuration.
type Config struct {
	// BotToken is the bot user OAuth token (xoxb-…), used for every Web API
	// call. Required.
	BotToken string `yaml:"bot_token"`
	// SigningSecret verifies Events API requests over HTTP. Required unless
	// AppToken is set; without it the HTTP endpoint answers 404.
	SigningSecret string `yaml:"signing_secret"`
	// AppToken is an app-level token (xapp-…) with connections:write; when
	// set, events are received over Socket Mode.
	AppToken string `yaml:"app_token"`
	// APIURL is the Web API base URL (default https://slack.com/api/); tests
	// and proxies set it.
	APIURL string `yaml:"api_url"`
	// MaxBody caps an Events API request body in bytes (default 1 MiB).
	MaxBody int64 `yaml:"max_body"`
	// MaxChars is the longest text posted in one message, in characters
	// (default 3900, under Slack's recommended 4000); longer replies are
	// split on paragraph boundaries.
	MaxChars int `yaml:"max_chars"`
	// LookupTimeout bounds the Web API lookups (auth.test, users.info) made
	// while an event is acknowledged (default 1s), so that Slack's 3-second
	// limit holds; a lookup that times out leaves a name unresolved.
	LookupTimeout duration.Duration `yaml:"lookup_timeout"`
	// UserCacheTTL is how long a resolved display name is kept (default 1h).
	UserCacheTTL duration.Duration `yaml:"user_cache_ttl"`
	// Reactions configures the progress reactions (see Adapter.MarkWorking).
	Reactions Reactions `yaml:"reactions"`
	// Streaming posts a partial reply in a thread with Slack's native
	// streaming (chat.startStream, appendStream, stopStream) rather than
	// chat.postMessage and chat.update (default true). A channel where
	// Slack refuses it falls back by itself.
	Streaming *bool `yaml:"streaming"`
	// Assistant treats threads in DMs as assistant threads (the app has
	// Slack's Agents & AI Apps feature on): while a turn runs there, the
	// thread shows "is thinking…" (assistant.threads.setStatus).
	Assistant bool `yaml:"assistant"`
}

// Reactions configures the reactions put on a triggering message.
type Reactions struct {
	// Enabled turns progress reactions on (default true).
	Enabled *bool `yaml:"enabled"`
	// DirectMessages also reacts in DMs (default false).
	DirectMessages bool `yaml:"direct_messages"`
	// Working is the emoji name added while a session works (default
	// "eyes"); Done replaces it when the session goes idle (default
	// "white_check_mark").
	Working string `yaml:"working"`
	Done    string `yaml:"done"`
}

// Defaults of Config.
const (
	DefaultAPIURL        = slack.APIURL
	DefaultMaxBody       = 1 << 20
	DefaultMaxChars      = 3900
	DefaultLookupTimeout = time.Second
	DefaultUserCacheTTL  = time.Hour
)

func (c *Config) defaults() {
	if c.APIURL == "" {
		c.APIURL = DefaultAPIURL
	}
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.MaxChars == 0 {
		c.MaxChars = DefaultMaxChars
	}
	if c.LookupTimeout == 0 {
		c.LookupTimeout = duration.Duration(DefaultLookupTimeout)
	}
	if c.UserCacheTTL == 0 {
		c.UserCacheTTL = duration.Duration(DefaultUserCacheTTL)
	}
	if c.Reactions.Enabled == nil {
		on := true
		c.Reactions.Enabled = &on
	}
	if c.Streaming == nil {
		on := true
		c.Streaming = &on
	}
	if c.Reactions.Working == "" {
		c.Reactions.Working = "eyes"
	}
	if c.Reactions.Done == "" {
		c.Reactions.Done = "white_check_mark"
	}
}

// Validate checks c and returns every problem, each naming its key relative
// to the section ("signing_secret: is required …").
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	switch {
	case c.BotToken == "":
		bad("bot_token", "is required (the bot user OAuth token, xoxb-…)")
	case strings.HasPrefix(c.BotToken, "xapp-"):
		bad("bot_token", "is an app-level token (xapp-…); put it in app_token and set the bot token (xoxb-…) here")
	}
	if c.SigningSecret == "" && c.AppToken == "" {
		bad("signing_secret", "is required for the Events API over HTTP (or set app_token to use Socket Mode)")
	}
	if c.AppToken != "" && !strings.HasPrefix(c.AppToken, "xapp-") {
		bad("app_token", "must be an app-level token starting with xapp-")
	}
	if c.APIURL != "" && !strings.HasPrefix(c.APIURL, "https://") && !strings.HasPrefix(c.APIURL, "http://") {
		bad("api_url", "must be an http(s) URL, got %q", c.APIURL)
	}
	if c.MaxBody < 0 {
		bad("max_body", "must not be negative")
	}
	if c.MaxChars < 0 || c.MaxChars > 40000 {
		bad("max_chars", "must be between 1 and 40000 (Slack truncates longer messages)")
	} else if c.MaxChars > 0 && c.MaxChars < 100 {
		bad("max_chars", "must be at least 100")
	}
	if c.LookupTimeout < 0 {
		bad("lookup_timeout", "must not be negative")
	}
	if c.UserCacheTTL < 0 {
		bad("user_cache_ttl", "must not be negative")
	}
	for key, v := range map[string]string{"reactions.working": c.Reactions.Working, "reactions.done": c.Reactions.Done} {
		if strings.ContainsAny(v, ": \t") {
			bad(key, "is an emoji name without colons, like \"eyes\", got %q", v)
		}
	}
	return errors.Join(errs...)
}

// Adapter is the Slack channel. It is a Sink, an HTTPHandler (POST /events),
// a Runner (identity check and Socket Mode), a Checker and a CatchUpper
// (catchup.go). Its methods are safe for concurrent use.
type Adapter struct {
	cfg     Config
	ingress adapters.Ingress
	log     *slog.Logger
	now     func() time.Time
	api     *slack.Client
	httpc   *http.Client
	metrics *metrics

	authSem chan struct{} // held while auth.test runs
	idMu    sync.RWMutex
	id      identity // zero until auth.test succeeded

	health *health.Tracker // which credentials Slack rejects

	users *lookup.Cache[string, string]  // user id → display name
	sent  *bounded.Map[string, []string] // delivery id → ts of the parts posted

	// Live replies (edit.go).
	state    store.KV                           // Deps.State; nil without a store
	records  *bounded.Map[string, cachedRecord] // recordKey → record, in front of state
	askers   *bounded.Map[string, string]       // conversation ref → who last wrote there
	noStream *bounded.Map[string, bool]         // channels where Slack refused chat.startStream
	handler  http.Handler

	// Catch-up (catchup.go).
	marks          *catchup.Marks // nil without a state store
	convs          convLocks      // orders a conversation's live messages after its catch-up
	appID          atomic.Value   // string: the app's id, from the events' api_app_id
	requestCatchUp func()         // Deps.RequestCatchUp
	socketUp       atomic.Bool    // a Socket Mode connection was up before
	// sleep waits d unless ctx ends first (retry.Sleep; tests shorten it).
	sleep func(ctx context.Context, d time.Duration) bool
}

// identity is who the gateway is in Slack, learned with auth.test.
type identity struct {
	TeamID string
	UserID string // the bot user's id (U…)
	BotID  string // the bot's id (B…)
}

// New builds the adapter from a validated configuration. It does no I/O:
// the bot identity is learned by Run (or by the first event). It refuses a
// configuration without a bot token, or without a signing secret unless
// Socket Mode is configured.
func New(cfg *Config, deps adapters.Deps) (*Adapter, error) {
	c := *cfg
	c.defaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("slack: config: %w", err)
	}
	if deps.Ingress == nil {
		return nil, errors.New("slack: no ingress")
	}
	deps = deps.WithDefaults(Name)
	a := &Adapter{
		cfg:     c,
		ingress: deps.Ingress,
		log:     deps.Logger,
		now:     deps.Now,
		httpc:   deps.HTTPClient,
		authSem: make(chan struct{}, 1),
		sent:    bounded.NewMap[string, []string](4096),

		state:    deps.State,
		records:  bounded.NewMap[string, cachedRecord](4096),
		askers:   bounded.NewMap[string, string](4096),
		noStream: bounded.NewMap[string, bool](1024),

		requestCatchUp: deps.RequestCatchUp,
		sleep:          retry.Sleep,
	}
	if deps.State != nil {
		a.marks = catchup.New(deps.State, Name, deps.Now)
	}
	a.users = lookup.New[string, string](lookup.Options{TTL: c.UserCacheTTL.D(), NegativeTTL: negativeTTL, Max: 10000, Now: a.now})
	a.api = a.newAPI()
	a.handler = a.newHandler()
	m, err := newMetrics(deps.Registry)
	if err != nil {
		return nil, fmt.Errorf("slack: metrics: %w", err)
	}
	a.metrics = m
	a.health = health.New(Name, []string{credBot, credApp}, m.healthy, a.log)
	return a, nil
}

// newAPI returns a Web API client with the bot token (and the app token for
// Socket Mode).
func (a *Adapter) newAPI() *slack.Client {
	apiURL := a.cfg.APIURL
	if !strings.HasSuffix(apiURL, "/") {
		apiURL += "/"
	}
	opts := []slack.Option{
		slack.OptionAPIURL(apiURL),
		slack.OptionHTTPClient(capturingClient{a.httpc}),
		slack.OptionLog(slogOutput{a.log}),
	}
	if a.cfg.AppToken != "" {
		opts = append(opts, slack.OptionAppLevelToken(a.cfg.AppToken))
	}
	return slack.New(a.cfg.BotToken, opts...)
}

// Run learns the bot identity with auth.test, retrying with capped backoff,
// then, when an app token is configured, receives events over Socket Mode.
// It blocks until ctx ends and returns nil then. Rejected credentials mark
// the adapter unhealthy (see Check) but do not end Run: it keeps retrying
// slowly, so other channels are unaffected.
func (a *Adapter) Run(ctx context.Context) error {
	bo := retry.Backoff{Min: time.Second, Max: 5 * time.Minute}
	if !retry.Until(ctx, &bo, a.log, "auth.test", func() error {
		_, err := a.identityWithin(ctx, 15*time.Second)
		return err
	}) {
		return nil
	}
	if a.cfg.AppToken != "" {
		a.runSocket(ctx)
		return nil
	}
	<-ctx.Done()
	return nil
}

// Check reports an error while Slack rejects one of the adapter's
// credentials (invalid_auth, account_inactive, token_revoked, …), naming the
// token and the reason. A later successful call with that token clears it.
// It does no I/O.
func (a *Adapter) Check(context.Context) error { return a.health.Err() }

// The credentials whose health is tracked.
const (
	credBot = "bot_token"
	credApp = "app_token"
)

// identity returns the bot identity, calling auth.test (bounded by
// LookupTimeout) the first time. Concurrent callers wait for one call.
func (a *Adapter) identity(ctx context.Context) (identity, error) {
	return a.identityWithin(ctx, a.cfg.LookupTimeout.D())
}

// identityWithin is identity with auth.test bounded by timeout.
func (a *Adapter) identityWithin(ctx context.Context, timeout time.Duration) (identity, error) {
	a.idMu.RLock()
	id := a.id
	a.idMu.RUnlock()
	if id.UserID != "" {
		return id, nil
	}
	select {
	case a.authSem <- struct{}{}:
		defer func() { <-a.authSem }()
	case <-ctx.Done():
		return identity{}, ctx.Err()
	}
	a.idMu.RLock()
	id = a.id
	a.idMu.RUnlock()
	if id.UserID != "" {
		return id, nil
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := a.api.AuthTestContext(actx)
	if err != nil {
		err = a.classify(err)
		return identity{}, fmt.Errorf("slack: auth.test: %w", err)
	}
	if res.UserID == "" {
		return identity{}, errors.New("slack: auth.test: no user id in the answer")
	}
	id = identity{TeamID: res.TeamID, UserID: res.UserID, BotID: res.BotID}
	a.idMu.Lock()
	a.id = id
	a.idMu.Unlock()
	a.health.Accept(credBot)
	a.log.Info("authenticated", "team", res.TeamID, "bot_user", res.UserID, "bot_id", res.BotID)
	return id, nil
}

// slogOutput lets slack-go's logger write to slog at debug level.
type slogOutput struct{ log *slog.Logger }

func (o slogOutput) Output(_ int, s string) error {
	o.log.Debug(strings.TrimSpace(s), "from", "slack-go")
	return nil
}

type metrics struct {
	events   *prometheus.CounterVec
	rejected *prometheus.CounterVec
	posts    *prometheus.CounterVec
	healthy  prometheus.Gauge
	socket   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_slack_events_total",
			Help: "Slack events received, by transport (http, socket) and outcome (ingested, duplicate, dropped, own, ignored, error).",
		}, []string{"transport", "outcome"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_slack_rejected_requests_total",
			Help: "Events API requests refused before parsing, by reason (missing, malformed, stale, future, mismatch, too_large).",
		}, []string{"reason"}),
		posts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_slack_posts_total",
			Help: "chat.postMessage calls, by result (ok, rate_limited, permanent, error).",
		}, []string{"result"}),
		healthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_slack_healthy",
			Help: "1 unless Slack rejected the adapter's credentials.",
		}),
		socket: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_slack_socket_connected",
			Help: "1 while a Socket Mode connection is up.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.events, m.rejected, m.posts, m.healthy, m.socket} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
