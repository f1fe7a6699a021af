package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard/store"
)

// sessionTokenPrefix starts every session-scoped token.
const sessionTokenPrefix = "sbs_"

// sessionTokenDomain separates the MAC of session tokens from any other use
// of the key, and from the earlier format (a MAC of the session id alone,
// without an expiry), whose tokens are therefore refused.
const sessionTokenDomain = "switchboard session token v2\x00"

// SessionToken mints the session-scoped token for sessionID under key, valid
// until expires: "sbs_<session id>_<expiry, unix seconds>_<hex
// HMAC-SHA256(key, domain, session id, expiry)>". It grants the agent scope
// on that one session, until expires, to a Server whose Options.SessionKey
// is key. Runtimes mint one per turn and hand it to the agent they run, so
// nothing is stored, and a token outlives neither the key nor its turn by
// more than the expiry the runtime chose.
func SessionToken(key []byte, sessionID string, expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	return sessionTokenPrefix + sessionID + "_" + exp + "_" + hex.EncodeToString(sessionMAC(key, sessionID, exp))
}

func sessionMAC(key []byte, sessionID, exp string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(sessionTokenDomain))
	m.Write([]byte(sessionID))
	m.Write([]byte{0})
	m.Write([]byte(exp))
	return m.Sum(nil)
}

// sessionPrincipal returns the principal of a session token, or nil when
// secret is not a valid one under key or has expired at now.
func sessionPrincipal(key []byte, secret string, now time.Time) *principal {
	if len(key) == 0 || !strings.HasPrefix(secret, sessionTokenPrefix) {
		return nil
	}
	rest := secret[len(sessionTokenPrefix):]
	i := strings.LastIndexByte(rest, '_')
	if i <= 0 {
		return nil
	}
	rest, mac := rest[:i], rest[i+1:]
	j := strings.LastIndexByte(rest, '_')
	if j <= 0 {
		return nil
	}
	id, exp := rest[:j], rest[j+1:]
	expires, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return nil
	}
	got, err := hex.DecodeString(mac)
	if err != nil || !hmac.Equal(got, sessionMAC(key, id, exp)) {
		return nil
	}
	if !now.Before(time.Unix(expires, 0)) {
		return nil
	}
	return &principal{name: "session", key: "session:" + id, scopes: []store.Scope{store.ScopeAgent}, sessions: []string{id}}
}
