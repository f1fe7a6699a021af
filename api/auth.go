package api

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboardhq/switchboard/internal/httpx"
	"github.com/switchboardhq/switchboard/store"
)

// TokenPrefix starts every secret made by NewTokenSecret, so that leaked
// tokens are easy to recognise.
const TokenPrefix = "sb_"

// NewTokenSecret returns a new random token secret: "sb_" and 32 random bytes
// in unpadded base64url.
func NewTokenSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails: it crashes the program instead.
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// principal is the authenticated caller of a request.
type principal struct {
	// name is the token's name, used in actor ids.
	name string
	// key identifies the token for rate limiting.
	key      string
	scopes   []store.Scope
	sessions []string
}

func (p *principal) has(s store.Scope) bool { return slices.Contains(p.scopes, s) }

// may reports whether p may do what a needs on session id ("" for routes
// that name no session).
func (p *principal) may(a access, id string) bool {
	if p.has(store.ScopeAdmin) {
		return true
	}
	agent := p.has(store.ScopeAgent) && id != "" && slices.Contains(p.sessions, id)
	switch a {
	case steering:
		return p.has(store.ScopeSteer)
	case reading:
		return p.has(store.ScopeSteer) || agent
	case output:
		return agent
	}
	return a == public
}

type principalKey struct{}

// principalFrom returns the principal that authenticate stored in ctx.
func principalFrom(ctx context.Context) *principal {
	p, _ := ctx.Value(principalKey{}).(*principal)
	return p
}

// staticToken is a StaticToken with its secret hashed.
type staticToken struct {
	hash [32]byte
	p    principal
}

// tokenCacheTTL is how long a token found in the store is trusted without
// asking the store again.
const tokenCacheTTL = 30 * time.Second

// tokenCacheMax bounds the cache; it is emptied when full.
const tokenCacheMax = 4096

type cachedToken struct {
	p       *principal
	expires time.Time
}

// authenticator finds the principal of a bearer token: first among the
// static tokens (compared in constant time), then in the store by hash. It is
// safe for concurrent use.
type authenticator struct {
	static []staticToken
	tokens store.Tokens

	mu    sync.Mutex
	cache map[[32]byte]cachedToken
}

func newAuthenticator(tokens store.Tokens, static []StaticToken) (*authenticator, error) {
	a := &authenticator{tokens: tokens, cache: make(map[[32]byte]cachedToken)}
	names := make(map[string]bool, len(static))
	hashes := make(map[[32]byte]bool, len(static))
	for i, t := range static {
		switch {
		case t.Name == "":
			return nil, fmt.Errorf("api: token %d: name is required", i)
		case names[t.Name]:
			return nil, fmt.Errorf("api: token %q: name is used twice", t.Name)
		case t.Secret == "":
			return nil, fmt.Errorf("api: token %q: secret is empty", t.Name)
		case hashes[HashToken(t.Secret)]:
			return nil, fmt.Errorf("api: token %q: secret is shared with another token", t.Name)
		case len(t.Scopes) == 0:
			return nil, fmt.Errorf("api: token %q: no scopes (want admin, steer or agent)", t.Name)
		}
		for _, sc := range t.Scopes {
			if !sc.Valid() {
				return nil, fmt.Errorf("api: token %q: unknown scope %q (want admin, steer or agent)", t.Name, sc)
			}
		}
		if slices.Contains(t.Scopes, store.ScopeAgent) && len(t.Sessions) == 0 &&
			!slices.Contains(t.Scopes, store.ScopeAdmin) && !slices.Contains(t.Scopes, store.ScopeSteer) {
			return nil, fmt.Errorf("api: token %q: an agent token must name its sessions", t.Name)
		}
		names[t.Name] = true
		hashes[HashToken(t.Secret)] = true
		a.static = append(a.static, staticToken{
			hash: HashToken(t.Secret),
			p: principal{
				name:     t.Name,
				key:      "static:" + t.Name,
				scopes:   slices.Clone(t.Scopes),
				sessions: slices.Clone(t.Sessions),
			},
		})
	}
	return a, nil
}

// errNoToken and errBadToken are the two ways to fail authentication.
var (
	errNoToken  = errors.New("no bearer token")
	errBadToken = errors.New("unknown token")
)

// lookup returns the principal whose secret hashes to hash: errBadToken when
// there is none, another error when the store fails.
func (a *authenticator) lookup(ctx context.Context, hash [32]byte, now time.Time) (*principal, error) {
	// Compare with every static token, so that the time taken does not tell
	// which (or whether one) matched.
	var found *principal
	for i := range a.static {
		if subtle.ConstantTimeCompare(hash[:], a.static[i].hash[:]) == 1 {
			found = &a.static[i].p
		}
	}
	if found != nil {
		return found, nil
	}

	a.mu.Lock()
	c, ok := a.cache[hash]
	a.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.p, nil
	}
	t, err := a.tokens.TokenByHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errBadToken
	}
	if err != nil {
		return nil, fmt.Errorf("api: token lookup: %w", err)
	}
	name := t.Name
	if name == "" {
		name = t.ID
	}
	p := &principal{name: name, key: "store:" + t.ID, scopes: t.Scopes, sessions: t.Sessions}
	a.mu.Lock()
	if len(a.cache) >= tokenCacheMax {
		clear(a.cache)
	}
	a.cache[hash] = cachedToken{p: p, expires: now.Add(tokenCacheTTL)}
	a.mu.Unlock()
	return p, nil
}

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", errNoToken
	}
	scheme, token, ok := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", errNoToken
	}
	return token, nil
}

// authenticate is middleware that admits requests whose bearer token grants
// a, for the session named by the path's {id} where there is one. It answers
// 401 (with WWW-Authenticate) for a missing or unknown token and 403 for a
// token without the scope, and stores the principal in the request context.
// A request without an Authorization header but with the console's session
// cookie (ConsoleCookie, when Options.Console is set) has the scopes of the
// token that logged in; see consolePrincipal for its errors.
// A client address (httpx.ClientKey) that has sent too many requests with a
// missing or unknown token is answered 429, with Retry-After, before its
// token is looked at.
func (s *Server) authenticate(a access) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			client := httpx.ClientKey(r.RemoteAddr)
			if !s.admitClient(w, r, client) {
				return
			}
			secret, err := bearer(r)
			if cookie := s.consoleCookie(r); err != nil && cookie != "" {
				// The console's session cookie stands for the token that
				// logged in (see console.go).
				if p := s.consolePrincipal(w, r, client, cookie); p != nil {
					s.admit(w, r, a, p, next)
				}
				return
			}
			if err != nil {
				s.failures.take(client)
				w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard"`)
				s.writeError(w, r, errorf(http.StatusUnauthorized, codeUnauthorized,
					"missing bearer token: send the header \"Authorization: Bearer <token>\""))
				return
			}
			p := sessionPrincipal(s.sessionKey, secret, s.now())
			if p == nil {
				p, err = s.auth.lookup(r.Context(), HashToken(secret), s.now())
			}
			if errors.Is(err, errBadToken) {
				s.failures.take(client)
				w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard", error="invalid_token"`)
				s.writeError(w, r, errorf(http.StatusUnauthorized, codeUnauthorized, "the bearer token is not valid"))
				return
			}
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			s.admit(w, r, a, p, next)
		})
	}
}

// admit serves r with next when p may do what a needs (on the path's
// session, if any), else answers 403.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, a access, p *principal, next http.Handler) {
	if id := r.PathValue("id"); !p.may(a, id) {
		s.writeError(w, r, errorf(http.StatusForbidden, codeForbidden,
			"token %q may not %s", p.name, describe(a, id)))
		return
	}
	next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
}

// admitClient answers 429 and returns false when client has sent too many
// requests with a missing or invalid token.
func (s *Server) admitClient(w http.ResponseWriter, r *http.Request, client string) bool {
	if wait := s.failures.wait(client); wait > 0 {
		secs := retryAfter(w, wait)
		s.writeError(w, r, errorf(http.StatusTooManyRequests, codeRateLimited,
			"too many requests with a missing or invalid token from %s (limits.failed_auth_per_minute is %d); retry after %ds with a valid token",
			client, s.limits.FailedAuthPerMinute, secs))
		return false
	}
	return true
}

// describe says what access a means, for 403 messages.
func describe(a access, id string) string {
	switch a {
	case steering:
		return "create, list or steer sessions (needs scope steer or admin)"
	case reading:
		return fmt.Sprintf("read session %s (needs scope steer or admin, or agent for this session)", echoID(id))
	case output:
		return fmt.Sprintf("post outputs to session %s (needs scope admin, or agent for this session)", echoID(id))
	case administration:
		return "administer the gateway: bind conversations, manage deliveries and webhooks, run catch-ups (needs scope admin)"
	}
	return "do this"
}
