package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/switchboardhq/switchboard/store"
)

// sessionTokenPrefix starts every session-scoped token.
const sessionTokenPrefix = "sbs_"

// SessionToken mints the session-scoped token for sessionID under key:
// "sbs_<session id>_<hex HMAC-SHA256(key, session id)>". It grants the
// agent scope on that one session, and a Server whose Options.SessionKey is
// key accepts it. Runtimes hand it to the agents they run, so nothing is
// stored and no token outlives the key.
func SessionToken(key []byte, sessionID string) string {
	return sessionTokenPrefix + sessionID + "_" + hex.EncodeToString(sessionMAC(key, sessionID))
}

func sessionMAC(key []byte, sessionID string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(sessionID))
	return m.Sum(nil)
}

// sessionPrincipal returns the principal of a session token, or nil when
// secret is not a valid one under key.
func sessionPrincipal(key []byte, secret string) *principal {
	if len(key) == 0 || !strings.HasPrefix(secret, sessionTokenPrefix) {
		return nil
	}
	rest := secret[len(sessionTokenPrefix):]
	i := strings.LastIndexByte(rest, '_')
	if i <= 0 {
		return nil
	}
	id, mac := rest[:i], rest[i+1:]
	got, err := hex.DecodeString(mac)
	if err != nil || !hmac.Equal(got, sessionMAC(key, id)) {
		return nil
	}
	return &principal{name: "session", key: "session:" + id, scopes: []store.Scope{store.ScopeAgent}, sessions: []string{id}}
}
