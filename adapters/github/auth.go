package github

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-github/v62/github"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/internal/bounded"
)

// Lifetimes of the App's credentials.
const (
	// jwtLifetime is how long a minted JWT is valid (GitHub allows 10
	// minutes); it is backdated by jwtBackdate against clock drift.
	jwtLifetime = 9 * time.Minute
	jwtBackdate = 60 * time.Second
	// tokenRefresh is how long before an installation token's expiry
	// (normally an hour after minting) a new one is minted.
	tokenRefresh = 5 * time.Minute
)

// client returns a REST client authenticated with token (a personal access
// token, an installation token or an App JWT). A fresh client per use keeps
// go-github's rate-limit memory, which is per client and uses the wall
// clock, out of the way: the adapter tracks rate limits itself, per
// credential (see gate).
func (a *Adapter) client(token string) *github.Client {
	c := github.NewClient(a.httpc).WithAuthToken(token)
	base := *a.baseURL
	c.BaseURL = &base
	c.UserAgent = "switchboard"
	return c
}

// tokenFor returns the token for REST calls about repo ("owner/name") and
// the credential it belongs to (for rate-limit pauses and health): the
// personal access token, or the token of the App installation on repo,
// minted when needed. Errors are classified as for Deliver.
func (a *Adapter) tokenFor(ctx context.Context, repo string) (token, cred string, err error) {
	if a.app == nil {
		return a.cfg.Token, credToken, nil
	}
	inst, err := a.installation(ctx, repo)
	if err != nil {
		return "", "", err
	}
	tok, err := a.installationToken(ctx, inst)
	if err != nil {
		return "", "", err
	}
	return tok, installationCred(inst), nil
}

// installationCred names an installation's token as a credential.
func installationCred(inst int64) string { return "installation/" + strconv.FormatInt(inst, 10) }

// installationOf returns the installation a credential names.
func installationOf(cred string) (int64, bool) {
	s, ok := strings.CutPrefix(cred, "installation/")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil
}

// appAuth holds a GitHub App's credentials: its key, the JWT signed with
// it, the installation tokens minted with the JWT and the installation of
// each repository seen. Safe for concurrent use.
type appAuth struct {
	id    int64
	key   *rsa.PrivateKey
	fixed int64 // the configured installation, for repositories not seen yet
	now   func() time.Time

	mu     sync.Mutex
	jwtTok string
	jwtExp time.Time
	tokens map[int64]*instToken

	installs *bounded.Map[string, int64] // lower-case owner/name → installation
}

// instToken is one installation's token; sem is held while it is minted,
// so concurrent callers wait for one mint.
type instToken struct {
	sem     chan struct{}
	token   string
	expires time.Time
}

func newAppAuth(c AppConfig, key *rsa.PrivateKey, now func() time.Time) *appAuth {
	return &appAuth{id: c.ID, key: key, fixed: c.InstallationID, now: now,
		tokens: map[int64]*instToken{}, installs: bounded.NewMap[string, int64](10000)}
}

// jwtClaims are the claims GitHub reads from an App JWT.
type jwtClaims struct {
	IssuedAt  int64  `json:"iat"`
	ExpiresAt int64  `json:"exp"`
	Issuer    string `json:"iss"`
}

// jwt returns a JWT authenticating as the App, reusing one that is valid
// for at least another minute.
func (p *appAuth) jwt() (string, error) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.jwtTok != "" && now.Before(p.jwtExp.Add(-time.Minute)) && !now.Before(p.jwtExp.Add(-jwtLifetime)) {
		return p.jwtTok, nil
	}
	exp := now.Add(jwtLifetime)
	tok, err := signJWT(p.key, jwtClaims{IssuedAt: now.Add(-jwtBackdate).Unix(), ExpiresAt: exp.Unix(), Issuer: strconv.FormatInt(p.id, 10)})
	if err != nil {
		return "", err
	}
	p.jwtTok, p.jwtExp = tok, exp
	return tok, nil
}

// signJWT returns a compact RS256 JWT of claims.
func signJWT(key *rsa.PrivateKey, claims jwtClaims) (string, error) {
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc.EncodeToString(body)
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign jwt: %w", err)
	}
	return input + "." + enc.EncodeToString(sig), nil
}

// parseKey reads an RSA private key in PEM (PKCS#1, as GitHub issues them,
// or PKCS#8). A key whose line breaks were written as "\n" (as happens in
// environment variables) is accepted too.
func parseKey(b []byte) (*rsa.PrivateKey, error) {
	s := strings.TrimSpace(string(b))
	if !strings.Contains(s, "\n") && strings.Contains(s, `\n`) {
		s = strings.ReplaceAll(s, `\n`, "\n")
	}
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("no PEM block found (want the app's .pem private key)")
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse RSA private key: %w", err)
		}
		return k, nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse private key: %w", err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("the private key is %T, want RSA", k)
		}
		return rk, nil
	}
	return nil, fmt.Errorf("PEM block is %q, want an RSA private key", block.Type)
}

// learnInstallation records that repo's webhooks come from installation
// inst; deliveries to repo use its token.
func (a *Adapter) learnInstallation(repo string, inst int64) {
	if a.app == nil || repo == "" || inst <= 0 {
		return
	}
	a.app.installs.Put(strings.ToLower(repo), inst)
}

// installation returns the App installation on repo: the one its webhooks
// named, else the configured one, else GitHub's answer to
// GET /repos/{owner}/{repo}/installation (cached).
func (a *Adapter) installation(ctx context.Context, repo string) (int64, error) {
	key := strings.ToLower(repo)
	if inst, ok := a.app.installs.Get(key); ok {
		return inst, nil
	}
	if a.app.fixed > 0 {
		return a.app.fixed, nil
	}
	owner, name, ok := strings.Cut(repo, "/")
	if !ok {
		return 0, fmt.Errorf("github: %w: %q is not owner/name", adapters.ErrPermanent, repo)
	}
	jwt, err := a.app.jwt()
	if err != nil {
		return 0, fmt.Errorf("github: app jwt: %w", err)
	}
	inst, resp, err := a.client(jwt).Apps.FindRepositoryInstallation(ctx, owner, name)
	if err != nil {
		return 0, fmt.Errorf("github: find the app's installation on %s: %w", repo, a.classify(credApp, resp, err))
	}
	a.health.Accept(credApp)
	a.app.installs.Put(key, inst.GetID())
	return inst.GetID(), nil
}

// installationToken returns a token of installation inst, minting one when
// there is none or it expires within tokenRefresh. Concurrent callers for
// one installation wait for a single mint.
func (a *Adapter) installationToken(ctx context.Context, inst int64) (string, error) {
	p := a.app
	p.mu.Lock()
	t := p.tokens[inst]
	if t == nil {
		t = &instToken{sem: make(chan struct{}, 1)}
		p.tokens[inst] = t
	}
	p.mu.Unlock()
	select {
	case t.sem <- struct{}{}:
		defer func() { <-t.sem }()
	case <-ctx.Done():
		return "", ctx.Err()
	}
	if t.token != "" && p.now().Before(t.expires.Add(-tokenRefresh)) {
		return t.token, nil
	}
	jwt, err := p.jwt()
	if err != nil {
		return "", fmt.Errorf("github: app jwt: %w", err)
	}
	tok, resp, err := a.client(jwt).Apps.CreateInstallationToken(ctx, inst, nil)
	if err != nil {
		a.metrics.tokens.WithLabelValues("error").Inc()
		cerr := a.classify(credApp, resp, err)
		var bo *adapters.BackOff
		if code := statusOf(resp); (code == http.StatusNotFound || code == http.StatusForbidden) && !errors.As(cerr, &bo) {
			// The installation was removed or suspended (the app may have
			// been installed again, under a new id): forget it, so that the
			// next attempt looks the repository's installation up again,
			// which fails for good if the app is not installed there.
			a.forgetInstallation(inst)
			return "", fmt.Errorf("github: mint a token for installation %d (forgotten; the next attempt looks it up again): %w", inst, err)
		}
		return "", fmt.Errorf("github: mint a token for installation %d: %w", inst, cerr)
	}
	a.health.Accept(credApp)
	a.metrics.tokens.WithLabelValues("ok").Inc()
	t.token = tok.GetToken()
	t.expires = tok.GetExpiresAt().Time
	if t.expires.IsZero() {
		t.expires = p.now().Add(time.Hour) // GitHub's documented lifetime
	}
	return t.token, nil
}

// forgetToken drops installation inst's token (GitHub rejected it), so the
// next call mints a new one.
func (a *Adapter) forgetToken(inst int64) {
	if a.app == nil {
		return
	}
	a.app.mu.Lock()
	defer a.app.mu.Unlock()
	if t := a.app.tokens[inst]; t != nil {
		delete(a.app.tokens, inst) // a mint in flight keeps its own entry
	}
}

// forgetInstallation drops inst from the repository map.
func (a *Adapter) forgetInstallation(inst int64) {
	a.app.installs.DeleteFunc(func(_ string, v int64) bool { return v == inst })
	a.forgetToken(inst)
}

// statusOf returns resp's HTTP status, or 0 without a response.
func statusOf(resp *github.Response) int {
	if resp == nil || resp.Response == nil {
		return 0
	}
	return resp.StatusCode
}
