package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/adapters/slack"
	"github.com/switchboardhq/switchboard/client"
)

// TestLiveReplySurvivesKill streams a reply into a Slack thread with the
// real binary and kills it with SIGKILL mid-stream: an exec agent streams
// 40 chunks 100 ms apart in answer to a mention; once the fake Slack Web
// API has seen the reply created and changed at least once, the gateway is
// killed and started again on the same SQLite file. The turn runs again
// (the agent is run a second time and streams again, under the same output
// ids), and the thread ends with exactly one message of the bot, whose text
// is the agent's final text: no second message, no text streamed twice.
func TestLiveReplySurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const (
		token    = "live-reply-test-token-0123456789abcdef"
		botToken = "xoxb-live-reply-test"
		secret   = "live-reply-test-signing-secret"
		channel  = "C0LIVE"
		root     = "1700000000.000100"
		chunks   = 40
	)
	ctx := context.Background()
	fake := newSlackAPI(t, botToken)
	dir := t.TempDir()

	// The agent counts its runs in a file, then streams.
	runs := filepath.Join(dir, "runs")
	var want strings.Builder
	want.WriteString("Reply:")
	for i := 1; i <= chunks; i++ {
		fmt.Fprintf(&want, " chunk %d", i)
	}
	agent := filepath.Join(dir, "agent.sh")
	script := fmt.Sprintf(`#!/bin/sh
cat > /dev/null
echo run >> %q
echo '@switchboard {"append": "Reply:"}'
i=1
while [ $i -le %d ]; do
	sleep 0.1
	echo "@switchboard {\"append\": \" chunk $i\"}"
	i=$((i+1))
done
echo '@switchboard {"end": true}'
`, runs, chunks)
	if err := os.WriteFile(agent, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "switchboard.yaml")
	cfg := fmt.Sprintf(`
adapters:
  slack:
    bot_token: %s
    signing_secret: %s
    api_url: %s/api/
routes:
  - name: slack
    match: {source: slack}
    session: {by: conversation}
    runtime: exec
    exec: {command: [%q], timeout: 1m}
`, botToken, secret, fake.srv.URL, agent)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", cfgPath, "--data", filepath.Join(dir, "data")}

	gw := startGateway(t, token, args...)
	fake.write(channel, "", root, "U0ADA", "<@U0BOT> explain the build")
	event := fmt.Sprintf(`{"token":"tok","team_id":%q,"api_app_id":"A0LIVE","type":"event_callback","event_id":"EvLIVE1","event_time":1700000000,`+
		`"event":{"type":"app_mention","user":"U0ADA","text":"<@U0BOT> explain the build","ts":%q,"channel":%q,"event_ts":%[2]q}}`, fake.team, root, channel)
	if err := postSlackEvent(gw.URL, secret, []byte(event)); err != nil {
		t.Fatal(err)
	}

	// Mid-stream: the reply is created and changed at least once.
	waitUntil(t, 30*time.Second, "the reply created and changed once", func() bool {
		return len(fake.botMessages(channel)) > 0 && fake.count("chat.update", "chat.appendStream", "chat.stopStream") > 0
	})
	gw.kill()
	before := fake.botMessages(channel)
	if len(before) != 1 || before[0].Text == want.String() {
		t.Fatalf("when killed the channel holds %+v, want one reply not yet finished", before)
	}
	t.Logf("killed with the reply at %q (streaming %v)", before[0].Text, before[0].Streaming)

	gw = startGateway(t, token, args...)
	waitUntil(t, 60*time.Second, "the final text in the channel", func() bool {
		ms := fake.botMessages(channel)
		return len(ms) > 0 && ms[len(ms)-1].Text == want.String()
	})
	// Nothing is left to deliver, so nothing more will change.
	c := client.New(gw.URL, token, nil)
	waitUntil(t, 30*time.Second, "the outbox to settle", func() bool {
		var pending struct {
			Deliveries []struct{} `json:"deliveries"`
		}
		return getJSON(ctx, c.BaseURL()+"/v3/deliveries?status=pending", token, &pending) == nil && len(pending.Deliveries) == 0
	})

	b, err := os.ReadFile(runs)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "run"); n != 2 {
		t.Errorf("the agent ran %d times, want 2 (the turn runs again after the kill)", n)
	}
	ms := fake.botMessages(channel)
	if len(ms) != 1 {
		t.Fatalf("the channel holds %d messages of the bot, want exactly 1: %+v", len(ms), ms)
	}
	if ms[0].Thread != root || ms[0].Text != want.String() || ms[0].Streaming {
		t.Errorf("the reply is %+v, want in thread %s, not streaming, with text %q", ms[0], root, want.String())
	}
	if n := fake.count("chat.postMessage", "chat.startStream"); n != 1 {
		t.Errorf("%d messages created, want 1", n)
	}
	t.Logf("one reply, %d changes (chat.update %d, chat.appendStream %d, chat.stopStream %d)",
		fake.count("chat.update", "chat.appendStream", "chat.stopStream"),
		fake.count("chat.update"), fake.count("chat.appendStream"), fake.count("chat.stopStream"))
}

// postSlackEvent delivers an Events API callback as Slack does: signed
// with X-Slack-Signature over the timestamp and body.
func postSlackEvent(base, secret string, body []byte) error {
	stamp := strconv.FormatInt(time.Now().Unix(), 10)
	req, err := http.NewRequest(http.MethodPost, base+"/hooks/slack/events", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Slack-Request-Timestamp", stamp)
	req.Header.Set("X-Slack-Signature", slack.Sign([]byte(secret), stamp, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("slack event: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		answer, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("slack event: %s %q, want 200", resp.Status, answer)
	}
	return nil
}

// waitUntil polls cond until it holds, failing the test after guard.
func waitUntil(t *testing.T, guard time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", guard, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
