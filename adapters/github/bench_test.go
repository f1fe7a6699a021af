package github

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/adapters"
)

// BenchmarkWebhook measures the adapter's own cost per webhook (signature
// check, parsing a 15 KB payload, triggers, refs) with an Ingress that
// stores nothing.
func BenchmarkWebhook(b *testing.B) {
	fake := newFakeGitHub(b, newClock())
	a, err := New(&Config{WebhookSecret: testSecret, Token: testToken, Login: testLogin, APIURL: fake.url(),
		Triggers: Triggers{Command: "/agent"}}, adapters.Deps{
		Ingress: adapters.IngressFunc(func(context.Context, adapters.Inbound) (adapters.Outcome, error) {
			return adapters.Outcome{SessionID: "s"}, nil
		}),
		Now: fake.clock.Now, HTTPClient: fake.srv.Client(), Registry: prometheus.NewRegistry(),
	})
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(strings.Replace(string(readTestdata(b, "octokit-issue_comment.created.json")),
		"You are totally right!", "@switchboard You are totally right! See https://github.com/Codertocat/Hello-World/pull/2", 1))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		w := serve(a, webhook("issue_comment", "72d3162e-cc78-11e3-81ab-4c9367dc0958", body))
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

// BenchmarkSplit measures splitting a reply of GitHub's maximum size.
func BenchmarkSplit(b *testing.B) {
	para := "Some **bold** text with `code` and a [link](https://x.io/a?b=1&c=2).\n- item one\n- item two\n\n"
	md := strings.Repeat(para, 1500) // ~135 KB: three comments
	b.SetBytes(int64(len(md)))
	for b.Loop() {
		if len(split(md, DefaultMaxChars-markerRoom)) < 2 {
			b.Fatal("not split")
		}
	}
}
