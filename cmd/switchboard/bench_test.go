package main

import (
	"bytes"
	"context"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard/internal/testenv"
)

// TestBenchE2E runs bench --e2e against real gateway processes: one on
// SQLite, and two replicas sharing one PostgreSQL store, where the bench
// sends, follows and answers across both. Every message must be sent,
// answered and delivered to the webhook receiver, and the store's cost
// and the gateways' CPU read from both gateways' metrics.
func TestBenchE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const token = "bench-test-token-0123456789abcdefghij"
	t.Setenv("SWITCHBOARD_TOKEN", token)
	cases := map[string]func(t *testing.T) []string{
		"sqlite": func(t *testing.T) []string {
			return []string{startGateway(t, token, "--config", "../../examples/bench.yaml", "--data", t.TempDir()).URL}
		},
		"postgres-two-replicas": func(t *testing.T) []string {
			dsn := testenv.Postgres(t)
			a := startGateway(t, token, "--config", "../../examples/bench.yaml", "--store", dsn)
			b := startGateway(t, token, "--config", "../../examples/bench.yaml", "--store", dsn)
			return []string{a.URL, b.URL}
		},
	}
	for _, name := range []string{"sqlite", "postgres-two-replicas"} {
		t.Run(name, func(t *testing.T) {
			urls := cases[name](t)
			var out, errOut bytes.Buffer
			err := bench(context.Background(), []string{"--e2e", "--url", strings.Join(urls, ","),
				"--rate", "100", "--duration", "1s", "--sessions", "4", "--webhooks", "2"}, &out, &errOut)
			if err != nil {
				t.Fatalf("bench: %v\n%s%s", err, out.String(), errOut.String())
			}
			got := out.String()
			if want := "messages:   100 sent, 100 answered"; !strings.Contains(got, want) {
				t.Errorf("bench printed\n%s\nwant %q", got, want)
			}
			// Two destinations, each getting the message's and the answer's event.
			if want := "webhook:    400 events received"; !strings.Contains(got, want) {
				t.Errorf("bench printed\n%s\nwant %q", got, want)
			}
			m := regexp.MustCompile(`store: +([0-9.]+) commits, ([0-9.]+) rows written per round trip`).FindStringSubmatch(got)
			if m == nil {
				t.Fatalf("bench printed no store cost:\n%s", got)
			}
			if rows, _ := strconv.ParseFloat(m[2], 64); rows < 2 {
				t.Errorf("store cost %s rows per round trip: a round trip writes at least its message and answer", m[2])
			}
			// SQLite's one writer counts its thread's CPU time (on Linux);
			// PostgreSQL's work is in the server, which the gateway cannot
			// time.
			w := regexp.MustCompile(`writer: +([0-9]+)µs of CPU per round trip`).FindStringSubmatch(got)
			switch {
			case name == "sqlite" && runtime.GOOS == "linux" && w == nil:
				t.Errorf("bench printed no writer CPU:\n%s", got)
			case name == "sqlite" && w != nil:
				// At least a commit's worth: appending and delivering a
				// message is not free.
				if us, _ := strconv.Atoi(w[1]); us < 10 {
					t.Errorf("writer CPU %sµs per round trip: too little to be the writer's", w[1])
				}
			case name != "sqlite" && w != nil:
				t.Errorf("bench printed a writer CPU for PostgreSQL:\n%s", got)
			}
			// The gateways' processes (from their metrics) and the bench's
			// own, on Linux: a round trip costs each some CPU.
			if runtime.GOOS == "linux" {
				c := regexp.MustCompile(`cpu: +([0-9]+)µs in the gateway, ([0-9]+)µs in the bench per round trip`).FindStringSubmatch(got)
				if c == nil {
					t.Fatalf("bench printed no CPU per round trip:\n%s", got)
				}
				for i, side := range []string{"gateway", "bench"} {
					if us, _ := strconv.Atoi(c[i+1]); us < 10 {
						t.Errorf("%sµs of CPU in the %s per round trip: too little for its work", c[i+1], side)
					}
				}
				// The gateways run here too: the machine was busy with both, and
				// the rest is the database's (PostgreSQL's, on this machine)
				// or little.
				mc := regexp.MustCompile(`machine: +([0-9]+)% of ([0-9]+) processors busy, ([0-9]+)µs per round trip .*in neither`).FindStringSubmatch(got)
				if mc == nil {
					t.Fatalf("bench printed no machine load, or not the CPU outside the gateways and the bench, for gateways on this machine:\n%s", got)
				}
				if pct, _ := strconv.Atoi(mc[1]); pct < 1 || pct > 100 {
					t.Errorf("machine %s%% busy: not a share of a machine that ran the run", mc[1])
				}
				if cpus, _ := strconv.Atoi(mc[2]); cpus < 1 {
					t.Errorf("machine of %s processors", mc[2])
				}
			}
		})
	}
}

// TestE2ERoute: by default the bench's answers cross to another gateway
// than the session's stream, and with --affinity every part of a session's
// work goes through the gateway that follows it.
func TestE2ERoute(t *testing.T) {
	crossing := e2eRoute{gateways: 2, sessions: 3}
	affine := e2eRoute{gateways: 2, sessions: 3, affinity: true}
	for session := range 3 {
		if got, want := crossing.answer(session), (session+1)%2; got != want {
			t.Errorf("crossing: session %d answered through gateway %d, want %d", session, got, want)
		}
		if affine.answer(session) != affine.follow(session) {
			t.Errorf("affinity: session %d followed on gateway %d, answered through %d", session, affine.follow(session), affine.answer(session))
		}
	}
	// Message n goes to session n mod 3: with 3 sessions over 2 gateways,
	// message 3 (session 0) is sent to gateway 1 by default, to session
	// 0's gateway 0 with affinity.
	for n := range 12 {
		if got, want := crossing.steer(n), n%2; got != want {
			t.Errorf("crossing: message %d sent to gateway %d, want %d", n, got, want)
		}
		if got, want := affine.steer(n), affine.follow(n%3); got != want {
			t.Errorf("affinity: message %d (session %d) sent to gateway %d, want %d", n, n%3, got, want)
		}
	}
	if one := (e2eRoute{gateways: 1, sessions: 4}); one.answer(3) != 0 || one.steer(7) != 0 {
		t.Errorf("one gateway: answer through %d, steer to %d, want 0 and 0", one.answer(3), one.steer(7))
	}
}
