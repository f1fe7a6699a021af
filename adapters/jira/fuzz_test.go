package jira

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/internal/fuzzkit"
	"github.com/switchboardhq/switchboard/adapters/internal/hook"
	"github.com/switchboardhq/switchboard/config/duration"
)

// fuzzPayloads returns the webhook fixtures of testdata/jira.
func fuzzPayloads(f *testing.F) [][]byte {
	return fuzzkit.Fixtures(f, filepath.Join(testdata, "*.json"))
}

// fuzzBodies returns the comment bodies and issue descriptions of the
// fixtures, as JSON: ADF documents (objects) and wiki markup (strings).
func fuzzBodies(f *testing.F) (adf [][]byte, wiki []string) {
	for _, p := range fuzzPayloads(f) {
		var ev struct {
			Comment *struct {
				Body json.RawMessage `json:"body"`
			} `json:"comment"`
			Issue *struct {
				Fields struct {
					Description json.RawMessage `json:"description"`
				} `json:"fields"`
			} `json:"issue"`
		}
		if err := json.Unmarshal(p, &ev); err != nil {
			f.Fatal(err)
		}
		var raws []json.RawMessage
		if ev.Comment != nil {
			raws = append(raws, ev.Comment.Body)
		}
		if ev.Issue != nil {
			raws = append(raws, ev.Issue.Fields.Description)
		}
		for _, r := range raws {
			var s string
			switch {
			case len(r) > 0 && r[0] == '{':
				adf = append(adf, r)
			case json.Unmarshal(r, &s) == nil && s != "":
				wiki = append(wiki, s)
			}
		}
	}
	return adf, wiki
}

// FuzzProcess sends arbitrary authentic payloads, seeded with the
// fixtures, through process: it never panics; a payload it refuses is
// refused with 400 (never a 5xx, which would make Jira redeliver it); and
// what it ingests is one envelope that validates, with the payload as its
// raw and valid UTF-8 text of bounded size.
func FuzzProcess(f *testing.F) {
	for _, b := range fuzzPayloads(f) {
		f.Add("hook-1", b)
	}
	for _, s := range []string{
		`{"webhookEvent":"comment_created","comment":{"id":"1","body":{"type":"doc","content":[{"type":"mention","attrs":{"id":7}}]},"author":{"accountId":"a"}},"issue":{"key":"-","fields":null}}`,
		`{"webhookEvent":"jira:issue_updated","issue_event_type_name":"issue_assigned","issue":{"key":"A-1","fields":{"assignee":{}}},"changelog":{"items":[null]}}`,
		`{"webhookEvent":"comment_updated","comment":{"id":"","body":"{code}x","author":null},"issue":{"key":"A-1"}}`,
		`{"webhookEvent":7}`, `[]`, `null`,
	} {
		f.Add("", []byte(s))
	}
	fake := newFakeJira(f)
	var got []adapters.Inbound
	a := newTestAdapter(f, fake, adapters.IngressFunc(func(_ context.Context, in adapters.Inbound) (adapters.Outcome, error) {
		got = append(got, in)
		return adapters.Outcome{SessionID: "s1", Seq: int64(len(got))}, nil
	}), func(c *Config) {
		// A failure guard, not a timing: a loaded machine must not make a
		// lookup of the fake time out and the payload look refused.
		c.LookupTimeout = duration.Duration(time.Minute)
	})
	f.Fuzz(func(t *testing.T, hookID string, body []byte) {
		if len(body) > fuzzkit.MaxInput {
			t.Skip("input over 64 KiB")
		}
		got = got[:0]
		if err := a.process(context.Background(), hookID, body); err != nil {
			var se *hook.StatusError
			if !errors.As(err, &se) || se.Code != http.StatusBadRequest {
				t.Fatalf("process refused a payload with %v (status %d), want 400", err, hook.Code(err))
			}
		}
		fuzzkit.CheckInbound(t, got, body)
	})
}

// FuzzADF renders arbitrary ADF documents, seeded with the fixtures' ADF
// bodies: it never panics, and the Markdown and the plain text are valid
// UTF-8 (JSON decoding makes every string so) and of bounded size.
func FuzzADF(f *testing.F) {
	adf, _ := fuzzBodies(f)
	for _, b := range adf {
		f.Add(b)
	}
	for _, s := range []string{
		`{"type":"doc","content":[{"type":"bulletList","content":[{"type":"listItem","content":[{"type":"orderedList","attrs":{"order":-3},"content":[{"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"deep"}]}]}]}]}]}]}`,
		`{"type":"doc","content":[{"type":"table","content":[{"type":"tableRow","content":[{"type":"tableHeader","content":[{"type":"text","text":"a|b\n"}]}]},{"type":"tableRow"}]}]}`,
		`{"type":"doc","content":[{"type":"codeBlock","attrs":{"language":"go"},"content":[{"type":"text","text":"` + "```" + `\nx"}]},{"type":"text","text":"*not bold*","marks":[{"type":"strong"},{"type":"link","attrs":{"href":"javascript:1"}},{"type":"code"}]}]}`,
		`{"type":"paragraph","content":[{"type":"mention","attrs":{"id":"X9"}},{"type":"emoji","attrs":{"shortName":":x:"}},{"type":"hardBreak"},{"type":"inlineCard","attrs":{"url":"u"}},{"type":"date","attrs":{"timestamp":"1e30"}},{"type":"status","attrs":{"text":"DONE"}}]}`,
		`{"type":"doc","content":[{"type":"blockquote","content":[{"type":"panel","content":[{"type":"rule"},{"type":"mediaSingle","content":[{"type":"media","attrs":{"alt":"x"}}]}]}]}]}`,
		`{}`, `{"type":"doc","content":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzkit.MaxInput {
			t.Skip("input over 64 KiB")
		}
		var doc adfNode
		if json.Unmarshal(data, &doc) != nil {
			return
		}
		_ = adfMentions(&doc)
		for name, out := range map[string]string{
			"adfToMarkdown": adfToMarkdown(&doc, testMention),
			"adfPlainText":  adfPlainText(&doc),
		} {
			if !utf8.ValidString(out) {
				t.Fatalf("%s gave invalid UTF-8: %q", name, out)
			}
			if len(out) > 8*len(data)+1024 {
				t.Fatalf("%s gave %d bytes from a %d-byte document", name, len(out), len(data))
			}
		}
	})
}

// fuzzMarkup are hostile wiki and Markdown texts.
var fuzzMarkup = []string{
	"",
	"h1. *bold* _it_ -strike- +under+ ^sup^ ~sub~ ??cite?? {{mono}} [~accountid:A1] [label|https://x] [^attachment.png]",
	"{code:language=go|title=x}\nfunc(){}\n{code}\n{noformat}\nraw{noformat}{code}unclosed",
	"||h1||h2||\n|a|b|\n|[x|y]|{{c|d}}|\n* a\n** b\n*# c\n# d\nbq. quote\n{quote}q{quote}\n----",
	"\\{code} \\* {{code}} {color:red}red{color} !image.png|thumbnail! \\\\",
	"# h\n- a\n  - b\n1. c\n> q\n> > qq\n```go\nx\n```\n| a | b |\n|---|---|\n| c | d |\n**b** _i_ ~~s~~ `c` [l](https://e.com)",
	"> quote\n> > nested\n>> again",
	strings.Repeat("  ", 100) + "- deep item",
	"\xff\xfe\xc3 invalid \x00 \r\n",
	strings.Repeat("*_-+^~?{[|]}", 40),
}

// FuzzWikiToMarkdown converts arbitrary wiki markup, seeded with the
// fixtures' wiki bodies: it never panics, and gives valid UTF-8 (where the
// markup was) of bounded size.
func FuzzWikiToMarkdown(f *testing.F) {
	_, wiki := fuzzBodies(f)
	for _, s := range append(wiki, fuzzMarkup...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > fuzzkit.MaxInput {
			t.Skip("input over 64 KiB")
		}
		_ = wikiMentions(s)
		out := wikiToMarkdown(s, testMention)
		if utf8.ValidString(s) && !utf8.ValidString(out) {
			t.Fatalf("wikiToMarkdown(%q) = %q, not valid UTF-8", s, out)
		}
		if len(out) > 8*len(s)+1024 {
			t.Fatalf("%d bytes of Markdown from %d of wiki markup", len(out), len(s))
		}
	})
}

// FuzzToWiki converts arbitrary Markdown to wiki markup and to comments as
// delivery does: it never panics; the markup is valid UTF-8 (where the
// Markdown was) of bounded size and holds every letter and digit of the
// Markdown's text (mdContent); and every comment fits the room left for
// the marker and is not blank.
func FuzzToWiki(f *testing.F) {
	_, wiki := fuzzBodies(f)
	for _, s := range append(wiki, fuzzMarkup...) {
		f.Add(s, uint16(32767))
		f.Add(s, uint16(200))
	}
	f.Fuzz(func(t *testing.T, md string, max uint16) {
		if len(md) > fuzzkit.MaxInput {
			t.Skip("input over 64 KiB")
		}
		out := toWiki(md)
		if utf8.ValidString(md) && !utf8.ValidString(out) {
			t.Fatalf("toWiki(%q) = %q, not valid UTF-8", md, out)
		}
		if len(out) > 8*len(md)+1024 {
			t.Fatalf("%d bytes of wiki markup from %d of Markdown", len(out), len(md))
		}
		// (toWiki drops NUL and the sentinels before parsing, which may
		// change what the rest is: "0)\x00" is a paragraph, "0)" a list.)
		if text := strings.Join(mdContent(mdCleaner.Replace(md))["text"], ""); utf8.ValidString(md) && alnums(out) < alnums(text) {
			t.Fatalf("toWiki(%q) = %q holds %d letters and digits, the text %q %d", md, out, alnums(out), text, alnums(text))
		}
		limit := markerChars + 64 + int(max)
		room := limit - markerChars - 1
		for i, c := range renderComments(md, limit) {
			if n := chars(c); n > room {
				t.Fatalf("comment %d has %d characters, over %d", i, n, room)
			}
			if strings.TrimSpace(c) == "" {
				t.Fatalf("comment %d is blank", i)
			}
		}
	})
}

// alnums counts the letters and digits of s.
func alnums(s string) int {
	n := 0
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			n++
		}
	}
	return n
}
