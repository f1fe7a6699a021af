package jira

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/adapters"
)

// BenchmarkWebhookHandler measures the adapter's own cost per webhook
// (signature check, parsing, wiki rendering, refs), with names cached and
// an Ingress that stores nothing.
func BenchmarkWebhookHandler(b *testing.B) {
	fake := newFakeJira(b)
	a, err := New(&Config{BaseURL: fake.srv.URL, Email: testEmail, APIToken: testAPIToken, WebhookSecret: testSecret}, adapters.Deps{
		Ingress: adapters.IngressFunc(func(context.Context, adapters.Inbound) (adapters.Outcome, error) {
			return adapters.Outcome{SessionID: "s"}, nil
		}),
		Now: func() time.Time { return testNow }, HTTPClient: fake.srv.Client(), Registry: prometheus.NewRegistry(),
	})
	if err != nil {
		b.Fatal(err)
	}
	body := readFixture(b, "SYNTHESIZED-comment_created.wiki.json")
	h := a.Handler()
	serve := func() int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, signedRequest(body, testSecret))
		return w.Code
	}
	serve() // learn the identity and warm the caches
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if code := serve(); code != http.StatusNoContent {
			b.Fatalf("status %d", code)
		}
	}
}

// BenchmarkRenderComments measures converting a long Markdown reply to wiki
// markup comments.
func BenchmarkRenderComments(b *testing.B) {
	para := "Some **bold** text with `code`, a [link](https://x.io/a?b=1&c=2) and *emphasis*.\n- item one\n- item two\n\n"
	md := strings.Repeat(para, 400)
	b.SetBytes(int64(len(md)))
	for b.Loop() {
		if len(renderComments(md, DefaultMaxChars)) < 2 {
			b.Fatal("not split")
		}
	}
}

// BenchmarkToWiki measures converting about 1 MiB of ordinary Markdown
// (headings, emphasis, code, links, lists, a quote, a table, a code block)
// to wiki markup; ns/op over 1 MiB is the cost a byte.
func BenchmarkToWiki(b *testing.B) {
	reply := "## Findings\n\nThe **deploy** failed on `staging`: see [the log](https://ci.example.com/runs/9) and *the notes*.\n\n" +
		"- check the ~~old~~ config\n- rerun with `-v`\n  1. first\n  2. second\n\n> quoted from the ticket\n\n" +
		"| step | result |\n| --- | --- |\n| build | ok |\n\n```go\nfmt.Println(\"ok\")\n```\n\n"
	md := strings.Repeat(reply, (1<<20)/len(reply))
	b.SetBytes(int64(len(md)))
	for b.Loop() {
		toWiki(md)
	}
}
