package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/client"
	"github.com/switchboardhq/switchboard/internal/testenv"
	"github.com/switchboardhq/switchboard/webhook"
)

// buildBinary builds cmd/switchboard once per test binary run.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "switchboard-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "switchboard")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(gobin, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// gatewayProc is a switchboard serve process started by a test.
type gatewayProc struct {
	cmd  *exec.Cmd
	URL  string
	done chan struct{}
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startGateway runs `switchboard serve` with args and waits until it listens.
func startGateway(t *testing.T, token string, args ...string) *gatewayProc {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), "SWITCHBOARD_TOKEN="+token)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &gatewayProc{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	select {
	case a := <-addr:
		p.URL = "http://" + a
	case <-p.done:
		t.Fatalf("switchboard serve exited before listening: %v", cmd.ProcessState)
	case <-time.After(60 * time.Second):
		t.Fatal("switchboard serve did not start listening within 60s")
	}
	return p
}

func (p *gatewayProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// TestCrashLosesNothingAcknowledged sends messages from many connections,
// kills the gateway with SIGKILL mid-stream, restarts it and checks that
// every acknowledged message is present exactly once, and that retrying the
// requests whose outcome was unknown creates no duplicates.
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	engines := map[string]func(t *testing.T) []string{
		"sqlite":   func(t *testing.T) []string { return []string{"--data", t.TempDir()} },
		"postgres": func(t *testing.T) []string { return []string{"--store", testenv.Postgres(t)} },
	}
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			args := engines[name](t)
			crashTest(t, args)
		})
	}
}

func crashTest(t *testing.T, args []string) {
	const token = "crash-test-token-0123456789abcdefgh"
	ctx := context.Background()
	gw := startGateway(t, token, args...)
	c := client.New(gw.URL, token, nil)

	const nSessions, nWorkers = 8, 32
	sessions := make([]string, nSessions)
	for i := range sessions {
		s, err := c.CreateSession(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		sessions[i] = s.ID
	}

	type sent struct{ session, key, text string }
	var (
		mu      sync.Mutex
		acked   []sent
		inDoubt []sent
		nAcked  atomic.Int64
		wg      sync.WaitGroup
	)
	for w := range nWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				m := sent{sessions[(w+n)%nSessions], fmt.Sprintf("w%d-n%d", w, n), fmt.Sprintf("message %d from worker %d", n, w)}
				_, err := c.Steer(ctx, m.session, client.Message{Text: m.text, IdempotencyKey: m.key})
				mu.Lock()
				if err != nil {
					inDoubt = append(inDoubt, m)
				} else {
					acked = append(acked, m)
					nAcked.Add(1)
				}
				mu.Unlock()
				if err != nil {
					return // the gateway is gone
				}
			}
		}()
	}
	// Kill once a good number of messages have been acknowledged, while the
	// workers are still sending.
	deadline := time.Now().Add(60 * time.Second)
	for nAcked.Load() < 1500 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	gw.kill()
	wg.Wait()
	if len(acked) < 100 {
		t.Fatalf("only %d messages acknowledged before the kill", len(acked))
	}
	t.Logf("killed with %d acknowledged, %d in doubt", len(acked), len(inDoubt))

	gw2 := startGateway(t, token, args...)
	c2 := client.New(gw2.URL, token, nil)
	// A client retries what it does not know the fate of, with the same key.
	for _, m := range inDoubt {
		if _, err := c2.Steer(ctx, m.session, client.Message{Text: m.text, IdempotencyKey: m.key}); err != nil {
			t.Fatalf("retry %s: %v", m.key, err)
		}
	}
	// And one acknowledged message is retried too: it must be a replay.
	r, err := c2.Steer(ctx, acked[0].session, client.Message{Text: acked[0].text, IdempotencyKey: acked[0].key})
	if err != nil || !r.Replayed {
		t.Fatalf("retrying an acknowledged message: replayed=%v err=%v", r.Replayed, err)
	}

	seen := map[string]int{}
	for _, s := range sessions {
		var after int64
		for {
			p, err := c2.Messages(ctx, s, after, 1000, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range p.Messages {
				if rec.Seq != after+1 {
					t.Fatalf("session %s: seq %d follows %d", s, rec.Seq, after)
				}
				after = rec.Seq
				seen[s+"/"+rec.Envelope.ID]++
			}
			if len(p.Messages) == 0 {
				break
			}
		}
	}
	for _, m := range append(acked, inDoubt...) {
		if n := seen[m.session+"/client:"+m.key]; n != 1 {
			t.Errorf("message %s stored %d times, want exactly once", m.key, n)
		}
	}
	if want := len(acked) + len(inDoubt); len(seen) != want {
		t.Errorf("%d distinct messages stored, want %d", len(seen), want)
	}
}

// TestServeStopsCleanlyOnSIGTERM checks that SIGTERM ends serve with status 0.
func TestServeStopsCleanlyOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	gw := startGateway(t, "sigterm-test-token-0123456789abcdef", "--data", t.TempDir())
	if err := gw.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gw.done:
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30s of SIGTERM")
	}
	if code := gw.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
}

// TestWebhookDeliveriesSurviveSIGKILL registers a webhook receiver in the
// config, sends messages while the receiver is failing, kills the gateway
// with SIGKILL with deliveries pending (some in flight), restarts it and
// checks that every message's event reaches the receiver, in order per
// session, and that nothing acknowledged was lost on the way.
func TestWebhookDeliveriesSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	secret, err := webhook.NewSecret() // serve refuses the spec's published one
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		up     bool                          // the receiver answers 2xx once up
		events = map[string][]string{}       // session → envelope ids, in arrival order
		seen   = map[string]map[string]int{} // session → envelope id → deliveries
	)
	verifier, err := webhook.NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := verifier.Verify(r.Header, body, time.Now()); err != nil {
			t.Errorf("delivery with a bad signature: %v", err)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev struct {
			SessionID string `json:"session_id"`
			Body      struct {
				ID string `json:"id"`
			} `json:"body"`
		}
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("undecodable event: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if !up {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		if seen[ev.SessionID] == nil {
			seen[ev.SessionID] = map[string]int{}
		}
		if seen[ev.SessionID][ev.Body.ID] == 0 {
			events[ev.SessionID] = append(events[ev.SessionID], ev.Body.ID)
		}
		seen[ev.SessionID][ev.Body.ID]++
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "switchboard.yaml")
	cfg := fmt.Sprintf(`
router:
  lease: 2s
  outbox: {max_attempts: 1000}
webhooks:
  allow_private: true
  backoff: 50ms
  max_backoff: 200ms
  destinations:
    - id: receiver
      url: %s
      secret: %s
      event_types: [message]
`, recv.URL, secret)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	const token = "webhook-crash-token-0123456789abcdef"
	args := []string{"--config", cfgPath, "--data", filepath.Join(dir, "data")}
	gw := startGateway(t, token, args...)
	c := client.New(gw.URL, token, nil)
	ctx := context.Background()
	var sessions []string
	want := map[string][]string{}
	for range 4 {
		s, err := c.CreateSession(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s.ID)
	}
	for i := range 40 {
		sid := sessions[i%len(sessions)]
		key := fmt.Sprint("m", i)
		if _, err := c.Steer(ctx, sid, client.Message{Text: key, IdempotencyKey: key}); err != nil {
			t.Fatal(err)
		}
		want[sid] = append(want[sid], "client:"+key)
	}
	// Let the gateway try (and fail) for a while, then kill it mid-retry.
	time.Sleep(300 * time.Millisecond)
	gw.kill()

	mu.Lock()
	up = true
	mu.Unlock()
	startGateway(t, token, args...)
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := 0
		for _, ids := range events {
			n += len(ids)
		}
		mu.Unlock()
		if n == 40 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of 40 events delivered after the restart", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, sid := range sessions {
		if got := events[sid]; !slices.Equal(got, want[sid]) {
			t.Errorf("session %s: events arrived as %v, want %v (log order)", sid, got, want[sid])
		}
		for id, n := range seen[sid] {
			if n != 1 {
				t.Errorf("session %s: event for %s delivered %d times after the receiver came up", sid, id, n)
			}
		}
	}
}
