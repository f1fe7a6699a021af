package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestSessionTokenGrantsItsSessionOnly(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	h := newHarness(t, func(o *Options) { o.SessionKey = key })
	exp := t0.Add(10 * time.Minute)
	tok := SessionToken(key, agentSession, exp)

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
	mac := tok[len(tok)-64:]
	later := strconv.FormatInt(exp.Add(time.Hour).Unix(), 10)
	for name, forged := range map[string]string{
		"other key":      SessionToken([]byte("another key, another key, another"), agentSession, exp),
		"other id":       tok[:len(sessionTokenPrefix)] + other + tok[len(sessionTokenPrefix)+len(agentSession):],
		"later expiry":   sessionTokenPrefix + agentSession + "_" + later + "_" + mac,
		"truncated":      tok[:len(tok)-2],
		"no mac":         sessionTokenPrefix + agentSession,
		"no expiry":      sessionTokenPrefix + agentSession + "_" + mac,
		"not hex mac":    sessionTokenPrefix + agentSession + "_" + later + "_zz",
		"the old format": sessionTokenPrefix + agentSession + "_" + oldSessionMAC(key, agentSession),
	} {
		if w := h.do(req{method: "GET", path: "/v3/sessions/" + agentSession + "/messages", token: forged}); w.Code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, w.Code)
		}
	}
}

// oldSessionMAC is the MAC of the first format, which had no expiry: such a
// token, once handed to an agent, was good for as long as the key.
func oldSessionMAC(key []byte, id string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil))
}

func TestSessionTokenExpires(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	h := newHarness(t, func(o *Options) { o.SessionKey = key })
	tok := SessionToken(key, agentSession, t0.Add(time.Minute))
	read := func() int {
		return h.do(req{method: "GET", path: "/v3/sessions/" + agentSession + "/messages", token: tok}).Code
	}
	if code := read(); code != http.StatusOK {
		t.Fatalf("before the expiry: %d, want 200", code)
	}
	h.clock.Advance(time.Minute - time.Second)
	if code := read(); code != http.StatusOK {
		t.Fatalf("a second before the expiry: %d, want 200", code)
	}
	h.clock.Advance(time.Second)
	if code := read(); code != http.StatusUnauthorized {
		t.Fatalf("at the expiry: %d, want 401", code)
	}
	if code := h.do(req{method: "GET", path: "/v3/sessions/" + agentSession + "/messages",
		token: SessionToken(key, agentSession, t0.Add(-time.Second))}).Code; code != http.StatusUnauthorized {
		t.Fatalf("a token minted expired: %d, want 401", code)
	}
}

func TestSessionTokensOffWithoutKey(t *testing.T) {
	h := newHarness(t, nil)
	tok := SessionToken([]byte("k"), agentSession, t0.Add(time.Hour))
	if w := h.do(req{method: "GET", path: "/v3/sessions/" + agentSession + "/messages", token: tok}); w.Code != http.StatusUnauthorized {
		t.Fatalf("%d, want 401 when no session key is configured", w.Code)
	}
}
