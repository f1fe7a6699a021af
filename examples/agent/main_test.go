package main

import (
	"strings"
	"testing"
)

const one = `{"id":"client:1","source":"client","kind":"message",
  "actor":{"id":"client:ada","display":"Ada","type":"human"},
  "conversation":{"source":"client","ref":"t-1"},"text":"also check the CI config",
  "refs":{"pr":"42","repo":"acme/api"},"ts":"2026-06-18T12:00:00Z","raw":{"anything":[1,2]}}`

const two = `[{"id":"slack:1","source":"slack","kind":"message",
  "actor":{"id":"slack:U1","display":"Ada","type":"human"},
  "conversation":{"source":"slack","ref":"C1:1"},"text":"first","refs":{"pr":"1"},
  "ts":"2026-06-18T12:00:00Z","raw":null},
 {"id":"slack:2","source":"slack","kind":"edit",
  "actor":{"id":"slack:U2","type":"human"},
  "conversation":{"source":"slack","ref":"C1:1"},"text":"second one","refs":{"pr":"2","issue":"7"},
  "ts":"2026-06-18T12:00:01Z","raw":null}]`

func TestReplyOne(t *testing.T) {
	envs, err := parse([]byte("\n" + one + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := reply("ses_1", envs)
	want := "Hi Ada! You asked: \"also check the CI config\"\n" +
		"Context I saw: pr=42, repo=acme/api\n" +
		"Summary: 1 message, 5 words in session ses_1. I'm only an example agent, so that's all I do.\n"
	if got != want {
		t.Errorf("reply =\n%s\nwant\n%s", got, want)
	}
}

func TestReplyCollected(t *testing.T) {
	envs, err := parse([]byte(two))
	if err != nil {
		t.Fatal(err)
	}
	got := reply("", envs)
	for _, want := range []string{
		"Hi slack:U2! I got 2 messages together:\n",
		"  - Ada asked: \"first\"\n",
		"  - slack:U2 edited a message to: \"second one\"\n",
		"Context I saw: issue=7, pr=2\n",
		"Summary: 2 messages, 3 words.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("reply lacks %q:\n%s", want, got)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"", "  \n", "[]", "{", `{"refs": {"pr": [1]}}`, "[1,2]"} {
		if _, err := parse([]byte(in)); err == nil {
			t.Errorf("parse(%q) succeeded", in)
		}
	}
}
