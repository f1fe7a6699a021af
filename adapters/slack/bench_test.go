package slack

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/internal/testclock"
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

// BenchmarkCatchUp1000 measures a catch-up of 1,000 missed messages, ten
// replies in each of 100 bound threads over ten channels, against the fake
// Web API, into the real router and SQLite store (the round-trip harness):
// 110 listing calls (each thread, each channel), 1,000 envelopes stored,
// 90 thread roots seen live found again, and 1,000 marks moved. It reports the time per catch-up and messages per
// second.
func BenchmarkCatchUp1000(b *testing.B) {
	const threads, replies, channels = 100, 10, 10
	var caught time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		fake := newFakeSlack(b)
		fake.setUsers(map[string]string{"U0ADA": "Ada"})
		clk := testclock.New(t0)
		gw, _ := catchUpGateway(b, fake, clk)
		for n := range threads {
			channel := fmt.Sprintf("C0BENCH%d", n%channels)
			root := fakeMsg{User: "U0ADA", Text: "<@U0BOTUSER> thread " + fmt.Sprint(n), TS: at(time.Duration(n) * time.Second)}
			writeLive(b, fake, gw.a, channel, root)
			for r := range replies {
				fake.write(channel, fakeMsg{User: "U0ADA", Text: fmt.Sprintf("reply %d", r), ThreadTS: root.TS,
					TS: at(time.Hour + time.Duration(n*replies+r)*time.Millisecond)})
			}
		}
		clk.Set(t0.Add(2 * time.Hour))
		b.StartTimer()
		began := time.Now()
		rep, err := gw.a.CatchUp(context.Background(), adapters.CatchUpRequest{Window: 24 * time.Hour})
		caught += time.Since(began)
		b.StopTimer()
		// Live messages do not move marks: each channel's catch-up starts
		// at the first root seen there and finds the later roots again
		// (found, not new).
		if found := threads*replies + threads - channels; err != nil || rep.Found != found || rep.New != threads*replies {
			b.Fatalf("catch-up = %+v, %v; want %d found and %d new", rep, err, found, threads*replies)
		}
	}
	b.ReportMetric(float64(caught.Milliseconds())/float64(b.N), "ms/catch-up")
	b.ReportMetric(float64(threads*replies*b.N)/caught.Seconds(), "msgs/s")
}
