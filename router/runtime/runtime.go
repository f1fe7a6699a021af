// Package runtime holds the session runtimes: how the messages of a session
// reach its agent, and how the agent's answers come back.
//
// The router hands a Runtime one Turn at a time per session: the inbound
// records it has to act on, in log order. What a runtime returns from Run is
// appended to the session's log by the router as the agent's output.
//
//   - Exec runs a command for each turn, the envelopes as JSON on its stdin,
//     and returns what it prints as the output.
//   - HTTP forwards each envelope to an upstream agent service that speaks
//     Switchboard's Steer API; the upstream answers later, asynchronously, by
//     delivering signed Events to HookHandler (POST /hooks/sessions).
//   - The inbox runtime needs no code here: the session's log is the queue
//     that agents read through the API.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/switchboardhq/switchboard/store"
)

// Turn is one unit of work for a session: one or more inbound records
// (several when the route's busy policy is "collect").
type Turn struct {
	SessionID string
	// Records are the inbound records of the turn, in log order; each
	// Envelope holds the message. A turn has at least one record.
	Records []store.Record
	// Token is a session-scoped API token for the agent (the exec runtime
	// passes it as SWITCHBOARD_TOKEN).
	Token string
	// Emit, when not nil, takes outputs while the turn runs: the updates of
	// a streamed reply, in order, and each reply once finished. A runtime
	// that streams calls it from one goroutine at a time and never after
	// Run returns; what it gave Emit it does not return from Run. An error
	// means the update was not stored: the runtime stops emitting and
	// returns the finished replies from Run instead. Nil: Run returns
	// every finished reply and streams nothing.
	Emit func(Output) error
}

// Output is something the agent said in answer to a turn.
type Output struct {
	Text string
	// Stream, when not 0, numbers the streamed reply (from 1, per turn)
	// that Text is the whole text of so far: the first Output of a stream
	// starts the reply, later ones replace its text, and the one that is
	// not Partial finishes it.
	Stream int
	// Partial marks an unfinished text of a streamed reply.
	Partial bool
}

// Runtime runs turns.
type Runtime interface {
	// Run blocks until the turn is handled or ctx ends. ctx is cancelled for
	// the "interrupt" busy policy: Run must then stop promptly and return an
	// error wrapping ctx.Err(). The outputs returned are appended by the
	// router; runtimes that answer asynchronously (http) return none.
	//
	// Implementations are safe for concurrent use by different sessions; the
	// router never runs two turns of one session at once.
	Run(ctx context.Context, t Turn) ([]Output, error)
}

// RunFunc adapts a function to Runtime, like http.HandlerFunc.
type RunFunc func(ctx context.Context, t Turn) ([]Output, error)

// Run calls f(ctx, t).
func (f RunFunc) Run(ctx context.Context, t Turn) ([]Output, error) { return f(ctx, t) }

// Truncate returns text when it is at most max bytes long (or max is 0 or
// less), else its head, cut on a rune boundary, followed by a note saying
// that it was cut: max bytes in all.
func Truncate(text string, max int) string {
	if max <= 0 || len(text) <= max {
		return text
	}
	return cut(text, max)
}

// cut is text's head and a note that it was truncated at max bytes, max
// bytes in all (text with the note when text is shorter); the head alone,
// cut to max, when the note does not fit.
func cut(text string, max int) string {
	note := fmt.Sprintf("\n\n[output truncated at %d bytes]", max)
	keep := max - len(note)
	if keep <= 0 {
		keep, note = max, ""
	}
	if keep < len(text) {
		for keep > 0 && !utf8.RuneStart(text[keep]) {
			keep-- // a rune that would not fit
		}
		text = text[:keep]
	}
	return text + note
}

// errNoRecords is returned for a turn without records, a caller bug.
var errNoRecords = errors.New("runtime: turn has no records")

// Compile-time interface checks.
var (
	_ Runtime = RunFunc(nil)
	_ Runtime = (*Exec)(nil)
	_ Runtime = (*HTTP)(nil)
)
