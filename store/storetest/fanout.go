package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// runFanOut checks fan-out at commit (see package store): the router
// relies on it for every delivery.
func (s suite) runFanOut(t *testing.T) {
	t.Run("OutputsToBoundConversations", s.testFanOutOutputs)
	t.Run("WebhooksInSessionOrder", s.testFanOutWebhooks)
}

// pendingTo returns the pending deliveries to conversation source/ref, in
// queue order: it claims the conversation's head and settles it, until
// none is left.
func pendingTo(t *testing.T, st store.Store, to envelope.Conversation) []store.Delivery {
	t.Helper()
	var out []store.Delivery
	now := time.Now()
	for range 100 {
		ds, err := st.Claim(t.Context(), "fan-out-test", 100, now.Add(time.Hour), now.Add(2*time.Hour))
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		var head *store.Delivery
		for i := range ds {
			d := &ds[i]
			if d.To == to {
				head = d
				continue
			}
			// Hand the others back untouched.
			if err := st.Settle(t.Context(), d.ID, "fan-out-test", store.Settlement{Status: store.Pending, NextAttempt: now}); err != nil {
				t.Fatalf("Settle: %v", err)
			}
		}
		if head == nil {
			return out
		}
		if err := st.Settle(t.Context(), head.ID, "fan-out-test", store.Settlement{Status: store.Delivered}); err != nil {
			t.Fatalf("Settle: %v", err)
		}
		out = append(out, *head)
	}
	t.Fatalf("more than 100 deliveries to %s", to.Key())
	return nil
}

func (s suite) testFanOutOutputs(t *testing.T) {
	st, _ := s.fresh(t)
	ctx := t.Context()
	thread := envelope.Conversation{Source: "slack", Ref: "T1/C1/1.1"}
	issue := envelope.Conversation{Source: "github", Ref: "acme/w#7"}
	theirs := envelope.Conversation{Source: "slack", Ref: "T1/C1/2.2"}
	for _, b := range []store.Binding{
		{SessionID: "ses_a", Conversation: thread},
		{SessionID: "ses_a", Conversation: issue},
		{SessionID: "ses_a", Conversation: envelope.Conversation{Source: store.SourceRefPrefix + "pr", Ref: "acme/w#7"}},
		{SessionID: "ses_b", Conversation: theirs},
	} {
		if _, _, err := st.Bind(ctx, b, nil); err != nil {
			t.Fatal(err)
		}
	}
	in := req("ses_a", "m1", "fix it")
	in.Envelope.Conversation = thread
	mustAppend(t, st, in)
	out := func(key string, conv envelope.Conversation) store.AppendRequest {
		r := req("ses_a", key, "answer "+key)
		r.Direction, r.Envelope.Conversation = store.Outbound, conv
		r.Envelope.Actor = envelope.Actor{ID: "agent:a", Type: envelope.Agent}
		return r
	}
	for _, r := range []store.AppendRequest{
		out("latest", envelope.Conversation{}),
		out("named", issue),
		out("another session's", theirs),
		out("unbound", envelope.Conversation{Source: "slack", Ref: "T1/CGENERAL"}),
		out("client thread", envelope.Conversation{Source: envelope.SourceClient, Ref: "x"}),
		out("everyone", envelope.Broadcast),
	} {
		mustAppend(t, st, r)
		mustAppend(t, st, r) // a repeat enqueues nothing more
	}
	sys := out("notice", envelope.Conversation{})
	sys.Envelope.Kind = envelope.KindSystem
	mustAppend(t, st, sys)
	// Edits and deletions of outputs go where they name, as messages do;
	// an inbound edit (of a person's message) is not an output.
	edit := out("edit", envelope.Conversation{})
	edit.Envelope.Kind, edit.Envelope.Refs = envelope.KindEdit, envelope.Refs{envelope.RefEdits: "test:latest"}
	mustAppend(t, st, edit)
	del := out("delete", issue)
	del.Envelope.Kind, del.Envelope.Refs = envelope.KindDelete, envelope.Refs{envelope.RefDeletes: "test:named"}
	mustAppend(t, st, del)
	theirEdit := req("ses_a", "their-edit", "fix it, please")
	theirEdit.Envelope.Kind, theirEdit.Envelope.Conversation = envelope.KindEdit, thread
	theirEdit.Envelope.Refs = envelope.Refs{envelope.RefEdits: "test:m1"}
	mustAppend(t, st, theirEdit)

	texts := func(to envelope.Conversation) []string {
		var got []string
		for _, d := range pendingTo(t, st, to) {
			if d.SessionID != "ses_a" {
				t.Errorf("delivery to %s of session %s", to.Key(), d.SessionID)
			}
			got = append(got, d.Envelope.Text)
		}
		return got
	}
	if got, want := texts(thread), []string{"answer latest", "answer everyone", "answer notice", "answer edit"}; !slices.Equal(got, want) {
		t.Errorf("to the thread: %q, want %q", got, want)
	}
	if got, want := texts(issue), []string{"answer named", "answer everyone", "answer delete"}; !slices.Equal(got, want) {
		t.Errorf("to the issue: %q, want %q", got, want)
	}
	if got := texts(theirs); len(got) != 0 {
		t.Errorf("another session's thread got %q", got)
	}
	all, err := st.ListDeliveries(ctx, "", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 7 {
		t.Errorf("%d deliveries in all, want 7: %+v", len(all), all)
	}
}

func (s suite) testFanOutWebhooks(t *testing.T) {
	st, _ := s.fresh(t)
	ctx := t.Context()
	past := time.Now().Add(-time.Hour)
	for _, w := range []store.Webhook{
		{ID: "all", CreatedAt: past},
		{ID: "messages", EventTypes: []string{string(envelope.EventMessage)}, CreatedAt: past},
		{ID: "only-b", Sessions: []string{"ses_b"}, CreatedAt: past},
		{ID: "later", CreatedAt: time.Now().Add(time.Hour)},
		{ID: "off", CreatedAt: past},
	} {
		w.URL, w.Secret = "https://example.test/"+w.ID, "whsec_"+w.ID
		if _, err := st.CreateWebhook(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SetWebhookHealth(ctx, "off", time.Time{}, true, "by hand"); err != nil {
		t.Fatal(err)
	}
	createSession(t, st, "ses_a")
	wake := req("ses_a", "m1", "hello")
	wake.Wake = true
	mustAppend(t, st, wake)
	mustAppend(t, st, wake)
	rest := req("ses_a", "o1", "hi")
	rest.Direction, rest.Rest = store.Outbound, true
	mustAppend(t, st, rest)
	if _, err := st.SetState(ctx, "ses_a", store.Running); err != nil {
		t.Fatal(err)
	}
	failed := req("ses_a", "x", "Webhook delivery failed")
	failed.Envelope.ID, failed.Envelope.Kind = store.DeliveryFailedPrefix+"all:dlv_1:5", envelope.KindSystem
	mustAppend(t, st, failed)

	queue := func(dest, session string) []string {
		var got []string
		for _, d := range pendingTo(t, st, envelope.Conversation{Source: store.SourceWebhook, Ref: store.WebhookRef(dest, "", session)}) {
			if d.Event != 0 {
				got = append(got, fmt.Sprintf("event after %d", d.Seq))
			} else {
				got = append(got, fmt.Sprintf("record %d", d.Seq))
			}
		}
		return got
	}
	want := []string{"event after 0", "record 1", "event after 1", "record 2", "event after 2", "event after 2", "record 3"}
	if got := queue("all", "ses_a"); !slices.Equal(got, want) {
		t.Errorf("destination all: %q, want %q (created, m1, woken, o1, rested, set running, delivery.failed)", got, want)
	}
	if got, want := queue("messages", "ses_a"), []string{"record 1", "record 2"}; !slices.Equal(got, want) {
		t.Errorf("destination messages: %q, want %q", got, want)
	}
	for _, dest := range []string{"only-b", "later", "off"} {
		if got := queue(dest, "ses_a"); len(got) != 0 {
			t.Errorf("destination %s: %q, want nothing", dest, got)
		}
	}
	createSession(t, st, "ses_b")
	if got, want := queue("only-b", "ses_b"), []string{"event after 0"}; !slices.Equal(got, want) {
		t.Errorf("destination only-b: %q, want %q", got, want)
	}
}
