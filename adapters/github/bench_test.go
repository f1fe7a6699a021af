package github

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
	"github.com/switchboardhq/switchboard/adapters/internal/catchup"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/router"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/sqlite"
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

// BenchmarkCatchUp1000 catches up 1,000 comments missed across 100
// conversations (issues acme/api#1…#100, ten comments each, the first a
// mention) against the fake GitHub: 20 listing pages of 50 (two
// listings), 100 issue fetches, the mapping, and a mark saved in SQLite
// per comment. "memory" hands the envelopes to an Ingress that stores
// nothing and keeps the marks in memory (the adapter's and the fake's own
// cost); "discard" keeps the marks in SQLite (a durable commit per
// comment); "router+sqlite" hands the envelopes to the router over that
// SQLite store, so every comment reaches its session. Each iteration starts
// from a fresh store.
func BenchmarkCatchUp1000(b *testing.B) {
	for _, name := range []string{"memory", "discard", "router+sqlite"} {
		b.Run(name, func(b *testing.B) {
			clock := newClock()
			fake := newFakeGitHub(b, clock)
			base := clock.Now()
			for n := 1; n <= 100; n++ {
				fake.setIssue("acme/api", n, fmt.Sprintf("issue %d", n))
			}
			for i := range 1000 {
				body := fmt.Sprintf("finding %d", i)
				if i < 100 {
					body = "@switchboard " + body
				}
				fake.addComment(fakeComment{Kind: "issue", Repo: "acme/api", Number: 1 + i%100, Body: body,
					Created: base.Add(time.Duration(i+1) * time.Second)})
			}
			clock.Advance(time.Hour)
			cfg, err := config.Parse([]byte(catchUpRoutes), func(string) (string, bool) { return "", false })
			if err != nil {
				b.Fatal(err)
			}
			var found, stored int
			for b.Loop() {
				b.StopTimer()
				st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "sb.db"), sqlite.Options{})
				if err != nil {
					b.Fatal(err)
				}
				var kv store.KV = st
				if name == "memory" {
					kv = &adaptertest.MemoryKV{}
				}
				var in adapters.Ingress = adapters.IngressFunc(func(context.Context, adapters.Inbound) (adapters.Outcome, error) {
					return adapters.Outcome{SessionID: "s"}, nil
				})
				if name == "router+sqlite" {
					rt, err := router.New(router.Options{Config: cfg, Store: st, Sinks: map[string]adapters.Sink{},
						Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
					if err != nil {
						b.Fatal(err)
					}
					in = rt
				}
				a, err := New(&Config{WebhookSecret: testSecret, Token: testToken, Login: testLogin, APIURL: fake.url()},
					adapters.Deps{Ingress: in, State: kv, Now: clock.Now, HTTPClient: fake.srv.Client(), Registry: prometheus.NewRegistry()})
				if err != nil {
					b.Fatal(err)
				}
				a.perPage = 50
				if err := catchup.New(kv, Name, clock.Now).Seen(context.Background(), "acme/api", base, ""); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				rep, err := a.CatchUp(context.Background(), adapters.CatchUpRequest{Window: 24 * time.Hour})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				found, stored = rep.Found, rep.New
				st.Close()
				b.StartTimer()
			}
			if found != 1000 || stored != 1000 {
				b.Fatalf("found %d, stored %d; want 1000 and 1000", found, stored)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/catch-up")
			b.ReportMetric(1000*float64(b.N)/b.Elapsed().Seconds(), "comments/s")
		})
	}
}
