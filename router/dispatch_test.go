package router_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/testenv"
	"github.com/switchboardhq/switchboard/router"
	"github.com/switchboardhq/switchboard/router/runtime"
	"github.com/switchboardhq/switchboard/store"
)

// agentRoute is a route whose runtime the test gives (the command is not
// run).
const agentRoute = `
routes:
  - name: fake
    match: {source: fake}
    runtime: exec
    exec: {command: [unused]}
`

// leaseWatch is a store that calls afterClaim (when set) with what the
// runtime consumer claimed, before the router sees it, and counts the
// Advance calls refused for a lost lease.
type leaseWatch struct {
	router.Store
	afterClaim func(works []store.Work)
	lost       atomic.Int64
}

func (s *leaseWatch) ClaimWork(ctx context.Context, consumer, owner string, n int, now, leaseUntil time.Time) ([]store.Work, error) {
	works, err := s.Store.ClaimWork(ctx, consumer, owner, n, now, leaseUntil)
	if err == nil && consumer == "runtime" && s.afterClaim != nil {
		s.afterClaim(works)
	}
	return works, err
}

func (s *leaseWatch) Advance(ctx context.Context, consumer, sessionID, owner string, seq int64, leaseUntil time.Time) error {
	err := s.Store.Advance(ctx, consumer, sessionID, owner, seq, leaseUntil)
	if errors.Is(err, store.ErrLeaseLost) {
		s.lost.Add(1)
	}
	return err
}

// A claim that returns a session the process is working on, whose work
// then ends (releasing the lease) before the claim's result is looked at,
// must not start the session again from the claim's out-of-date cursor:
// that ran the agent a second time for a message it had answered, and
// failed with "lease lost" since the lease had been released.
func TestSessionReleasedDuringAClaimIsNotTakenUpAgain(t *testing.T) {
	var (
		runs    atomic.Int64
		started = make(chan struct{})
		answer  = make(chan struct{})
	)
	agent := runtime.RunFunc(func(ctx context.Context, _ runtime.Turn) ([]runtime.Output, error) {
		if runs.Add(1) == 1 {
			close(started)
		}
		select {
		case <-answer:
			return []runtime.Output{{Text: "the answer"}}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	watch := &leaseWatch{}
	h := &harness{t: t, rts: map[string]runtime.Runtime{"fake": agent}, wrap: func(st router.Store) router.Store {
		watch.Store = st
		return watch
	}}
	var (
		once  sync.Once
		held  atomic.Bool  // the claim was held
		later atomic.Int64 // claims after it
	)
	watch.afterClaim = func(works []store.Work) {
		if held.Load() {
			later.Add(1)
			return
		}
		select {
		case <-started:
		default:
			return
		}
		if len(works) == 0 {
			return
		}
		// The session in hand came back from this claim. Let its turn
		// finish, and its work end, before the router sees the claim.
		once.Do(func() {
			close(answer)
			deadline := time.Now().Add(15 * time.Second)
			for h.gauge("switchboard_router_sessions_in_hand", "consumer", "runtime") != 0 {
				if time.Now().After(deadline) {
					t.Error("timed out waiting for the session's work to end")
					return
				}
				time.Sleep(time.Millisecond)
			}
			held.Store(true)
		})
	}
	h.path = t.TempDir() + "/switchboard.db"
	startHarness(t, h, agentRoute)
	sid := h.ingest(msg("fake", "t", "hi", addressed)).SessionID
	// Once the router has looked at the held claim (it claims again after)
	// and whatever that started has ended:
	waitFor(t, "a claim after the held one", func() bool { return later.Load() > 0 })
	waitFor(t, "the session's work to end", func() bool {
		return h.gauge("switchboard_router_sessions_in_hand", "consumer", "runtime") == 0
	})
	if n := runs.Load(); n != 1 {
		t.Errorf("the agent ran %d times for one message", n)
	}
	if n := watch.lost.Load(); n != 0 {
		t.Errorf("%d advances failed with a lost lease", n)
	}
	if s := state(t, h, sid); s != store.Idle {
		t.Errorf("the session is %s, want idle", s)
	}
	checkLog(t, h, sid, []string{"hi"}, []string{"the answer"})
}

// sessionFails is a store whose Session fails, as a store in trouble
// does, and counts the calls. Past the 50th, it waits for ctx to end, so
// that a router calling it in a tight loop lets fake time go on.
type sessionFails struct {
	router.Store
	calls atomic.Int64
}

func (s *sessionFails) Session(ctx context.Context, id string) (store.Session, error) {
	if s.calls.Add(1) > 50 {
		<-ctx.Done()
		return store.Session{}, ctx.Err()
	}
	return store.Session{}, errors.New("disk on fire")
}

// A session whose work fails is not taken up again in a tight loop: it
// backs off, doubling up to the lease time.
func TestFailedSessionWorkBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fails := &sessionFails{}
		h := &harness{t: t, path: t.TempDir() + "/switchboard.db", wrap: func(st router.Store) router.Store {
			fails.Store = st
			return fails
		}}
		startHarness(t, h, agentRoute)
		h.ingest(msg("fake", "t", "hi", addressed))
		// 10s: with the lease of 2s, tries at 0, 0.1, 0.3, 0.7, 1.5, 3.1,
		// 5.1, 7.1 and 9.1s, give or take a poll (20ms) each.
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := fails.calls.Load(); n < 5 || n > 10 {
			t.Errorf("the session's work ran %d times in 10s, want 9 give or take", n)
		}
	})
}

// outputRefused is a store that refuses every agent output, as PostgreSQL
// refuses text holding a NUL byte, and counts the tries. Past the 50th, it
// waits for ctx to end, so that a router trying in a tight loop lets fake
// time go on.
type outputRefused struct {
	router.Store
	tries atomic.Int64
}

func (s *outputRefused) Append(ctx context.Context, req store.AppendRequest) (store.AppendResult, error) {
	if req.Envelope.Actor.Type != envelope.Agent {
		return s.Store.Append(ctx, req)
	}
	if s.tries.Add(1) > 50 {
		<-ctx.Done()
		return store.AppendResult{}, ctx.Err()
	}
	return store.AppendResult{}, errors.New(`invalid byte sequence for encoding "UTF8": 0x00`)
}

// An output the store refuses is tried a bounded number of times, with
// waits between; then a system record says what failed, and the session
// goes idle. The agent is not run again for it.
func TestRefusedOutputEndsTheTurnWithASystemRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int64
		agent := runtime.RunFunc(func(ctx context.Context, turn runtime.Turn) ([]runtime.Output, error) {
			runs.Add(1)
			return []runtime.Output{{Text: "nul\x00byte"}}, nil
		})
		refused := &outputRefused{}
		h := &harness{t: t, path: t.TempDir() + "/switchboard.db", rts: map[string]runtime.Runtime{"fake": agent},
			wrap: func(st router.Store) router.Store { refused.Store = st; return refused }}
		startHarness(t, h, agentRoute)
		sid := h.ingest(msg("fake", "t", "hi", addressed)).SessionID
		start := time.Now()
		var notice string
		waitFor(t, "a system record", func() bool {
			for _, rec := range h.records(sid) {
				if rec.Envelope.Kind == envelope.KindSystem {
					notice = rec.Envelope.Text
					return rec.Direction == store.Outbound
				}
			}
			return false
		})
		waitIdle(t, h, sid)
		took := time.Since(start)
		synctest.Wait()
		if n := runs.Load(); n != 1 {
			t.Errorf("the agent ran %d times for one message", n)
		}
		if n := refused.tries.Load(); n < 2 || n > 10 {
			t.Errorf("the output was tried %d times, want a few", n)
		}
		if took < 500*time.Millisecond {
			t.Errorf("the tries took %v, want waits between them", took)
		}
		if !strings.Contains(notice, "could not store the agent's answer to message 1") || !strings.Contains(notice, "0x00") {
			t.Errorf("the system record says %q, want which output failed and why", notice)
		}
		// The cursor is past the turn: the next message is the next turn.
		h.ingest(msg("fake", "t", "again", addressed))
		waitFor(t, "the next turn", func() bool { return runs.Load() == 2 })
		waitIdle(t, h, sid)
	})
}

// An output over limits.max_text is cut to it, with a note.
func TestLongOutputIsCutToMaxText(t *testing.T) {
	agent := writeScript(t, t.TempDir()+"/agent.sh", "#!/bin/sh\ncat >/dev/null\nhead -c 5000 /dev/zero | tr '\\0' x\n")
	h := newHarness(t, `
limits: {max_text: 100}
routes:
  - name: fake
    match: {source: fake}
    runtime: exec
    exec: {command: [`+strconv.Quote(agent)+`]}
`, nil)
	sid := h.ingest(msg("fake", "t", "hi", addressed)).SessionID
	waitFor(t, "the answer", func() bool { return len(h.sinks["fake"].delivered()) == 1 })
	waitIdle(t, h, sid)
	got := h.sinks["fake"].texts()[0]
	if len(got) > 100 || !strings.HasPrefix(got, "xxx") || !strings.HasSuffix(got, "[output truncated at 100 bytes]") {
		t.Errorf("posted %d bytes ending %q, want at most 100, cut with a note", len(got), got[max(0, len(got)-40):])
	}
}

// PostgreSQL refuses text holding a NUL byte: an exec agent printing one
// ran over a thousand times in 20s, and its session stayed running. It
// runs once; a system record says what failed, and the session goes idle.
func TestNULOutputOnPostgresEndsTheTurn(t *testing.T) {
	dsn := testenv.Postgres(t)
	dir := t.TempDir()
	agent := writeScript(t, dir+"/agent.sh", "#!/bin/sh\ncat >/dev/null\necho run >> "+strconv.Quote(dir+"/runs")+"\nprintf 'nul\\000byte\\n'\n")
	h := newPGHarness(t, dsn, `
routes:
  - name: fake
    match: {source: fake}
    runtime: exec
    exec: {command: [`+strconv.Quote(agent)+`]}
`, nil)
	sid := h.ingest(msg("fake", "t", "hi", addressed)).SessionID
	var notice string
	waitFor(t, "a system record", func() bool {
		for _, rec := range h.records(sid) {
			if rec.Envelope.Kind == envelope.KindSystem && rec.Direction == store.Outbound {
				notice = rec.Envelope.Text
				return true
			}
		}
		return false
	})
	waitIdle(t, h, sid)
	h.close()
	runs, err := os.ReadFile(dir + "/runs")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(runs), "run"); n != 1 {
		t.Errorf("the agent ran %d times for one message", n)
	}
	if !strings.Contains(notice, "could not store the agent's answer to message 1") {
		t.Errorf("the system record says %q, want which output failed and why", notice)
	}
}

// An upstream's output through /hooks/sessions is held to limits.max_text,
// as an exec agent's is.
func TestHookOutputIsCutToMaxText(t *testing.T) {
	h := newHarness(t, "limits: {max_text: 100}\n"+inboxRoutes, nil)
	sid := h.ingest(msg("fake", "t", "hi", addressed)).SessionID
	env := envelope.Envelope{
		ID: "agent:long", Source: "agent", Kind: envelope.KindMessage,
		Actor: envelope.Actor{ID: "agent:upstream", Type: envelope.Agent},
		Text:  strings.Repeat("y", 5000), TS: time.Now().UTC(),
	}
	if err := h.r.DeliverOutput(context.Background(), sid, env); err != nil {
		t.Fatal(err)
	}
	recs := h.records(sid)
	got := recs[len(recs)-1].Envelope.Text
	if len(got) > 100 || !strings.HasPrefix(got, "yyy") || !strings.HasSuffix(got, "[output truncated at 100 bytes]") {
		t.Errorf("stored %d bytes ending %q, want at most 100, cut with a note", len(got), got[max(0, len(got)-40):])
	}
}
