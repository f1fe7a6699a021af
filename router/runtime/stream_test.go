//go:build unix

package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/router/runtime"
	"github.com/switchboardhq/switchboard/store"
)

// emitted records what a run emits.
type emitted struct {
	mu   sync.Mutex
	outs []runtime.Output
	fail error
}

func (e *emitted) emit(o runtime.Output) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail != nil {
		return e.fail
	}
	e.outs = append(e.outs, o)
	return nil
}

func (e *emitted) all() []runtime.Output {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]runtime.Output(nil), e.outs...)
}

// TestExecStreams runs an agent that streams two replies with the line
// protocol and prints a closing note: each reply's updates reach Emit in
// order, growing, partial, then once finished; the note is returned.
func TestExecStreams(t *testing.T) {
	agent := script(t, `cat >/dev/null
for i in 1 2 3 4 5 6 7 8 9 10; do
  echo "@switchboard {\"append\": \"chunk $i. \"}"
  sleep 0.02
done
echo '@switchboard {"end": true}'
echo 'Closing note,'
echo '@switchboard {"text": "Second reply"}'
echo '@switchboard not json at all'
echo '@switchboard {"append": "x", "end": true}'
printf 'in plain text.'`)
	e := newExec(t, runtime.ExecConfig{Command: []string{agent}})
	var em emitted
	out, err := run(t, context.Background(), e, runtime.Turn{SessionID: "ses_1", Records: []store.Record{record(1, "hi")}, Emit: em.emit})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := em.all()
	var first []runtime.Output
	for _, o := range got {
		if o.Stream == 1 {
			first = append(first, o)
		}
	}
	want1 := "chunk 1. chunk 2. chunk 3. chunk 4. chunk 5. chunk 6. chunk 7. chunk 8. chunk 9. chunk 10." // trimmed
	if len(first) < 2 {
		t.Fatalf("reply 1: %d updates %+v, want partial ones and the final one", len(first), first)
	}
	prev := ""
	for i, o := range first[:len(first)-1] {
		if !o.Partial || !strings.HasPrefix(o.Text, prev) || !strings.HasPrefix(want1, o.Text) {
			t.Errorf("reply 1 update %d: %+v, want a partial text growing towards the final one", i, o)
		}
		prev = o.Text
	}
	if last := first[len(first)-1]; last.Partial || last.Text != want1 {
		t.Errorf("reply 1 ends with %+v, want the final text %q", last, want1)
	}
	if len(first) > 11 {
		t.Errorf("reply 1: %d updates for 10 chunks", len(first))
	}
	// Reply 2 is still open at exit: finished then, with the text set.
	if l := got[len(got)-1]; l.Stream != 2 || l.Partial || l.Text != "Second reply" {
		t.Errorf("last emitted %+v, want reply 2 finished with its text", l)
	}
	// Plain lines and directives that are not ones are the closing note.
	if len(out) != 1 || out[0].Stream != 0 ||
		out[0].Text != "Closing note,\n@switchboard not json at all\n@switchboard {\"append\": \"x\", \"end\": true}\nin plain text." {
		t.Errorf("returned %+v, want the plain text as one message", out)
	}
}

// TestExecStreamWithoutEmit checks that without Emit (or when it fails)
// finished replies are returned from Run, and that an agent that only
// prints answers with one message, as before the protocol.
func TestExecStreamWithoutEmit(t *testing.T) {
	agent := script(t, `cat >/dev/null
echo '@switchboard {"append": "Hello"}'
echo '@switchboard {"append": ", world"}'
echo '@switchboard {"end": true}'
echo '@switchboard {"text": "Two"}'`)
	e := newExec(t, runtime.ExecConfig{Command: []string{agent}})
	turn := runtime.Turn{SessionID: "ses_1", Records: []store.Record{record(1, "hi")}}
	out, err := run(t, context.Background(), e, turn)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := []runtime.Output{{Stream: 1, Text: "Hello, world"}, {Stream: 2, Text: "Two"}}
	if len(out) != 2 || out[0] != want[0] || out[1] != want[1] {
		t.Errorf("Run without Emit = %+v, want %+v", out, want)
	}

	em := emitted{fail: errors.New("store down")}
	turn.Emit = em.emit
	out, err = run(t, context.Background(), e, turn)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(out) != 2 || out[0] != want[0] || out[1] != want[1] {
		t.Errorf("Run with a failing Emit = %+v, want %+v", out, want)
	}

	plain := newExec(t, runtime.ExecConfig{Command: []string{script(t, "cat >/dev/null; echo line one; echo line two")}})
	var none emitted
	turn.Emit = none.emit
	out, err = run(t, context.Background(), plain, turn)
	if err != nil || len(out) != 1 || out[0] != (runtime.Output{Text: "line one\nline two"}) {
		t.Errorf("a printing agent: %+v, %v; want one message", out, err)
	}
	if got := none.all(); len(got) != 0 {
		t.Errorf("a printing agent emitted %+v", got)
	}
}

// TestExecStreamWithASlowEmit runs an agent that streams 40 chunks and
// exits while Emit is still slow at taking them (a store under load): Emit
// must not hold the command's stdout back, or the command's last lines
// would be cut off when it exits (Cmd.WaitDelay) and the reply finished
// with a text missing its end. The reply ends with every chunk.
func TestExecStreamWithASlowEmit(t *testing.T) {
	agent := script(t, `cat >/dev/null
i=1
while [ $i -le 40 ]; do
  echo "@switchboard {\"append\": \" $i\"}"
  i=$((i+1))
  sleep 0.02
done
echo '@switchboard {"end": true}'`)
	e := newExec(t, runtime.ExecConfig{Command: []string{agent}})
	var em emitted
	slow := func(o runtime.Output) error {
		time.Sleep(150 * time.Millisecond) // one per line would outlast the 2 s WaitDelay
		return em.emit(o)
	}
	if _, err := run(t, context.Background(), e, runtime.Turn{SessionID: "ses_1", Records: []store.Record{record(1, "hi")}, Emit: slow}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	var want strings.Builder
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&want, " %d", i)
	}
	got := em.all()
	if len(got) == 0 {
		t.Fatal("nothing emitted")
	}
	if last := got[len(got)-1]; last.Partial || last.Text != strings.TrimSpace(want.String()) {
		t.Errorf("the reply ends with %+v, want the final text %q (trimmed)", last, want.String())
	}
}

// TestExecStreamsAreBounded checks that a turn streams at most MaxStreams
// replies: further directives are plain text.
func TestExecStreamsAreBounded(t *testing.T) {
	agent := script(t, fmt.Sprintf(`cat >/dev/null
i=0
while [ $i -lt %d ]; do
  echo '@switchboard {"text": "r"}'
  echo '@switchboard {"end": true}'
  i=$((i+1))
done`, runtime.MaxStreams+3))
	e := newExec(t, runtime.ExecConfig{Command: []string{agent}})
	out, err := run(t, context.Background(), e, runtime.Turn{SessionID: "ses_1", Records: []store.Record{record(1, "hi")}})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	streams := 0
	for _, o := range out {
		if o.Stream > 0 {
			streams++
		}
	}
	if streams != runtime.MaxStreams || out[len(out)-1].Stream != 0 || !strings.Contains(out[len(out)-1].Text, `@switchboard {"text": "r"}`) {
		t.Errorf("%d streamed replies and then %+v, want %d and the rest as plain text", streams, out[len(out)-1], runtime.MaxStreams)
	}
}
