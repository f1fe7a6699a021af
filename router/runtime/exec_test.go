//go:build unix

package runtime_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/router/runtime"
	"github.com/switchboardhq/switchboard/store"
)

// guard is how long a test waits for something that should happen at once
// before it declares failure. It is a failure guard, not a timing assertion.
const guard = 20 * time.Second

// script writes an executable /bin/sh script with body to a temp dir.
func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// record returns an inbound record whose envelope has a raw payload with
// spacing that a re-encoding would lose.
func record(seq int64, text string) store.Record {
	return store.Record{
		SessionID: "ses_1",
		Seq:       seq,
		Direction: store.Inbound,
		Envelope: envelope.Envelope{
			ID:           fmt.Sprintf("slack:%d", seq),
			Source:       "slack",
			Kind:         envelope.KindMessage,
			Actor:        envelope.Actor{ID: "slack:U1", Display: "Ada", Type: envelope.Human},
			Conversation: envelope.Conversation{Source: "slack", Ref: "C1:1718000000.1"},
			Text:         text,
			Refs:         envelope.Refs{"pr": "42"},
			TS:           time.Date(2026, 6, 18, 12, 0, int(seq), 0, time.UTC),
			Raw:          json.RawMessage(fmt.Sprintf(`{ "seq" :  %d, "text": "kept  verbatim" }`, seq)),
		},
	}
}

func newExec(t *testing.T, cfg runtime.ExecConfig) *runtime.Exec {
	t.Helper()
	e, err := runtime.NewExec(cfg)
	if err != nil {
		t.Fatalf("NewExec: %v", err)
	}
	return e
}

// run calls Run under the failure guard.
func run(t *testing.T, ctx context.Context, rt runtime.Runtime, turn runtime.Turn) ([]runtime.Output, error) {
	t.Helper()
	type result struct {
		out []runtime.Output
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := rt.Run(ctx, turn)
		done <- result{out, err}
	}()
	select {
	case r := <-done:
		return r.out, r.err
	case <-time.After(guard):
		t.Fatalf("Run did not return within %s", guard)
		return nil, nil
	}
}

func TestExecStdinEnvAndOutput(t *testing.T) {
	t.Setenv("SWITCHBOARD_TOKEN", "the-gateway-admin-token")
	t.Setenv("GATEWAY_SECRET", "must-not-leak")
	t.Setenv("PASS_ME", "passed-through")
	dir := t.TempDir()
	agent := script(t, `cat > "$OUT/stdin"
env > "$OUT/env"
pwd > "$OUT/pwd"
printf '\n  Hello from the agent.\nSecond line.  \n\n'`)
	e := newExec(t, runtime.ExecConfig{
		Command:    []string{agent},
		Dir:        dir,
		Env:        []string{"OUT=" + dir, "PASS_ME", "NOT_SET_ANYWHERE"},
		GatewayURL: "http://127.0.0.1:8080",
	})
	rec := record(1, "also check the CI config")
	out, err := run(t, context.Background(), e, runtime.Turn{SessionID: "ses_1", Records: []store.Record{rec}, Token: "session-token"})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(out) != 1 || out[0].Text != "Hello from the agent.\nSecond line." {
		t.Fatalf("outputs = %+v, want one trimmed output", out)
	}

	stdin, _ := os.ReadFile(filepath.Join(dir, "stdin"))
	want, _ := rec.Envelope.AppendJSON(nil)
	if string(stdin) != string(want)+"\n" {
		t.Errorf("stdin =\n%s\nwant the envelope verbatim:\n%s", stdin, want)
	}
	env := readEnv(t, filepath.Join(dir, "env"))
	for k, v := range map[string]string{
		"SWITCHBOARD_SESSION_ID": "ses_1",
		"SWITCHBOARD_URL":        "http://127.0.0.1:8080",
		"SWITCHBOARD_TOKEN":      "session-token",
		"OUT":                    dir,
		"PASS_ME":                "passed-through",
		"PATH":                   os.Getenv("PATH"),
	} {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	for _, k := range []string{"GATEWAY_SECRET", "NOT_SET_ANYWHERE"} {
		if v, ok := env[k]; ok {
			t.Errorf("env has %s=%q; the gateway's environment must not leak", k, v)
		}
	}
	if pwd, _ := os.ReadFile(filepath.Join(dir, "pwd")); strings.TrimSpace(string(pwd)) != dir {
		t.Errorf("working directory = %q, want %q", pwd, dir)
	}
}

func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	return env
}

func TestExecCollectedTurnIsAnArray(t *testing.T) {
	dir := t.TempDir()
	agent := script(t, `cat > "$OUT/stdin"`)
	e := newExec(t, runtime.ExecConfig{Command: []string{agent}, Env: []string{"OUT=" + dir}})
	recs := []store.Record{record(1, "first"), record(2, "second"), record(3, "third")}
	out, err := run(t, context.Background(), e, runtime.Turn{SessionID: "ses_1", Records: recs})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(out) != 0 {
		t.Errorf("a command that prints nothing gave outputs %+v", out)
	}
	stdin, _ := os.ReadFile(filepath.Join(dir, "stdin"))
	var raws []json.RawMessage
	if err := json.Unmarshal(stdin, &raws); err != nil {
		t.Fatalf("stdin is not a JSON array: %v\n%s", err, stdin)
	}
	if len(raws) != len(recs) {
		t.Fatalf("stdin has %d envelopes, want %d", len(raws), len(recs))
	}
	for i, raw := range raws {
		want, _ := recs[i].Envelope.AppendJSON(nil)
		if string(raw) != string(want) {
			t.Errorf("envelope %d =\n%s\nwant\n%s", i, raw, want)
		}
	}
}

func TestExecNonZeroExit(t *testing.T) {
	agent := script(t, `echo "partial answer"
echo "boom: the model is unavailable" >&2
exit 3`)
	e := newExec(t, runtime.ExecConfig{Command: []string{agent}})
	out, err := run(t, context.Background(), e, runtime.Turn{SessionID: "ses_1", Records: []store.Record{record(1, "hi")}})
	var xe *runtime.ExitError
	if !errors.As(err, &xe) {
		t.Fatalf("Run: err = %v (%T), want *ExitError", err, err)
	}
	if xe.Code != 3 || xe.Timeout != 0 || xe.Stderr != "boom: the model is unavailable" {
		t.Errorf("ExitError = %+v", xe)
	}
	for _, want := range []string{"exited with code 3", "boom: the model is unavailable"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if out != nil {
		t.Errorf("a failed run returned outputs %+v", out)
	}
}

func TestExecLongStderrKeepsTheEnd(t *testing.T) {
	agent := script(t, `i=0
while [ $i -lt 400 ]; do echo "noise line $i" >&2; i=$((i+1)); done
echo "the real error" >&2
exit 1`)
	e := newExec(t, runtime.ExecConfig{Command: []string{agent}})
	_, err := run(t, context.Background(), e, runtime.Turn{SessionID: "ses_1", Records: []store.Record{record(1, "hi")}})
	var xe *runtime.ExitError
	if !errors.As(err, &xe) {
		t.Fatalf("Run: err = %v, want *ExitError", err)
	}
	if !strings.HasSuffix(xe.Stderr, "the real error") || !strings.HasPrefix(xe.Stderr, "…") || len(xe.Stderr) > 2<<10+8 {
		t.Errorf("stderr excerpt (%d bytes) = %q...", len(xe.Stderr), xe.Stderr[:min(80, len(xe.Stderr))])
	}
}

func TestExecTimeout(t *testing.T) {
	agent := script(t, `echo "thinking hard" >&2
sleep 30`)
	e := newExec(t, runtime.ExecConfig{Command: []string{agent}, Timeout: 300 * time.Millisecond})
	_, err := run(t, context.Background(), e, runtime.Turn{SessionID: "ses_1", Records: []store.Record{record(1, "hi")}})
	var xe *runtime.ExitError
	if !errors.As(err, &xe) {
		t.Fatalf("Run: err = %v (%T), want *ExitError", err, err)
	}
	if xe.Timeout != 300*time.Millisecond {
		t.Errorf("ExitError.Timeout = %s", xe.Timeout)
	}
	if !strings.Contains(err.Error(), "timed out after 300ms") || !strings.Contains(err.Error(), "thinking hard") {
		t.Errorf("error %q does not say it timed out, with the stderr", err)
	}
}

// mkfifo makes a named pipe that a script writes its pids to, so the test
// learns when the script is running without polling.
func mkfifo(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ready")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	return path
}

// readPids opens fifo (blocking until the script writes) and returns the
// pids on its first line.
func readPids(t *testing.T, fifo string) []int {
	t.Helper()
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		f, err := os.Open(fifo)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		line, err := bufio.NewReader(f).ReadString('\n')
		ch <- result{line, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-time.After(guard):
		t.Fatal("the script never reported its pids")
	}
	if r.err != nil {
		t.Fatalf("read pids: %v", r.err)
	}
	var pids []int
	for _, f := range strings.Fields(r.line) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("bad pid line %q", r.line)
		}
		pids = append(pids, pid)
	}
	return pids
}

// alive reports whether pid is a live process (a zombie, reparented and not
// ours to reap, counts as dead).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// The state follows the parenthesised command name.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

// waitGone fails the test unless every pid is dead within the guard. SIGKILL
// is delivered asynchronously, hence the wait. Whatever survives is killed
// when the test ends, so that a failure leaves nothing running.
func waitGone(t *testing.T, pids ...int) {
	t.Helper()
	t.Cleanup(func() {
		for _, pid := range pids {
			if alive(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	deadline := time.Now().Add(guard)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d is still running", pid)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func TestExecCancelKillsTheProcessGroup(t *testing.T) {
	fifo := mkfifo(t)
	// The script starts a child of its own and waits for it, as a wrapper
	// around a real agent would.
	agent := script(t, `sleep 30 &
echo "$$ $!" > "$READY"
wait`)
	e := newExec(t, runtime.ExecConfig{Command: []string{agent}, Env: []string{"READY=" + fifo}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := e.Run(ctx, runtime.Turn{SessionID: "ses_1", Records: []store.Record{record(1, "hi")}})
		errc <- err
	}()
	pids := readPids(t, fifo)
	if len(pids) != 2 {
		t.Fatalf("pids = %v", pids)
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run after cancel: err = %v, want context.Canceled", err)
		}
	case <-time.After(guard):
		t.Fatalf("Run did not return within %s of cancel", guard)
	}
	// The script was reaped by Run; its child was killed with it.
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pids[0], &ws, syscall.WNOHANG, nil); !errors.Is(err, syscall.ECHILD) {
		t.Errorf("the script (pid %d) is still our child after Run returned: %v", pids[0], err)
	}
	waitGone(t, pids...)
}

func TestExecKillsWhatTheCommandLeftBehind(t *testing.T) {
	// The command exits at once, leaving a background process in its group.
	agent := script(t, `sleep 30 >/dev/null 2>&1 &
echo "$!"`)
	e := newExec(t, runtime.ExecConfig{Command: []string{agent}})
	out, err := run(t, context.Background(), e, runtime.Turn{SessionID: "ses_1", Records: []store.Record{record(1, "hi")}})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(out) != 1 {
		t.Fatalf("outputs = %+v", out)
	}
	pid, err := strconv.Atoi(out[0].Text)
	if err != nil {
		t.Fatalf("output %q is not a pid", out[0].Text)
	}
	waitGone(t, pid)
}

func TestExecAlreadyCancelled(t *testing.T) {
	dir := t.TempDir()
	agent := script(t, `touch "$OUT/ran"`)
	e := newExec(t, runtime.ExecConfig{Command: []string{agent}, Env: []string{"OUT=" + dir}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Run(ctx, runtime.Turn{SessionID: "ses_1", Records: []store.Record{record(1, "hi")}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: err = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Error("the command ran although the context was already cancelled")
	}
}

func TestExecOutputCapped(t *testing.T) {
	// 200 KiB of output, more than the pipe holds: the command must not
	// block on a reader that stopped keeping its output.
	agent := script(t, `head -c 204800 /dev/zero | tr '\0' 'x'`)
	e := newExec(t, runtime.ExecConfig{Command: []string{agent}, MaxOutput: 1000})
	out, err := run(t, context.Background(), e, runtime.Turn{SessionID: "ses_1", Records: []store.Record{record(1, "hi")}})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(out) != 1 {
		t.Fatalf("outputs = %d", len(out))
	}
	note := "\n\n[output truncated at 1000 bytes]"
	want := strings.Repeat("x", 1000-len(note)) + note
	if out[0].Text != want {
		t.Errorf("output is %d bytes ending %q, want 1000 bytes: x and a note", len(out[0].Text), out[0].Text[max(0, len(out[0].Text)-40):])
	}
}

func TestExecOutputMadeValidUTF8(t *testing.T) {
	agent := script(t, `printf 'caf\303\251 \377 ok'`)
	e := newExec(t, runtime.ExecConfig{Command: []string{agent}})
	out, err := run(t, context.Background(), e, runtime.Turn{SessionID: "ses_1", Records: []store.Record{record(1, "hi")}})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(out) != 1 || out[0].Text != "café \uFFFD ok" {
		t.Errorf("outputs = %+v", out)
	}
}

func TestExecCommandNotFound(t *testing.T) {
	e := newExec(t, runtime.ExecConfig{Command: []string{filepath.Join(t.TempDir(), "no-such-agent")}})
	_, err := run(t, context.Background(), e, runtime.Turn{SessionID: "ses_1", Records: []store.Record{record(1, "hi")}})
	var xe *runtime.ExitError
	if err == nil || errors.As(err, &xe) || !strings.Contains(err.Error(), "no-such-agent") {
		t.Fatalf("Run: err = %v, want a start error naming the command", err)
	}
}

func TestExecEmptyTurn(t *testing.T) {
	e := newExec(t, runtime.ExecConfig{Command: []string{"true"}})
	if _, err := e.Run(context.Background(), runtime.Turn{SessionID: "ses_1"}); err == nil {
		t.Fatal("Run of a turn without records succeeded")
	}
}

func TestNewExecChecksConfig(t *testing.T) {
	for name, cfg := range map[string]runtime.ExecConfig{
		"no command":       {},
		"empty program":    {Command: []string{""}},
		"negative timeout": {Command: []string{"true"}, Timeout: -time.Second},
		"negative output":  {Command: []string{"true"}, MaxOutput: -1},
		"reserved token":   {Command: []string{"true"}, Env: []string{"SWITCHBOARD_TOKEN=x"}},
		"reserved session": {Command: []string{"true"}, Env: []string{"SWITCHBOARD_SESSION_ID"}},
		"nameless env":     {Command: []string{"true"}, Env: []string{"=x"}},
	} {
		if _, err := runtime.NewExec(cfg); err == nil {
			t.Errorf("%s: NewExec succeeded", name)
		}
	}
}

func TestRunFunc(t *testing.T) {
	var rt runtime.Runtime = runtime.RunFunc(func(ctx context.Context, turn runtime.Turn) ([]runtime.Output, error) {
		return []runtime.Output{{Text: "got " + turn.SessionID}}, nil
	})
	out, err := rt.Run(context.Background(), runtime.Turn{SessionID: "ses_9"})
	if err != nil || len(out) != 1 || out[0].Text != "got ses_9" {
		t.Fatalf("Run = %+v, %v", out, err)
	}
}

// TestExecUserRunsAsThatUser runs a command as nobody: it gets nobody's uid
// and environment, and cannot read what only the gateway's user may (a 0600
// file, the gateway's /proc/<pid>/environ), which the same command run as
// the gateway's user can.
func TestExecUserRunsAsThatUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running a command as another user needs root; these tests do not run as root")
	}
	nobody, err := runtime.LookupUser("nobody")
	if err != nil {
		t.Skipf("no user nobody on this host: %v", err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("root-only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	body := `id -u
echo "HOME=$HOME USER=$USER"
cat "$SECRET" 2>/dev/null || echo "secret: denied"
if cat "/proc/$PPID/environ" >/dev/null 2>&1; then echo "environ: read"; else echo "environ: denied"; fi`
	runAs := func(user string) string {
		t.Helper()
		e := newExec(t, runtime.ExecConfig{
			Command: []string{"/bin/sh", "-c", body},
			Dir:     "/",
			Env:     []string{"SECRET=" + secret},
			User:    user,
		})
		out, err := run(t, context.Background(), e, runtime.Turn{SessionID: "ses_1", Records: []store.Record{record(1, "hi")}, Token: "session-token"})
		if err != nil {
			t.Fatalf("Run as %q: %v", user, err)
		}
		if len(out) != 1 {
			t.Fatalf("Run as %q: outputs = %+v, want one", user, out)
		}
		return out[0].Text
	}

	// The control: as the gateway's own user, both are readable.
	if got := runAs(""); !strings.Contains(got, "root-only") || !strings.Contains(got, "environ: read") {
		t.Fatalf("as the gateway's user the command printed:\n%s\nwant it to read the secret file and the gateway's environ", got)
	}
	for _, user := range []string{"nobody", nobody.Uid} {
		want := nobody.Uid + "\nHOME=" + nobody.HomeDir + " USER=" + nobody.Username + "\nsecret: denied\nenviron: denied"
		if got := runAs(user); got != want {
			t.Errorf("as %q the command printed:\n%s\nwant:\n%s", user, got, want)
		}
	}
}

func TestNewExecRefusesAnUnknownUser(t *testing.T) {
	_, err := runtime.NewExec(runtime.ExecConfig{Command: []string{"true"}, User: "no-such-user-sb"})
	if err == nil || !strings.Contains(err.Error(), `no user "no-such-user-sb"`) {
		t.Fatalf("NewExec = %v, want an error naming the unknown user", err)
	}
}
