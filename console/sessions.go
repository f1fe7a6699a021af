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
// sessions. Logout overwrites the record with an empty value (KV has no
// delete); an expired record is ignored and stays until overwritten, which
// at a few hundred bytes per login is acceptable for a console used by
// people.
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
}

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
	if err := s.kv.SetValue(ctx, Namespace, key(id), nil); err != nil {
		return fmt.Errorf("console: end session: %w", err)
	}
	return nil
}
