package github

import (
	"context"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/envelope"
)

var _ adapters.Progress = (*Adapter)(nil)

// Progress shows on GitHub that a session has started working on env, the
// inbound envelope that triggered an agent's turn (see adapters.Progress).
// With working true it adds the reactions.working reaction (default 👀,
// nothing when reactions are off) to the triggering comment, named by
// env.Refs["comment"], in env's conversation: a review comment in a review
// thread, else an issue or pull request comment; an envelope without a
// comment (an issue or pull request event, a review) gets the reaction on
// the issue or pull request itself. The end of a turn (working false) shows
// nothing: the reply itself says the session is done.
//
// Envelopes of other sources, and edits and deletes, are ignored. Errors
// are classified as for Deliver (a rate-limited credential gives a BackOff
// without calling GitHub); the router logs them and does not retry. It is
// safe for concurrent use.
func (a *Adapter) Progress(ctx context.Context, env envelope.Envelope, working bool) error {
	if !working || env.Source != Name || env.Kind != envelope.KindMessage || env.Conversation.Source != Name {
		return nil
	}
	return a.MarkWorking(ctx, env.Conversation, env.Refs["comment"])
}
