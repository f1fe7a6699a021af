package slack

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
	"github.com/switchboardhq/switchboard/config/duration"
	"github.com/switchboardhq/switchboard/envelope"
)

const testdata = "../../testdata/slack"

// goldenCase is one payload sent through the HTTP handler.
type goldenCase struct {
	name   string // golden file name without .golden.json
	body   []byte
	now    time.Time
	secret string
	id     identity
	users  map[string]string
}

// goldenCases lists a case for every fixture in testdata/slack.
func goldenCases(t *testing.T) []goldenCase {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(testdata, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	users := map[string]string{"W021FGA1Z": "Ada", "U0LAN0Z89": "switchboard", "U123ABC456": "Grace", "U222": "Linus", "U0BOTUSER": "switchboard"}
	synth := identity{TeamID: "T0TEST", UserID: "U0BOTUSER", BotID: "B0OWN"}
	cases := []goldenCase{
		// authed_users names the app's bot user in Slack's example.
		{name: "ASSEMBLED-event_callback.app_mention", body: read("ASSEMBLED-event_callback.app_mention.json"),
			id: identity{TeamID: "T061EG9R6", UserID: "U0LAN0Z89", BotID: "B0LAN0Z89"}},
		{name: "ASSEMBLED-event_callback.message.thread_broadcast", body: read("ASSEMBLED-event_callback.message.thread_broadcast.json"), id: synth},
		{name: "url_verification", body: read("url_verification.json"), id: synth},
		{name: "app_rate_limited", body: read("app_rate_limited.json"), id: synth},
	}
	// The synthesized variants are inner events: each is wrapped in an
	// event_callback, kept byte for byte.
	var variants map[string]json.RawMessage
	if err := json.Unmarshal(read("SYNTHESIZED-message-variants.json"), &variants); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(variants))
	for k := range variants {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		slug, _, _ := strings.Cut(k, " ")
		cases = append(cases, goldenCase{name: "SYNTHESIZED-message-variants." + slug,
			body: callback("EvSYN"+string(rune('A'+i)), string(variants[k])), id: synth})
	}
	// The signing vectors: sent with their own signature at their own time.
	var vectors map[string]signingVector
	if err := json.Unmarshal(read("signing-vectors.json"), &vectors); err != nil {
		t.Fatal(err)
	}
	for name, v := range vectors {
		var unix int64
		if err := json.Unmarshal([]byte(v.Timestamp), &unix); err != nil {
			t.Fatal(err)
		}
		// The slack-go vector's authed_users names the bot: its leading
		// mention is stripped.
		cases = append(cases, goldenCase{name: "signing-vectors." + name, body: []byte(v.Body),
			now: time.Unix(unix, 0), secret: v.Secret, id: identity{TeamID: "XXXXXXXXX", UserID: "EEEEEEEEE", BotID: "BEEEEEEEE"}})
	}
	for i := range cases {
		if cases[i].users == nil {
			cases[i].users = users
		}
		if cases[i].now.IsZero() {
			cases[i].now = testNow
		}
		if cases[i].secret == "" {
			cases[i].secret = testSecret
		}
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

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeSlack(t)
			fake.identity = tc.id
			fake.setUsers(tc.users)
			rec := newRecorder()
			a := newTestAdapter(t, fake, rec, func(c *Config) { c.SigningSecret = tc.secret })
			a.now = func() time.Time { return tc.now }
			w := httptestServe(a, signedRequest(tc.body, tc.secret, tc.now))

			res := goldenResult{Status: w.Code, Response: strings.TrimSpace(w.Body.String())}
			for o := range outcomes(a, "http") {
				res.Outcome = o
			}
			if ins := rec.all(); len(ins) > 0 {
				if len(ins) != 1 {
					t.Fatalf("%d messages ingested, want at most 1", len(ins))
				}
				in := ins[0]
				if !bytes.Equal(in.Envelope.Raw, tc.body) {
					t.Fatalf("raw is not the request body byte for byte")
				}
				if err := in.Envelope.Validate(0); err != nil {
					t.Fatalf("envelope does not validate: %v", err)
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

func httptestServe(a *Adapter, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	a.Handler().ServeHTTP(w, r)
	return w
}

// TestGoldenFilesHaveFixtures keeps testdata tidy: every golden file belongs
// to a case, and every fixture has one.
func TestGoldenFilesHaveFixtures(t *testing.T) {
	var names []string
	for _, tc := range goldenCases(t) {
		names = append(names, tc.name)
	}
	adaptertest.CheckTidy(t, testdata, "*.json", names)
}

const humanInThread = `{"type":"message","user":"U222","text":"follow-up question","ts":"1700000100.000200","thread_ts":"1700000000.000100","channel":"C123","channel_type":"channel","event_ts":"1700000100.000200"}`

func TestRetriesAndDoubleSubscriptionKeepOneID(t *testing.T) {
	fake := newFakeSlack(t)
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	mention := `{"type":"app_mention","user":"U222","text":"<@U0BOTUSER> run the tests","ts":"1700000500.000100","channel":"C123","event_ts":"1700000500.000100"}`
	asMessage := `{"type":"message","user":"U222","text":"<@U0BOTUSER> run the tests","ts":"1700000500.000100","channel":"C123","channel_type":"channel","event_ts":"1700000500.000100"}`
	for _, req := range []struct {
		body   []byte
		header []string
	}{
		{callback("EvMENTION", mention), nil},
		{callback("EvMENTION", mention), []string{"X-Slack-Retry-Num", "1", "X-Slack-Retry-Reason", "http_timeout"}},
		{callback("EvMENTION", mention), []string{"X-Slack-Retry-Num", "2", "X-Slack-Retry-Reason", "http_error"}},
		// Subscribed to app_mention and message.channels, Slack sends the
		// same message again as a message event with another event id.
		{callback("EvMESSAGE", asMessage), nil},
	} {
		if w := post(a, req.body, req.header...); w.Code != http.StatusOK {
			t.Fatalf("status = %d", w.Code)
		}
	}
	ins := rec.all()
	if len(ins) != 4 {
		t.Fatalf("%d ingests, want 4", len(ins))
	}
	for _, in := range ins {
		if in.Envelope.ID != "slack:T0TEST/C123/1700000500.000100" {
			t.Errorf("id = %q", in.Envelope.ID)
		}
		if in.Envelope.Text != "run the tests" || !in.Facts.Addressed {
			t.Errorf("text %q addressed %v", in.Envelope.Text, in.Facts.Addressed)
		}
	}
	if got := outcomes(a, "http"); got[outcomeIngested] != 1 || got[outcomeDuplicate] != 3 {
		t.Errorf("outcomes = %v, want 1 ingested and 3 duplicates", got)
	}
}

func TestLoopPrevention(t *testing.T) {
	for _, tc := range []struct {
		name  string
		inner string
		own   bool
	}{
		{"bot_message with our bot id", `{"type":"message","subtype":"bot_message","bot_id":"B0OWN","text":"reply","ts":"1.1","thread_ts":"1.0","channel":"C1"}`, true},
		{"our bot user", `{"type":"message","user":"U0BOTUSER","text":"reply","ts":"1.2","thread_ts":"1.0","channel":"C1"}`, true},
		{"our app", `{"type":"message","user":"U0OTHER","app_id":"A0TEST","text":"reply","ts":"1.3","channel":"C1"}`, true},
		{"our app in bot_profile", `{"type":"message","bot_id":"B0NEW","bot_profile":{"app_id":"A0TEST","name":"sb"},"text":"reply","ts":"1.4","channel":"C1"}`, true},
		{"edit of our reply", `{"type":"message","subtype":"message_changed","channel":"C1","ts":"1.5","message":{"type":"message","user":"U0BOTUSER","bot_id":"B0OWN","text":"new","ts":"1.1"},"previous_message":{"type":"message","user":"U0BOTUSER","text":"old","ts":"1.1"}}`, true},
		{"deletion of our reply", `{"type":"message","subtype":"message_deleted","channel":"C1","ts":"1.6","deleted_ts":"1.1","previous_message":{"type":"message","bot_id":"B0OWN","text":"old","ts":"1.1"}}`, true},
		{"another bot", `{"type":"message","subtype":"bot_message","bot_id":"B0THEM","username":"ci-bot","text":"build failed","ts":"1.7","thread_ts":"1.0","channel":"C1"}`, false},
		{"another bot's user", `{"type":"message","user":"U0THEMBOT","bot_id":"B0THEM","app_id":"A0THEM","text":"deployed","ts":"1.8","channel":"C1"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeSlack(t)
			fake.setUsers(map[string]string{"U0THEMBOT": "deploy-bot"})
			rec := newRecorder()
			a := newTestAdapter(t, fake, rec, nil)
			if w := post(a, callback("EvLOOP", tc.inner)); w.Code != http.StatusOK {
				t.Fatalf("status = %d", w.Code)
			}
			ins := rec.all()
			if tc.own {
				if len(ins) != 0 {
					t.Fatalf("own message ingested: %+v", ins[0].Envelope)
				}
				if outcomes(a, "http")[outcomeOwn] != 1 {
					t.Errorf("outcomes = %v, want own", outcomes(a, "http"))
				}
				if fake.callCount("users.info") != 0 {
					t.Errorf("own message cost %d users.info calls", fake.callCount("users.info"))
				}
				return
			}
			if len(ins) != 1 {
				t.Fatalf("%d ingests, want 1", len(ins))
			}
			in := ins[0]
			if !in.Facts.FromBot || in.Envelope.Actor.Type != envelope.Agent || in.Envelope.Actor.Display == "" {
				t.Errorf("another bot's message: facts %+v actor %+v", in.Facts, in.Envelope.Actor)
			}
		})
	}
}

func TestIngestFailureMakesSlackRetry(t *testing.T) {
	fake := newFakeSlack(t)
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	rec.setFail(errors.New("store unavailable"))
	body := callback("EvFAIL", humanInThread)
	if w := post(a, body); w.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500 when the message could not be stored", w.Code)
	}
	rec.setFail(nil)
	if w := post(a, body, "X-Slack-Retry-Num", "1"); w.Code != http.StatusOK {
		t.Fatalf("retry: status = %d, want 200", w.Code)
	}
	if n := len(rec.all()); n != 1 {
		t.Fatalf("%d stored, want 1", n)
	}
}

func TestIdentityRequired(t *testing.T) {
	fake := newFakeSlack(t)
	fake.authError = "invalid_auth"
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	w := post(a, callback("EvAUTH", humanInThread))
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503 while the bot identity is unknown", w.Code)
	}
	if len(rec.all()) != 0 {
		t.Fatal("ingested without knowing which messages are the bot's own")
	}
	if err := a.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "invalid_auth") {
		t.Fatalf("Check = %v, want invalid_auth", err)
	}
	// Once Slack accepts the token again, the same event goes through and
	// the adapter is healthy.
	fake.mu.Lock()
	fake.authError = ""
	fake.mu.Unlock()
	if w := post(a, callback("EvAUTH", humanInThread)); w.Code != http.StatusOK {
		t.Fatalf("status = %d after recovery", w.Code)
	}
	if err := a.Check(t.Context()); err != nil {
		t.Fatalf("Check after recovery: %v", err)
	}
	if fake.callCount("auth.test") != 2 {
		t.Errorf("auth.test called %d times, want 2 (then cached)", fake.callCount("auth.test"))
	}
}

func TestFactsAndRendering(t *testing.T) {
	for _, tc := range []struct {
		name  string
		inner string
		text  string
		facts adapters.Facts
		conv  string
		refs  envelope.Refs
	}{
		{
			name:  "channel message without mention",
			inner: `{"type":"message","user":"U222","text":"deploy &amp; tell <#C9|ops> about <https://github.com/acme/api/pull/42|the PR>","ts":"1700000600.000100","channel":"C123","channel_type":"channel"}`,
			text:  "deploy & tell #ops about the PR (https://github.com/acme/api/pull/42)",
			facts: adapters.Facts{Where: "C123", Sender: "U222", ChannelID: "1700000600.000100"},
			conv:  "T0TEST/C123/1700000600.000100",
			refs:  envelope.Refs{"repo": "acme/api", "pr": "42"},
		},
		{
			name:  "mention mid-sentence",
			inner: `{"type":"message","user":"U222","text":"thanks <@U0BOTUSER>, and <@U333> see PROJ-12 &lt;3","ts":"1700000601.000100","thread_ts":"1700000000.000100","channel":"C123","channel_type":"channel"}`,
			text:  "thanks @switchboard, and @Margaret see PROJ-12 <3",
			facts: adapters.Facts{Where: "C123", Addressed: true, Sender: "U222", ChannelID: "1700000601.000100"},
			conv:  "T0TEST/C123/1700000000.000100",
			refs:  envelope.Refs{"issue": "PROJ-12"},
		},
		{
			name:  "direct message",
			inner: `{"type":"message","user":"U222","text":"<@U0BOTUSER>: status? <!here> <mailto:a@b.co|a@b.co> <http://example.com|example.com>","ts":"1700000602.000100","channel":"D042","channel_type":"im"}`,
			text:  "status? @here a@b.co example.com",
			facts: adapters.Facts{Where: "D042", Addressed: true, Direct: true, Sender: "U222", ChannelID: "1700000602.000100"},
			conv:  "T0TEST/D042/1700000602.000100",
		},
		{
			name:  "group DM needs a mention",
			inner: `{"type":"message","user":"U222","text":"lunch?","ts":"1700000603.000100","channel":"G042","channel_type":"mpim"}`,
			text:  "lunch?",
			facts: adapters.Facts{Where: "G042", Sender: "U222", ChannelID: "1700000603.000100"},
			conv:  "T0TEST/G042/1700000603.000100",
		},
		{
			name:  "file only",
			inner: `{"type":"message","subtype":"file_share","user":"U222","text":"","files":[{"name":"trace.log","title":"trace"}],"ts":"1700000604.000100","channel":"C123","channel_type":"channel"}`,
			text:  "[file: trace]",
			facts: adapters.Facts{Where: "C123", Sender: "U222", ChannelID: "1700000604.000100"},
			conv:  "T0TEST/C123/1700000604.000100",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeSlack(t)
			fake.setUsers(map[string]string{"U222": "Linus", "U0BOTUSER": "switchboard", "U333": "Margaret"})
			rec := newRecorder()
			a := newTestAdapter(t, fake, rec, nil)
			if w := post(a, callback("EvR", tc.inner)); w.Code != http.StatusOK {
				t.Fatalf("status = %d", w.Code)
			}
			ins := rec.all()
			if len(ins) != 1 {
				t.Fatalf("%d ingests, want 1", len(ins))
			}
			in := ins[0]
			if in.Envelope.Text != tc.text {
				t.Errorf("text = %q, want %q", in.Envelope.Text, tc.text)
			}
			if in.Facts != tc.facts {
				t.Errorf("facts = %+v, want %+v", in.Facts, tc.facts)
			}
			if in.Envelope.Conversation != (envelope.Conversation{Source: "slack", Ref: tc.conv}) {
				t.Errorf("conversation = %+v, want ref %q", in.Envelope.Conversation, tc.conv)
			}
			if len(in.Envelope.Refs) != len(tc.refs) {
				t.Errorf("refs = %v, want %v", in.Envelope.Refs, tc.refs)
			}
			for k, v := range tc.refs {
				if in.Envelope.Refs[k] != v {
					t.Errorf("refs = %v, want %v", in.Envelope.Refs, tc.refs)
				}
			}
			if in.Envelope.Actor != (envelope.Actor{ID: "slack:U222", Display: "Linus", Type: envelope.Human}) {
				t.Errorf("actor = %+v", in.Envelope.Actor)
			}
		})
	}
}

func TestEditsAndDeletes(t *testing.T) {
	fake := newFakeSlack(t)
	fake.setUsers(map[string]string{"U222": "Linus"})
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	for _, tc := range []struct {
		name   string
		inner  string
		kind   envelope.Kind
		id     string
		refKey string
		conv   string
	}{
		{"edit in a thread", `{"type":"message","subtype":"message_changed","hidden":true,"channel":"C123","ts":"1700000700.000100","message":{"type":"message","user":"U222","text":"edited <@U0BOTUSER>","ts":"1700000100.000200","thread_ts":"1700000000.000100"},"previous_message":{"type":"message","user":"U222","text":"orig","ts":"1700000100.000200","thread_ts":"1700000000.000100"}}`,
			envelope.KindEdit, "slack:T0TEST/C123/1700000100.000200/edit/1700000700.000100", "edits", "T0TEST/C123/1700000000.000100"},
		{"tombstone is a delete", `{"type":"message","subtype":"message_changed","hidden":true,"channel":"C123","ts":"1700000701.000100","message":{"type":"message","subtype":"tombstone","user":"USLACKBOT","text":"This message was deleted.","ts":"1700000000.000100","thread_ts":"1700000000.000100"},"previous_message":{"type":"message","user":"U222","text":"root","ts":"1700000000.000100","thread_ts":"1700000000.000100"}}`,
			envelope.KindDelete, "slack:T0TEST/C123/1700000000.000100/delete", "deletes", "T0TEST/C123/1700000000.000100"},
		{"delete in a thread", `{"type":"message","subtype":"message_deleted","hidden":true,"channel":"C123","ts":"1700000702.000100","deleted_ts":"1700000100.000200","previous_message":{"type":"message","user":"U222","text":"orig","ts":"1700000100.000200","thread_ts":"1700000000.000100"}}`,
			envelope.KindDelete, "slack:T0TEST/C123/1700000100.000200/delete", "deletes", "T0TEST/C123/1700000000.000100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rec.all())
			if w := post(a, callback("EvE", tc.inner)); w.Code != http.StatusOK {
				t.Fatalf("status = %d", w.Code)
			}
			ins := rec.all()
			if len(ins) != before+1 {
				t.Fatalf("no ingest")
			}
			env := ins[len(ins)-1].Envelope
			if env.Kind != tc.kind || env.ID != tc.id || env.Conversation.Ref != tc.conv {
				t.Errorf("got kind %s id %s conv %s", env.Kind, env.ID, env.Conversation.Ref)
			}
			if !strings.HasPrefix(env.Refs[tc.refKey], "slack:T0TEST/C123/") {
				t.Errorf("refs = %v, want %s naming the original envelope", env.Refs, tc.refKey)
			}
			if err := env.Validate(0); err != nil {
				t.Errorf("invalid: %v", err)
			}
		})
	}
	// A change that leaves the text alone (an unfurl, a reply count) is no
	// edit; joins and other subtypes are not messages.
	for _, inner := range []string{
		`{"type":"message","subtype":"message_changed","channel":"C123","ts":"1700000703.000100","message":{"type":"message","user":"U222","text":"same","ts":"1.1","attachments":[{"title":"unfurl"}]},"previous_message":{"type":"message","user":"U222","text":"same","ts":"1.1"}}`,
		`{"type":"message","subtype":"channel_join","user":"U222","text":"<@U222> has joined the channel","ts":"1.2","channel":"C123"}`,
		`{"type":"reaction_added","user":"U222","reaction":"eyes","item":{"type":"message","channel":"C123","ts":"1.1"}}`,
	} {
		before := len(rec.all())
		if w := post(a, callback("EvX", inner)); w.Code != http.StatusOK {
			t.Fatalf("status = %d", w.Code)
		}
		if len(rec.all()) != before {
			t.Errorf("ingested %s", inner)
		}
	}
}

func TestSlowLookupsStayWithinBudget(t *testing.T) {
	fake := newFakeSlack(t)
	fake.setUsers(map[string]string{"U222": "Linus"})
	release := make(chan struct{})
	fake.usersBlock = release
	t.Cleanup(func() { close(release) })
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, func(c *Config) { c.LookupTimeout = duration.Duration(50 * time.Millisecond) })
	if _, err := a.identity(t.Context()); err != nil { // only users.info is slow
		t.Fatal(err)
	}
	if w := post(a, callback("EvSLOW", humanInThread)); w.Code != http.StatusOK {
		t.Fatalf("status = %d", w.Code)
	}
	ins := rec.all()
	if len(ins) != 1 || ins[0].Envelope.Actor.Display != "" || ins[0].Envelope.Actor.ID != "slack:U222" {
		t.Fatalf("want the message stored without a display name, got %+v", ins)
	}
}

func TestUserNamesAreCached(t *testing.T) {
	fake := newFakeSlack(t)
	fake.setUsers(map[string]string{"U222": "Linus"})
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	for i, ts := range []string{"1700000100.000201", "1700000100.000202", "1700000100.000203"} {
		inner := strings.Replace(humanInThread, "1700000100.000200", ts, 2)
		if w := post(a, callback("EvC"+string(rune('0'+i)), inner)); w.Code != http.StatusOK {
			t.Fatalf("status = %d", w.Code)
		}
	}
	if n := fake.callCount("users.info"); n != 1 {
		t.Errorf("users.info called %d times for one user, want 1", n)
	}
	for _, in := range rec.all() {
		if in.Envelope.Actor.Display != "Linus" {
			t.Errorf("display = %q", in.Envelope.Actor.Display)
		}
	}
}

func TestRender(t *testing.T) {
	names := map[string]string{"U1": "ada", "W2": "Grace Hopper"}
	users := func(id string) string { return names[id] }
	for in, want := range map[string]string{
		"<@U1> hi":                               "@ada hi",
		"hi <@W2>":                               "hi @Grace Hopper",
		"<@U9|legacy>":                           "@legacy",
		"<@U9>":                                  "@U9",
		"<#C1|general> and <#C2>":                "#general and #C2",
		"<!here> <!channel> <!everyone>":         "@here @channel @everyone",
		"<!subteam^S1|@eng> ping":                "@eng ping",
		"<!date^1392734382^{date}|Feb 18, 2014>": "Feb 18, 2014",
		"<https://x.io|label>":                   "label (https://x.io)",
		"<https://x.io>":                         "https://x.io",
		"<https://x.io/?a=1&amp;b=2|q&amp;a>":    "q&a (https://x.io/?a=1&b=2)",
		"<http://x.io|x.io>":                     "x.io",
		"<mailto:a@b.co|a@b.co>":                 "a@b.co",
		"a &lt;b&gt; &amp;amp;":                  "a <b> &amp;",
		"unclosed < bracket":                     "unclosed < bracket",
	} {
		if got := render(in, users); got != want {
			t.Errorf("render(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"<@UBOT> hello":        "hello",
		"  <@UBOT>: hello":     "hello",
		"<@UBOT|sb>, hello":    "hello",
		"<@UBOTX> hello":       "<@UBOTX> hello",
		"hello <@UBOT>":        "hello <@UBOT>",
		"<@UOTHER> <@UBOT> hi": "<@UOTHER> <@UBOT> hi",
	} {
		if got := stripLeadingMention(in, "UBOT"); got != want {
			t.Errorf("stripLeadingMention(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseTS(t *testing.T) {
	got, err := parseTS("1700000100.000200")
	if err != nil || !got.Equal(time.Unix(1700000100, 200000)) {
		t.Fatalf("parseTS = %v, %v", got, err)
	}
	if formatTS(got) != "1700000100.000200" {
		t.Errorf("formatTS = %s", formatTS(got))
	}
	for _, bad := range []string{"", "abc", "-1.0", "1.x"} {
		if _, err := parseTS(bad); err == nil {
			t.Errorf("parseTS(%q) accepted", bad)
		}
	}
}

// TestNULInTextIsStripped: a message whose text holds a NUL (which
// PostgreSQL refuses) is stored with the NUL removed, raw kept as sent.
func TestNULInTextIsStripped(t *testing.T) {
	fake := newFakeSlack(t)
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	inner := `{"type":"message","user":"U222","text":"follow-up\u0000 question","ts":"1700000100.000200","thread_ts":"1700000000.000100","channel":"C123","channel_type":"channel","event_ts":"1700000100.000200"}`
	body := callback("EvNUL", inner)
	if w := post(a, body); w.Code != http.StatusOK {
		t.Fatalf("status = %d: %s", w.Code, w.Body)
	}
	ins := rec.all()
	if len(ins) != 1 {
		t.Fatalf("%d ingested, want 1", len(ins))
	}
	if got := ins[0].Envelope.Text; got != "follow-up question" {
		t.Errorf("text = %q, want the NUL stripped", got)
	}
	if string(ins[0].Envelope.Raw) != string(body) {
		t.Error("raw is not the payload as sent")
	}
}
