package jira

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
)

const (
	testEmail    = "bot@acme.example"
	testAPIToken = "cloud-api-token"
	testPAT      = "dc-personal-access-token"
	testSecret   = "It's a Secret to Everybody"
	testURLToken = "u7Gk2pQx9LmN4rTs"
	botAccountID = "5f0c1d2e3f4a5b6c7d8e9f00"
	graceID      = "5c2f00aa11bb22cc33dd44ee"
)

// fakeJira is a fake Jira REST API v2: myself, user lookups, issue lookup,
// adding and listing comments, and the issue searches a catch-up makes
// (see serveSearch). It enforces authentication, checks the bodies it
// is sent and records what it was asked. With Bearer authentication it is
// a Data Center site (GET search, paged by startAt), else a Cloud site
// (GET search/jql, paged by nextPageToken; GET search is gone).
type fakeJira struct {
	srv *httptest.Server

	mu         sync.Mutex
	auth       string         // the Authorization header every request must carry
	myself     map[string]any // GET myself answer
	users      map[string]string
	usersBlock chan struct{}               // when set, user lookups wait for it
	comments   []fakeComment               // accepted comments, in order
	postErrors []func(http.ResponseWriter) // consumed, one per post, before accepting
	problems   []string                    // malformed requests seen
	editErrors []func(http.ResponseWriter) // consumed, one per comment PUT or DELETE, before accepting
	changes    []string                    // "PUT 20001", "DELETE 20002": accepted changes, in order
	calls      map[string]int              // "GET myself", "POST comment", …
	nextID     int

	// The issues a catch-up searches (see serveSearch).
	zone     *time.Location   // the account's time zone: JQL dates and timestamps are in it
	now      func() time.Time // when comments the bot posts are created
	issues   []*fakeIssue     // in creation order
	projects map[string]bool  // project keys that exist
	// embedMax is how many comments a search returns per issue (Jira
	// Cloud: 20); searchCap and commentCap cap maxResults.
	embedMax, searchCap, commentCap int
	failAt                          map[string]func(http.ResponseWriter) // "search#2", "comments#1": the n-th request (from 1) of a kind fails so
	onSearch                        func(n int)                          // called, unlocked, before the n-th search request is answered
	searches                        []string                             // the JQL of every search request
	commentLists                    int                                  // GET …/comment requests served from the issues
}

type fakeComment struct {
	ID, Issue, Body string
}

var (
	commentPath = regexp.MustCompile(`^/rest/api/2/issue/([^/]+)/comment$`)
	oneComment  = regexp.MustCompile(`^/rest/api/2/issue/([^/]+)/comment/([^/]+)$`)
	issuePath   = regexp.MustCompile(`^/rest/api/2/issue/([^/]+)$`)
)

func newFakeJira(t testing.TB) *fakeJira {
	f := &fakeJira{
		auth:   "Basic " + base64.StdEncoding.EncodeToString([]byte(testEmail+":"+testAPIToken)),
		myself: map[string]any{"accountId": botAccountID, "displayName": "Switchboard", "accountType": "atlassian", "active": true, "timeZone": fakeZone},
		users:  map[string]string{accountPrefix + graceID: "Grace Hopper", "mkeller": "Maria Keller"},
		calls:  map[string]int{},
		nextID: 20000,

		now:        func() time.Time { return testNow },
		projects:   map[string]bool{},
		embedMax:   20,
		searchCap:  50,
		commentCap: 100,
		failAt:     map[string]func(http.ResponseWriter){},
	}
	zone, err := time.LoadLocation(fakeZone)
	if err != nil {
		t.Fatalf("time zone %s: %v", fakeZone, err)
	}
	f.zone = zone
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeJira) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	p := r.URL.Path
	kind := p
	switch {
	case p == "/rest/api/2/myself":
		kind = "myself"
	case p == "/rest/api/2/user":
		kind = "user"
	case commentPath.MatchString(p):
		kind = "comment"
	case oneComment.MatchString(p):
		kind = "comment/id"
	case issuePath.MatchString(p):
		kind = "issue"
	case p == "/rest/api/2/search":
		kind = "search"
	case p == "/rest/api/2/search/jql":
		kind = "search/jql"
	}
	f.mu.Lock()
	f.calls[r.Method+" "+kind]++
	auth := f.auth
	f.mu.Unlock()
	if r.Header.Get("Authorization") != auth {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"errorMessages": []string{"Client must be authenticated to access this resource."}})
		return
	}
	switch {
	case r.Method == http.MethodGet && kind == "myself":
		f.mu.Lock()
		me := f.myself
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, me)
	case r.Method == http.MethodGet && kind == "user":
		f.mu.Lock()
		block := f.usersBlock
		ref := r.URL.Query().Get("username")
		if id := r.URL.Query().Get("accountId"); id != "" {
			ref = accountPrefix + id
		}
		name, ok := f.users[ref]
		f.mu.Unlock()
		if block != nil {
			select {
			case <-block:
			case <-r.Context().Done():
				return
			}
		}
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]any{"errorMessages": []string{"User does not exist"}})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"accountId": strings.TrimPrefix(ref, accountPrefix), "displayName": name})
	case r.Method == http.MethodGet && kind == "issue":
		id := issuePath.FindStringSubmatch(p)[1]
		if id != "10042" {
			writeJSON(w, http.StatusNotFound, map[string]any{"errorMessages": []string{"Issue does not exist or you do not have permission to see it."}})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": "10042", "key": "OPS-42", "fields": map[string]any{"project": map[string]any{"key": "OPS"}}})
	case r.Method == http.MethodGet && (kind == "search" || kind == "search/jql"):
		f.serveSearch(w, r, kind == "search/jql")
	case r.Method == http.MethodGet && kind == "comment" && f.hasIssue(commentPath.FindStringSubmatch(p)[1]):
		f.serveComments(w, r, commentPath.FindStringSubmatch(p)[1])
	case r.Method == http.MethodGet && kind == "comment":
		key := commentPath.FindStringSubmatch(p)[1]
		f.mu.Lock()
		var list []map[string]any
		for i := len(f.comments) - 1; i >= 0; i-- { // orderBy=-created
			if c := f.comments[i]; c.Issue == key {
				list = append(list, map[string]any{"id": c.ID, "body": c.Body})
			}
		}
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"startAt": 0, "maxResults": 100, "total": len(list), "comments": list})
	case r.Method == http.MethodPost && kind == "comment":
		key := commentPath.FindStringSubmatch(p)[1]
		text, problem := commentBody(r, body)
		f.mu.Lock()
		if problem != "" {
			f.problems = append(f.problems, problem)
			f.mu.Unlock()
			writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessages": []string{problem}})
			return
		}
		if len(f.postErrors) > 0 {
			fail := f.postErrors[0]
			f.postErrors = f.postErrors[1:]
			if fail != nil {
				f.mu.Unlock()
				fail(w)
				return
			}
		}
		f.nextID++
		c := fakeComment{ID: fmt.Sprint(f.nextID), Issue: key, Body: text}
		f.comments = append(f.comments, c)
		if is := f.issue(key); is != nil { // it shows in the issue's comments
			at := f.now()
			is.comments = append(is.comments, &fakeNote{id: c.ID, author: botUser(), body: text, created: at, updated: at})
			is.updated = latest(is.updated, at)
		}
		f.mu.Unlock()
		writeJSON(w, http.StatusCreated, map[string]any{"id": c.ID, "self": f.srv.URL + p + "/" + c.ID, "body": text,
			"author": map[string]any{"accountId": botAccountID, "displayName": "Switchboard"}})
	case kind == "comment/id" && (r.Method == http.MethodGet || r.Method == http.MethodPut || r.Method == http.MethodDelete):
		m := oneComment.FindStringSubmatch(p)
		f.serveComment(w, r, m[1], m[2], body)
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"errorMessages": []string{"no such endpoint: " + r.Method + " " + p}})
	}
}

// serveComment answers GET, PUT and DELETE of
// /rest/api/2/issue/{key}/comment/{id} as Jira's REST API v2 documents
// them: GET and PUT return 200 with the comment (PUT takes {"body": …} in
// wiki markup, 400 when it is missing or empty), DELETE returns 204
// without a body, and a comment that does not exist on the issue is 404
// with errorMessages. Scripted failures (failEdits) come first for PUT and
// DELETE.
func (f *fakeJira) serveComment(w http.ResponseWriter, r *http.Request, key, id string, raw []byte) {
	var in struct {
		Body *string `json:"body"`
	}
	if r.Method == http.MethodPut {
		if err := json.Unmarshal(raw, &in); err != nil || in.Body == nil || *in.Body == "" {
			writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessages": []string{}, "errors": map[string]string{"comment": "Comment body can not be empty!"}})
			return
		}
	}
	f.mu.Lock()
	if r.Method != http.MethodGet && len(f.editErrors) > 0 {
		fail := f.editErrors[0]
		f.editErrors = f.editErrors[1:]
		if fail != nil {
			f.mu.Unlock()
			fail(w)
			return
		}
	}
	i := slices.IndexFunc(f.comments, func(c fakeComment) bool { return c.ID == id && c.Issue == key })
	if i < 0 {
		f.mu.Unlock()
		writeJSON(w, http.StatusNotFound, map[string]any{"errorMessages": []string{"Can not find a comment for the id: " + id + "."}, "errors": map[string]string{}})
		return
	}
	is := f.issue(key)
	switch r.Method {
	case http.MethodDelete:
		f.changes = append(f.changes, "DELETE "+id)
		f.comments = slices.Delete(f.comments, i, i+1)
		if is != nil {
			is.comments = slices.DeleteFunc(is.comments, func(n *fakeNote) bool { return n.id == id })
			is.updated = latest(is.updated, f.now())
		}
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPut:
		f.changes = append(f.changes, "PUT "+id)
		f.comments[i].Body = *in.Body
		if is != nil {
			for _, n := range is.comments {
				if n.id == id {
					n.body, n.updated = *in.Body, f.now()
					is.updated = latest(is.updated, n.updated)
				}
			}
		}
	}
	c := f.comments[i]
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"id": c.ID, "self": f.srv.URL + r.URL.Path, "body": c.Body,
		"author": botUser(), "updateAuthor": botUser(), "created": jiraTime(testNow, f.zone), "updated": jiraTime(f.now(), f.zone)})
}

// failEdits scripts failures of the next comment PUT or DELETE requests
// (nil: answer normally).
func (f *fakeJira) failEdits(fails ...func(http.ResponseWriter)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.editErrors = append(f.editErrors, fails...)
}

// changesCopy returns the accepted PUT and DELETE requests, in order.
func (f *fakeJira) changesCopy() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.changes)
}

// removeComment deletes comment id as a person would in Jira.
func (f *fakeJira) removeComment(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.comments = slices.DeleteFunc(f.comments, func(c fakeComment) bool { return c.ID == id })
}

// commentBody checks a POST …/comment request as Jira's REST API v2 expects
// it: a JSON object whose "body" is the comment's wiki markup. go-jira also
// sends its Comment struct's empty nested objects (author, updateAuthor,
// visibility), which Jira ignores; anything else, or a visibility
// restriction, is a problem.
func commentBody(r *http.Request, raw []byte) (string, string) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return "", "Content-Type is " + ct
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", "body is not a JSON object: " + err.Error()
	}
	var text string
	if err := json.Unmarshal(m["body"], &text); err != nil || text == "" {
		return "", "body.body is not a non-empty string: " + string(m["body"])
	}
	for k, v := range m {
		switch k {
		case "body":
		case "author", "updateAuthor":
			if string(v) != `{"avatarUrls":{}}` && string(v) != `{}` {
				return "", k + " is set: " + string(v)
			}
		case "visibility":
			if string(v) != `{}` {
				return "", "the comment is restricted: " + string(v)
			}
		default:
			return "", "unexpected field " + k
		}
	}
	return text, ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// failWith returns a scripted comment-post failure.
func failWith(status int, header map[string]string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		writeJSON(w, status, map[string]any{"errorMessages": []string{http.StatusText(status)}})
	}
}

func (f *fakeJira) failPosts(fails ...func(http.ResponseWriter)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.postErrors = append(f.postErrors, fails...)
}

func (f *fakeJira) posted() []fakeComment {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeComment(nil), f.comments...)
}

func (f *fakeJira) callCount(call string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[call]
}

func (f *fakeJira) problemsSeen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.problems...)
}

// recorder is the test Ingress of the adapters' tests.
type recorder = adaptertest.Recorder

func newRecorder() *recorder { return &adaptertest.Recorder{} }

// testNow is the fixed clock of the tests.
var testNow = time.Date(2026, 6, 18, 12, 0, 0, 0, time.UTC)

// newTestAdapter builds a Cloud adapter against fake, with mutate applied
// to its configuration.
func newTestAdapter(t testing.TB, fake *fakeJira, in adapters.Ingress, mutate func(*Config)) *Adapter {
	t.Helper()
	cfg := &Config{BaseURL: fake.srv.URL, Email: testEmail, APIToken: testAPIToken, WebhookSecret: testSecret}
	if mutate != nil {
		mutate(cfg)
	}
	a, err := New(cfg, adapters.Deps{
		Ingress:    in,
		Now:        func() time.Time { return testNow },
		HTTPClient: fake.srv.Client(),
		Registry:   prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

// signedRequest builds a POST / webhook request signed with secret.
func signedRequest(body []byte, secret string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(body)))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(SignatureHeader, Sign([]byte(secret), body))
	return r
}

// post sends body through the adapter's handler, signed with testSecret,
// with the given header name/value pairs, and returns the response.
func post(a *Adapter, body []byte, header ...string) *httptest.ResponseRecorder {
	r := signedRequest(body, testSecret)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	a.Handler().ServeHTTP(w, r)
	return w
}

// outcomes returns the events counted so far, by outcome, for all events.
func outcomes(a *Adapter) map[string]float64 {
	m := map[string]float64{}
	for _, ev := range []string{"comment_created", "comment_updated", "comment_deleted", "issue_created", "issue_updated", "other"} {
		for _, o := range []string{outcomeIngested, outcomeDuplicate, outcomeDropped, outcomeOwn, outcomeIgnored, outcomeError} {
			if v := adaptertest.CounterValue(a.metrics.events.WithLabelValues(ev, o)); v > 0 {
				m[o] += v
			}
		}
	}
	return m
}

// fakeZone is the time zone of the fake's bot account (UTC−3, no daylight
// saving time), in which the fake reads JQL dates and writes timestamps.
const fakeZone = "America/Sao_Paulo"

// fakeSite is the REST base of the site's self URLs: Jira writes its own
// base URL in them, whatever host the request came to.
const fakeSite = "https://acme.atlassian.net/rest/api/2/"

// fakeIssue is an issue of the fake site.
type fakeIssue struct {
	id, key, project, summary string
	created, updated          time.Time // updated moves with every comment added or edited
	comments                  []*fakeNote
}

// fakeNote is a comment on a fakeIssue.
type fakeNote struct {
	id               string
	author           map[string]any
	body             string
	created, updated time.Time
}

func botUser() map[string]any {
	return map[string]any{"accountId": botAccountID, "displayName": "Switchboard", "accountType": "atlassian"}
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// jiraTime writes t as Jira does, in zone.
func jiraTime(t time.Time, zone *time.Location) string {
	return t.In(zone).Format("2006-01-02T15:04:05.000-0700")
}

// addProject makes project keys exist (searching an unknown one is a 400).
func (f *fakeJira) addProject(keys ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		f.projects[k] = true
	}
}

// addIssue creates issue key (its project is the key's prefix) at created.
func (f *fakeJira) addIssue(key string, created time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	project, _, _ := strings.Cut(key, "-")
	f.projects[project] = true
	f.nextID++
	f.issues = append(f.issues, &fakeIssue{id: fmt.Sprint(f.nextID), key: key, project: project, summary: "Issue " + key, created: created, updated: created})
}

// addComment adds a comment by author on issue key at at, and returns its
// id.
func (f *fakeJira) addComment(key string, author map[string]any, body string, at time.Time) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	is := f.issue(key)
	if is == nil {
		panic("fake: no issue " + key)
	}
	f.nextID++
	n := &fakeNote{id: fmt.Sprint(f.nextID), author: author, body: body, created: at, updated: at}
	is.comments = append(is.comments, n)
	is.updated = latest(is.updated, at)
	return n.id
}

// editComment changes the body of comment id at at.
func (f *fakeJira) editComment(id, body string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, is := range f.issues {
		for _, n := range is.comments {
			if n.id == id {
				n.body, n.updated = body, at
				is.updated = latest(is.updated, at)
				return
			}
		}
	}
	panic("fake: no comment " + id)
}

// issue returns issue key; f.mu is held.
func (f *fakeJira) issue(key string) *fakeIssue {
	for _, is := range f.issues {
		if is.key == key || is.id == key {
			return is
		}
	}
	return nil
}

func (f *fakeJira) hasIssue(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.issue(key) != nil
}

// commentJSON is a comment as the REST API v2 and webhooks show it.
func (f *fakeJira) commentJSON(is *fakeIssue, n *fakeNote) map[string]any {
	return map[string]any{
		"self": fakeSite + "issue/" + is.id + "/comment/" + n.id, "id": n.id,
		"author": n.author, "updateAuthor": n.author, "body": n.body,
		"created": jiraTime(n.created, f.zone), "updated": jiraTime(n.updated, f.zone), "jsdPublic": true,
	}
}

// issueFields are the fields of is that Jira returns, of those asked for
// (nil: the webhook's set, as in comment_* events).
func (f *fakeJira) issueFields(is *fakeIssue, asked map[string]bool) map[string]any {
	all := map[string]any{
		"summary":   is.summary,
		"issuetype": map[string]any{"id": "10001", "name": "Task"},
		"project":   map[string]any{"key": is.project, "name": "Project " + is.project},
		"assignee":  nil,
		"priority":  map[string]any{"id": "3", "name": "Medium"},
		"status":    map[string]any{"id": "1", "name": "Open"},
		"updated":   jiraTime(is.updated, f.zone),
		"created":   jiraTime(is.created, f.zone),
	}
	if asked == nil {
		delete(all, "updated")
		delete(all, "created")
		return all
	}
	out := map[string]any{}
	for k, v := range all {
		if asked[k] || asked["*all"] || asked["*navigable"] {
			out[k] = v
		}
	}
	if asked["comment"] || asked["*all"] {
		var list []map[string]any
		for _, n := range is.comments {
			if len(list) == f.embedMax {
				break
			}
			list = append(list, f.commentJSON(is, n))
		}
		out["comment"] = map[string]any{"comments": list, "maxResults": len(list), "total": len(is.comments), "startAt": 0}
	}
	return out
}

// webhook is the comment_created or comment_updated webhook Jira sends for
// comment id, as it stands.
func (f *fakeJira) webhook(t testing.TB, event, id string) []byte {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, is := range f.issues {
		for _, n := range is.comments {
			if n.id != id {
				continue
			}
			b, err := json.Marshal(map[string]any{
				"timestamp":    n.updated.UnixMilli(),
				"webhookEvent": event,
				"comment":      f.commentJSON(is, n),
				"issue":        map[string]any{"id": is.id, "self": fakeSite + "issue/" + is.id, "key": is.key, "fields": f.issueFields(is, nil)},
			})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatalf("fake: no comment %s", id)
	return nil
}

// jqlRe is the one JQL the fake understands: a catch-up's search.
var jqlRe = regexp.MustCompile(`^project = "([A-Z][A-Z0-9_]*)" AND updated >= "(\d{4}/\d\d/\d\d \d\d:\d\d)" ORDER BY created ASC, key ASC$`)

// serveSearch answers GET /rest/api/2/search (Data Center: startAt,
// maxResults, total) and GET /rest/api/2/search/jql (Cloud: nextPageToken,
// isLast), as Jira does: a JQL it cannot read, or naming a project that
// does not exist, is a 400; dates are read to the minute in the account's
// time zone; maxResults is capped; each issue carries its first embedMax
// comments.
func (f *fakeJira) serveSearch(w http.ResponseWriter, r *http.Request, cloudEndpoint bool) {
	f.mu.Lock()
	dc := strings.HasPrefix(f.auth, "Bearer ")
	f.mu.Unlock()
	switch {
	case dc && cloudEndpoint:
		writeJSON(w, http.StatusNotFound, map[string]any{"errorMessages": []string{"null for uri: " + r.URL.String()}})
		return
	case !dc && !cloudEndpoint:
		writeJSON(w, http.StatusGone, map[string]any{"errorMessages": []string{"The requested API has been removed. Please migrate to the /rest/api/3/search/jql API."}})
		return
	}
	q := r.URL.Query()
	f.mu.Lock()
	f.searches = append(f.searches, q.Get("jql"))
	n, hook := len(f.searches), f.onSearch
	fail := f.failAt["search#"+fmt.Sprint(n)]
	f.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	if fail != nil {
		fail(w)
		return
	}
	m := jqlRe.FindStringSubmatch(q.Get("jql"))
	if m == nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessages": []string{"Error in the JQL Query: " + q.Get("jql")}})
		return
	}
	since, err := time.ParseInLocation("2006/01/02 15:04", m[2], f.zone)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessages": []string{err.Error()}})
		return
	}
	size := f.searchCap
	if v, err := strconv.Atoi(q.Get("maxResults")); err == nil && v > 0 && v < size {
		size = v
	}
	start := 0
	if cloudEndpoint {
		if tok := q.Get("nextPageToken"); tok != "" {
			if _, err := fmt.Sscanf(tok, "tok-%d", &start); err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessages": []string{"bad nextPageToken"}})
				return
			}
		}
	} else if v, err := strconv.Atoi(q.Get("startAt")); err == nil && v > 0 {
		start = v
	}
	asked := map[string]bool{}
	for _, k := range strings.Split(q.Get("fields"), ",") {
		asked[k] = true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.projects[m[1]] {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessages": []string{"The value '" + m[1] + "' does not exist for the field 'project'."}})
		return
	}
	var match []*fakeIssue
	for _, is := range f.issues {
		if is.project == m[1] && !is.updated.Before(since) {
			match = append(match, is)
		}
	}
	slices.SortStableFunc(match, func(x, y *fakeIssue) int {
		if c := x.created.Compare(y.created); c != 0 {
			return c
		}
		return strings.Compare(x.key, y.key)
	})
	issues := []map[string]any{}
	for i := start; i < len(match) && i < start+size; i++ {
		is := match[i]
		issues = append(issues, map[string]any{"id": is.id, "self": fakeSite + "issue/" + is.id, "key": is.key, "fields": f.issueFields(is, asked)})
	}
	if !cloudEndpoint {
		writeJSON(w, http.StatusOK, map[string]any{"startAt": start, "maxResults": size, "total": len(match), "issues": issues})
		return
	}
	ans := map[string]any{"issues": issues, "isLast": start+size >= len(match)}
	if start+size < len(match) {
		ans["nextPageToken"] = fmt.Sprintf("tok-%d", start+size)
	}
	writeJSON(w, http.StatusOK, ans)
}

// serveComments answers GET /rest/api/2/issue/<key>/comment for an issue of
// the fake site: startAt, maxResults (capped), orderBy created or -created.
func (f *fakeJira) serveComments(w http.ResponseWriter, r *http.Request, key string) {
	q := r.URL.Query()
	f.mu.Lock()
	f.commentLists++
	fail := f.failAt["comments#"+fmt.Sprint(f.commentLists)]
	f.mu.Unlock()
	if fail != nil {
		fail(w)
		return
	}
	size := f.commentCap
	if v, err := strconv.Atoi(q.Get("maxResults")); err == nil && v > 0 && v < size {
		size = v
	}
	start, _ := strconv.Atoi(q.Get("startAt"))
	f.mu.Lock()
	defer f.mu.Unlock()
	is := f.issue(key)
	notes := slices.Clone(is.comments)
	switch q.Get("orderBy") {
	case "", "created", "+created":
	case "-created":
		slices.Reverse(notes)
	default:
		writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessages": []string{"bad orderBy " + q.Get("orderBy")}})
		return
	}
	list := []map[string]any{}
	for i := max(start, 0); i < len(notes) && i < start+size; i++ {
		list = append(list, f.commentJSON(is, notes[i]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"startAt": start, "maxResults": size, "total": len(notes), "comments": list})
}

// searchLog returns the JQL of the searches so far.
func (f *fakeJira) searchLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.searches)
}
