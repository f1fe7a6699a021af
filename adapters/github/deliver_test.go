package github

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
	"github.com/switchboardhq/switchboard/envelope"
)

func delivery(id, ref, text string, attempt int) adapters.Delivery {
	return adaptertest.Delivery(id, envelope.Conversation{Source: Name, Ref: ref}, text, time.Date(2026, 6, 18, 11, 59, 0, 0, time.UTC), attempt)
}

const secondaryMsg = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."

func TestDeliverSecondaryRateLimitOnceThenPostsExactlyOnce(t *testing.T) {
	for _, auth := range []string{"token", "app"} {
		t.Run(auth, func(t *testing.T) {
			fake := newFakeGitHub(t, newClock())
			fake.setInstallation("acme/api", 4711)
			var mutate func(*Config)
			if auth == "app" {
				mutate = asApp(t, nil)
			}
			a := newTestAdapter(t, fake, newRecorder(), mutate)
			if auth == "app" {
				// The installation is learned from a webhook, as in production.
				if w := serve(a, webhook("issue_comment", "d-0", variant(t, "comment_command"))); w.Code != http.StatusOK {
					t.Fatalf("webhook: %d %s", w.Code, w.Body)
				}
			}
			fake.failPosts(failWith(http.StatusForbidden, map[string]string{"Retry-After": "30"}, secondaryMsg))
			text := "Done: **all 214 tests pass**.\n\n```go\nfunc TestMigrate(t *testing.T) {}\n```"
			d := delivery("dlv_01", "acme/api#12", text, 1)

			_, err := a.Deliver(t.Context(), d)
			var bo *adapters.BackOff
			if !errors.As(err, &bo) || bo.Wait != 30*time.Second {
				t.Fatalf("first attempt: err = %v, want a BackOff of 30s", err)
			}
			if errors.Is(err, adapters.ErrPermanent) {
				t.Fatal("a rate limit is not permanent")
			}
			if n := len(fake.commentsCopy()); n != 0 {
				t.Fatalf("%d comments after a rate limit", n)
			}
			posts := fake.callCount("POST /repos/{owner}/{repo}/issues/{n}/comments")

			// Retried early, the credential is still paused: no request.
			d.Attempt = 2
			fake.clock.Advance(10 * time.Second)
			_, err = a.Deliver(t.Context(), d)
			if !errors.As(err, &bo) || bo.Wait != 20*time.Second {
				t.Fatalf("early retry: err = %v, want a BackOff of the remaining 20s", err)
			}
			if n := fake.callCount("POST /repos/{owner}/{repo}/issues/{n}/comments"); n != posts {
				t.Fatalf("an early retry called GitHub (%d posts, was %d)", n, posts)
			}

			fake.clock.Advance(20 * time.Second)
			d.Attempt = 3
			rc, err := a.Deliver(t.Context(), d)
			if err != nil {
				t.Fatalf("after the wait: %v", err)
			}
			cs := fake.commentsCopy()
			if len(cs) != 1 {
				t.Fatalf("%d comments, want exactly 1", len(cs))
			}
			c := cs[0]
			if c.Kind != "issue" || c.Repo != "acme/api" || c.Number != 12 {
				t.Errorf("posted %+v, want an issue comment on acme/api#12", c)
			}
			if want := text + "\n\n<!-- switchboard:delivery=dlv_01 -->"; c.Body != want {
				t.Errorf("body = %q, want the Markdown unchanged and the marker", c.Body)
			}
			if rc.ChannelID != strconv.FormatInt(c.ID, 10) {
				t.Errorf("receipt = %+v, want comment %d", rc, c.ID)
			}
			if auth == "app" {
				if !strings.HasPrefix(c.Token, "ghs_inst4711_") {
					t.Errorf("posted with %q, want the installation's token", c.Token)
				}
				if m := fake.mintsCopy(); len(m) != 1 || m[0] != 4711 {
					t.Errorf("mints = %v, want one for installation 4711", m)
				}
			}
			// The outbox failed to record the receipt and tries again: no
			// second comment, the same receipt.
			d.Attempt = 4
			rc2, err := a.Deliver(t.Context(), d)
			if err != nil || rc2 != rc || len(fake.commentsCopy()) != 1 {
				t.Fatalf("redelivery: %+v %v, %d comments", rc2, err, len(fake.commentsCopy()))
			}
			if v := adaptertest.CounterValue(a.metrics.posts.WithLabelValues("rate_limited")); v != 2 {
				t.Errorf("posts{rate_limited} = %v, want 2", v)
			}
		})
	}
}

func TestDeliverRateLimitWaits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		header func(now time.Time) map[string]string
		msg    string
		want   time.Duration
	}{
		{"primary: until X-RateLimit-Reset", http.StatusForbidden, func(now time.Time) map[string]string {
			return map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": strconv.FormatInt(now.Add(10*time.Minute).Unix(), 10)}
		}, "API rate limit exceeded for user ID 77.", 10*time.Minute + time.Second},
		{"primary as 429", http.StatusTooManyRequests, func(now time.Time) map[string]string {
			return map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": strconv.FormatInt(now.Add(90*time.Second).Unix(), 10)}
		}, "API rate limit exceeded", 91 * time.Second},
		{"secondary with Retry-After", http.StatusTooManyRequests, func(time.Time) map[string]string {
			return map[string]string{"Retry-After": "120"}
		}, secondaryMsg, 2 * time.Minute},
		{"secondary without Retry-After: a minute", http.StatusForbidden, func(time.Time) map[string]string { return nil }, secondaryMsg, time.Minute},
		{"bare 429: a minute", http.StatusTooManyRequests, func(time.Time) map[string]string { return nil }, "Too Many Requests", time.Minute},
		{"Retry-After as a date", http.StatusForbidden, func(now time.Time) map[string]string {
			return map[string]string{"Retry-After": now.Add(45 * time.Second).Format(http.TimeFormat)}
		}, secondaryMsg, 45 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeGitHub(t, newClock())
			fake.failPosts(failWith(tc.status, tc.header(fake.clock.Now()), tc.msg))
			a := newTestAdapter(t, fake, newRecorder(), nil)
			_, err := a.Deliver(t.Context(), delivery("dlv_02", "acme/api#12", "hi", 1))
			var bo *adapters.BackOff
			if !errors.As(err, &bo) || bo.Wait != tc.want {
				t.Fatalf("err = %v, want a BackOff of %s", err, tc.want)
			}
		})
	}
}

func TestDeliverErrorClasses(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		msg       string
		permanent bool
		unhealthy bool
	}{
		{"deleted issue", http.StatusNotFound, "Not Found", true, false},
		{"gone", http.StatusGone, "This issue was deleted", true, false},
		{"no access", http.StatusForbidden, "Resource not accessible by personal access token", true, false},
		{"locked", http.StatusForbidden, "Unable to create comment because issue is locked.", true, false},
		{"validation", http.StatusUnprocessableEntity, "Validation Failed", true, false},
		{"bad credentials", http.StatusUnauthorized, "Bad credentials", true, true},
		{"server error", http.StatusBadGateway, "Server Error", false, false},
		{"unavailable", http.StatusServiceUnavailable, "Service Unavailable", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeGitHub(t, newClock())
			fake.failPosts(failWith(tc.status, nil, tc.msg))
			a := newTestAdapter(t, fake, newRecorder(), nil)
			_, err := a.Deliver(t.Context(), delivery("dlv_03", "acme/api#12", "hi", 1))
			if err == nil {
				t.Fatal("no error")
			}
			var bo *adapters.BackOff
			if errors.As(err, &bo) {
				t.Fatalf("err = %v, not a rate limit", err)
			}
			if got := errors.Is(err, adapters.ErrPermanent); got != tc.permanent {
				t.Fatalf("permanent = %v, want %v (%v)", got, tc.permanent, err)
			}
			checkErr := a.Check(t.Context())
			if (checkErr != nil) != tc.unhealthy || (gaugeValue(a.metrics.healthy) == 0) != tc.unhealthy {
				t.Fatalf("Check = %v, healthy gauge %v", checkErr, gaugeValue(a.metrics.healthy))
			}
			if tc.unhealthy {
				if !strings.Contains(checkErr.Error(), "token rejected") {
					t.Errorf("Check = %v", checkErr)
				}
				// The next successful post clears it.
				if _, err := a.Deliver(t.Context(), delivery("dlv_04", "acme/api#12", "hi", 1)); err != nil {
					t.Fatal(err)
				}
				if err := a.Check(t.Context()); err != nil || gaugeValue(a.metrics.healthy) != 1 {
					t.Errorf("after a success: Check = %v", err)
				}
			}
		})
	}
}

func TestDeliverReviewThreadReply(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	a := newTestAdapter(t, fake, newRecorder(), nil)
	rc, err := a.Deliver(t.Context(), delivery("dlv_05", "acme/api#7/review-thread/1600000001", "Made the loop idempotent in 3f2a91c.", 1))
	if err != nil {
		t.Fatal(err)
	}
	cs := fake.commentsCopy()
	if len(cs) != 1 {
		t.Fatalf("%d comments", len(cs))
	}
	c := cs[0]
	if c.Kind != "review" || c.Repo != "acme/api" || c.Number != 7 || c.InReplyTo != 1600000001 {
		t.Errorf("posted %+v, want a reply in review thread 1600000001 of acme/api#7", c)
	}
	if rc.ChannelID != strconv.FormatInt(c.ID, 10) {
		t.Errorf("receipt %+v", rc)
	}
}

func TestDeliverRejectsWhatItCannotPost(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	a := newTestAdapter(t, fake, newRecorder(), nil)
	for name, d := range map[string]adapters.Delivery{
		"other source": func() adapters.Delivery {
			d := delivery("dlv_1", "acme/api#1", "x", 1)
			d.To.Source = "slack"
			return d
		}(),
		"bad ref":    delivery("dlv_1", "acme/api", "x", 1),
		"bad number": delivery("dlv_1", "acme/api#0", "x", 1),
		"bad thread": delivery("dlv_1", "acme/api#1/review-thread/x", "x", 1),
		"empty text": delivery("dlv_1", "acme/api#1", "  \n", 1),
		"edit": func() adapters.Delivery {
			d := delivery("dlv_1", "acme/api#1", "x", 1)
			d.Envelope.Kind = envelope.KindEdit
			return d
		}(),
		"bad id": delivery("dlv --> x", "acme/api#1", "x", 1),
	} {
		if _, err := a.Deliver(t.Context(), d); !errors.Is(err, adapters.ErrPermanent) {
			t.Errorf("%s: err = %v, want permanent", name, err)
		}
	}
	if n := len(fake.commentsCopy()); n != 0 {
		t.Errorf("%d comments posted", n)
	}
}

// stripMarker removes the trailing provenance marker from a posted body.
func stripMarker(t *testing.T, body string) (string, string) {
	t.Helper()
	i := strings.LastIndex(body, "\n\n<!-- switchboard:")
	if i < 0 {
		t.Fatalf("no marker in %q", body)
	}
	return body[:i], body[i+2:]
}

func TestDeliverSplitsLongTextInOrder(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	a := newTestAdapter(t, fake, newRecorder(), func(c *Config) { c.MaxChars = 1000 })
	var paras []string
	for i := range 8 {
		paras = append(paras, fmt.Sprintf("Paragraph %d: %s", i, strings.TrimSpace(strings.Repeat("lorem ipsum dolor ", 16))))
	}
	text := strings.Join(paras, "\n\n")
	rc, err := a.Deliver(t.Context(), delivery("dlv_06", "acme/api#12", text, 1))
	if err != nil {
		t.Fatal(err)
	}
	cs := fake.commentsCopy()
	if len(cs) < 3 {
		t.Fatalf("%d comments, want the text split", len(cs))
	}
	var got []string
	for i, c := range cs {
		if n := len([]rune(c.Body)); n > 1000 {
			t.Errorf("comment %d has %d characters", i, n)
		}
		part, mark := stripMarker(t, c.Body)
		if want := fmt.Sprintf("<!-- switchboard:delivery=dlv_06 part=%d/%d -->", i+1, len(cs)); mark != want {
			t.Errorf("comment %d marker %q, want %q", i, mark, want)
		}
		got = append(got, part)
	}
	if strings.Join(got, "\n\n") != text {
		t.Errorf("parts do not rebuild the text in order:\n%q", got)
	}
	if rc.ChannelID != strconv.FormatInt(cs[0].ID, 10) {
		t.Errorf("receipt = %q, want the first comment", rc.ChannelID)
	}
}

func TestSplitKeepsCodeBlocksBalanced(t *testing.T) {
	var lines []string
	for i := range 200 {
		lines = append(lines, fmt.Sprintf("fmt.Println(%d) // ünïcødé", i))
	}
	text := "Here is the fix:\n\n```go\n" + strings.Join(lines, "\n") + "\n```\n\nThat is all."
	parts := split(text, 1000)
	if len(parts) < 4 {
		t.Fatalf("%d parts", len(parts))
	}
	var code []string
	for i, p := range parts {
		if n := len([]rune(p)); n > 1000 {
			t.Errorf("part %d has %d characters", i, n)
		}
		if strings.Count(p, "```")%2 != 0 {
			t.Errorf("part %d leaves a code block open:\n%s", i, p)
		}
		if i > 0 && i < len(parts)-1 && !strings.HasPrefix(p, "```go\n") {
			t.Errorf("part %d does not reopen the block with its info string", i)
		}
		for _, l := range strings.Split(p, "\n") {
			if strings.HasPrefix(l, "fmt.Println") {
				code = append(code, l)
			}
		}
	}
	if strings.Join(code, "\n") != strings.Join(lines, "\n") {
		t.Error("code lines lost or reordered")
	}
	if parts := split("short", 1000); len(parts) != 1 || parts[0] != "short" {
		t.Errorf("short text split: %q", parts)
	}
	// A word longer than the limit is cut at a rune boundary.
	long := strings.Repeat("é", 2500)
	var n int
	for _, p := range split(long, 1000) {
		n += len([]rune(p))
	}
	if n != 2500 {
		t.Errorf("hard cuts kept %d of 2500 runes", n)
	}
}

func TestDeliverAfterRestartDoesNotPostTwice(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	first := newTestAdapter(t, fake, newRecorder(), nil)
	d := delivery("dlv_07", "acme/api#12", "Pushed the fix.", 1)
	rc, err := first.Deliver(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	// The process died before the outbox recorded the receipt; another
	// process (no memory of it) makes attempt 2.
	second := newTestAdapter(t, fake, newRecorder(), nil)
	d.Attempt = 2
	rc2, err := second.Deliver(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(fake.commentsCopy()); n != 1 {
		t.Fatalf("%d comments, want 1", n)
	}
	if rc2 != rc {
		t.Errorf("receipt %+v, want the earlier comment %+v", rc2, rc)
	}
	if n := fake.callCount("GET /repos/{owner}/{repo}/issues/{n}/comments"); n != 1 {
		t.Errorf("listed comments %d times", n)
	}
}

func TestDeliverResumesASplitReplyInAnotherProcess(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	text := strings.Repeat("a", 700) + "\n\n" + strings.Repeat("b", 700) + "\n\n" + strings.Repeat("c", 700)
	first := newTestAdapter(t, fake, newRecorder(), func(c *Config) { c.MaxChars = 1000 })
	fake.failPosts(nil, failWith(http.StatusInternalServerError, nil, "Server Error"))
	d := delivery("dlv_08", "acme/api#7/review-thread/1600000001", text, 1)
	if _, err := first.Deliver(t.Context(), d); err == nil || errors.Is(err, adapters.ErrPermanent) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
	second := newTestAdapter(t, fake, newRecorder(), func(c *Config) { c.MaxChars = 1000 })
	d.Attempt = 2
	rc, err := second.Deliver(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	cs := fake.commentsCopy()
	if len(cs) != 3 {
		t.Fatalf("%d comments, want 3 parts once each", len(cs))
	}
	for i, c := range cs {
		part, _ := stripMarker(t, c.Body)
		if want := strings.Repeat(string(rune('a'+i)), 700); part != want || c.InReplyTo != 1600000001 {
			t.Errorf("comment %d = %.20q… in reply to %d", i, part, c.InReplyTo)
		}
	}
	if rc.ChannelID != strconv.FormatInt(cs[0].ID, 10) {
		t.Errorf("receipt %q, want the first part's comment", rc.ChannelID)
	}
}

// TestOwnCommentsEchoedBackAreDropped posts a reply, then feeds GitHub's
// webhook for that comment back, authored by a human account (a personal
// access token of a person): the marker alone identifies it.
func TestOwnCommentsEchoedBackAreDropped(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, nil)
	if _, err := a.Deliver(t.Context(), delivery("dlv_09", "acme/api#12", "@switchboard is done: see /agent output", 1)); err != nil {
		t.Fatal(err)
	}
	c := fake.commentsCopy()[0]
	echo := fmt.Appendf(nil, `{"action":"created","issue":{"number":12},"comment":{"id":%d,"body":%q,"user":{"login":"ada","type":"User"}},"repository":{"full_name":"acme/api"},"sender":{"login":"ada","type":"User"}}`, c.ID, c.Body)
	if w := serve(a, webhook("issue_comment", "d-echo", echo)); w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	if len(rec.All()) != 0 || outcomes(a, "issue_comment")[outcomeOwn] != 1 {
		t.Fatalf("the echo was not dropped as own: %v", outcomes(a, "issue_comment"))
	}
}

func TestMarkWorking(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	a := newTestAdapter(t, fake, newRecorder(), nil)
	conv := func(ref string) envelope.Conversation { return envelope.Conversation{Source: Name, Ref: ref} }
	if err := a.MarkWorking(t.Context(), conv("acme/api#12"), "1500000002"); err != nil {
		t.Fatal(err)
	}
	if err := a.MarkWorking(t.Context(), conv("acme/api#7/review-thread/1600000001"), "1600000002"); err != nil {
		t.Fatal(err)
	}
	if err := a.MarkWorking(t.Context(), conv("acme/api#13"), ""); err != nil {
		t.Fatal(err)
	}
	want := []string{"issue-comment 1500000002 eyes", "review-comment 1600000002 eyes", "issue 13 eyes"}
	fake.mu.Lock()
	got := append([]string(nil), fake.reactions...)
	fake.mu.Unlock()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("reactions = %q, want %q", got, want)
	}
	off := newTestAdapter(t, fake, newRecorder(), func(c *Config) { f := false; c.Reactions.Enabled = &f })
	if err := off.MarkWorking(t.Context(), conv("acme/api#12"), "1"); err != nil {
		t.Fatal(err)
	}
	rocket := newTestAdapter(t, fake, newRecorder(), func(c *Config) { c.Reactions.Working = "rocket" })
	if err := rocket.MarkWorking(t.Context(), conv("acme/api#12"), "5"); err != nil {
		t.Fatal(err)
	}
	fake.mu.Lock()
	n, last := len(fake.reactions), fake.reactions[len(fake.reactions)-1]
	fake.mu.Unlock()
	if n != 4 || last != "issue-comment 5 rocket" {
		t.Errorf("%d reactions, last %q", n, last)
	}
}
