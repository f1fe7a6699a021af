package slack

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/internal/fuzzkit"
	"github.com/switchboardhq/switchboard/adapters/internal/hook"
	"github.com/switchboardhq/switchboard/config/duration"
)

// fuzzHostile are texts every text target is seeded with.
var fuzzHostile = []string{
	"",
	"\x00\x00<@U1>\x00",
	"<<<>>>&amp;&lt;&gt;&",
	"<@U0BOTUSER> hi <#C1|general> <!here> <!subteam^S1|@eng> <https://x.y/z|label> <mailto:a@b.c>",
	"**bold** __b__ *i* _i_ ~~s~~ `code` [l](https://e.com \"t\") ![img](x) <https://auto.link>",
	"```go\nfenced <&>\n```\n~~~\nunclosed",
	"# h\n## **h2**\n- a\n  * b\n+ [x] done\n1) one\n> > quote\n---\n",
	"\xff\xfe\xc3 invalid",
	strings.Repeat("*_~`[](<>)", 50),
	strings.Repeat("日本語🎉 ", 100),
}

// fuzzFixtures returns the Slack fixtures as payloads: each file, each
// synthesized variant wrapped in an event_callback, and each signing
// vector's body.
func fuzzFixtures(f *testing.F) [][]byte {
	files, err := filepath.Glob(filepath.Join(testdata, "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures in %s: %v", testdata, err)
	}
	var out [][]byte
	for _, name := range files {
		if strings.HasSuffix(name, ".golden.json") {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		switch filepath.Base(name) {
		case "SYNTHESIZED-message-variants.json":
			var variants map[string]json.RawMessage
			if err := json.Unmarshal(b, &variants); err != nil {
				f.Fatal(err)
			}
			for _, k := range slices.Sorted(maps.Keys(variants)) {
				out = append(out, callback("EvFUZZ", string(variants[k])))
			}
		case "signing-vectors.json":
			var vectors map[string]signingVector
			if err := json.Unmarshal(b, &vectors); err != nil {
				f.Fatal(err)
			}
			for _, k := range slices.Sorted(maps.Keys(vectors)) {
				out = append(out, []byte(vectors[k].Body))
			}
		default:
			out = append(out, b)
		}
	}
	return out
}

// FuzzProcess sends arbitrary authentic payloads, seeded with the fixtures,
// through process: it never panics; a payload it refuses is refused with
// 400 (never a 5xx, which would make Slack redeliver it forever); and what
// it ingests is one envelope that validates, with the payload as its raw,
// valid UTF-8 text of bounded size.
func FuzzProcess(f *testing.F) {
	for _, b := range fuzzFixtures(f) {
		f.Add(b)
	}
	for _, s := range []string{
		`{"type":"event_callback","event":null}`,
		`{"type":"event_callback","event_id":"Ev1","event":{"type":"message","channel":"C1","user":"U1","text":"<@U0BOTUSER>","ts":"1.2","message":{"ts":""}}}`,
		`{"type":"event_callback","event_id":"Ev2","event":{"type":"message","subtype":"message_changed","channel":"D1","channel_type":"im","message":{"user":"U1","text":"x","ts":"x.y"},"previous_message":{"text":"y"}}}`,
		`{"type":"event_callback","event_id":"Ev3","event":{"type":"message","subtype":"message_deleted","channel":"C1","deleted_ts":"99999999999999999999.1"}}`,
		`{"type":"event_callback","event_id":"Ev4","event":{"type":"app_mention","channel":"C1","user":"U1","text":"` + strings.Repeat("<@U1>", 200) + `","ts":"-1.5","thread_ts":"1e9"}}`,
		`{"type":"url_verification","challenge":""}`,
		`[]`, `null`, `{"type":7}`,
	} {
		f.Add([]byte(s))
	}
	fake := newFakeSlack(f)
	fake.setUsers(map[string]string{"U1": "Ada", "U0BOTUSER": "switchboard"})
	var got []adapters.Inbound
	// The long lookup timeout is a failure guard, not a timing: a loaded
	// machine must not make a lookup of the fake time out and the payload
	// look refused.
	cfg := &Config{BotToken: testBotToken, SigningSecret: testSecret, APIURL: fake.srv.URL + "/api/", LookupTimeout: duration.Duration(time.Minute)}
	a, err := New(cfg, adapters.Deps{
		Ingress: adapters.IngressFunc(func(_ context.Context, in adapters.Inbound) (adapters.Outcome, error) {
			got = append(got, in)
			return adapters.Outcome{SessionID: "s1", Seq: int64(len(got))}, nil
		}),
		Now:        func() time.Time { return testNow },
		HTTPClient: fake.srv.Client(),
		Registry:   prometheus.NewRegistry(),
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > fuzzkit.MaxInput {
			t.Skip("input over 64 KiB")
		}
		got = got[:0]
		_, err := a.process(context.Background(), body, "http")
		if err != nil {
			var se *hook.StatusError
			if !errors.As(err, &se) || se.Code != http.StatusBadRequest {
				t.Fatalf("process refused a payload with %v (status %d), want 400", err, hook.Code(err))
			}
		}
		fuzzkit.CheckInbound(t, got, body)
	})
}

// FuzzRender renders arbitrary Slack markup: it never panics, and gives
// valid UTF-8 (where the markup was) of bounded size.
func FuzzRender(f *testing.F) {
	for _, s := range fuzzHostile {
		f.Add(s)
	}
	for _, b := range fuzzFixtures(f) {
		f.Add(string(b))
	}
	users := func(id string) string {
		if strings.HasPrefix(id, "U") {
			return "Ada"
		}
		return ""
	}
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > fuzzkit.MaxInput {
			t.Skip("input over 64 KiB")
		}
		out := render(text, users)
		if utf8.ValidString(text) && !utf8.ValidString(out) {
			t.Fatalf("render(%q) = %q, not valid UTF-8", text, out)
		}
		if len(out) > 8*len(text)+1024 {
			t.Fatalf("%d bytes rendered from %d", len(out), len(text))
		}
	})
}

// FuzzMrkdwn converts arbitrary Markdown to mrkdwn and splits it as
// delivery does: it never panics; the mrkdwn holds no NUL (the converter's
// placeholders all restored), is valid UTF-8 where the Markdown was and of
// bounded size; and every chunk fits max characters, is not blank and is
// valid UTF-8 where the mrkdwn was.
func FuzzMrkdwn(f *testing.F) {
	for _, s := range fuzzHostile {
		f.Add(s, uint16(100))
	}
	for _, b := range fuzzFixtures(f) {
		f.Add(string(b), uint16(4000))
	}
	f.Fuzz(func(t *testing.T, md string, max uint16) {
		if len(md) > fuzzkit.MaxInput {
			t.Skip("input over 64 KiB")
		}
		out := toMrkdwn(md)
		if strings.Contains(out, "\x00") {
			t.Fatalf("toMrkdwn(%q) = %q holds a NUL", md, out)
		}
		if utf8.ValidString(md) && !utf8.ValidString(out) {
			t.Fatalf("toMrkdwn(%q) = %q, not valid UTF-8", md, out)
		}
		if len(out) > 8*len(md)+1024 {
			t.Fatalf("%d bytes of mrkdwn from %d of Markdown", len(out), len(md))
		}
		limit := 20 + int(max)%4000
		for i, c := range split(out, limit) {
			if n := utf8.RuneCountInString(c); n > limit {
				t.Fatalf("chunk %d has %d characters, over %d", i, n, limit)
			}
			if strings.TrimSpace(c) == "" {
				t.Fatalf("chunk %d of %q is blank", i, out)
			}
			if utf8.ValidString(out) && !utf8.ValidString(c) {
				t.Fatalf("chunk %d is not valid UTF-8: %q", i, c)
			}
		}
	})
}
