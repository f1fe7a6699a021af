// Package webhook signs and verifies webhooks the way the Standard Webhooks
// specification (standardwebhooks.com, version 1) says, so that any Standard
// Webhooks library can verify what Switchboard sends, and Switchboard can
// verify what a Standard Webhooks sender delivers to it.
//
// A delivery carries three headers:
//
//	webhook-id:        msg_2KWPBgLlAfxdpx2AI54pPJ85f4W
//	webhook-timestamp: 1674087231
//	webhook-signature: v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=
//
// The signature is the standard base64 of HMAC-SHA256 over
// "{webhook-id}.{webhook-timestamp}.{body}", keyed with the decoded secret.
// Secrets are written "whsec_" followed by the standard base64 of 24 to 64
// random bytes. While a secret is being rotated the sender signs with the old
// and the new one, and webhook-signature holds both signatures separated by a
// space; a receiver accepts the delivery when any of them verifies.
//
// A receiver verifies a request in a few lines:
//
//	v, err := webhook.NewVerifier(os.Getenv("SWITCHBOARD_WEBHOOK_SECRET"))
//	...
//	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
//	...
//	if err := v.Verify(r.Header, body, time.Now()); err != nil {
//		http.Error(w, "bad signature", http.StatusUnauthorized)
//		return
//	}
//
// Verify the body exactly as received: decoding and re-encoding JSON changes
// its bytes and breaks the signature.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers. http.Header canonicalises them
// ("Webhook-Id"); HTTP header names are case-insensitive on the wire.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every symmetric signing secret.
const SecretPrefix = "whsec_"

// Secret sizes, in decoded bytes: the specification asks for at least 24
// bytes (192 bits) and at most 64 (512 bits).
const (
	MinSecretBytes = 24
	MaxSecretBytes = 64
	// newSecretBytes is what NewSecret generates.
	newSecretBytes = 32
)

// DefaultTolerance is how far a delivery's timestamp may be from the
// verifier's clock, in either direction, before it is refused as stale or
// future-dated (a guard against replays).
const DefaultTolerance = 5 * time.Minute

// signatureVersion tags an HMAC-SHA256 signature in webhook-signature.
const signatureVersion = "v1"

// Sentinel errors. Verify and the constructors wrap them with detail; test
// with errors.Is.
var (
	// ErrMissingHeaders: webhook-id, webhook-timestamp or webhook-signature
	// is absent or empty.
	ErrMissingHeaders = errors.New("webhook: missing signature headers")
	// ErrBadSignature: no signature in webhook-signature matches any secret.
	ErrBadSignature = errors.New("webhook: no matching signature")
	// ErrTimestamp: webhook-timestamp is not a unix time in seconds, or is
	// outside the tolerance.
	ErrTimestamp = errors.New("webhook: bad timestamp")
	// ErrInvalidSecret: a secret is not "whsec_" and the base64 of 24 to 64
	// bytes.
	ErrInvalidSecret = errors.New("webhook: invalid secret")
	// ErrInvalidID: a message id given to Sign is empty or holds a character
	// that is not allowed (see Signer.Sign).
	ErrInvalidID = errors.New("webhook: invalid message id")
)

// NewSecret returns a new random signing secret, "whsec_" followed by the
// standard base64 of 32 random bytes.
func NewSecret() (string, error) {
	b := make([]byte, newSecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("webhook: new secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// ParseSecret decodes a signing secret to its key bytes. It accepts
// "whsec_<base64>" and, as the reference libraries do, the bare base64. The
// asymmetric key forms ("whsk_", "whpk_") are refused: this package speaks
// only the symmetric v1 scheme.
func ParseSecret(secret string) ([]byte, error) {
	s := strings.TrimSpace(secret)
	if strings.HasPrefix(s, "whsk_") || strings.HasPrefix(s, "whpk_") {
		return nil, fmt.Errorf("%w: asymmetric (v1a) keys are not supported", ErrInvalidSecret)
	}
	s = strings.TrimPrefix(s, SecretPrefix)
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidSecret)
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		// Never echo the secret itself into an error that may be logged.
		return nil, fmt.Errorf("%w: not standard base64 after %q", ErrInvalidSecret, SecretPrefix)
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return nil, fmt.Errorf("%w: %d bytes, want %d to %d", ErrInvalidSecret, len(key), MinSecretBytes, MaxSecretBytes)
	}
	return key, nil
}

func parseSecrets(secrets []string) ([][]byte, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%w: no secret given", ErrInvalidSecret)
	}
	keys := make([][]byte, 0, len(secrets))
	for i, s := range secrets {
		k, err := ParseSecret(s)
		if err != nil {
			return nil, fmt.Errorf("secret %d: %w", i+1, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// mac returns HMAC-SHA256 of "{id}.{unix}.{body}" under key.
func mac(key []byte, id, unix string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(unix))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Signer signs deliveries with one or more secrets. It is immutable and safe
// for concurrent use.
type Signer struct {
	keys [][]byte
}

// NewSigner returns a Signer for secrets, each "whsec_<base64>". With more
// than one (during a rotation) every delivery carries one signature per
// secret, in the order given. It fails with ErrInvalidSecret when secrets is
// empty or one is malformed.
func NewSigner(secrets ...string) (*Signer, error) {
	keys, err := parseSecrets(secrets)
	if err != nil {
		return nil, err
	}
	return &Signer{keys: keys}, nil
}

// maxIDLen bounds the message ids Sign accepts.
const maxIDLen = 256

// checkID refuses ids that could make the signed content ambiguous ('.') or
// that cannot travel in a header.
func checkID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty", ErrInvalidID)
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidID, maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || c == '.' {
			return fmt.Errorf("%w: %q holds %q (printable ASCII other than '.' and space only)", ErrInvalidID, id, c)
		}
	}
	return nil
}

// Sign returns the value of the webhook-signature header for a delivery with
// message id id, sent at ts (truncated to whole seconds), carrying body: one
// "v1,<base64>" per secret, separated by spaces.
//
// As the specification advises, id must not be user-controlled; Sign
// enforces that it is 1 to 256 bytes of printable ASCII without '.' or
// spaces, and fails with ErrInvalidID otherwise.
func (s *Signer) Sign(id string, ts time.Time, body []byte) (string, error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	unix := strconv.FormatInt(ts.Unix(), 10)
	var b strings.Builder
	for i, k := range s.keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(signatureVersion)
		b.WriteByte(',')
		b.WriteString(base64.StdEncoding.EncodeToString(mac(k, id, unix, body)))
	}
	return b.String(), nil
}

// SetHeaders sets webhook-id, webhook-timestamp and webhook-signature on h
// for a delivery of body with message id id at ts. h is left unchanged when
// it fails.
func (s *Signer) SetHeaders(h http.Header, id string, ts time.Time, body []byte) error {
	sig, err := s.Sign(id, ts, body)
	if err != nil {
		return err
	}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, sig)
	return nil
}

// Verifier checks signed deliveries against one or more secrets (several
// while the sender rotates its secret). It is immutable and safe for
// concurrent use.
type Verifier struct {
	keys      [][]byte
	tolerance time.Duration
}

// NewVerifier returns a Verifier accepting signatures made with any of
// secrets, each "whsec_<base64>" (the bare base64 is accepted too), and
// timestamps within DefaultTolerance of the clock. It fails with
// ErrInvalidSecret when secrets is empty or one is malformed.
func NewVerifier(secrets ...string) (*Verifier, error) {
	keys, err := parseSecrets(secrets)
	if err != nil {
		return nil, err
	}
	return &Verifier{keys: keys, tolerance: DefaultTolerance}, nil
}

// Verify checks that the headers h carry a valid signature of body made with
// one of the verifier's secrets, and that webhook-timestamp is within the
// tolerance of now in either direction. Signatures are compared in constant
// time; signatures of other versions (such as v1a) and malformed entries in
// webhook-signature are skipped.
//
// It returns nil, or an error wrapping ErrMissingHeaders, ErrTimestamp or
// ErrBadSignature. The timestamp is checked before the signature, and a
// signature is never reported as valid for a stale delivery.
func (v *Verifier) Verify(h http.Header, body []byte, now time.Time) error {
	if err := v.CheckHeaders(h, now); err != nil {
		return err
	}
	id, unix := h.Get(HeaderID), h.Get(HeaderTimestamp)
	sigs := strings.Fields(strings.Join(h.Values(HeaderSignature), " "))
	want := make([][]byte, len(v.keys))
	for i, k := range v.keys {
		want[i] = mac(k, id, unix, body)
	}
	for _, entry := range sigs {
		version, encoded, ok := strings.Cut(entry, ",")
		if !ok || version != signatureVersion {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil || len(got) != sha256.Size {
			continue
		}
		for _, w := range want {
			if hmac.Equal(got, w) {
				return nil
			}
		}
	}
	return ErrBadSignature
}

// CheckHeaders checks what can be checked of a delivery before its body is
// read: the three headers are there and the timestamp is within the
// tolerance of now. It returns nil, or an error wrapping ErrMissingHeaders
// or ErrTimestamp. Verify does it too; a receiver calls it first to refuse
// a forged or replayed delivery without reading its body.
func (v *Verifier) CheckHeaders(h http.Header, now time.Time) error {
	id := h.Get(HeaderID)
	unix := h.Get(HeaderTimestamp)
	sigs := strings.Fields(strings.Join(h.Values(HeaderSignature), " "))
	if id == "" || unix == "" || len(sigs) == 0 {
		var missing []string
		for _, name := range []string{HeaderID, HeaderTimestamp, HeaderSignature} {
			if strings.TrimSpace(h.Get(name)) == "" {
				missing = append(missing, name)
			}
		}
		return fmt.Errorf("%w: %s", ErrMissingHeaders, strings.Join(missing, ", "))
	}
	sec, err := strconv.ParseInt(unix, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not a unix time in seconds", ErrTimestamp, HeaderTimestamp, unix)
	}
	// Compare in seconds so that no duration arithmetic can overflow on a
	// hostile timestamp.
	tol := int64(v.tolerance / time.Second)
	switch d := now.Unix() - sec; {
	case d > tol:
		return fmt.Errorf("%w: %ds old, more than the tolerance of %s", ErrTimestamp, d, v.tolerance)
	case d < -tol:
		return fmt.Errorf("%w: %ds in the future, more than the tolerance of %s", ErrTimestamp, -d, v.tolerance)
	}
	return nil
}
