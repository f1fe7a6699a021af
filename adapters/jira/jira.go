// Package jira is Switchboard's Jira adapter: a comment on a Jira issue
// (mentioning the bot's account, or in a project a route watches) steers the
// session bound to that issue, and whatever the session says comes back as a
// comment on the issue.
//
// Inbound, it serves Jira webhooks (POST / under the gateway's /hooks/jira/,
// signed with X-Hub-Signature, or POST /<token> for webhooks that cannot be
// signed) and turns comment_created, comment_updated, comment_deleted,
// jira:issue_created and jira:issue_updated (comments, and assignment to the
// bot) into envelopes for the router. Outbound, it posts comments with the
// REST API v2 (github.com/andygrunwald/go-jira), converting the agent's
// Markdown to Jira wiki markup and appending an invisible provenance marker,
// and edits and deletes them when the agent changes a reply (edit.go).
// After downtime, CatchUp fetches the comments written meanwhile (a JQL
// search per project, then the issues' comments) and feeds them through the
// same mapping as their webhooks.
//
// Conversation anchors (envelope.Conversation.Ref) are "<site>/<ISSUE-KEY>";
// comment envelope ids are "jira:<site>:<comment id>" (see README.md). The
// adapter registers itself as the "jira" plugin.
package jira

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	gojira "github.com/andygrunwald/go-jira"
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
const Name = "jira"

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

// Config is the "adapters: jira:" section of the gateway's configuration.
type Config struct {
	// BaseURL is the Jira site the REST API is called on:
	// https://acme.atlassian.net for Jira Cloud, or the base URL of a Data
	// Center instance (https://jira.example.com, possibly with a context
	// path). Required.
	BaseURL string `yaml:"base_url"`
	// Email and APIToken authenticate with Jira Cloud (basic auth with an
	// API token from id.atlassian.com).
	Email    string `yaml:"email"`
	APIToken string `yaml:"api_token"`
	// PersonalAccessToken authenticates with Jira Data Center (bearer).
	// Exactly one of PersonalAccessToken and Email+APIToken is required.
	PersonalAccessToken string `yaml:"personal_access_token"`
	// WebhookSecret verifies X-Hub-Signature on webhooks registered with a
	// secret. URLToken instead (or as well) accepts webhooks posted to
	// /hooks/jira/<url_token>, for webhooks that cannot be signed. At least
	// one is required.
	WebhookSecret string `yaml:"webhook_secret"`
	URLToken      string `yaml:"url_token"`
	// Site names the Jira site in envelope ids and conversation anchors.
	// Default: the host of the self URL in each webhook. Set it
	// when the site's public host may change, or to keep anchors stable
	// across a migration.
	Site string `yaml:"site"`
	// DescriptionSteers makes jira:issue_created a message: the new issue's
	// summary and description steer a session (default false: issue
	// creation is ignored unless the issue is assigned to the bot).
	DescriptionSteers bool `yaml:"description_steers"`
	// MaxBody caps a webhook request body in bytes (default 4 MiB).
	MaxBody int64 `yaml:"max_body"`
	// MaxChars is the longest comment posted, in characters of wiki markup
	// (default 32000, under Jira's 32767); longer replies are split into
	// several comments on paragraph boundaries.
	MaxChars int `yaml:"max_chars"`
	// LookupTimeout bounds the REST calls (myself, user lookups) made while
	// a webhook is answered (default 2s); a user lookup that times out
	// leaves the mention as its account id.
	LookupTimeout duration.Duration `yaml:"lookup_timeout"`
	// UserCacheTTL is how long a resolved display name is kept (default 1h).
	UserCacheTTL duration.Duration `yaml:"user_cache_ttl"`
}

// Defaults of Config.
const (
	DefaultMaxBody       = 4 << 20
	DefaultMaxChars      = 32000
	DefaultLookupTimeout = 2 * time.Second
	DefaultUserCacheTTL  = time.Hour
	// MaxCommentChars is Jira's limit on a comment body.
	MaxCommentChars = 32767
	// MinURLTokenLen is the shortest url_token accepted.
	MinURLTokenLen = 16
)

func (c *Config) defaults() {
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
}

// Validate checks c and returns every problem, each naming its key relative
// to the section ("webhook_secret: …").
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.BaseURL == "" {
		bad("base_url", "is required (https://<your-site>.atlassian.net, or your Data Center base URL)")
	} else if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad("base_url", "must be an http(s) URL, got %q", c.BaseURL)
	}
	cloud := c.Email != "" || c.APIToken != ""
	switch {
	case cloud && c.PersonalAccessToken != "":
		bad("personal_access_token", "set either personal_access_token (Data Center) or email and api_token (Cloud), not both")
	case cloud && c.Email == "":
		bad("email", "is required with api_token (the Atlassian account the token belongs to)")
	case cloud && c.APIToken == "":
		bad("api_token", "is required with email")
	case !cloud && c.PersonalAccessToken == "":
		bad("api_token", "is required: set email and api_token (Jira Cloud) or personal_access_token (Data Center)")
	}
	if c.WebhookSecret == "" && c.URLToken == "" {
		bad("webhook_secret", "is required (or set url_token for webhooks that cannot be signed); unauthenticated webhooks are never accepted")
	}
	if c.URLToken != "" {
		if len(c.URLToken) < MinURLTokenLen {
			bad("url_token", "must be at least %d characters (use a long random value)", MinURLTokenLen)
		}
		if strings.Trim(c.URLToken, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~") != "" {
			bad("url_token", "may hold only letters, digits and - _ . ~ (it is a URL path segment)")
		}
	}
	if strings.ContainsAny(c.Site, "/ \t\n") {
		bad("site", "is a host name like acme.atlassian.net, without a scheme or path, got %q", c.Site)
	}
	if c.MaxBody < 0 {
		bad("max_body", "must not be negative")
	}
	if c.MaxChars < 0 || c.MaxChars > MaxCommentChars {
		bad("max_chars", "must be between 1000 and %d (Jira refuses longer comments)", MaxCommentChars)
	} else if c.MaxChars > 0 && c.MaxChars < 1000 {
		bad("max_chars", "must be at least 1000")
	}
	if c.LookupTimeout < 0 {
		bad("lookup_timeout", "must not be negative")
	}
	if c.UserCacheTTL < 0 {
		bad("user_cache_ttl", "must not be negative")
	}
	return errors.Join(errs...)
}

// Adapter is the Jira channel. It is a Sink (comments on issues), an
// HTTPHandler (webhooks), a Runner (learns the bot's account at start), a
// Checker, a CatchUpper and an Editor (it edits and deletes its replies).
// Its methods are safe for concurrent use.
type Adapter struct {
	cfg     Config
	ingress adapters.Ingress
	log     *slog.Logger
	now     func() time.Time
	api     *gojira.Client
	metrics *metrics

	idSem chan struct{} // held while /myself is called
	idMu  sync.RWMutex
	id    identity // zero until /myself succeeded

	health *health.Tracker // whether Jira rejects the credentials

	users   *lookup.Cache[string, string]  // user reference → display name
	sent    *bounded.Map[string, []string] // delivery id → ids of the comments posted
	book    *msgparts.Book                 // the parts of replies that may be edited
	handler http.Handler

	marks      *catchup.Marks                            // per project, the newest message handled; nil without a state store
	catchUpSem chan struct{}                             // held by the running CatchUp
	gate       catchUpGate                               // projects a CatchUp is feeding; their webhooks wait
	search     searchEndpoint                            // which issue search the site answers
	sleep      func(context.Context, time.Duration) bool // waits out rate limits (tests shorten it)
}

// identity is who the gateway is in Jira, learned with GET /rest/api/2/myself.
type identity struct {
	AccountID   string // Jira Cloud
	Name        string // Data Center user name
	Key         string // Data Center user key
	DisplayName string
	// TimeZone is the account's time zone (an IANA name, "" when Jira did
	// not say), in which Jira reads the dates of the JQL a catch-up sends.
	TimeZone string
}

func (id identity) known() bool { return id.AccountID != "" || id.Name != "" || id.Key != "" }

// is reports whether u is the gateway's account.
func (id identity) is(u *user) bool {
	if u == nil {
		return false
	}
	switch {
	case id.AccountID != "" && u.AccountID != "":
		return u.AccountID == id.AccountID
	case id.Key != "" && u.Key != "":
		return u.Key == id.Key
	case id.Name != "" && u.Name != "":
		return strings.EqualFold(u.Name, id.Name)
	}
	return false
}

// New builds the adapter from a configuration. It does no I/O: the bot's
// account is learned by Run (or by the first webhook). It refuses a
// configuration that Validate refuses, in particular one with neither a
// webhook secret nor a URL token.
func New(cfg *Config, deps adapters.Deps) (*Adapter, error) {
	c := *cfg
	c.defaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("jira: config: %w", err)
	}
	if deps.Ingress == nil {
		return nil, errors.New("jira: no ingress")
	}
	deps = deps.WithDefaults(Name)
	a := &Adapter{
		cfg:     c,
		ingress: deps.Ingress,
		log:     deps.Logger,
		now:     deps.Now,
		idSem:   make(chan struct{}, 1),
		sent:    bounded.NewMap[string, []string](4096),

		catchUpSem: make(chan struct{}, 1),
		sleep:      retry.Sleep,
	}
	if deps.State != nil {
		a.marks = catchup.New(deps.State, Name, a.now)
	}
	a.book = msgparts.NewBook(deps.State, Name)
	a.search.init(c.PersonalAccessToken != "")
	api, err := gojira.NewClient(authClient(&c, deps.HTTPClient), c.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("jira: client: %w", err)
	}
	a.api = api
	a.users = lookup.New[string, string](lookup.Options{TTL: c.UserCacheTTL.D(), NegativeTTL: negativeTTL, Max: 10000, Now: a.now})
	a.handler = a.newHandler()
	m, err := newMetrics(deps.Registry)
	if err != nil {
		return nil, fmt.Errorf("jira: metrics: %w", err)
	}
	a.metrics = m
	a.health = health.New(Name, []string{credentials}, m.healthy, a.log)
	return a, nil
}

// authClient returns an HTTP client that authenticates every request: basic
// auth with email and API token (Cloud) or a bearer personal access token
// (Data Center). It keeps base's transport, timeout and redirect policy.
func authClient(c *Config, base *http.Client) *http.Client {
	client := *base
	var rt http.RoundTripper
	if c.PersonalAccessToken != "" {
		rt = &gojira.PATAuthTransport{Token: c.PersonalAccessToken, Transport: base.Transport}
	} else {
		rt = &gojira.BasicAuthTransport{Username: c.Email, Password: c.APIToken, Transport: base.Transport}
	}
	client.Transport = rt
	return &client
}

// Run learns the bot's account with GET /rest/api/2/myself, retrying with
// capped backoff, then blocks until ctx ends and returns nil. Rejected
// credentials mark the adapter unhealthy (see Check) but do not end Run: it
// keeps retrying slowly, so other channels are unaffected.
func (a *Adapter) Run(ctx context.Context) error {
	bo := retry.Backoff{Min: time.Second, Max: 5 * time.Minute}
	if !retry.Until(ctx, &bo, a.log, "GET /myself", func() error {
		_, err := a.identityWithin(ctx, 15*time.Second)
		return err
	}) {
		return nil
	}
	<-ctx.Done()
	return nil
}

// Check reports an error while Jira rejects the adapter's credentials (401,
// or a Data Center login denial), naming the reason. A later successful call
// clears it. It does no I/O.
func (a *Adapter) Check(context.Context) error { return a.health.Err() }

// credentials names the adapter's one tracked credential (the API token or
// personal access token) in health reports.
const credentials = "credentials"

// identity returns the bot's account, calling /myself (bounded by
// LookupTimeout) the first time. Concurrent callers wait for one call.
func (a *Adapter) identity(ctx context.Context) (identity, error) {
	return a.identityWithin(ctx, a.cfg.LookupTimeout.D())
}

// identityWithin is identity with /myself bounded by timeout.
func (a *Adapter) identityWithin(ctx context.Context, timeout time.Duration) (identity, error) {
	if id := a.knownIdentity(); id.known() {
		return id, nil
	}
	select {
	case a.idSem <- struct{}{}:
		defer func() { <-a.idSem }()
	case <-ctx.Done():
		return identity{}, ctx.Err()
	}
	if id := a.knownIdentity(); id.known() {
		return id, nil
	}
	mctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u, resp, err := a.api.User.GetSelfWithContext(mctx)
	if err != nil {
		return identity{}, fmt.Errorf("jira: GET myself: %w", a.classify(resp, err))
	}
	id := identity{AccountID: u.AccountID, Name: u.Name, Key: u.Key, DisplayName: u.DisplayName, TimeZone: u.TimeZone}
	if !id.known() {
		return identity{}, errors.New("jira: GET myself: no accountId, name or key in the answer")
	}
	a.idMu.Lock()
	a.id = id
	a.idMu.Unlock()
	a.health.Accept(credentials)
	a.log.Info("authenticated", "account_id", id.AccountID, "name", id.Name, "display_name", id.DisplayName)
	return id, nil
}

func (a *Adapter) knownIdentity() identity {
	a.idMu.RLock()
	defer a.idMu.RUnlock()
	return a.id
}

type metrics struct {
	events       *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	posts        *prometheus.CounterVec
	changes      *prometheus.CounterVec
	healthy      prometheus.Gauge
	catchUpWaits prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_jira_events_total",
			Help: "Jira webhooks received, by event (comment_created, comment_updated, comment_deleted, issue_created, issue_updated, other) and outcome (ingested, duplicate, dropped, own, ignored, error).",
		}, []string{"event", "outcome"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_jira_rejected_requests_total",
			Help: "Webhook requests refused before parsing, by reason (missing, malformed, mismatch, token, too_large).",
		}, []string{"reason"}),
		posts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_jira_posts_total",
			Help: "Comments posted, by result (ok, rate_limited, permanent, error).",
		}, []string{"result"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_jira_changes_total",
			Help: "Edits and deletions of posted comments (the parts of replies the agent changed), by op (edit, delete) and result (ok, gone, rate_limited, permanent, error).",
		}, []string{"op", "result"}),
		healthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_jira_healthy",
			Help: "1 unless Jira rejected the adapter's credentials.",
		}),
		catchUpWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_jira_catchup_waits_total",
			Help: "Webhooks that waited for a running catch-up of their project, so that their issue's comments are stored in the order they were written.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.events, m.rejected, m.posts, m.changes, m.healthy, m.catchUpWaits} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
