package jira

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
	"github.com/switchboardhq/switchboard/config/duration"
	"github.com/switchboardhq/switchboard/envelope"
)

const testdata = "../../testdata/jira"

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goldenCase is one fixture sent through the HTTP handler.
type goldenCase struct {
	name    string // golden file name without .golden.json
	fixture string
	hookID  string         // X-Atlassian-Webhook-Identifier
	myself  map[string]any // the bot's account, when not the default
	dc      bool           // a Data Center adapter (personal access token)
	mutate  func(*Config)
}

// goldenCases lists a case for every fixture in testdata/jira.
func goldenCases() []goldenCase {
	steer := func(c *Config) { c.DescriptionSteers = true }
	return []goldenCase{
		{name: "zulip-comment_created", fixture: "zulip-comment_created.json", hookID: "b0f1a6e0-zulip-1"},
		// The mentioned account 63a2… plays the bot: its mentions render as
		// its display name and address the bot.
		{name: "zulip-comment_created_with_account_mention", fixture: "zulip-comment_created_with_account_mention.json",
			myself: map[string]any{"accountId": "63a22fb348b367d78a14c15b", "displayName": "Switchboard"}},
		{name: "zulip-issue_created", fixture: "zulip-issue_created.json", mutate: steer},
		{name: "zulip-issue_created.description-off", fixture: "zulip-issue_created.json"},
		// The same comment again, as jira:issue_updated: the same envelope.
		{name: "DERIVED-issue_updated.issue_commented", fixture: "DERIVED-issue_updated.issue_commented.json", hookID: "b0f1a6e0-zulip-2"},
		{name: "SYNTHESIZED-comment_created.wiki", fixture: "SYNTHESIZED-comment_created.wiki.json"},
		{name: "SYNTHESIZED-comment_created.adf", fixture: "SYNTHESIZED-comment_created.adf.json"},
		{name: "SYNTHESIZED-comment_created.app", fixture: "SYNTHESIZED-comment_created.app.json"},
		{name: "SYNTHESIZED-comment_created.own", fixture: "SYNTHESIZED-comment_created.own.json"},
		{name: "SYNTHESIZED-comment_created.marker", fixture: "SYNTHESIZED-comment_created.marker.json"},
		{name: "SYNTHESIZED-comment_created.datacenter", fixture: "SYNTHESIZED-comment_created.datacenter.json", dc: true,
			myself: map[string]any{"name": "switchboard", "key": "switchboard", "displayName": "Switchboard"}},
		{name: "SYNTHESIZED-comment_updated", fixture: "SYNTHESIZED-comment_updated.json"},
		{name: "SYNTHESIZED-comment_deleted", fixture: "SYNTHESIZED-comment_deleted.json"},
		{name: "SYNTHESIZED-issue_updated.issue_assigned", fixture: "SYNTHESIZED-issue_updated.issue_assigned.json", hookID: "7c7e8f1a-assign-1"},
		{name: "SYNTHESIZED-issue_updated.issue_assigned.no-identifier", fixture: "SYNTHESIZED-issue_updated.issue_assigned.json"},
		{name: "SYNTHESIZED-issue_updated.status_changed", fixture: "SYNTHESIZED-issue_updated.status_changed.json", hookID: "7c7e8f1a-status-1"},
	}
}

// goldenResult is what a golden file holds.
type goldenResult struct {
	Status   int             `json:"status"`
	Outcome  string          `json:"outcome"`
	Facts    *adapters.Facts `json:"facts,omitempty"`
	Envelope json.RawMessage `json:"envelope,omitempty"`
}

// runCase sends a case's fixture through a fresh adapter and returns the
// result and what was ingested.
func runCase(t *testing.T, tc goldenCase) (goldenResult, []adapters.Inbound) {
	t.Helper()
	fake := newFakeJira(t)
	if tc.myself != nil {
		fake.myself = tc.myself
	}
	mutate := tc.mutate
	if tc.dc {
		fake.auth = "Bearer " + testPAT
		mutate = func(c *Config) {
			c.Email, c.APIToken, c.PersonalAccessToken = "", "", testPAT
			if tc.mutate != nil {
				tc.mutate(c)
			}
		}
	}
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, mutate)
	body := readFixture(t, tc.fixture)
	var hdr []string
	if tc.hookID != "" {
		hdr = []string{HeaderWebhookID, tc.hookID}
	}
	w := post(a, body, hdr...)
	res := goldenResult{Status: w.Code}
	for o := range outcomes(a) {
		res.Outcome = o
	}
	ins := rec.All()
	if len(ins) > 1 {
		t.Fatalf("%d messages ingested, want at most 1", len(ins))
	}
	if len(ins) == 1 {
		in := ins[0]
		if !bytes.Equal(in.Envelope.Raw, body) {
			t.Fatalf("raw is not the request body byte for byte")
		}
		if err := in.Envelope.Validate(0); err != nil {
			t.Fatalf("envelope does not validate: %v", err)
		}
		env, err := in.Envelope.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		// The golden file shows the envelope without its raw payload (the
		// fixture itself), which was compared above.
		var m map[string]json.RawMessage
		if err := json.Unmarshal(env, &m); err != nil {
			t.Fatal(err)
		}
		m["raw"] = json.RawMessage(`"<the fixture, byte for byte>"`)
		res.Envelope = marshalOrdered(t, m, "id", "source", "kind", "actor", "conversation", "text", "refs", "ts", "raw")
		res.Facts = &in.Facts
	}
	if p := fake.problemsSeen(); len(p) > 0 {
		t.Fatalf("fake Jira saw malformed requests: %v", p)
	}
	return res, ins
}

func marshalOrdered(t *testing.T, m map[string]json.RawMessage, keys ...string) json.RawMessage {
	t.Helper()
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(m[k])
	}
	b.WriteByte('}')
	return b.Bytes()
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := runCase(t, tc)
			adaptertest.GoldenJSON(t, filepath.Join(testdata, tc.name+".golden.json"), res)
		})
	}
}

// TestGoldenFilesHaveFixtures keeps testdata tidy: every golden file belongs
// to a case, and every fixture has one.
func TestGoldenFilesHaveFixtures(t *testing.T) {
	var names []string
	for _, tc := range goldenCases() {
		names = append(names, tc.name)
		if base := strings.TrimSuffix(tc.fixture, ".json"); tc.name != base && !strings.HasPrefix(tc.name, base+".") {
			t.Errorf("case %s is not named after its fixture %s", tc.name, tc.fixture)
		}
	}
	adaptertest.CheckTidy(t, testdata, "*.json", names)
}

// TestGoldenExpectations spells out the key facts of the golden files, so
// that an -update cannot silently accept a regression in them.
func TestGoldenExpectations(t *testing.T) {
	byName := map[string]goldenCase{}
	for _, tc := range goldenCases() {
		byName[tc.name] = tc
	}
	one := func(t *testing.T, name string) adapters.Inbound {
		t.Helper()
		res, ins := runCase(t, byName[name])
		if res.Status != http.StatusNoContent || len(ins) != 1 {
			t.Fatalf("%s: status %d, %d ingested", name, res.Status, len(ins))
		}
		return ins[0]
	}
	t.Run("plain comment", func(t *testing.T) {
		in := one(t, "zulip-comment_created")
		e := in.Envelope
		if e.ID != "jira:zulipintegrations.atlassian.net:10000" || e.Conversation.Ref != "zulipintegrations.atlassian.net/ZUL-1" ||
			e.Actor.ID != "jira:5a1b0e47748e770ed11f338c" || e.Actor.Display != "Eeshan Garg" || e.Actor.Type != envelope.Human ||
			e.Text != "Leaving a comment here! :)" || e.Refs[envelope.RefIssue] != "ZUL-1" || e.Kind != envelope.KindMessage {
			t.Errorf("envelope = %+v", e)
		}
		if in.Facts != (adapters.Facts{Where: "ZUL", Sender: "5a1b0e47748e770ed11f338c", ChannelID: "10000"}) {
			t.Errorf("facts = %+v", in.Facts)
		}
	})
	t.Run("mentions", func(t *testing.T) {
		in := one(t, "zulip-comment_created_with_account_mention")
		if in.Envelope.Text != "@Peter @Switchboard @Switchboard" || !in.Facts.Addressed {
			t.Errorf("text %q addressed %v", in.Envelope.Text, in.Facts.Addressed)
		}
	})
	t.Run("wiki", func(t *testing.T) {
		in := one(t, "SYNTHESIZED-comment_created.wiki")
		e := in.Envelope
		if !strings.HasPrefix(e.Text, "please look at this:\n### Failing test\nThe **integration** job fails on `TestMigrate`") ||
			!strings.Contains(e.Text, "@Grace Hopper") || !strings.Contains(e.Text, "```go\nfunc TestMigrate") {
			t.Errorf("text = %q", e.Text)
		}
		want := envelope.Refs{"issue": "OPS-42", "repo": "acme/api", "pr": "42"}
		if !refsEqual(e.Refs, want) || !in.Facts.Addressed || in.Facts.Where != "OPS" {
			t.Errorf("refs %v addressed %v where %q", e.Refs, in.Facts.Addressed, in.Facts.Where)
		}
	})
	t.Run("adf", func(t *testing.T) {
		in := one(t, "SYNTHESIZED-comment_created.adf")
		want := "can you **fix** the build? See [PR 7](https://github.com/acme/api/pull/7) and ask @Grace Hopper.\n\n```python\nprint('hi')\n```\n\n- run `make test`\n- *report back*"
		if in.Envelope.Text != want || !in.Facts.Addressed || in.Envelope.Refs["pr"] != "7" {
			t.Errorf("text %q addressed %v refs %v", in.Envelope.Text, in.Facts.Addressed, in.Envelope.Refs)
		}
	})
	t.Run("edit", func(t *testing.T) {
		in := one(t, "SYNTHESIZED-comment_updated")
		e := in.Envelope
		if e.Kind != envelope.KindEdit || e.ID != "jira:acme.atlassian.net:10100:edit:1781784330250" ||
			e.Refs["edits"] != "jira:acme.atlassian.net:10100" || e.Text != "please look at OPS-7 instead" || e.Refs["issue"] != "OPS-42" {
			t.Errorf("edit = %+v", e)
		}
	})
	t.Run("delete", func(t *testing.T) {
		in := one(t, "SYNTHESIZED-comment_deleted")
		e := in.Envelope
		if e.Kind != envelope.KindDelete || e.ID != "jira:acme.atlassian.net:10100:delete" || e.Refs["deletes"] != "jira:acme.atlassian.net:10100" || e.Text != "" {
			t.Errorf("delete = %+v", e)
		}
	})
	t.Run("assigned", func(t *testing.T) {
		in := one(t, "SYNTHESIZED-issue_updated.issue_assigned")
		e := in.Envelope
		if e.ID != "jira:acme.atlassian.net:issue_assigned:OPS-42:changelog:10311" || !in.Facts.Addressed || e.Actor.Display != "Ada Lovelace" ||
			!strings.HasPrefix(e.Text, "OPS-42: Nightly build is red\n\nSince [PR 42](https://github.com/acme/api/pull/42) the **nightly** job fails.") ||
			!refsEqual(e.Refs, envelope.Refs{"issue": "OPS-42", "repo": "acme/api", "pr": "42", "branch": "fix/nightly", "jira_event": "issue_assigned"}) {
			t.Errorf("assigned = %+v facts %+v", e, in.Facts)
		}
	})
	t.Run("issue created", func(t *testing.T) {
		in := one(t, "zulip-issue_created")
		e := in.Envelope
		if e.Text != "BUG-15: New bug with hook\n\nFix me please" || e.Conversation.Ref != "lfranchi.com:8080/BUG-15" || in.Facts.Addressed {
			t.Errorf("created = %+v facts %+v", e, in.Facts)
		}
	})
	t.Run("data center", func(t *testing.T) {
		in := one(t, "SYNTHESIZED-comment_created.datacenter")
		e := in.Envelope
		if e.Text != "rebase [feature/login](https://github.com/acme/web/tree/feature/login) onto main, then ping @Maria Keller" ||
			e.Actor.ID != "jira:jsmith" || !in.Facts.Addressed || e.Refs["branch"] != "feature/login" {
			t.Errorf("dc = %+v facts %+v", e, in.Facts)
		}
	})
	t.Run("app", func(t *testing.T) {
		in := one(t, "SYNTHESIZED-comment_created.app")
		if in.Envelope.Actor.Type != envelope.Agent || !in.Facts.FromBot || !in.Facts.Addressed {
			t.Errorf("app = %+v facts %+v", in.Envelope.Actor, in.Facts)
		}
	})
	for name, outcome := range map[string]string{
		"SYNTHESIZED-comment_created.own":          outcomeOwn,
		"SYNTHESIZED-comment_created.marker":       outcomeOwn,
		"zulip-issue_created.description-off":      outcomeIgnored,
		"SYNTHESIZED-issue_updated.status_changed": outcomeIgnored,
	} {
		t.Run(name, func(t *testing.T) {
			res, ins := runCase(t, byName[name])
			if res.Status != http.StatusNoContent || len(ins) != 0 || res.Outcome != outcome {
				t.Errorf("status %d, %d ingested, outcome %q; want 204, none, %q", res.Status, len(ins), res.Outcome, outcome)
			}
		})
	}
}

func refsEqual(a, b envelope.Refs) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestDoubleDeliveryIsOneMessage(t *testing.T) {
	fake := newFakeJira(t)
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	// Jira sends a new comment as comment_created and, to webhooks that
	// also listen to issue updates, as jira:issue_updated with
	// issue_event_type_name issue_commented: two deliveries, two
	// identifiers, one comment.
	for i, f := range []string{"zulip-comment_created.json", "DERIVED-issue_updated.issue_commented.json"} {
		if w := post(a, readFixture(t, f), HeaderWebhookID, "hook-"+string(rune('a'+i))); w.Code != http.StatusNoContent {
			t.Fatalf("%s: status %d", f, w.Code)
		}
	}
	ins := rec.All()
	if len(ins) != 2 {
		t.Fatalf("%d ingests, want 2", len(ins))
	}
	if ins[0].Envelope.ID != ins[1].Envelope.ID || ins[0].Envelope.ID != "jira:zulipintegrations.atlassian.net:10000" {
		t.Fatalf("ids %q and %q, want one id", ins[0].Envelope.ID, ins[1].Envelope.ID)
	}
	if !envelope.Equivalent(&ins[0].Envelope, &ins[1].Envelope) || ins[0].Facts != ins[1].Facts {
		t.Errorf("the two deliveries map differently:\n%+v\n%+v", ins[0], ins[1])
	}
	if got := outcomes(a); got[outcomeIngested] != 1 || got[outcomeDuplicate] != 1 {
		t.Errorf("outcomes = %v, want 1 ingested and 1 duplicate", got)
	}
}

func TestLateRetriesKeepTheirID(t *testing.T) {
	fake := newFakeJira(t)
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	assigned := readFixture(t, "SYNTHESIZED-issue_updated.issue_assigned.json")
	comment := readFixture(t, "SYNTHESIZED-comment_created.wiki.json")
	for _, req := range []struct {
		body   []byte
		header []string
	}{
		{assigned, []string{HeaderWebhookID, "7c7e8f1a-assign-1"}},
		{comment, []string{HeaderWebhookID, "7c7e8f1a-comment-1"}},
		// Jira retries up to half an hour later, with the same identifier.
		{assigned, []string{HeaderWebhookID, "7c7e8f1a-assign-1", HeaderWebhookRetry, "1"}},
		{comment, []string{HeaderWebhookID, "7c7e8f1a-comment-1", HeaderWebhookRetry, "1"}},
		{assigned, []string{HeaderWebhookID, "7c7e8f1a-assign-1", HeaderWebhookRetry, "4"}},
	} {
		if w := post(a, req.body, req.header...); w.Code != http.StatusNoContent {
			t.Fatalf("status %d", w.Code)
		}
	}
	ids := map[string]int{}
	for _, in := range rec.All() {
		ids[in.Envelope.ID]++
	}
	const assignedID = "jira:acme.atlassian.net:issue_assigned:OPS-42:changelog:10311"
	want := map[string]int{assignedID: 3, "jira:acme.atlassian.net:10100": 2}
	if len(ids) != 2 || ids[assignedID] != 3 || ids["jira:acme.atlassian.net:10100"] != 2 {
		t.Fatalf("ids = %v, want %v", ids, want)
	}
	if got := outcomes(a); got[outcomeIngested] != 2 || got[outcomeDuplicate] != 3 {
		t.Errorf("outcomes = %v", got)
	}
	// Without the identifier header (Data Center), retries of an event
	// without a comment still agree on an id: the changelog's.
	rec2 := newRecorder()
	b := newTestAdapter(t, fake, rec2, nil)
	post(b, assigned)
	post(b, assigned)
	if ins := rec2.All(); len(ins) != 2 || ins[0].Envelope.ID != ins[1].Envelope.ID ||
		ins[0].Envelope.ID != "jira:acme.atlassian.net:issue_assigned:OPS-42:changelog:10311" {
		t.Fatalf("ids without identifier: %+v", ins)
	}
}

// TestReplayUnderNewIdentifierIsOneMessage checks that the envelope ids of
// events without a comment come from the signed payload, not from the
// unsigned X-Atlassian-Webhook-Identifier header: the same body under other
// identifiers (a replay) stores once, and a genuinely new event (another
// change, a later update) stores again.
func TestReplayUnderNewIdentifierIsOneMessage(t *testing.T) {
	fake := newFakeJira(t)
	noChangelog := func(updated string) []byte {
		return reshape(t, "SYNTHESIZED-issue_updated.issue_assigned.json", func(m map[string]any) {
			delete(m, "changelog")
			m["issue"].(map[string]any)["fields"].(map[string]any)["updated"] = updated
		})
	}
	for _, tc := range []struct {
		name      string
		body, new []byte // new: the next event of the same kind on the issue
		mutate    func(*Config)
		id        string
	}{
		{name: "assigned", body: readFixture(t, "SYNTHESIZED-issue_updated.issue_assigned.json"),
			new: reshape(t, "SYNTHESIZED-issue_updated.issue_assigned.json", func(m map[string]any) {
				m["changelog"].(map[string]any)["id"] = "10312"
			}),
			id: "jira:acme.atlassian.net:issue_assigned:OPS-42:changelog:10311"},
		{name: "assigned without changelog", body: noChangelog("2026-06-18T12:00:00.000+0000"),
			new: noChangelog("2026-06-18T12:30:00.000+0000"),
			id:  "jira:acme.atlassian.net:issue_assigned:OPS-42:updated:1781784000000"},
		{name: "created", body: readFixture(t, "zulip-issue_created.json"),
			new: reshape(t, "zulip-issue_created.json", func(m map[string]any) {
				m["issue"].(map[string]any)["key"] = "BUG-16"
			}),
			mutate: func(c *Config) { c.DescriptionSteers = true },
			id:     "jira:lfranchi.com:8080:issue_created:BUG-15"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder()
			a := newTestAdapter(t, fake, rec, tc.mutate)
			for _, hookID := range []string{"", "replay-1", "replay-2"} {
				var hdr []string
				if hookID != "" {
					hdr = []string{HeaderWebhookID, hookID}
				}
				if w := post(a, tc.body, hdr...); w.Code != http.StatusNoContent {
					t.Fatalf("status %d", w.Code)
				}
			}
			if w := post(a, tc.new, HeaderWebhookID, "replay-1"); w.Code != http.StatusNoContent {
				t.Fatalf("status %d", w.Code)
			}
			ins := rec.All()
			if len(ins) != 4 {
				t.Fatalf("%d ingests, want 4", len(ins))
			}
			for _, in := range ins[:3] {
				if in.Envelope.ID != tc.id {
					t.Errorf("id %q, want %q", in.Envelope.ID, tc.id)
				}
			}
			if ins[3].Envelope.ID == tc.id {
				t.Errorf("a new event has the id %q of the old one", tc.id)
			}
			if got := outcomes(a); got[outcomeIngested] != 2 || got[outcomeDuplicate] != 2 {
				t.Errorf("outcomes = %v, want 2 ingested and 2 duplicates", got)
			}
		})
	}
}

// reshape decodes a fixture, lets f change it and encodes it again.
func reshape(t *testing.T, fixture string, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(readFixture(t, fixture), &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEditsAndDeletesAgreeAcrossEventShapes(t *testing.T) {
	fake := newFakeJira(t)
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	for _, tc := range []struct {
		fixture, typeName string
	}{
		{"SYNTHESIZED-comment_updated.json", "issue_comment_edited"},
		{"SYNTHESIZED-comment_deleted.json", "issue_comment_deleted"},
	} {
		post(a, readFixture(t, tc.fixture))
		post(a, reshape(t, tc.fixture, func(m map[string]any) {
			m["webhookEvent"], m["issue_event_type_name"] = "jira:issue_updated", tc.typeName
			m["user"] = m["comment"].(map[string]any)["updateAuthor"]
		}))
	}
	ins := rec.All()
	if len(ins) != 4 {
		t.Fatalf("%d ingested", len(ins))
	}
	if ins[0].Envelope.ID != ins[1].Envelope.ID || ins[0].Envelope.Kind != envelope.KindEdit || ins[1].Envelope.Kind != envelope.KindEdit {
		t.Errorf("edits: %q %s, %q %s", ins[0].Envelope.ID, ins[0].Envelope.Kind, ins[1].Envelope.ID, ins[1].Envelope.Kind)
	}
	if ins[2].Envelope.ID != ins[3].Envelope.ID || ins[2].Envelope.Kind != envelope.KindDelete || ins[3].Envelope.Kind != envelope.KindDelete {
		t.Errorf("deletes: %q %s, %q %s", ins[2].Envelope.ID, ins[2].Envelope.Kind, ins[3].Envelope.ID, ins[3].Envelope.Kind)
	}
}

func TestLoopPrevention(t *testing.T) {
	botUser := map[string]any{"accountId": botAccountID, "displayName": "Switchboard", "accountType": "atlassian"}
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"own comment", reshape(t, "SYNTHESIZED-comment_created.wiki.json", func(m map[string]any) {
			c := m["comment"].(map[string]any)
			c["author"], c["updateAuthor"] = botUser, botUser
		})},
		{"own comment as issue_commented", reshape(t, "SYNTHESIZED-comment_created.wiki.json", func(m map[string]any) {
			c := m["comment"].(map[string]any)
			c["author"], c["updateAuthor"] = botUser, botUser
			m["webhookEvent"], m["issue_event_type_name"], m["user"] = "jira:issue_updated", "issue_commented", botUser
		})},
		{"own comment edited", reshape(t, "SYNTHESIZED-comment_updated.json", func(m map[string]any) {
			c := m["comment"].(map[string]any)
			c["author"], c["updateAuthor"] = botUser, botUser
		})},
		{"marker in a person's comment", reshape(t, "SYNTHESIZED-comment_created.wiki.json", func(m map[string]any) {
			c := m["comment"].(map[string]any)
			c["body"] = c["body"].(string) + marker("delivery-1", 1)
		})},
		{"marker in an ADF body", reshape(t, "SYNTHESIZED-comment_created.adf.json", func(m map[string]any) {
			doc := m["comment"].(map[string]any)["body"].(map[string]any)
			doc["content"] = append(doc["content"].([]any), map[string]any{"type": "paragraph", "content": []any{
				map[string]any{"type": "text", "text": "reply" + marker("delivery-2", 3)}}})
		})},
		{"a marked comment deleted", reshape(t, "SYNTHESIZED-comment_deleted.json", func(m map[string]any) {
			c := m["comment"].(map[string]any)
			c["body"] = "reply" + marker("delivery-3", 1)
		})},
		{"bot assigns itself", reshape(t, "SYNTHESIZED-issue_updated.issue_assigned.json", func(m map[string]any) { m["user"] = botUser })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder()
			a := newTestAdapter(t, newFakeJira(t), rec, nil)
			if w := post(a, tc.body); w.Code != http.StatusNoContent {
				t.Fatalf("status %d", w.Code)
			}
			if n := len(rec.All()); n != 0 {
				t.Fatalf("%d own messages ingested", n)
			}
			if got := outcomes(a); got[outcomeOwn] != 1 {
				t.Errorf("outcomes = %v, want own", got)
			}
		})
	}
}

// TestOwnRepliesComeBackAsOwn posts a reply with Deliver and feeds the
// comment Jira stored back as a webhook, under the bot's account and under
// a person's (as when a Data Center token of a human account posts).
func TestOwnRepliesComeBackAsOwn(t *testing.T) {
	fake := newFakeJira(t)
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	if _, err := a.Deliver(t.Context(), delivery("d-echo", "acme.atlassian.net/OPS-42", "Fixed in **PR 43**.", 1)); err != nil {
		t.Fatal(err)
	}
	stored := fake.posted()[0]
	ada := map[string]any{"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Ada Lovelace"}
	for _, author := range []map[string]any{{"accountId": botAccountID, "displayName": "Switchboard"}, ada} {
		post(a, reshape(t, "SYNTHESIZED-comment_created.wiki.json", func(m map[string]any) {
			c := m["comment"].(map[string]any)
			c["id"], c["body"], c["author"], c["updateAuthor"] = stored.ID, stored.Body, author, author
		}))
	}
	if n := len(rec.All()); n != 0 {
		t.Fatalf("%d echoes ingested", n)
	}
	if got := outcomes(a); got[outcomeOwn] != 2 {
		t.Errorf("outcomes = %v", got)
	}
}

func TestIngestFailureAsksForARetry(t *testing.T) {
	fake := newFakeJira(t)
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	body := readFixture(t, "SYNTHESIZED-comment_created.wiki.json")
	rec.SetFail(errors.New("disk full"))
	if w := post(a, body); w.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500 so that Jira retries", w.Code)
	}
	rec.SetFail(nil)
	if w := post(a, body, HeaderWebhookRetry, "1"); w.Code != http.StatusNoContent {
		t.Fatalf("retry: status %d", w.Code)
	}
	if n := len(rec.All()); n != 1 {
		t.Fatalf("%d ingested", n)
	}
}

func TestUnknownBotAccountAsksForARetry(t *testing.T) {
	fake := newFakeJira(t)
	fake.auth = "Bearer something-else" // every call is refused
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	if w := post(a, readFixture(t, "SYNTHESIZED-comment_created.wiki.json")); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", w.Code)
	}
	if err := a.Check(t.Context()); err == nil {
		t.Error("a 401 from /myself did not mark the adapter unhealthy")
	}
	if n := len(rec.All()); n != 0 {
		t.Fatalf("%d ingested without knowing the bot", n)
	}
	// Ignored events need no identity.
	if w := post(a, []byte(`{"webhookEvent":"jira:version_released","timestamp":1}`)); w.Code != http.StatusNoContent {
		t.Fatalf("ignored event: status %d", w.Code)
	}
}

func TestCommentWithoutIssueIsLookedUp(t *testing.T) {
	fake := newFakeJira(t)
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	post(a, reshape(t, "SYNTHESIZED-comment_deleted.json", func(m map[string]any) { delete(m, "issue") }))
	ins := rec.All()
	if len(ins) != 1 || ins[0].Envelope.Conversation.Ref != "acme.atlassian.net/OPS-42" || ins[0].Facts.Where != "OPS" {
		t.Fatalf("ingested %+v", ins)
	}
	if fake.callCount("GET issue") != 1 {
		t.Errorf("issue lookups: %d", fake.callCount("GET issue"))
	}
}

func TestMentionNamesAreCached(t *testing.T) {
	fake := newFakeJira(t)
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	body := readFixture(t, "SYNTHESIZED-comment_created.wiki.json")
	for range 3 {
		post(a, body)
	}
	if n := fake.callCount("GET user"); n != 1 {
		t.Errorf("%d user lookups for one mentioned user, want 1", n)
	}
	// An unknown account is looked up once too, and renders as its id.
	unknown := reshape(t, "SYNTHESIZED-comment_created.wiki.json", func(m map[string]any) {
		c := m["comment"].(map[string]any)
		c["id"], c["body"] = "10199", "ping [~accountid:70121:0000aaaa]"
	})
	post(a, unknown)
	post(a, unknown)
	if n := fake.callCount("GET user"); n != 2 {
		t.Errorf("%d user lookups, want 2", n)
	}
	if ins := rec.All(); ins[len(ins)-1].Envelope.Text != "ping @70121:0000aaaa" {
		t.Errorf("text = %q", ins[len(ins)-1].Envelope.Text)
	}
}

func TestSlowUserLookupIsBounded(t *testing.T) {
	fake := newFakeJira(t)
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	fake.usersBlock = block
	rec := newRecorder()
	// The lookup blocks until the test ends: only the lookup timeout lets
	// the webhook be answered.
	a := newTestAdapter(t, fake, rec, func(c *Config) { c.LookupTimeout = duration.Duration(50 * time.Millisecond) })
	a.idMu.Lock()
	a.id = identity{AccountID: botAccountID, DisplayName: "Switchboard"}
	a.idMu.Unlock()
	if w := post(a, readFixture(t, "SYNTHESIZED-comment_created.wiki.json")); w.Code != http.StatusNoContent {
		t.Fatalf("status %d", w.Code)
	}
	ins := rec.All()
	if len(ins) != 1 || !strings.Contains(ins[0].Envelope.Text, "@"+graceID) {
		t.Fatalf("ingested %+v, want the mention left as the account id", ins)
	}
	if n := fake.callCount("GET user"); n > 1 {
		t.Errorf("%d user lookups, want at most the one that timed out", n)
	}
}

// TestNULInTextIsStripped: a comment and an author name holding a NUL
// (which PostgreSQL refuses) are stored with the NUL removed.
func TestNULInTextIsStripped(t *testing.T) {
	fake := newFakeJira(t)
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	body := reshape(t, "SYNTHESIZED-comment_created.wiki.json", func(m map[string]any) {
		c := m["comment"].(map[string]any)
		c["body"] = "please\x00 look"
		c["author"].(map[string]any)["displayName"] = "Ada\x00 Lovelace"
	})
	if w := post(a, body); w.Code != http.StatusNoContent {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	ins := rec.All()
	if len(ins) != 1 {
		t.Fatalf("%d ingested, want 1", len(ins))
	}
	env := ins[0].Envelope
	if strings.ContainsRune(env.Text, 0) || !strings.Contains(env.Text, "please look") || env.Actor.Display != "Ada Lovelace" {
		t.Errorf("text %q, actor %q: want the NULs stripped", env.Text, env.Actor.Display)
	}
}
