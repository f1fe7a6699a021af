package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// runRouter runs the subtests of the router's storage (store.Bindings,
// store.Cursors, store.Outbox).
func (s suite) runRouter(t *testing.T, cfg config) {
	t.Run("Bindings", func(t *testing.T) {
		t.Run("BindCreatesSession", s.testBindCreatesSession)
		t.Run("BindExistingSession", s.testBindExistingSession)
		t.Run("BoundConversationKeepsItsSession", s.testBindKeepsSession)
		t.Run("ManyPerSession", s.testBindingsPerSession)
		t.Run("UnknownIsNotFound", s.testBindingNotFound)
		t.Run("ConcurrentBind50", s.testBindConcurrent)
		t.Run("PauseAndResume", s.testPauseBinding)
		t.Run("LatestInbound", s.testLatestInbound)
	})
	t.Run("Cursors", func(t *testing.T) {
		t.Run("WorkPastTheCursor", s.testClaimWorkPastCursor)
		t.Run("NoTurnIsNoWork", s.testNoTurnIsNoWork)
		t.Run("Limit", s.testClaimWorkLimit)
		t.Run("Leases", s.testClaimWorkLeases)
		t.Run("AdvanceNeverMovesBack", s.testAdvanceNeverBack)
		t.Run("AdvanceExtendsAndReleases", s.testAdvanceLease)
		t.Run("AdvanceWithoutLease", s.testAdvanceWithoutLease)
		t.Run("ConsumersAreIndependent", s.testConsumersIndependent)
	})
	t.Run("Outbox", func(t *testing.T) {
		t.Run("EnqueueIdempotent", s.testEnqueueIdempotent)
		t.Run("ClaimDueOnly", s.testClaimDue)
		t.Run("OrderWithinConversation", s.testClaimOrder)
		t.Run("PausedConversation", s.testClaimPaused)
		t.Run("Leases", s.testClaimLeases)
		t.Run("Settle", s.testSettle)
		t.Run("SettleNext", s.testSettleNext)
		t.Run("SettleRun", s.testSettleRun)
		t.Run("ListPagination", s.testListDeliveries)
		t.Run("Retry", s.testRetryDelivery)
		t.Run("Posted", s.testPosted)
		t.Run("ClaimBehindPaused", s.testClaimBehindPaused)
		t.Run("ChannelIDOf", s.testChannelIDOf)
		t.Run("SessionDeliveries", s.testSessionDeliveries)
		t.Run("DeliveryAttempts", s.testDeliveryAttempts)
	})
	t.Run("Durability", func(t *testing.T) {
		t.Run("ReopenKeepsRouterState", s.testRouterReopen)
	})
	t.Run("Shared", func(t *testing.T) {
		if !cfg.shared {
			t.Skip("the backend does not support two stores on one database")
		}
		t.Run("ClaimWorkTwoStores", s.testClaimWorkTwoStores)
		t.Run("ClaimTwoStores", s.testClaimTwoStores)
		t.Run("SettleRunTwoStores", s.testSettleRunTwoStores)
	})
}

// t0 is the clock the router subtests start from: they pass explicit times,
// never the wall clock, and keep at least a second between times compared,
// so that backends keeping microseconds agree.
var t0 = time.Date(2026, 6, 18, 12, 0, 0, 0, time.UTC)

// at returns t0 plus d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// conv returns a conversation of the test channel.
func conv(ref string) envelope.Conversation {
	return envelope.Conversation{Source: "test", Ref: ref}
}

// appendTo appends a record with key to session, inbound or outbound, naming
// conversation c (none when zero), and returns its seq.
func appendTo(t *testing.T, st store.Store, session, key string, dir store.Direction, c envelope.Conversation) int64 {
	t.Helper()
	r := req(session, key, "text of "+key)
	r.Direction = dir
	r.Envelope.Conversation = c
	return mustAppend(t, st, r).Record.Seq
}

// appendN appends n inbound records to session and returns the last seq.
func appendN(t *testing.T, st store.Store, session string, n int) int64 {
	t.Helper()
	var seq int64
	for i := range n {
		seq = appendTo(t, st, session, fmt.Sprintf("%s-%d", session, i), store.Inbound, conv("thread-1"))
	}
	return seq
}

// diffBinding describes how got differs from want, or returns "". Times
// agree to the microsecond.
func diffBinding(got, want store.Binding) string {
	switch {
	case got.ID != want.ID:
		return fmt.Sprintf("id %q, want %q", got.ID, want.ID)
	case got.SessionID != want.SessionID:
		return fmt.Sprintf("session %q, want %q", got.SessionID, want.SessionID)
	case got.Conversation != want.Conversation:
		return fmt.Sprintf("conversation %+v, want %+v", got.Conversation, want.Conversation)
	case got.Route != want.Route:
		return fmt.Sprintf("route %q, want %q", got.Route, want.Route)
	case got.PausedUntil.IsZero() != want.PausedUntil.IsZero() || !closeTime(got.PausedUntil, want.PausedUntil):
		return fmt.Sprintf("paused until %s, want %s", got.PausedUntil, want.PausedUntil)
	case got.PausedReason != want.PausedReason:
		return fmt.Sprintf("paused reason %q, want %q", got.PausedReason, want.PausedReason)
	case !closeTime(got.CreatedAt, want.CreatedAt):
		return fmt.Sprintf("created at %s, want %s", got.CreatedAt, want.CreatedAt)
	}
	return ""
}

func checkBinding(t *testing.T, what string, got, want store.Binding) {
	t.Helper()
	if d := diffBinding(got, want); d != "" {
		t.Errorf("%s: %s", what, d)
	}
}

// diffDelivery describes how got differs from want in what the store
// decides and keeps (not UpdatedAt or Envelope), or returns "".
func diffDelivery(got, want store.Delivery) string {
	switch {
	case got.ID != want.ID:
		return fmt.Sprintf("id %q, want %q", got.ID, want.ID)
	case got.SessionID != want.SessionID || got.Seq != want.Seq:
		return fmt.Sprintf("record %s/%d, want %s/%d", got.SessionID, got.Seq, want.SessionID, want.Seq)
	case got.To != want.To:
		return fmt.Sprintf("to %+v, want %+v", got.To, want.To)
	case got.Status != want.Status:
		return fmt.Sprintf("status %q, want %q", got.Status, want.Status)
	case got.Attempts != want.Attempts:
		return fmt.Sprintf("attempts %d, want %d", got.Attempts, want.Attempts)
	case got.NextAttempt.IsZero() != want.NextAttempt.IsZero() || !closeTime(got.NextAttempt, want.NextAttempt):
		return fmt.Sprintf("next attempt %s, want %s", got.NextAttempt, want.NextAttempt)
	case got.LastError != want.LastError:
		return fmt.Sprintf("last error %q, want %q", got.LastError, want.LastError)
	case got.ChannelID != want.ChannelID:
		return fmt.Sprintf("channel id %q, want %q", got.ChannelID, want.ChannelID)
	case !closeTime(got.CreatedAt, want.CreatedAt):
		return fmt.Sprintf("created at %s, want %s", got.CreatedAt, want.CreatedAt)
	}
	return ""
}

func checkDelivery(t *testing.T, what string, got, want store.Delivery) {
	t.Helper()
	if d := diffDelivery(got, want); d != "" {
		t.Errorf("%s: %s", what, d)
	}
}
