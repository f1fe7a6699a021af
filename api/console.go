package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"

	"github.com/switchboardhq/switchboard/internal/httpx"
	"github.com/switchboardhq/switchboard/store"
)

// The operator console (package console) logs people in with a token and
// keeps a session cookie in the browser instead of the token. This file is
// the API's side of that: authenticate takes the cookie, where a request has
// no Authorization header, as standing for the token that logged in, and
// ConsoleLogin checks a token for the console's login form.

// ConsoleCookie is the name of the console's session cookie.
const ConsoleCookie = "switchboard_console"

// CSRFHeader is the header that must carry the console session's CSRF token
// on every request authenticated by ConsoleCookie whose method changes state
// (anything but GET, HEAD and OPTIONS).
const CSRFHeader = "X-CSRF-Token"

// ConsoleSession is what a console session cookie stands for.
type ConsoleSession struct {
	// TokenHash is the HashToken of the token that logged in: each request
	// has that token's scopes, and fails once the token is gone.
	TokenHash [32]byte
	// CSRF is the token state-changing requests must send in CSRFHeader.
	CSRF string
}

// ConsoleSessions look up console session cookies. Package console
// implements it over the store's KV, so that any replica knows every
// session.
type ConsoleSessions interface {
	// ConsoleSession returns the session a cookie value names, or an error
	// wrapping store.ErrNotFound when it is unknown, expired or logged out.
	ConsoleSession(ctx context.Context, cookie string) (ConsoleSession, error)
}

// ConsoleLogin is a token accepted by Server.ConsoleLogin.
type ConsoleLogin struct {
	// Name is the token's name, Scopes its scopes (admin or steer among them).
	Name      string
	Scopes    []store.Scope
	TokenHash [32]byte
}

// ConsoleLogin checks secret, a token typed into the console's login form
// by the client of r. It returns the token when it may log in: a known
// token with scope admin or steer. Otherwise it writes the JSON error (401
// for an unknown token, 403 for an agent or session-scoped one, 429 when the
// client has failed too often, as for bearer tokens) and returns false.
// Failed logins count against the same per-client limit as failed bearer
// tokens.
func (s *Server) ConsoleLogin(w http.ResponseWriter, r *http.Request, secret string) (ConsoleLogin, bool) {
	client := httpx.ClientKey(r.RemoteAddr)
	if !s.admitClient(w, r, client) {
		return ConsoleLogin{}, false
	}
	if sessionPrincipal(s.sessionKey, secret, s.now()) != nil {
		s.writeError(w, r, errorf(http.StatusForbidden, codeForbidden,
			"a session-scoped agent token cannot log in to the console; use an admin or steer token"))
		return ConsoleLogin{}, false
	}
	hash := HashToken(secret)
	p, err := s.auth.lookup(r.Context(), hash, s.now())
	if errors.Is(err, errBadToken) {
		s.failures.take(client)
		s.writeError(w, r, errorf(http.StatusUnauthorized, codeUnauthorized,
			"the token is not valid; paste an admin or steer token (the first start prints one, or see SWITCHBOARD_TOKEN)"))
		return ConsoleLogin{}, false
	}
	if err != nil {
		s.writeError(w, r, err)
		return ConsoleLogin{}, false
	}
	if !p.has(store.ScopeAdmin) && !p.has(store.ScopeSteer) {
		s.writeError(w, r, errorf(http.StatusForbidden, codeForbidden,
			"token %q has neither scope admin nor steer, so it cannot log in to the console; use an admin or steer token", p.name))
		return ConsoleLogin{}, false
	}
	return ConsoleLogin{Name: p.name, Scopes: p.scopes, TokenHash: hash}, true
}

// consoleCookie returns the console session cookie of r, "" when there is
// none or the server takes no console sessions.
func (s *Server) consoleCookie(r *http.Request) string {
	if s.console == nil {
		return ""
	}
	c, err := r.Cookie(ConsoleCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

// consolePrincipal returns the principal of a request authenticated by the
// console cookie: the principal of the token that logged in. It writes the
// error and returns nil when the session is unknown (401), the token is gone
// (401), or a state-changing request lacks the session's CSRF token (403).
func (s *Server) consolePrincipal(w http.ResponseWriter, r *http.Request, client, cookie string) *principal {
	sess, err := s.console.ConsoleSession(r.Context(), cookie)
	if errors.Is(err, store.ErrNotFound) {
		s.failures.take(client)
		s.writeError(w, r, errorf(http.StatusUnauthorized, codeUnauthorized,
			"the console session has expired or was logged out; log in again at /console/"))
		return nil
	}
	if err != nil {
		s.writeError(w, r, err)
		return nil
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		got := r.Header.Get(CSRFHeader)
		if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(sess.CSRF)) != 1 {
			s.writeError(w, r, errorf(http.StatusForbidden, codeCSRF,
				"a request authenticated by the console cookie must carry the session's CSRF token in the %s header; reload the console", CSRFHeader))
			return nil
		}
	}
	p, err := s.auth.lookup(r.Context(), sess.TokenHash, s.now())
	if errors.Is(err, errBadToken) {
		s.failures.take(client)
		s.writeError(w, r, errorf(http.StatusUnauthorized, codeUnauthorized,
			"the token this console session logged in with is no longer valid; log in again at /console/"))
		return nil
	}
	if err != nil {
		s.writeError(w, r, err)
		return nil
	}
	return p
}
