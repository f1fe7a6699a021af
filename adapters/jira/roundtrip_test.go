package jira

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/sqlite"
)

// TestRoundTripThroughTheRouter drives a conversation on a Jira issue
// through the router, a real SQLite store and an exec agent: a comment
// mentioning the bot, delivered twice (comment_created and
// jira:issue_updated), starts one session and one turn; the agent's
// Markdown answer meets a 429 once and is then posted exactly once, as wiki
// markup, on the issue; the echo of that comment is dropped; and a later
// comment without a mention steers the same session.
func TestRoundTripThroughTheRouter(t *testing.T) {
	fake := newFakeJira(t)
	fake.failPosts(failWith(http.StatusTooManyRequests, map[string]string{"Retry-After": "1"}))

	// The agent answers in Markdown, naming the envelope it answers (the
	// first field of the envelope JSON on stdin).
	a, st := runRouter(t, fake, "#!/bin/sh\nid=$(sed -n '1s/^{\"id\":\"\\([^\"]*\\)\".*/\\1/p')\n"+
		"printf 'On it: **%s**, see [the runbook](https://runbooks.example.com/deploy).\\n' \"$id\"\n")

	send := func(what string, body []byte, hookID string) {
		t.Helper()
		if w := post(a, body, HeaderWebhookID, hookID); w.Code != http.StatusNoContent {
			t.Fatalf("%s: %d %s", what, w.Code, w.Body)
		}
	}
	ada := map[string]any{"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Ada Lovelace", "accountType": "atlassian"}
	bot := map[string]any{"accountId": botAccountID, "displayName": "Switchboard", "accountType": "atlassian"}

	// 1. A comment mentioning the bot on OPS-42, delivered as
	// comment_created and as jira:issue_updated (issue_commented): two
	// webhook identifiers, one comment.
	mention := "[~accountid:" + botAccountID + "] please look at the failing deploy"
	send("comment_created", jiraComment(t, eventCommentCreated, "", "10100", ada, mention), "hook-1")
	send("issue_commented", jiraComment(t, eventIssueUpdated, "issue_commented", "10100", ada, mention), "hook-2")
	adaptertest.Eventually(t, "the first comment", func() bool { return len(fake.posted()) >= 1 })

	// 2. Jira echoes the gateway's comment back, in both shapes.
	own := fake.posted()[0]
	send("echo", jiraComment(t, eventCommentCreated, "", own.ID, bot, own.Body), "hook-3")
	send("echo as issue_commented", jiraComment(t, eventIssueUpdated, "issue_commented", own.ID, bot, own.Body), "hook-4")

	// 3. A comment without a mention on the bound issue steers the same
	// session.
	send("follow-up", jiraComment(t, eventCommentCreated, "", "10102", ada, "it fails on the *staging* cluster only"), "hook-5")
	adaptertest.Eventually(t, "the second comment", func() bool { return len(fake.posted()) >= 2 })

	var ds []store.Delivery
	adaptertest.Eventually(t, "the deliveries to settle", func() bool {
		var err error
		ds, err = st.ListDeliveries(context.Background(), store.Delivered, "", 10)
		return err == nil && len(ds) == 2
	})
	slices.SortFunc(ds, func(x, y store.Delivery) int { return x.CreatedAt.Compare(y.CreatedAt) })

	posted := fake.posted()
	if len(posted) != 2 {
		t.Fatalf("%d comments posted, want exactly 2 (one per comment; none for the double delivery or the echoes)", len(posted))
	}
	issue := envelope.Conversation{Source: Name, Ref: "acme.atlassian.net/OPS-42"}
	for i, answers := range []string{"jira:acme.atlassian.net:10100", "jira:acme.atlassian.net:10102"} {
		c, d := posted[i], ds[i]
		// The agent's Markdown arrives as wiki markup, with the marker.
		body := "On it: *" + answers + "*, see [the runbook|https://runbooks.example.com/deploy]." + marker(d.ID, 1)
		if c.Issue != "OPS-42" || c.Body != body {
			t.Errorf("comment %d on %s:\n%q\nwant on OPS-42:\n%q", i, c.Issue, c.Body, body)
		}
		if d.To != issue || d.ChannelID != c.ID {
			t.Errorf("delivery %d to %s with channel id %q, want %s and %s", i, d.To.Key(), d.ChannelID, issue.Key(), c.ID)
		}
		if mine, err := st.Posted(context.Background(), Name, c.ID); err != nil || !mine {
			t.Errorf("comment %s is not recorded as the gateway's own (%v)", c.ID, err)
		}
	}
	if p := fake.problemsSeen(); len(p) > 0 {
		t.Errorf("requests Jira would refuse: %q", p)
	}
	if n := fake.callCount("POST comment"); n != 3 {
		t.Errorf("%d comment POSTs, want 3 (one answered 429, two posted)", n)
	}
	if ds[0].Attempts != 2 || ds[1].Attempts != 1 {
		t.Errorf("attempts %d and %d, want 2 (after the 429) and 1", ds[0].Attempts, ds[1].Attempts)
	}
	if got := outcomes(a); got[outcomeIngested] != 2 || got[outcomeDuplicate] != 1 || got[outcomeOwn] != 2 || len(got) != 3 {
		t.Errorf("outcomes %v, want 2 ingested, 1 duplicate, 2 own", got)
	}

	// One session: two messages in, two answers out.
	b, err := st.BindingFor(context.Background(), issue)
	if err != nil {
		t.Fatal(err)
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
	if want := []string{"please look at the failing deploy", "it fails on the **staging** cluster only"}; !slices.Equal(in, want) || out != 2 {
		t.Errorf("log: inbound %q and %d outputs, want %q and 2", in, out, want)
	}
	if sessions, err := st.ListSessions(context.Background(), "", 10); err != nil || len(sessions) != 1 {
		t.Errorf("%d sessions (%v), want 1", len(sessions), err)
	}
}

// runRouter runs, until t ends, a real router over a fresh SQLite store
// with a route from project OPS to an exec agent (the given script), and
// the adapter on fake as its sink and webhook receiver. It returns the
// adapter and the store.
func runRouter(t *testing.T, fake *fakeJira, script string) (*Adapter, *sqlite.Store) {
	t.Helper()
	return adaptertest.RunRouter(t, Name, "OPS", script, func(in adapters.Ingress, _ store.KV) *Adapter {
		return newTestAdapter(t, fake, in, nil)
	})
}

// jiraComment is a Jira Cloud webhook for comment id by author on OPS-42 of
// acme.atlassian.net: event comment_created, or jira:issue_updated with
// typeName as its issue_event_type_name.
func jiraComment(t testing.TB, event, typeName, id string, author map[string]any, body string) []byte {
	t.Helper()
	site := "https://acme.atlassian.net/rest/api/2/"
	m := map[string]any{
		"timestamp":    1781784060000,
		"webhookEvent": event,
		"issue": map[string]any{
			"id": "10042", "self": site + "issue/10042", "key": "OPS-42",
			"fields": map[string]any{"summary": "Deploys to staging fail", "project": map[string]any{"key": "OPS", "name": "Operations"}},
		},
		"comment": map[string]any{
			"id": id, "self": site + "issue/10042/comment/" + id, "body": body,
			"author": author, "updateAuthor": author,
			"created": "2026-06-18T12:01:00.000+0000", "updated": "2026-06-18T12:01:00.000+0000",
		},
	}
	if event == eventIssueUpdated {
		m["issue_event_type_name"], m["user"] = typeName, author
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStreamedReplyThroughTheRouter drives a streamed answer through the
// router: an exec agent that streams 50 chunks of Markdown over about 5 s
// answers a comment mentioning the bot with one comment, created when the
// stream starts and updated in place a bounded number of times until it
// holds the final text as a plain post of it would (wiki markup and
// marker); the session's log holds the partial message and every update.
func TestStreamedReplyThroughTheRouter(t *testing.T) {
	fake := newFakeJira(t)
	chunks := adaptertest.Chunks(50, "see [the runbook](https://runbooks.example.com/deploy).")
	a, st := runRouter(t, fake, adaptertest.StreamingAgent(chunks, 100*time.Millisecond))
	mentionBot(t, a)
	recs := adaptertest.Settled(t, st, envelope.Conversation{Source: Name, Ref: "acme.atlassian.net/OPS-42"})
	msg := adaptertest.CheckStream(t, recs, chunks)

	posted := fake.posted()
	if n := fake.callCount("POST comment"); n != 1 || len(posted) != 1 {
		t.Fatalf("%d comment POSTs and %d comments, want one of each", n, len(posted))
	}
	// At most 3 PUTs (see CheckEdits).
	edits := adaptertest.CheckEdits(t, fake.changesCopy(), "PUT "+posted[0].ID)
	if n := fake.callCount("PUT comment/id"); n != edits {
		t.Errorf("%d PUT calls, %d accepted: want every one accepted", n, edits)
	}
	d := adaptertest.DeliveryOf(t, st, msg)
	want := "*part1*"
	for i := 2; i < 50; i++ {
		want += fmt.Sprintf(" *part%d*", i)
	}
	want += " see [the runbook|https://runbooks.example.com/deploy]." + marker(d.ID, 1)
	if posted[0].Body != want {
		t.Errorf("the comment's final body is\n%q\nwant, as a plain post of the final text,\n%q", posted[0].Body, want)
	}
	if d.ChannelID != posted[0].ID {
		t.Errorf("the message's channel id is %q, want comment %s", d.ChannelID, posted[0].ID)
	}
	// A plain post of the final text elsewhere (another delivery, so
	// another marker) holds the same.
	if _, err := a.Deliver(t.Context(), delivery("plain", "acme.atlassian.net/OPS-43", strings.Join(chunks, ""), 1)); err != nil {
		t.Fatal(err)
	}
	plain := fake.posted()
	if len(plain) != 2 || strings.Replace(plain[1].Body, marker("plain", 1), marker(d.ID, 1), 1) != posted[0].Body {
		t.Errorf("%d comments; a plain post of the final text is %q, the streamed comment %q", len(plain), plain[len(plain)-1].Body, posted[0].Body)
	}
	if p := fake.problemsSeen(); len(p) > 0 {
		t.Errorf("requests Jira would refuse: %q", p)
	}
}

// TestDeletedReplyThroughTheRouter checks that an agent's deletion of its
// answer, stored as the API stores it, deletes the comment in Jira.
func TestDeletedReplyThroughTheRouter(t *testing.T) {
	fake := newFakeJira(t)
	a, st := runRouter(t, fake, "#!/bin/sh\ncat >/dev/null\necho 'a **short** answer'\n")
	mentionBot(t, a)
	conv := envelope.Conversation{Source: Name, Ref: "acme.atlassian.net/OPS-42"}
	adaptertest.Settled(t, st, conv)
	posted := fake.posted()
	if len(posted) != 1 {
		t.Fatalf("%d comments, want the answer's", len(posted))
	}
	adaptertest.DeleteAnswer(t, st, conv)
	want := []string{"DELETE " + posted[0].ID}
	if got := fake.changesCopy(); !slices.Equal(got, want) || len(fake.posted()) != 0 {
		t.Errorf("changes %q and %d comments left, want %q and none", got, len(fake.posted()), want)
	}
}

// mentionBot sends a comment_created webhook of a comment on OPS-42 that
// mentions the bot.
func mentionBot(t *testing.T, a *Adapter) {
	t.Helper()
	ada := map[string]any{"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Ada Lovelace", "accountType": "atlassian"}
	body := jiraComment(t, eventCommentCreated, "", "10100", ada, "[~accountid:"+botAccountID+"] please stream the answer")
	if w := post(a, body, HeaderWebhookID, "hook-1"); w.Code != http.StatusNoContent {
		t.Fatalf("comment_created: %d %s", w.Code, w.Body)
	}
}
