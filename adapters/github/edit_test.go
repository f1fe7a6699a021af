package github

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
)

// change is the delivery of an edit (text not empty) or a deletion (text
// empty) of the reply whose first comment is target.
func change(id, ref, target, text string) adapters.Delivery {
	return adaptertest.AsChange(delivery(id, ref, text, 1), target)
}

// partial marks a delivery as the start of a stream.
var partial = adaptertest.AsPartial

// bodies returns the bodies of the fake's comments, in order.
func bodies(f *fakeGitHub) []string {
	var out []string
	for _, c := range f.commentsCopy() {
		out = append(out, c.Body)
	}
	return out
}

func TestEditChangesTheCommentInPlace(t *testing.T) {
	for _, tc := range []struct{ name, ref, kind string }{
		{"issue", "acme/api#12", "issue"},
		{"review thread", "acme/api#7/review-thread/1600000001", "review"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeGitHub(t, newClock())
			a := newTestAdapter(t, fake, newRecorder(), nil)
			rc, err := a.Deliver(t.Context(), partial(delivery("dlv_e1", tc.ref, "Looking at the failing test…", 1)))
			if err != nil {
				t.Fatal(err)
			}
			posts := len(fake.commentsCopy())
			rc2, err := a.Deliver(t.Context(), change("dlv_e2", tc.ref, rc.ChannelID, "Found it: **the clock was not UTC**."))
			if err != nil {
				t.Fatal(err)
			}
			if rc2.ChannelID != rc.ChannelID {
				t.Errorf("receipt %q, want the comment's id %q", rc2.ChannelID, rc.ChannelID)
			}
			cs := fake.commentsCopy()
			if len(cs) != posts || posts != 1 {
				t.Fatalf("%d comments, want the 1 posted", len(cs))
			}
			// The marker still names the delivery that posted the reply.
			if want := "Found it: **the clock was not UTC**.\n\n<!-- switchboard:delivery=dlv_e1 -->"; cs[0].Body != want {
				t.Errorf("body = %q, want %q", cs[0].Body, want)
			}
			if got, want := fake.changesCopy(), []string{"PATCH " + tc.kind + " " + rc.ChannelID}; !slices.Equal(got, want) {
				t.Errorf("changes = %q, want %q", got, want)
			}
			if !hasMarker(cs[0].Body) {
				t.Error("the edited comment lost its provenance marker")
			}
			if v := adaptertest.CounterValue(a.metrics.changes.WithLabelValues("edit", "ok")); v != 1 {
				t.Errorf("changes{edit,ok} = %v, want 1", v)
			}
			// A streamed reply was remembered: no read of the comment.
			if n := fake.callCount("GET /repos/{owner}/{repo}/issues/comments/{id}") + fake.callCount("GET /repos/{owner}/{repo}/pulls/comments/{id}"); n != 0 {
				t.Errorf("read the comment %d times", n)
			}
		})
	}
}

// TestEditOfAReplyPostedByAnotherProcess: the adapter that edits did not
// post the reply (and has no state store): it reads the comment, keeps its
// marker, and edits it.
func TestEditOfAReplyPostedByAnotherProcess(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	rc, err := newTestAdapter(t, fake, newRecorder(), nil).Deliver(t.Context(), delivery("dlv_e3", "acme/api#12", "Done.", 1))
	if err != nil {
		t.Fatal(err)
	}
	b := newTestAdapter(t, fake, newRecorder(), nil)
	if _, err := b.Deliver(t.Context(), change("dlv_e4", "acme/api#12", rc.ChannelID, "Done, and pushed.")); err != nil {
		t.Fatal(err)
	}
	if got, want := bodies(fake), []string{"Done, and pushed.\n\n<!-- switchboard:delivery=dlv_e3 -->"}; !slices.Equal(got, want) {
		t.Errorf("comments = %q, want %q", got, want)
	}
	if n := fake.callCount("GET /repos/{owner}/{repo}/issues/comments/{id}"); n != 1 {
		t.Errorf("read the comment %d times, want 1", n)
	}
}

func TestDeleteRemovesTheComment(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	a := newTestAdapter(t, fake, newRecorder(), nil)
	keep, err := a.Deliver(t.Context(), delivery("dlv_d0", "acme/api#12", "Another reply.", 1))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := a.Deliver(t.Context(), partial(delivery("dlv_d1", "acme/api#12", "Thinking…", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Deliver(t.Context(), change("dlv_d2", "acme/api#12", rc.ChannelID, "")); err != nil {
		t.Fatal(err)
	}
	cs := fake.commentsCopy()
	if len(cs) != 1 || strconv.FormatInt(cs[0].ID, 10) != keep.ChannelID {
		t.Fatalf("comments = %+v, want only the other reply", cs)
	}
	if got, want := fake.changesCopy(), []string{"DELETE issue " + rc.ChannelID}; !slices.Equal(got, want) {
		t.Errorf("changes = %q, want %q", got, want)
	}
	// Deleting it again: it is gone.
	_, err = a.Deliver(t.Context(), change("dlv_d3", "acme/api#12", rc.ChannelID, ""))
	if !errors.Is(err, adapters.ErrGone) {
		t.Errorf("second delete: err = %v, want ErrGone", err)
	}
}

func TestEditOrDeleteOfAGoneComment(t *testing.T) {
	for _, text := range []string{"new text", ""} {
		for _, known := range []bool{true, false} {
			t.Run(fmt.Sprintf("text=%q known=%v", text, known), func(t *testing.T) {
				fake := newFakeGitHub(t, newClock())
				a := newTestAdapter(t, fake, newRecorder(), nil)
				rc, err := a.Deliver(t.Context(), partial(delivery("dlv_g1", "acme/api#12", "Working…", 1)))
				if err != nil {
					t.Fatal(err)
				}
				if !known {
					a = newTestAdapter(t, fake, newRecorder(), nil)
				}
				id, _ := strconv.ParseInt(rc.ChannelID, 10, 64)
				fake.removeComment(id) // a person deleted it
				_, err = a.Deliver(t.Context(), change("dlv_g2", "acme/api#12", rc.ChannelID, text))
				if !errors.Is(err, adapters.ErrGone) {
					t.Fatalf("err = %v, want ErrGone", err)
				}
				var bo *adapters.BackOff
				if errors.As(err, &bo) || errors.Is(err, adapters.ErrPermanent) {
					t.Errorf("err = %v: gone is neither a rate limit nor permanent", err)
				}
				op := map[bool]string{true: "edit", false: "delete"}[text != ""]
				if v, want := adaptertest.CounterValue(a.metrics.changes.WithLabelValues(op, "gone")), map[bool]float64{true: 1}[known]; v != want {
					t.Errorf("changes{%s,gone} = %v, want %v (a comment not known is read, not changed)", op, v, want)
				}
				if n := len(fake.commentsCopy()); n != 0 {
					t.Errorf("%d comments: an edit of a gone comment posted one", n)
				}
			})
		}
	}
}

func TestEditErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fail      func(http.ResponseWriter)
		backoff   time.Duration
		permanent bool
	}{
		{"429 with Retry-After", failWith(http.StatusTooManyRequests, map[string]string{"Retry-After": "30"}, secondaryMsg), 30 * time.Second, false},
		{"403 secondary rate limit", failWith(http.StatusForbidden, map[string]string{"Retry-After": "90"}, secondaryMsg), 90 * time.Second, false},
		{"422 validation", failWith(http.StatusUnprocessableEntity, nil, "Validation Failed"), 0, true},
		{"502", failWith(http.StatusBadGateway, nil, "Server Error"), 0, false},
	} {
		for _, text := range []string{"edited", ""} {
			t.Run(tc.name+" "+map[bool]string{true: "edit", false: "delete"}[text != ""], func(t *testing.T) {
				fake := newFakeGitHub(t, newClock())
				a := newTestAdapter(t, fake, newRecorder(), nil)
				rc, err := a.Deliver(t.Context(), partial(delivery("dlv_x1", "acme/api#12", "Working…", 1)))
				if err != nil {
					t.Fatal(err)
				}
				fake.failEdits(tc.fail)
				d := change("dlv_x2", "acme/api#12", rc.ChannelID, text)
				_, err = a.Deliver(t.Context(), d)
				if err == nil {
					t.Fatal("no error")
				}
				var bo *adapters.BackOff
				if got := errors.As(err, &bo); got != (tc.backoff > 0) || got && bo.Wait != tc.backoff {
					t.Fatalf("err = %v, want a BackOff of %v", err, tc.backoff)
				}
				if errors.Is(err, adapters.ErrPermanent) != tc.permanent || errors.Is(err, adapters.ErrGone) {
					t.Fatalf("err = %v, want permanent %v, not gone", err, tc.permanent)
				}
				if tc.backoff > 0 {
					// The credential waits: a retry before the time asks nothing.
					calls := fake.callCount("PATCH /repos/{owner}/{repo}/issues/comments/{id}") + fake.callCount("DELETE /repos/{owner}/{repo}/issues/comments/{id}")
					d.Attempt = 2
					if _, err := a.Deliver(t.Context(), d); !errors.As(err, &bo) {
						t.Fatalf("early retry: %v", err)
					}
					if n := fake.callCount("PATCH /repos/{owner}/{repo}/issues/comments/{id}") + fake.callCount("DELETE /repos/{owner}/{repo}/issues/comments/{id}"); n != calls {
						t.Errorf("an early retry called GitHub")
					}
					fake.clock.Advance(tc.backoff)
				}
				if tc.permanent {
					return
				}
				d.Attempt = 3
				if _, err := a.Deliver(t.Context(), d); err != nil {
					t.Fatalf("retry: %v", err)
				}
				want := []string{"edited\n\n<!-- switchboard:delivery=dlv_x1 -->"}
				if text == "" {
					want = nil
				}
				if got := bodies(fake); !slices.Equal(got, want) {
					t.Errorf("after the retry: %q, want %q", got, want)
				}
			})
		}
	}
}

// paragraphs is a reply long enough to be split.
var paragraphs = adaptertest.Paragraphs

// checkReply checks that the fake's comments are exactly the reply text,
// posted by delivery, split in order with its markers, the first being
// first.
func checkReply(t *testing.T, fake *fakeGitHub, delivery, first, text string) {
	t.Helper()
	cs := fake.commentsCopy()
	if len(cs) == 0 || strconv.FormatInt(cs[0].ID, 10) != first {
		t.Fatalf("the reply's first comment %s is not first: %+v", first, cs)
	}
	var got []string
	for i, c := range cs {
		part, mark := stripMarker(t, c.Body)
		want := fmt.Sprintf("<!-- switchboard:delivery=%s part=%d/%d -->", delivery, i+1, len(cs))
		if len(cs) == 1 {
			want = "<!-- switchboard:delivery=" + delivery + " -->"
		}
		if mark != want {
			t.Errorf("comment %d marker %q, want %q", i, mark, want)
		}
		if n := len([]rune(c.Body)); n > 1000 {
			t.Errorf("comment %d has %d characters", i, n)
		}
		got = append(got, part)
	}
	if strings.Join(got, "\n\n") != text {
		t.Errorf("the %d comments do not hold the text:\n%q\nwant\n%q", len(cs), got, text)
	}
}

func TestEditASplitReplyShorterAndLonger(t *testing.T) {
	for _, store := range []string{"memory", "state store"} {
		t.Run(store, func(t *testing.T) {
			fake := newFakeGitHub(t, newClock())
			deps := adapters.Deps{Ingress: newRecorder(), Now: fake.clock.Now, HTTPClient: fake.srv.Client(), Registry: prometheus.NewRegistry()}
			if store == "state store" {
				deps.State = newTestKV(t)
			}
			a, err := New(&Config{WebhookSecret: testSecret, Token: testToken, Login: testLogin, APIURL: fake.url(), MaxChars: 1000}, deps)
			if err != nil {
				t.Fatal(err)
			}
			text := paragraphs("First", 4)
			rc, err := a.Deliver(t.Context(), delivery("dlv_s1", "acme/api#12", text, 1))
			if err != nil {
				t.Fatal(err)
			}
			if n := len(fake.commentsCopy()); n != 4 {
				t.Fatalf("%d comments, want 4 parts", n)
			}
			checkReply(t, fake, "dlv_s1", rc.ChannelID, text)

			// Shorter: one part; the other three are deleted, the last first.
			short := "All done."
			if _, err := a.Deliver(t.Context(), change("dlv_s2", "acme/api#12", rc.ChannelID, short)); err != nil {
				t.Fatal(err)
			}
			checkReply(t, fake, "dlv_s1", rc.ChannelID, short)
			ch := fake.changesCopy()
			if len(ch) != 4 || !strings.HasPrefix(ch[0], "PATCH issue "+rc.ChannelID) || !strings.HasPrefix(ch[1], "DELETE ") {
				t.Errorf("changes = %q, want the first edited, then three deleted", ch)
			}

			// Longer: five parts, four of them posted after the first.
			long := paragraphs("Second", 5)
			if _, err := a.Deliver(t.Context(), change("dlv_s3", "acme/api#12", rc.ChannelID, long)); err != nil {
				t.Fatal(err)
			}
			checkReply(t, fake, "dlv_s1", rc.ChannelID, long)

			// Only the last paragraph changes: only the last part is edited.
			before := len(fake.changesCopy())
			longer := long + " And one more sentence."
			if _, err := a.Deliver(t.Context(), change("dlv_s4", "acme/api#12", rc.ChannelID, longer)); err != nil {
				t.Fatal(err)
			}
			checkReply(t, fake, "dlv_s1", rc.ChannelID, longer)
			cs := fake.commentsCopy()
			if ch := fake.changesCopy()[before:]; !slices.Equal(ch, []string{"PATCH issue " + strconv.FormatInt(cs[4].ID, 10)}) {
				t.Errorf("changes = %q, want only the last part edited", ch)
			}

			// Deleted: every part goes, the first last.
			before = len(fake.changesCopy())
			if _, err := a.Deliver(t.Context(), change("dlv_s5", "acme/api#12", rc.ChannelID, "")); err != nil {
				t.Fatal(err)
			}
			if n := len(fake.commentsCopy()); n != 0 {
				t.Errorf("%d comments left", n)
			}
			if ch := fake.changesCopy()[before:]; len(ch) != 5 || ch[4] != "DELETE issue "+rc.ChannelID {
				t.Errorf("changes = %q, want five deletions, the first comment's last", ch)
			}
		})
	}
}

// TestEditASplitReplyFromAnotherProcess: without the parts in memory or a
// state store, the parts are found by their markers.
func TestEditASplitReplyFromAnotherProcess(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	small := func(c *Config) { c.MaxChars = 1000 }
	ref := "acme/api#7/review-thread/1600000001"
	text := paragraphs("First", 3)
	rc, err := newTestAdapter(t, fake, newRecorder(), small).Deliver(t.Context(), delivery("dlv_r1", ref, text, 1))
	if err != nil {
		t.Fatal(err)
	}
	fake.addComment(fakeComment{Kind: "review", Repo: "acme/api", Number: 7, InReplyTo: 1600000001, Body: "Thanks!", Created: fake.clock.Now()})
	fake.clock.Advance(time.Hour)
	b := newTestAdapter(t, fake, newRecorder(), small)
	edited := paragraphs("Second", 2)
	if _, err := b.Deliver(t.Context(), change("dlv_r2", ref, rc.ChannelID, edited)); err != nil {
		t.Fatal(err)
	}
	cs := fake.commentsCopy()
	if len(cs) != 3 || cs[2].Body != "Thanks!" {
		t.Fatalf("comments = %q, want two parts and the person's comment", bodies(fake))
	}
	var got []string
	for i, c := range cs[:2] {
		part, mark := stripMarker(t, c.Body)
		if want := fmt.Sprintf("<!-- switchboard:delivery=dlv_r1 part=%d/2 -->", i+1); mark != want || c.InReplyTo != 1600000001 {
			t.Errorf("part %d: marker %q in reply to %d", i+1, mark, c.InReplyTo)
		}
		got = append(got, part)
	}
	if strings.Join(got, "\n\n") != edited {
		t.Errorf("parts = %q", got)
	}
}

// TestEditOfASplitReplyResumesAfterAFailure: an edit that posts extra parts
// fails part way; its retry posts only what is missing.
func TestEditOfASplitReplyResumesAfterAFailure(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	a := newTestAdapter(t, fake, newRecorder(), func(c *Config) { c.MaxChars = 1000 })
	rc, err := a.Deliver(t.Context(), partial(delivery("dlv_f1", "acme/api#12", "Starting.", 1)))
	if err != nil {
		t.Fatal(err)
	}
	long := paragraphs("Result", 3)
	fake.failPosts(nil, failWith(http.StatusInternalServerError, nil, "Server Error"))
	d := change("dlv_f2", "acme/api#12", rc.ChannelID, long)
	if _, err := a.Deliver(t.Context(), d); err == nil || errors.Is(err, adapters.ErrPermanent) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
	d.Attempt = 2
	if _, err := a.Deliver(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	checkReply(t, fake, "dlv_f1", rc.ChannelID, long)
}

// TestEditFindsTheStreamInTheStateStore: a streamed reply's parts are in
// the state store, so another replica edits it without asking GitHub for
// them.
func TestEditFindsTheStreamInTheStateStore(t *testing.T) {
	fake := newFakeGitHub(t, newClock())
	kv := newTestKV(t)
	replica := func() *Adapter {
		a, err := New(&Config{WebhookSecret: testSecret, Token: testToken, Login: testLogin, APIURL: fake.url(), MaxChars: 1000},
			adapters.Deps{Ingress: newRecorder(), State: kv, Now: fake.clock.Now, HTTPClient: fake.srv.Client(), Registry: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	rc, err := replica().Deliver(t.Context(), partial(delivery("dlv_k1", "acme/api#12", paragraphs("First", 3), 1)))
	if err != nil {
		t.Fatal(err)
	}
	text := paragraphs("Second", 2)
	if _, err := replica().Deliver(t.Context(), change("dlv_k2", "acme/api#12", rc.ChannelID, text)); err != nil {
		t.Fatal(err)
	}
	checkReply(t, fake, "dlv_k1", rc.ChannelID, text)
	if n := fake.callCount("GET /repos/{owner}/{repo}/issues/comments/{id}") + fake.callCount("GET /repos/{owner}/{repo}/issues/{n}/comments"); n != 0 {
		t.Errorf("%d reads of GitHub, want none", n)
	}
	// A third replica deletes both parts.
	if _, err := replica().Deliver(t.Context(), change("dlv_k3", "acme/api#12", rc.ChannelID, "")); err != nil {
		t.Fatal(err)
	}
	if n := len(fake.commentsCopy()); n != 0 {
		t.Errorf("%d comments left", n)
	}
}
