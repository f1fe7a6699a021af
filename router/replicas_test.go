package router_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/testenv"
	"github.com/switchboardhq/switchboard/router/runtime"
	"github.com/switchboardhq/switchboard/store"
)

// post is one message a process posted to a channel.
type post struct {
	by string // the process that posted it
	adapters.Delivery
}

// postRecorder is the channel as the outside world sees it, shared by the
// sinks of several gateway processes: what was posted, by whom, in order. A
// killed process posts nothing after its death.
type postRecorder struct {
	mu    sync.Mutex
	posts []post
	dead  map[string]bool
	// hangNext names the process whose next post hangs after it was made,
	// before it is acknowledged, until the process stops; hung is closed
	// then, and hungID is that delivery's id.
	hangNext string
	hung     chan struct{}
	hungID   string
}

// sink returns the fakeSink.hook of process name's sink.
func (p *postRecorder) sink(name string) func(context.Context, adapters.Delivery) error {
	return func(ctx context.Context, d adapters.Delivery) error {
		p.mu.Lock()
		if p.dead[name] {
			p.mu.Unlock()
			return errors.New("the process is dead")
		}
		p.posts = append(p.posts, post{name, d})
		hang := p.hangNext == name
		if hang {
			p.hangNext, p.hungID = "", d.ID
			close(p.hung)
		}
		p.mu.Unlock()
		if hang {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
}

// hang makes process name's next post hang; the channel is closed once it
// was made.
func (p *postRecorder) hang(name string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hangNext, p.hung = name, make(chan struct{})
	return p.hung
}

// hanging returns the id of the delivery whose post hung.
func (p *postRecorder) hanging() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hungID
}

// kill marks process name dead: from now on it posts nothing.
func (p *postRecorder) kill(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dead == nil {
		p.dead = map[string]bool{}
	}
	p.dead[name] = true
}

func (p *postRecorder) all() []post {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.posts)
}

func (p *postRecorder) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.posts)
}

// writeScript writes an executable shell script.
func writeScript(t *testing.T, path, body string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTwoReplicasOneKilledMidLoad runs two gateway processes on one
// PostgreSQL database under a steady load of conversations answered by an
// exec agent, kills one of them mid-load, and checks what the issue
// promises: nothing lost, nothing posted twice by live processes, order
// kept per conversation and per session.
func TestTwoReplicasOneKilledMidLoad(t *testing.T) {
	dsn := testenv.Postgres(t)
	const (
		convs   = 16
		perConv = 12
		total   = convs * perConv
		workers = 4 // outbox workers per process
	)
	dir := t.TempDir()
	agentLog := filepath.Join(dir, "seen")
	if err := os.Mkdir(agentLog, 0o755); err != nil {
		t.Fatal(err)
	}
	// The agent notes, per session, which process ran it on which message,
	// and answers with the message's text.
	script := writeScript(t, filepath.Join(dir, "agent.sh"), `#!/bin/sh
text=$(sed -n 's/.*"text":"\([^"]*\)".*/\1/p')
printf '%s %s\n' "$ROUTER" "$text" >> "$AGENT_LOG/$SWITCHBOARD_SESSION_ID"
printf 're: %s\n' "$text"
`)
	yml := fmt.Sprintf(`
router:
  max_parallel: 6
  outbox: {workers: %d, backoff: 20ms, max_backoff: 200ms}
routes:
  - name: fake
    match: {source: fake}
    runtime: exec
    exec: {command: [%q]}
    budget: {outputs_per_minute: 10000}
`, workers, script)
	runtimes := func(name string) map[string]runtime.Runtime {
		x, err := runtime.NewExec(runtime.ExecConfig{
			Command: []string{script},
			Env:     []string{"ROUTER=" + name, "AGENT_LOG=" + agentLog},
			Timeout: time.Minute,
		})
		if err != nil {
			t.Fatal(err)
		}
		return map[string]runtime.Runtime{"fake": x}
	}
	var rec postRecorder
	procs := map[string]*harness{}
	for _, name := range []string{"a", "b"} {
		h := newPGHarness(t, dsn, yml, runtimes(name))
		fake := h.sinks["fake"]
		fake.mu.Lock()
		fake.hook = rec.sink(name)
		fake.mu.Unlock()
		procs[name] = h
	}
	a, b := procs["a"], procs["b"]

	// The load: one client per conversation sends its messages in order,
	// paced, through either process as a load balancer would; once a is
	// dead, through b only. A message counts as sent once Ingest returned
	// nil; a failed Ingest is retried with the same envelope.
	var (
		aDead  atomic.Bool
		sent   atomic.Int64
		loadWG sync.WaitGroup
		ctx    = context.Background()
	)
	loadCtx, stopLoad := context.WithCancel(ctx)
	t.Cleanup(func() { stopLoad(); loadWG.Wait() }) // before the processes stop
	start := time.Now()
	for c := range convs {
		loadWG.Go(func() {
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for i, text := range convTexts(c, perConv) {
				in := msg("fake", fmt.Sprintf("conv-%02d", c), text, adapters.Facts{Addressed: i == 0})
				for {
					via, name := a, "a"
					if aDead.Load() || (c+i)%2 == 1 {
						via, name = b, "b"
					}
					out, err := via.r.Ingest(loadCtx, in)
					if err == nil && out.Dropped == "" {
						break
					}
					if loadCtx.Err() != nil {
						return
					}
					if name == "b" || !aDead.Load() {
						t.Errorf("ingest %s through %s: %+v, %v", text, name, out, err)
						return
					}
				}
				sent.Add(1)
				select {
				case <-tick.C:
				case <-loadCtx.Done():
					return
				}
			}
		})
	}

	// Kill a mid-load, once a fifth of the answers have gone out, right
	// after it made a post it has not yet recorded as made.
	waitFor(t, "a fifth of the answers", func() bool { return rec.len() >= total/5 })
	select {
	case <-rec.hang("a"):
	case <-time.After(15 * time.Second):
		t.Fatal("a made no post")
	}
	rec.kill("a") // the instant of death: a posts nothing from now on
	aDead.Store(true)
	sentAtKill, postedAtKill := sent.Load(), rec.len()
	killedAt := time.Now()
	a.crash()
	loadWG.Wait()
	if t.Failed() {
		return
	}
	// Nothing lost: every message is answered and its answer posted, by b
	// once a's leases have expired, and the outbox is empty.
	waitFor(t, "every answer to be posted", func() bool {
		ids := map[string]bool{}
		for _, p := range rec.all() {
			ids[p.ID] = true
		}
		pending, err := b.st.ListDeliveries(ctx, store.Pending, "", 1)
		return len(ids) >= total && err == nil && len(pending) == 0
	})
	elapsed := time.Since(start)
	posts := rec.all()

	// The log of each session: every message once, in the order its client
	// sent it, and one answer to each, in the same order.
	sessions := make([]string, convs) // by conversation
	answers := map[string][]string{}  // session → ids of its answers, in log order
	convOf := map[string]string{}     // session → conversation ref
	for c := range convs {
		ref := fmt.Sprintf("conv-%02d", c)
		bd, err := b.st.BindingFor(ctx, envelope.Conversation{Source: "fake", Ref: ref})
		if err != nil {
			t.Fatalf("binding of %s: %v", ref, err)
		}
		sid := bd.SessionID
		sessions[c], convOf[sid] = sid, ref
		var ins, outs []string
		for _, r := range b.records(sid) {
			switch {
			case r.Envelope.Kind == envelope.KindSystem:
				t.Errorf("session %s: unexpected system record %q", sid, r.Envelope.Text)
			case r.Direction == store.Inbound:
				ins = append(ins, r.Envelope.Text)
			default:
				outs = append(outs, strings.TrimPrefix(r.Envelope.Text, "re: "))
				answers[sid] = append(answers[sid], r.Envelope.ID)
			}
		}
		if want := convTexts(c, perConv); !slices.Equal(ins, want) || !slices.Equal(outs, want) {
			t.Errorf("session %s logged %q and answered %q, want %q for both", sid, ins, outs, want)
		}
	}

	// Per session, turns ran in log order, one message each. The only
	// repeat allowed is the turn a had in flight when it died, run again by
	// b: a pair "a m", "b m" for the same message, at most once a session.
	turnsA, rerunTurns := 0, 0
	for c, sid := range sessions {
		data, err := os.ReadFile(filepath.Join(agentLog, sid))
		if err != nil {
			t.Fatal(err)
		}
		var seen []string
		repeated, prevBy := 0, ""
		for line := range strings.Lines(string(data)) {
			by, text, _ := strings.Cut(strings.TrimSpace(line), " ")
			if by == "a" {
				turnsA++
			}
			if n := len(seen); n > 0 && seen[n-1] == text {
				repeated++
				if prevBy != "a" || by != "b" {
					t.Errorf("session %s: turn %s ran by %s, then again by %s; only a turn a died in may run again, by b", sid, text, prevBy, by)
				}
			} else {
				seen = append(seen, text)
			}
			prevBy = by
		}
		rerunTurns += repeated
		if want := convTexts(c, perConv); !slices.Equal(seen, want) || repeated > 1 {
			t.Errorf("session %s: the agent saw %q, want %q in order (one turn repeated at most)", sid, strings.Fields(string(data)), want)
		}
	}

	// Posts. Every answer was posted to its own conversation. A delivery
	// was posted at most once by each process, and by both only when a
	// posted it and died before settling it: then a posted it first, b
	// later on a new attempt, and it was the last thing a posted in that
	// conversation (so at most one per conversation, and at most one per
	// outbox worker of a). b, alive throughout, never posted anything twice.
	postsOf := map[string][]post{} // delivery id → its posts, in order
	idOf := map[string]string{}    // session/answer envelope id → delivery id
	lastA := map[string]string{}   // conversation → id of a's last post there
	for _, p := range posts {
		if slices.ContainsFunc(postsOf[p.ID], func(q post) bool { return q.by == p.by }) {
			t.Errorf("process %s posted delivery %s (%q) twice", p.by, p.ID, p.Envelope.Text)
		}
		postsOf[p.ID] = append(postsOf[p.ID], p)
		answer := p.SessionID + "/" + p.Envelope.ID
		if id, ok := idOf[answer]; ok && id != p.ID {
			t.Errorf("answer %s posted under two delivery ids, %s and %s", answer, id, p.ID)
		}
		idOf[answer] = p.ID
		if want := (envelope.Conversation{Source: "fake", Ref: convOf[p.SessionID]}); p.To != want {
			t.Errorf("delivery %s of session %s went to %v, want %v", p.ID, p.SessionID, p.To, want)
		}
		if p.by == "a" {
			lastA[p.To.Ref] = p.ID
		}
	}
	repeats := map[string]bool{}
	for id, ps := range postsOf {
		if len(ps) == 1 {
			continue
		}
		first, second := ps[0], ps[1]
		if len(ps) > 2 || first.by != "a" || second.by != "b" || second.Attempt <= first.Attempt {
			t.Errorf("delivery %s posted %d times: %+v", id, len(ps), ps)
			continue
		}
		if lastA[first.To.Ref] != id {
			t.Errorf("delivery %s, posted again by b, was not the last thing a posted in %s", id, first.To.Ref)
		}
		repeats[id] = true
	}
	// a died with the post that hung in flight, and with at most one
	// per outbox worker.
	if hung := rec.hanging(); !repeats[hung] || len(repeats) > workers {
		t.Errorf("deliveries posted twice: %v; want the one a died with (%s), and at most %d", slices.Collect(maps.Keys(repeats)), hung, workers)
	}

	// Order per conversation: answers posted in log order, once each, but
	// for b's repeat of what a died with, which comes right after a's post
	// of it in its conversation.
	posted := map[string][]string{} // session → answer ids, in post order
	var last post
	lastIn := map[string]post{} // conversation → its previous post
	for _, p := range posts {
		last, lastIn[p.To.Ref] = lastIn[p.To.Ref], p
		if repeats[p.ID] && p.by == "b" {
			if last.ID != p.ID || last.by != "a" {
				t.Errorf("conversation %s: b's repeat of %s follows %q by %s, not a's post of it", p.To.Ref, p.ID, last.Envelope.Text, last.by)
			}
			continue
		}
		posted[p.SessionID] = append(posted[p.SessionID], p.Envelope.ID)
	}
	for _, sid := range sessions {
		if !slices.Equal(posted[sid], answers[sid]) {
			t.Errorf("session %s: answers posted as %q, want each once in log order %q", sid, posted[sid], answers[sid])
		}
	}

	// The outbox agrees: nothing dead; and every session went idle.
	if ds, err := b.st.ListDeliveries(ctx, store.Dead, "", 10); err != nil || len(ds) != 0 {
		t.Errorf("dead deliveries: %+v, %v", ds, err)
	}
	waitFor(t, "every session to go idle", func() bool {
		for _, sid := range sessions {
			if s, err := b.st.Session(ctx, sid); err != nil || s.State != store.Idle {
				return false
			}
		}
		return true
	})

	// Both processes worked before the kill; without that the test proves
	// nothing.
	postsA := 0
	for _, p := range posts {
		if p.by == "a" {
			postsA++
		}
	}
	if postsA == 0 || turnsA == 0 || postsA == len(posts) {
		t.Errorf("a posted %d of %d and ran %d turns: the load was not shared", postsA, len(posts), turnsA)
	}
	t.Logf("%d messages in %d conversations, all answered and posted in %v; a killed %v in, after %d sent and %d posted "+
		"(a: %d posts, %d turns); repeated after the kill: %d turns, %d posts; caught up %v after the kill",
		total, convs, elapsed.Round(time.Millisecond), killedAt.Sub(start).Round(time.Millisecond), sentAtKill, postedAtKill,
		postsA, turnsA, rerunTurns, len(repeats), (elapsed - killedAt.Sub(start)).Round(time.Millisecond))
}

// convTexts are the texts of the n messages of conversation c.
func convTexts(c, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("c%02d-m%02d", c, i)
	}
	return out
}
