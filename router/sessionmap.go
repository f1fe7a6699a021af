package router

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/router/runtime"
	"github.com/switchboardhq/switchboard/store"
)

// upstreamSource is the conversation source under which a session's
// upstream session (http runtime) is bound, so the mapping is as durable as
// any binding and needs no table of its own.
const upstreamSource = store.SourceUpstream

// SessionMap is the http runtime's durable local↔upstream session mapping,
// kept as bindings of the conversation {upstream, <upstream id>}.
type SessionMap struct{ st store.Bindings }

var _ runtime.SessionMap = SessionMap{}

// NewSessionMap returns a SessionMap over st.
func NewSessionMap(st store.Bindings) SessionMap { return SessionMap{st} }

// Upstream returns the upstream session serving local.
func (m SessionMap) Upstream(ctx context.Context, local string) (string, bool, error) {
	bs, err := m.st.SessionBindings(ctx, local)
	if err != nil {
		return "", false, err
	}
	for _, b := range bs {
		if b.Conversation.Source == upstreamSource {
			return b.Conversation.Ref, true, nil
		}
	}
	return "", false, nil
}

// SetUpstream records that upstream serves local.
func (m SessionMap) SetUpstream(ctx context.Context, local, upstream string) error {
	b, _, err := m.st.Bind(ctx, store.Binding{SessionID: local, Conversation: envelope.Conversation{Source: upstreamSource, Ref: upstream}}, nil)
	if err != nil {
		return err
	}
	if b.SessionID != local {
		return fmt.Errorf("router: upstream session %q already serves session %q", upstream, b.SessionID)
	}
	return nil
}

// Local returns the local session that upstream serves.
func (m SessionMap) Local(ctx context.Context, upstream string) (string, bool, error) {
	b, err := m.st.BindingFor(ctx, envelope.Conversation{Source: upstreamSource, Ref: upstream})
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return b.SessionID, true, nil
}

// DeliverOutput appends an output that an upstream agent service sent for
// a session (the http runtime's hook). A conversation it names must be bound
// to the session (else an error wrapping store.ErrNotBound): an upstream
// cannot post into channels the session is not part of.
func (r *Router) DeliverOutput(ctx context.Context, sessionID string, env envelope.Envelope) error {
	if err := store.ResolveChange(ctx, r.st, r.st, sessionID, &env); err != nil {
		return err
	}
	if err := store.CheckOutputConversation(ctx, r.st, sessionID, env.Conversation); err != nil {
		return err
	}
	env.Actor.Type = envelope.Agent
	// Held to limits.max_text, as the exec runtime's outputs are.
	env.Text = runtime.Truncate(env.Text, r.cfg.Limits.MaxText)
	_, err := r.st.Append(ctx, store.AppendRequest{SessionID: sessionID, Direction: store.Outbound, Envelope: env})
	return err
}
