package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/switchboardhq/switchboard/api"
	"github.com/switchboardhq/switchboard/store"
)

// Namespace is the store.KV namespace of console sessions.
const Namespace = "console-session"

// DefaultTTL is how long a console session lasts when Options.TTL is 0.
const DefaultTTL = 12 * time.Hour

// Sessions are console sessions kept in the store's KV, so that every
// replica sharing the store knows every session and a logout anywhere ends
// the session everywhere.
//
// A session id is 32 random bytes, sent to the browser once, as the value of
// an HttpOnly cookie. The KV key is the hex SHA-256 of the id, so that a
// reader of the database cannot use what it finds there as a cookie; the
// value is a JSON record holding the hash of the token that logged in (the
// form in which the store keeps tokens anyway), the session's CSRF token and
// its expiry. A session grants nothing by itself: every request is checked
// against the token that logged in, so revoking that token ends its
// sessions. Logout deletes the record. An expired record is ignored, and
// each login sweeps up to sweepBatch records, going round the namespace
// from one login to the next, deleting the expired ones: as every record
// is made by a login, what has expired is bounded by what the last logins
// have not yet swept, and no goroutine is needed.
//
// Every request with the cookie reads its record (there is no cache), so
// that a logout takes effect at once on every replica: with SQLite a local
// read, with PostgreSQL one round trip.
//
// It is safe for concurrent use.
type Sessions struct {
	kv  store.KV
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	swept string // the key the next sweep starts after ("": the first)
}

// sweepBatch is how many records one login's sweep looks at.
const sweepBatch = 64

var _ api.ConsoleSessions = (*Sessions)(nil)

// NewSessions returns sessions kept in kv that last ttl (DefaultTTL when 0);
// now is the clock (nil: time.Now).
func NewSessions(kv store.KV, ttl time.Duration, now func() time.Time) *Sessions {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if now == nil {
		now = time.Now
	}
	return &Sessions{kv: kv, ttl: ttl, now: now}
}

// record is a session as stored.
type record struct {
	TokenHash string    `json:"token_hash"`
	Name      string    `json:"name"`
	Scopes    []string  `json:"scopes"`
	CSRF      string    `json:"csrf"`
	Expires   time.Time `json:"expires"`
}

// Session is a console session as its owner sees it.
type Session struct {
	Name    string    `json:"name"`
	Scopes  []string  `json:"scopes"`
	CSRF    string    `json:"csrf"`
	Expires time.Time `json:"expires"`
}

func randomString() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails: it crashes the program instead
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func key(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:])
}

// Create starts a session for the token login names and returns its id (the
// cookie value) and the session.
func (s *Sessions) Create(ctx context.Context, login api.ConsoleLogin) (string, Session, error) {
	id := randomString()
	rec := record{
		TokenHash: hex.EncodeToString(login.TokenHash[:]),
		Name:      login.Name,
		CSRF:      randomString(),
		Expires:   s.now().Add(s.ttl).UTC(),
	}
	for _, sc := range login.Scopes {
		rec.Scopes = append(rec.Scopes, string(sc))
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return "", Session{}, fmt.Errorf("console: encode session: %w", err)
	}
	if err := s.kv.SetValue(ctx, Namespace, key(id), b); err != nil {
		return "", Session{}, fmt.Errorf("console: store session: %w", err)
	}
	// A failed sweep fails no login: the next one sweeps again.
	_, _ = s.Sweep(ctx)
	return id, Session{Name: rec.Name, Scopes: rec.Scopes, CSRF: rec.CSRF, Expires: rec.Expires}, nil
}

// load returns the live record of session id, or an error wrapping
// store.ErrNotFound.
func (s *Sessions) load(ctx context.Context, id string) (record, error) {
	if id == "" || len(id) > 128 {
		return record{}, fmt.Errorf("console: session: %w", store.ErrNotFound)
	}
	b, err := s.kv.Value(ctx, Namespace, key(id))
	if err != nil {
		return record{}, fmt.Errorf("console: session: %w", err)
	}
	var rec record
	if len(b) == 0 {
		return record{}, fmt.Errorf("console: session logged out: %w", store.ErrNotFound)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return record{}, fmt.Errorf("console: session record: %w", err)
	}
	if !s.now().Before(rec.Expires) {
		return record{}, fmt.Errorf("console: session expired: %w", store.ErrNotFound)
	}
	return rec, nil
}

// Session returns session id as its owner sees it, or an error wrapping
// store.ErrNotFound.
func (s *Sessions) Session(ctx context.Context, id string) (Session, error) {
	rec, err := s.load(ctx, id)
	if err != nil {
		return Session{}, err
	}
	return Session{Name: rec.Name, Scopes: rec.Scopes, CSRF: rec.CSRF, Expires: rec.Expires}, nil
}

// ConsoleSession implements api.ConsoleSessions.
func (s *Sessions) ConsoleSession(ctx context.Context, id string) (api.ConsoleSession, error) {
	rec, err := s.load(ctx, id)
	if err != nil {
		return api.ConsoleSession{}, err
	}
	var out api.ConsoleSession
	if n, err := hex.Decode(out.TokenHash[:], []byte(rec.TokenHash)); err != nil || n != len(out.TokenHash) {
		return api.ConsoleSession{}, errors.New("console: session record holds a malformed token hash")
	}
	out.CSRF = rec.CSRF
	return out, nil
}

// End logs session id out, everywhere.
func (s *Sessions) End(ctx context.Context, id string) error {
	if _, err := s.kv.DeleteValue(ctx, Namespace, key(id), nil); err != nil {
		return fmt.Errorf("console: end session: %w", err)
	}
	return nil
}

// Sweep looks at up to sweepBatch session records after the last one the
// previous sweep looked at (starting over past the end) and deletes those
// that have expired, or are empty or unreadable (a logout by an older
// version). It returns how many it deleted. A record is deleted only if it
// is still what was read, so a sweep never removes a record written since.
func (s *Sessions) Sweep(ctx context.Context) (int, error) {
	s.mu.Lock()
	after := s.swept
	s.mu.Unlock()
	keys, err := s.kv.Keys(ctx, Namespace, after, sweepBatch)
	if err != nil {
		return 0, fmt.Errorf("console: sweep sessions: %w", err)
	}
	next := ""
	if len(keys) == sweepBatch {
		next = keys[len(keys)-1]
	}
	s.mu.Lock()
	s.swept = next
	s.mu.Unlock()
	now, n := s.now(), 0
	for _, k := range keys {
		b, err := s.kv.Value(ctx, Namespace, k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("console: sweep sessions: %w", err)
		}
		var rec record
		if len(b) > 0 && json.Unmarshal(b, &rec) == nil && now.Before(rec.Expires) {
			continue
		}
		deleted, err := s.kv.DeleteValue(ctx, Namespace, k, b)
		if err != nil {
			return n, fmt.Errorf("console: sweep sessions: %w", err)
		}
		if deleted {
			n++
		}
	}
	return n, nil
}
