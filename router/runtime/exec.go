package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboardhq/switchboard/store"
)

// Exec runtime defaults and limits.
const (
	// DefaultExecTimeout bounds one run when ExecConfig.Timeout is 0.
	DefaultExecTimeout = 10 * time.Minute
	// DefaultMaxOutput is how much of a run's stdout becomes its output when
	// ExecConfig.MaxOutput is 0; the rest is read and discarded.
	DefaultMaxOutput = 1 << 20
	// stderrExcerpt is how much of the end of stderr an ExitError keeps.
	stderrExcerpt = 2 << 10
	// waitDelay bounds how long Run waits, once the command has exited or
	// been killed, for its stdout and stderr to close (a background process
	// that escaped the process group may hold them open).
	waitDelay = 2 * time.Second
)

// The environment variables every run gets. Configured Env may not set them.
const (
	EnvSessionID = "SWITCHBOARD_SESSION_ID"
	EnvURL       = "SWITCHBOARD_URL"
	EnvToken     = "SWITCHBOARD_TOKEN"
)

// passEnv are the variables of the gateway's own environment that a command
// inherits. The rest is not passed: the gateway's environment holds its
// secrets (the admin SWITCHBOARD_TOKEN, signing secrets).
var passEnv = []string{"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"}

// ExecConfig configures the exec runtime.
type ExecConfig struct {
	// Command is the program and its arguments, run without a shell. A
	// relative program path with a slash ("./agent") is resolved in Dir; a
	// bare name is looked up in the gateway's PATH.
	Command []string
	// Dir is the working directory of the command; "" means the gateway's.
	Dir string
	// Env adds to the command's environment: "KEY=value" sets KEY, and a bare
	// "KEY" passes the gateway's own value of KEY through (when it has one).
	// Of the gateway's environment the command otherwise inherits only PATH,
	// HOME, USER, LOGNAME, LANG, LC_ALL, LC_CTYPE, TZ and TMPDIR.
	Env []string
	// Timeout bounds one run; 0 means DefaultExecTimeout.
	Timeout time.Duration
	// GatewayURL is the gateway's base URL, given to the command as
	// SWITCHBOARD_URL so that it can read the session's log or post outputs.
	GatewayURL string
	// MaxOutput caps the bytes of stdout kept as the output; 0 means
	// DefaultMaxOutput.
	MaxOutput int
	// User, when set, is the user the command runs as: a user name or a
	// numeric uid, either of which must exist in the user database. The
	// command gets that user's uid, primary gid and supplementary groups,
	// and HOME, USER and LOGNAME name that user instead of the gateway's.
	// Switching users needs root (or CAP_SETUID, CAP_SETGID and CAP_KILL,
	// the last to stop the command at its timeout): NewExec fails when the
	// gateway may not, rather than run the command as itself. Dir and the
	// program must be reachable by that user. Not available where the OS
	// has no unix credentials.
	User string
}

// Exec is the exec runtime: it runs a command once per turn.
//
// The command gets the turn's envelopes as JSON on stdin, followed by a
// newline: a turn of one record is that envelope's JSON object; a turn of
// several (the "collect" busy policy) is a JSON array of them, in order. Each
// envelope is written verbatim, raw included. The environment holds
// SWITCHBOARD_SESSION_ID, SWITCHBOARD_URL and SWITCHBOARD_TOKEN (a token
// scoped to the session) besides what ExecConfig.Env adds.
//
// What the command prints on stdout, trimmed, becomes the turn's one Output
// (none when it prints nothing). A command may stream its answer instead,
// with the line protocol of stream.go (StreamPrefix): its replies then
// reach Turn.Emit as it writes them. A non-zero exit, death by a signal or a
// timeout is an *ExitError. The command runs in its own process group; when
// Run's context is cancelled or the timeout passes the whole group is killed
// with SIGKILL, and after the command exits any process it left behind in its
// group is killed too.
//
// Exec is safe for concurrent use; each Run starts its own process.
type Exec struct {
	cfg     ExecConfig
	env     []string // the environment shared by every run
	runAs   *runAs   // nil: the gateway's own user
	timeout time.Duration
	maxOut  int
}

// NewExec checks cfg and returns an Exec runtime. Its only I/O is resolving
// cfg.User and checking that the gateway may switch to it; a command that
// does not exist fails at Run.
func NewExec(cfg ExecConfig) (*Exec, error) {
	if len(cfg.Command) == 0 || cfg.Command[0] == "" {
		return nil, errors.New("runtime: exec: command is required")
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("runtime: exec: timeout %s is negative", cfg.Timeout)
	}
	if cfg.MaxOutput < 0 {
		return nil, fmt.Errorf("runtime: exec: max output %d is negative", cfg.MaxOutput)
	}
	e := &Exec{cfg: cfg, timeout: cfg.Timeout, maxOut: cfg.MaxOutput}
	if e.timeout == 0 {
		e.timeout = DefaultExecTimeout
	}
	if e.maxOut == 0 {
		e.maxOut = DefaultMaxOutput
	}
	e.cfg.Command = append([]string(nil), cfg.Command...)
	var u *user.User
	if cfg.User != "" {
		var err error
		if e.runAs, u, err = newRunAs(cfg.User); err != nil {
			return nil, fmt.Errorf("runtime: exec: user: %w", err)
		}
	}
	for _, k := range passEnv {
		if u != nil {
			// The command's user, not the gateway's, is who these name.
			switch k {
			case "HOME":
				e.env = append(e.env, "HOME="+u.HomeDir)
				continue
			case "USER", "LOGNAME":
				e.env = append(e.env, k+"="+u.Username)
				continue
			}
		}
		if v, ok := os.LookupEnv(k); ok {
			e.env = append(e.env, k+"="+v)
		}
	}
	for _, kv := range cfg.Env {
		k, _, hasValue := strings.Cut(kv, "=")
		switch k {
		case "":
			return nil, fmt.Errorf("runtime: exec: env entry %q has no name", kv)
		case EnvSessionID, EnvURL, EnvToken:
			return nil, fmt.Errorf("runtime: exec: env may not set %s: the gateway sets it for every run", k)
		}
		if hasValue {
			e.env = append(e.env, kv)
		} else if v, ok := os.LookupEnv(k); ok {
			e.env = append(e.env, k+"="+v)
		}
	}
	return e, nil
}

// ExitError reports a run that failed: the command exited with a non-zero
// status, was killed by a signal, or ran past its timeout.
type ExitError struct {
	// Command is the program that was run (its base name is in Error).
	Command string
	// Code is the exit status, or -1 when the command was killed.
	Code int
	// State describes how the process ended ("exit status 3", "signal:
	// segmentation fault").
	State string
	// Timeout is non-zero when the run was killed for taking longer than it.
	Timeout time.Duration
	// Stderr is the end of what the command wrote to stderr, trimmed.
	Stderr string
}

func (e *ExitError) Error() string {
	// The message may reach a channel as a system envelope: name the
	// program, not where it is installed.
	name := filepath.Base(e.Command)
	var b strings.Builder
	switch {
	case e.Timeout > 0:
		fmt.Fprintf(&b, "%s timed out after %s", name, e.Timeout)
	case e.Code >= 0:
		fmt.Fprintf(&b, "%s exited with code %d", name, e.Code)
	default:
		fmt.Fprintf(&b, "%s ended: %s", name, e.State)
	}
	if e.Stderr != "" {
		b.WriteString("; stderr: ")
		b.WriteString(e.Stderr)
	}
	return b.String()
}

// Run runs the command for t and returns its output. It blocks until the
// command has exited and been reaped. When ctx is cancelled it kills the
// command's process group and returns ctx.Err() once the command is gone.
func (e *Exec) Run(ctx context.Context, t Turn) ([]Output, error) {
	if len(t.Records) == 0 {
		return nil, errNoRecords
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	input, err := turnJSON(t.Records)
	if err != nil {
		return nil, fmt.Errorf("runtime: exec: %w", err)
	}

	runCtx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	cmd := exec.CommandContext(runCtx, e.cfg.Command[0], e.cfg.Command[1:]...)
	cmd.Dir = e.cfg.Dir
	cmd.Env = append(e.env[:len(e.env):len(e.env)],
		EnvSessionID+"="+t.SessionID,
		EnvURL+"="+e.cfg.GatewayURL,
		EnvToken+"="+t.Token,
	)
	cmd.Stdin = bytes.NewReader(input)
	plain := &headBuffer{max: e.maxOut}
	stdout := &streamWriter{plain: plain, max: e.maxOut, emit: t.Emit, interval: StreamInterval}
	stderr := &tailBuffer{max: stderrExcerpt}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = newProcAttr(e.runAs)
	cmd.Cancel = func() error { return killTree(cmd.Process) }
	cmd.WaitDelay = waitDelay

	runErr := cmd.Run()
	// Stdout is copied in full once Run returns (or abandoned after
	// waitDelay, when nothing writes to the stream any more).
	replies := stdout.close()
	if cmd.Process != nil {
		// Whatever the command left running in its group goes with it. The
		// group is empty (and this a no-op) in the usual case.
		_ = killTree(cmd.Process)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if runErr != nil && !errors.Is(runErr, exec.ErrWaitDelay) {
		var xe *exec.ExitError
		switch {
		case errors.Is(runCtx.Err(), context.DeadlineExceeded):
			return nil, &ExitError{Command: e.cfg.Command[0], Code: -1, State: "killed", Timeout: e.timeout, Stderr: stderr.String()}
		case errors.As(runErr, &xe):
			return nil, &ExitError{Command: e.cfg.Command[0], Code: xe.ExitCode(), State: xe.ProcessState.String(), Stderr: stderr.String()}
		default:
			return nil, fmt.Errorf("runtime: exec: %w", runErr)
		}
	}
	outs := replies
	if text := plain.Text(); text != "" {
		outs = append(outs, Output{Text: text})
	}
	return outs, nil
}

// LookupUser finds a user by name or, when s is a number, by uid. Its
// error says plainly when no such user exists.
func LookupUser(s string) (*user.User, error) {
	var (
		u   *user.User
		err error
	)
	if _, perr := strconv.ParseUint(s, 10, 32); perr == nil {
		u, err = user.LookupId(s)
	} else {
		u, err = user.Lookup(s)
	}
	var unknownName user.UnknownUserError
	var unknownID user.UnknownUserIdError
	if errors.As(err, &unknownName) || errors.As(err, &unknownID) {
		return nil, fmt.Errorf("no user %q on this host: name an existing user (or uid), e.g. nobody: %w", s, err)
	}
	if err != nil {
		return nil, fmt.Errorf("look up user %q: %w", s, err)
	}
	return u, nil
}

// runAs is the credential a command runs with.
type runAs struct {
	uid, gid uint32
	groups   []uint32
	// sameUser is set when uid and gid are the gateway's own: nothing to
	// switch, and the supplementary groups are left as they are.
	sameUser bool
}

// turnJSON encodes the envelopes of recs for stdin: the object for one
// record, an array for several, and a final newline.
func turnJSON(recs []store.Record) ([]byte, error) {
	var b []byte
	var err error
	if len(recs) == 1 {
		b, err = recs[0].Envelope.AppendJSON(b)
	} else {
		b = append(b, '[')
		for i := range recs {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = recs[i].Envelope.AppendJSON(b); err != nil {
				break
			}
		}
		b = append(b, ']')
	}
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// headBuffer keeps the first max bytes written to it and discards the rest,
// so that the writer never blocks on a full pipe. It is written by one
// goroutine and read after that goroutine is done.
type headBuffer struct {
	buf       []byte
	max       int
	truncated bool
}

func (h *headBuffer) Write(p []byte) (int, error) {
	if room := h.max - len(h.buf); len(p) > room {
		h.buf = append(h.buf, p[:room]...)
		h.truncated = true
	} else {
		h.buf = append(h.buf, p...)
	}
	return len(p), nil
}

// Text is the kept output, trimmed and valid UTF-8; when it was cut, its
// head and a note saying so, max bytes in all.
func (h *headBuffer) Text() string {
	b := h.buf
	if h.truncated {
		b = trimPartialRune(b)
	}
	s := strings.ToValidUTF8(strings.TrimSpace(string(b)), "\uFFFD")
	if h.truncated && s != "" {
		s = cut(s, h.max)
	}
	return s
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	buf []byte
	max int
	cut bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		t.cut = true
		return n, nil
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.cut = true
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// String is the kept end of stderr, trimmed and valid UTF-8, starting with
// "…" when its beginning was dropped.
func (t *tailBuffer) String() string {
	b := t.buf
	if t.cut {
		// Skip a partial rune at the start.
		for len(b) > 0 && !utf8.RuneStart(b[0]) {
			b = b[1:]
		}
	}
	s := strings.ToValidUTF8(strings.TrimSpace(string(b)), "\uFFFD")
	if t.cut && s != "" {
		s = "…" + s
	}
	return s
}

// trimPartialRune drops an incomplete UTF-8 sequence at the end of b.
func trimPartialRune(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}
