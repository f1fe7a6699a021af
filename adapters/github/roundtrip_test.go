package github

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/sqlite"
)

// TestRoundTripThroughTheRouter drives whole conversations through the
// router, a real SQLite store and an exec agent: a mention on a pull request
// starts a session and gets 👀; the agent's answer meets a secondary rate
// limit once and is then posted exactly once on the pull request; a
// redelivery and the echo of the gateway's own comment create no turn; a
// later comment without a mention steers the same session; and a mention
// in a review thread is answered inside that thread.
func TestRoundTripThroughTheRouter(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	fake.setPull("acme/api", 7, prHead{Branch: "fix-flaky-test", SHA: "6dcb09b5b57875f334f61aebed695e2e4193db5e", Repo: "acme/api"})
	fake.failPosts(failWith(http.StatusForbidden, map[string]string{"Retry-After": "1"},
		"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."))

	// The agent answers in Markdown, naming the envelope it answers (the
	// first field of the envelope JSON on stdin).
	stamps := &postStamps{base: fake.srv.Client().Transport}
	a, st := runRouter(t, fake, "#!/bin/sh\nid=$(sed -n '1s/^{\"id\":\"\\([^\"]*\\)\".*/\\1/p')\n"+
		"printf 'On it: **%s**, see [the runbook](https://runbooks.example.com/ci).\\n' \"$id\"\n", &http.Client{Transport: stamps})

	send := func(what, event, delivery string, body []byte) {
		t.Helper()
		if w := serve(a, webhook(event, delivery, body)); w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", what, w.Code, w.Body)
		}
	}
	pr := envelope.Conversation{Source: Name, Ref: "acme/api#7"}
	thread := envelope.Conversation{Source: Name, Ref: "acme/api#7/review-thread/1600000001"}

	// 1. A mention on pull request 7 (comment 1500000001).
	mention := variant(t, "comment_mention_on_pr")
	send("mention", "issue_comment", "d-mention", mention)
	adaptertest.Eventually(t, "the first comment", func() bool { return len(fake.commentsCopy()) >= 1 })

	// 2. GitHub redelivers it (same X-GitHub-Delivery), and echoes the
	// gateway's own comment back: neither may start a turn.
	send("redelivery", "issue_comment", "d-mention", mention)
	own := fake.commentsCopy()[0]
	send("echo", "issue_comment", "d-echo", prComment(t, own.ID, testLogin, own.Body))

	// 3. A comment without a mention in the bound pull request steers the
	// same session (the route does not require_addressed_when_bound).
	send("follow-up", "issue_comment", "d-follow-up", prComment(t, 1500000003, "grace", "also run the migration tests against postgres"))
	adaptertest.Eventually(t, "the second comment", func() bool { return len(fake.commentsCopy()) >= 2 })

	// 4. A mention in a review thread of the same pull request: its own
	// conversation, answered inside the thread.
	send("review thread", "pull_request_review_comment", "d-thread", variant(t, "review_thread_reply"))
	adaptertest.Eventually(t, "the thread reply", func() bool { return len(fake.commentsCopy()) >= 3 })

	// Every delivery settles: the first after one rate-limited attempt.
	var ds []store.Delivery
	adaptertest.Eventually(t, "the deliveries to settle", func() bool {
		var err error
		ds, err = st.ListDeliveries(context.Background(), store.Delivered, "", 10)
		return err == nil && len(ds) == 3
	})
	slices.SortFunc(ds, func(x, y store.Delivery) int { return x.CreatedAt.Compare(y.CreatedAt) })

	comments := fake.commentsCopy()
	if len(comments) != 3 {
		t.Fatalf("%d comments posted, want exactly 3 (one per message; none for the redelivery or the echo)", len(comments))
	}
	type want struct {
		kind      string
		number    int
		inReplyTo int64
		to        envelope.Conversation
		answers   string
	}
	wants := []want{
		{"issue", 7, 0, pr, "github:issue-comment/1500000001"},
		{"issue", 7, 0, pr, "github:issue-comment/1500000003"},
		{"review", 7, 1600000001, thread, "github:review-comment/1600000002"},
	}
	for i, w := range wants {
		c, d := comments[i], ds[i]
		if c.Kind != w.kind || c.Repo != "acme/api" || c.Number != w.number || c.InReplyTo != w.inReplyTo {
			t.Errorf("comment %d: a %s comment on %s#%d in reply to %d, want a %s comment on acme/api#%d in reply to %d",
				i, c.Kind, c.Repo, c.Number, c.InReplyTo, w.kind, w.number, w.inReplyTo)
		}
		if c.Token != testToken {
			t.Errorf("comment %d posted with token %q", i, c.Token)
		}
		// The Markdown passes through unchanged, followed by the marker
		// that names the delivery.
		body := "On it: **" + w.answers + "**, see [the runbook](https://runbooks.example.com/ci).\n\n" + marker(d.ID, 1, 1)
		if c.Body != body {
			t.Errorf("comment %d body:\n%q\nwant\n%q", i, c.Body, body)
		}
		if d.To != w.to || d.ChannelID != strconv.FormatInt(c.ID, 10) {
			t.Errorf("delivery %d to %s with channel id %q, want %s and %d", i, d.To.Key(), d.ChannelID, w.to.Key(), c.ID)
		}
		if posted, err := st.Posted(context.Background(), Name, strconv.FormatInt(c.ID, 10)); err != nil || !posted {
			t.Errorf("comment %d is not recorded as the gateway's own (%v)", i, err)
		}
	}
	if ds[0].Attempts != 2 || ds[1].Attempts != 1 || ds[2].Attempts != 1 {
		t.Errorf("attempts %d, %d, %d; want 2 (one rate-limited), 1, 1", ds[0].Attempts, ds[1].Attempts, ds[2].Attempts)
	}
	// The outbox waited out Retry-After before the second attempt.
	if p := stamps.all(); len(p) != 4 {
		t.Errorf("%d comment POSTs, want 4 (one rate-limited, three posted)", len(p))
	} else if gap := p[1].Sub(p[0]); gap < time.Second {
		t.Errorf("the rate-limited comment was retried after %s, before Retry-After (1s)", gap)
	}

	// 👀 went on each triggering comment when its turn started, and
	// nothing else happened when the turns ended.
	fake.mu.Lock()
	reactions := slices.Clone(fake.reactions)
	fake.mu.Unlock()
	wantReactions := []string{"issue-comment 1500000001 eyes", "issue-comment 1500000003 eyes", "review-comment 1600000002 eyes"}
	if !slices.Equal(reactions, wantReactions) {
		t.Errorf("reactions %q, want %q", reactions, wantReactions)
	}

	got := outcomes(a, "issue_comment")
	if got[outcomeIngested] != 2 || got[outcomeDuplicate] != 1 || got[outcomeOwn] != 1 || len(got) != 3 {
		t.Errorf("issue_comment outcomes %v, want 2 ingested, 1 duplicate, 1 own", got)
	}

	// One session per conversation: the pull request's holds two messages
	// and two answers, the review thread's one and one.
	for _, c := range []struct {
		conv    envelope.Conversation
		inbound []string
	}{
		{pr, []string{"please rebase this onto main, then look at OPS-17", "also run the migration tests against postgres"}},
		{thread, []string{"can you make this loop idempotent?"}},
	} {
		b, err := st.BindingFor(context.Background(), c.conv)
		if err != nil {
			t.Fatalf("binding of %s: %v", c.conv.Key(), err)
		}
		recs, err := st.Read(context.Background(), b.SessionID, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var in []string
		out := 0
		for _, r := range recs {
			if r.Direction == store.Inbound {
				in = append(in, r.Envelope.Text)
			} else {
				out++
			}
		}
		if !slices.Equal(in, c.inbound) || out != len(c.inbound) {
			t.Errorf("session of %s: inbound %q and %d outputs, want %q and %d", c.conv.Key(), in, out, c.inbound, len(c.inbound))
		}
	}
	if sessions, err := st.ListSessions(context.Background(), "", 10); err != nil || len(sessions) != 2 {
		t.Errorf("%d sessions (%v), want 2", len(sessions), err)
	}
}

// runRouter runs, until t ends, a real router over a fresh SQLite store
// with a route from acme/* to an exec agent (the given script), and the
// adapter on fake with client (nil: the fake's) as its sink and webhook
// receiver. It returns the adapter and the store.
func runRouter(t *testing.T, fake *fakeGitHub, script string, client *http.Client) (*Adapter, *sqlite.Store) {
	t.Helper()
	if client == nil {
		client = fake.srv.Client()
	}
	return adaptertest.RunRouter(t, Name, "acme/*", script, func(in adapters.Ingress, _ store.KV) *Adapter {
		// The adapter runs on the real clock, as the router does: its
		// rate-limit gate must open when the outbox retries. The login is
		// learned by Run.
		a, err := New(&Config{WebhookSecret: testSecret, Token: testToken, APIURL: fake.url()}, adapters.Deps{
			Ingress: in, HTTPClient: client, Registry: prometheus.NewRegistry(),
		})
		if err != nil {
			t.Fatal(err)
		}
		return a
	})
}

// prComment is an issue_comment "created" webhook for comment id by login
// on pull request acme/api#7.
func prComment(t testing.TB, id int64, login, body string) []byte {
	t.Helper()
	user := map[string]any{"login": login, "id": 1, "type": "User"}
	b, err := json.Marshal(map[string]any{
		"action": "created",
		"issue": map[string]any{
			"number": 7, "title": "Fix the flaky TestMigrate", "state": "open",
			"user":         map[string]any{"login": "ada", "id": 1, "type": "User"},
			"pull_request": map[string]any{"url": "https://api.github.com/repos/acme/api/pulls/7"},
		},
		"comment": map[string]any{
			"id": id, "body": body, "user": user,
			"created_at": "2026-06-18T12:01:00Z", "updated_at": "2026-06-18T12:01:00Z",
		},
		"repository": map[string]any{"id": 1296269, "name": "api", "full_name": "acme/api", "owner": map[string]any{"login": "acme", "type": "Organization"}},
		"sender":     user,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// postStamps is an HTTP transport that records when each comment POST was
// sent.
type postStamps struct {
	base  http.RoundTripper
	mu    sync.Mutex
	posts []time.Time
}

func (s *postStamps) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/comments") {
		s.mu.Lock()
		s.posts = append(s.posts, time.Now())
		s.mu.Unlock()
	}
	return s.base.RoundTrip(r)
}

func (s *postStamps) all() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.posts)
}

// TestProgress checks what Progress reacts to without the router: the
// triggering comment when a turn starts, the issue itself for an event
// without a comment, and nothing at the end of a turn or for envelopes that
// are not GitHub messages.
func TestProgress(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	a := newTestAdapter(t, fake, newRecorder(), nil)
	msg := func(ref, comment string) envelope.Envelope {
		env := envelope.Envelope{ID: "github:d1", Source: Name, Kind: envelope.KindMessage,
			Conversation: envelope.Conversation{Source: Name, Ref: ref}, Refs: envelope.Refs{envelope.RefRepo: "acme/api"}}
		env.Refs = env.Refs.Set("comment", comment)
		return env
	}
	edit := msg("acme/api#12", "1500000009")
	edit.Kind = envelope.KindEdit
	other := msg("acme/api#12", "1500000009")
	other.Source, other.Conversation.Source = "slack", "slack"
	for _, c := range []struct {
		env     envelope.Envelope
		working bool
	}{
		{msg("acme/api#12", "1500000002"), true},
		{msg("acme/api#12", "1500000002"), false},
		{msg("acme/api#7/review-thread/1600000001", "1600000002"), true},
		{msg("acme/api#13", ""), true}, // an issue event: the issue itself
		{edit, true},
		{other, true},
	} {
		if err := a.Progress(t.Context(), c.env, c.working); err != nil {
			t.Errorf("Progress(%s, %s, %v): %v", c.env.Kind, c.env.Conversation.Key(), c.working, err)
		}
	}
	fake.mu.Lock()
	got := slices.Clone(fake.reactions)
	fake.mu.Unlock()
	want := []string{"issue-comment 1500000002 eyes", "review-comment 1600000002 eyes", "issue 13 eyes"}
	if !slices.Equal(got, want) {
		t.Errorf("reactions %q, want %q", got, want)
	}
	// A bad anchor is reported, not posted anywhere.
	if err := a.Progress(t.Context(), msg("not-a-ref", "1"), true); err == nil {
		t.Error("Progress with a malformed conversation anchor returned nil")
	}
}

// TestStreamedReplyThroughTheRouter drives a streamed answer through the
// router: an exec agent that streams 50 chunks over about 5 s answers a
// mention on a pull request with one comment, created when the stream
// starts and edited in place a bounded number of times until it holds the
// final text as a plain post of it would; the session's log holds the
// partial message and every update of it.
func TestStreamedReplyThroughTheRouter(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	fake.setPull("acme/api", 7, prHead{Branch: "fix-flaky-test", SHA: "6dcb09b5b57875f334f61aebed695e2e4193db5e", Repo: "acme/api"})
	chunks := adaptertest.Chunks(50, "see [the runbook](https://runbooks.example.com/ci).")
	a, st := runRouter(t, fake, adaptertest.StreamingAgent(chunks, 100*time.Millisecond), nil)
	if w := serve(a, webhook("issue_comment", "d-mention", variant(t, "comment_mention_on_pr"))); w.Code != http.StatusOK {
		t.Fatalf("mention: %d %s", w.Code, w.Body)
	}
	final := strings.Join(chunks, "")
	recs := adaptertest.Settled(t, st, envelope.Conversation{Source: Name, Ref: "acme/api#7"})
	msg := adaptertest.CheckStream(t, recs, chunks)

	comments := fake.commentsCopy()
	if n := fake.callCount("POST /repos/{owner}/{repo}/issues/{n}/comments"); n != 1 || len(comments) != 1 {
		t.Fatalf("%d comment POSTs and %d comments, want one of each", n, len(comments))
	}
	// At most 3 PATCHes (see CheckEdits).
	edits := adaptertest.CheckEdits(t, fake.changesCopy(), "PATCH issue "+strconv.FormatInt(comments[0].ID, 10))
	if n := fake.callCount("PATCH /repos/{owner}/{repo}/issues/comments/{id}"); n != edits {
		t.Errorf("%d PATCH calls, %d accepted: want every one accepted", n, edits)
	}
	d := adaptertest.DeliveryOf(t, st, msg)
	if want := final + "\n\n" + marker(d.ID, 1, 1); comments[0].Body != want {
		t.Errorf("the comment's final body is\n%q\nwant, as a plain post of the final text,\n%q", comments[0].Body, want)
	}
	if d.ChannelID != strconv.FormatInt(comments[0].ID, 10) {
		t.Errorf("the message's channel id is %q, want comment %d", d.ChannelID, comments[0].ID)
	}
	// A plain post of the final text elsewhere (another delivery, so
	// another marker) holds the same.
	if _, err := a.Deliver(t.Context(), delivery("dlv_plain", "acme/api#12", final, 1)); err != nil {
		t.Fatal(err)
	}
	plain := fake.commentsCopy()
	if len(plain) != 2 || strings.Replace(plain[1].Body, marker("dlv_plain", 1, 1), marker(d.ID, 1, 1), 1) != comments[0].Body {
		t.Errorf("%d comments; a plain post of the final text is %q, the streamed comment %q", len(plain), plain[len(plain)-1].Body, comments[0].Body)
	}
}

// TestDeletedReplyThroughTheRouter checks that an agent's deletion of its
// answer, stored as the API stores it, deletes the comment on GitHub.
func TestDeletedReplyThroughTheRouter(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	fake.setPull("acme/api", 7, prHead{Branch: "fix-flaky-test", SHA: "6dcb09b5b57875f334f61aebed695e2e4193db5e", Repo: "acme/api"})
	a, st := runRouter(t, fake, "#!/bin/sh\ncat >/dev/null\necho 'a **short** answer'\n", nil)
	if w := serve(a, webhook("issue_comment", "d-mention", variant(t, "comment_mention_on_pr"))); w.Code != http.StatusOK {
		t.Fatalf("mention: %d %s", w.Code, w.Body)
	}
	conv := envelope.Conversation{Source: Name, Ref: "acme/api#7"}
	adaptertest.Settled(t, st, conv)
	comments := fake.commentsCopy()
	if len(comments) != 1 {
		t.Fatalf("%d comments, want the answer's", len(comments))
	}
	adaptertest.DeleteAnswer(t, st, conv)
	want := []string{"DELETE issue " + strconv.FormatInt(comments[0].ID, 10)}
	if got := fake.changesCopy(); !slices.Equal(got, want) || len(fake.commentsCopy()) != 0 {
		t.Errorf("changes %q and %d comments left, want %q and none", got, len(fake.commentsCopy()), want)
	}
}
