package jira

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/router"
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

	dir := t.TempDir()
	agent := filepath.Join(dir, "agent.sh")
	// The agent answers in Markdown, naming the envelope it answers (the
	// first field of the envelope JSON on stdin).
	script := "#!/bin/sh\nid=$(sed -n '1s/^{\"id\":\"\\([^\"]*\\)\".*/\\1/p')\n" +
		"printf 'On it: **%s**, see [the runbook](https://runbooks.example.com/deploy).\\n' \"$id\"\n"
	if err := os.WriteFile(agent, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(fmt.Appendf(nil, `
routes:
  - name: jira
    match: {source: jira, where: ["OPS"]}
    runtime: exec
    exec: {command: [%q]}
`, agent), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "sb.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	var rt *router.Router
	a := newTestAdapter(t, fake, adapters.IngressFunc(func(ctx context.Context, in adapters.Inbound) (adapters.Outcome, error) {
		return rt.Ingest(ctx, in)
	}), nil)
	runtimes, err := router.Runtimes(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	rt, err = router.New(router.Options{
		Config: cfg, Store: st, Sinks: map[string]adapters.Sink{Name: a}, Runtimes: runtimes,
		Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler), Poll: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = rt.Run(ctx) }()
	runDone := make(chan struct{})
	go func() { defer close(runDone); _ = a.Run(ctx) }() // GET myself: learns the bot's account
	defer func() { cancel(); <-done; <-runDone }()

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
	eventually(t, func() bool { return len(fake.posted()) >= 1 })

	// 2. Jira echoes the gateway's comment back, in both shapes.
	own := fake.posted()[0]
	send("echo", jiraComment(t, eventCommentCreated, "", own.ID, bot, own.Body), "hook-3")
	send("echo as issue_commented", jiraComment(t, eventIssueUpdated, "issue_commented", own.ID, bot, own.Body), "hook-4")

	// 3. A comment without a mention on the bound issue steers the same
	// session.
	send("follow-up", jiraComment(t, eventCommentCreated, "", "10102", ada, "it fails on the *staging* cluster only"), "hook-5")
	eventually(t, func() bool { return len(fake.posted()) >= 2 })

	var ds []store.Delivery
	eventually(t, func() bool {
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

// jiraComment is a Jira Cloud webhook for comment id by author on OPS-42 of
// acme.atlassian.net: event comment_created, or jira:issue_updated with
// typeName as its issue_event_type_name.
func jiraComment(t *testing.T, event, typeName, id string, author map[string]any, body string) []byte {
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
