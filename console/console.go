// Package console is Switchboard's operator console: a few static pages and
// vanilla JavaScript modules, embedded in the binary and served under
// /console/, that use the same /v3 API as every other client.
//
// People log in with a token (admin, or steer for a read-mostly view;
// agent tokens cannot log in). The console never keeps the token in the
// browser: POST /console/login trades it for a session cookie (HttpOnly,
// SameSite=Strict, Secure over TLS) naming a session in the store's KV (see
// Sessions), which the API takes in place of a bearer token
// (api.Options.Console). State-changing requests must also carry the
// session's CSRF token in the X-CSRF-Token header, which the page reads
// from GET /console/session; without it they are refused with 403. Every
// page is served with a strict Content-Security-Policy (no inline script,
// everything from the gateway itself).
//
// The files, in static/, by role:
//
//	index.html    the one page: header, navigation, login form
//	console.css   its styles
//	app.js        entry point: session check, login and logout, routing
//	api.js        requests (cookie, CSRF header, JSON errors), a DOM builder
//	markdown.js   a safe Markdown subset, rendered to DOM nodes
//	links.js      where a conversation lives (Slack, GitHub, Jira)
//	sessions.js   the sessions list (API pages, time cursor, conversation lookup)
//	timeline.js   a session's log: newest page, earlier pages, live stream, steer box, conversations
//	deliveries.js the outbox: by status, retry one or all dead
//	webhooks.js   destinations: create, disable/enable, rotate, replay, attempts
//	channels.js   /readyz: channel health and catch-ups, catch up now
//	numbers.js    charts sampled from /metrics (Prometheus text parsed in JS)
package console

import (
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard/api"
	"github.com/switchboardhq/switchboard/internal/httpx"
	"github.com/switchboardhq/switchboard/store"
)

//go:embed static
var static embed.FS

// Prefix is the path under which the console is served.
const Prefix = "/console/"

// ContentSecurityPolicy is sent with every console response: scripts,
// styles and requests only from the gateway itself, no inline script, no
// framing.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// maxLoginBody bounds the body of POST /console/login.
const maxLoginBody = 4 << 10

// Login checks a token typed into the login form; *api.Server is one.
type Login interface {
	ConsoleLogin(w http.ResponseWriter, r *http.Request, secret string) (api.ConsoleLogin, bool)
}

var _ Login = (*api.Server)(nil)

// Options configure a Handler. Sessions and Login are required.
type Options struct {
	Sessions *Sessions
	Login    Login
	// Secure sets the Secure attribute on the session cookie even for
	// requests that did not come over TLS (a gateway behind a TLS proxy:
	// public_url is https). Requests over TLS always get it.
	Secure bool
	// Logger receives server errors; nil discards them.
	Logger *slog.Logger
}

// Handler serves the console under Prefix. It is safe for concurrent use.
type Handler struct {
	opts   Options
	fsys   fs.FS
	etags  map[string]string // by file name
	files  http.Handler
	mux    *http.ServeMux
	logger *slog.Logger
}

var _ http.Handler = (*Handler)(nil)

// New returns the console's handler.
func New(opts Options) (*Handler, error) {
	if opts.Sessions == nil || opts.Login == nil {
		return nil, errors.New("console: options: Sessions and Login are required")
	}
	sub, err := fs.Sub(static, "static")
	if err != nil {
		return nil, fmt.Errorf("console: embedded files: %w", err)
	}
	h := &Handler{opts: opts, logger: opts.Logger, mux: http.NewServeMux(), fsys: sub, etags: map[string]string{}}
	// The embedded files have no modification time; a hash of each gives
	// browsers something to revalidate with (304 Not Modified).
	err = fs.WalkDir(sub, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		h.etags[name] = `"` + hex.EncodeToString(sum[:8]) + `"`
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console: embedded files: %w", err)
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	h.files = http.StripPrefix(Prefix, http.FileServerFS(sub))
	h.mux.HandleFunc("POST /console/login", h.login)
	h.mux.HandleFunc("POST /console/logout", h.logout)
	h.mux.HandleFunc("GET /console/session", h.session)
	h.mux.HandleFunc("GET /console/", h.file)
	h.mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed",
			r.Method+" is not allowed on "+r.URL.Path+"; the console's pages are read with GET")
	})
	return h, nil
}

// ServeHTTP serves the console, with its security headers on every answer.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	h.mux.ServeHTTP(w, r)
}

// file serves the embedded pages and scripts; no-cache makes a browser ask
// again (cheaply, by Last-Modified) after an upgrade.
func (h *Handler) file(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, Prefix)
	if name == "" {
		name = "index.html"
	}
	if _, err := fs.Stat(h.fsys, name); err != nil {
		httpx.WriteError(w, http.StatusNotFound, "not_found",
			"the console has no file "+strconv.Quote(name)+"; open "+Prefix)
		return
	}
	if ext := path.Ext(r.URL.Path); ext == ".js" {
		// Module scripts must have a JavaScript type, whatever the
		// system's MIME table says.
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	} else if t := mime.TypeByExtension(ext); t != "" {
		w.Header().Set("Content-Type", t)
	}
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", h.etags[name])
	h.files.ServeHTTP(w, r)
}

// writeJSON answers v as JSON, never cached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		httpx.WriteError(w, http.StatusInternalServerError, "internal", "cannot encode the response")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// login serves POST /console/login with {"token": "sb_…"}: it sets the
// session cookie and answers the session (name, scopes, CSRF token). It
// takes only application/json, which a cross-site form cannot send.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if !isJSON(r) {
		httpx.WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type",
			`send the token as JSON, {"token": "sb_…"}, with Content-Type: application/json`)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxLoginBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		httpx.WriteError(w, http.StatusRequestEntityTooLarge, "payload_too_large", "the login body is larger than 4 KiB; send only {\"token\": \"sb_…\"}")
		return
	}
	if err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "invalid_request", "the login body could not be read; send it again")
		return
	}
	var req struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &req); err != nil || strings.TrimSpace(req.Token) == "" {
		httpx.WriteError(w, http.StatusBadRequest, "invalid_request", `the body must be {"token": "sb_…"} with a non-empty token`)
		return
	}
	login, ok := h.opts.Login.ConsoleLogin(w, r, strings.TrimSpace(req.Token))
	if !ok {
		return
	}
	id, sess, err := h.opts.Sessions.Create(r.Context(), login)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.setCookie(w, r, id, sess.Expires)
	writeJSON(w, http.StatusOK, sess)
}

// setCookie sets the session cookie to id until expires, or clears it when
// id is "".
func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, id string, expires time.Time) {
	c := &http.Cookie{
		Name:     api.ConsoleCookie,
		Value:    id,
		Path:     "/",
		Expires:  expires,
		HttpOnly: true,
		Secure:   h.opts.Secure || r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	}
	if id == "" {
		c.MaxAge, c.Expires = -1, time.Unix(0, 0)
	}
	http.SetCookie(w, c)
}

// cookieSession returns the session named by r's cookie and its id, or an
// error wrapping store.ErrNotFound when there is no cookie or no such live
// session.
func (h *Handler) cookieSession(r *http.Request) (string, Session, error) {
	c, err := r.Cookie(api.ConsoleCookie)
	if err != nil {
		return "", Session{}, fmt.Errorf("console: no session cookie: %w", store.ErrNotFound)
	}
	sess, err := h.opts.Sessions.Session(r.Context(), c.Value)
	return c.Value, sess, err
}

// session serves GET /console/session: the cookie's session (name, scopes
// and the CSRF token the page must send), or 401.
func (h *Handler) session(w http.ResponseWriter, r *http.Request) {
	_, sess, err := h.cookieSession(r)
	if errors.Is(err, store.ErrNotFound) {
		httpx.WriteError(w, http.StatusUnauthorized, "unauthorized",
			"not logged in, or the console session has expired or was logged out; log in with an admin or steer token")
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sess)
}

// logout serves POST /console/logout: it ends the cookie's session, which
// must be proven with the CSRF token, and clears the cookie (204). Without a
// live session there is only the cookie to clear.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	id, sess, err := h.cookieSession(r)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Already gone: clearing the cookie is all there is to do.
	case err != nil:
		h.fail(w, r, err)
		return
	case subtle.ConstantTimeCompare([]byte(r.Header.Get(api.CSRFHeader)), []byte(sess.CSRF)) != 1:
		httpx.WriteError(w, http.StatusForbidden, "csrf_token_invalid",
			"logout must carry the session's CSRF token in the "+api.CSRFHeader+" header; reload the console")
		return
	default:
		if err := h.opts.Sessions.End(r.Context(), id); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	h.setCookie(w, r, "", time.Time{})
	w.WriteHeader(http.StatusNoContent)
}

// fail logs err and answers 503 when the store is unavailable, else 500.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	h.logger.ErrorContext(r.Context(), "console: request failed", "path", r.URL.Path, "err", err)
	if errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrClosed) {
		httpx.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the store is not available; retry shortly")
		return
	}
	httpx.WriteError(w, http.StatusInternalServerError, "internal", "internal error; it has been logged")
}

func isJSON(r *http.Request) bool {
	t, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && t == "application/json"
}
