package api

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard/store"
)

func TestNewTokenSecret(t *testing.T) {
	a, b := NewTokenSecret(), NewTokenSecret()
	if a == b {
		t.Fatal("two secrets are equal")
	}
	for _, s := range []string{a, b} {
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(s, "sb_"))
		if !strings.HasPrefix(s, "sb_") || err != nil || len(raw) != 32 {
			t.Errorf("secret %q: want sb_ and 32 bytes of base64url (%v, %d bytes)", s, err, len(raw))
		}
	}
	if HashToken(a) != sha256.Sum256([]byte(a)) {
		t.Error("HashToken is not SHA-256")
	}
}

func TestStaticTokenValidation(t *testing.T) {
	admin := []store.Scope{store.ScopeAdmin}
	st := openStore(t)
	for _, c := range []struct {
		name   string
		tokens []StaticToken
		want   string
	}{
		{"no name", []StaticToken{{Secret: "s", Scopes: admin}}, "name is required"},
		{"no secret", []StaticToken{{Name: "a", Scopes: admin}}, "secret is empty"},
		{"no scopes", []StaticToken{{Name: "a", Secret: "s"}}, "no scopes"},
		{"bad scope", []StaticToken{{Name: "a", Secret: "s", Scopes: []store.Scope{"root"}}}, `unknown scope "root"`},
		{"agent without sessions", []StaticToken{{Name: "a", Secret: "s", Scopes: []store.Scope{store.ScopeAgent}}}, "must name its sessions"},
		{"same name", []StaticToken{{Name: "a", Secret: "s", Scopes: admin}, {Name: "a", Secret: "t", Scopes: admin}}, "used twice"},
		{"same secret", []StaticToken{{Name: "a", Secret: "s", Scopes: admin}, {Name: "b", Secret: "s", Scopes: admin}}, "shared"},
	} {
		_, err := New(Options{Store: st, Tokens: c.tokens})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := New(Options{}); err == nil {
		t.Error("New without a store succeeded")
	}
}

func TestAuthenticate(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	// A token in the store, found by hash.
	if err := h.store.CreateToken(ctx, store.Token{ID: "tok_ci", Hash: HashToken("sb_stored-steer"), Name: "ci",
		Scopes: []store.Scope{store.ScopeSteer}, CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if err := h.store.CreateToken(ctx, store.Token{ID: "tok_bot2", Hash: HashToken("sb_stored-agent"), Name: "bot2",
		Scopes: []store.Scope{store.ScopeAgent}, Sessions: []string{"ses_b"}, CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}

	var seen *principal
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = principalFrom(r.Context())
		w.WriteHeader(http.StatusNoContent)
	})
	handlers := map[access]http.Handler{
		steering: h.srv.authenticate(steering)(inner),
		reading:  h.srv.authenticate(reading)(inner),
		output:   h.srv.authenticate(output)(inner),
	}
	call := func(a access, session, authz string) int {
		r := httptest.NewRequest("GET", "/", nil)
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		r.SetPathValue("id", session)
		w := httptest.NewRecorder()
		seen = nil
		handlers[a].ServeHTTP(w, r)
		if w.Code == http.StatusNoContent && seen == nil {
			t.Errorf("no principal in the context")
		}
		return w.Code
	}

	type row struct {
		token              string
		steer, read, write int // for the agent's own session
		readOther, wOther  int // for another session
	}
	for _, r := range []row{
		{adminSecret, 204, 204, 204, 204, 204},
		{steerSecret, 204, 204, 403, 204, 403},
		{agentSecret, 403, 204, 204, 403, 403},
		{"sb_stored-steer", 204, 204, 403, 204, 403},
		{"sb_stored-agent", 403, 403, 403, 403, 403},
		{"sb_unknown", 401, 401, 401, 401, 401},
	} {
		check := func(what string, a access, session string, want int) {
			if got := call(a, session, "Bearer "+r.token); got != want {
				t.Errorf("%s %s on %s: %d, want %d", r.token, what, session, got, want)
			}
		}
		check("steer", steering, "", r.steer)
		check("read", reading, agentSession, r.read)
		check("output", output, agentSession, r.write)
		check("read", reading, "ses_other", r.readOther)
		check("output", output, "ses_other", r.wOther)
	}
	// The stored agent token on its own session.
	if got := call(output, "ses_b", "Bearer sb_stored-agent"); got != 204 || seen.name != "bot2" {
		t.Errorf("stored agent token on its session: %d", got)
	}
	// The scheme is case-insensitive; other schemes and malformed headers fail.
	for authz, want := range map[string]int{
		"bearer " + adminSecret:       204,
		"BEARER  " + adminSecret:      204,
		"Basic " + adminSecret:        401,
		"Bearer":                      401,
		"Bearer ":                     401,
		adminSecret:                   401,
		"":                            401,
		"Bearer " + adminSecret + "x": 401,
	} {
		if got := call(steering, "", authz); got != want {
			t.Errorf("Authorization %q: %d, want %d", authz, got, want)
		}
	}
}
