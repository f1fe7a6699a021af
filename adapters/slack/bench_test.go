package slack

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

// BenchmarkEventsHandler measures the adapter's own cost per Events API
// request (signature check, parsing, rendering, refs), with names cached
// and an Ingress that stores nothing.
func BenchmarkEventsHandler(b *testing.B) {
	fake := newFakeSlack(b)
	fake.setUsers(map[string]string{"U222": "Linus", "U333": "Margaret"})
	a, err := New(&Config{BotToken: testBotToken, SigningSecret: testSecret, APIURL: fake.srv.URL + "/api/"}, adapters.Deps{
		Ingress: adapters.IngressFunc(func(context.Context, adapters.Inbound) (adapters.Outcome, error) {
			return adapters.Outcome{SessionID: "s"}, nil
		}),
		Now: func() time.Time { return testNow }, HTTPClient: fake.srv.Client(), Registry: prometheus.NewRegistry(),
	})
	if err != nil {
		b.Fatal(err)
	}
	body := callback("EvBENCH", `{"type":"message","user":"U222","text":"<@U0BOTUSER> ask <@U333> about <https://github.com/acme/api/pull/42|the PR> &amp; PROJ-7","ts":"1700000100.000200","thread_ts":"1700000000.000100","channel":"C123","channel_type":"channel"}`)
	h := a.Handler()
	h.ServeHTTP(httptest.NewRecorder(), signedRequest(body, testSecret, testNow)) // warm the caches
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, signedRequest(body, testSecret, testNow))
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}

// BenchmarkToMrkdwnAndSplit measures converting and splitting a long reply.
func BenchmarkToMrkdwnAndSplit(b *testing.B) {
	para := "Some **bold** text with `code`, a [link](https://x.io/a?b=1&c=2) and *emphasis*.\n- item one\n- item two\n\n"
	md := strings.Repeat(para, 200)
	b.SetBytes(int64(len(md)))
	for b.Loop() {
		if len(split(toMrkdwn(md), DefaultMaxChars)) < 2 {
			b.Fatal("not split")
		}
	}
}
