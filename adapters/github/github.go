// Package github is Switchboard's GitHub adapter: someone comments on an
// issue or pull request (mentioning the bot, or using a trigger), that issue
// or pull request becomes a conversation bound to a session, and whatever
// the session says comes back as comments on it.
//
// Inbound, it takes repository or GitHub App webhooks at POST / under the
// gateway's /hooks/github/ (signed with X-Hub-Signature-256), turns
// issue_comment, pull_request_review_comment, pull_request_review, issues and
// pull_request events into envelopes and hands them to the router. Outbound,
// it posts comments with the REST API (Issues.CreateComment, or
// PullRequests.CreateCommentInReplyTo inside a review thread), authenticated
// with a personal access token or as a GitHub App installation, and edits
// and deletes them when the agent changes a reply (edit.go).
//
// Conversation anchors (envelope.Conversation.Ref) are "<owner>/<repo>#<n>"
// for an issue or pull request and "<owner>/<repo>#<n>/review-thread/<id>"
// for a review-comment thread, where id is the thread's first comment.
// Envelope ids are made of signed payload fields ("github:issue-comment/<id>",
// see commentKey), never of the unsigned X-GitHub-Delivery header.
//
// After downtime, CatchUp (adapters.CatchUpper) fetches the issue and review
// comments written meanwhile with the REST API and ingests them as their
// webhooks would have been (see catchup.go). The adapter registers itself
// as the "github" plugin.
package github

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/internal/bounded"
	"github.com/switchboardhq/switchboard/adapters/internal/catchup"
	"github.com/switchboardhq/switchboard/adapters/internal/health"
	"github.com/switchboardhq/switchboard/adapters/internal/lookup"
	"github.com/switchboardhq/switchboard/adapters/internal/msgparts"
	"github.com/switchboardhq/switchboard/config/duration"
	"github.com/switchboardhq/switchboard/internal/retry"
)

// Name is the plugin name, the envelope source and the conversation source.
const Name = "github"

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
)

// Config is the "adapters: github:" section of the gateway's configuration.
// Exactly one of Token and App authenticates the adapter.
type Config struct {
	// WebhookSecret verifies X-Hub-Signature-256 on every webhook. Required:
	// the adapter never accepts unsigned requests.
	WebhookSecret string `yaml:"webhook_secret"`
	// Token is a personal access token (classic or fine-grained) of the
	// account the gateway posts as.
	Token string `yaml:"token"`
	// App authenticates as a GitHub App installation instead of Token.
	App AppConfig `yaml:"app"`
	// Login is the token's account login. Optional: when empty it is learned
	// with GET /user; setting it lets webhooks be handled before that call.
	Login string `yaml:"login"`
	// APIURL is the REST API base URL (default https://api.github.com/; for
	// GitHub Enterprise Server https://HOST/api/v3/).
	APIURL string `yaml:"api_url"`
	// Triggers say which comments and events address the gateway.
	Triggers Triggers `yaml:"triggers"`
	// OpenedSteers passes issues and pull requests when they are opened,
	// with their title and body as the message (default false: only
	// comments, reviews, labels and assignments are passed).
	OpenedSteers bool `yaml:"opened_steers"`
	// AllowBots passes events whose sender is a bot (sender.type "Bot"),
	// marked FromBot, to the router; by default the adapter drops them.
	AllowBots bool `yaml:"allow_bots"`
	// MaxBody caps a webhook request body in bytes (default 5 MiB, at most
	// 25 MiB, GitHub's own cap).
	MaxBody int64 `yaml:"max_body"`
	// MaxChars is the longest comment posted, in characters, marker
	// included (default and maximum 65536, GitHub's limit); longer replies
	// are split.
	MaxChars int `yaml:"max_chars"`
	// LookupTimeout bounds the API calls made while a webhook is answered
	// (identity, installation token, pull request head; default 3s), so the
	// answer comes within GitHub's 10-second limit.
	LookupTimeout duration.Duration `yaml:"lookup_timeout"`
	// PRCacheTTL is how long a fetched pull request head (branch, commit) is
	// reused (default 1m).
	PRCacheTTL duration.Duration `yaml:"pr_cache_ttl"`
	// Reactions configures the progress reaction (see Adapter.MarkWorking).
	Reactions Reactions `yaml:"reactions"`
}

// AppConfig authenticates as a GitHub App: a JWT signed with the app's
// private key is exchanged for a token of the installation that sent the
// webhook.
type AppConfig struct {
	// ID is the App ID from the app's settings page.
	ID int64 `yaml:"id"`
	// Slug is the app's URL name; its comments are authored by
	// "<slug>[bot]". Optional: when empty it is learned with GET /app.
	Slug string `yaml:"slug"`
	// PrivateKey is the PEM private key (usually ${GITHUB_APP_PRIVATE_KEY});
	// PrivateKeyFile names a file holding it instead.
	PrivateKey     string `yaml:"private_key"`
	PrivateKeyFile string `yaml:"private_key_file"`
	// InstallationID is used for repositories whose installation no webhook
	// has named yet (optional; otherwise it is looked up with
	// GET /repos/{owner}/{repo}/installation).
	InstallationID int64 `yaml:"installation_id"`
}

// Triggers say what addresses the gateway. A mention of the bot's own
// login (or, for an App, its slug) always counts.
type Triggers struct {
	// Mentions are more names (without @) whose mention addresses the
	// gateway, like "agent" for "@agent".
	Mentions []string `yaml:"mentions"`
	// Command is a slash command ("/agent"): a comment whose first line
	// starts with it is addressed, and the command is stripped.
	Command string `yaml:"command"`
	// Label, when set, makes adding that label to an issue or pull request
	// a trigger; the message is the title and body.
	Label string `yaml:"label"`
	// Assignment makes assigning an issue or pull request to the bot's
	// account a trigger (default true; a GitHub App cannot be assigned).
	Assignment *bool `yaml:"assignment"`
}

// Reactions configures the reaction put on a triggering comment.
type Reactions struct {
	// Enabled turns the progress reaction on (default true).
	Enabled *bool `yaml:"enabled"`
	// Working is the reaction added when a session starts on the comment
	// (default "eyes"); one of GitHub's reaction contents.
	Working string `yaml:"working"`
}

// Defaults and limits of Config.
const (
	DefaultAPIURL        = "https://api.github.com/"
	DefaultMaxBody       = 5 << 20
	MaxMaxBody           = 25 << 20
	DefaultMaxChars      = 65536
	DefaultLookupTimeout = 3 * time.Second
	DefaultPRCacheTTL    = time.Minute
)

// reactionContents are the reactions GitHub accepts.
var reactionContents = map[string]bool{"+1": true, "-1": true, "laugh": true, "confused": true, "heart": true, "hooray": true, "rocket": true, "eyes": true}

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
	if c.PRCacheTTL == 0 {
		c.PRCacheTTL = duration.Duration(DefaultPRCacheTTL)
	}
	if c.Triggers.Assignment == nil {
		on := true
		c.Triggers.Assignment = &on
	}
	if c.Reactions.Enabled == nil {
		on := true
		c.Reactions.Enabled = &on
	}
	if c.Reactions.Working == "" {
		c.Reactions.Working = "eyes"
	}
}

// Validate checks c and returns every problem, each naming its key relative
// to the section ("webhook_secret: is required …").
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.WebhookSecret == "" {
		bad("webhook_secret", "is required (the secret set on the webhook or GitHub App); unsigned webhooks are never accepted")
	}
	app := c.App != (AppConfig{})
	switch {
	case c.Token == "" && !app:
		bad("token", "is required unless app is set (a personal access token, or a GitHub App under app:)")
	case c.Token != "" && app:
		bad("app", "cannot be set together with token; choose one")
	}
	if app {
		if c.App.ID <= 0 {
			bad("app.id", "is required (the App ID from the app's settings page)")
		}
		switch {
		case c.App.PrivateKey == "" && c.App.PrivateKeyFile == "":
			bad("app.private_key", "is required (the app's PEM private key), or set app.private_key_file")
		case c.App.PrivateKey != "" && c.App.PrivateKeyFile != "":
			bad("app.private_key_file", "cannot be set together with app.private_key")
		}
		if c.App.InstallationID < 0 {
			bad("app.installation_id", "must not be negative")
		}
		if c.App.Slug != "" && !validLogin(c.App.Slug) {
			bad("app.slug", "%q is not an app slug (letters, digits and '-', without [bot])", c.App.Slug)
		}
		if c.Login != "" {
			bad("login", "is for token authentication; a GitHub App posts as <app.slug>[bot]")
		}
	}
	if c.Login != "" && !validLogin(c.Login) {
		bad("login", "%q is not a GitHub login (without @)", c.Login)
	}
	if u, err := url.Parse(c.APIURL); c.APIURL != "" && (err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "") {
		bad("api_url", "must be an http(s) URL, got %q", c.APIURL)
	}
	for i, m := range c.Triggers.Mentions {
		if !validLogin(strings.TrimSuffix(m, "[bot]")) {
			bad(fmt.Sprintf("triggers.mentions[%d]", i), "%q is not a login or team-like name (without @)", m)
		}
	}
	if cmd := c.Triggers.Command; cmd != "" && (!strings.HasPrefix(cmd, "/") || len(cmd) < 2 || strings.ContainsAny(cmd, " \t\r\n")) {
		bad("triggers.command", "must be a slash command like \"/agent\", got %q", cmd)
	}
	if strings.TrimSpace(c.Triggers.Label) != c.Triggers.Label {
		bad("triggers.label", "must not start or end with spaces")
	}
	switch {
	case c.MaxBody < 0:
		bad("max_body", "must not be negative")
	case c.MaxBody > MaxMaxBody:
		bad("max_body", "must be at most %d (GitHub caps payloads at 25 MiB)", MaxMaxBody)
	}
	if c.MaxChars < 0 || c.MaxChars > DefaultMaxChars {
		bad("max_chars", "must be between 1000 and 65536 (GitHub's comment limit)")
	} else if c.MaxChars > 0 && c.MaxChars < 1000 {
		bad("max_chars", "must be at least 1000")
	}
	if c.LookupTimeout < 0 || c.LookupTimeout.D() >= 10*time.Second {
		bad("lookup_timeout", "must be between 0 and 10s (GitHub gives up on a webhook after 10s)")
	}
	if c.PRCacheTTL < 0 {
		bad("pr_cache_ttl", "must not be negative")
	}
	if w := c.Reactions.Working; w != "" && !reactionContents[w] {
		bad("reactions.working", "%q is not a GitHub reaction (+1, -1, laugh, confused, heart, hooray, rocket, eyes)", w)
	}
	return errors.Join(errs...)
}

// validLogin reports whether s looks like a GitHub login or app slug:
// letters, digits and single hyphens, not starting with a hyphen.
func validLogin(s string) bool {
	if s == "" || len(s) > 100 || s[0] == '-' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Adapter is the GitHub channel. It is a Sink, an HTTPHandler (POST /), a
// Runner (the startup identity check), a Checker, a CatchUpper and an
// Editor (it edits and deletes its replies). Its methods are safe for
// concurrent use.
type Adapter struct {
	cfg     Config
	ingress adapters.Ingress
	log     *slog.Logger
	now     func() time.Time
	httpc   *http.Client
	baseURL *url.URL
	secret  []byte
	metrics *metrics

	app *appAuth // nil with token authentication

	idSem chan struct{} // held while the identity is looked up
	idMu  sync.RWMutex
	id    identity // Login is "" until known

	health *health.Tracker // which credentials GitHub rejects

	gate    *gate                         // rate-limit pauses per credential
	heads   *lookup.Cache[string, prHead] // headKey → pull request head
	sent    *bounded.Map[string, []int64]
	book    *msgparts.Book // the parts of replies that may be edited
	handler http.Handler

	// Catch-up (catchup.go).
	marks    *catchup.Marks // nil without a state store
	progress *catchUpProgress
	catchMu  sync.Mutex // one CatchUp at a time in this process
	// hold bounds how long a live event waits for a catch-up of its
	// repository to pass it; perPage is the page size of the catch-up's
	// listings; sleep waits out a rate limit. Tests change them.
	hold    time.Duration
	perPage int
	sleep   func(ctx context.Context, d time.Duration) error
}

// identity is who the gateway is on GitHub.
type identity struct {
	// Login is the account its comments are authored by: the token's user,
	// or "<slug>[bot]" for an App.
	Login string
	// Slug is the App's slug ("" with a token).
	Slug string
	// AppID is the App's id (0 with a token).
	AppID int64
}

// own reports whether login is the gateway's account.
func (id identity) own(login string) bool {
	return login != "" && strings.EqualFold(login, id.Login)
}

// New builds the adapter from a configuration. It does no network I/O (the
// bot identity is learned by Run, or by the first webhook that needs it); it
// reads app.private_key_file when set. It refuses a configuration without a
// webhook secret or credentials, and an App private key that does not parse.
func New(cfg *Config, deps adapters.Deps) (*Adapter, error) {
	c := *cfg
	c.defaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("github: config: %w", err)
	}
	if deps.Ingress == nil {
		return nil, errors.New("github: no ingress")
	}
	base, err := url.Parse(c.APIURL)
	if err != nil {
		return nil, fmt.Errorf("github: config: api_url: %w", err)
	}
	if !strings.HasSuffix(base.Path, "/") {
		base.Path += "/"
	}
	deps = deps.WithDefaults(Name)
	a := &Adapter{
		cfg:     c,
		ingress: deps.Ingress,
		log:     deps.Logger,
		now:     deps.Now,
		httpc:   deps.HTTPClient,
		baseURL: base,
		secret:  []byte(c.WebhookSecret),
		idSem:   make(chan struct{}, 1),
		sent:    bounded.NewMap[string, []int64](4096),

		progress: newCatchUpProgress(),
		hold:     catchUpHold,
		perPage:  catchUpPerPage,
		sleep:    retry.Wait,
	}
	if deps.State != nil {
		a.marks = catchup.New(deps.State, Name, deps.Now)
	}
	a.book = msgparts.NewBook(deps.State, Name)
	a.gate = newGate(a.now)
	a.heads = lookup.New[string, prHead](lookup.Options{TTL: c.PRCacheTTL.D(), Max: 4096, Now: a.now})
	if c.App.ID != 0 {
		key, err := loadKey(c.App)
		if err != nil {
			return nil, fmt.Errorf("github: config: %w", err)
		}
		a.app = newAppAuth(c.App, key, a.now)
		if c.App.Slug != "" {
			a.id = identity{Login: c.App.Slug + "[bot]", Slug: c.App.Slug, AppID: c.App.ID}
		}
	} else if c.Login != "" {
		a.id = identity{Login: c.Login}
	}
	a.handler = a.newHandler()
	m, err := newMetrics(deps.Registry)
	if err != nil {
		return nil, fmt.Errorf("github: metrics: %w", err)
	}
	a.metrics = m
	a.health = health.New(Name, []string{credToken, credApp}, m.healthy, a.log)
	return a, nil
}

// loadKey reads the App's private key from the configuration.
func loadKey(c AppConfig) (*rsa.PrivateKey, error) {
	pem := []byte(c.PrivateKey)
	key := "app.private_key"
	if c.PrivateKeyFile != "" {
		b, err := os.ReadFile(c.PrivateKeyFile)
		if err != nil {
			return nil, fmt.Errorf("app.private_key_file: %w", err)
		}
		pem, key = b, "app.private_key_file"
	}
	k, err := parseKey(pem)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return k, nil
}

// Run checks the credentials and learns the gateway's identity (GET /user
// with a token, GET /app for an App), retrying with capped backoff, then
// blocks until ctx ends and returns nil. Rejected credentials mark the
// adapter unhealthy (see Check) but do not end Run, so other channels are
// unaffected.
func (a *Adapter) Run(ctx context.Context) error {
	bo := retry.Backoff{Min: time.Second, Max: 5 * time.Minute}
	if !retry.Until(ctx, &bo, a.log, "identity check", func() error {
		return a.lookupIdentity(ctx, 15*time.Second, true)
	}) {
		return nil
	}
	<-ctx.Done()
	return nil
}

// Check reports an error while GitHub rejects one of the adapter's
// credentials (a revoked token, a wrong App key), naming it and the
// reason. A later successful call with that credential clears it. It does
// no I/O.
func (a *Adapter) Check(context.Context) error { return a.health.Err() }

// The credentials whose health is tracked.
const (
	credToken = "token" // the personal access token
	credApp   = "app"   // the App's JWT (its private key and id)
)

// identity returns the gateway's identity, looking it up (bounded by
// LookupTimeout) when neither the configuration nor an earlier lookup gave
// it.
func (a *Adapter) identity(ctx context.Context) (identity, error) {
	a.idMu.RLock()
	id := a.id
	a.idMu.RUnlock()
	if id.Login != "" {
		return id, nil
	}
	if err := a.lookupIdentity(ctx, a.cfg.LookupTimeout.D(), false); err != nil {
		return identity{}, err
	}
	a.idMu.RLock()
	defer a.idMu.RUnlock()
	return a.id, nil
}

// lookupIdentity asks GitHub who the credentials belong to and records it.
// Concurrent callers wait for one call; unless force is set, a caller that
// finds the identity known after waiting makes no call. A configured login
// or slug that differs from GitHub's answer is replaced by the answer, with
// a warning.
func (a *Adapter) lookupIdentity(ctx context.Context, timeout time.Duration, force bool) error {
	select {
	case a.idSem <- struct{}{}:
		defer func() { <-a.idSem }()
	case <-ctx.Done():
		return ctx.Err()
	}
	if !force {
		a.idMu.RLock()
		known := a.id.Login != ""
		a.idMu.RUnlock()
		if known {
			return nil
		}
	}
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var id identity
	if a.app != nil {
		jwt, err := a.app.jwt()
		if err != nil {
			return fmt.Errorf("github: app jwt: %w", err)
		}
		app, resp, err := a.client(jwt).Apps.Get(lctx, "")
		if err != nil {
			return fmt.Errorf("github: GET /app: %w", a.classify(credApp, resp, err))
		}
		a.health.Accept(credApp)
		if app.GetID() != a.app.id {
			return fmt.Errorf("github: GET /app: the private key belongs to app %d, not app.id %d: %w", app.GetID(), a.app.id, adapters.ErrPermanent)
		}
		id = identity{Login: app.GetSlug() + "[bot]", Slug: app.GetSlug(), AppID: app.GetID()}
	} else {
		u, resp, err := a.client(a.cfg.Token).Users.Get(lctx, "")
		if err != nil {
			return fmt.Errorf("github: GET /user: %w", a.classify(credToken, resp, err))
		}
		a.health.Accept(credToken)
		id = identity{Login: u.GetLogin()}
	}
	if id.Login == "" || id.Login == "[bot]" {
		return errors.New("github: identity lookup: no login in the answer")
	}
	a.idMu.Lock()
	prev := a.id
	a.id = id
	a.idMu.Unlock()
	if prev.Login != "" && !strings.EqualFold(prev.Login, id.Login) {
		a.log.Warn("the configured identity differs from GitHub's; using GitHub's", "configured", prev.Login, "github", id.Login)
	}
	if prev.Login == "" {
		a.log.Info("authenticated", "login", id.Login, "app_id", id.AppID)
	}
	return nil
}

type metrics struct {
	events   *prometheus.CounterVec
	rejected *prometheus.CounterVec
	posts    *prometheus.CounterVec
	changes  *prometheus.CounterVec
	lookups  *prometheus.CounterVec
	tokens   *prometheus.CounterVec
	catchUp  *prometheus.CounterVec
	healthy  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_github_events_total",
			Help: "GitHub webhooks received, by event (issue_comment, …, ping, other) and outcome (ingested, duplicate, dropped, own, bot, ignored, error).",
		}, []string{"event", "outcome"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_github_rejected_requests_total",
			Help: "Webhook requests refused before parsing, by reason (missing, sha1_only, malformed, mismatch, too_large).",
		}, []string{"reason"}),
		posts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_github_posts_total",
			Help: "Comments posted, by result (ok, rate_limited, permanent, error).",
		}, []string{"result"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_github_changes_total",
			Help: "Edits and deletions of posted comments (the parts of replies the agent changed), by op (edit, delete) and result (ok, gone, rate_limited, permanent, error).",
		}, []string{"op", "result"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_github_pr_lookups_total",
			Help: "Pull request heads needed for refs, by result (cached, fetched, error).",
		}, []string{"result"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_github_installation_tokens_total",
			Help: "GitHub App installation tokens minted, by result (ok, error).",
		}, []string{"result"}),
		catchUp: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_github_catch_up_comments_total",
			Help: "Comments fetched by catch-ups, by outcome (ingested, duplicate, dropped, own, bot, ignored, skipped).",
		}, []string{"outcome"}),
		healthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_github_healthy",
			Help: "1 unless GitHub rejected the adapter's credentials.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.events, m.rejected, m.posts, m.changes, m.lookups, m.tokens, m.catchUp, m.healthy} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
