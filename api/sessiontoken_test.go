package api

import (
	"net/http"
	"testing"
)

func TestSessionTokenGrantsItsSessionOnly(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	h := newHarness(t, func(o *Options) { o.SessionKey = key })
	tok := SessionToken(key, agentSession)

	if w := h.do(req{method: "GET", path: "/v3/sessions/" + agentSession + "/messages", token: tok}); w.Code != http.StatusOK {
		t.Fatalf("read own session: %d %s", w.Code, w.Body)
	}
	if w := h.do(req{method: "POST", path: "/v3/sessions/" + agentSession + "/outputs", token: tok, body: `{"text":"hi"}`}); w.Code != http.StatusAccepted {
		t.Fatalf("post output to own session: %d %s", w.Code, w.Body)
	}
	other := h.newSession()
	if w := h.do(req{method: "GET", path: "/v3/sessions/" + other + "/messages", token: tok}); w.Code != http.StatusForbidden {
		t.Fatalf("read another session: %d, want 403", w.Code)
	}
	if w := h.do(req{method: "POST", path: "/v3/sessions", token: tok}); w.Code != http.StatusForbidden {
		t.Fatalf("create a session: %d, want 403", w.Code)
	}
	for name, forged := range map[string]string{
		"other key":   SessionToken([]byte("another key, another key, another"), agentSession),
		"other id":    tok[:len(sessionTokenPrefix)] + other + tok[len(sessionTokenPrefix)+len(agentSession):],
		"truncated":   tok[:len(tok)-2],
		"no mac":      sessionTokenPrefix + agentSession,
		"not hex mac": sessionTokenPrefix + agentSession + "_zz",
	} {
		if w := h.do(req{method: "GET", path: "/v3/sessions/" + agentSession + "/messages", token: forged}); w.Code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, w.Code)
		}
	}
}

func TestSessionTokensOffWithoutKey(t *testing.T) {
	h := newHarness(t, nil)
	tok := SessionToken([]byte("k"), agentSession)
	if w := h.do(req{method: "GET", path: "/v3/sessions/" + agentSession + "/messages", token: tok}); w.Code != http.StatusUnauthorized {
		t.Fatalf("%d, want 401 when no session key is configured", w.Code)
	}
}
