package github

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
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
	dto "github.com/prometheus/client_model/go"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
	"github.com/switchboardhq/switchboard/internal/testclock"
)

const (
	testToken  = "ghp_testtoken"
	testSecret = "It's a Secret to Everybody" // GitHub's documented test secret
	testAppID  = 4242
	testSlug   = "switchboard-app"
	testLogin  = "switchboard"
)

func newClock() *testclock.Clock { return testclock.New(time.Date(2026, 6, 18, 12, 0, 0, 0, time.UTC)) }

var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
)

// appKey returns an RSA key generated once per test binary, as a GitHub App
// private key is.
func appKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		testKey = k
	})
	return testKey
}

// appKeyPEM is appKey in the PKCS#1 PEM form GitHub hands out.
func appKeyPEM(t testing.TB) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(appKey(t))}))
}

// fakeComment is a comment the fake holds.
type fakeComment struct {
	ID        int64
	Kind      string // "issue" or "review"
	Repo      string
	Number    int
	InReplyTo int64
	Body      string
	Token     string
	Created   time.Time
	// Updated is the last edit (Created when never edited).
	Updated time.Time
	// User is the author's login, UserType "User" or "Bot"; AppID is
	// performed_via_github_app.id (0: none). Comments the adapter posts get
	// the token's account (and, with an installation token, the App).
	User     string
	UserType string
	AppID    int64
	Path     string // review comments: the file
	Line     int
}

// fakeGitHub is a fake GitHub REST API. It enforces authentication (the
// personal access token, installation tokens it minted, and RS256 App JWTs
// checked against the app's public key and the shared clock) and records
// what it was asked.
type fakeGitHub struct {
	srv   *httptest.Server
	clock *testclock.Clock
	pub   *rsa.PublicKey

	mu          sync.Mutex
	installs    map[string]int64  // lower repo → installation id
	instTokens  map[string]instTk // token → installation and expiry
	mints       []int64           // installations a token was minted for
	jwtClaims   []map[string]any  // claims of every accepted JWT
	pulls       map[string]prHead // "owner/repo#n" → head
	comments    []fakeComment
	postErrors  []func(http.ResponseWriter) // consumed, one per comment POST, before accepting
	editErrors  []func(http.ResponseWriter) // consumed, one per comment PATCH or DELETE, before accepting
	changes     []string                    // "PATCH issue 123", "DELETE review 456": accepted changes, in order
	reactions   []string                    // "issue-comment 123 eyes"
	calls       map[string]int              // "GET /user" → count
	userStatus  int                         // when set, GET /user answers it
	revoked     bool                        // the personal access token is refused (401 Bad credentials)
	nextID      int64
	tokenTTL    time.Duration
	hideListing bool          // comment listings answer empty (eventual consistency)
	appHit      chan struct{} // when set, GET /app signals it (without blocking)

	// Catch-up: the issues (titles by "owner/repo#n"; pull requests are
	// those in pulls), what the repository listings were asked
	// ("acme/api issue since=… page=2"), failures they answer first (one per
	// listing request, nil to pass), a hook called before a listing is
	// answered, and the App's webhook deliveries (newest first) with the
	// ones redelivered.
	issues      map[string]string
	listed      []string
	listFails   []func(http.ResponseWriter)
	beforeList  func(kind string, page int)
	deliveries  []fakeDelivery
	redelivered []int64
}

// fakeDelivery is an App webhook delivery as GET /app/hook/deliveries
// lists it.
type fakeDelivery struct {
	ID     int64
	GUID   string
	At     time.Time
	Status int
	Event  string
}

type instTk struct {
	inst    int64
	expires time.Time
}

func newFakeGitHub(t testing.TB, clock *testclock.Clock) *fakeGitHub {
	f := &fakeGitHub{
		clock:      clock,
		pub:        &appKey(t).PublicKey,
		installs:   map[string]int64{},
		instTokens: map[string]instTk{},
		pulls:      map[string]prHead{},
		calls:      map[string]int{},
		issues:     map[string]string{},
		nextID:     2000000000,
		tokenTTL:   time.Hour,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /user", f.user)
	mux.HandleFunc("GET /app", f.app)
	mux.HandleFunc("POST /app/installations/{id}/access_tokens", f.mint)
	mux.HandleFunc("GET /repos/{owner}/{repo}/installation", f.repoInstallation)
	mux.HandleFunc("GET /repos/{owner}/{repo}/pulls/{n}", f.getPull)
	mux.HandleFunc("POST /repos/{owner}/{repo}/issues/{n}/comments", f.createComment("issue"))
	mux.HandleFunc("POST /repos/{owner}/{repo}/pulls/{n}/comments", f.createComment("review"))
	mux.HandleFunc("GET /repos/{owner}/{repo}/issues/{n}", f.getIssue)
	mux.HandleFunc("GET /repos/{owner}/{repo}/issues/comments", f.listRepoComments("issue"))
	mux.HandleFunc("GET /repos/{owner}/{repo}/pulls/comments", f.listRepoComments("review"))
	mux.HandleFunc("GET /app/hook/deliveries", f.listDeliveries)
	mux.HandleFunc("POST /app/hook/deliveries/{id}/attempts", f.redeliver)
	mux.HandleFunc("GET /repos/{owner}/{repo}/issues/{n}/comments", f.listComments("issue"))
	mux.HandleFunc("GET /repos/{owner}/{repo}/pulls/{n}/comments", f.listComments("review"))
	mux.HandleFunc("POST /repos/{owner}/{repo}/issues/comments/{id}/reactions", f.react("issue-comment"))
	mux.HandleFunc("POST /repos/{owner}/{repo}/pulls/comments/{id}/reactions", f.react("review-comment"))
	mux.HandleFunc("POST /repos/{owner}/{repo}/issues/{id}/reactions", f.react("issue"))
	mux.HandleFunc("PATCH /repos/{owner}/{repo}/issues/comments/{id}", f.changeComment("issue"))
	mux.HandleFunc("PATCH /repos/{owner}/{repo}/pulls/comments/{id}", f.changeComment("review"))
	mux.HandleFunc("DELETE /repos/{owner}/{repo}/issues/comments/{id}", f.changeComment("issue"))
	mux.HandleFunc("DELETE /repos/{owner}/{repo}/pulls/comments/{id}", f.changeComment("review"))
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// GET …/issues/comments/{id} cannot be a mux pattern beside
		// GET …/issues/{n}/comments (both match …/issues/comments/comments).
		if m := commentByID.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodGet {
			kind := map[string]string{"issues": "issue", "pulls": "review"}[m[3]]
			pattern := "GET /repos/{owner}/{repo}/" + m[3] + "/comments/{id}"
			f.mu.Lock()
			f.calls[pattern]++
			f.mu.Unlock()
			r.SetPathValue("owner", m[1])
			r.SetPathValue("repo", m[2])
			r.SetPathValue("id", m[4])
			f.getComment(kind)(w, r)
			return
		}
		_, pattern := mux.Handler(r)
		f.mu.Lock()
		f.calls[pattern]++
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeGitHub) url() string { return f.srv.URL + "/" }

func ghError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg, "documentation_url": "https://docs.github.com/rest"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if v, ok := strings.CutPrefix(h, "Bearer "); ok {
		return v
	}
	v, _ := strings.CutPrefix(h, "token ")
	return v
}

// verifyJWT checks an App JWT: RS256 signature by the app's key, iss the
// app id, iat not in the future, exp in the future and at most 10 minutes
// ahead, as GitHub requires.
func (f *fakeGitHub) verifyJWT(tok string) error {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return fmt.Errorf("not a JWT")
	}
	dec := base64.RawURLEncoding
	hb, err := dec.DecodeString(parts[0])
	if err != nil {
		return err
	}
	var hdr struct{ Alg, Typ string }
	if err := json.Unmarshal(hb, &hdr); err != nil || hdr.Alg != "RS256" {
		return fmt.Errorf("header %s: want alg RS256", hb)
	}
	sig, err := dec.DecodeString(parts[2])
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(f.pub, crypto.SHA256, sum[:], sig); err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	cb, err := dec.DecodeString(parts[1])
	if err != nil {
		return err
	}
	var claims map[string]any
	if err := json.Unmarshal(cb, &claims); err != nil {
		return err
	}
	now := f.clock.Now().Unix()
	iat, _ := claims["iat"].(float64)
	exp, _ := claims["exp"].(float64)
	switch {
	case fmt.Sprint(claims["iss"]) != strconv.Itoa(testAppID):
		return fmt.Errorf("iss %v, want %d", claims["iss"], testAppID)
	case int64(iat) > now:
		return fmt.Errorf("iat %v is in the future", iat)
	case int64(exp) <= now:
		return fmt.Errorf("expired")
	case int64(exp) > now+600:
		return fmt.Errorf("exp more than 10 minutes ahead")
	}
	f.mu.Lock()
	f.jwtClaims = append(f.jwtClaims, claims)
	f.mu.Unlock()
	return nil
}

// authRepo checks that the request may act on repo: the personal access
// token, or an unexpired installation token of repo's installation.
func (f *fakeGitHub) authRepo(w http.ResponseWriter, r *http.Request) (string, bool) {
	tok := bearer(r)
	f.mu.Lock()
	revoked := f.revoked
	f.mu.Unlock()
	if tok == testToken && !revoked {
		return tok, true
	}
	repo := strings.ToLower(r.PathValue("owner") + "/" + r.PathValue("repo"))
	f.mu.Lock()
	it, ok := f.instTokens[tok]
	inst := f.installs[repo]
	f.mu.Unlock()
	switch {
	case !ok || !f.clock.Now().Before(it.expires):
		ghError(w, http.StatusUnauthorized, "Bad credentials")
		return "", false
	case it.inst != inst:
		ghError(w, http.StatusNotFound, "Not Found")
		return "", false
	}
	return tok, true
}

func (f *fakeGitHub) authJWT(w http.ResponseWriter, r *http.Request) bool {
	if err := f.verifyJWT(bearer(r)); err != nil {
		ghError(w, http.StatusUnauthorized, "A JSON web token could not be decoded: "+err.Error())
		return false
	}
	return true
}

func (f *fakeGitHub) user(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	status, revoked := f.userStatus, f.revoked
	f.mu.Unlock()
	if status != 0 {
		ghError(w, status, "scripted failure")
		return
	}
	if bearer(r) != testToken || revoked {
		ghError(w, http.StatusUnauthorized, "Bad credentials")
		return
	}
	writeJSON(w, 200, map[string]any{"login": testLogin, "id": 77, "type": "User"})
}

func (f *fakeGitHub) app(w http.ResponseWriter, r *http.Request) {
	if !f.authJWT(w, r) {
		return
	}
	writeJSON(w, 200, map[string]any{"id": testAppID, "slug": testSlug, "name": "Switchboard App"})
	if f.appHit != nil {
		select {
		case f.appHit <- struct{}{}:
		default:
		}
	}
}

func (f *fakeGitHub) mint(w http.ResponseWriter, r *http.Request) {
	if !f.authJWT(w, r) {
		return
	}
	inst, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	f.mu.Lock()
	defer f.mu.Unlock()
	known := false
	for _, v := range f.installs {
		known = known || v == inst
	}
	if !known {
		ghError(w, http.StatusNotFound, "Not Found")
		return
	}
	f.mints = append(f.mints, inst)
	tok := fmt.Sprintf("ghs_inst%d_%d", inst, len(f.mints))
	exp := f.clock.Now().Add(f.tokenTTL)
	f.instTokens[tok] = instTk{inst: inst, expires: exp}
	writeJSON(w, http.StatusCreated, map[string]any{"token": tok, "expires_at": exp.Format(time.RFC3339)})
}

func (f *fakeGitHub) repoInstallation(w http.ResponseWriter, r *http.Request) {
	if !f.authJWT(w, r) {
		return
	}
	f.mu.Lock()
	inst, ok := f.installs[strings.ToLower(r.PathValue("owner")+"/"+r.PathValue("repo"))]
	f.mu.Unlock()
	if !ok {
		ghError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, 200, map[string]any{"id": inst, "app_id": testAppID})
}

func (f *fakeGitHub) getPull(w http.ResponseWriter, r *http.Request) {
	if _, ok := f.authRepo(w, r); !ok {
		return
	}
	key := r.PathValue("owner") + "/" + r.PathValue("repo") + "#" + r.PathValue("n")
	f.mu.Lock()
	h, ok := f.pulls[key]
	f.mu.Unlock()
	if !ok {
		ghError(w, http.StatusNotFound, "Not Found")
		return
	}
	n, _ := strconv.Atoi(r.PathValue("n"))
	writeJSON(w, 200, map[string]any{"number": n, "state": "open",
		"head": map[string]any{"ref": h.Branch, "sha": h.SHA, "repo": map[string]any{"full_name": h.Repo}}})
}

func (f *fakeGitHub) createComment(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := f.authRepo(w, r)
		if !ok {
			return
		}
		var in struct {
			Body      string `json:"body"`
			InReplyTo int64  `json:"in_reply_to"`
		}
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &in); err != nil || in.Body == "" {
			ghError(w, http.StatusUnprocessableEntity, "Validation Failed")
			return
		}
		if kind == "review" && in.InReplyTo == 0 {
			ghError(w, http.StatusUnprocessableEntity, "in_reply_to is required by this fake")
			return
		}
		if n := len([]rune(in.Body)); n > 65536 {
			ghError(w, http.StatusUnprocessableEntity, "Body is too long (maximum is 65536 characters)")
			return
		}
		f.mu.Lock()
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
		n, _ := strconv.Atoi(r.PathValue("n"))
		c := fakeComment{ID: f.nextID, Kind: kind, Repo: r.PathValue("owner") + "/" + r.PathValue("repo"), Number: n,
			InReplyTo: in.InReplyTo, Body: in.Body, Token: tok, Created: f.clock.Now(), Updated: f.clock.Now(),
			User: testLogin, UserType: "User"}
		if tok != testToken {
			c.User, c.UserType, c.AppID = testSlug+"[bot]", "Bot", testAppID
		}
		f.comments = append(f.comments, c)
		f.mu.Unlock()
		writeJSON(w, http.StatusCreated, map[string]any{"id": c.ID, "body": c.Body, "in_reply_to_id": c.InReplyTo,
			"created_at": c.Created.Format(time.RFC3339)})
	}
}

func (f *fakeGitHub) listComments(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := f.authRepo(w, r); !ok {
			return
		}
		repo := r.PathValue("owner") + "/" + r.PathValue("repo")
		n, _ := strconv.Atoi(r.PathValue("n"))
		var since time.Time
		if s := r.URL.Query().Get("since"); s != "" {
			since, _ = time.Parse(time.RFC3339, s)
		}
		out := []map[string]any{}
		f.mu.Lock()
		if !f.hideListing {
			for _, c := range f.comments {
				if c.Kind == kind && c.Repo == repo && c.Number == n && !c.Created.Before(since) {
					out = append(out, map[string]any{"id": c.ID, "body": c.Body, "created_at": c.Created.Format(time.RFC3339)})
				}
			}
		}
		f.mu.Unlock()
		writeJSON(w, 200, out)
	}
}

func (f *fakeGitHub) react(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := f.authRepo(w, r); !ok {
			return
		}
		var in struct{ Content string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		f.mu.Lock()
		f.reactions = append(f.reactions, kind+" "+r.PathValue("id")+" "+in.Content)
		f.mu.Unlock()
		writeJSON(w, http.StatusCreated, map[string]any{"id": 1, "content": in.Content})
	}
}

// commentByID is the path of one issue or review comment.
var commentByID = regexp.MustCompile(`^/repos/([^/]+)/([^/]+)/(issues|pulls)/comments/([0-9]+)$`)

// findComment returns the index of comment id of kind in repo, or -1; f.mu
// is held.
func (f *fakeGitHub) findComment(kind, repo, id string) int {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return -1
	}
	for i, c := range f.comments {
		if c.ID == n && c.Kind == kind && strings.EqualFold(c.Repo, repo) {
			return i
		}
	}
	return -1
}

// getComment answers GET /repos/{owner}/{repo}/issues/comments/{id} and
// …/pulls/comments/{id}: the comment, or 404 {"message":"Not Found"}.
func (f *fakeGitHub) getComment(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := f.authRepo(w, r); !ok {
			return
		}
		f.mu.Lock()
		i := f.findComment(kind, r.PathValue("owner")+"/"+r.PathValue("repo"), r.PathValue("id"))
		var c fakeComment
		if i >= 0 {
			c = f.comments[i]
		}
		f.mu.Unlock()
		if i < 0 {
			ghError(w, http.StatusNotFound, "Not Found")
			return
		}
		writeJSON(w, http.StatusOK, f.commentJSON(c))
	}
}

// changeComment answers PATCH and DELETE of
// /repos/{owner}/{repo}/issues/comments/{id} and …/pulls/comments/{id} as
// GitHub documents them: PATCH takes {"body": …} (422 when it is missing or
// longer than 65536 characters) and returns 200 with the updated comment;
// DELETE returns 204 without a body; a comment that does not exist is 404
// {"message":"Not Found"}. Scripted failures (failEdits) come first.
func (f *fakeGitHub) changeComment(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := f.authRepo(w, r); !ok {
			return
		}
		var in struct {
			Body *string `json:"body"`
		}
		if r.Method == http.MethodPatch {
			b, _ := io.ReadAll(r.Body)
			if err := json.Unmarshal(b, &in); err != nil || in.Body == nil || *in.Body == "" {
				ghError(w, http.StatusUnprocessableEntity, "Validation Failed")
				return
			}
			if n := len([]rune(*in.Body)); n > 65536 {
				ghError(w, http.StatusUnprocessableEntity, "Body is too long (maximum is 65536 characters)")
				return
			}
		}
		f.mu.Lock()
		if len(f.editErrors) > 0 {
			fail := f.editErrors[0]
			f.editErrors = f.editErrors[1:]
			if fail != nil {
				f.mu.Unlock()
				fail(w)
				return
			}
		}
		i := f.findComment(kind, r.PathValue("owner")+"/"+r.PathValue("repo"), r.PathValue("id"))
		if i < 0 {
			f.mu.Unlock()
			ghError(w, http.StatusNotFound, "Not Found")
			return
		}
		f.changes = append(f.changes, r.Method+" "+kind+" "+r.PathValue("id"))
		if r.Method == http.MethodDelete {
			f.comments = slices.Delete(f.comments, i, i+1)
			f.mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
			return
		}
		f.comments[i].Body, f.comments[i].Updated = *in.Body, f.clock.Now()
		c := f.comments[i]
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, f.commentJSON(c))
	}
}

// failEdits scripts failures of the next comment PATCH or DELETE requests
// (nil: answer normally).
func (f *fakeGitHub) failEdits(fails ...func(http.ResponseWriter)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.editErrors = append(f.editErrors, fails...)
}

// changesCopy returns the accepted PATCH and DELETE requests, in order.
func (f *fakeGitHub) changesCopy() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.changes)
}

// removeComment deletes comment id as a person would on GitHub.
func (f *fakeGitHub) removeComment(id int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.comments = slices.DeleteFunc(f.comments, func(c fakeComment) bool { return c.ID == id })
}

// failWith returns a scripted comment POST failure.
func failWith(status int, header map[string]string, msg string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		ghError(w, status, msg)
	}
}

func (f *fakeGitHub) failPosts(fails ...func(http.ResponseWriter)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.postErrors = append(f.postErrors, fails...)
}

func (f *fakeGitHub) setInstallation(repo string, inst int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.installs[strings.ToLower(repo)] = inst
}

func (f *fakeGitHub) setPull(repo string, n int, h prHead) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pulls[repo+"#"+strconv.Itoa(n)] = h
}

func (f *fakeGitHub) commentsCopy() []fakeComment {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeComment(nil), f.comments...)
}

func (f *fakeGitHub) callCount(pattern string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[pattern]
}

func (f *fakeGitHub) mintsCopy() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int64(nil), f.mints...)
}

// recorder is the test Ingress of the adapters' tests.
type recorder = adaptertest.Recorder

func newRecorder() *recorder { return &adaptertest.Recorder{} }

// newTestAdapter builds an adapter with a personal access token (login
// known from the configuration unless mutate clears it) against fake, with
// mutate applied to its configuration.
func newTestAdapter(t *testing.T, fake *fakeGitHub, in adapters.Ingress, mutate func(*Config)) *Adapter {
	t.Helper()
	cfg := &Config{WebhookSecret: testSecret, Token: testToken, Login: testLogin, APIURL: fake.url(),
		Triggers: Triggers{Mentions: []string{"agent"}, Command: "/agent", Label: "agent"}}
	if mutate != nil {
		mutate(cfg)
	}
	a, err := New(cfg, adapters.Deps{
		Ingress:    in,
		Now:        fake.clock.Now,
		HTTPClient: fake.srv.Client(),
		Registry:   prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

// asApp switches a test configuration to GitHub App authentication.
func asApp(t testing.TB, mutate func(*AppConfig)) func(*Config) {
	return func(c *Config) {
		c.Token, c.Login = "", ""
		c.App = AppConfig{ID: testAppID, PrivateKey: appKeyPEM(t)}
		if mutate != nil {
			mutate(&c.App)
		}
	}
}

// webhook builds a signed webhook request.
func webhook(event, delivery string, body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(body)))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("User-Agent", "GitHub-Hookshot/044aadd")
	r.Header.Set("X-GitHub-Event", event)
	r.Header.Set("X-GitHub-Delivery", delivery)
	r.Header.Set("X-Hub-Signature-256", Sign([]byte(testSecret), body))
	return r
}

// serve sends r through the adapter's handler.
func serve(a *Adapter, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	a.Handler().ServeHTTP(w, r)
	return w
}

// outcomes returns the events counted so far for event, by outcome.
func outcomes(a *Adapter, event string) map[string]float64 {
	m := map[string]float64{}
	for _, o := range []string{outcomeIngested, outcomeDuplicate, outcomeDropped, outcomeOwn, outcomeBot, outcomeIgnored, outcomeError} {
		if v := adaptertest.CounterValue(a.metrics.events.WithLabelValues(eventLabel(event), o)); v > 0 {
			m[o] = v
		}
	}
	return m
}

func gaugeValue(g prometheus.Gauge) float64 {
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		return -1
	}
	return m.GetGauge().GetValue()
}

// setIssue makes issue n of repo exist (pull requests exist through
// setPull).
func (f *fakeGitHub) setIssue(repo string, n int, title string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.issues[repo+"#"+strconv.Itoa(n)] = title
}

// addComment stores a comment written on GitHub (not by the adapter): an
// id is given when it has none, Updated defaults to Created, User to
// "ada" and UserType to "User". It returns the comment as stored.
func (f *fakeGitHub) addComment(c fakeComment) fakeComment {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.ID == 0 {
		f.nextID++
		c.ID = f.nextID
	}
	if c.Updated.IsZero() {
		c.Updated = c.Created
	}
	if c.User == "" {
		c.User = "ada"
	}
	if c.UserType == "" {
		c.UserType = "User"
	}
	f.comments = append(f.comments, c)
	return c
}

// editComment changes a comment's body at time at.
func (f *fakeGitHub) editComment(id int64, body string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.comments {
		if f.comments[i].ID == id {
			f.comments[i].Body, f.comments[i].Updated = body, at
		}
	}
}

// setBeforeList sets the hook called before a repository listing is
// answered.
func (f *fakeGitHub) setBeforeList(fn func(kind string, page int)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.beforeList = fn
}

// setDeliveries sets the App's webhook deliveries, newest first.
func (f *fakeGitHub) setDeliveries(ds []fakeDelivery) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deliveries = ds
}

// failLists scripts failures of the next repository listing requests
// (nil: answer normally).
func (f *fakeGitHub) failLists(fails ...func(http.ResponseWriter)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listFails = append(f.listFails, fails...)
}

func (f *fakeGitHub) listedCopy() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.listed...)
}

// apiURL is the REST URL of path on the fake.
func (f *fakeGitHub) apiURL(path string) string { return f.srv.URL + "/" + path }

// commentJSON is c as GitHub's REST API represents it.
func (f *fakeGitHub) commentJSON(c fakeComment) map[string]any {
	user := fakeUser(c.User, c.UserType)
	m := map[string]any{
		"id": c.ID, "node_id": fmt.Sprintf("IC_%d", c.ID), "body": c.Body, "user": user,
		"created_at": c.Created.UTC().Format(time.RFC3339), "updated_at": c.Updated.UTC().Format(time.RFC3339),
		"author_association": "MEMBER", "performed_via_github_app": nil,
	}
	if c.AppID != 0 {
		m["performed_via_github_app"] = map[string]any{"id": c.AppID, "slug": testSlug, "name": "Switchboard App"}
	}
	if c.Kind == "review" {
		m["url"] = f.apiURL(fmt.Sprintf("repos/%s/pulls/comments/%d", c.Repo, c.ID))
		m["html_url"] = fmt.Sprintf("https://github.com/%s/pull/%d#discussion_r%d", c.Repo, c.Number, c.ID)
		m["pull_request_url"] = f.apiURL(fmt.Sprintf("repos/%s/pulls/%d", c.Repo, c.Number))
		m["path"], m["line"], m["original_line"], m["side"] = c.Path, c.Line, c.Line, "RIGHT"
		m["diff_hunk"] = "@@ -1,3 +1,4 @@"
		m["commit_id"] = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
		m["pull_request_review_id"] = c.ID + 7
		if c.InReplyTo != 0 {
			m["in_reply_to_id"] = c.InReplyTo
		}
	} else {
		m["url"] = f.apiURL(fmt.Sprintf("repos/%s/issues/comments/%d", c.Repo, c.ID))
		m["html_url"] = fmt.Sprintf("https://github.com/%s/issues/%d#issuecomment-%d", c.Repo, c.Number, c.ID)
		m["issue_url"] = f.apiURL(fmt.Sprintf("repos/%s/issues/%d", c.Repo, c.Number))
	}
	return m
}

// getIssue answers GET /repos/{owner}/{repo}/issues/{n}: an issue set with
// setIssue, or a pull request set with setPull (with pull_request).
func (f *fakeGitHub) getIssue(w http.ResponseWriter, r *http.Request) {
	if _, ok := f.authRepo(w, r); !ok {
		return
	}
	repo := r.PathValue("owner") + "/" + r.PathValue("repo")
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil {
		ghError(w, http.StatusNotFound, "Not Found")
		return
	}
	key := repo + "#" + r.PathValue("n")
	f.mu.Lock()
	title, isIssue := f.issues[key]
	_, isPull := f.pulls[key]
	f.mu.Unlock()
	if !isIssue && !isPull {
		ghError(w, http.StatusNotFound, "Not Found")
		return
	}
	out := map[string]any{"number": n, "title": title, "state": "open", "body": "the issue's description",
		"user": map[string]any{"login": "ada", "id": 1, "type": "User"},
		"url":  f.apiURL(fmt.Sprintf("repos/%s/issues/%d", repo, n))}
	if isPull {
		out["pull_request"] = map[string]any{"url": f.apiURL(fmt.Sprintf("repos/%s/pulls/%d", repo, n))}
	}
	writeJSON(w, 200, out)
}

// listRepoComments answers GET /repos/{owner}/{repo}/issues/comments and
// …/pulls/comments as GitHub documents them: since (updated at or after),
// sort (created or updated; by id without it), direction (asc or desc,
// default desc), per_page (default 30, at most 100) and page, with a Link
// header naming the next and last pages.
func (f *fakeGitHub) listRepoComments(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := f.authRepo(w, r); !ok {
			return
		}
		q := r.URL.Query()
		page, perPage := 1, 30
		if v, err := strconv.Atoi(q.Get("page")); err == nil && v > 0 {
			page = v
		}
		if v, err := strconv.Atoi(q.Get("per_page")); err == nil && v > 0 {
			perPage = min(v, 100)
		}
		var since time.Time
		if s := q.Get("since"); s != "" {
			var err error
			if since, err = time.Parse(time.RFC3339, s); err != nil {
				ghError(w, http.StatusUnprocessableEntity, "Validation Failed: since")
				return
			}
		}
		f.mu.Lock()
		f.listed = append(f.listed, fmt.Sprintf("%s/%s %s since=%s page=%d", r.PathValue("owner"), r.PathValue("repo"), kind, q.Get("since"), page))
		var fail func(http.ResponseWriter)
		if len(f.listFails) > 0 {
			fail, f.listFails = f.listFails[0], f.listFails[1:]
		}
		before := f.beforeList
		f.mu.Unlock()
		if fail != nil {
			fail(w)
			return
		}
		if before != nil {
			before(kind, page)
		}
		repo := r.PathValue("owner") + "/" + r.PathValue("repo")
		f.mu.Lock()
		var all []fakeComment
		for _, c := range f.comments {
			if c.Kind == kind && strings.EqualFold(c.Repo, repo) && !c.Updated.Before(since) {
				all = append(all, c)
			}
		}
		f.mu.Unlock()
		key := func(c fakeComment) time.Time { return c.Created }
		if q.Get("sort") == "updated" {
			key = func(c fakeComment) time.Time { return c.Updated }
		}
		desc := q.Get("sort") != "" && q.Get("direction") != "asc"
		slices.SortStableFunc(all, func(x, y fakeComment) int {
			c := key(x).Truncate(time.Second).Compare(key(y).Truncate(time.Second))
			if q.Get("sort") == "" || c == 0 {
				c = cmpInt(x.ID, y.ID)
			}
			if desc {
				return -c
			}
			return c
		})
		last := max(1, (len(all)+perPage-1)/perPage)
		out := []map[string]any{}
		for i := (page - 1) * perPage; i < len(all) && i < page*perPage; i++ {
			out = append(out, f.commentJSON(all[i]))
		}
		if page < last {
			link := func(p int) string {
				u := *r.URL
				v := u.Query()
				v.Set("page", strconv.Itoa(p))
				u.RawQuery = v.Encode()
				return "<" + f.srv.URL + u.RequestURI() + ">"
			}
			w.Header().Set("Link", link(page+1)+`; rel="next", `+link(last)+`; rel="last"`)
		}
		writeJSON(w, 200, out)
	}
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// listDeliveries answers GET /app/hook/deliveries (App JWT), newest first,
// paged by an opaque cursor in the Link header.
func (f *fakeGitHub) listDeliveries(w http.ResponseWriter, r *http.Request) {
	if !f.authJWT(w, r) {
		return
	}
	perPage := 30
	if v, err := strconv.Atoi(r.URL.Query().Get("per_page")); err == nil && v > 0 {
		perPage = min(v, 100)
	}
	start := 0
	if c := r.URL.Query().Get("cursor"); c != "" {
		v, err := strconv.Atoi(strings.TrimPrefix(c, "v1_"))
		if err != nil {
			ghError(w, http.StatusUnprocessableEntity, "bad cursor")
			return
		}
		start = v
	}
	f.mu.Lock()
	ds := slices.Clone(f.deliveries)
	f.mu.Unlock()
	out := []map[string]any{}
	for i := start; i < len(ds) && i < start+perPage; i++ {
		d := ds[i]
		status := "OK"
		if d.Status < 200 || d.Status > 299 {
			status = "Invalid HTTP Response: " + strconv.Itoa(d.Status)
		}
		out = append(out, map[string]any{"id": d.ID, "guid": d.GUID, "delivered_at": d.At.UTC().Format(time.RFC3339),
			"redelivery": false, "duration": 0.5, "status": status, "status_code": d.Status, "event": d.Event,
			"action": "created", "installation_id": 99, "repository_id": 1296269})
	}
	if start+perPage < len(ds) {
		w.Header().Set("Link", fmt.Sprintf(`<%s/app/hook/deliveries?per_page=%d&cursor=v1_%d>; rel="next"`, f.srv.URL, perPage, start+perPage))
	}
	writeJSON(w, 200, out)
}

// redeliver answers POST /app/hook/deliveries/{id}/attempts with 202.
func (f *fakeGitHub) redeliver(w http.ResponseWriter, r *http.Request) {
	if !f.authJWT(w, r) {
		return
	}
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range f.deliveries {
		if d.ID == id {
			f.redelivered = append(f.redelivered, id)
			writeJSON(w, http.StatusAccepted, map[string]any{})
			return
		}
	}
	ghError(w, http.StatusNotFound, "Not Found")
}

// fakeUser is a user object of the REST API and of webhooks.
func fakeUser(login, typ string) map[string]any {
	return map[string]any{"login": login, "id": 1000 + len(login), "type": typ}
}

// liveEvent is the webhook GitHub sends for c: action "created" when it is
// written, "edited" (with the previous body) when it is edited.
func (f *fakeGitHub) liveEvent(c fakeComment, action, prevBody string) (event string, body []byte) {
	owner, name, _ := strings.Cut(c.Repo, "/")
	p := map[string]any{
		"action":     action,
		"comment":    f.commentJSON(c),
		"repository": map[string]any{"id": 1296269, "name": name, "full_name": c.Repo, "owner": fakeUser(owner, "Organization")},
		"sender":     fakeUser(c.User, c.UserType),
	}
	if action == "edited" {
		p["changes"] = map[string]any{"body": map[string]any{"from": prevBody}}
	}
	key := c.Repo + "#" + strconv.Itoa(c.Number)
	f.mu.Lock()
	title := f.issues[key]
	h, isPull := f.pulls[key]
	f.mu.Unlock()
	if c.Kind == "review" {
		event = "pull_request_review_comment"
		p["pull_request"] = map[string]any{"number": c.Number, "title": title, "state": "open",
			"head": map[string]any{"ref": h.Branch, "sha": h.SHA, "repo": map[string]any{"full_name": h.Repo}}}
	} else {
		event = "issue_comment"
		iss := map[string]any{"number": c.Number, "title": title, "state": "open", "user": fakeUser("ada", "User")}
		if isPull {
			iss["pull_request"] = map[string]any{"url": f.apiURL(fmt.Sprintf("repos/%s/pulls/%d", c.Repo, c.Number))}
		}
		p["issue"] = iss
	}
	b, err := json.Marshal(p)
	if err != nil {
		panic(err)
	}
	return event, b
}
