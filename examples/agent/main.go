// Command agent is a tiny example agent for Switchboard's exec runtime, used
// by the README's quick start.
//
// The gateway runs it once per turn of a session. It reads the turn's
// envelopes as JSON on stdin (one envelope object, or an array of them when
// several messages were collected into one turn) and prints a reply on
// stdout, which the gateway appends to the session as the agent's output and
// routes back to the conversation. It echoes what it was asked and the refs
// it saw, and ends with a one-line summary.
//
// Try it without a gateway:
//
//	echo '{"id":"client:1","source":"client","kind":"message",
//	  "actor":{"id":"client:ada","display":"Ada","type":"human"},
//	  "conversation":{"source":"client","ref":""},"text":"also check the CI config",
//	  "refs":{"pr":"42"},"ts":"2026-06-18T12:00:00Z","raw":{}}' | go run ./examples/agent
//
// It streams its answer, a line at a time, with the exec runtime's line
// protocol (router/runtime/stream.go): each line it prints as
//
//	@switchboard {"append": "…"}
//
// grows one reply, which the channels show as one message that changes
// (Slack streams it, GitHub and Jira edit the comment, email gets the
// final text once). Set AGENT_STREAM=0 to print the answer plainly, which
// the gateway posts as one message.
//
// A real agent would do the work here, and could use SWITCHBOARD_URL and
// SWITCHBOARD_TOKEN to read the session's log or post progress with the API.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
)

// maxInput bounds what the agent reads from stdin.
const maxInput = 16 << 20

func main() {
	input, err := io.ReadAll(io.LimitReader(os.Stdin, maxInput))
	if err != nil {
		fmt.Fprintln(os.Stderr, "agent: read stdin:", err)
		os.Exit(1)
	}
	envs, err := parse(input)
	if err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
	answer := reply(os.Getenv("SWITCHBOARD_SESSION_ID"), envs)
	if os.Getenv("AGENT_STREAM") == "0" {
		fmt.Print(answer)
		return
	}
	if err := stream(os.Stdout, answer, lineDelay); err != nil {
		fmt.Fprintln(os.Stderr, "agent: write:", err)
		os.Exit(1)
	}
}

// lineDelay is how long the agent "thinks" between two lines of its answer.
const lineDelay = 300 * time.Millisecond

// stream writes answer to w a line at a time, delay apart, as directives of
// the exec runtime's stream protocol.
func stream(w io.Writer, answer string, delay time.Duration) error {
	for i, line := range strings.SplitAfter(answer, "\n") {
		if line == "" {
			continue
		}
		if i > 0 {
			time.Sleep(delay)
		}
		chunk, err := json.Marshal(map[string]string{"append": line})
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "@switchboard %s\n", chunk); err != nil {
			return err
		}
	}
	return nil
}

// parse decodes one envelope or an array of them.
func parse(input []byte) ([]envelope.Envelope, error) {
	input = bytes.TrimSpace(input)
	if len(input) == 0 {
		return nil, fmt.Errorf("no input: expected an envelope as JSON on stdin")
	}
	if input[0] == '[' {
		var envs []envelope.Envelope
		if err := json.Unmarshal(input, &envs); err != nil {
			return nil, fmt.Errorf("decode envelopes: %w", err)
		}
		if len(envs) == 0 {
			return nil, fmt.Errorf("no envelopes in the input")
		}
		return envs, nil
	}
	var env envelope.Envelope
	if err := json.Unmarshal(input, &env); err != nil {
		return nil, fmt.Errorf("decode envelope: %w", err)
	}
	return []envelope.Envelope{env}, nil
}

// reply is the agent's answer to envs.
func reply(sessionID string, envs []envelope.Envelope) string {
	var b strings.Builder
	who := name(envs[len(envs)-1].Actor)
	fmt.Fprintf(&b, "Hi %s! ", who)
	if len(envs) == 1 {
		fmt.Fprintf(&b, "You %s\n", describe(envs[0]))
	} else {
		fmt.Fprintf(&b, "I got %d messages together:\n", len(envs))
		for _, e := range envs {
			fmt.Fprintf(&b, "  - %s %s\n", name(e.Actor), describe(e))
		}
	}

	// The refs of all the messages, later ones winning.
	refs := envelope.Refs{}
	for _, e := range envs {
		for k, v := range e.Refs {
			refs[k] = v
		}
	}
	if len(refs) > 0 {
		parts := make([]string, 0, len(refs))
		for _, k := range refs.Keys() {
			parts = append(parts, k+"="+refs[k])
		}
		fmt.Fprintf(&b, "Context I saw: %s\n", strings.Join(parts, ", "))
	} else {
		b.WriteString("No refs came with it (try adding a repo or a PR).\n")
	}

	words := 0
	for _, e := range envs {
		words += len(strings.Fields(e.Text))
	}
	summary := fmt.Sprintf("Summary: %d message%s, %d word%s", len(envs), plural(len(envs)), words, plural(words))
	if sessionID != "" {
		summary += " in session " + sessionID
	}
	b.WriteString(summary + ". I'm only an example agent, so that's all I do.\n")
	return b.String()
}

func name(a envelope.Actor) string {
	if a.Display != "" {
		return a.Display
	}
	if a.ID != "" {
		return a.ID
	}
	return "there"
}

// describe says what e did, quoting its text.
func describe(e envelope.Envelope) string {
	switch e.Kind {
	case envelope.KindEdit:
		return fmt.Sprintf("edited a message to: %q", e.Text)
	case envelope.KindDelete:
		return "deleted a message"
	case envelope.KindSystem:
		return fmt.Sprintf("noted: %q", e.Text)
	}
	return fmt.Sprintf("asked: %q", e.Text)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
