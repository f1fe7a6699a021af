package slack

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/slack-go/slack"

	"github.com/switchboardhq/switchboard/envelope"
)

// Progress reactions: 👀 on the triggering message while a session works on
// it, swapped for ✅ when the session goes idle.
//
// The router calls Progress (adapters.Progress) around each agent turn run
// by the gateway (exec and http runtimes); inbox sessions, whose agents read
// the log themselves, get no reactions.

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

// Progress marks the message env (one of this adapter's envelopes, id
// "slack:<team>/<channel>/<ts>") as being worked on, or done: with the
// progress reactions and, when the adapter is configured as an assistant
// (assistant: true) and env is in a thread of a DM, with the thread's
// assistant status, "is thinking…" while working and cleared after. Both
// are tried; their errors are joined.
func (a *Adapter) Progress(ctx context.Context, env envelope.Envelope, working bool) error {
	channel, ts, ok := messageOf(env.ID)
	if !ok {
		return nil // an edit, a delete or not ours: nothing to mark
	}
	direct := strings.HasPrefix(channel, "D")
	var status error
	if a.cfg.Assistant && direct {
		if ch, root, err := parseRef(env.Conversation.Ref); err == nil && ch == channel && root != "" {
			status = a.setStatus(ctx, channel, root, working)
		}
	}
	if working {
		return errors.Join(status, a.MarkWorking(ctx, channel, ts, direct))
	}
	return errors.Join(status, a.MarkIdle(ctx, channel, ts, direct))
}

// messageOf parses a message envelope id "slack:<team>/<channel>/<ts>".
func messageOf(id string) (channel, ts string, ok bool) {
	rest, found := strings.CutPrefix(id, Name+":")
	if !found {
		return "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return "", "", false
	}
	return parts[1], parts[2], true
}
