package jira

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
)

// SignatureHeader is the header that carries the signature of a webhook
// registered with a secret.
const SignatureHeader = "X-Hub-Signature"

// AuthError is why a webhook request was refused before parsing. Reason is a
// short label for metrics: missing, malformed, mismatch or token.
type AuthError struct {
	Reason string
	Detail string
}

func (e *AuthError) Error() string { return "jira: webhook " + e.Reason + ": " + e.Detail }

// VerifySignature checks the signature Jira puts on webhooks registered with
// a secret: X-Hub-Signature must be "sha256=" and the hex HMAC-SHA256,
// keyed with secret, of the raw body. The comparison is constant-time. It
// returns an *AuthError, or nil when the request is authentic. Jira does not
// sign a timestamp: replays are harmless because envelope ids deduplicate.
func VerifySignature(secret []byte, h http.Header, body []byte) error {
	if len(secret) == 0 {
		return &AuthError{"missing", "no webhook secret configured"}
	}
	sig := h.Get(SignatureHeader)
	if sig == "" {
		return &AuthError{"missing", SignatureHeader + " is required"}
	}
	method, hexSig, ok := strings.Cut(sig, "=")
	if !ok || !strings.EqualFold(method, "sha256") {
		return &AuthError{"malformed", SignatureHeader + " is not a sha256=<hex> signature"}
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return &AuthError{"malformed", SignatureHeader + " is not a hex SHA-256 digest"}
	}
	if !hmac.Equal(got, mac(secret, body)) {
		return &AuthError{"mismatch", SignatureHeader + " does not match the body"}
	}
	return nil
}

func mac(secret, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return m.Sum(nil)
}

// Sign returns the X-Hub-Signature value Jira computes for body (useful for
// tests and local tools).
func Sign(secret, body []byte) string {
	return "sha256=" + hex.EncodeToString(mac(secret, body))
}

// tokenEqual compares a URL token with the configured one in constant time.
// Both are hashed first, so the comparison does not reveal the length.
func tokenEqual(got, want string) bool {
	if want == "" {
		return false
	}
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// authenticate decides whether a webhook request may be processed. token is
// the path below the mount point ("" for POST /). A request is accepted when
// it is posted to the configured URL token, or carries a valid signature
// when a webhook secret is configured. A signature that is present must be
// valid even at the right URL token.
func (a *Adapter) authenticate(token string, h http.Header, body []byte) error {
	if token != "" && !tokenEqual(token, a.cfg.URLToken) {
		return &AuthError{"token", "unknown URL token"}
	}
	signed := h.Get(SignatureHeader) != ""
	if a.cfg.WebhookSecret != "" && (signed || token == "") {
		return VerifySignature([]byte(a.cfg.WebhookSecret), h, body)
	}
	if token == "" {
		return &AuthError{"missing", "post to /hooks/jira/<url_token>: no webhook secret is configured"}
	}
	return nil
}

// authReason returns the metrics label of an authenticate error.
func authReason(err error) string {
	var ae *AuthError
	if errors.As(err, &ae) {
		return ae.Reason
	}
	return "mismatch"
}
