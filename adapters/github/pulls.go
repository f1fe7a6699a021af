package github

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-github/v62/github"

	"github.com/switchboardhq/switchboard/adapters/internal/bounded"
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

// headCache keeps pull request heads for ttl (a push moves the head, so
// not for long). Safe for concurrent use.
type headCache struct {
	ttl time.Duration
	now func() time.Time
	m   *bounded.Map[string, cachedHead]
}

type cachedHead struct {
	head prHead
	at   time.Time
}

func newHeadCache(ttl time.Duration, max int, now func() time.Time) *headCache {
	return &headCache{ttl: ttl, now: now, m: bounded.NewMap[string, cachedHead](max)}
}

func headKey(repo string, number int) string {
	return strings.ToLower(repo) + "#" + strconv.Itoa(number)
}

func (c *headCache) get(repo string, number int) (prHead, bool) {
	e, ok := c.m.Get(headKey(repo, number))
	if !ok || c.now().Sub(e.at) >= c.ttl {
		return prHead{}, false
	}
	return e.head, true
}

func (c *headCache) put(repo string, number int, h prHead) {
	c.m.Put(headKey(repo, number), cachedHead{head: h, at: c.now()})
}

// pullHead returns the head of pull request number in repo: cached, else
// fetched with GET /repos/{owner}/{repo}/pulls/{number}. It reports false
// (and logs why) when the head is unknown: the refs then go without it.
func (a *Adapter) pullHead(ctx context.Context, repo string, number int) (prHead, bool) {
	if h, ok := a.heads.get(repo, number); ok {
		a.metrics.lookups.WithLabelValues("cached").Inc()
		return h, true
	}
	fail := func(msg string, err error) (prHead, bool) {
		a.metrics.lookups.WithLabelValues("error").Inc()
		a.log.Warn(msg+"; refs go without branch and commit", "repo", repo, "pr", number, "err", err)
		return prHead{}, false
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
	a.heads.put(repo, number, h)
	return h, true
}
