package jira

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
	"github.com/switchboardhq/switchboard/store/sqlite"
)

const issueRef = "acme.atlassian.net/OPS-42"

// change is the delivery of an edit (text not empty) or a deletion (text
// empty) of the reply whose first comment is target.
func change(id, target, text string) adapters.Delivery {
	return adaptertest.AsChange(delivery(id, issueRef, text, 1), target)
}

// partial marks a delivery as the start of a stream.
var partial = adaptertest.AsPartial

// paragraphs is a reply long enough to be split.
var paragraphs = adaptertest.Paragraphs

// checkReply checks that the fake's comments on OPS-42 are exactly the
// (plain) reply text, split in order, each part ending with delivery's
// marker, the first being first.
func checkReply(t *testing.T, fake *fakeJira, delivery, first, text string) {
	t.Helper()
	cs := fake.posted()
	if len(cs) == 0 || cs[0].ID != first {
		t.Fatalf("the reply's first comment %s is not first: %+v", first, cs)
	}
	var got []string
	for i, c := range cs {
		m := marker(delivery, i+1)
		if !strings.HasSuffix(c.Body, m) || !hasMarker(c.Body) {
			t.Errorf("comment %d lacks the marker of part %d of %s", i, i+1, delivery)
		}
		if n := chars(c.Body); n > 1000 {
			t.Errorf("comment %d has %d characters", i, n)
		}
		got = append(got, strings.TrimSuffix(strings.TrimSuffix(c.Body, m), "\n"))
	}
	if strings.Join(got, "\n\n") != text {
		t.Errorf("the %d comments do not hold the text:\n%q\nwant\n%q", len(cs), got, text)
	}
}

func TestEditChangesTheCommentInPlace(t *testing.T) {
	fake := newFakeJira(t)
	a := newTestAdapter(t, fake, newRecorder(), nil)
	rc, err := a.Deliver(t.Context(), partial(delivery("d1", issueRef, "Looking at the failing test…", 1)))
	if err != nil {
		t.Fatal(err)
	}
	rc2, err := a.Deliver(t.Context(), change("d2", rc.ChannelID, "Found it: **the clock was not UTC**."))
	if err != nil {
		t.Fatal(err)
	}
	if rc2.ChannelID != rc.ChannelID {
		t.Errorf("receipt %q, want the comment's id %q", rc2.ChannelID, rc.ChannelID)
	}
	cs := fake.posted()
	if len(cs) != 1 || fake.callCount("POST comment") != 1 {
		t.Fatalf("%d comments, %d posts: want the one comment changed in place", len(cs), fake.callCount("POST comment"))
	}
	// Markdown becomes wiki markup; the marker still names the delivery
	// that posted the reply.
	if want := "Found it: *the clock was not UTC*." + marker("d1", 1); cs[0].Body != want {
		t.Errorf("body = %q, want %q", cs[0].Body, want)
	}
	if got, want := fake.changesCopy(), []string{"PUT " + rc.ChannelID}; !slices.Equal(got, want) {
		t.Errorf("changes = %q, want %q", got, want)
	}
	if n := fake.callCount("GET comment/id"); n != 0 {
		t.Errorf("read the comment %d times: a streamed reply is remembered", n)
	}
	if v := adaptertest.CounterValue(a.metrics.changes.WithLabelValues("edit", "ok")); v != 1 {
		t.Errorf("changes{edit,ok} = %v, want 1", v)
	}
	if p := fake.problemsSeen(); len(p) > 0 {
		t.Errorf("malformed requests: %v", p)
	}
}

// TestEditOfAReplyPostedByAnotherProcess: the adapter that edits did not
// post the reply (and has no state store): it reads the comment and edits
// it, with a marker of its own.
func TestEditOfAReplyPostedByAnotherProcess(t *testing.T) {
	fake := newFakeJira(t)
	rc, err := newTestAdapter(t, fake, newRecorder(), nil).Deliver(t.Context(), delivery("d1", issueRef, "Done.", 1))
	if err != nil {
		t.Fatal(err)
	}
	b := newTestAdapter(t, fake, newRecorder(), nil)
	if _, err := b.Deliver(t.Context(), change("d2", rc.ChannelID, "Done, and pushed.")); err != nil {
		t.Fatal(err)
	}
	cs := fake.posted()
	if len(cs) != 1 || cs[0].Body != "Done, and pushed."+marker("d2", 1) {
		t.Errorf("comments = %+v", cs)
	}
	if n := fake.callCount("GET comment/id"); n != 1 {
		t.Errorf("read the comment %d times, want 1", n)
	}
}

func TestDeleteRemovesTheComment(t *testing.T) {
	fake := newFakeJira(t)
	a := newTestAdapter(t, fake, newRecorder(), nil)
	keep, err := a.Deliver(t.Context(), delivery("d0", issueRef, "Another reply.", 1))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := a.Deliver(t.Context(), partial(delivery("d1", issueRef, "Thinking…", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Deliver(t.Context(), change("d2", rc.ChannelID, "")); err != nil {
		t.Fatal(err)
	}
	if cs := fake.posted(); len(cs) != 1 || cs[0].ID != keep.ChannelID {
		t.Fatalf("comments = %+v, want only the other reply", cs)
	}
	if got, want := fake.changesCopy(), []string{"DELETE " + rc.ChannelID}; !slices.Equal(got, want) {
		t.Errorf("changes = %q, want %q", got, want)
	}
	_, err = a.Deliver(t.Context(), change("d3", rc.ChannelID, ""))
	if !errors.Is(err, adapters.ErrGone) {
		t.Errorf("second delete: err = %v, want ErrGone", err)
	}
}

func TestEditOrDeleteOfAGoneComment(t *testing.T) {
	for _, text := range []string{"new text", ""} {
		for _, known := range []bool{true, false} {
			t.Run(fmt.Sprintf("text=%q known=%v", text, known), func(t *testing.T) {
				fake := newFakeJira(t)
				a := newTestAdapter(t, fake, newRecorder(), nil)
				rc, err := a.Deliver(t.Context(), partial(delivery("d1", issueRef, "Working…", 1)))
				if err != nil {
					t.Fatal(err)
				}
				if !known {
					a = newTestAdapter(t, fake, newRecorder(), nil)
				}
				fake.removeComment(rc.ChannelID) // a person deleted it
				_, err = a.Deliver(t.Context(), change("d2", rc.ChannelID, text))
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
				if n := len(fake.posted()); n != 0 {
					t.Errorf("%d comments: an edit of a gone comment posted one", n)
				}
				if herr := a.Check(t.Context()); herr != nil {
					t.Errorf("Check = %v", herr)
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
		{"429 with Retry-After", failWith(http.StatusTooManyRequests, map[string]string{"Retry-After": "7"}), 7 * time.Second, false},
		{"503 with Retry-After", failWith(http.StatusServiceUnavailable, map[string]string{"Retry-After": "30"}), 30 * time.Second, false},
		{"400", failWith(http.StatusBadRequest, nil), 0, true},
		{"403", failWith(http.StatusForbidden, nil), 0, true},
		{"500", failWith(http.StatusInternalServerError, nil), 0, false},
	} {
		for _, text := range []string{"edited", ""} {
			t.Run(tc.name+" "+map[bool]string{true: "edit", false: "delete"}[text != ""], func(t *testing.T) {
				fake := newFakeJira(t)
				a := newTestAdapter(t, fake, newRecorder(), nil)
				rc, err := a.Deliver(t.Context(), partial(delivery("d1", issueRef, "Working…", 1)))
				if err != nil {
					t.Fatal(err)
				}
				fake.failEdits(tc.fail)
				d := change("d2", rc.ChannelID, text)
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
				if tc.permanent {
					return
				}
				d.Attempt = 2
				if _, err := a.Deliver(t.Context(), d); err != nil {
					t.Fatalf("retry: %v", err)
				}
				cs := fake.posted()
				if text == "" && len(cs) != 0 || text != "" && (len(cs) != 1 || cs[0].Body != "edited"+marker("d1", 1)) {
					t.Errorf("after the retry: %+v", cs)
				}
			})
		}
	}
}

func newTestKV(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "kv.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestEditASplitReplyShorterAndLonger(t *testing.T) {
	for _, mode := range []string{"memory", "state store"} {
		t.Run(mode, func(t *testing.T) {
			fake := newFakeJira(t)
			deps := adapters.Deps{Ingress: newRecorder(), Now: func() time.Time { return testNow }, HTTPClient: fake.srv.Client(), Registry: prometheus.NewRegistry()}
			if mode == "state store" {
				deps.State = newTestKV(t)
			}
			replica := func() *Adapter {
				a, err := New(&Config{BaseURL: fake.srv.URL, Email: testEmail, APIToken: testAPIToken, WebhookSecret: testSecret, MaxChars: 1000}, deps)
				if err != nil {
					t.Fatal(err)
				}
				return a
			}
			a := replica()
			// With a state store, every change is made by another replica.
			next := func() *Adapter {
				if mode == "state store" {
					deps.Registry = prometheus.NewRegistry()
					return replica()
				}
				return a
			}
			text := paragraphs("First", 4)
			rc, err := a.Deliver(t.Context(), delivery("d1", issueRef, text, 1))
			if err != nil {
				t.Fatal(err)
			}
			if n := len(fake.posted()); n != 4 {
				t.Fatalf("%d comments, want 4 parts", n)
			}
			checkReply(t, fake, "d1", rc.ChannelID, text)
			ids := func() []string {
				var out []string
				for _, c := range fake.posted() {
					out = append(out, c.ID)
				}
				return out
			}
			old := ids()

			// Shorter: one part; the other three are deleted, the last first.
			if _, err := next().Deliver(t.Context(), change("d2", rc.ChannelID, "All done.")); err != nil {
				t.Fatal(err)
			}
			checkReply(t, fake, "d1", rc.ChannelID, "All done.")
			want := []string{"PUT " + old[0], "DELETE " + old[3], "DELETE " + old[2], "DELETE " + old[1]}
			if ch := fake.changesCopy(); !slices.Equal(ch, want) {
				t.Errorf("changes = %q, want %q", ch, want)
			}

			// Longer: five parts, four of them added after the first.
			long := paragraphs("Second", 5)
			if _, err := next().Deliver(t.Context(), change("d3", rc.ChannelID, long)); err != nil {
				t.Fatal(err)
			}
			checkReply(t, fake, "d1", rc.ChannelID, long)

			// Only the last paragraph changes: only the last part is updated.
			before := len(fake.changesCopy())
			longer := long + " And one more sentence."
			if _, err := next().Deliver(t.Context(), change("d4", rc.ChannelID, longer)); err != nil {
				t.Fatal(err)
			}
			checkReply(t, fake, "d1", rc.ChannelID, longer)
			if ch := fake.changesCopy()[before:]; !slices.Equal(ch, []string{"PUT " + ids()[4]}) {
				t.Errorf("changes = %q, want only the last part updated", ch)
			}

			// Deleted: every part goes, the first last.
			before = len(fake.changesCopy())
			if _, err := next().Deliver(t.Context(), change("d5", rc.ChannelID, "")); err != nil {
				t.Fatal(err)
			}
			if n := len(fake.posted()); n != 0 {
				t.Errorf("%d comments left", n)
			}
			if ch := fake.changesCopy()[before:]; len(ch) != 5 || ch[4] != "DELETE "+rc.ChannelID {
				t.Errorf("changes = %q, want five deletions, the first comment's last", ch)
			}
			if n := fake.callCount("GET comment/id") + fake.callCount("GET comment"); n != 0 {
				t.Errorf("%d reads of Jira: the parts are known", n)
			}
		})
	}
}

// TestEditOfASplitReplyResumesAfterAFailure: an edit that adds parts fails
// part way; its retry adds only what is missing.
func TestEditOfASplitReplyResumesAfterAFailure(t *testing.T) {
	fake := newFakeJira(t)
	a := newTestAdapter(t, fake, newRecorder(), func(c *Config) { c.MaxChars = 1000 })
	rc, err := a.Deliver(t.Context(), partial(delivery("d1", issueRef, "Starting.", 1)))
	if err != nil {
		t.Fatal(err)
	}
	long := paragraphs("Result", 3)
	fake.failPosts(nil, failWith(http.StatusTooManyRequests, map[string]string{"Retry-After": "3"}))
	d := change("d2", rc.ChannelID, long)
	var bo *adapters.BackOff
	if _, err := a.Deliver(t.Context(), d); !errors.As(err, &bo) || bo.Wait != 3*time.Second {
		t.Fatalf("err = %v, want a BackOff of 3s", err)
	}
	d.Attempt = 2
	if _, err := a.Deliver(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	checkReply(t, fake, "d1", rc.ChannelID, long)
}
