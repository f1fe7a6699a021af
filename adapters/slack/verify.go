package slack

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxSkew is how far a request's X-Slack-Request-Timestamp may be from the
// clock, either way, before the request is refused as a replay.
const MaxSkew = 5 * time.Minute

// SignatureError is why VerifySignature refused a request. Reason is a short
// label for metrics: missing, malformed, stale, future or mismatch.
type SignatureError struct {
	Reason string
	Detail string
}

func (e *SignatureError) Error() string { return "slack: signature " + e.Reason + ": " + e.Detail }

// VerifySignature checks Slack's v0 request signature: X-Slack-Signature must
// be "v0=" and the hex HMAC-SHA256, keyed with secret, of
// "v0:<X-Slack-Request-Timestamp>:<body>", and the timestamp must be within
// MaxSkew of now. The comparison is constant-time. It returns a
// *SignatureError, or nil when the request is authentic.
func VerifySignature(secret []byte, h http.Header, body []byte, now time.Time) error {
	if len(secret) == 0 {
		return &SignatureError{"missing", "no signing secret configured"}
	}
	tsHeader, sig := h.Get("X-Slack-Request-Timestamp"), h.Get("X-Slack-Signature")
	if tsHeader == "" || sig == "" {
		return &SignatureError{"missing", "X-Slack-Request-Timestamp and X-Slack-Signature are required"}
	}
	ts, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil {
		return &SignatureError{"malformed", "X-Slack-Request-Timestamp is not a Unix time"}
	}
	hexSig, ok := strings.CutPrefix(sig, "v0=")
	if !ok {
		return &SignatureError{"malformed", "X-Slack-Signature is not a v0 signature"}
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return &SignatureError{"malformed", "X-Slack-Signature is not a hex SHA-256 digest"}
	}
	switch skew := now.Sub(time.Unix(ts, 0)); {
	case skew > MaxSkew:
		return &SignatureError{"stale", "request timestamp is " + skew.Truncate(time.Second).String() + " old"}
	case skew < -MaxSkew:
		return &SignatureError{"future", "request timestamp is " + (-skew).Truncate(time.Second).String() + " in the future"}
	}
	if !hmac.Equal(got, sign(secret, tsHeader, body)) {
		return &SignatureError{"mismatch", "X-Slack-Signature does not match the body"}
	}
	return nil
}

// sign returns the raw v0 HMAC of body at timestamp ts.
func sign(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("v0:"))
	m.Write([]byte(ts))
	m.Write([]byte(":"))
	m.Write(body)
	return m.Sum(nil)
}

// Sign returns the X-Slack-Signature header value for body at Unix time ts,
// as Slack computes it (useful for tests and local tools).
func Sign(secret []byte, ts string, body []byte) string {
	return "v0=" + hex.EncodeToString(sign(secret, ts, body))
}

// isSignatureError reports whether err came from VerifySignature.
func isSignatureError(err error) (*SignatureError, bool) {
	var se *SignatureError
	ok := errors.As(err, &se)
	return se, ok
}
