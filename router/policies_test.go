package router_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/router"
	"github.com/switchboardhq/switchboard/store"
)

// steppedAgent is an exec agent whose turns the test finishes: each run
// keeps its stdin, says it started on a FIFO, and waits on a FIFO of its
// own for the line it answers with.
type steppedAgent struct {
	t       *testing.T
	dir     string
	script  string
	started chan int // the pid of each run, as it starts
}

func newSteppedAgent(t *testing.T) *steppedAgent {
	t.Helper()
	a := &steppedAgent{t: t, dir: t.TempDir(), started: make(chan int, 16)}
	a.script = writeScript(t, filepath.Join(a.dir, "agent.sh"), `#!/bin/sh
dir=$1
cat > "$dir/in.$$"
mkfifo "$dir/go.$$"
echo $$ > "$dir/started"
read -r answer < "$dir/go.$$"
echo "$answer"
`)
	fifo := filepath.Join(a.dir, "started")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Read and write: the FIFO stays open whoever writes, and runs never
	// block on opening it.
	f, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			pid, err := strconv.Atoi(sc.Text())
			if err != nil {
				t.Errorf("agent said %q on the started FIFO", sc.Text())
				continue
			}
			select {
			case a.started <- pid:
			case <-done:
				return
			}
		}
	})
	t.Cleanup(func() { close(done); f.Close(); wg.Wait() })
	return a
}

// route is the YAML of an exec route running the agent with busy policy
// busy and the given extra settings.
func (a *steppedAgent) route(busy, extra string) string {
	return fmt.Sprintf(`
routes:
  - name: fake
    match: {source: fake}
    runtime: exec
    exec: {command: [%q, %q], timeout: 1m}
    busy: %s
%s`, a.script, a.dir, busy, extra)
}

// turn waits for the next run to start and returns its pid and the texts it
// was handed; many is true when they came as a JSON array.
func (a *steppedAgent) turn() (pid int, texts []string, many bool) {
	a.t.Helper()
	select {
	case pid = <-a.started:
	case <-time.After(15 * time.Second):
		a.t.Fatal("timed out waiting for the agent to start a turn")
	}
	data, err := os.ReadFile(filepath.Join(a.dir, fmt.Sprint("in.", pid)))
	if err != nil {
		a.t.Fatal(err)
	}
	var envs []envelope.Envelope
	if many = len(data) > 0 && data[0] == '['; many {
		err = json.Unmarshal(data, &envs)
	} else {
		envs = make([]envelope.Envelope, 1)
		err = json.Unmarshal(data, &envs[0])
	}
	if err != nil {
		a.t.Fatalf("turn input %q: %v", data, err)
	}
	for _, e := range envs {
		texts = append(texts, e.Text)
	}
	return pid, texts, many
}

// release lets run pid finish with answer as its output.
func (a *steppedAgent) release(pid int, answer string) {
	a.t.Helper()
	var f *os.File
	// The open fails (ENXIO) until the run waits on its FIFO.
	waitFor(a.t, "the agent to wait for its answer", func() bool {
		var err error
		f, err = os.OpenFile(filepath.Join(a.dir, fmt.Sprint("go.", pid)), os.O_WRONLY|syscall.O_NONBLOCK, 0)
		return err == nil
	})
	defer f.Close()
	if _, err := fmt.Fprintln(f, answer); err != nil {
		a.t.Fatal(err)
	}
}

// idle asserts that no run started that the test did not take.
func (a *steppedAgent) idle() {
	a.t.Helper()
	select {
	case pid := <-a.started:
		data, _ := os.ReadFile(filepath.Join(a.dir, fmt.Sprint("in.", pid)))
		a.t.Errorf("an unexpected turn started with %s", data)
	default:
	}
}

// gone reports whether process pid and its process group are gone.
func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) && errors.Is(syscall.Kill(-pid, 0), syscall.ESRCH)
}

// checkLog asserts that session sid's log holds the inbound messages want,
// in order, and the outputs outs, and nothing else.
func checkLog(t *testing.T, h *harness, sid string, want, outs []string) {
	t.Helper()
	var in, out []string
	for _, r := range h.records(sid) {
		switch {
		case r.Direction == store.Inbound && r.Envelope.Kind == envelope.KindMessage:
			in = append(in, r.Envelope.Text)
		case r.Direction == store.Outbound && r.Envelope.Kind == envelope.KindMessage:
			out = append(out, r.Envelope.Text)
		default:
			t.Errorf("unexpected record %d: %s %s %q", r.Seq, r.Direction, r.Envelope.Kind, r.Envelope.Text)
		}
	}
	if !slices.Equal(in, want) {
		t.Errorf("log holds the messages %q, want %q", in, want)
	}
	if !slices.Equal(out, outs) {
		t.Errorf("log holds the outputs %q, want %q", out, outs)
	}
}

// waitIdle waits for the session's state to be idle.
func waitIdle(t *testing.T, h *harness, sid string) {
	t.Helper()
	waitFor(t, "the session to go idle", func() bool {
		s, err := h.st.Session(context.Background(), sid)
		return err == nil && s.State == store.Idle
	})
}

func state(t *testing.T, h *harness, sid string) store.State {
	t.Helper()
	s, err := h.st.Session(context.Background(), sid)
	if err != nil {
		t.Fatal(err)
	}
	return s.State
}

func TestBusyQueueHandlesEachMessageInItsOwnTurn(t *testing.T) {
	a := newSteppedAgent(t)
	h := newHarness(t, a.route("queue", ""), nil)
	sid := h.ingest(msg("fake", "t", "m1", addressed)).SessionID
	pid, got, _ := a.turn()
	if !slices.Equal(got, []string{"m1"}) {
		t.Fatalf("first turn got %q", got)
	}
	if s := state(t, h, sid); s != store.Running {
		t.Errorf("state %s while a turn runs, want running", s)
	}
	h.ingest(msg("fake", "t", "m2", adapters.Facts{}))
	h.ingest(msg("fake", "t", "m3", adapters.Facts{}))
	for i, want := range []string{"m2", "m3"} {
		a.release(pid, fmt.Sprint("a", i+1))
		var many bool
		pid, got, many = a.turn()
		if many || !slices.Equal(got, []string{want}) {
			t.Fatalf("turn %d got %q (array: %v), want %s alone", i+2, got, many, want)
		}
	}
	a.release(pid, "a3")
	waitFor(t, "three answers", func() bool { return len(h.sinks["fake"].delivered()) == 3 })
	waitIdle(t, h, sid)
	a.idle()
	if got := h.sinks["fake"].texts(); !slices.Equal(got, []string{"a1", "a2", "a3"}) {
		t.Errorf("posted %q", got)
	}
	checkLog(t, h, sid, []string{"m1", "m2", "m3"}, []string{"a1", "a2", "a3"})
}

func TestBusyCollectHandsOverWhatArrivedWhileRunning(t *testing.T) {
	a := newSteppedAgent(t)
	h := newHarness(t, a.route("collect", ""), nil)
	sid := h.ingest(msg("fake", "t", "m1", addressed)).SessionID
	pid, got, many := a.turn()
	if many || !slices.Equal(got, []string{"m1"}) {
		t.Fatalf("first turn got %q (array: %v), want m1 alone", got, many)
	}
	for _, m := range []string{"m2", "m3", "m4"} {
		h.ingest(msg("fake", "t", m, adapters.Facts{}))
	}
	a.release(pid, "a1")
	pid, got, many = a.turn()
	if !many || !slices.Equal(got, []string{"m2", "m3", "m4"}) {
		t.Fatalf("second turn got %q (array: %v), want [m2 m3 m4] as one array", got, many)
	}
	a.release(pid, "a2")
	waitFor(t, "two answers", func() bool { return len(h.sinks["fake"].delivered()) == 2 })
	waitIdle(t, h, sid)
	a.idle()
	checkLog(t, h, sid, []string{"m1", "m2", "m3", "m4"}, []string{"a1", "a2"})
}

func TestBusyCollectDebounceWaitsForMore(t *testing.T) {
	const debounce = 500 * time.Millisecond
	a := newSteppedAgent(t)
	h := newHarness(t, a.route("collect", fmt.Sprintf("    debounce: %s\n", debounce)), nil)
	start := time.Now()
	sid := h.ingest(msg("fake", "t", "m1", addressed)).SessionID
	h.ingest(msg("fake", "t", "m2", adapters.Facts{}))
	h.ingest(msg("fake", "t", "m3", adapters.Facts{}))
	if took := time.Since(start); took >= debounce {
		// The router may have started a turn before m3 was stored.
		t.Skipf("storing three messages took %v, longer than the debounce window", took)
	}
	pid, got, many := a.turn()
	if waited := time.Since(start); waited < debounce {
		t.Errorf("the turn started %v after the first message, before the debounce window of %v ended", waited, debounce)
	}
	if !many || !slices.Equal(got, []string{"m1", "m2", "m3"}) {
		t.Fatalf("first turn got %q (array: %v), want [m1 m2 m3] as one array", got, many)
	}
	// While it runs, more arrive: collected for the next turn.
	h.ingest(msg("fake", "t", "m4", adapters.Facts{}))
	h.ingest(msg("fake", "t", "m5", adapters.Facts{}))
	a.release(pid, "a1")
	pid, got, many = a.turn()
	if !many || !slices.Equal(got, []string{"m4", "m5"}) {
		t.Fatalf("second turn got %q (array: %v), want [m4 m5]", got, many)
	}
	a.release(pid, "a2")
	waitFor(t, "two answers", func() bool { return len(h.sinks["fake"].delivered()) == 2 })
	waitIdle(t, h, sid)
	a.idle()
	checkLog(t, h, sid, []string{"m1", "m2", "m3", "m4", "m5"}, []string{"a1", "a2"})
}

func TestBusyInterruptCancelsTheRunAndRestartsWithEverything(t *testing.T) {
	a := newSteppedAgent(t)
	h := newHarness(t, a.route("interrupt", ""), nil)
	sid := h.ingest(msg("fake", "t", "m1", addressed)).SessionID
	pid, got, _ := a.turn()
	if !slices.Equal(got, []string{"m1"}) {
		t.Fatalf("first turn got %q", got)
	}
	for i, want := range [][]string{{"m1", "m2"}, {"m1", "m2", "m3"}} {
		h.ingest(msg("fake", "t", fmt.Sprint("m", i+2), adapters.Facts{}))
		prev := pid
		var many bool
		pid, got, many = a.turn()
		if !many || !slices.Equal(got, want) {
			t.Fatalf("turn after interrupt %d got %q (array: %v), want %q", i+1, got, many, want)
		}
		// The restart came after the interrupted run was killed and reaped.
		if !gone(prev) {
			t.Errorf("the interrupted run (pid %d) is still there", prev)
		}
	}
	a.release(pid, "the answer to all three")
	waitFor(t, "the answer", func() bool { return len(h.sinks["fake"].delivered()) == 1 })
	waitIdle(t, h, sid)
	a.idle()
	if got := h.sinks["fake"].texts(); !slices.Equal(got, []string{"the answer to all three"}) {
		t.Errorf("posted %q", got)
	}
	// Interrupted runs are neither outputs nor failures.
	checkLog(t, h, sid, []string{"m1", "m2", "m3"}, []string{"the answer to all three"})
}

// stateHook is a store that calls onRunning after the router set a
// session running.
type stateHook struct {
	router.Store
	onRunning func(sessionID string)
}

func (s stateHook) SetState(ctx context.Context, id string, st store.State) (bool, error) {
	changed, err := s.Store.SetState(ctx, id, st)
	if err == nil && st == store.Running {
		s.onRunning(id)
	}
	return changed, err
}

// A message that arrives just as a turn starts, before the command runs,
// interrupts it too.
func TestBusyInterruptSeesAMessageArrivingAsTheTurnStarts(t *testing.T) {
	a := newSteppedAgent(t)
	var once sync.Once
	var h *harness
	ready := make(chan struct{})
	h = newWrappedHarness(t, a.route("interrupt", ""), func(st router.Store) router.Store {
		return stateHook{Store: st, onRunning: func(sid string) {
			once.Do(func() {
				<-ready
				if _, err := h.r.Ingest(context.Background(), msg("fake", "t", "m2", adapters.Facts{})); err != nil {
					t.Errorf("ingest m2: %v", err)
				}
			})
		}}
	})
	close(ready)
	sid := h.ingest(msg("fake", "t", "m1", addressed)).SessionID
	// The first run may start, with m1 alone, before it is interrupted.
	pid, got, many := a.turn()
	if !many {
		if !slices.Equal(got, []string{"m1"}) {
			t.Fatalf("first turn got %q", got)
		}
		prev := pid
		pid, got, many = a.turn()
		if !gone(prev) {
			t.Errorf("the interrupted run (pid %d) is still there", prev)
		}
	}
	if !many || !slices.Equal(got, []string{"m1", "m2"}) {
		t.Fatalf("turn got %q (array: %v), want [m1 m2]", got, many)
	}
	a.release(pid, "both")
	waitFor(t, "the answer", func() bool { return len(h.sinks["fake"].delivered()) == 1 })
	waitIdle(t, h, sid)
	a.idle()
	checkLog(t, h, sid, []string{"m1", "m2"}, []string{"both"})
}
