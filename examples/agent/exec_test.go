//go:build unix

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/router/runtime"
	"github.com/switchboardhq/switchboard/store"
)

// TestUnderTheExecRuntime builds the agent and runs it as the README's quick
// start does: under the exec runtime, for a turn of one message.
func TestUnderTheExecRuntime(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the agent with")
	}
	bin := filepath.Join(t.TempDir(), "agent")
	build := exec.Command(gobin, "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	rt, err := runtime.NewExec(runtime.ExecConfig{Command: []string{bin}, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	turn := runtime.Turn{SessionID: "ses_quick", Records: []store.Record{{
		SessionID: "ses_quick", Seq: 1, Direction: store.Inbound,
		Envelope: envelope.Envelope{
			ID: "client:nudge-1", Source: "client", Kind: envelope.KindMessage,
			Actor: envelope.Actor{ID: "client:admin", Type: envelope.Human},
			Text:  "also check the CI config", Refs: envelope.Refs{"repo": "acme/api"},
			TS: time.Date(2026, 6, 18, 12, 0, 0, 0, time.UTC), Raw: []byte(`{"text": "also check the CI config"}`),
		},
	}}}
	out, err := rt.Run(context.Background(), turn)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(out) != 1 {
		t.Fatalf("outputs = %+v, want one", out)
	}
	for _, want := range []string{`Hi client:admin! You asked: "also check the CI config"`, "repo=acme/api", "in session ses_quick"} {
		if !strings.Contains(out[0].Text, want) {
			t.Errorf("reply lacks %q:\n%s", want, out[0].Text)
		}
	}

	// Bad input fails the run with the agent's explanation.
	bad, _ := runtime.NewExec(runtime.ExecConfig{Command: []string{"/bin/sh", "-c", "echo '{' | " + bin}})
	if _, err := bad.Run(context.Background(), turn); err == nil || !strings.Contains(err.Error(), "decode envelope") {
		t.Errorf("Run with bad input: err = %v", err)
	}
	_ = os.Remove(bin)
}
