package router

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"

	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/router/runtime"
	"github.com/switchboardhq/switchboard/store"
)

// replies appends the outputs of one turn to the session's log: whole
// messages, and streamed replies as a partial message and edits of it
// (runtime.Output.Stream). With the route's progress message it first
// posts the placeholder, which the turn's first reply then edits into the
// answer.
//
// Every envelope id is derived from the turn (key: the runtime and the
// turn's last seq) and the output's place in it, so that a turn run again
// after a crash stores what it stored before once: a repeated id with
// other text (ErrConflict) counts as stored.
type replies struct {
	r         *Router
	lost      <-chan struct{}
	rt        *config.Route
	sessionID string
	key       string
	last      int64 // the turn's last seq, for messages

	mu          sync.Mutex
	placeholder *reply // the progress message, until a reply takes it
	streams     map[int]*reply
}

// reply is a message of the turn that later outputs edit.
type reply struct {
	id    string                // its envelope id
	conv  envelope.Conversation // where it and its edits go
	edits int
	// open is set while the reply is partial; text is its last text.
	open bool
	text string
}

// begin posts the progress placeholder when the route asks for one.
func (p *replies) begin(ctx context.Context) error {
	if p.rt.Progress != config.ProgressMessage {
		return nil
	}
	env := p.envelope(p.key+":progress", envelope.KindMessage, p.rt.ProgressText, nil)
	env.Refs = env.Refs.Set(envelope.RefPartial, "true")
	rep, err := p.start(ctx, env)
	if err != nil {
		return err
	}
	p.placeholder = rep
	return nil
}

// end finishes, with the text they have, the streamed replies still open
// (the turn failed or was interrupted mid-stream), so that no channel is
// left showing a reply as unfinished, and withdraws a placeholder that no
// reply took (the turn failed, was interrupted or gave no answer).
func (p *replies) end(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range slices.Sorted(maps.Keys(p.streams)) {
		rep := p.streams[n]
		if !rep.open {
			continue
		}
		rep.open = false
		env := p.envelope(rep.id+".end", envelope.KindEdit, rep.text, envelope.Refs{envelope.RefEdits: rep.id})
		env.Conversation = rep.conv
		if err := p.append(ctx, env); err != nil {
			return err
		}
	}
	if p.placeholder == nil {
		return nil
	}
	ph := p.placeholder
	p.placeholder = nil
	env := p.envelope(p.key+":progress.del", envelope.KindDelete, "", envelope.Refs{envelope.RefDeletes: ph.id})
	env.Conversation = ph.conv
	return p.append(ctx, env)
}

// add appends output i of the turn (i < 0 for one emitted while it ran).
func (p *replies) add(ctx context.Context, i int, out runtime.Output) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	text := runtime.Truncate(out.Text, p.r.cfg.Limits.MaxText)
	var refs envelope.Refs
	if out.Partial {
		refs = refs.Set(envelope.RefPartial, "true")
	}
	rep := p.streams[out.Stream]
	if out.Stream == 0 || rep == nil {
		if rep = p.placeholder; rep != nil {
			// The placeholder becomes this reply.
			p.placeholder = nil
		}
	}
	if rep == nil {
		id := p.key + ":" + strconv.Itoa(i)
		if out.Stream > 0 {
			id = p.key + ":s" + strconv.Itoa(out.Stream)
		}
		env := p.envelope(id, envelope.KindMessage, text, refs)
		if out.Stream == 0 {
			return p.append(ctx, env)
		}
		var err error
		if rep, err = p.start(ctx, env); err == nil && rep != nil {
			rep.open, rep.text = out.Partial, text
			p.setStream(out.Stream, rep)
		}
		return err
	}
	if out.Stream > 0 {
		p.setStream(out.Stream, rep)
	}
	rep.open, rep.text = out.Partial, text
	rep.edits++
	suffix := "." + strconv.Itoa(rep.edits)
	if !out.Partial {
		suffix = ".end"
	}
	env := p.envelope(rep.id+suffix, envelope.KindEdit, text, refs.Set(envelope.RefEdits, rep.id))
	env.Conversation = rep.conv
	return p.append(ctx, env)
}

func (p *replies) setStream(n int, rep *reply) {
	if p.streams == nil {
		p.streams = map[int]*reply{}
	}
	p.streams[n] = rep
}

// start appends a message that later outputs edit, and notes where it
// went. It returns nil (and no error) when the store refused the message
// (append put a system record in its place).
func (p *replies) start(ctx context.Context, env envelope.Envelope) (*reply, error) {
	if err := p.append(ctx, env); err != nil {
		return nil, err
	}
	rec, err := p.r.st.Lookup(ctx, p.sessionID, env.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("router: read output %s back: %w", env.ID, err)
	}
	rec.SessionID = p.sessionID
	conv, err := store.ChangeConversation(ctx, p.r.st, &rec)
	if err != nil {
		return nil, fmt.Errorf("router: find the conversation of output %s: %w", env.ID, err)
	}
	return &reply{id: env.ID, conv: conv}, nil
}

// append appends one output.
func (p *replies) append(ctx context.Context, env envelope.Envelope) error {
	err := p.r.persist(ctx, p.lost, outputTries, "store an agent's output", func() error {
		_, err := p.r.st.Append(ctx, store.AppendRequest{SessionID: p.sessionID, Direction: store.Outbound, Envelope: env})
		if errors.Is(err, store.ErrConflict) {
			return nil // stored before, by an earlier run of the turn
		}
		return err
	})
	if err == nil || stopped(ctx, err) {
		return err
	}
	// The store refuses this output: say so in the log, in place of it,
	// rather than run the agent again for it.
	p.r.metrics.refused.WithLabelValues(p.rt.Name).Inc()
	p.r.log.Error("agent output refused by the store", "session", p.sessionID, "route", p.rt.Name, "seq", p.last, "output", env.ID, "err", err)
	text := fmt.Sprintf("Switchboard could not store the agent's answer to message %d (output %s), so it was not delivered: %v", p.last, env.ID, err)
	return p.r.persist(ctx, p.lost, 0, "record a refused output", func() error {
		return p.r.appendSystem(ctx, p.sessionID, p.sessionID+":"+env.ID+":refused", text, store.Outbound, nil)
	})
}

// envelope is an output of the turn's agent.
func (p *replies) envelope(id string, kind envelope.Kind, text string, refs envelope.Refs) envelope.Envelope {
	return envelope.Envelope{
		ID:     id,
		Source: p.rt.Runtime,
		Kind:   kind,
		Actor:  envelope.Actor{ID: "agent:" + p.rt.Name, Display: p.rt.Name, Type: envelope.Agent},
		Text:   text,
		Refs:   refs,
		TS:     p.r.now().UTC(),
	}
}
