package runtime

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"time"
)

// The exec runtime's stream protocol
//
// An agent run by the exec runtime may stream its answer: the channel then
// shows one reply that grows as the agent writes and settles when it is
// done (see Exec). A line of stdout that starts with StreamPrefix is a
// directive, a JSON object, rather than text:
//
//	@switchboard {"append": "Looking at the diff"}   the reply grows by this text
//	@switchboard {"text": "Reading 3 files…"}        the reply's whole text becomes this
//	@switchboard {"end": true}                       the reply is finished
//
// The first "append" or "text" starts a reply; "end" finishes it, and the
// next "append" or "text" starts another (at most MaxStreams a turn). A reply still open when the
// command exits is finished with its text then. Every other line is plain
// text, as without the protocol: it becomes one more message, after the
// replies, when the command exits (so an agent that only prints still
// answers with one message, and one that streams may print a closing
// note). A directive that is not valid JSON of this shape is plain text.
//
// The gateway records a streamed reply as a partial message and edits of
// it (see envelope.RefPartial), at most one every StreamInterval; the
// channels show it as one message that changes, as often as each allows.

// StreamPrefix starts a directive line of the exec runtime's stream
// protocol.
const StreamPrefix = "@switchboard "

// StreamInterval is the least time between two updates of a streamed reply
// that the exec runtime hands the router: quicker updates collapse into the
// latest.
const StreamInterval = 50 * time.Millisecond

// MaxStreams bounds the streamed replies of one turn: a directive that
// would start one more is plain text.
const MaxStreams = 64

// directive is one line of the stream protocol.
type directive struct {
	Append *string `json:"append"`
	Text   *string `json:"text"`
	End    bool    `json:"end"`
}

// parseDirective returns the directive of line (without its newline), or
// false when line is plain text.
func parseDirective(line []byte) (directive, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(StreamPrefix))
	if !ok {
		return directive{}, false
	}
	var d directive
	dec := json.NewDecoder(bytes.NewReader(rest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil || dec.More() {
		return directive{}, false
	}
	n := 0
	for _, set := range []bool{d.Append != nil, d.Text != nil, d.End} {
		if set {
			n++
		}
	}
	return d, n == 1
}

// streamWriter is the exec runtime's stdout: it keeps plain text in plain
// and follows the stream protocol's directives, handing updates of the
// open reply to emit (at most one per interval, the latest text; finished
// replies in order). Write is called by one goroutine (the command's stdout
// copier) and never waits for emit: a goroutine of the writer's own, started
// with the first reply and stopped by close, calls emit, so that a slow
// emit (the store) never holds the copier back. Were it held back, the
// command could exit with its last lines unread, and Cmd.WaitDelay would
// cut them off. close, after the copier is done, flushes, waits for the
// emitter and returns the replies emit was not given.
type streamWriter struct {
	plain    *headBuffer
	max      int // bounds a reply's text and a pending line
	emit     func(Output) error
	interval time.Duration

	line []byte // the incomplete last line
	n    int    // replies started
	text strings.Builder
	open bool

	mu      sync.Mutex
	queue   []Output // to emit, in order: finished replies, then at most the open reply's latest text
	last    time.Time
	rest    []Output // finished replies when emit is nil or failed
	failed  bool     // emit failed: the rest go through rest
	closing bool
	wake    chan struct{} // a new output is queued (capacity 1)
	done    chan struct{} // closed when the emitter returns; nil before it starts
}

func (w *streamWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(w.line)+len(p) > w.max {
				// Too long for a directive: plain text.
				w.plainLine(w.line, p)
				w.line = w.line[:0]
			} else {
				w.line = append(w.line, p...)
			}
			break
		}
		w.lineDone(append(w.line, p[:i]...))
		w.line = w.line[:0]
		p = p[i+1:]
	}
	return n, nil
}

// plainLine writes parts to the plain text.
func (w *streamWriter) plainLine(parts ...[]byte) {
	for _, b := range parts {
		_, _ = w.plain.Write(b)
	}
}

// lineDone handles one complete line.
func (w *streamWriter) lineDone(line []byte) {
	d, ok := parseDirective(bytes.TrimSuffix(line, []byte("\r")))
	if ok && !w.open && !d.End && w.n >= MaxStreams {
		ok = false // no more replies: the rest is plain text
	}
	if !ok {
		w.plainLine(line, []byte("\n"))
		return
	}
	switch {
	case d.End:
		w.finish()
		return
	case !w.open:
		w.open = true
		w.n++
		w.text.Reset()
	}
	if d.Text != nil {
		w.text.Reset()
		w.text.WriteString(*d.Text)
	} else {
		w.text.WriteString(*d.Append)
	}
	w.update(Output{Stream: w.n, Partial: true, Text: w.current()})
}

// current is the open reply's text as handed on: trimmed, as plain output
// is, and bounded.
func (w *streamWriter) current() string {
	return Truncate(strings.ToValidUTF8(strings.TrimSpace(w.text.String()), "\uFFFD"), w.max)
}

// update queues the open reply's latest text in place of an earlier
// one not yet emitted.
func (w *streamWriter) update(o Output) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.emit == nil || w.failed {
		return
	}
	w.queueLocked(o)
}

// queueLocked queues o, superseding the open reply's text queued before
// it, and wakes the emitter (starting it the first time). w.mu is held.
func (w *streamWriter) queueLocked(o Output) {
	if n := len(w.queue); n > 0 && w.queue[n-1].Partial && w.queue[n-1].Stream == o.Stream {
		w.queue[n-1] = o
	} else {
		w.queue = append(w.queue, o)
	}
	if w.done == nil {
		w.wake, w.done = make(chan struct{}, 1), make(chan struct{})
		go w.run()
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run emits the queued outputs in order, an update of the open reply no
// sooner than interval after the previous emit, until close.
func (w *streamWriter) run() {
	defer close(w.done)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		w.mu.Lock()
		if len(w.queue) == 0 {
			closing := w.closing
			w.mu.Unlock()
			if closing {
				return
			}
			<-w.wake
			continue
		}
		o := w.queue[0]
		if wait := w.interval - time.Since(w.last); o.Partial && wait > 0 && !w.closing {
			w.mu.Unlock()
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-timer.C:
			case <-w.wake: // the reply finished, or close: look again
				timer.Stop()
			}
			continue
		}
		w.queue = w.queue[1:]
		w.mu.Unlock()
		err := w.emit(o)
		w.mu.Lock()
		w.last = time.Now()
		if err != nil {
			// The finished replies not emitted go back through Run.
			w.failed = true
			for _, q := range append([]Output{o}, w.queue...) {
				if !q.Partial {
					w.rest = append(w.rest, q)
				}
			}
			w.queue = nil
		}
		w.mu.Unlock()
	}
}

// finish ends the open reply with its text, if one is open.
func (w *streamWriter) finish() {
	if !w.open {
		return
	}
	w.open = false
	o := Output{Stream: w.n, Text: w.current()}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.emit == nil || w.failed {
		w.rest = append(w.rest, o)
		return
	}
	// The final text supersedes an update of the reply not yet emitted.
	if n := len(w.queue); n > 0 && w.queue[n-1].Partial && w.queue[n-1].Stream == o.Stream {
		w.queue = w.queue[:n-1]
	}
	w.queueLocked(o)
}

// close ends the stream when the command has exited: a pending line is
// handled, an open reply finished, and what is queued emitted. It returns
// the finished replies emit was not given, in order.
func (w *streamWriter) close() []Output {
	if len(w.line) > 0 {
		w.lineDone(w.line)
		w.line = nil
	}
	w.finish()
	w.mu.Lock()
	w.closing = true
	done := w.done
	if done != nil {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	w.mu.Unlock()
	if done != nil {
		<-done
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rest
}
