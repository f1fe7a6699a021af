package github

import (
	"context"
	"fmt"
	"strconv"

	"github.com/google/go-github/v62/github"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/envelope"
)

// Progress reaction: 👀 on the triggering comment when a session starts
// working on it. The router calls Progress (progress.go, adapters.Progress)
// before each agent turn it runs (exec and http runtimes) with the
// triggering envelope, and Progress calls MarkWorking; inbox sessions, whose
// agents read the log themselves, get no reaction.

// React adds the reaction content ("eyes", "+1", "rocket", …) to the comment
// commentID in the conversation conv: a review comment when conv is a
// review thread, else an issue or pull request comment. With commentID 0 it
// reacts to the issue or pull request itself. A reaction that is already
// there is not an error (GitHub answers 200 instead of 201). Errors are
// classified as for Deliver.
func (a *Adapter) React(ctx context.Context, conv envelope.Conversation, commentID int64, content string) error {
	if conv.Source != Name {
		return fmt.Errorf("github: react: %w: conversation source is %q", adapters.ErrPermanent, conv.Source)
	}
	if !reactionContents[content] {
		return fmt.Errorf("github: react: %w: %q is not a GitHub reaction", adapters.ErrPermanent, content)
	}
	t, err := parseRef(conv.Ref)
	if err != nil {
		return fmt.Errorf("github: react: %w: %v", adapters.ErrPermanent, err)
	}
	token, cred, err := a.tokenFor(ctx, t.repo())
	if err != nil {
		return fmt.Errorf("github: react: %w", err)
	}
	if wait := a.gate.wait(cred); wait > 0 {
		return &adapters.BackOff{Wait: wait, Err: fmt.Errorf("github: %s is rate-limited", cred)}
	}
	gh := a.client(token)
	var resp *github.Response
	switch {
	case commentID == 0:
		_, resp, err = gh.Reactions.CreateIssueReaction(ctx, t.owner, t.name, t.number, content)
	case t.thread != 0:
		_, resp, err = gh.Reactions.CreatePullRequestCommentReaction(ctx, t.owner, t.name, commentID, content)
	default:
		_, resp, err = gh.Reactions.CreateIssueCommentReaction(ctx, t.owner, t.name, commentID, content)
	}
	if err != nil {
		return fmt.Errorf("github: react %s on %s: %w", content, conv.Ref, a.classify(cred, resp, err))
	}
	return nil
}

// MarkWorking puts the configured "working" reaction (default 👀) on the
// comment that started a session's turn: conv and channelID are the
// triggering envelope's conversation and Facts.ChannelID ("" for an issue
// or pull request event, which reacts to the issue itself). It does nothing
// when reactions are off.
func (a *Adapter) MarkWorking(ctx context.Context, conv envelope.Conversation, channelID string) error {
	if r := a.cfg.Reactions; r.Enabled == nil || !*r.Enabled {
		return nil
	}
	var id int64
	if channelID != "" {
		var err error
		if id, err = strconv.ParseInt(channelID, 10, 64); err != nil || id <= 0 {
			return fmt.Errorf("github: react: %w: channel id %q is not a comment id", adapters.ErrPermanent, channelID)
		}
	}
	return a.React(ctx, conv, id, a.cfg.Reactions.Working)
}
