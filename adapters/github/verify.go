package github

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
)

// The webhook signature headers.
const (
	headerSignature256 = "X-Hub-Signature-256"
	headerSignature1   = "X-Hub-Signature" // SHA-1: never accepted
)

// SignatureError is why VerifySignature refused a request. Reason is a short
// label for metrics: missing, sha1_only, malformed or mismatch.
type SignatureError struct {
	Reason string
	Detail string
}

func (e *SignatureError) Error() string { return "github: signature " + e.Reason + ": " + e.Detail }

// VerifySignature checks GitHub's webhook signature: X-Hub-Signature-256 must
// be "sha256=" and the hex HMAC-SHA256 of body keyed with secret. The
// comparison is constant-time. A request signed only with SHA-1
// (X-Hub-Signature) is refused, and so is every request when secret is
// empty: unlike github.ValidatePayload, an empty secret never means "accept
// unsigned". It returns a *SignatureError, or nil when the request is
// authentic.
func VerifySignature(secret []byte, h http.Header, body []byte) error {
	if len(secret) == 0 {
		return &SignatureError{"missing", "no webhook secret configured"}
	}
	sig := h.Get(headerSignature256)
	if sig == "" {
		if h.Get(headerSignature1) != "" {
			return &SignatureError{"sha1_only", "only X-Hub-Signature (SHA-1) is present; X-Hub-Signature-256 is required"}
		}
		return &SignatureError{"missing", "X-Hub-Signature-256 is required"}
	}
	hexSig, ok := strings.CutPrefix(sig, "sha256=")
	if !ok {
		return &SignatureError{"malformed", "X-Hub-Signature-256 does not start with sha256="}
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return &SignatureError{"malformed", "X-Hub-Signature-256 is not a hex SHA-256 digest"}
	}
	if !hmac.Equal(got, mac(secret, body)) {
		return &SignatureError{"mismatch", "X-Hub-Signature-256 does not match the body"}
	}
	return nil
}

func mac(secret, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return m.Sum(nil)
}

// Sign returns the X-Hub-Signature-256 header value for body, as GitHub
// computes it (useful for tests and local tools).
func Sign(secret, body []byte) string {
	return "sha256=" + hex.EncodeToString(mac(secret, body))
}

// isSignatureError reports whether err came from VerifySignature.
func isSignatureError(err error) (*SignatureError, bool) {
	var se *SignatureError
	ok := errors.As(err, &se)
	return se, ok
}
