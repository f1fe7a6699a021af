package github

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
)

// TestDocumentedVector is the example from GitHub's "Validating webhook
// deliveries" page.
func TestDocumentedVector(t *testing.T) {
	const want = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	secret, body := []byte("It's a Secret to Everybody"), []byte("Hello, World!")
	if got := Sign(secret, body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	h := http.Header{}
	h.Set("X-Hub-Signature-256", want)
	if err := VerifySignature(secret, h, body); err != nil {
		t.Fatalf("VerifySignature: %v", err)
	}
}

// fixtureSignatures reads SIGNATURES.txt: file name → X-Hub-Signature-256.
func fixtureSignatures(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(readTestdata(t, "SIGNATURES.txt")))
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) == 4 && strings.HasPrefix(fields[3], "sha256=") {
			out[fields[0]] = fields[3]
		}
	}
	if len(out) != 8 {
		t.Fatalf("read %d signatures from SIGNATURES.txt, want 8", len(out))
	}
	return out
}

// TestFixtureSignatures checks every listed signature against the exact
// fixture bytes, through the HTTP handler: each is accepted as sent.
func TestFixtureSignatures(t *testing.T) {
	fake := goldenFake(t)
	for name, sig := range fixtureSignatures(t) {
		t.Run(name, func(t *testing.T) {
			body := readTestdata(t, name)
			if got := Sign([]byte(testSecret), body); got != sig {
				t.Fatalf("Sign = %s, want %s", got, sig)
			}
			a := newTestAdapter(t, fake, newRecorder(), func(c *Config) { c.AllowBots = true })
			r := webhook(eventOf(name), "d-"+name, body)
			r.Header.Set("X-Hub-Signature-256", sig)
			if w := serve(a, r); w.Code != http.StatusOK {
				t.Fatalf("status = %d: %s", w.Code, w.Body)
			}
		})
	}
}

func TestRejectedSignatures(t *testing.T) {
	body := readTestdata(t, "octokit-issue_comment.created.json")
	good := Sign([]byte(testSecret), body)
	forged := Sign([]byte("not the secret"), body)
	for _, tc := range []struct {
		name   string
		header map[string]string
		body   []byte
		reason string
	}{
		{"forged", map[string]string{"X-Hub-Signature-256": forged}, body, "mismatch"},
		{"tampered body", map[string]string{"X-Hub-Signature-256": good}, append(bytes.Clone(body), ' '), "mismatch"},
		{"missing", nil, body, "missing"},
		{"sha1 only", map[string]string{"X-Hub-Signature": "sha1=d03207e4b030cf234e3447bac4d93add4c6643d8"}, body, "sha1_only"},
		{"sha1 prefix in the sha256 header", map[string]string{"X-Hub-Signature-256": "sha1=d03207e4b030cf234e3447bac4d93add4c6643d8"}, body, "malformed"},
		{"not hex", map[string]string{"X-Hub-Signature-256": "sha256=zz"}, body, "malformed"},
		{"truncated", map[string]string{"X-Hub-Signature-256": good[:len(good)-2]}, body, "malformed"},
		{"upper-case SHA256= prefix", map[string]string{"X-Hub-Signature-256": strings.ToUpper(forged)}, body, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeGitHub(t, newClock())
			rec := newRecorder()
			a := newTestAdapter(t, fake, rec, nil)
			r := webhook("issue_comment", "d-1", tc.body)
			r.Header.Del("X-Hub-Signature-256")
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			w := serve(a, r)
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("status = %d, want 401", w.Code)
			}
			if len(rec.All()) != 0 {
				t.Fatal("an unauthentic request was ingested")
			}
			if v := adaptertest.CounterValue(a.metrics.rejected.WithLabelValues(tc.reason)); v != 1 {
				t.Errorf("rejected{reason=%q} = %v", tc.reason, v)
			}
		})
	}
}

// TestEmptySecretNeverAcceptsUnsigned: go-github's ValidatePayload accepts
// an unsigned request when the secret is empty. The adapter refuses to be
// built without a secret, and VerifySignature refuses everything with one.
func TestEmptySecretNeverAcceptsUnsigned(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	_, err := New(&Config{Token: testToken, APIURL: fake.url()}, adapters.Deps{Ingress: newRecorder()})
	if err == nil || !strings.Contains(err.Error(), "webhook_secret") {
		t.Fatalf("New without a secret: err = %v, want a webhook_secret error", err)
	}
	body := []byte(`{"zen":"x"}`)
	for _, h := range []http.Header{{}, {"X-Hub-Signature-256": {Sign(nil, body)}}} {
		var se *SignatureError
		if err := VerifySignature(nil, h, body); !errors.As(err, &se) || se.Reason != "missing" {
			t.Errorf("VerifySignature with an empty secret = %v", err)
		}
	}
}

func TestBodyCap(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, func(c *Config) { c.MaxBody = 4096 })
	big := []byte(`{"action":"created","pad":"` + strings.Repeat("x", 5000) + `"}`)
	if w := serve(a, webhook("issue_comment", "d-1", big)); w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d, want 413", w.Code)
	}
	if v := adaptertest.CounterValue(a.metrics.rejected.WithLabelValues("too_large")); v != 1 {
		t.Errorf("too_large = %v", v)
	}
}

func TestPing(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	w := serve(a, webhook("ping", "d-1", readTestdata(t, "octokit-ping.json")))
	if w.Code != http.StatusOK || strings.TrimSpace(w.Body.String()) != "pong" {
		t.Fatalf("ping: %d %q", w.Code, w.Body)
	}
	// An unsigned ping is refused like anything else.
	r := webhook("ping", "d-2", readTestdata(t, "octokit-ping.json"))
	r.Header.Del("X-Hub-Signature-256")
	if w := serve(a, r); w.Code != http.StatusUnauthorized {
		t.Fatalf("unsigned ping: %d", w.Code)
	}
}
