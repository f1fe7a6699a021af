package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/client"
)

// TestCatchUpAfterKill proves GitHub's catch-up after downtime end to end,
// with the real binary and a SIGKILL: a comment mentioning the bot on
// acme/api#12, delivered live as a signed issue_comment webhook, starts a
// session; the gateway is killed; three comments and one of the bot's own
// are written on the issue meanwhile (GitHub never redelivers a webhook);
// the gateway restarts on the same store, and its on-start catch-up, through
// the REST API, brings the session the three new comments, once each, in
// order of creation, after the live one (listed again, stored once), and
// not the bot's own. A second catch-up, asked for through the API, stores
// nothing (New == 0) and the session's log does not grow, and /readyz
// reports the github channel's catch-up.
func TestCatchUpAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const (
		token   = "catch-up-test-token-0123456789abcdef"
		secret  = "catch-up-test-webhook-secret-0123456789"
		ghToken = "ghp_catchuptest0123456789abcdef"
		login   = "switchboard-bot"
		repo    = "acme/api"
		issue   = 12
	)
	ctx := context.Background()
	gh := newCatchUpGitHub(t, ghToken, login, repo, issue)

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "switchboard.yaml")
	cfg := fmt.Sprintf(`
adapters:
  github:
    webhook_secret: %s
    token: %s
    login: %s
    api_url: %s/
    reactions: {enabled: false}
routes:
  - name: github-issues
    match: {source: github, where: [%q]}
    session: {by: conversation}
    runtime: inbox
catch_up:
  window: 24h
`, secret, ghToken, login, gh.srv.URL, repo)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", cfgPath, "--data", filepath.Join(dir, "data")}

	gw := startGateway(t, token, args...)
	// The first start's catch-up marks acme/api (a place the route names)
	// from now; wait for it so the live comment comes after it.
	waitCatchUpStatus(t, gw.URL, time.Time{})

	// A live comment mentioning the bot starts a session.
	live := gh.addComment("alice", "User", "@"+login+" the build fails on main, can you look?")
	payload, err := json.Marshal(map[string]any{
		"action":     "created",
		"issue":      gh.issueJSON(),
		"comment":    gh.commentJSON(live),
		"repository": gh.repoJSON(),
		"sender":     map[string]any{"login": "alice", "id": 1001, "type": "User"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := postGitHubWebhook(gw.URL, secret, "issue_comment", "delivery-1", payload); err != nil {
		t.Fatal(err)
	}
	sessionID, err := sessionOf(ctx, gw.URL, token, fmt.Sprintf("%s#%d", repo, issue))
	if err != nil {
		t.Fatal(err)
	}

	gw.kill()
	// Written while the gateway is down: three comments, and one of the
	// gateway's own (a reply of its account), which is not to be ingested.
	var written []ghComment
	for _, body := range []string{"It started after the dependency bump.", "Here is the log: https://ci.example.com/run/77", "Also fails on release-1.4."} {
		written = append(written, gh.addComment("bob", "User", body))
	}
	gh.addComment(login, "User", "Looking into it.")

	restart := time.Now()
	gw = startGateway(t, token, args...)
	c := client.New(gw.URL, token, nil)
	wantIDs := []string{envID(live.ID)}
	for _, w := range written {
		wantIDs = append(wantIDs, envID(w.ID))
	}

	// The on-start catch-up brings the three comments.
	var got []client.Record
	deadline := time.Now().Add(20 * time.Second)
	for {
		p, err := c.Messages(ctx, sessionID, 0, 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		got = p.Messages
		if len(got) >= len(wantIDs) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ids := inboundIDs(got); !slices.Equal(ids, wantIDs) {
		st, err := readyzCatchUp(gw.URL)
		t.Fatalf("after the restart the session holds %v, want %v (the live comment, then the three written while down, once each); /readyz catch_up: %+v %v",
			ids, wantIDs, st, err)
	}
	if len(got) != len(wantIDs) {
		t.Fatalf("the session holds %d records, want %d inbound ones only", len(got), len(wantIDs))
	}
	for i, w := range written {
		if rec := got[i+1]; rec.Envelope.Text != w.Body || rec.Envelope.Actor.Display != "bob" {
			t.Errorf("record %d: text %q by %q, want %q by bob", i+1, rec.Envelope.Text, rec.Envelope.Actor.Display, w.Body)
		}
	}
	st := waitCatchUpStatus(t, gw.URL, restart)
	// Found: the live comment, listed again, and the three new ones; not
	// the gateway's own.
	if st.Trigger != "start" || st.Error != "" || st.Found != len(wantIDs) || st.New != len(written) {
		t.Errorf("/readyz catch_up.github after the restart = %+v, want trigger start, no error, found %d, new %d",
			st, len(wantIDs), len(written))
	}

	// Asked again, the catch-up finds nothing new.
	rep, err := c.CatchUp(ctx, "github")
	if err != nil {
		t.Fatalf("POST /v3/channels/github/catch-up: %v", err)
	}
	if rep.New != 0 || rep.Error != "" {
		t.Errorf("second catch-up = %+v, want New 0 and no error", rep)
	}
	s, err := c.Session(ctx, sessionID)
	if err != nil {
		t.Fatal(err)
	}
	if s.LastSeq != int64(len(wantIDs)) {
		t.Errorf("after the second catch-up the session's last seq is %d, want %d (nothing appended)", s.LastSeq, len(wantIDs))
	}
	if calls := gh.listings(); calls < 2 {
		t.Errorf("the fake GitHub was listed %d times, want at least 2 (on start, on request)", calls)
	}
}

// envID is the envelope id of issue comment id (created), live or caught up.
func envID(id int64) string { return "github:issue-comment/" + strconv.FormatInt(id, 10) }

// inboundIDs returns the envelope ids of the inbound records, in log order.
func inboundIDs(recs []client.Record) []string {
	var ids []string
	for _, r := range recs {
		if r.Direction == "inbound" {
			ids = append(ids, r.Envelope.ID)
		}
	}
	return ids
}

// catchUpStatus is a channel's entry in /readyz's catch_up section.
type catchUpStatus struct {
	At      time.Time `json:"at"`
	Since   time.Time `json:"since"`
	Trigger string    `json:"trigger"`
	Error   string    `json:"error"`
	Found   int       `json:"found"`
	New     int       `json:"new"`
}

// waitCatchUpStatus polls /readyz (up to 20s) until it reports a github
// catch-up that started at or after since, and returns it.
func waitCatchUpStatus(t *testing.T, base string, since time.Time) catchUpStatus {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := readyzCatchUp(base)
		if err != nil {
			t.Fatal(err)
		}
		if gs, ok := st["github"]; ok && !gs.At.Before(since.Truncate(time.Second)) {
			return gs
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz has no github catch-up since %v after 20s: %+v", since, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readyzCatchUp(base string) (map[string]catchUpStatus, error) {
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		return nil, fmt.Errorf("GET /readyz: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Status  string                   `json:"status"`
		CatchUp map[string]catchUpStatus `json:"catch_up"`
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("GET /readyz: %s: %s", resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("GET /readyz: %w", err)
	}
	return body.CatchUp, nil
}

// postGitHubWebhook delivers a webhook as GitHub does: signed with
// X-Hub-Signature-256 over the body.
func postGitHubWebhook(base, secret, event, delivery string, body []byte) error {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req, err := http.NewRequest(http.MethodPost, base+"/hooks/github", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitHub-Hookshot/test")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", event, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(answer)) != "ingested" {
		return fmt.Errorf("webhook %s: %s %q, want 200 ingested", event, resp.Status, answer)
	}
	return nil
}

// sessionOf returns the only session, checking that it holds the github
// conversation ref.
func sessionOf(ctx context.Context, base, token, ref string) (string, error) {
	var list struct {
		Sessions []client.Session `json:"sessions"`
	}
	if err := getJSON(ctx, base+"/v3/sessions", token, &list); err != nil {
		return "", err
	}
	if len(list.Sessions) != 1 {
		return "", fmt.Errorf("%d sessions, want 1", len(list.Sessions))
	}
	id := list.Sessions[0].ID
	var convs struct {
		Conversations []struct {
			Conversation struct {
				Source string `json:"source"`
				Ref    string `json:"ref"`
			} `json:"conversation"`
		} `json:"conversations"`
	}
	if err := getJSON(ctx, base+"/v3/sessions/"+id+"/conversations", token, &convs); err != nil {
		return "", err
	}
	if len(convs.Conversations) != 1 || convs.Conversations[0].Conversation.Source != "github" || convs.Conversations[0].Conversation.Ref != ref {
		return "", fmt.Errorf("session %s holds %+v, want github %s", id, convs.Conversations, ref)
	}
	return id, nil
}

func getJSON(ctx context.Context, url, token string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// ghComment is an issue comment the fake GitHub holds.
type ghComment struct {
	ID       int64
	User     string
	UserType string
	Body     string
	Created  time.Time // whole seconds, as GitHub's timestamps
}

// catchUpGitHub is a minimal fake of GitHub's REST API holding one
// repository with one issue, serving what the adapter's catch-up calls:
// GET /user, the repository's issue comment and review comment listings
// (since, sort=created, direction=asc, per_page and page, with a Link
// header when there is a next page), and GET of the issue. Everything else
// is GitHub's 404; a request without the token is GitHub's 401.
type catchUpGitHub struct {
	srv   *httptest.Server
	token string
	login string
	repo  string
	issue int

	mu       sync.Mutex
	nextID   int64
	comments []ghComment
	listed   int
}

func newCatchUpGitHub(t *testing.T, token, login, repo string, issue int) *catchUpGitHub {
	g := &catchUpGitHub{token: token, login: login, repo: repo, issue: issue, nextID: 1500000000}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /user", func(w http.ResponseWriter, r *http.Request) {
		writeGitHubJSON(w, http.StatusOK, map[string]any{"login": login, "id": 9000, "type": "User"}, "")
	})
	mux.HandleFunc("GET /repos/{owner}/{repo}/issues/comments", g.listIssueComments)
	mux.HandleFunc("GET /repos/{owner}/{repo}/pulls/comments", func(w http.ResponseWriter, r *http.Request) {
		if !g.isRepo(r) {
			notFound(w)
			return
		}
		writeGitHubJSON(w, http.StatusOK, []any{}, "")
	})
	mux.HandleFunc("GET /repos/{owner}/{repo}/issues/{n}", func(w http.ResponseWriter, r *http.Request) {
		if !g.isRepo(r) || r.PathValue("n") != strconv.Itoa(issue) {
			notFound(w)
			return
		}
		writeGitHubJSON(w, http.StatusOK, g.issueJSON(), "")
	})
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.Header.Get("Authorization"); a != "Bearer "+token && a != "token "+token {
			writeGitHubJSON(w, http.StatusUnauthorized, map[string]string{"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}, "")
			return
		}
		if _, pattern := mux.Handler(r); pattern == "" {
			notFound(w)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *catchUpGitHub) isRepo(r *http.Request) bool {
	return strings.EqualFold(r.PathValue("owner")+"/"+r.PathValue("repo"), g.repo)
}

// addComment writes a comment on the issue now.
func (g *catchUpGitHub) addComment(user, userType, body string) ghComment {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.nextID++
	c := ghComment{ID: g.nextID, User: user, UserType: userType, Body: body, Created: time.Now().UTC().Truncate(time.Second)}
	g.comments = append(g.comments, c)
	return c
}

// listings returns how many times the issue comments were listed.
func (g *catchUpGitHub) listings() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.listed
}

// listIssueComments serves GET /repos/{owner}/{repo}/issues/comments:
// the comments updated at or after since, oldest first, a page at a time.
func (g *catchUpGitHub) listIssueComments(w http.ResponseWriter, r *http.Request) {
	if !g.isRepo(r) {
		notFound(w)
		return
	}
	q := r.URL.Query()
	var since time.Time
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			writeGitHubJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "Validation Failed"}, "")
			return
		}
		since = t
	}
	if (q.Get("sort") != "" && q.Get("sort") != "created") || (q.Get("direction") != "" && q.Get("direction") != "asc") {
		writeGitHubJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "the fake serves sort=created&direction=asc only"}, "")
		return
	}
	perPage, page := 30, 1
	if n, err := strconv.Atoi(q.Get("per_page")); err == nil && n > 0 {
		perPage = min(n, 100)
	}
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n > 0 {
		page = n
	}
	g.mu.Lock()
	g.listed++
	var match []ghComment
	for _, c := range g.comments { // held in order of creation
		if !c.Created.Before(since) { // never edited: updated_at is created_at
			match = append(match, c)
		}
	}
	g.mu.Unlock()
	out := []any{}
	from := min((page-1)*perPage, len(match))
	to := min(from+perPage, len(match))
	for _, c := range match[from:to] {
		out = append(out, g.commentJSON(c))
	}
	link := ""
	if to < len(match) {
		next := *r.URL
		nq := next.Query()
		nq.Set("page", strconv.Itoa(page+1))
		next.RawQuery = nq.Encode()
		link = fmt.Sprintf(`<%s%s>; rel="next"`, g.srv.URL, next.RequestURI())
	}
	writeGitHubJSON(w, http.StatusOK, out, link)
}

func (g *catchUpGitHub) repoURL() string { return g.srv.URL + "/repos/" + g.repo }

func (g *catchUpGitHub) issueJSON() map[string]any {
	return map[string]any{
		"id":       700012,
		"number":   g.issue,
		"title":    "Build fails on main",
		"state":    "open",
		"user":     map[string]any{"login": "alice", "id": 1001, "type": "User"},
		"url":      fmt.Sprintf("%s/issues/%d", g.repoURL(), g.issue),
		"html_url": fmt.Sprintf("https://github.com/%s/issues/%d", g.repo, g.issue),
	}
}

func (g *catchUpGitHub) commentJSON(c ghComment) map[string]any {
	ts := c.Created.Format(time.RFC3339)
	return map[string]any{
		"id":                 c.ID,
		"url":                fmt.Sprintf("%s/issues/comments/%d", g.repoURL(), c.ID),
		"html_url":           fmt.Sprintf("https://github.com/%s/issues/%d#issuecomment-%d", g.repo, g.issue, c.ID),
		"issue_url":          fmt.Sprintf("%s/issues/%d", g.repoURL(), g.issue),
		"body":               c.Body,
		"user":               map[string]any{"login": c.User, "id": 1000 + len(c.User), "type": c.UserType},
		"created_at":         ts,
		"updated_at":         ts,
		"author_association": "MEMBER",
	}
}

func (g *catchUpGitHub) repoJSON() map[string]any {
	owner, name, _ := strings.Cut(g.repo, "/")
	return map[string]any{
		"id":        4200,
		"name":      name,
		"full_name": g.repo,
		"owner":     map[string]any{"login": owner, "id": 4201, "type": "Organization"},
		"url":       g.repoURL(),
	}
}

func notFound(w http.ResponseWriter) {
	writeGitHubJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}, "")
}

func writeGitHubJSON(w http.ResponseWriter, code int, v any, link string) {
	if link != "" {
		w.Header().Set("Link", link)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
