// Package client is a Go client for Switchboard's HTTP API: steering
// sessions, and for agents, reading a session's log and posting outputs.
//
// A Client is safe for concurrent use.
package client

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/httpx"
)

// Client talks to one gateway.
type Client struct {
	base  string
	token string
	http  *http.Client
	// maxResponse bounds the body read of a call's answer.
	maxResponse int64
	// sleep, if not nil, replaces retry.Sleep between Stream's connections
	// (for tests).
	sleep func(ctx context.Context, d time.Duration) bool
}

// New returns a client for the gateway at baseURL (http://127.0.0.1:8080)
// authenticating with token. hc may be nil for a default client. The API's
// paths (/v3/...) are appended to baseURL, which may have a path of its own.
func New(baseURL, token string, hc *http.Client, opts ...Option) *Client {
	if hc == nil {
		hc = &http.Client{}
	}
	c := &Client{base: strings.TrimRight(baseURL, "/"), token: token, http: hc, maxResponse: DefaultMaxResponse}
	for _, o := range opts {
		o(c)
	}
	return c
}

// An Option adjusts the Client that New returns.
type Option func(*Client)

// DefaultMaxResponse is how much of a call's answer a Client reads unless
// MaxResponse says otherwise.
const DefaultMaxResponse = 64 << 20

// MaxResponse bounds how many bytes of a call's answer the client reads
// (CatchUp reads at most 1 MiB, Stream bounds each event apart). A success
// whose answer is longer fails with a *DecodeError; an error answer is cut
// short. n <= 0 keeps DefaultMaxResponse.
func MaxResponse(n int64) Option {
	return func(c *Client) {
		if n > 0 {
			c.maxResponse = n
		}
	}
}

// Error is an error answer from the gateway.
type Error struct {
	Status int // HTTP status
	// Code is the error code ("not_found"), or the status text when the
	// answer has none.
	Code    string
	Message string
	// RetryAfter is the gateway's Retry-After on a 429 or 503 (seconds or
	// an HTTP date, 0 for a date in the past).
	RetryAfter time.Duration
	// Header is the answer's header.
	Header http.Header
}

func (e *Error) Error() string {
	return fmt.Sprintf("switchboard: %d %s: %s", e.Status, e.Code, e.Message)
}

// DecodeError is the error of a call that succeeded (a 2xx answer) but
// whose answer could not be decoded: not JSON of the expected shape, or
// longer than MaxResponse. The call took effect.
type DecodeError struct {
	Method, Path string
	Status       int
	Err          error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("switchboard: decode %s %s: %v", e.Method, e.Path, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// Session is a session as the API returns it.
type Session struct {
	ID        string            `json:"id"`
	State     string            `json:"state"`
	Metadata  map[string]string `json:"metadata"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
	LastSeq   int64             `json:"last_seq"`
}

// Record is one entry of a session's log.
type Record struct {
	Seq       int64             `json:"seq"`
	Direction string            `json:"direction"`
	Envelope  envelope.Envelope `json:"envelope"`
	StoredAt  time.Time         `json:"stored_at"`
}

// Message is what Steer and Output send.
type Message struct {
	// Kind (outputs only) is "" for a message, envelope.KindEdit (Refs
	// names the output in envelope.RefEdits; Text is its whole new text)
	// or envelope.KindDelete (Refs names it in envelope.RefDeletes).
	Kind envelope.Kind `json:"kind,omitempty"`
	// Partial (outputs only) marks a message or edit of a stream: an edit
	// without it ends the stream.
	Partial        bool          `json:"partial,omitempty"`
	Text           string        `json:"text,omitempty"`
	IdempotencyKey string        `json:"idempotency_key,omitempty"`
	Refs           envelope.Refs `json:"refs,omitempty"`
	// Conversation is an anchor; on Steer only Ref is used.
	Conversation *envelope.Conversation `json:"conversation,omitempty"`
	Actor        *struct {
		Display string `json:"display,omitempty"`
	} `json:"actor,omitempty"`
	// Broadcast (outputs only) sends the output to every bound conversation.
	Broadcast bool `json:"broadcast,omitempty"`
	// State (outputs only) "idle" marks the agent's turn finished.
	State string `json:"state,omitempty"`
}

// Result is the gateway's answer to Steer or Output.
type Result struct {
	Message Record `json:"message"`
	Session struct {
		ID    string `json:"id"`
		State string `json:"state"`
	} `json:"session"`
	// Replayed is true when the idempotency key had been seen: Message is
	// then the original.
	Replayed bool `json:"-"`
}

// CreateSession creates a session.
func (c *Client) CreateSession(ctx context.Context, metadata map[string]string) (Session, error) {
	var s Session
	body, _ := json.Marshal(map[string]any{"metadata": metadata})
	_, err := c.do(ctx, http.MethodPost, "/v3/sessions", body, &s)
	return s, err
}

// Session fetches a session.
func (c *Client) Session(ctx context.Context, id string) (Session, error) {
	var s Session
	_, err := c.do(ctx, http.MethodGet, "/v3/sessions/"+url.PathEscape(id), nil, &s)
	return s, err
}

// Steer sends a message to a session. It is safe to retry with the same
// IdempotencyKey. Of m's fields it sends those of the Steer API: text,
// idempotency_key, refs, conversation.ref and actor.display; the fields of
// outputs fail the call.
func (c *Client) Steer(ctx context.Context, sessionID string, m Message) (Result, error) {
	if m.Kind != "" || m.Partial || m.Broadcast || m.State != "" {
		return Result{}, errors.New("switchboard: steer: kind, partial, broadcast and state are fields of outputs")
	}
	req := steerRequest{Text: m.Text, IdempotencyKey: m.IdempotencyKey, Refs: m.Refs, Actor: m.Actor}
	if m.Conversation != nil {
		req.Conversation = &steerConversation{Ref: m.Conversation.Ref}
	}
	return c.post(ctx, "/v3/sessions/"+url.PathEscape(sessionID)+"/messages", req)
}

// steerRequest is the body of POST /v3/sessions/{id}/messages, which
// refuses any other field (conversation.source among them).
type steerRequest struct {
	Text           string             `json:"text,omitempty"`
	IdempotencyKey string             `json:"idempotency_key,omitempty"`
	Refs           envelope.Refs      `json:"refs,omitempty"`
	Conversation   *steerConversation `json:"conversation,omitempty"`
	Actor          *struct {
		Display string `json:"display,omitempty"`
	} `json:"actor,omitempty"`
}

type steerConversation struct {
	Ref string `json:"ref"`
}

// Output appends an agent output to a session.
func (c *Client) Output(ctx context.Context, sessionID string, m Message) (Result, error) {
	return c.post(ctx, "/v3/sessions/"+url.PathEscape(sessionID)+"/outputs", m)
}

func (c *Client) post(ctx context.Context, path string, m any) (Result, error) {
	var r Result
	body, err := json.Marshal(m)
	if err != nil {
		return r, err
	}
	resp, err := c.do(ctx, http.MethodPost, path, body, &r)
	if err == nil {
		r.Replayed = resp.Header.Get("Idempotent-Replayed") == "true"
	}
	return r, err
}

// Webhook is a webhook destination as the API returns it.
type Webhook struct {
	ID          string            `json:"id"`
	URL         string            `json:"url"`
	Description string            `json:"description,omitempty"`
	EventTypes  []string          `json:"event_types"`
	Sessions    []string          `json:"sessions"`
	Metadata    map[string]string `json:"metadata"`
	Disabled    bool              `json:"disabled"`
	// DisabledReason says why a disabled destination is (410 Gone,
	// failing for too long, by hand).
	DisabledReason string    `json:"disabled_reason,omitempty"`
	Origin         string    `json:"origin"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	// Secret signs the deliveries; the gateway returns it only on creation.
	Secret string `json:"secret,omitempty"`
}

// NewWebhook is what CreateWebhook registers. Empty EventTypes or Sessions
// mean every event type or every session.
type NewWebhook struct {
	URL         string            `json:"url"`
	Description string            `json:"description,omitempty"`
	EventTypes  []string          `json:"event_types,omitempty"`
	Sessions    []string          `json:"sessions,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

// CreateWebhook registers a webhook destination (an admin call). The
// result carries the destination's signing secret, which is shown only
// this once.
func (c *Client) CreateWebhook(ctx context.Context, w NewWebhook) (Webhook, error) {
	var out Webhook
	body, err := json.Marshal(w)
	if err != nil {
		return out, err
	}
	_, err = c.do(ctx, http.MethodPost, "/v3/webhooks", body, &out)
	return out, err
}

// CatchUpReport is what a channel's catch-up did (see CatchUp).
type CatchUpReport struct {
	Channel string    `json:"channel"`
	Since   time.Time `json:"since,omitzero"`
	Scopes  int       `json:"scopes"`
	Found   int       `json:"found"`
	New     int       `json:"new"`
	// Error says why it stopped early ("" when it finished).
	Error string `json:"error,omitempty"`
}

// CatchUp runs channel's catch-up after downtime now (an admin call) and
// returns what it did. A catch-up that stopped early returns its report
// and an *Error with status 502; one already running, status 409.
func (c *Client) CatchUp(ctx context.Context, channel string) (CatchUpReport, error) {
	var out CatchUpReport
	req, err := c.newRequest(ctx, http.MethodPost, "/v3/channels/"+url.PathEscape(channel)+"/catch-up", nil)
	if err != nil {
		return out, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return out, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return out, json.Unmarshal(data, &out)
	case http.StatusBadGateway:
		if json.Unmarshal(data, &out) == nil && out.Error != "" {
			return out, &Error{Status: resp.StatusCode, Code: "catch_up_failed", Message: out.Error}
		}
	}
	return out, decodeError(resp, data)
}

// Page is one page of a session's log.
type Page struct {
	Messages  []Record `json:"messages"`
	NextAfter int64    `json:"next_after"`
}

// Messages reads up to limit records after seq after, waiting up to wait for
// one to arrive when there is none.
func (c *Client) Messages(ctx context.Context, sessionID string, after int64, limit int, wait time.Duration) (Page, error) {
	q := url.Values{"after": {strconv.FormatInt(after, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	var p Page
	_, err := c.do(ctx, http.MethodGet, "/v3/sessions/"+url.PathEscape(sessionID)+"/messages?"+q.Encode(), nil, &p)
	return p, err
}

func (c *Client) newRequest(ctx context.Context, method, path string, body []byte) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) (*http.Response, error) {
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.maxResponse+1))
	if resp.StatusCode >= 300 {
		// An error answer is an error however much of it was read.
		return resp, decodeError(resp, data[:min(int64(len(data)), c.maxResponse)])
	}
	if err != nil {
		return resp, err
	}
	if out == nil {
		return resp, nil
	}
	if int64(len(data)) > c.maxResponse {
		err = fmt.Errorf("the answer is longer than %d bytes", c.maxResponse)
	} else {
		err = json.Unmarshal(data, out)
	}
	if err != nil {
		return resp, &DecodeError{Method: method, Path: path, Status: resp.StatusCode, Err: err}
	}
	return resp, nil
}

func decodeError(resp *http.Response, data []byte) error {
	e := &Error{Status: resp.StatusCode, Header: resp.Header}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &body) == nil && (body.Error.Code != "" || body.Error.Message != "") {
		e.Code, e.Message = cmp.Or(body.Error.Code, http.StatusText(resp.StatusCode)), body.Error.Message
	} else {
		e.Code, e.Message = http.StatusText(resp.StatusCode), strings.TrimSpace(string(data))
	}
	if d, ok := httpx.RetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		e.RetryAfter = max(d, 0)
	}
	return e
}

// IsStatus reports whether err is an *Error with the given HTTP status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

// BaseURL is the gateway's URL as given to New, without a trailing slash.
func (c *Client) BaseURL() string { return c.base }
