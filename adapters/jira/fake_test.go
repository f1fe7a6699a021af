package jira

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchboardhq/switchboard/adapters"
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
// and adding and listing comments. It enforces authentication, checks the
// bodies it is sent and records what it was asked.
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
	calls      map[string]int              // "GET myself", "POST comment", …
	nextID     int
}

type fakeComment struct {
	ID, Issue, Body string
}

var (
	commentPath = regexp.MustCompile(`^/rest/api/2/issue/([^/]+)/comment$`)
	issuePath   = regexp.MustCompile(`^/rest/api/2/issue/([^/]+)$`)
)

func newFakeJira(t testing.TB) *fakeJira {
	f := &fakeJira{
		auth:   "Basic " + base64.StdEncoding.EncodeToString([]byte(testEmail+":"+testAPIToken)),
		myself: map[string]any{"accountId": botAccountID, "displayName": "Switchboard", "accountType": "atlassian", "active": true},
		users:  map[string]string{accountPrefix + graceID: "Grace Hopper", "mkeller": "Maria Keller"},
		calls:  map[string]int{},
		nextID: 20000,
	}
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
	case issuePath.MatchString(p):
		kind = "issue"
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
		f.mu.Unlock()
		writeJSON(w, http.StatusCreated, map[string]any{"id": c.ID, "self": f.srv.URL + p + "/" + c.ID, "body": text,
			"author": map[string]any{"accountId": botAccountID, "displayName": "Switchboard"}})
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"errorMessages": []string{"no such endpoint: " + r.Method + " " + p}})
	}
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

// recorder is a test Ingress that records what it was given and reports a
// duplicate for an envelope id it saw before, as the store does.
type recorder struct {
	mu   sync.Mutex
	ins  []adapters.Inbound
	fail error // Ingest returns it (and records nothing) while set
}

func newRecorder() *recorder { return &recorder{} }

func (r *recorder) Ingest(_ context.Context, in adapters.Inbound) (adapters.Outcome, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return adapters.Outcome{}, r.fail
	}
	dup := false
	for _, prev := range r.ins {
		dup = dup || prev.Envelope.ID == in.Envelope.ID
	}
	r.ins = append(r.ins, in)
	return adapters.Outcome{SessionID: "s1", Seq: int64(len(r.ins)), Duplicate: dup}, nil
}

func (r *recorder) setFail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = err
}

func (r *recorder) all() []adapters.Inbound {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]adapters.Inbound(nil), r.ins...)
}

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
			if v := counterValue(a.metrics.events.WithLabelValues(ev, o)); v > 0 {
				m[o] += v
			}
		}
	}
	return m
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// eventually waits up to 10s for cond, which another goroutine makes true.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
