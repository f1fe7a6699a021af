package github

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
)

// TestAppTokenMinting runs deliveries as a GitHub App against the fake,
// which verifies every JWT's RS256 signature with the public half of a key
// generated here, and its claims.
func TestAppTokenMinting(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	fake.setInstallation("acme/api", 4711)
	fake.setInstallation("acme/web", 4711)
	fake.setInstallation("other/tool", 815)
	a := newTestAdapter(t, fake, newRecorder(), asApp(t, nil))

	// Learned from a webhook's installation.id.
	if w := serve(a, webhook("issue_comment", "d-1", variant(t, "comment_command"))); w.Code != http.StatusOK {
		t.Fatalf("webhook: %d %s", w.Code, w.Body)
	}
	post := func(ref string) {
		t.Helper()
		if _, err := a.Deliver(t.Context(), delivery("dlv_"+strings.NewReplacer("/", "_", "#", "_").Replace(ref), ref, "hi", 1)); err != nil {
			t.Fatalf("deliver to %s: %v", ref, err)
		}
	}
	post("acme/api#12")
	post("acme/api#13")
	if m := fake.mintsCopy(); len(m) != 1 || m[0] != 4711 {
		t.Fatalf("mints = %v, want one token for installation 4711, reused", m)
	}
	// other/tool sent no webhook yet: its installation is looked up.
	post("other/tool#1")
	if n := fake.callCount("GET /repos/{owner}/{repo}/installation"); n != 1 {
		t.Errorf("installation looked up %d times, want 1", n)
	}
	if m := fake.mintsCopy(); len(m) != 2 || m[1] != 815 {
		t.Fatalf("mints = %v, want a token per installation", m)
	}
	post("other/tool#2")
	if n := fake.callCount("GET /repos/{owner}/{repo}/installation"); n != 1 {
		t.Errorf("installation looked up %d times, want it cached", n)
	}

	// The token lasts an hour; it is refreshed 5 minutes before expiry.
	fake.clock.Advance(54 * time.Minute)
	post("acme/api#12")
	if n := len(fake.mintsCopy()); n != 2 {
		t.Fatalf("%d mints at 54 minutes, want the token reused", n)
	}
	fake.clock.Advance(2 * time.Minute)
	post("acme/api#12")
	if m := fake.mintsCopy(); len(m) != 3 || m[2] != 4711 {
		t.Fatalf("mints = %v at 56 minutes, want a fresh token", m)
	}
	for _, c := range fake.commentsCopy() {
		want := "ghs_inst4711_"
		if c.Repo == "other/tool" {
			want = "ghs_inst815_"
		}
		if !strings.HasPrefix(c.Token, want) {
			t.Errorf("comment on %s posted with %q", c.Repo, c.Token)
		}
	}

	// Every JWT the fake accepted was well formed.
	fake.mu.Lock()
	claims := append([]map[string]any(nil), fake.jwtClaims...)
	fake.mu.Unlock()
	if len(claims) < 3 {
		t.Fatalf("%d JWTs seen", len(claims))
	}
	for _, c := range claims {
		iat, exp := int64(c["iat"].(float64)), int64(c["exp"].(float64))
		if c["iss"] != "4242" || exp-iat != 600 {
			t.Errorf("claims %v: want iss \"4242\", backdated iat and a 10-minute span", c)
		}
	}
}

func TestAppTokenConcurrentCallersMintOnce(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	fake.setInstallation("acme/api", 4711)
	a := newTestAdapter(t, fake, newRecorder(), asApp(t, func(c *AppConfig) { c.InstallationID = 4711 }))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			_, err := a.Deliver(t.Context(), delivery("dlv_c"+string(rune('a'+i)), "acme/api#12", "hi", 1))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := len(fake.mintsCopy()); n != 1 {
		t.Errorf("%d mints for 8 concurrent deliveries, want 1", n)
	}
	if n := len(fake.commentsCopy()); n != 8 {
		t.Errorf("%d comments", n)
	}
}

func TestAppRejectedInstallationTokenIsReminted(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	fake.setInstallation("acme/api", 4711)
	a := newTestAdapter(t, fake, newRecorder(), asApp(t, func(c *AppConfig) { c.InstallationID = 4711 }))
	if _, err := a.Deliver(t.Context(), delivery("dlv_r1", "acme/api#12", "hi", 1)); err != nil {
		t.Fatal(err)
	}
	// GitHub revokes the token early (the app's permissions changed).
	fake.mu.Lock()
	clear(fake.instTokens)
	fake.mu.Unlock()
	_, err := a.Deliver(t.Context(), delivery("dlv_r2", "acme/api#12", "hi", 1))
	if err == nil || errors.Is(err, adapters.ErrPermanent) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
	if err := a.Check(t.Context()); err != nil {
		t.Errorf("a revoked installation token made the adapter unhealthy: %v", err)
	}
	if _, err := a.Deliver(t.Context(), delivery("dlv_r2", "acme/api#12", "hi", 2)); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if n := len(fake.mintsCopy()); n != 2 {
		t.Errorf("%d mints, want a new token after the rejection", n)
	}
}

func TestAppWrongKeyIsPermanentAndUnhealthy(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	fake.setInstallation("acme/api", 4711)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(other)
	if err != nil {
		t.Fatal(err)
	}
	a := newTestAdapter(t, fake, newRecorder(), asApp(t, func(c *AppConfig) {
		c.InstallationID = 4711
		c.PrivateKey = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})) // PKCS#8 parses too
	}))
	_, err = a.Deliver(t.Context(), delivery("dlv_k", "acme/api#12", "hi", 1))
	if !errors.Is(err, adapters.ErrPermanent) {
		t.Fatalf("err = %v, want permanent", err)
	}
	if err := a.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "app rejected") {
		t.Fatalf("Check = %v, want the app credential reported", err)
	}
	if len(fake.mintsCopy()) != 0 || len(fake.commentsCopy()) != 0 {
		t.Fatal("a forged JWT was accepted")
	}
}

func TestAppUninstalledIsPermanent(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	a := newTestAdapter(t, fake, newRecorder(), asApp(t, nil))
	_, err := a.Deliver(t.Context(), delivery("dlv_u", "acme/api#12", "hi", 1))
	if !errors.Is(err, adapters.ErrPermanent) {
		t.Fatalf("err = %v, want permanent (the app is not installed there)", err)
	}
	if err := a.Check(t.Context()); err != nil {
		t.Errorf("an uninstalled repository made the adapter unhealthy: %v", err)
	}
}

func TestParseKeyForms(t *testing.T) {
	pemText := appKeyPEM(t)
	for name, in := range map[string]string{
		"pkcs1":              pemText,
		"escaped newlines":   strings.ReplaceAll(strings.TrimSpace(pemText), "\n", `\n`),
		"surrounding spaces": "\n  " + pemText + "  \n",
	} {
		k, err := parseKey([]byte(in))
		if err != nil || !k.Equal(appKey(t)) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, in := range map[string]string{
		"empty":      "",
		"not pem":    "ghp_abc",
		"public key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}})),
		"garbage":    string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte{1, 2, 3}})),
	} {
		if _, err := parseKey([]byte(in)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func TestRunLearnsIdentityAndStops(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	fake.appHit = make(chan struct{}, 1)
	a := newTestAdapter(t, fake, newRecorder(), asApp(t, nil))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	<-fake.appHit
	// identity waits for Run's lookup and uses its answer: no second call.
	id, err := a.identity(t.Context())
	if err != nil || id.Login != testSlug+"[bot]" || id.AppID != testAppID {
		t.Fatalf("identity = %+v, %v", id, err)
	}
	if n := fake.callCount("GET /app"); n != 1 {
		t.Errorf("GET /app called %d times, want once (by Run)", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
}

// TestAppReinstalledIsLookedUpAgain: the installation a webhook named is
// gone (the app was reinstalled under a new id). The attempt fails without
// being dead, and the next one finds the new installation.
func TestAppReinstalledIsLookedUpAgain(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	fake.setInstallation("acme/api", 4711)
	a := newTestAdapter(t, fake, newRecorder(), asApp(t, nil))
	if w := serve(a, webhook("issue_comment", "d-1", variant(t, "comment_command"))); w.Code != http.StatusOK {
		t.Fatalf("webhook: %d %s", w.Code, w.Body)
	}
	fake.setInstallation("acme/api", 5000) // uninstalled and installed again
	_, err := a.Deliver(t.Context(), delivery("dlv_ri", "acme/api#12", "hi", 1))
	if err == nil || errors.Is(err, adapters.ErrPermanent) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
	if _, err := a.Deliver(t.Context(), delivery("dlv_ri", "acme/api#12", "hi", 2)); err != nil {
		t.Fatalf("retry: %v", err)
	}
	cs := fake.commentsCopy()
	if len(cs) != 1 || !strings.HasPrefix(cs[0].Token, "ghs_inst5000_") {
		t.Fatalf("comments %+v, want one posted with the new installation's token", cs)
	}
}
