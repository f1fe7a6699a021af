package jira

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
	"github.com/switchboardhq/switchboard/envelope"
)

func delivery(id, ref, text string, attempt int) adapters.Delivery {
	return adaptertest.Delivery(id, envelope.Conversation{Source: Name, Ref: ref}, text, testNow, attempt)
}

func TestDeliverRateLimitedOnceThenPostsExactlyOnce(t *testing.T) {
	for _, mode := range []string{"cloud", "data center"} {
		t.Run(mode, func(t *testing.T) {
			fake := newFakeJira(t)
			var mutate func(*Config)
			if mode == "data center" {
				fake.auth = "Bearer " + testPAT
				mutate = func(c *Config) { c.Email, c.APIToken, c.PersonalAccessToken = "", "", testPAT }
			}
			fake.failPosts(failWith(http.StatusTooManyRequests, map[string]string{"Retry-After": "7"}))
			a := newTestAdapter(t, fake, newRecorder(), mutate)
			md := "Done: **all tests pass**, see [the run](https://ci.example.com/runs/9).\n\n```go\nfmt.Println(\"ok\")\n```"
			d := delivery("d1", "acme.atlassian.net/OPS-42", md, 1)

			_, err := a.Deliver(t.Context(), d)
			var bo *adapters.BackOff
			if !errors.As(err, &bo) || bo.Wait != 7*time.Second {
				t.Fatalf("first attempt: err = %v, want a BackOff of 7s", err)
			}
			if errors.Is(err, adapters.ErrPermanent) {
				t.Fatal("a rate limit is not permanent")
			}
			if n := len(fake.posted()); n != 0 {
				t.Fatalf("%d comments after a 429", n)
			}

			d.Attempt = 2
			rc, err := a.Deliver(t.Context(), d)
			if err != nil {
				t.Fatalf("second attempt: %v", err)
			}
			posted := fake.posted()
			if len(posted) != 1 {
				t.Fatalf("%d comments, want exactly 1", len(posted))
			}
			want := "Done: *all tests pass*, see [the run|https://ci.example.com/runs/9].\n\n{code:go}\nfmt.Println(\"ok\")\n{code}" + marker("d1", 1)
			if c := posted[0]; c.Issue != "OPS-42" || c.Body != want {
				t.Errorf("posted %+v\nwant body %q", c, want)
			}
			if rc.ChannelID != posted[0].ID {
				t.Errorf("receipt = %+v, want comment %s", rc, posted[0].ID)
			}
			if p := fake.problemsSeen(); len(p) > 0 {
				t.Fatalf("malformed requests: %v", p)
			}
			// A third call for the same delivery (the outbox failed to
			// record the receipt) posts nothing and returns the receipt.
			d.Attempt = 3
			rc2, err := a.Deliver(t.Context(), d)
			if err != nil || rc2 != rc || len(fake.posted()) != 1 {
				t.Fatalf("redelivery: %+v %v, %d comments", rc2, err, len(fake.posted()))
			}
			if n := fake.callCount("GET comment"); n != 0 {
				t.Errorf("a retry in the same process listed comments %d times", n)
			}
			if got := adaptertest.CounterValue(a.metrics.posts.WithLabelValues("rate_limited")); got != 1 {
				t.Errorf("rate_limited posts = %v", got)
			}
		})
	}
}

func TestDeliverSplitsLongTextInOrder(t *testing.T) {
	fake := newFakeJira(t)
	a := newTestAdapter(t, fake, newRecorder(), func(c *Config) { c.MaxChars = 1000 })
	var paras []string
	for i := range 8 {
		paras = append(paras, "Paragraph "+string(rune('A'+i))+": "+strings.TrimSpace(strings.Repeat("lorem ipsum dolor ", 12)))
	}
	paras = append(paras, "```\n"+strings.Repeat("x := 1\n", 200)+"```")
	rc, err := a.Deliver(t.Context(), delivery("d2", "acme.atlassian.net/OPS-42", strings.Join(paras, "\n\n"), 1))
	if err != nil {
		t.Fatal(err)
	}
	posted := fake.posted()
	if len(posted) < 3 {
		t.Fatalf("%d comments, want the reply split", len(posted))
	}
	var bodies []string
	for i, c := range posted {
		if n := chars(c.Body); n > 1000 {
			t.Errorf("comment %d has %d characters", i, n)
		}
		m := marker("d2", i+1)
		if !strings.HasSuffix(c.Body, m) {
			t.Errorf("comment %d lacks its marker", i)
		}
		body := strings.TrimSuffix(strings.TrimSuffix(c.Body, m), "\n")
		if strings.Count(body, "{noformat}")%2 != 0 {
			t.Errorf("comment %d leaves a block open:\n%s", i, body)
		}
		bodies = append(bodies, body)
	}
	all := strings.Join(bodies, "\n\n")
	for _, p := range paras[:8] {
		if !strings.Contains(all, p) {
			t.Errorf("paragraph %q missing", p[:12])
		}
	}
	if strings.Index(all, "Paragraph A") > strings.Index(all, "Paragraph H") || strings.Count(all, "x := 1") != 200 {
		t.Errorf("the parts do not rebuild the reply in order")
	}
	if rc.ChannelID != posted[0].ID {
		t.Errorf("receipt = %q, want the first comment", rc.ChannelID)
	}
}

func TestDeliverResumesAfterARestart(t *testing.T) {
	fake := newFakeJira(t)
	text := strings.Repeat("a", 900) + "\n\n" + strings.Repeat("b", 900)
	d := delivery("d3", "acme.atlassian.net/OPS-42", text, 1)
	// Part 1 posts, part 2 hits a 500, then the process dies.
	fake.failPosts(nil, failWith(http.StatusInternalServerError, nil))
	first := newTestAdapter(t, fake, newRecorder(), func(c *Config) { c.MaxChars = 1000 })
	_, err := first.Deliver(t.Context(), d)
	var bo *adapters.BackOff
	if err == nil || errors.Is(err, adapters.ErrPermanent) || errors.As(err, &bo) {
		t.Fatalf("err = %v, want a plain retryable error", err)
	}
	// Another process retries: it finds part 1 by its marker.
	second := newTestAdapter(t, fake, newRecorder(), func(c *Config) { c.MaxChars = 1000 })
	d.Attempt = 2
	rc, err := second.Deliver(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	posted := fake.posted()
	if len(posted) != 2 || posted[0].Body[0] != 'a' || posted[1].Body[0] != 'b' {
		t.Fatalf("comments = %d, want a then b once each", len(posted))
	}
	if rc.ChannelID != posted[0].ID || fake.callCount("GET comment") != 1 {
		t.Errorf("receipt %q (want %q), %d listings", rc.ChannelID, posted[0].ID, fake.callCount("GET comment"))
	}
}

func TestDeliverErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fail      func(http.ResponseWriter)
		permanent bool
		unhealthy bool
		backoff   time.Duration
	}{
		{"404 deleted or hidden issue", failWith(404, nil), true, false, 0},
		{"403 no permission", failWith(403, nil), true, false, 0},
		{"400 bad request", failWith(400, nil), true, false, 0},
		{"401 bad credentials", failWith(401, nil), true, true, 0},
		{"403 login denied", failWith(403, map[string]string{"X-Seraph-LoginReason": "AUTHENTICATION_DENIED"}), true, true, 0},
		{"500", failWith(500, nil), false, false, 0},
		{"502", failWith(502, nil), false, false, 0},
		{"503 with Retry-After", failWith(503, map[string]string{"Retry-After": "30"}), false, false, 30 * time.Second},
		{"429 without Retry-After", failWith(429, nil), false, false, DefaultRetryAfter},
		{"429 with X-RateLimit-Reset", failWith(429, map[string]string{"X-RateLimit-Reset": "2026-06-18T12:05Z"}), false, false, 5 * time.Minute},
		{"429 with an HTTP date", failWith(429, map[string]string{"Retry-After": "Thu, 18 Jun 2026 12:00:42 GMT"}), false, false, 42 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeJira(t)
			fake.failPosts(tc.fail)
			a := newTestAdapter(t, fake, newRecorder(), nil)
			_, err := a.Deliver(t.Context(), delivery("d5", "acme.atlassian.net/OPS-42", "hi", 1))
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, adapters.ErrPermanent) != tc.permanent {
				t.Errorf("err = %v, want permanent %v", err, tc.permanent)
			}
			var bo *adapters.BackOff
			if got := errors.As(err, &bo); got != (tc.backoff > 0) || got && bo.Wait != tc.backoff {
				t.Errorf("err = %v, want a BackOff of %v", err, tc.backoff)
			}
			if herr := a.Check(t.Context()); (herr != nil) != tc.unhealthy {
				t.Errorf("Check = %v, want unhealthy %v", herr, tc.unhealthy)
			}
			if tc.unhealthy {
				// The next successful call clears it.
				if _, err := a.Deliver(t.Context(), delivery("d6", "acme.atlassian.net/OPS-42", "hi", 1)); err != nil {
					t.Fatal(err)
				}
				if herr := a.Check(t.Context()); herr != nil {
					t.Errorf("still unhealthy after a success: %v", herr)
				}
			}
		})
	}
}

func TestDeliverWithRejectedCredentials(t *testing.T) {
	fake := newFakeJira(t)
	a := newTestAdapter(t, fake, newRecorder(), func(c *Config) { c.APIToken = "revoked" })
	_, err := a.Deliver(t.Context(), delivery("d7", "acme.atlassian.net/OPS-42", "hi", 1))
	if !errors.Is(err, adapters.ErrPermanent) {
		t.Fatalf("err = %v, want permanent", err)
	}
	if herr := a.Check(t.Context()); herr == nil || !strings.Contains(herr.Error(), "401") {
		t.Fatalf("Check = %v", herr)
	}
	if got := testutilGauge(a); got != 0 {
		t.Errorf("switchboard_jira_healthy = %v", got)
	}
}

func TestDeliverRefusesWhatItCannotPost(t *testing.T) {
	fake := newFakeJira(t)
	a := newTestAdapter(t, fake, newRecorder(), func(c *Config) { c.Site = "acme.atlassian.net" })
	for name, d := range map[string]adapters.Delivery{
		"other source": func() adapters.Delivery {
			d := delivery("x", "acme.atlassian.net/OPS-42", "hi", 1)
			d.To.Source = "github"
			return d
		}(),
		"no site":    delivery("x", "OPS-42", "hi", 1),
		"not a key":  delivery("x", "acme.atlassian.net/OPS", "hi", 1),
		"other site": delivery("x", "evil.atlassian.net/OPS-42", "hi", 1),
		"empty text": delivery("x", "acme.atlassian.net/OPS-42", " \n ", 1),
		"edit": func() adapters.Delivery {
			d := delivery("x", "acme.atlassian.net/OPS-42", "hi", 1)
			d.Envelope.Kind = envelope.KindEdit
			return d
		}(),
	} {
		if _, err := a.Deliver(t.Context(), d); !errors.Is(err, adapters.ErrPermanent) {
			t.Errorf("%s: err = %v, want permanent", name, err)
		}
	}
	if n := len(fake.posted()); n != 0 {
		t.Fatalf("%d comments", n)
	}
	// A system envelope is posted like a message.
	d := delivery("y", "ACME.atlassian.net/OPS-42", "Session paused by the loop breaker.", 1)
	d.Envelope.Kind = envelope.KindSystem
	if _, err := a.Deliver(t.Context(), d); err != nil || len(fake.posted()) != 1 {
		t.Fatalf("system envelope: %v", err)
	}
}

func TestRetryAfter(t *testing.T) {
	h := http.Header{}
	if got := retryAfter(h, testNow, time.Minute); got != time.Minute {
		t.Errorf("no header: %v", got)
	}
	h.Set("Retry-After", "-3")
	if got := retryAfter(h, testNow, time.Minute); got != time.Minute {
		t.Errorf("negative: %v", got)
	}
	h.Set("Retry-After", "Thu, 18 Jun 2026 11:00:00 GMT") // in the past
	if got := retryAfter(h, testNow, time.Minute); got != 0 {
		t.Errorf("past date: %v", got)
	}
}

// testutilGauge reads switchboard_jira_healthy.
func testutilGauge(a *Adapter) float64 {
	var m dto.Metric
	if err := a.metrics.healthy.Write(&m); err != nil {
		return -1
	}
	return m.GetGauge().GetValue()
}
