package github

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/google/go-github/v62/github"

	"github.com/switchboardhq/switchboard/envelope"
)

// prHead is what refs need from a pull request: its head.
type prHead struct {
	Branch string // head ref ("fix-readme")
	SHA    string // head commit
	Repo   string // head repository "owner/name" (a fork's, for a PR from a fork)
}

// headOf reads the head of pr; ok is false when the payload has none.
func headOf(pr *github.PullRequest) (prHead, bool) {
	if pr == nil || pr.Head == nil || pr.Head.GetSHA() == "" {
		return prHead{}, false
	}
	return prHead{Branch: pr.Head.GetRef(), SHA: pr.Head.GetSHA(), Repo: pr.Head.GetRepo().GetFullName()}, true
}

// addTo sets the head refs of pull request number in repo on r: branch,
// commit, ref (refs/pull/<n>/head, which names the head in the base
// repository even for a fork) and, for a fork, head_repo.
func (h prHead) addTo(r envelope.Refs, repo string, number int) envelope.Refs {
	r = r.Set(envelope.RefBranch, h.Branch)
	r = r.Set(envelope.RefCommit, h.SHA)
	r = r.Set(envelope.RefRef, "refs/pull/"+strconv.Itoa(number)+"/head")
	if h.Repo != "" && !strings.EqualFold(h.Repo, repo) {
		r = r.Set("head_repo", h.Repo)
	}
	return r
}

// headKey is the key of pull request number in repo in Adapter.heads.
func headKey(repo string, number int) string {
	return strings.ToLower(repo) + "#" + strconv.Itoa(number)
}

// pullHead returns the head of pull request number in repo: cached, else
// fetched (see fetchHead); concurrent callers for one pull request share a
// fetch. It reports false (and logs why) when the head is unknown: the refs
// then go without it.
func (a *Adapter) pullHead(ctx context.Context, repo string, number int) (prHead, bool) {
	fetched := false // fetchHead counts and logs its own result
	h := a.heads.Get(ctx, headKey(repo, number), func(ctx context.Context, _ string) (prHead, error) {
		fetched = true
		return a.fetchHead(ctx, repo, number)
	})
	known := h != prHead{}
	switch {
	case fetched:
	case known:
		a.metrics.lookups.WithLabelValues("cached").Inc()
	default: // ctx ended while another caller was fetching
		a.metrics.lookups.WithLabelValues("error").Inc()
		a.log.Warn("waiting for the pull request failed; refs go without branch and commit", "repo", repo, "pr", number, "err", ctx.Err())
	}
	return h, known
}

// fetchHead fetches the head of pull request number in repo with
// GET /repos/{owner}/{repo}/pulls/{number}, counting the lookup as fetched
// or, logging why, as an error.
func (a *Adapter) fetchHead(ctx context.Context, repo string, number int) (prHead, error) {
	fail := func(msg string, err error) (prHead, error) {
		a.metrics.lookups.WithLabelValues("error").Inc()
		a.log.Warn(msg+"; refs go without branch and commit", "repo", repo, "pr", number, "err", err)
		return prHead{}, errors.New("github: " + msg)
	}
	owner, name, _ := strings.Cut(repo, "/")
	token, cred, err := a.tokenFor(ctx, repo)
	if err != nil {
		return fail("no token to fetch the pull request", err)
	}
	if wait := a.gate.wait(cred); wait > 0 {
		return fail("rate-limited; not fetching the pull request", nil)
	}
	pr, resp, err := a.client(token).PullRequests.Get(ctx, owner, name, number)
	if err != nil {
		return fail("fetching the pull request failed", a.classify(cred, resp, err))
	}
	h, ok := headOf(pr)
	if !ok {
		return fail("the fetched pull request has no head", nil)
	}
	a.metrics.lookups.WithLabelValues("fetched").Inc()
	return h, nil
}
