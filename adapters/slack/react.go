package slack

import (
	"context"
	"errors"
	"fmt"

	"github.com/slack-go/slack"
)

// Progress reactions: 👀 on the triggering message while a session works on
// it, swapped for ✅ when the session goes idle.
//
// NOT WIRED YET: the router does not tell adapters when a session starts or
// goes idle, nor which inbound message triggered a turn. Once it does (for
// example an optional adapters.SessionObserver interface called with the
// triggering Inbound's Facts.Where and Facts.ChannelID), it should call
// MarkWorking and MarkIdle; until then nothing calls them and Slack shows no
// reactions. They are usable and tested on their own.

// React adds the emoji reaction name (without colons, "eyes") to the
// message at ts in channel. A reaction that is already there is not an
// error. Errors are classified as for Deliver.
func (a *Adapter) React(ctx context.Context, channel, ts, name string) error {
	err := a.api.AddReactionContext(ctx, name, slack.NewRefToMessage(channel, ts))
	if err == nil || apiError(err) == "already_reacted" {
		return nil
	}
	return fmt.Errorf("slack: reactions.add %s: %w", name, a.classify(err))
}

// Unreact removes the emoji reaction name from the message at ts in channel.
// A reaction that is not there is not an error.
func (a *Adapter) Unreact(ctx context.Context, channel, ts, name string) error {
	err := a.api.RemoveReactionContext(ctx, name, slack.NewRefToMessage(channel, ts))
	if err == nil || apiError(err) == "no_reaction" {
		return nil
	}
	return fmt.Errorf("slack: reactions.remove %s: %w", name, a.classify(err))
}

// MarkWorking puts the configured "working" reaction (default 👀) on the
// message that started a session's turn. It does nothing when reactions
// are off, or for a direct message unless reactions.direct_messages is set.
func (a *Adapter) MarkWorking(ctx context.Context, channel, ts string, direct bool) error {
	if !a.reacts(direct) {
		return nil
	}
	return a.React(ctx, channel, ts, a.cfg.Reactions.Working)
}

// MarkIdle swaps the "working" reaction for the "done" one (default ✅),
// under the same conditions as MarkWorking.
func (a *Adapter) MarkIdle(ctx context.Context, channel, ts string, direct bool) error {
	if !a.reacts(direct) {
		return nil
	}
	if err := a.Unreact(ctx, channel, ts, a.cfg.Reactions.Working); err != nil {
		return err
	}
	return a.React(ctx, channel, ts, a.cfg.Reactions.Done)
}

func (a *Adapter) reacts(direct bool) bool {
	r := &a.cfg.Reactions
	return r.Enabled != nil && *r.Enabled && (!direct || r.DirectMessages)
}

// apiError returns the Web API error code in err, or "".
func apiError(err error) string {
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		return se.Err
	}
	return ""
}
