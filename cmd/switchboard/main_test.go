package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard/webhook"
)

func runCmd(args ...string) (stdout, stderr string, err error) {
	var out, errb bytes.Buffer
	err = run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func TestConfigCheck(t *testing.T) {
	// The example takes its secrets from the environment, with no default.
	t.Setenv("CI_TOKEN", "")
	os.Unsetenv("CI_TOKEN")
	if _, _, err := runCmd("config", "check", "../../examples/switchboard.yaml"); err == nil || !strings.Contains(err.Error(), "CI_TOKEN is not set") {
		t.Fatalf("example without its secrets: err = %v, want CI_TOKEN named", err)
	}
	whsec, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("CI_TOKEN", strongToken)
	t.Setenv("UPSTREAM_TOKEN", "issued-by-the-upstream")
	t.Setenv("UPSTREAM_WEBHOOK_SECRET", whsec)
	out, _, err := runCmd("config", "check", "../../examples/switchboard.yaml")
	if err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("valid example: %q %v", out, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("listen: nowhere\nroutes:\n  - name: r\n    runtime: exec\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = runCmd("config", "check", bad)
	if err == nil || !strings.Contains(err.Error(), "listen:") || !strings.Contains(err.Error(), "routes[0].exec.command") {
		t.Fatalf("bad file: err = %v, want both bad keys named", err)
	}
	if _, _, err := runCmd("config", "check"); exitCode(err) != 2 {
		t.Fatalf("no file: %v (exit %d), want a usage error", err, exitCode(err))
	}
}

// strongToken is long enough for config.CheckSecret.
const strongToken = "9c4f1e2d3b5a69788796a5b4c3d2e1f0"

// TestConfigCheckRefusesPublishedSecrets: the values the examples once
// printed as defaults, which a copied file still holds, are refused.
func TestConfigCheckRefusesPublishedSecrets(t *testing.T) {
	f := filepath.Join(t.TempDir(), "old-example.yaml")
	if err := os.WriteFile(f, []byte(`
routes:
  - name: prs
    runtime: http
    http:
      url: http://127.0.0.1:9090
      token: ${UPSTREAM_TOKEN_UNSET_HERE:-upstream-token}
      secrets: ["${UPSTREAM_WEBHOOK_SECRET_UNSET_HERE:-whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}"]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := runCmd("config", "check", f)
	for _, key := range []string{"routes[0].http.token", "routes[0].http.secrets[0]"} {
		if err == nil || !strings.Contains(err.Error(), key+": is a published example value") || !strings.Contains(err.Error(), "openssl rand") {
			t.Errorf("err = %v, want %s refused with the fix", err, key)
		}
	}
	short := filepath.Join(t.TempDir(), "short.yaml")
	if err := os.WriteFile(short, []byte("router: {session_key: k}\ntokens:\n  - {name: ci, secret: x, scopes: [steer]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = runCmd("config", "check", short)
	for _, key := range []string{"router.session_key: is 1 bytes", "tokens[0].secret: is 1 bytes"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("err = %v, want %q", err, key)
		}
	}
}

// TestServeRefusesWeakSecrets: serve stops before opening anything when
// SWITCHBOARD_TOKEN is short or the file holds a published secret. The
// context is already done, so a serve that did start returns at once.
func TestServeRefusesWeakSecrets(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	serve := func(args ...string) error {
		var out, errb bytes.Buffer
		return run(ctx, append([]string{"serve", "--listen", "127.0.0.1:0", "--data", t.TempDir()}, args...), &out, &errb)
	}
	for _, tok := range []string{"x", "bench-token-0123456789", "change-me-0123456789abcdef0123456789"} {
		t.Setenv("SWITCHBOARD_TOKEN", tok)
		if err := serve(); err == nil || !strings.Contains(err.Error(), "SWITCHBOARD_TOKEN") || !strings.Contains(err.Error(), "openssl rand -hex 32") {
			t.Errorf("SWITCHBOARD_TOKEN=%s: err = %v, want it refused with the fix", tok, err)
		}
	}
	t.Setenv("SWITCHBOARD_TOKEN", strongToken)
	f := filepath.Join(t.TempDir(), "published.yaml")
	if err := os.WriteFile(f, []byte("webhooks:\n  destinations:\n    - {id: d, url: \"https://example.com/h\", secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := serve("--config", f); err == nil || !strings.Contains(err.Error(), "webhooks.destinations[0].secret: is a published example value") {
		t.Errorf("published destination secret: err = %v, want it refused", err)
	}
}

func TestUsageErrors(t *testing.T) {
	if _, stderr, err := runCmd("frobnicate"); exitCode(err) != 2 || !strings.Contains(stderr, "Usage:") {
		t.Fatalf("unknown command: %v, stderr %q", err, stderr)
	}
	if _, _, err := runCmd(); exitCode(err) != 2 {
		t.Fatalf("no command: %v", err)
	}
	if _, _, err := runCmd("steer", "only-a-session"); exitCode(err) != 2 {
		t.Fatalf("steer without text: %v", err)
	}
	t.Setenv("SWITCHBOARD_TOKEN", "")
	if _, _, err := runCmd("steer", "ses_1", "hello"); err == nil || !strings.Contains(err.Error(), "SWITCHBOARD_TOKEN") {
		t.Fatalf("steer without a token: %v", err)
	}
	if out, _, err := runCmd("help"); err != nil || !strings.Contains(out, "switchboard serve") {
		t.Fatalf("help: %q %v", out, err)
	}
}

func TestParseTakesFlagsAnywhere(t *testing.T) {
	t.Setenv("SWITCHBOARD_TOKEN", "some-token")
	for _, args := range [][]string{{"--key", "k", "s", "hello", "world"}, {"s", "hello", "--key", "k", "world"}} {
		out, _, err := runCmd(append([]string{"steer", "--url", "http://127.0.0.1:1"}, args...)...)
		// No gateway listens there: the command must get as far as dialling.
		if err == nil || exitCode(err) == 2 || !strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Fatalf("steer %v: %q %v, want a connection error from 127.0.0.1:1", args, out, err)
		}
	}
}

// TestServeSetsTheGCTarget: serve collects at gcPercent unless GOGC is set,
// which then stays the operator's.
func TestServeSetsTheGCTarget(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	setGC(func(string) (string, bool) { return "", false })
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Errorf("without GOGC: GC percent %d, want %d", got, gcPercent)
	}
	setGC(func(k string) (string, bool) { return "50", k == "GOGC" })
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set: GC percent %d, want it left at 100", got)
	}
}
