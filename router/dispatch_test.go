package router_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
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
// runtime consumer claimed, before the router sees it, and onRelease (when
// set) around each release of a runtime lease, and counts the Advance calls
// refused for a lost lease.
type leaseWatch struct {
	router.Store
	afterClaim func(works []store.Work)
	onRelease  func(sessionID string, release func())
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
	var err error
	advance := func() { err = s.Store.Advance(ctx, consumer, sessionID, owner, seq, leaseUntil) }
	if consumer == "runtime" && leaseUntil.IsZero() && s.onRelease != nil {
		s.onRelease(sessionID, advance)
	} else {
		advance()
	}
	if errors.Is(err, store.ErrLeaseLost) {
		s.lost.Add(1)
	}
	return err
}

// A session whose work ends as a new message for it is stored is taken up
// by the first claim after its release and answered at once, not once its
// lease would have run out: the runtime lets go of a session before it
// releases it, so a claim that returns it never finds it still in hand.
// (Claims once returned the sessions a process held as well; one that
// returned a session whose work was ending ran the agent a second time
// from an out-of-date cursor, which failed with "lease lost".)
func TestSessionReleasedAsAMessageArrivesIsTakenUpAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int64
		agent := runtime.RunFunc(func(ctx context.Context, turn runtime.Turn) ([]runtime.Output, error) {
			runs.Add(1)
			return []runtime.Output{{Text: "answer to " + turn.Records[len(turn.Records)-1].Envelope.Text}}, nil
		})
		watch := &leaseWatch{}
		h := &harness{t: t, path: t.TempDir() + "/switchboard.db", rts: map[string]runtime.Runtime{"fake": agent}, wrap: func(st router.Store) router.Store {
			watch.Store = st
			return watch
		}}
		var (
			first     sync.Once
			releasing = make(chan struct{}) // closed as the first release begins
			retaken   = make(chan struct{}) // closed by a claim of the session after that
			retook    sync.Once
		)
		watch.afterClaim = func(works []store.Work) {
			select {
			case <-releasing:
			default:
				return
			}
			if len(works) > 0 {
				retook.Do(func() { close(retaken) })
			}
		}
		watch.onRelease = func(_ string, release func()) {
			isFirst := false
			first.Do(func() { isFirst = true })
			if !isFirst {
				release()
				return
			}
			// The first turn is over. A message arrives, the session is
			// released, and the release returns only once a claim took
			// the session up again (or a second has gone by).
			if _, err := h.r.Ingest(context.Background(), msg("fake", "t", "again", addressed)); err != nil {
				t.Errorf("ingest: %v", err)
			}
			close(releasing)
			release()
			select {
			case <-retaken:
			case <-time.After(time.Second):
			}
		}
		startHarness(t, h, agentRoute)
		start := time.Now()
		sid := h.ingest(msg("fake", "t", "hi", addressed)).SessionID
		answers := func() (n int) {
			for _, r := range h.records(sid) {
				if r.Direction == store.Outbound {
					n++
				}
			}
			return n
		}
		for answers() < 2 && time.Since(start) < 10*time.Second {
			time.Sleep(10 * time.Millisecond)
		}
		if took := time.Since(start); took >= h.leaseTTL() {
			t.Errorf("the second message was answered %v after the first was sent: it waited out the lease (%v)", took, h.leaseTTL())
		}
		if n := runs.Load(); n != 2 {
			t.Errorf("the agent ran %d times for two messages", n)
		}
		if n := watch.lost.Load(); n != 0 {
			t.Errorf("%d advances failed with a lost lease", n)
		}
		checkLog(t, h, sid, []string{"hi", "again"}, []string{"answer to hi", "answer to again"})
	})
}

// The messages of a session whose route has no runtime (an inbox route,
// or none and no default) are appended NoTurn, whether a channel or the API
// (Router.Log) brings them, and the runtime never claims the session. A
// session whose route has a runtime gets its turns.
func TestInboxSessionsMessagesAskForNoTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		agent := runtime.RunFunc(func(ctx context.Context, turn runtime.Turn) ([]runtime.Output, error) {
			return []runtime.Output{{Text: "answer to " + turn.Records[len(turn.Records)-1].Envelope.Text}}, nil
		})
		var mu sync.Mutex
		claimed := map[string]int{}
		watch := &leaseWatch{afterClaim: func(works []store.Work) {
			mu.Lock()
			defer mu.Unlock()
			for _, w := range works {
				claimed[w.SessionID]++
			}
		}}
		h := &harness{t: t, path: t.TempDir() + "/switchboard.db", rts: map[string]runtime.Runtime{"fake": agent}, wrap: func(st router.Store) router.Store {
			watch.Store = st
			return watch
		}}
		startHarness(t, h, agentRoute+`
  - name: fake2
    match: {source: fake2}
`)
		inbox := h.ingest(msg("fake2", "t", "for the inbox", addressed)).SessionID
		turns := h.ingest(msg("fake", "t", "answer me", addressed)).SessionID
		if _, _, err := h.st.CreateSession(ctx, "ses_api", nil); err != nil {
			t.Fatal(err)
		}
		for _, sid := range []string{inbox, turns, "ses_api"} {
			steer := msg("client", "", "steered", adapters.Facts{}).Envelope
			if _, err := h.r.Log().Append(ctx, store.AppendRequest{SessionID: sid, Direction: store.Inbound, Envelope: steer, Wake: true}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(3 * h.leaseTTL()) // fake time: polls and claims go by
		synctest.Wait()

		for sid, noTurn := range map[string]bool{inbox: true, turns: false, "ses_api": true} {
			for _, rec := range h.records(sid) {
				if rec.Direction == store.Inbound && rec.NoTurn != noTurn {
					t.Errorf("session %s, record %d %q: NoTurn %v, want %v", sid, rec.Seq, rec.Envelope.Text, rec.NoTurn, noTurn)
				}
			}
		}
		checkLog(t, h, turns, []string{"answer me", "steered"}, []string{"answer to answer me", "answer to steered"})
		mu.Lock()
		defer mu.Unlock()
		if claimed[inbox] != 0 || claimed["ses_api"] != 0 || claimed[turns] == 0 {
			t.Errorf("the runtime claimed the inbox sessions %d and %d times and the agent's %d times; want 0, 0 and some",
				claimed[inbox], claimed["ses_api"], claimed[turns])
		}
	})
}

// A message that came while its session's route had no runtime is not
// handed to the runtime the route gets later (a new configuration): the
// agent's first turn is the first message that asked for one.
func TestMessagesBeforeARouteHadARuntimeAreNotTurns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var handed [][]string
		agent := runtime.RunFunc(func(ctx context.Context, turn runtime.Turn) ([]runtime.Output, error) {
			var texts []string
			for _, rec := range turn.Records {
				texts = append(texts, rec.Envelope.Text)
			}
			mu.Lock()
			handed = append(handed, texts)
			mu.Unlock()
			return []runtime.Output{{Text: "answer"}}, nil
		})
		h := &harness{t: t, path: t.TempDir() + "/switchboard.db", rts: map[string]runtime.Runtime{"fake": agent}}
		startHarness(t, h, `
routes:
  - name: fake
    match: {source: fake}
    busy: collect
`)
		sid := h.ingest(msg("fake", "t", "while an inbox", addressed)).SessionID
		h.close()
		h.cfg = parseConfig(t, agentRoute+"    busy: collect\n")
		h.open()
		h.ingest(msg("fake", "t", "with a runtime", addressed))
		time.Sleep(3 * h.leaseTTL()) // fake time
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(handed) != 1 || !slices.Equal(handed[0], []string{"with a runtime"}) {
			t.Errorf("the agent was handed %q, want one turn of [with a runtime]", handed)
		}
		checkLog(t, h, sid, []string{"while an inbox", "with a runtime"}, []string{"answer"})
	})
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

// A turn whose run finishes after the gateway began to stop is recorded,
// outputs and all, and is not run again after the restart: the agent
// answered, and would otherwise get the message twice.
func TestATurnThatEndsAsTheGatewayStopsIsRecorded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int64
		started := make(chan struct{})
		agent := runtime.RunFunc(func(ctx context.Context, turn runtime.Turn) ([]runtime.Output, error) {
			if runs.Add(1) == 1 {
				close(started)
				<-ctx.Done() // the stop begins while the agent answers
			}
			return []runtime.Output{{Text: "answer"}}, nil
		})
		h := &harness{t: t, path: t.TempDir() + "/switchboard.db", rts: map[string]runtime.Runtime{"fake": agent}}
		startHarness(t, h, agentRoute)
		sid := h.ingest(msg("fake", "t", "hi", addressed)).SessionID
		<-started
		h.restart()
		time.Sleep(3 * h.leaseTTL()) // fake time
		synctest.Wait()
		if n := runs.Load(); n != 1 {
			t.Errorf("the agent ran %d times, want once", n)
		}
		checkLog(t, h, sid, []string{"hi"}, []string{"answer"})
	})
}

// TestOnlyWorkWakesTheDispatcher: the runtime dispatcher claims when a
// message its runtime acts on is stored (here with no poll to find it
// otherwise), and not for appends that can give it no work: the agent's
// outputs, and messages to an inbox session, whose agent reads its log
// itself. Each of those used to cost a claim that found nothing.
func TestOnlyWorkWakesTheDispatcher(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var claims, runs atomic.Int64
		agent := runtime.RunFunc(func(ctx context.Context, turn runtime.Turn) ([]runtime.Output, error) {
			runs.Add(1)
			return []runtime.Output{{Text: "an answer"}}, nil
		})
		watch := &leaseWatch{afterClaim: func([]store.Work) { claims.Add(1) }}
		h := &harness{t: t, path: t.TempDir() + "/switchboard.db", poll: time.Hour,
			rts: map[string]runtime.Runtime{"fake": agent}, wrap: func(st router.Store) router.Store {
				watch.Store = st
				return watch
			}}
		startHarness(t, h, agentRoute+`
  - name: inbox
    match: {source: fake2}
`)
		settle := func() { // what the router does in 10ms of fake time
			time.Sleep(10 * time.Millisecond)
			synctest.Wait()
		}
		settle()
		sid := h.ingest(msg("fake", "t", "hi", addressed)).SessionID
		settle()
		if runs.Load() != 1 {
			t.Fatalf("the agent ran %d times after a message, want 1: the message did not wake the dispatcher", runs.Load())
		}
		inbox := h.ingest(msg("fake2", "t", "hi", addressed)).SessionID
		settle()
		before := claims.Load()
		for i := range 5 {
			h.output(sid, fmt.Sprint("out-", i), "more", envelope.Conversation{})
			h.output(inbox, fmt.Sprint("out-", i), "more", envelope.Conversation{})
			h.ingest(msg("fake2", "t", fmt.Sprint("for the inbox ", i), addressed))
			settle()
		}
		if n := claims.Load() - before; n != 0 {
			t.Errorf("%d runtime claims after outputs and inbox messages, want none", n)
		}
		if runs.Load() != 1 {
			t.Errorf("the agent ran %d times, want once", runs.Load())
		}
	})
}
