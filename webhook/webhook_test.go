package webhook_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/webhook"
)

// The official test vector of the Standard Webhooks reference libraries
// (libraries/*/ tests in github.com/standard-webhooks/standard-webhooks).
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specMsgID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specPayload   = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// referenceSign is an independent implementation of the spec's signature,
// written from the specification text rather than from the package.
func referenceSign(t *testing.T, secret, id string, unix int64, body string) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatalf("reference: decode secret: %v", err)
	}
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s.%d.%s", id, unix, body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestSignOfficialVector(t *testing.T) {
	for _, secret := range []string{specSecret, strings.TrimPrefix(specSecret, "whsec_")} {
		s, err := webhook.NewSigner(secret)
		if err != nil {
			t.Fatalf("NewSigner(%q): %v", secret, err)
		}
		got, err := s.Sign(specMsgID, time.Unix(specTimestamp, 0), []byte(specPayload))
		if err != nil {
			t.Fatalf("Sign: %v", err)
		}
		if got != specSignature {
			t.Errorf("Sign with %q = %q, want the spec's %q", secret, got, specSignature)
		}
	}
	// Sub-second parts of the timestamp do not change the signature.
	s, _ := webhook.NewSigner(specSecret)
	got, _ := s.Sign(specMsgID, time.Unix(specTimestamp, 999_999_999), []byte(specPayload))
	if got != specSignature {
		t.Errorf("Sign with a fractional timestamp = %q, want %q", got, specSignature)
	}
}

func TestVerifyOfficialVector(t *testing.T) {
	v, err := webhook.NewVerifier(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("webhook-id", specMsgID)
	h.Set("webhook-timestamp", fmt.Sprint(specTimestamp))
	h.Set("webhook-signature", specSignature)
	if err := v.Verify(h, []byte(specPayload), time.Unix(specTimestamp+10, 0)); err != nil {
		t.Fatalf("Verify of the spec's vector: %v", err)
	}
}

func TestSignMatchesIndependentImplementation(t *testing.T) {
	secret, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	s, err := webhook.NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"id":"evt_1","type":"message","body":{"text":"héllo\nworld"}}`
	ts := time.Date(2026, 6, 18, 12, 0, 0, 0, time.UTC)
	got, err := s.Sign("evt_01J0ABC", ts, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if want := referenceSign(t, secret, "evt_01J0ABC", ts.Unix(), body); got != want {
		t.Errorf("Sign = %q, independent implementation gives %q", got, want)
	}
}

func TestSetHeaders(t *testing.T) {
	s, _ := webhook.NewSigner(specSecret)
	h := http.Header{}
	if err := s.SetHeaders(h, specMsgID, time.Unix(specTimestamp, 0), []byte(specPayload)); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Webhook-Id":        specMsgID,
		"Webhook-Timestamp": "1614265330",
		"Webhook-Signature": specSignature,
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	// A refused id leaves the headers alone.
	h2 := http.Header{}
	if err := s.SetHeaders(h2, "bad.id", time.Now(), nil); !errors.Is(err, webhook.ErrInvalidID) {
		t.Fatalf("SetHeaders with a bad id: err = %v, want ErrInvalidID", err)
	}
	if len(h2) != 0 {
		t.Errorf("SetHeaders failed but set %v", h2)
	}
}

// signed returns headers carrying a valid signature of body at ts.
func signed(t *testing.T, secret string, ts time.Time, body string) http.Header {
	t.Helper()
	h := http.Header{}
	h.Set("webhook-id", specMsgID)
	h.Set("webhook-timestamp", fmt.Sprint(ts.Unix()))
	h.Set("webhook-signature", referenceSign(t, secret, specMsgID, ts.Unix(), body))
	return h
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_750_000_000, 0)
	v, err := webhook.NewVerifier(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		ts     time.Time
		body   string // the body verified; the body signed is specPayload
		modify func(h http.Header)
		want   error // nil for a valid delivery
	}{
		{name: "valid", ts: now},
		{name: "valid at the tolerance in the past", ts: now.Add(-5 * time.Minute)},
		{name: "valid at the tolerance in the future", ts: now.Add(5 * time.Minute)},
		{name: "missing id", ts: now, modify: func(h http.Header) { h.Del("webhook-id") }, want: webhook.ErrMissingHeaders},
		{name: "missing timestamp", ts: now, modify: func(h http.Header) { h.Del("webhook-timestamp") }, want: webhook.ErrMissingHeaders},
		{name: "missing signature", ts: now, modify: func(h http.Header) { h.Del("webhook-signature") }, want: webhook.ErrMissingHeaders},
		{name: "empty signature", ts: now, modify: func(h http.Header) { h.Set("webhook-signature", "") }, want: webhook.ErrMissingHeaders},
		{name: "timestamp not a number", ts: now, modify: func(h http.Header) { h.Set("webhook-timestamp", "hello") }, want: webhook.ErrTimestamp},
		{name: "timestamp in milliseconds", ts: now, modify: func(h http.Header) { h.Set("webhook-timestamp", fmt.Sprint(now.UnixMilli())) }, want: webhook.ErrTimestamp},
		{name: "stale", ts: now.Add(-5*time.Minute - time.Second), want: webhook.ErrTimestamp},
		{name: "future", ts: now.Add(5*time.Minute + time.Second), want: webhook.ErrTimestamp},
		{name: "hostile timestamp", ts: now, modify: func(h http.Header) { h.Set("webhook-timestamp", "-9223372036854775808") }, want: webhook.ErrTimestamp},
		{name: "forged signature", ts: now, modify: func(h http.Header) {
			h.Set("webhook-signature", "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=")
		}, want: webhook.ErrBadSignature},
		{name: "one bit off", ts: now, modify: func(h http.Header) {
			sig := []byte(h.Get("webhook-signature"))
			raw, _ := base64.StdEncoding.DecodeString(string(sig[3:]))
			raw[0] ^= 1
			h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(raw))
		}, want: webhook.ErrBadSignature},
		{name: "partial signature", ts: now, modify: func(h http.Header) {
			h.Set("webhook-signature", h.Get("webhook-signature")[:8])
		}, want: webhook.ErrBadSignature},
		{name: "version only", ts: now, modify: func(h http.Header) { h.Set("webhook-signature", "v1,") }, want: webhook.ErrBadSignature},
		{name: "right signature, wrong version", ts: now, modify: func(h http.Header) {
			h.Set("webhook-signature", "v2"+h.Get("webhook-signature")[2:])
		}, want: webhook.ErrBadSignature},
		{name: "body altered", ts: now, body: specPayload + " ", want: webhook.ErrBadSignature},
		{name: "id altered", ts: now, modify: func(h http.Header) { h.Set("webhook-id", specMsgID+"x") }, want: webhook.ErrBadSignature},
		{name: "timestamp altered within tolerance", ts: now, modify: func(h http.Header) {
			h.Set("webhook-timestamp", fmt.Sprint(now.Unix()+1))
		}, want: webhook.ErrBadSignature},
		{name: "multiple signatures, one valid", ts: now, modify: func(h http.Header) {
			h.Set("webhook-signature", strings.Join([]string{
				"v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
				"v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
				"v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==",
				"garbage",
				h.Get("webhook-signature"),
				"v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
			}, " "))
		}},
		{name: "valid signature in a second header line", ts: now, modify: func(h http.Header) {
			sig := h.Get("webhook-signature")
			h.Set("webhook-signature", "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=")
			h.Add("webhook-signature", sig)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := signed(t, specSecret, tc.ts, specPayload)
			if tc.modify != nil {
				tc.modify(h)
			}
			body := tc.body
			if body == "" {
				body = specPayload
			}
			err := v.Verify(h, []byte(body), now)
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("Verify: %v, want success", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("Verify: err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	oldSecret, _ := webhook.NewSecret()
	newSecret, _ := webhook.NewSecret()
	otherSecret, _ := webhook.NewSecret()
	now := time.Now()
	body := []byte(`{"type":"message"}`)

	both, err := webhook.NewSigner(newSecret, oldSecret)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	if err := both.SetHeaders(h, "evt_1", now, body); err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Fields(h.Get("webhook-signature"))); n != 2 {
		t.Fatalf("a signer with two secrets sent %d signatures: %q", n, h.Get("webhook-signature"))
	}
	want := referenceSign(t, newSecret, "evt_1", now.Unix(), string(body)) + " " +
		referenceSign(t, oldSecret, "evt_1", now.Unix(), string(body))
	if got := h.Get("webhook-signature"); got != want {
		t.Errorf("webhook-signature = %q, want %q", got, want)
	}

	// A receiver that knows either secret accepts the delivery.
	for name, secrets := range map[string][]string{
		"old only":       {oldSecret},
		"new only":       {newSecret},
		"other then old": {otherSecret, oldSecret},
	} {
		v, err := webhook.NewVerifier(secrets...)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Verify(h, body, now); err != nil {
			t.Errorf("verifier with %s: %v", name, err)
		}
	}
	// One that knows neither refuses it.
	v, _ := webhook.NewVerifier(otherSecret)
	if err := v.Verify(h, body, now); !errors.Is(err, webhook.ErrBadSignature) {
		t.Errorf("verifier with an unrelated secret: err = %v, want ErrBadSignature", err)
	}
	// A receiver holding old and new accepts a sender still on the old one.
	oldOnly, _ := webhook.NewSigner(oldSecret)
	h2 := http.Header{}
	_ = oldOnly.SetHeaders(h2, "evt_2", now, body)
	v2, _ := webhook.NewVerifier(newSecret, oldSecret)
	if err := v2.Verify(h2, body, now); err != nil {
		t.Errorf("rotating verifier, sender on the old secret: %v", err)
	}
}

func TestNewSecret(t *testing.T) {
	a, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := webhook.NewSecret()
	if a == b {
		t.Fatal("two secrets are equal")
	}
	if !strings.HasPrefix(a, "whsec_") {
		t.Fatalf("secret %q lacks the whsec_ prefix", a)
	}
	key, err := webhook.ParseSecret(a)
	if err != nil {
		t.Fatalf("ParseSecret(NewSecret()): %v", err)
	}
	if len(key) != 32 {
		t.Errorf("NewSecret has %d bytes, want 32", len(key))
	}
}

func TestMalformedSecrets(t *testing.T) {
	b64 := func(n int) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, n)) }
	bad := map[string]string{
		"empty":               "",
		"prefix only":         "whsec_",
		"not base64":          "whsec_not*base64*at*all!",
		"url-safe alphabet":   "whsec_" + strings.NewReplacer("+", "-", "/", "_").Replace("MfKQ9r8GKYqrTwjUPD8+LPZIo2LaLaSw"),
		"too short":           "whsec_" + b64(16),
		"too long":            "whsec_" + b64(65),
		"asymmetric secret":   "whsk_" + b64(32),
		"asymmetric public":   "whpk_" + b64(32),
		"missing padding":     "whsec_" + strings.TrimRight(b64(25), "="),
		"whitespace in value": "whsec_MfKQ9r8G KYqrTwjUPD8ILPZIo2LaLaSw",
	}
	for name, secret := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := webhook.NewSigner(secret)
			if !errors.Is(err, webhook.ErrInvalidSecret) {
				t.Fatalf("NewSigner: err = %v, want ErrInvalidSecret", err)
			}
			_, err = webhook.NewVerifier(specSecret, secret)
			if !errors.Is(err, webhook.ErrInvalidSecret) {
				t.Fatalf("NewVerifier: err = %v, want ErrInvalidSecret", err)
			}
			if body := strings.TrimPrefix(secret, "whsec_"); len(body) > 4 && strings.Contains(err.Error(), body) {
				t.Errorf("error %q reveals the secret", err)
			}
		})
	}
	if _, err := webhook.NewSigner(); !errors.Is(err, webhook.ErrInvalidSecret) {
		t.Errorf("NewSigner(): err = %v, want ErrInvalidSecret", err)
	}
	if _, err := webhook.NewVerifier(); !errors.Is(err, webhook.ErrInvalidSecret) {
		t.Errorf("NewVerifier(): err = %v, want ErrInvalidSecret", err)
	}
	// The bounds themselves are accepted.
	for _, n := range []int{24, 64} {
		if _, err := webhook.ParseSecret("whsec_" + b64(n)); err != nil {
			t.Errorf("a %d-byte secret: %v", n, err)
		}
	}
}

func TestSignRejectsUnsafeIDs(t *testing.T) {
	s, _ := webhook.NewSigner(specSecret)
	for _, id := range []string{"", "msg.1", "msg 1", "msg\n1", "msg\x001", "mság", strings.Repeat("a", 257)} {
		if _, err := s.Sign(id, time.Now(), nil); !errors.Is(err, webhook.ErrInvalidID) {
			t.Errorf("Sign(%q): err = %v, want ErrInvalidID", id, err)
		}
	}
	for _, id := range []string{"evt_01J0ABC", "msg_p5jXN8AQM9LWM0D4loKWxJek", "ses:01-abc_def"} {
		if _, err := s.Sign(id, time.Now(), nil); err != nil {
			t.Errorf("Sign(%q): %v", id, err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	v, _ := webhook.NewVerifier(specSecret)
	s, _ := webhook.NewSigner(specSecret)
	body := bytes.Repeat([]byte("x"), 2048)
	now := time.Now()
	h := http.Header{}
	_ = s.SetHeaders(h, "evt_1", now, body)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := v.Verify(h, body, now); err != nil {
			b.Fatal(err)
		}
	}
}
