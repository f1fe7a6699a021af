package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(args ...string) (stdout, stderr string, err error) {
	var out, errb bytes.Buffer
	err = run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func TestConfigCheck(t *testing.T) {
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
