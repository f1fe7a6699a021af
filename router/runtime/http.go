package runtime

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard/client"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/httpx"
	"github.com/switchboardhq/switchboard/internal/retry"
)

// SessionMap is the durable mapping between local sessions and the sessions
// of an upstream agent service. The router backs it by the store; it must
// survive restarts. Implementations are safe for concurrent use.
type SessionMap interface {
	// Upstream returns the upstream session of local; ok is false when there
	// is none yet.
	Upstream(ctx context.Context, local string) (upstream string, ok bool, err error)
	// SetUpstream records that local is served by upstream.
	SetUpstream(ctx context.Context, local, upstream string) error
	// Local returns the local session served by upstream; ok is false when
	// upstream is unknown.
	Local(ctx context.Context, upstream string) (local string, ok bool, err error)
}

// HTTP runtime defaults.
const (
	// DefaultHTTPAttempts is how many times one request is tried when
	// HTTPConfig.MaxAttempts is 0.
	DefaultHTTPAttempts = 5
	// DefaultHTTPMaxBackoff caps the wait between attempts when
	// HTTPConfig.MaxBackoff is 0.
	DefaultHTTPMaxBackoff = 10 * time.Second
	// DefaultMaxRetryAfter is the longest Retry-After honoured when
	// HTTPConfig.MaxRetryAfter is 0.
	DefaultMaxRetryAfter = time.Minute
	// DefaultHTTPTimeout bounds one request of the default client.
	DefaultHTTPTimeout = 30 * time.Second

	// baseBackoff is the wait after the first failed attempt.
	baseBackoff = 250 * time.Millisecond
	// maxResponse is how much of a response body is read.
	maxResponse = 64 << 10
	// MetadataSession is the metadata key of an upstream session that names
	// the local session it serves.
	MetadataSession = "switchboard_session"
)

// HTTPConfig configures the http runtime.
type HTTPConfig struct {
	// BaseURL is the upstream service's base URL ("https://agents.example");
	// the Steer API paths (/v3/...) are appended to it.
	BaseURL string
	// Token is the upstream's bearer token.
	Token string
	// Sessions maps local sessions to upstream ones, durably.
	Sessions SessionMap
	// Client sends the requests; nil means a client with DefaultHTTPTimeout.
	Client *http.Client
	// MaxAttempts bounds the tries of one request; 0 means
	// DefaultHTTPAttempts.
	MaxAttempts int
	// MaxBackoff caps the wait between tries; 0 means DefaultHTTPMaxBackoff.
	MaxBackoff time.Duration
	// MaxRetryAfter is the longest Retry-After that Run waits out; an
	// upstream asking for longer fails the run at once. 0 means
	// DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration
}

// HTTP is the http runtime: it forwards a session's messages to an upstream
// agent service that speaks Switchboard's Steer API, and returns no outputs;
// the upstream answers asynchronously with signed Events that HookHandler
// receives.
//
// On a session's first turn it creates the upstream session (POST
// /v3/sessions, with the local session id in the metadata under
// MetadataSession) and records the pair in the SessionMap. Each record's
// envelope is then sent, in order, as POST /v3/sessions/{upstream}/messages:
//
//	{"text": …, "idempotency_key": <envelope id>, "refs": {…},
//	 "conversation": {"ref": "<source>/<ref>"}, "actor": {"display": …}}
//
// The conversation ref is the local anchor written "source/ref"
// (envelope.Conversation.Key); an upstream agent that names it back on an
// output has the output routed to that conversation (see HookHandler).
// Envelopes with blank text (deletions) are not forwarded.
//
// The requests go through package client, with HTTPConfig.Client, reading
// at most 64 KiB of an answer; a message's answer is not needed, so one that
// cannot be read still counts as accepted. Requests are retried inside Run
// on transport errors, 5xx, 408 and 409, with capped exponential backoff
// and jitter (retry.JitterAt), up to MaxAttempts; a 429 or 503 waits out
// its Retry-After. Other statuses fail the run with an *UpstreamError. A failed run is safe to repeat: messages carry their
// envelope id as the idempotency key, so the upstream drops the ones it has.
// Creating an upstream session is not idempotent: a retry after a lost answer
// can leave an unused upstream session behind.
//
// HTTP is safe for concurrent use by different sessions.
type HTTP struct {
	cfg        HTTPConfig
	upstream   *client.Client
	attempts   int
	maxBackoff time.Duration
	maxRetry   time.Duration

	// Test hooks.
	sleep  func(ctx context.Context, d time.Duration) error
	now    func() time.Time
	jitter func() float64 // in [0, 1)
}

// NewHTTP checks cfg and returns an HTTP runtime. It does no I/O.
func NewHTTP(cfg HTTPConfig) (*HTTP, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("runtime: http: base url %q must be an absolute http or https URL", cfg.BaseURL)
	}
	if cfg.Token == "" {
		return nil, errors.New("runtime: http: token is required")
	}
	if cfg.Sessions == nil {
		return nil, errors.New("runtime: http: a session map is required")
	}
	if cfg.MaxAttempts < 0 || cfg.MaxBackoff < 0 || cfg.MaxRetryAfter < 0 {
		return nil, errors.New("runtime: http: attempts and waits must not be negative")
	}
	hc := cfg.Client
	if hc == nil {
		hc = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	h := &HTTP{
		cfg:        cfg,
		upstream:   client.New(cfg.BaseURL, cfg.Token, hc, client.MaxResponse(maxResponse)),
		attempts:   orDefault(cfg.MaxAttempts, DefaultHTTPAttempts),
		maxBackoff: orDefault(cfg.MaxBackoff, DefaultHTTPMaxBackoff),
		maxRetry:   orDefault(cfg.MaxRetryAfter, DefaultMaxRetryAfter),
		sleep:      retry.Wait,
		now:        time.Now,
		jitter:     rand.Float64,
	}
	return h, nil
}

// orDefault returns v, or def when v is zero.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// UpstreamError is an answer from the upstream that failed a request.
type UpstreamError struct {
	Method, Path string
	Status       int
	// Code and Message come from the upstream's {"error": {...}} body, or
	// Message is an excerpt of a body of another shape.
	Code, Message string
}

func (e *UpstreamError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "upstream %s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		b.WriteString(": ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Temporary reports whether the request might succeed later (the upstream
// was failing or throttling when the attempts ran out).
func (e *UpstreamError) Temporary() bool { return retryable(e.Status) }

// Run forwards the envelopes of t to the upstream session of t.SessionID,
// creating it first if needed. It blocks until every envelope was accepted,
// one failed for good, or ctx ended, and returns no outputs.
func (h *HTTP) Run(ctx context.Context, t Turn) ([]Output, error) {
	if len(t.Records) == 0 {
		return nil, errNoRecords
	}
	up, err := h.upstreamSession(ctx, t.SessionID)
	if err != nil {
		return nil, err
	}
	path := "/v3/sessions/" + url.PathEscape(up) + "/messages"
	for i := range t.Records {
		env := &t.Records[i].Envelope
		if strings.TrimSpace(env.Text) == "" {
			continue
		}
		m := steerMessage(env)
		err := h.post(ctx, path, func() error {
			_, err := h.upstream.Steer(ctx, up, m)
			var de *client.DecodeError
			if errors.As(err, &de) {
				return nil // accepted; the answer's body is not needed
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("runtime: http: forward %s: %w", env.ID, err)
		}
	}
	return nil, nil
}

// steerMessage is the Steer API message that forwards env.
func steerMessage(env *envelope.Envelope) client.Message {
	m := client.Message{Text: env.Text, IdempotencyKey: env.ID, Refs: env.Refs}
	if !env.Conversation.IsZero() {
		// On Steer only the ref is sent: the local anchor, "source/ref".
		m.Conversation = &envelope.Conversation{Ref: env.Conversation.Key()}
	}
	if env.Actor.Display != "" {
		m.Actor = &struct {
			Display string `json:"display,omitempty"`
		}{env.Actor.Display}
	}
	return m
}

// upstreamSession returns the upstream session of local, creating and
// recording it when there is none.
func (h *HTTP) upstreamSession(ctx context.Context, local string) (string, error) {
	up, ok, err := h.cfg.Sessions.Upstream(ctx, local)
	if err != nil {
		return "", fmt.Errorf("runtime: http: look up upstream session of %s: %w", local, err)
	}
	if ok {
		return up, nil
	}
	var created client.Session
	err = h.post(ctx, "/v3/sessions", func() error {
		var err error
		created, err = h.upstream.CreateSession(ctx, map[string]string{MetadataSession: local})
		return err
	})
	var de *client.DecodeError
	if errors.As(err, &de) || (err == nil && created.ID == "") {
		return "", fmt.Errorf("runtime: http: create upstream session for %s: answer has no session id", local)
	}
	if err != nil {
		return "", fmt.Errorf("runtime: http: create upstream session for %s: %w", local, err)
	}
	if err := h.cfg.Sessions.SetUpstream(ctx, local, created.ID); err != nil {
		return "", fmt.Errorf("runtime: http: record upstream session of %s: %w", local, err)
	}
	return created.ID, nil
}

// post makes call, a POST to path through the client, until it succeeds,
// fails for good or the attempts run out: transport errors and retryable
// statuses are tried again after the backoff or the upstream's Retry-After.
// A *client.DecodeError (the upstream took the request) ends it.
func (h *HTTP) post(ctx context.Context, path string, call func() error) error {
	var lastErr error
	for attempt := 1; ; attempt++ {
		err := call()
		wait := h.backoff(attempt)
		var ae *client.Error
		var de *client.DecodeError
		switch {
		case err == nil || errors.As(err, &de):
			return err
		case !errors.As(err, &ae):
			if ctx.Err() != nil {
				return ctx.Err()
			}
			lastErr = err
		case !retryable(ae.Status):
			return upstreamError(http.MethodPost, path, ae)
		default:
			lastErr = upstreamError(http.MethodPost, path, ae)
			if ra, ok := h.retryAfter(ae.Header); ok && (ae.Status == http.StatusTooManyRequests || ae.Status == http.StatusServiceUnavailable) {
				if ra > h.maxRetry {
					return fmt.Errorf("%w (Retry-After %s is longer than the %s allowed)", lastErr, ra, h.maxRetry)
				}
				wait = ra
			}
		}
		if attempt >= h.attempts {
			return fmt.Errorf("giving up after %d attempts: %w", attempt, lastErr)
		}
		if err := h.sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// retryable reports whether a request that got status may succeed if tried
// again.
func retryable(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusTooManyRequests:
		return true
	}
	return status >= 500
}

// backoff is the wait after the attempt-th failure: retry.JitterAt from
// baseBackoff, capped at maxBackoff, half fixed and half random, so that
// sessions retrying together spread out.
func (h *HTTP) backoff(attempt int) time.Duration {
	return retry.JitterAt(attempt, baseBackoff, h.maxBackoff, h.jitter())
}

// retryAfter parses a Retry-After header: delay seconds or an HTTP date,
// capped at a day; a date in the past is 0. ok is false when the header is
// absent, invalid or negative seconds.
func (h *HTTP) retryAfter(hdr http.Header) (time.Duration, bool) {
	d, ok := httpx.RetryAfter(hdr.Get("Retry-After"), h.now())
	if !ok {
		return 0, false
	}
	return min(max(d, 0), 24*time.Hour), true
}

// upstreamError builds the error for a failed answer. The client names an
// answer without an error code by its status text; the runtime keeps only
// an excerpt of such an answer's body.
func upstreamError(method, path string, e *client.Error) *UpstreamError {
	u := &UpstreamError{Method: method, Path: path, Status: e.Status, Code: e.Code, Message: e.Message}
	if e.Code == http.StatusText(e.Status) {
		u.Code, u.Message = "", excerpt([]byte(e.Message), 200)
	}
	return u
}

// excerpt returns at most n bytes of b as one trimmed line of valid UTF-8.
func excerpt(b []byte, n int) string {
	if len(b) > n {
		b = trimPartialRune(b[:n])
	}
	s := strings.Join(strings.Fields(string(b)), " ")
	return strings.ToValidUTF8(s, "\uFFFD")
}
