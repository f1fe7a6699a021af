package slack

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkLiveReplies runs many streamed replies at once through one
// router and store to the fake Slack, which rate-limits the methods that
// change a message per channel as Slack's Tier 3 does, scaled down ten
// times in time: more than 50 calls of one method in one channel within
// 6 s (Slack: a minute) are answered 429 with Retry-After. streams agents
// answer a mention each, in threads of one channel, each streaming chunks
// chunks 100 ms apart, and ending with the time it wrote its last chunk.
//
// It reports the changes per second the fake accepted, sustained from the
// first reply created to the last final text, the calls it answered 429,
// and the delay from an agent's last chunk to the channel showing its
// final text, p50 and p99. Run it once: go test -run X -bench
// LiveReplies -benchtime 1x ./adapters/slack/
func BenchmarkLiveReplies(b *testing.B) {
	for _, streaming := range []bool{false, true} {
		name := map[bool]string{false: "update", true: "stream"}[streaming]
		b.Run(name, func(b *testing.B) { benchLiveReplies(b, streaming) })
	}
}

func benchLiveReplies(b *testing.B, streaming bool) {
	const (
		streams = 24
		chunks  = 30
		channel = "C0BENCH"
	)
	agent := filepath.Join(b.TempDir(), "agent.sh")
	script := fmt.Sprintf(`#!/bin/sh
cat > /dev/null
echo '@switchboard {"append": "Reply:"}'
i=1
while [ $i -lt %d ]; do
	sleep 0.1
	echo "@switchboard {\"append\": \" chunk $i\"}"
	i=$((i+1))
done
sleep 0.1
echo "@switchboard {\"append\": \" end@$(date +%%s%%N)\"}"
echo '@switchboard {"end": true}'
`, chunks)
	if err := os.WriteFile(agent, []byte(script), 0o755); err != nil {
		b.Fatal(err)
	}
	var (
		delays          []time.Duration
		updates, denied int
		elapsed         time.Duration
	)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		fake := newFakeSlack(b)
		fake.setUsers(map[string]string{"U0ADA": "ada"})
		fake.limit.max, fake.limit.window = 50, 6*time.Second
		var first, last time.Time
		finals := map[string]bool{}
		fake.onText = func(_, ts, text string) {
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			_, at, ok := strings.Cut(text, " end@")
			if !ok || finals[ts] {
				return
			}
			n, err := strconv.ParseInt(at, 10, 64)
			if err != nil {
				return // not the whole of the last chunk yet
			}
			finals[ts], last = true, now
			delays = append(delays, now.Sub(time.Unix(0, n)))
		}
		gw := newGateway(b, fake, fmt.Sprintf(`
router: {max_parallel: %d}
routes:
  - name: slack
    match: {source: slack}
    runtime: exec
    exec: {command: [%q]}
`, streams, agent), nil, func(c *Config) { c.Streaming = &streaming; c.Reactions.Enabled = new(bool) })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = gw.a.Run(ctx) }()
		b.Cleanup(func() { cancel(); <-done })
		b.StartTimer()
		for s := range streams {
			ts := fmt.Sprintf("1700000000.%06d", s+1)
			ev := callback(fmt.Sprintf("EvB%d", s), `{"type":"app_mention","user":"U0ADA","text":"<@U0BOTUSER> go","ts":"`+ts+`","channel":"`+channel+`","event_ts":"`+ts+`"}`)
			if w := post(gw.a, ev); w.Code != http.StatusOK {
				b.Fatalf("mention %d: %d %s", s, w.Code, w.Body)
			}
		}
		deadline := time.Now().Add(2 * time.Minute) // a failure guard
		for {
			fake.mu.Lock()
			n := len(finals)
			fake.mu.Unlock()
			if n == streams {
				break
			}
			if time.Now().After(deadline) {
				fake.mu.Lock()
				for _, m := range fake.msgs {
					if !finals[m.TS] {
						b.Logf("not final: %s (streaming %v) ends %q", m.TS, m.Streaming, m.Text[max(0, len(m.Text)-40):])
					}
				}
				fake.mu.Unlock()
				b.Fatalf("%d of %d replies reached their final text within the guard", n, streams)
			}
			time.Sleep(10 * time.Millisecond)
		}
		b.StopTimer()
		fake.mu.Lock()
		elapsed += last.Sub(first)
		for _, c := range fake.changes {
			if slices.Contains([]string{"chat.update", "chat.appendStream", "chat.stopStream"}, c.method) {
				updates++
			}
		}
		updates -= fake.limited
		denied += fake.limited
		if texts := len(fake.msgs); texts != streams {
			b.Errorf("the fake holds %d messages, want %d (one per stream)", texts, streams)
		}
		fake.mu.Unlock()
	}
	slices.Sort(delays)
	pct := func(p float64) float64 { return delays[int(p*float64(len(delays)-1))].Seconds() * 1000 }
	b.ReportMetric(float64(updates)/elapsed.Seconds(), "updates/s")
	b.ReportMetric(float64(denied)/float64(b.N), "429s/op")
	b.ReportMetric(pct(0.50), "final-p50-ms")
	b.ReportMetric(pct(0.99), "final-p99-ms")
}
