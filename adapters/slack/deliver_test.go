package slack

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
	"github.com/switchboardhq/switchboard/envelope"
)

func delivery(id, ref, text string, attempt int) adapters.Delivery {
	return adaptertest.Delivery(id, envelope.Conversation{Source: Name, Ref: ref}, text, time.Unix(1800000000, 0).UTC(), attempt)
}

func TestDeliverRateLimitedOnceThenPostsExactlyOnce(t *testing.T) {
	fake := newFakeSlack(t)
	fake.failPosts(failWith(http.StatusTooManyRequests, map[string]string{"Retry-After": "7"}, nil))
	a := newTestAdapter(t, fake, newRecorder(), nil)
	d := delivery("d1", "T0TEST/C123/1700000000.000100", "Done: **all tests pass**", 1)

	_, err := a.Deliver(t.Context(), d)
	var bo *adapters.BackOff
	if !errors.As(err, &bo) || bo.Wait != 7*time.Second {
		t.Fatalf("first attempt: err = %v, want a BackOff of 7s", err)
	}
	if errors.Is(err, adapters.ErrPermanent) {
		t.Fatal("a rate limit is not permanent")
	}
	if n := len(fake.postsCopy()); n != 0 {
		t.Fatalf("%d posts after a 429", n)
	}

	d.Attempt = 2
	rc, err := a.Deliver(t.Context(), d)
	if err != nil {
		t.Fatalf("second attempt: %v", err)
	}
	posts := fake.postsCopy()
	if len(posts) != 1 {
		t.Fatalf("%d posts, want exactly 1", len(posts))
	}
	p := posts[0]
	if p.Get("channel") != "C123" || p.Get("thread_ts") != "1700000000.000100" || p.Get("text") != "Done: *all tests pass*" {
		t.Errorf("posted %v", p)
	}
	var md struct {
		EventType    string         `json:"event_type"`
		EventPayload map[string]any `json:"event_payload"`
	}
	if err := json.Unmarshal([]byte(p.Get("metadata")), &md); err != nil || md.EventType != metadataType || md.EventPayload["delivery"] != "d1" {
		t.Errorf("metadata = %s (%v)", p.Get("metadata"), err)
	}
	if rc.ChannelID != "1800000000.000001" {
		t.Errorf("receipt = %+v", rc)
	}
	if n := fake.callCount("conversations.replies"); n != 0 {
		t.Errorf("a retry in the same process scanned the thread %d times", n)
	}
	// A third call for the same delivery (the outbox failed to record the
	// receipt) posts nothing and returns the same receipt.
	d.Attempt = 3
	rc2, err := a.Deliver(t.Context(), d)
	if err != nil || rc2 != rc || len(fake.postsCopy()) != 1 {
		t.Fatalf("redelivery: %+v %v, %d posts", rc2, err, len(fake.postsCopy()))
	}
}

func TestDeliverSplitsLongTextInOrder(t *testing.T) {
	fake := newFakeSlack(t)
	a := newTestAdapter(t, fake, newRecorder(), func(c *Config) { c.MaxChars = 120 })
	var paras []string
	for i := range 6 {
		paras = append(paras, "Paragraph "+string(rune('A'+i))+": "+strings.TrimSpace(strings.Repeat("lorem ipsum ", 6)))
	}
	rc, err := a.Deliver(t.Context(), delivery("d2", "T0TEST/C123/1700000000.000100", strings.Join(paras, "\n\n"), 1))
	if err != nil {
		t.Fatal(err)
	}
	posts := fake.postsCopy()
	if len(posts) < 3 {
		t.Fatalf("%d posts, want the text split", len(posts))
	}
	var got []string
	for i, p := range posts {
		if n := len([]rune(p.Get("text"))); n > 120 {
			t.Errorf("post %d has %d characters", i, n)
		}
		if p.Get("thread_ts") != "1700000000.000100" {
			t.Errorf("post %d not in the thread", i)
		}
		got = append(got, p.Get("text"))
	}
	if strings.Join(got, "\n\n") != strings.Join(paras, "\n\n") {
		t.Errorf("parts do not rebuild the text in order:\n%q", got)
	}
	if rc.ChannelID != "1800000000.000001" {
		t.Errorf("receipt = %q, want the first part's ts", rc.ChannelID)
	}
}

func TestDeliverResumesAfterPartialFailure(t *testing.T) {
	fake := newFakeSlack(t)
	a := newTestAdapter(t, fake, newRecorder(), func(c *Config) { c.MaxChars = 100 })
	text := strings.Repeat("a", 90) + "\n\n" + strings.Repeat("b", 90) + "\n\n" + strings.Repeat("c", 90)
	d := delivery("d3", "T0TEST/C123/1700000000.000100", text, 1)
	// Part 1 posts, part 2 hits a 500.
	fakeFailAfter(fake, 1, failWith(http.StatusInternalServerError, nil, nil))
	_, err := a.Deliver(t.Context(), d)
	if err == nil || errors.Is(err, adapters.ErrPermanent) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
	var bo *adapters.BackOff
	if errors.As(err, &bo) {
		t.Fatalf("a 500 is not a rate limit: %v", err)
	}
	d.Attempt = 2
	rc, err := a.Deliver(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, p := range fake.postsCopy() {
		texts = append(texts, p.Get("text")[:1])
	}
	if strings.Join(texts, "") != "abc" {
		t.Fatalf("posted parts %v, want a, b, c once each", texts)
	}
	if rc.ChannelID != "1800000000.000001" {
		t.Errorf("receipt = %q, want part 1's ts", rc.ChannelID)
	}
}

// fakeFailAfter lets n posts succeed, then answers the next with fail.
func fakeFailAfter(f *fakeSlack, n int, fail func(http.ResponseWriter)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.postErrors = append(f.postErrors, nil)
	}
	f.postErrors = append(f.postErrors, fail)
}

func TestDeliverFindsPartsPostedBeforeARestart(t *testing.T) {
	fake := newFakeSlack(t)
	fake.replies = []map[string]any{
		{"type": "message", "user": "U222", "text": "question", "ts": "1700000000.000100"},
		{"type": "message", "bot_id": "B0OWN", "text": "aaa", "ts": "1800000000.000500",
			"metadata": map[string]any{"event_type": metadataType, "event_payload": map[string]any{"delivery": "d4", "part": 1, "parts": 2}}},
		{"type": "message", "bot_id": "B0OWN", "text": "other", "ts": "1800000000.000600",
			"metadata": map[string]any{"event_type": metadataType, "event_payload": map[string]any{"delivery": "other", "part": 2, "parts": 2}}},
	}
	a := newTestAdapter(t, fake, newRecorder(), func(c *Config) { c.MaxChars = 100 })
	text := strings.Repeat("a", 90) + "\n\n" + strings.Repeat("b", 90)
	rc, err := a.Deliver(t.Context(), delivery("d4", "T0TEST/C123/1700000000.000100", text, 2))
	if err != nil {
		t.Fatal(err)
	}
	posts := fake.postsCopy()
	if len(posts) != 1 || !strings.HasPrefix(posts[0].Get("text"), "bbb") {
		t.Fatalf("posts = %v, want only part 2", posts)
	}
	if rc.ChannelID != "1800000000.000500" {
		t.Errorf("receipt = %q, want the earlier part 1", rc.ChannelID)
	}
	if fake.callCount("conversations.replies") != 1 {
		t.Errorf("conversations.replies called %d times", fake.callCount("conversations.replies"))
	}
}

func TestDeliverErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fail      func(http.ResponseWriter)
		permanent bool
		unhealthy bool
	}{
		{"channel_not_found", failWith(200, nil, map[string]any{"ok": false, "error": "channel_not_found"}), true, false},
		{"not_in_channel", failWith(200, nil, map[string]any{"ok": false, "error": "not_in_channel"}), true, false},
		{"is_archived", failWith(200, nil, map[string]any{"ok": false, "error": "is_archived"}), true, false},
		{"invalid_auth", failWith(200, nil, map[string]any{"ok": false, "error": "invalid_auth"}), true, true},
		{"account_inactive", failWith(200, nil, map[string]any{"ok": false, "error": "account_inactive"}), true, true},
		{"token_revoked", failWith(200, nil, map[string]any{"ok": false, "error": "token_revoked"}), true, true},
		{"internal_error", failWith(200, nil, map[string]any{"ok": false, "error": "internal_error"}), false, false},
		{"503", failWith(503, nil, nil), false, false},
		{"404", failWith(404, nil, nil), true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeSlack(t)
			fake.failPosts(tc.fail)
			a := newTestAdapter(t, fake, newRecorder(), nil)
			_, err := a.Deliver(t.Context(), delivery("d5", "T0TEST/C123/1700000000.000100", "hi", 1))
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, adapters.ErrPermanent) != tc.permanent {
				t.Errorf("err = %v, permanent = %v, want %v", err, !tc.permanent, tc.permanent)
			}
			if herr := a.Check(t.Context()); (herr != nil) != tc.unhealthy {
				t.Errorf("Check = %v, want unhealthy %v", herr, tc.unhealthy)
			}
		})
	}
}

func TestDeliverRefusesWhatItCannotPost(t *testing.T) {
	fake := newFakeSlack(t)
	a := newTestAdapter(t, fake, newRecorder(), nil)
	for name, d := range map[string]adapters.Delivery{
		"other source": func() adapters.Delivery {
			d := delivery("x", "T/C/1.1", "hi", 1)
			d.To.Source = "github"
			return d
		}(),
		"bad ref":    delivery("x", "just-a-channel", "hi", 1),
		"bad thread": delivery("x", "T/C/not-a-ts", "hi", 1),
		"empty text": delivery("x", "T/C/1.1", "  ", 1),
		"edit": func() adapters.Delivery {
			d := delivery("x", "T/C/1.1", "hi", 1)
			d.Envelope.Kind = envelope.KindEdit
			return d
		}(),
	} {
		if _, err := a.Deliver(t.Context(), d); !errors.Is(err, adapters.ErrPermanent) {
			t.Errorf("%s: err = %v, want permanent", name, err)
		}
	}
	if n := len(fake.postsCopy()); n != 0 {
		t.Fatalf("%d posts", n)
	}
	// A channel-level anchor posts outside any thread.
	if _, err := a.Deliver(t.Context(), delivery("y", "T0TEST/C123", "top level", 1)); err != nil {
		t.Fatal(err)
	}
	if p := fake.postsCopy(); len(p) != 1 || p[0].Has("thread_ts") {
		t.Fatalf("posts = %v", p)
	}
}

func TestReactions(t *testing.T) {
	fake := newFakeSlack(t)
	a := newTestAdapter(t, fake, newRecorder(), nil)
	ctx := t.Context()
	if err := a.MarkWorking(ctx, "C123", "1.1", false); err != nil {
		t.Fatal(err)
	}
	if err := a.MarkIdle(ctx, "C123", "1.1", false); err != nil {
		t.Fatal(err)
	}
	// DMs are off by default.
	if err := a.MarkWorking(ctx, "D1", "2.2", true); err != nil {
		t.Fatal(err)
	}
	fake.mu.Lock()
	got := strings.Join(fake.reactions, "; ")
	fake.mu.Unlock()
	want := "add eyes C123 1.1; remove eyes C123 1.1; add white_check_mark C123 1.1"
	if got != want {
		t.Fatalf("reactions = %q, want %q", got, want)
	}
}
