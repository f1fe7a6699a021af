package api

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/switchboardhq/switchboard/store"
)

// fakeConsole is a ConsoleSessions of fixed cookies.
type fakeConsole map[string]ConsoleSession

func (f fakeConsole) ConsoleSession(_ context.Context, cookie string) (ConsoleSession, error) {
	if s, ok := f[cookie]; ok {
		return s, nil
	}
	return ConsoleSession{}, fmt.Errorf("no session: %w", store.ErrNotFound)
}

// TestConsoleCookie checks the console cookie's path through authenticate
// (and, through the harness, that its answers match the document): it
// stands for the token that logged in, needs the CSRF header on state
// changes, and never changes what a bearer token does.
func TestConsoleCookie(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Console = fakeConsole{
			"admin-cookie": {TokenHash: HashToken(adminSecret), CSRF: "csrf-1"},
			"steer-cookie": {TokenHash: HashToken(steerSecret), CSRF: "csrf-2"},
			"gone-cookie":  {TokenHash: HashToken("sb_revoked"), CSRF: "csrf-3"},
		}
	})
	cookie := func(v string, more ...string) map[string]string {
		m := map[string]string{"Cookie": ConsoleCookie + "=" + v}
		for i := 0; i+1 < len(more); i += 2 {
			m[more[i]] = more[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		r      req
		status int
		code   string
	}{
		{"read with the cookie", req{method: "GET", path: "/v3/sessions", header: cookie("admin-cookie")}, 200, ""},
		{"create without CSRF", req{method: "POST", path: "/v3/sessions", body: "{}", header: cookie("admin-cookie")}, 403, codeCSRF},
		{"create with another session's CSRF", req{method: "POST", path: "/v3/sessions", body: "{}", header: cookie("admin-cookie", CSRFHeader, "csrf-2")}, 403, codeCSRF},
		{"create with CSRF", req{method: "POST", path: "/v3/sessions", body: "{}", header: cookie("admin-cookie", CSRFHeader, "csrf-1")}, 201, ""},
		{"steer cookie posting an output", req{method: "POST", path: "/v3/sessions/" + agentSession + "/outputs", body: `{"text":"x"}`, header: cookie("steer-cookie", CSRFHeader, "csrf-2")}, 403, codeForbidden},
		{"unknown cookie", req{method: "GET", path: "/v3/sessions", header: cookie("made-up")}, 401, codeUnauthorized},
		{"token gone", req{method: "GET", path: "/v3/sessions", header: cookie("gone-cookie")}, 401, codeUnauthorized},
		{"bearer beside a bad cookie", req{method: "POST", path: "/v3/sessions", token: steerSecret, body: "{}", header: cookie("made-up")}, 201, ""},
		{"bad bearer beside a good cookie", req{method: "GET", path: "/v3/sessions", token: "sb_wrong", header: cookie("admin-cookie")}, 401, codeUnauthorized},
	} {
		w := h.do(tc.r)
		if w.Code != tc.status || (tc.code != "" && errorCode(t, w.Body.Bytes()) != tc.code) {
			t.Errorf("%s: %d %s, want %d %s", tc.name, w.Code, w.Body, tc.status, tc.code)
		}
	}
	// Without Options.Console the cookie means nothing.
	plain := newHarness(t, nil)
	if w := plain.do(req{method: "GET", path: "/v3/sessions", header: map[string]string{"Cookie": ConsoleCookie + "=admin-cookie"}}); w.Code != http.StatusUnauthorized {
		t.Fatalf("cookie without console sessions: %d", w.Code)
	}
}
