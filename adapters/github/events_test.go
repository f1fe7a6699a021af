package github

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
	"github.com/switchboardhq/switchboard/envelope"
)

const testdata = "../../testdata/github"

// goldenCase is one webhook sent through the HTTP handler.
type goldenCase struct {
	name     string // golden file name without .golden.json
	event    string
	delivery string
	body     []byte
	mutate   func(*Config)
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// eventOf returns the X-GitHub-Event of a fixture from its file name
// ("octokit-issue_comment.created.json" → issue_comment).
func eventOf(name string) string {
	base := strings.TrimSuffix(name, ".json")
	if i := strings.IndexByte(base, '-'); i >= 0 {
		base = base[i+1:]
	}
	ev, _, _ := strings.Cut(base, ".")
	return ev
}

// goldenCases lists a case for every fixture in testdata/github: each
// upstream payload, and each variant of the synthesized file.
func goldenCases(t testing.TB) []goldenCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(testdata, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []goldenCase
	for _, f := range files {
		name := filepath.Base(f)
		if strings.HasSuffix(name, ".golden.json") || strings.HasPrefix(name, "SYNTHESIZED-") {
			continue
		}
		c := goldenCase{name: strings.TrimSuffix(name, ".json"), event: eventOf(name), body: readTestdata(t, name)}
		if strings.HasPrefix(name, "DERIVED-") {
			// The derived fixture is a comment by "example-gateway[bot]": the
			// gateway's own App echoing back.
			c.mutate = asApp(t, func(ac *AppConfig) { ac.Slug = "example-gateway" })
		}
		cases = append(cases, c)
	}
	var variants map[string]struct {
		Event   string          `json:"event"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(readTestdata(t, "SYNTHESIZED-variants.json"), &variants); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(variants))
	for k := range variants {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		slug, _, _ := strings.Cut(k, " ")
		cases = append(cases, goldenCase{name: "SYNTHESIZED-variants." + slug, event: variants[k].Event, body: variants[k].Payload})
	}
	for i := range cases {
		cases[i].delivery = fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1)
	}
	return cases
}

// goldenResult is what a golden file holds.
type goldenResult struct {
	Status   int             `json:"status"`
	Response string          `json:"response,omitempty"`
	Outcome  string          `json:"outcome"`
	Facts    *adapters.Facts `json:"facts,omitempty"`
	Envelope json.RawMessage `json:"envelope,omitempty"`
}

// goldenFake is the fake GitHub the golden cases run against: it knows the
// pull requests that issue_comment payloads on pull requests lack the head
// of.
func goldenFake(t testing.TB) *fakeGitHub {
	fake := newFakeGitHub(t, newClock())
	fake.setPull("runatlantis/atlantis-tests", 1, prHead{Branch: "new-layouts", SHA: "c31fd9ea6f557ad2ea659944c3844a059b83bc5d", Repo: "runatlantis/atlantis-tests"})
	fake.setPull("acme/api", 7, prHead{Branch: "fix-flaky-test", SHA: "6dcb09b5b57875f334f61aebed695e2e4193db5e", Repo: "acme/api"})
	return fake
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			fake := goldenFake(t)
			rec := newRecorder()
			a := newTestAdapter(t, fake, rec, func(c *Config) {
				c.OpenedSteers = true
				if tc.mutate != nil {
					tc.mutate(c)
				}
			})
			w := serve(a, webhook(tc.event, tc.delivery, tc.body))
			res := goldenResult{Status: w.Code, Response: strings.TrimSpace(w.Body.String())}
			for o := range outcomes(a, tc.event) {
				res.Outcome = o
			}
			if ins := rec.All(); len(ins) > 0 {
				if len(ins) != 1 {
					t.Fatalf("%d messages ingested, want at most 1", len(ins))
				}
				in := ins[0]
				if !bytes.Equal(in.Envelope.Raw, tc.body) {
					t.Fatal("raw is not the request body byte for byte")
				}
				if err := in.Envelope.Validate(0); err != nil {
					t.Fatalf("envelope does not validate: %v", err)
				}
				if strings.Contains(in.Envelope.ID, tc.delivery) {
					t.Fatalf("id = %q comes from the unsigned X-GitHub-Delivery", in.Envelope.ID)
				}
				env, err := in.Envelope.AppendJSON(nil)
				if err != nil {
					t.Fatal(err)
				}
				res.Envelope, res.Facts = env, &in.Facts
			}
			adaptertest.GoldenJSON(t, filepath.Join(testdata, tc.name+".golden.json"), res)
		})
	}
}

// TestGoldenFilesHaveFixtures keeps testdata tidy: every golden file belongs
// to a case, and every fixture has one.
func TestGoldenFilesHaveFixtures(t *testing.T) {
	var names []string
	for _, tc := range goldenCases(t) {
		names = append(names, tc.name)
	}
	adaptertest.CheckTidy(t, testdata, "*.json", names)
	if len(names) < 20 {
		t.Errorf("only %d golden cases", len(names))
	}
}

// variant returns one payload of the synthesized file.
func variant(t *testing.T, key string) []byte {
	t.Helper()
	var variants map[string]struct {
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(readTestdata(t, "SYNTHESIZED-variants.json"), &variants); err != nil {
		t.Fatal(err)
	}
	for k, v := range variants {
		if slug, _, _ := strings.Cut(k, " "); slug == key {
			return v.Payload
		}
	}
	t.Fatalf("no variant %q", key)
	return nil
}

// TestReplayUnderNewDeliveryIDsStoresOnce: the same signed body sent four
// times, each under another X-GitHub-Delivery, is one message (the id comes
// from the signed payload, not the unsigned header), while an edit with a
// new updated_at is a message of its own.
func TestReplayUnderNewDeliveryIDsStoresOnce(t *testing.T) {
	fake := goldenFake(t)
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, func(c *Config) { c.OpenedSteers = true })
	for _, tc := range []struct{ event, variant string }{
		{"issue_comment", "comment_mention_on_pr"},
		{"pull_request_review_comment", "review_thread_reply"},
		{"pull_request_review", "review_with_body"},
		{"issues", "labeled_trigger"},
		{"issues", "assigned_to_bot"},
		{"pull_request", "opened_from_fork"},
		{"issue_comment", "comment_deleted"},
	} {
		body := variant(t, tc.variant)
		for i := range 4 {
			delivery := fmt.Sprintf("%s-%d", tc.variant, i)
			if w := serve(a, webhook(tc.event, delivery, body)); w.Code != http.StatusOK {
				t.Fatalf("%s, delivery %s: status = %d: %s", tc.variant, delivery, w.Code, w.Body)
			}
		}
	}
	edited := variant(t, "comment_edited")
	serve(a, webhook("issue_comment", "edit-1", edited))
	serve(a, webhook("issue_comment", "edit-2", edited))
	again := bytes.Replace(edited, []byte(`"body": "/agent run the integration tests with -race"`),
		[]byte(`"body": "/agent run the integration tests with -race -count=3"`), 1)
	again = bytes.Replace(again, []byte(`"updated_at": "2026-06-18T12:01:00Z"`), []byte(`"updated_at": "2026-06-18T12:05:00Z"`), 1)
	if bytes.Equal(again, edited) {
		t.Fatal("the second edit is the first one: the fixture changed")
	}
	serve(a, webhook("issue_comment", "edit-3", again))

	stored := map[string]int{} // what a session log keeps: one record per id
	for _, in := range rec.All() {
		stored[in.Envelope.ID]++
	}
	want := map[string]int{
		"github:issue-comment/1500000001":                                    4,
		"github:review-comment/1600000002":                                   4,
		"github:review/1700000002":                                           4,
		"github:issue/acme/api#12/labeled/agent@2026-06-18T11:58:00Z":        4,
		"github:issue/acme/api#13/assigned/switchboard@2026-06-18T11:58:00Z": 4,
		"github:pull/acme/api#8/opened":                                      4,
		"github:issue-comment/1500000002/delete":                             4,
		"github:issue-comment/1500000002/edit/2026-06-18T12:01:00Z":          2,
		"github:issue-comment/1500000002/edit/2026-06-18T12:05:00Z":          1,
	}
	if !maps.Equal(stored, want) {
		t.Errorf("ingested ids %v, want %v", stored, want)
	}
	total := 0.0
	for _, o := range []string{"issue_comment", "pull_request_review_comment", "pull_request_review", "issues", "pull_request"} {
		got := outcomes(a, o)
		total += got[outcomeIngested]
	}
	if int(total) != len(want) {
		t.Errorf("%v events stored as new, want %d (one per signed event)", total, len(want))
	}
}

func TestPullRequestHeadCacheExpires(t *testing.T) {
	fake := goldenFake(t)
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	body := variant(t, "comment_mention_on_pr")
	serve(a, webhook("issue_comment", "d-1", body))
	fake.setPull("acme/api", 7, prHead{Branch: "fix-flaky-test", SHA: "1111111111111111111111111111111111111111", Repo: "acme/api"})
	serve(a, webhook("issue_comment", "d-2", body))
	fake.clock.Advance(DefaultPRCacheTTL)
	serve(a, webhook("issue_comment", "d-3", body))
	ins := rec.All()
	if len(ins) != 3 {
		t.Fatalf("%d ingests", len(ins))
	}
	want := []string{"6dcb09b5b57875f334f61aebed695e2e4193db5e", "6dcb09b5b57875f334f61aebed695e2e4193db5e", "1111111111111111111111111111111111111111"}
	for i, in := range ins {
		if got := in.Envelope.Refs[envelope.RefCommit]; got != want[i] {
			t.Errorf("message %d: commit = %q, want %q", i, got, want[i])
		}
		if in.Envelope.Refs[envelope.RefBranch] != "fix-flaky-test" || in.Envelope.Refs[envelope.RefRef] != "refs/pull/7/head" {
			t.Errorf("message %d: refs = %v", i, in.Envelope.Refs)
		}
	}
}

func TestPullRequestLookupFailureKeepsTheMessage(t *testing.T) {
	fake := newFakeGitHub(t, newClock()) // knows no pull request: 404
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	if w := serve(a, webhook("issue_comment", "d-1", variant(t, "comment_mention_on_pr"))); w.Code != http.StatusOK {
		t.Fatalf("status = %d", w.Code)
	}
	ins := rec.All()
	if len(ins) != 1 {
		t.Fatalf("%d ingests", len(ins))
	}
	refs := ins[0].Envelope.Refs
	if refs[envelope.RefPR] != "7" || refs[envelope.RefRepo] != "acme/api" || refs[envelope.RefCommit] != "" {
		t.Errorf("refs = %v, want repo and pr without the head", refs)
	}
}

func TestLoopPrevention(t *testing.T) {
	comment := func(user, userType, body string, app int64) []byte {
		appJSON := "null"
		if app != 0 {
			appJSON = fmt.Sprintf(`{"id":%d,"slug":"x"}`, app)
		}
		return fmt.Appendf(nil, `{"action":"created","issue":{"number":12,"title":"t","user":{"login":"ada","type":"User"}},`+
			`"comment":{"id":99,"body":%q,"user":{"login":%q,"type":%q},"created_at":"2026-06-18T11:59:00Z","performed_via_github_app":%s},`+
			`"repository":{"full_name":"acme/api"},"sender":{"login":%q,"type":%q},"installation":{"id":4711}}`,
			body, user, userType, appJSON, user, userType)
	}
	for _, tc := range []struct {
		name      string
		body      []byte
		mutate    func(*Config)
		want      string
		wantAgent bool
	}{
		{name: "own login (token)", body: comment("switchboard", "User", "@switchboard hi", 0), want: outcomeOwn},
		{name: "own login, other case", body: comment("SwitchBoard", "User", "hi", 0), want: outcomeOwn},
		{name: "marker under a human's token", body: comment("ada", "User", "done\n\n<!-- switchboard:delivery=dlv_1 part=2/3 -->", 0), want: outcomeOwn},
		{name: "own app bot", body: comment(testSlug+"[bot]", "Bot", "done", 0), mutate: asApp(t, func(c *AppConfig) { c.Slug = testSlug }), want: outcomeOwn},
		{name: "performed via our app", body: comment("ada", "User", "@switchboard-app go", testAppID), mutate: asApp(t, func(c *AppConfig) { c.Slug = testSlug }), want: outcomeOwn},
		{name: "performed via another app", body: comment("ada", "User", "@switchboard-app go", 7), mutate: asApp(t, func(c *AppConfig) { c.Slug = testSlug }), want: outcomeIngested},
		{name: "other bot, default", body: comment("renovate[bot]", "Bot", "@switchboard update deps", 0), want: outcomeBot},
		{name: "other bot, allowed", body: comment("renovate[bot]", "Bot", "@switchboard update deps", 0), mutate: func(c *Config) { c.AllowBots = true }, want: outcomeIngested, wantAgent: true},
		{name: "human", body: comment("ada", "User", "@switchboard update deps", 0), want: outcomeIngested},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeGitHub(t, newClock())
			rec := newRecorder()
			a := newTestAdapter(t, fake, rec, tc.mutate)
			w := serve(a, webhook("issue_comment", "d-1", tc.body))
			if w.Code != http.StatusOK {
				t.Fatalf("status = %d: %s", w.Code, w.Body)
			}
			if got := outcomes(a, "issue_comment"); got[tc.want] != 1 {
				t.Fatalf("outcomes = %v, want %s", got, tc.want)
			}
			ins := rec.All()
			if tc.want != outcomeIngested {
				if len(ins) != 0 {
					t.Fatalf("ingested %+v", ins)
				}
				return
			}
			if len(ins) != 1 {
				t.Fatalf("%d ingests", len(ins))
			}
			in := ins[0]
			if in.Facts.FromBot != tc.wantAgent || (in.Envelope.Actor.Type == envelope.Agent) != tc.wantAgent {
				t.Errorf("from bot %v, actor %+v", in.Facts.FromBot, in.Envelope.Actor)
			}
			if !in.Facts.Addressed {
				t.Error("the mention did not address the gateway")
			}
		})
	}
}

func TestIdentityLearnedFromTheAPI(t *testing.T) {
	t.Run("token", func(t *testing.T) {
		fake := newFakeGitHub(t, newClock())
		rec := newRecorder()
		a := newTestAdapter(t, fake, rec, func(c *Config) { c.Login = "" })
		own := []byte(`{"action":"created","issue":{"number":1},"comment":{"id":5,"body":"x","user":{"login":"switchboard","type":"User"}},"repository":{"full_name":"acme/api"},"sender":{"login":"switchboard","type":"User"}}`)
		if w := serve(a, webhook("issue_comment", "d-1", own)); w.Code != http.StatusOK {
			t.Fatalf("status = %d: %s", w.Code, w.Body)
		}
		if got := outcomes(a, "issue_comment"); got[outcomeOwn] != 1 || fake.callCount("GET /user") != 1 {
			t.Fatalf("outcomes = %v after %d GET /user", got, fake.callCount("GET /user"))
		}
		serve(a, webhook("issue_comment", "d-2", own))
		if n := fake.callCount("GET /user"); n != 1 {
			t.Errorf("GET /user called %d times, want once", n)
		}
	})
	t.Run("app", func(t *testing.T) {
		fake := newFakeGitHub(t, newClock())
		rec := newRecorder()
		a := newTestAdapter(t, fake, rec, asApp(t, nil))
		mention := []byte(`{"action":"created","issue":{"number":1},"comment":{"id":5,"body":"@switchboard-app look","user":{"login":"ada","type":"User"}},"repository":{"full_name":"acme/api"},"sender":{"login":"ada","type":"User"}}`)
		if w := serve(a, webhook("issue_comment", "d-1", mention)); w.Code != http.StatusOK {
			t.Fatalf("status = %d: %s", w.Code, w.Body)
		}
		ins := rec.All()
		if len(ins) != 1 || !ins[0].Facts.Addressed || ins[0].Envelope.Text != "look" {
			t.Fatalf("ingested %+v", ins)
		}
		if n := fake.callCount("GET /app"); n != 1 {
			t.Errorf("GET /app called %d times", n)
		}
	})
	t.Run("unknown identity answers 503", func(t *testing.T) {
		fake := newFakeGitHub(t, newClock())
		fake.userStatus = http.StatusBadGateway
		rec := newRecorder()
		a := newTestAdapter(t, fake, rec, func(c *Config) { c.Login = "" })
		w := serve(a, webhook("issue_comment", "d-1", variant(t, "comment_command")))
		if w.Code != http.StatusServiceUnavailable || len(rec.All()) != 0 {
			t.Fatalf("status = %d, %d ingested", w.Code, len(rec.All()))
		}
		// Events the adapter does not handle need no identity.
		if w := serve(a, webhook("issues", "d-2", variant(t, "closed"))); w.Code != http.StatusOK {
			t.Fatalf("ignored event: status = %d", w.Code)
		}
	})
}

func TestTriggers(t *testing.T) {
	ad := addresser{names: []string{"switchboard-app[bot]", "switchboard-app", "agent"}, command: "/agent"}
	for _, tc := range []struct {
		body, text, trigger string
	}{
		{"@switchboard-app fix the build", "fix the build", triggerMention},
		{"  @Switchboard-App, fix the build", "fix the build", triggerMention},
		{"@switchboard-app[bot] fix it", "fix it", triggerMention},
		{"@agent: /agent run", "run", triggerCommand},
		{"/agent run the tests\nthen report", "run the tests\nthen report", triggerCommand},
		{"/AGENT run", "run", triggerCommand},
		{"/agents run", "/agents run", ""},
		{"please ask @agent about it", "please ask @agent about it", triggerMention},
		{"@switchboard-app", "@switchboard-app", triggerMention},
		{"mail me@agent.dev", "mail me@agent.dev", ""},
		{"@agentsmith hi", "@agentsmith hi", ""},
		{"@org/agent hi", "@org/agent hi", ""},
		{"cc @acme/agent", "cc @acme/agent", ""},
		{"> @agent said\nok", "> @agent said\nok", ""},
		{"```\n@agent\n```", "```\n@agent\n```", ""},
		{"run `@agent x` later", "run `@agent x` later", ""},
		{"~~~~\n```\n@agent\n~~~~\nnow @agent", "~~~~\n```\n@agent\n~~~~\nnow @agent", triggerMention},
		{"see /agent", "see /agent", ""},
	} {
		text, trigger := ad.address(tc.body)
		if text != tc.text || trigger != tc.trigger {
			t.Errorf("address(%q) = %q, %q; want %q, %q", tc.body, text, trigger, tc.text, tc.trigger)
		}
	}
}

func TestOpenedNeedsOptIn(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil) // opened_steers off
	body := readTestdata(t, "octokit-issues.opened.json")
	if w := serve(a, webhook("issues", "d-1", body)); w.Code != http.StatusOK || len(rec.All()) != 0 {
		t.Fatalf("status %d, %d ingested; want the event ignored", w.Code, len(rec.All()))
	}
	if got := outcomes(a, "issues"); got[outcomeIgnored] != 1 {
		t.Errorf("outcomes = %v", got)
	}
}

func TestAssignmentToSomeoneElseIsIgnored(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	body := bytes.ReplaceAll(variant(t, "assigned_to_bot"), []byte(`"login": "switchboard"`), []byte(`"login": "grace"`))
	serve(a, webhook("issues", "d-1", body))
	if len(rec.All()) != 0 {
		t.Fatalf("ingested %+v", rec.All())
	}
	a = newTestAdapter(t, fake, rec, func(c *Config) { off := false; c.Triggers.Assignment = &off })
	serve(a, webhook("issues", "d-2", variant(t, "assigned_to_bot")))
	if len(rec.All()) != 0 {
		t.Fatal("assignment is a trigger although triggers.assignment is false")
	}
}

func TestEditWithoutTextChangeIsIgnored(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	body := bytes.Replace(variant(t, "comment_edited"), []byte(`"from": "/agent run the integration tests"`),
		[]byte(`"from": "/agent run the integration tests with -race"`), 1)
	serve(a, webhook("issue_comment", "d-1", body))
	if len(rec.All()) != 0 || outcomes(a, "issue_comment")[outcomeIgnored] != 1 {
		t.Fatalf("ingested %d, outcomes %v", len(rec.All()), outcomes(a, "issue_comment"))
	}
}

func TestReviewThreadAnchor(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	// The thread's first comment and a reply share one anchor, the first
	// comment's id.
	serve(a, webhook("pull_request_review_comment", "d-1", readTestdata(t, "octokit-pull_request_review_comment.created.json")))
	reply := bytes.Replace(readTestdata(t, "octokit-pull_request_review_comment.created.json"),
		[]byte(`"id": 284312630,`), []byte(`"id": 284312631, "in_reply_to_id": 284312630,`), 1)
	serve(a, webhook("pull_request_review_comment", "d-2", reply))
	ins := rec.All()
	if len(ins) != 2 {
		t.Fatalf("%d ingests", len(ins))
	}
	for i, in := range ins {
		if in.Envelope.Conversation.Ref != "Codertocat/Hello-World#2/review-thread/284312630" {
			t.Errorf("message %d: ref = %q", i, in.Envelope.Conversation.Ref)
		}
	}
	if ins[1].Facts.ChannelID != "284312631" || ins[1].Envelope.Refs["comment"] != "284312631" {
		t.Errorf("reply facts %+v refs %v", ins[1].Facts, ins[1].Envelope.Refs)
	}
}

func TestFormEncodedPayload(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	payload := variant(t, "comment_command")
	form := []byte("payload=" + url.QueryEscape(string(payload)))
	r := webhook("issue_comment", "d-1", form)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if w := serve(a, r); w.Code != http.StatusOK {
		t.Fatalf("status = %d: %s", w.Code, w.Body)
	}
	ins := rec.All()
	if len(ins) != 1 || !bytes.Equal(ins[0].Envelope.Raw, payload) {
		t.Fatalf("ingested %d; raw must be the payload field", len(ins))
	}
}

func TestIngestFailureAnswers500(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	rec := newRecorder()
	rec.SetFail(errors.New("disk full"))
	a := newTestAdapter(t, fake, rec, nil)
	body := variant(t, "comment_command")
	if w := serve(a, webhook("issue_comment", "d-1", body)); w.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500 so the delivery shows as failed", w.Code)
	}
	rec.SetFail(nil)
	if w := serve(a, webhook("issue_comment", "d-1", body)); w.Code != http.StatusOK || len(rec.All()) != 1 {
		t.Fatalf("redelivery: status %d, %d ingested", w.Code, len(rec.All()))
	}
}

func TestMalformedRequests(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	body := variant(t, "comment_command")
	for _, tc := range []struct {
		name string
		r    *http.Request
		want int
	}{
		{"no event header", webhook("", "d-1", body), http.StatusBadRequest},
		{"no delivery header", webhook("issue_comment", "", body), http.StatusBadRequest},
		{"not JSON", webhook("issue_comment", "d-1", []byte("{nope")), http.StatusBadRequest},
		{"no repository", webhook("issue_comment", "d-1", []byte(`{"action":"created","issue":{"number":1},"comment":{"id":1,"body":"x"},"sender":{"login":"a"}}`)), http.StatusBadRequest},
		{"GET", func() *http.Request { r := webhook("issue_comment", "d-1", body); r.Method = http.MethodGet; return r }(), http.StatusMethodNotAllowed},
		{"other path", func() *http.Request { r := webhook("issue_comment", "d-1", body); r.URL.Path = "/events"; return r }(), http.StatusNotFound},
	} {
		if w := serve(a, tc.r); w.Code != tc.want {
			t.Errorf("%s: status = %d, want %d", tc.name, w.Code, tc.want)
		}
	}
	// The mount point may be stripped to "" as well as "/".
	r := webhook("issue_comment", "d-9", body)
	r.URL.Path = ""
	if w := serve(a, r); w.Code != http.StatusOK {
		t.Errorf("empty path: status = %d", w.Code)
	}
	if len(rec.All()) != 1 {
		t.Errorf("%d ingested, want only the valid request", len(rec.All()))
	}
}

func TestNormalizeIgnoresOtherActions(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	for event, body := range map[string]string{
		"issue_comment":               `{"action":"pinned","issue":{"number":1},"comment":{"id":1,"body":"@switchboard x"},"repository":{"full_name":"a/b"},"sender":{"login":"ada"}}`,
		"pull_request_review":         `{"action":"dismissed","review":{"id":1,"body":"@switchboard x"},"pull_request":{"number":1},"repository":{"full_name":"a/b"},"sender":{"login":"ada"}}`,
		"pull_request":                `{"action":"synchronize","number":1,"pull_request":{"number":1,"body":"@switchboard x"},"repository":{"full_name":"a/b"},"sender":{"login":"ada"}}`,
		"pull_request_review_comment": `{"action":"resolved","comment":{"id":1,"body":"@switchboard x"},"pull_request":{"number":1},"repository":{"full_name":"a/b"},"sender":{"login":"ada"}}`,
	} {
		if w := serve(a, webhook(event, "d-1", []byte(body))); w.Code != http.StatusOK {
			t.Errorf("%s: status %d", event, w.Code)
		}
		if got := outcomes(a, event); got[outcomeIgnored] != 1 {
			t.Errorf("%s: outcomes %v", event, got)
		}
	}
	if len(rec.All()) != 0 {
		t.Errorf("ingested %+v", rec.All())
	}
}

// TestTriggerOnTheBotsOwnIssue: labelling an issue that the bot's account
// opened is a person's action, not an echo.
func TestTriggerOnTheBotsOwnIssue(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	body := []byte(`{"action":"labeled","label":{"name":"Agent"},"issue":{"number":3,"title":"Flaky test report","body":"x",` +
		`"user":{"login":"switchboard","type":"User"},"labels":[{"name":"Agent"}]},"repository":{"full_name":"acme/api"},"sender":{"login":"ada","type":"User"}}`)
	if w := serve(a, webhook("issues", "d-1", body)); w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	ins := rec.All()
	if len(ins) != 1 || !ins[0].Facts.Addressed || ins[0].Envelope.Actor.ID != "github:ada" || ins[0].Envelope.Refs["trigger"] != triggerLabel {
		t.Fatalf("ingested %+v", ins)
	}
}

// FuzzWebhook feeds arbitrary payloads, as every handled event, through the
// authentic path: nothing may panic, and whatever is ingested validates.
func FuzzWebhook(f *testing.F) {
	for _, tc := range goldenCases(f) {
		f.Add(tc.event, tc.body)
	}
	f.Add("issue_comment", []byte(`{"action":"created","issue":null,"comment":{},"repository":{},"sender":{}}`))
	f.Add("pull_request", []byte(`{"action":"assigned","pull_request":{"number":1,"head":{}},"assignee":null,"repository":{"full_name":"a/b"},"sender":{"login":"x"}}`))
	fake := goldenFake(f)
	f.Fuzz(func(t *testing.T, event string, body []byte) {
		rec := newRecorder()
		a := newTestAdapter(t, fake, rec, func(c *Config) { c.OpenedSteers = true; c.AllowBots = true })
		w := serve(a, webhook(event, "d-fuzz", body))
		if w.Code != http.StatusOK && w.Code != http.StatusBadRequest {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		for _, in := range rec.All() {
			if err := in.Envelope.Validate(0); err != nil {
				t.Fatalf("ingested an invalid envelope: %v", err)
			}
		}
	})
}

// TestNULInTextIsStripped: a comment whose body holds a NUL (which
// PostgreSQL refuses) is stored with the NUL removed, raw kept as sent.
func TestNULInTextIsStripped(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	body := []byte(`{"action":"created","issue":{"number":12,"title":"t"},` +
		`"comment":{"id":99,"body":"@switchboard run\u0000 the tests","user":{"login":"ada","type":"User"},"created_at":"2026-06-18T11:59:00Z"},` +
		`"repository":{"full_name":"acme/api"},"sender":{"login":"ada","type":"User"}}`)
	if w := serve(a, webhook("issue_comment", "d-1", body)); w.Code != http.StatusOK {
		t.Fatalf("status = %d: %s", w.Code, w.Body)
	}
	ins := rec.All()
	if len(ins) != 1 {
		t.Fatalf("%d ingested, want 1", len(ins))
	}
	if got := ins[0].Envelope.Text; got != "run the tests" {
		t.Errorf("text = %q, want the NUL stripped", got)
	}
	if !bytes.Equal(ins[0].Envelope.Raw, body) {
		t.Error("raw is not the payload as sent")
	}
}
