package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// outputs creates session with one outbound record per conversation in
// tos, in order (record i+1 names tos[i]), and returns the records.
func outputs(t *testing.T, st store.Store, session string, tos ...envelope.Conversation) []store.Record {
	t.Helper()
	createSession(t, st, session)
	for i, c := range tos {
		appendTo(t, st, session, fmt.Sprint("out-", i+1), store.Outbound, c)
	}
	return readAll(t, st, session)
}

// delivery is a delivery of record (session, seq) to c, due at next.
func delivery(session string, seq int64, c envelope.Conversation, next time.Time) store.Delivery {
	return store.Delivery{SessionID: session, Seq: seq, To: c, NextAttempt: next}
}

func mustEnqueue(t *testing.T, st store.Store, ds ...store.Delivery) {
	t.Helper()
	if err := st.Enqueue(t.Context(), ds); err != nil {
		t.Fatalf("Enqueue(%d deliveries): %v", len(ds), err)
	}
}

// claim calls Claim and fails on a delivery returned twice or one that is
// not pending.
func claim(t *testing.T, st store.Store, owner string, n int, now, until time.Time) []store.Delivery {
	t.Helper()
	ds, err := st.Claim(t.Context(), owner, n, now, until)
	if err != nil {
		t.Fatalf("Claim(%s, %d): %v", owner, n, err)
	}
	if len(ds) > n {
		t.Fatalf("Claim(%s, %d) returned %d deliveries", owner, n, len(ds))
	}
	seen := map[string]bool{}
	for _, d := range ds {
		if seen[d.ID] {
			t.Fatalf("Claim(%s) returned delivery %s twice", owner, d.ID)
		}
		seen[d.ID] = true
		if d.Status != store.Pending {
			t.Errorf("Claim(%s) returned delivery %s with status %s", owner, d.ID, d.Status)
		}
	}
	return ds
}

// claimedSeqs describes what a claim returned as "seq→ref" strings, sorted.
func claimedSeqs(ds []store.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = fmt.Sprintf("%d→%s", d.Seq, d.To.Ref)
	}
	slices.Sort(out)
	return out
}

func checkClaimed(t *testing.T, what string, ds []store.Delivery, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := claimedSeqs(ds); !slices.Equal(got, want) {
		t.Errorf("%s: claimed %v, want %v", what, got, want)
	}
}

func mustSettle(t *testing.T, st store.Store, d store.Delivery, owner string, s store.Settlement) {
	t.Helper()
	if err := st.Settle(t.Context(), d.ID, owner, s); err != nil {
		t.Fatalf("Settle(%s (%d→%s), %s, %s): %v", d.ID, d.Seq, d.To.Ref, owner, s.Status, err)
	}
}

// listAll lists every delivery of status ("" for any) in pages of size.
func listAll(t *testing.T, st store.Store, status store.DeliveryStatus, size int) []store.Delivery {
	t.Helper()
	var all []store.Delivery
	after := ""
	for range 1000 {
		page, err := st.ListDeliveries(t.Context(), status, after, size)
		if err != nil {
			t.Fatalf("ListDeliveries(%q, after %q, %d): %v", status, after, size, err)
		}
		if len(page) > size {
			t.Fatalf("ListDeliveries(%q, after %q, %d) returned %d", status, after, size, len(page))
		}
		if len(page) == 0 {
			return all
		}
		for _, d := range page {
			if d.ID <= after {
				t.Fatalf("ListDeliveries(%q, after %q) returned id %q out of order", status, after, d.ID)
			}
			if status != "" && d.Status != status {
				t.Fatalf("ListDeliveries(%q) returned delivery %s with status %s", status, d.ID, d.Status)
			}
			after = d.ID
		}
		all = append(all, page...)
	}
	t.Fatalf("ListDeliveries(%q) did not come to an end", status)
	return nil
}

// stored returns the stored delivery of record seq of session to c.
func stored(t *testing.T, st store.Store, session string, seq int64, c envelope.Conversation) store.Delivery {
	t.Helper()
	for _, d := range listAll(t, st, "", 100) {
		if d.SessionID == session && d.Seq == seq && d.To == c {
			return d
		}
	}
	t.Fatalf("no delivery of %s/%d to %s is stored", session, seq, c.Key())
	return store.Delivery{}
}

func (s suite) testEnqueueIdempotent(t *testing.T) {
	st, _ := s.fresh(t)
	a, b := conv("a"), conv("b")
	outputs(t, st, "sess-1", a, a, a)
	before := time.Now().Add(-time.Second)
	mustEnqueue(t, st,
		delivery("sess-1", 1, a, t0),
		delivery("sess-1", 1, a, at(time.Hour)), // the same, in the same call
		delivery("sess-1", 1, b, t0),            // the same record to another conversation
		delivery("sess-1", 2, a, at(time.Minute)),
	)
	all := listAll(t, st, "", 100)
	if len(all) != 3 {
		t.Fatalf("%d deliveries stored after enqueueing 4 with one repeated, want 3: %+v", len(all), all)
	}
	first := map[string]store.Delivery{}
	for _, d := range all {
		if d.ID == "" || d.CreatedAt.Before(before) {
			t.Errorf("stored delivery %+v: want an id and a creation time of now", d)
		}
		first[fmt.Sprintf("%d→%s", d.Seq, d.To.Ref)] = d
	}
	for key, want := range map[string]store.Delivery{
		"1→a": delivery("sess-1", 1, a, t0),
		"1→b": delivery("sess-1", 1, b, t0),
		"2→a": delivery("sess-1", 2, a, at(time.Minute)),
	} {
		got := first[key]
		want.ID, want.Status, want.CreatedAt = got.ID, store.Pending, got.CreatedAt
		checkDelivery(t, "stored delivery "+key, got, want)
	}

	// Enqueueing again keeps what is stored, and adds only what is new.
	mustEnqueue(t, st, delivery("sess-1", 1, a, at(2*time.Hour)), delivery("sess-1", 3, a, t0))
	all = listAll(t, st, "", 100)
	if len(all) != 4 {
		t.Fatalf("%d deliveries stored after a repeated and a new one, want 4", len(all))
	}
	checkDelivery(t, "delivery 1→a after it was enqueued again", stored(t, st, "sess-1", 1, a), first["1→a"])
	if err := st.Enqueue(t.Context(), nil); err != nil {
		t.Errorf("Enqueue(nil): %v", err)
	}
}

func (s suite) testClaimDue(t *testing.T) {
	st, _ := s.fresh(t)
	a, b := conv("a"), conv("b")
	recs := outputs(t, st, "sess-1", a, b)
	mustEnqueue(t, st, delivery("sess-1", 1, a, t0), delivery("sess-1", 2, b, at(time.Minute)))

	ds := claim(t, st, "p1", 10, t0, at(30*time.Second))
	checkClaimed(t, "claim at t0", ds, "1→a")
	if len(ds) == 1 {
		want := stored(t, st, "sess-1", 1, a)
		checkDelivery(t, "claimed delivery", ds[0], want) // the attempt is counted in both
		if ds[0].Attempts != 1 {
			t.Errorf("claimed delivery has %d attempts, want 1", ds[0].Attempts)
		}
		if d := diffEnvelope(ds[0].Envelope, recs[0].Envelope); d != "" {
			t.Errorf("claimed delivery's envelope: %s", d)
		}
		if ds[0].Direction != recs[0].Direction {
			t.Errorf("claimed delivery's direction is %q, want the record's %q", ds[0].Direction, recs[0].Direction)
		}
		mustSettle(t, st, ds[0], "p1", store.Settlement{Status: store.Delivered, ChannelID: "posted-1"})
	}
	checkClaimed(t, "claim before b is due", claim(t, st, "p2", 10, at(59*time.Second), at(90*time.Second)))
	ds = claim(t, st, "p2", 10, at(61*time.Second), at(90*time.Second))
	checkClaimed(t, "claim once b is due", ds, "2→b")
	if len(ds) == 1 {
		if d := diffEnvelope(ds[0].Envelope, recs[1].Envelope); d != "" {
			t.Errorf("claimed delivery's envelope: %s", d)
		}
	}
	if got := claim(t, st, "p3", 0, at(time.Hour), at(2*time.Hour)); len(got) != 0 {
		t.Errorf("Claim(n 0) returned %d deliveries", len(got))
	}
}

// testClaimOrder checks that only the oldest pending delivery of a
// conversation is claimable, whether the others wait on its lease, its
// retry time, or nothing.
func (s suite) testClaimOrder(t *testing.T) {
	st, _ := s.fresh(t)
	a, b := conv("a"), conv("b")
	outputs(t, st, "sess-1", a, a, a, b)
	mustEnqueue(t, st, delivery("sess-1", 1, a, t0), delivery("sess-1", 2, a, t0))
	mustEnqueue(t, st, delivery("sess-1", 3, a, t0), delivery("sess-1", 4, b, t0))

	ds := claim(t, st, "p1", 10, t0, at(30*time.Second))
	checkClaimed(t, "first claim", ds, "1→a", "4→b")
	if t.Failed() {
		return
	}
	slices.SortFunc(ds, func(x, y store.Delivery) int { return int(x.Seq - y.Seq) })
	d1, d4 := ds[0], ds[1]
	checkClaimed(t, "claim by p2 while 1→a is leased", claim(t, st, "p2", 10, at(time.Second), at(31*time.Second)))
	mustSettle(t, st, d4, "p1", store.Settlement{Status: store.Delivered, ChannelID: "x"})
	mustSettle(t, st, d1, "p1", store.Settlement{Status: store.Pending, Error: "503", NextAttempt: at(time.Minute)})
	checkClaimed(t, "claim while 1→a waits to be retried", claim(t, st, "p2", 10, at(2*time.Second), at(32*time.Second)))

	ds = claim(t, st, "p2", 10, at(61*time.Second), at(2*time.Minute))
	checkClaimed(t, "claim once 1→a is due again", ds, "1→a")
	if len(ds) == 1 && ds[0].Attempts != 2 {
		t.Errorf("retried delivery has %d attempts, want 2", ds[0].Attempts)
	}
	for _, next := range []struct {
		want    string
		outcome store.DeliveryStatus
	}{{"1→a", store.Delivered}, {"2→a", store.Dead}, {"3→a", store.Delivered}} {
		if len(ds) != 1 || claimedSeqs(ds)[0] != next.want {
			t.Fatalf("claimed %v, want %s", claimedSeqs(ds), next.want)
		}
		mustSettle(t, st, ds[0], "p2", store.Settlement{Status: next.outcome, Error: "e"})
		ds = claim(t, st, "p2", 10, at(62*time.Second), at(2*time.Minute))
	}
	checkClaimed(t, "claim with everything settled", ds)
}

func (s suite) testClaimPaused(t *testing.T) {
	st, _ := s.fresh(t)
	a, b := conv("a"), conv("b")
	outputs(t, st, "sess-1", a, b, a)
	bd, _ := mustBind(t, st, store.Binding{SessionID: "sess-1", Conversation: a}, nil)
	if _, err := st.PauseBinding(t.Context(), bd.ID, at(10*time.Minute), "loop"); err != nil {
		t.Fatalf("PauseBinding: %v", err)
	}
	mustEnqueue(t, st, delivery("sess-1", 1, a, t0), delivery("sess-1", 2, b, t0))

	ds := claim(t, st, "p1", 10, at(time.Second), at(time.Minute))
	checkClaimed(t, "claim while a is paused (b is not bound)", ds, "2→b")
	for _, d := range ds {
		mustSettle(t, st, d, "p1", store.Settlement{Status: store.Delivered})
	}
	checkClaimed(t, "claim while a is still paused", claim(t, st, "p1", 10, at(9*time.Minute), at(10*time.Minute)))
	ds = claim(t, st, "p1", 10, at(11*time.Minute), at(12*time.Minute))
	checkClaimed(t, "claim after the pause", ds, "1→a")
	for _, d := range ds {
		mustSettle(t, st, d, "p1", store.Settlement{Status: store.Delivered})
	}

	mustEnqueue(t, st, delivery("sess-1", 3, a, t0))
	if _, err := st.PauseBinding(t.Context(), bd.ID, at(time.Hour), "loop again"); err != nil {
		t.Fatalf("PauseBinding: %v", err)
	}
	checkClaimed(t, "claim while a is paused again", claim(t, st, "p1", 10, at(12*time.Minute), at(13*time.Minute)))
	if _, err := st.PauseBinding(t.Context(), bd.ID, time.Time{}, ""); err != nil {
		t.Fatalf("PauseBinding to resume: %v", err)
	}
	checkClaimed(t, "claim after resuming by hand", claim(t, st, "p1", 10, at(12*time.Minute), at(13*time.Minute)), "3→a")
}

// testClaimBehindPaused checks that a claim finds a due delivery behind
// many due heads of paused conversations (more than a backend may look at
// in one go): paused conversations never starve the others.
func (s suite) testClaimBehindPaused(t *testing.T) {
	st, _ := s.fresh(t)
	const paused = 300
	tos := make([]envelope.Conversation, 0, paused+1)
	for i := range paused {
		tos = append(tos, conv(fmt.Sprint("paused-", i)))
	}
	free := conv("free")
	outputs(t, st, "sess-1", append(tos, free)...)
	ds := make([]store.Delivery, 0, paused+1)
	for i, c := range tos {
		bd, _ := mustBind(t, st, store.Binding{SessionID: "sess-1", Conversation: c}, nil)
		if _, err := st.PauseBinding(t.Context(), bd.ID, at(time.Hour), "loop"); err != nil {
			t.Fatalf("PauseBinding: %v", err)
		}
		ds = append(ds, delivery("sess-1", int64(i+1), c, t0))
	}
	mustEnqueue(t, st, append(ds, delivery("sess-1", paused+1, free, at(time.Second)))...)
	checkClaimed(t, "claim behind 300 paused conversations", claim(t, st, "p1", 1, at(2*time.Second), at(time.Minute)),
		fmt.Sprintf("%d→free", paused+1))
}

func (s suite) testClaimLeases(t *testing.T) {
	st, _ := s.fresh(t)
	a := conv("a")
	outputs(t, st, "sess-1", a)
	mustEnqueue(t, st, delivery("sess-1", 1, a, t0))

	ds := claim(t, st, "p1", 10, t0, at(30*time.Second))
	checkClaimed(t, "p1's claim", ds, "1→a")
	checkClaimed(t, "p2's claim while p1's lease holds", claim(t, st, "p2", 10, at(29*time.Second), at(time.Minute)))
	ds = claim(t, st, "p2", 10, at(31*time.Second), at(time.Minute))
	checkClaimed(t, "p2's claim after p1's lease expired", ds, "1→a")
	if t.Failed() {
		return
	}
	d := ds[0]
	if d.Attempts != 2 {
		t.Errorf("delivery claimed twice has %d attempts, want 2", d.Attempts)
	}
	checkLeaseLost(t, "p1's Settle after p2 took over",
		st.Settle(t.Context(), d.ID, "p1", store.Settlement{Status: store.Delivered, ChannelID: "by-p1"}))
	if got := stored(t, st, "sess-1", 1, a); got.Status != store.Pending || got.ChannelID != "" {
		t.Errorf("after a refused Settle the delivery is %s with channel id %q, want pending without", got.Status, got.ChannelID)
	}
	mustSettle(t, st, d, "p2", store.Settlement{Status: store.Delivered, ChannelID: "by-p2"})
	checkLeaseLost(t, "a second Settle", st.Settle(t.Context(), d.ID, "p2", store.Settlement{Status: store.Dead, Error: "late"}))
	want := d
	want.Status, want.ChannelID = store.Delivered, "by-p2"
	checkDelivery(t, "delivered delivery", stored(t, st, "sess-1", 1, a), want)
}

func (s suite) testSettle(t *testing.T) {
	st, _ := s.fresh(t)
	a, b, c := conv("a"), conv("b"), conv("c")
	outputs(t, st, "sess-1", a, b, c)
	mustEnqueue(t, st, delivery("sess-1", 1, a, t0), delivery("sess-1", 2, b, t0), delivery("sess-1", 3, c, t0))
	ds := claim(t, st, "p1", 10, t0, at(time.Minute))
	if len(ds) != 3 {
		t.Fatalf("claimed %v, want all three", claimedSeqs(ds))
	}
	byRef := map[string]store.Delivery{}
	for _, d := range ds {
		byRef[d.To.Ref] = d
	}
	checkLeaseLost(t, "Settle by an owner without the lease",
		st.Settle(t.Context(), byRef["a"].ID, "p2", store.Settlement{Status: store.Delivered, ChannelID: "x"}))
	if err := st.Settle(t.Context(), "dlv-unknown", "p1", store.Settlement{Status: store.Delivered}); err == nil {
		t.Error("Settle of an unknown delivery succeeded")
	}
	mustSettle(t, st, byRef["a"], "p1", store.Settlement{Status: store.Delivered, ChannelID: "ch-1"})
	mustSettle(t, st, byRef["b"], "p1", store.Settlement{Status: store.Pending, Error: "503 unavailable", NextAttempt: at(5 * time.Minute)})
	mustSettle(t, st, byRef["c"], "p1", store.Settlement{Status: store.Dead, Error: "404 gone"})

	for ref, want := range map[string]store.Delivery{
		"a": {Status: store.Delivered, ChannelID: "ch-1"},
		"b": {Status: store.Pending, LastError: "503 unavailable", NextAttempt: at(5 * time.Minute)},
		"c": {Status: store.Dead, LastError: "404 gone"},
	} {
		d := byRef[ref]
		want.ID, want.SessionID, want.Seq, want.To, want.Attempts, want.CreatedAt = d.ID, d.SessionID, d.Seq, d.To, 1, d.CreatedAt
		got := stored(t, st, "sess-1", d.Seq, d.To)
		if want.Status != store.Pending {
			want.NextAttempt = got.NextAttempt // the contract leaves it open once settled
		}
		checkDelivery(t, "delivery to "+ref+" after Settle", got, want)
	}

	checkClaimed(t, "claim before the retry is due", claim(t, st, "p2", 10, at(4*time.Minute), at(10*time.Minute)))
	ds = claim(t, st, "p2", 10, at(6*time.Minute), at(10*time.Minute))
	checkClaimed(t, "claim once the retry is due (not the delivered or dead ones)", ds, "2→b")
	for _, d := range ds {
		mustSettle(t, st, d, "p2", store.Settlement{Status: store.Delivered, ChannelID: "ch-2"})
	}
	checkClaimed(t, "claim with nothing pending", claim(t, st, "p2", 10, at(time.Hour), at(2*time.Hour)))
}

func (s suite) testListDeliveries(t *testing.T) {
	st, _ := s.fresh(t)
	const n = 7
	tos := make([]envelope.Conversation, n)
	for i := range tos {
		tos[i] = conv(fmt.Sprint("c", i+1))
	}
	outputs(t, st, "sess-1", tos...)
	for i, c := range tos {
		mustEnqueue(t, st, delivery("sess-1", int64(i+1), c, t0))
	}
	statusOf := func(seq int64) store.DeliveryStatus {
		switch seq {
		case 1, 4:
			return store.Delivered
		case 2:
			return store.Dead
		}
		return store.Pending
	}
	for _, d := range claim(t, st, "p1", n, t0, at(time.Minute)) {
		mustSettle(t, st, d, "p1", store.Settlement{Status: statusOf(d.Seq), NextAttempt: at(time.Hour)})
	}

	all := listAll(t, st, "", 100)
	if len(all) != n {
		t.Fatalf("ListDeliveries lists %d deliveries, want %d", len(all), n)
	}
	for _, size := range []int{1, 2, 3, n} {
		if paged := listAll(t, st, "", size); !slices.EqualFunc(paged, all, func(x, y store.Delivery) bool { return diffDelivery(x, y) == "" }) {
			t.Errorf("in pages of %d: %v, want %v", size, paged, all)
		}
	}
	count := map[store.DeliveryStatus]int{store.Pending: 4, store.Delivered: 2, store.Dead: 1}
	for status, want := range count {
		for _, size := range []int{1, 2, 100} {
			got := listAll(t, st, status, size)
			if len(got) != want {
				t.Errorf("ListDeliveries(%s) in pages of %d lists %d, want %d", status, size, len(got), want)
			}
			for _, d := range got {
				if statusOf(d.Seq) != status {
					t.Errorf("ListDeliveries(%s) lists the delivery of seq %d, which is %s", status, d.Seq, statusOf(d.Seq))
				}
			}
		}
	}
	if page, err := st.ListDeliveries(t.Context(), "", all[n-1].ID, 10); err != nil || len(page) != 0 {
		t.Errorf("ListDeliveries after the last id = %v, %v; want nothing", page, err)
	}
	if page, err := st.ListDeliveries(t.Context(), "", all[2].ID, 2); err != nil || len(page) != 2 || page[0].ID != all[3].ID || page[1].ID != all[4].ID {
		t.Errorf("ListDeliveries after the third id, limit 2 = %v, %v; want the fourth and fifth", page, err)
	}
}

func (s suite) testRetryDelivery(t *testing.T) {
	st, _ := s.fresh(t)
	a := conv("a")
	outputs(t, st, "sess-1", a, a)
	mustEnqueue(t, st, delivery("sess-1", 1, a, t0), delivery("sess-1", 2, a, t0))
	ds := claim(t, st, "p1", 10, t0, at(time.Minute))
	checkClaimed(t, "first claim", ds, "1→a")
	if t.Failed() {
		return
	}
	d1 := ds[0]
	mustSettle(t, st, d1, "p1", store.Settlement{Status: store.Dead, Error: "boom"})

	got, err := st.RetryDelivery(t.Context(), d1.ID, at(5*time.Minute))
	if err != nil {
		t.Fatalf("RetryDelivery of a dead delivery: %v", err)
	}
	if got.ID != d1.ID || got.Status != store.Pending || got.Attempts != 1 || !closeTime(got.NextAttempt, at(5*time.Minute)) {
		t.Errorf("RetryDelivery = %+v, want %s pending with 1 attempt, due at t0+5m", got, d1.ID)
	}
	// The retried delivery is the oldest pending one of its conversation
	// again: the next waits for it.
	checkClaimed(t, "claim before the retry is due", claim(t, st, "p1", 10, at(time.Minute), at(2*time.Minute)))
	ds = claim(t, st, "p1", 10, at(5*time.Minute), at(6*time.Minute))
	checkClaimed(t, "claim once the retry is due", ds, "1→a")
	if len(ds) == 1 && ds[0].Attempts != 2 {
		t.Errorf("retried delivery claimed with %d attempts, want 2", ds[0].Attempts)
	}
	for _, d := range ds {
		mustSettle(t, st, d, "p1", store.Settlement{Status: store.Delivered, ChannelID: "ch-1"})
	}

	// A delivered delivery can be retried too.
	if got, err := st.RetryDelivery(t.Context(), d1.ID, at(7*time.Minute)); err != nil || got.Status != store.Pending || got.Attempts != 2 {
		t.Errorf("RetryDelivery of a delivered delivery = %+v, %v; want it pending with 2 attempts", got, err)
	}
	ds = claim(t, st, "p1", 10, at(7*time.Minute), at(8*time.Minute))
	checkClaimed(t, "claim after retrying a delivered delivery", ds, "1→a")
	for _, d := range ds {
		mustSettle(t, st, d, "p1", store.Settlement{Status: store.Delivered, ChannelID: "ch-1"})
	}
	checkClaimed(t, "claim of the next", claim(t, st, "p1", 10, at(8*time.Minute), at(9*time.Minute)), "2→a")

	if _, err := st.RetryDelivery(t.Context(), "dlv-unknown", t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RetryDelivery of an unknown delivery: err = %v, want ErrNotFound", err)
	}
}

func (s suite) testPosted(t *testing.T) {
	st, _ := s.fresh(t)
	c1 := envelope.Conversation{Source: "slack", Ref: "C1/1.0"}
	c2 := envelope.Conversation{Source: "slack", Ref: "C2/2.0"}
	c3 := envelope.Conversation{Source: "slack", Ref: "C3/3.0"}
	outputs(t, st, "sess-1", c1, c2, c3)
	mustEnqueue(t, st, delivery("sess-1", 1, c1, t0), delivery("sess-1", 2, c2, t0), delivery("sess-1", 3, c3, t0))
	for _, d := range claim(t, st, "p1", 10, t0, at(time.Minute)) {
		switch d.Seq {
		case 1:
			mustSettle(t, st, d, "p1", store.Settlement{Status: store.Delivered, ChannelID: "C1:100.1"})
		case 2:
			mustSettle(t, st, d, "p1", store.Settlement{Status: store.Dead, Error: "gone", ChannelID: "C2:200.2"})
		case 3:
			mustSettle(t, st, d, "p1", store.Settlement{Status: store.Pending, Error: "429", ChannelID: "C3:300.3", NextAttempt: at(time.Hour)})
		}
	}
	for _, tc := range []struct {
		source, id string
		want       bool
	}{
		{"slack", "C1:100.1", true},
		{"github", "C1:100.1", false}, // another source's conversations
		{"slack", "C2:200.2", false},  // dead
		{"slack", "C3:300.3", false},  // pending
		{"slack", "C9:999.9", false},
		{"slack", "", false},
	} {
		got, err := st.Posted(t.Context(), tc.source, tc.id)
		if err != nil {
			t.Fatalf("Posted(%s, %q): %v", tc.source, tc.id, err)
		}
		if got != tc.want {
			t.Errorf("Posted(%s, %q) = %v, want %v", tc.source, tc.id, got, tc.want)
		}
	}
}

// testChannelIDOf checks that the channel id a settlement recorded is
// found by record and conversation, and that SetChannelID fills it only
// where there is none.
func (s suite) testChannelIDOf(t *testing.T) {
	st, _ := s.fresh(t)
	ctx := t.Context()
	c1 := envelope.Conversation{Source: "slack", Ref: "C1/1.0"}
	c2 := envelope.Conversation{Source: "email", Ref: "<a@b>"}
	outputs(t, st, "sess-1", c1, c2)
	mustEnqueue(t, st, delivery("sess-1", 1, c1, t0), delivery("sess-1", 2, c2, t0))
	for _, d := range claim(t, st, "p1", 10, t0, at(time.Minute)) {
		s := store.Settlement{Status: store.Delivered}
		if d.Seq == 1 {
			s.ChannelID = "C1:100.1"
		}
		mustSettle(t, st, d, "p1", s)
	}
	get := func(seq int64, to envelope.Conversation) string {
		t.Helper()
		id, err := st.ChannelIDOf(ctx, "sess-1", seq, to)
		if err != nil {
			t.Fatalf("ChannelIDOf(%d, %s): %v", seq, to.Key(), err)
		}
		return id
	}
	if got := get(1, c1); got != "C1:100.1" {
		t.Errorf("ChannelIDOf(1, c1) = %q, want C1:100.1", got)
	}
	for _, tc := range []struct {
		seq int64
		to  envelope.Conversation
	}{{2, c2}, {1, c2}, {3, c1}} {
		if got := get(tc.seq, tc.to); got != "" {
			t.Errorf("ChannelIDOf(%d, %s) = %q, want none", tc.seq, tc.to.Key(), got)
		}
	}
	if got, err := st.ChannelIDOf(ctx, "sess-unknown", 1, c1); err != nil || got != "" {
		t.Errorf("ChannelIDOf of an unknown session = %q, %v; want none", got, err)
	}
	// Filled where empty, kept where set, nothing where no delivery is.
	for _, tc := range []struct {
		seq int64
		to  envelope.Conversation
		id  string
	}{{2, c2, "<m2@b>"}, {1, c1, "C1:999.9"}, {3, c1, "C1:333.3"}} {
		if err := st.SetChannelID(ctx, "sess-1", tc.seq, tc.to, tc.id); err != nil {
			t.Fatalf("SetChannelID(%d, %s): %v", tc.seq, tc.to.Key(), err)
		}
	}
	if got := get(2, c2); got != "<m2@b>" {
		t.Errorf("after SetChannelID, ChannelIDOf(2, c2) = %q, want <m2@b>", got)
	}
	if got := get(1, c1); got != "C1:100.1" {
		t.Errorf("SetChannelID replaced a recorded id: ChannelIDOf(1, c1) = %q, want C1:100.1", got)
	}
	if got := get(3, c1); got != "" {
		t.Errorf("SetChannelID without a delivery made one: ChannelIDOf(3, c1) = %q", got)
	}
	if err := st.SetChannelID(ctx, "sess-1", 2, c2, "bad\x00id"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("SetChannelID with a NUL byte: err = %v, want ErrInvalid", err)
	}
}

// testRouterReopen checks that bindings, cursors with their leases and the
// outbox survive closing and reopening the store.
func (s suite) testRouterReopen(t *testing.T) {
	b := s.newBackend(t)
	st := open(t, b)
	a := conv("a")
	outputs(t, st, "sess-1", a, a)
	bd, _ := mustBind(t, st, store.Binding{SessionID: "sess-1", Conversation: a, Route: "r"}, map[string]string{"k": "v"})
	paused, err := st.PauseBinding(t.Context(), bd.ID, at(time.Hour), "loop")
	if err != nil {
		t.Fatalf("PauseBinding: %v", err)
	}
	appendN(t, st, "sess-1", 2) // records 3 and 4, work for the runtime
	claimWork(t, st, runtimeConsumer, "p1", 10, t0, at(time.Hour))
	mustAdvance(t, st, runtimeConsumer, "sess-1", "p1", 3, at(time.Hour))
	mustEnqueue(t, st, delivery("sess-1", 1, conv("b"), t0), delivery("sess-1", 2, conv("b"), t0))
	ds := claim(t, st, "p1", 10, t0, at(time.Minute))
	checkClaimed(t, "claim before closing", ds, "1→b")
	for _, d := range ds {
		mustSettle(t, st, d, "p1", store.Settlement{Status: store.Delivered, ChannelID: "ch-1"})
	}
	before := listAll(t, st, "", 100)
	if err := st.Close(); err != nil {
		t.Fatalf("close store: %v", err)
	}

	st = open(t, b)
	checkBinding(t, "binding after reopening", mustBindingFor(t, st, a), paused)
	checkWork(t, "p2's claim within p1's lease, after reopening", claimWork(t, st, runtimeConsumer, "p2", 10, at(time.Minute), at(2*time.Hour)))
	checkWork(t, "p1's claim within its own lease, after reopening", claimWork(t, st, runtimeConsumer, "p1", 10, at(time.Minute), at(2*time.Hour)))
	checkWork(t, "p2's claim after p1's lease, after reopening", claimWork(t, st, runtimeConsumer, "p2", 10, at(time.Hour), at(2*time.Hour)),
		store.Work{SessionID: "sess-1", Cursor: 3, LastSeq: 4})
	after := listAll(t, st, "", 100)
	if !slices.EqualFunc(after, before, func(x, y store.Delivery) bool { return diffDelivery(x, y) == "" }) {
		t.Errorf("deliveries after reopening:\n got  %+v\n want %+v", after, before)
	}
	if ok, err := st.Posted(t.Context(), "test", "ch-1"); err != nil || !ok {
		t.Errorf("Posted after reopening = %v, %v; want true", ok, err)
	}
	checkClaimed(t, "claim after reopening", claim(t, st, "p2", 10, at(time.Minute), at(2*time.Minute)), "2→b")
}

// testClaimTwoStores has owners on two stores on one database claim and
// settle deliveries concurrently: each delivery is claimed exactly once,
// and in order within its conversation.
func (s suite) testClaimTwoStores(t *testing.T) { s.drainTwoStores(t, false) }

// testSettleRunTwoStores does the same with each claimed delivery's
// conversation carried on in runs (store.RunSettler): each delivery is
// handed out exactly once, in order within its conversation, whether
// claimed or in a run.
func (s suite) testSettleRunTwoStores(t *testing.T) { s.drainTwoStores(t, true) }

// drainTwoStores has owners on two stores on one database drain a queue of
// deliveries to several conversations concurrently, settling each claimed
// delivery alone or, with runs, carrying its conversation on in runs of up
// to three.
func (s suite) drainTwoStores(t *testing.T, runs bool) {
	b := s.newBackend(t)
	stores := []store.Store{open(t, b), open(t, b)}
	const convs, each, ownersPerStore = 6, 5, 2
	tos := make([]envelope.Conversation, convs*each)
	for i := range tos {
		tos[i] = conv(fmt.Sprint("c", i%convs))
	}
	outputs(t, stores[0], "sess-1", tos...)
	for i, c := range tos {
		mustEnqueue(t, stores[i%2], delivery("sess-1", int64(i+1), c, t0))
	}

	var (
		mu      sync.Mutex
		claimed = map[string][]int64{} // conversation → seqs in the order claimed
		wg      sync.WaitGroup
	)
	handedOut := func(d store.Delivery) {
		mu.Lock()
		claimed[d.To.Ref] = append(claimed[d.To.Ref], d.Seq)
		mu.Unlock()
	}
	// work settles d, claimed by owner, as delivered and, with runs, the
	// runs of its conversation after it.
	work := func(st store.Store, owner string, d store.Delivery) error {
		if !runs {
			handedOut(d)
			return st.Settle(t.Context(), d.ID, owner, store.Settlement{Status: store.Delivered, ChannelID: d.ID})
		}
		rs := runSettler(t, st)
		for run := []store.Delivery{d}; len(run) > 0; {
			outcomes := make([]store.Outcome, len(run))
			for i, q := range run {
				handedOut(q)
				outcomes[i] = store.Outcome{ID: q.ID, Settlement: store.Settlement{Status: store.Delivered, ChannelID: q.ID}}
			}
			var err error
			if run, err = rs.SettleRun(t.Context(), owner, outcomes, 3, t0, at(time.Hour)); err != nil {
				return err
			}
		}
		return nil
	}
	start := make(chan struct{})
	for si, st := range stores {
		for o := range ownersPerStore {
			owner := fmt.Sprintf("store%d-owner%d", si, o)
			wg.Go(func() {
				<-start
				for {
					ds, err := st.Claim(t.Context(), owner, 2, t0, at(time.Hour))
					if err != nil {
						t.Errorf("%s: Claim: %v", owner, err)
						return
					}
					if len(ds) == 0 {
						return // the rest is done or leased to owners at work
					}
					for _, d := range ds {
						if err := work(st, owner, d); err != nil {
							t.Errorf("%s: settle %s: %v", owner, d.ID, err)
							return
						}
					}
				}
			})
		}
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}
	for c := range convs {
		ref := fmt.Sprint("c", c)
		var want []int64
		for i := c; i < len(tos); i += convs {
			want = append(want, int64(i+1))
		}
		if got := claimed[ref]; !slices.Equal(got, want) {
			t.Errorf("conversation %s: deliveries claimed in the order %v, want %v, each once", ref, got, want)
		}
	}
	delivered := listAll(t, stores[1], store.Delivered, 100)
	if len(delivered) != len(tos) {
		t.Errorf("%d deliveries delivered, want %d", len(delivered), len(tos))
	}
	for _, d := range delivered {
		if d.Attempts != 1 {
			t.Errorf("delivery %d→%s took %d attempts, want 1 (handed out once)", d.Seq, d.To.Ref, d.Attempts)
		}
	}
}

// runSettler returns st's store.RunSettler, skipping the test when the
// backend has none.
func runSettler(t *testing.T, st store.Store) store.RunSettler {
	t.Helper()
	rs, ok := st.(*closeOnce).Store.(store.RunSettler)
	if !ok {
		t.Skip("the backend has no SettleRun (an optional capability)")
	}
	return rs
}

// testSettleNext: a store with SettleRun (store.RunSettler), asked for runs
// of one, hands the settling owner its conversation's next delivery,
// leased as Claim leases it, only when Claim could hand it out then.
func (s suite) testSettleNext(t *testing.T) {
	st, _ := s.fresh(t)
	rs := runSettler(t, st)
	a, b := conv("a"), conv("b")
	recs := outputs(t, st, "sess-1", a, a, a, b, a)
	mustEnqueue(t, st, delivery("sess-1", 1, a, t0), delivery("sess-1", 2, a, t0), delivery("sess-1", 3, a, at(time.Hour)),
		delivery("sess-1", 4, b, t0))
	ds := claim(t, st, "p1", 10, at(time.Second), at(time.Minute))
	checkClaimed(t, "first claim", ds, "1→a", "4→b")
	byRef := map[string]store.Delivery{}
	for _, d := range ds {
		byRef[d.To.Ref] = d
	}
	settleNext := func(d store.Delivery, owner string, set store.Settlement, now time.Time) *store.Delivery {
		t.Helper()
		next, err := rs.SettleRun(t.Context(), owner, []store.Outcome{{ID: d.ID, Settlement: set}}, 1, now, now.Add(time.Minute))
		if err != nil {
			t.Fatalf("SettleRun(%d→%s): %v", d.Seq, d.To.Ref, err)
		}
		if len(next) > 1 {
			t.Fatalf("SettleRun(%d→%s) asked for runs of one gave %v", d.Seq, d.To.Ref, claimedSeqs(next))
		}
		if len(next) == 0 {
			return nil
		}
		return &next[0]
	}

	// Delivered: the next of a comes with it, leased and filled.
	next := settleNext(byRef["a"], "p1", store.Settlement{Status: store.Delivered}, at(2*time.Second))
	if next == nil || next.Seq != 2 || next.To != a || next.Attempts != 1 || next.Status != store.Pending {
		t.Fatalf("SettleNext after 1→a gave %+v, want 2→a with one attempt", next)
	}
	if d := diffEnvelope(next.Envelope, recs[1].Envelope); d != "" || next.Direction != recs[1].Direction {
		t.Errorf("the next delivery's envelope and direction: %s %q", d, next.Direction)
	}
	// It is leased: nobody else claims it, and the lease is p1's.
	checkClaimed(t, "claim while 2→a is leased by SettleNext", claim(t, st, "p2", 10, at(3*time.Second), at(time.Minute)))
	checkLeaseLost(t, "SettleNext by another owner", func() error {
		_, err := rs.SettleRun(t.Context(), "p2", []store.Outcome{{ID: next.ID, Settlement: store.Settlement{Status: store.Delivered}}}, 1,
			at(3*time.Second), at(time.Minute))
		return err
	}())
	// Pending again: nothing next, the delivery stays the head.
	if n := settleNext(*next, "p1", store.Settlement{Status: store.Pending, Error: "503", NextAttempt: at(4 * time.Second)}, at(3*time.Second)); n != nil {
		t.Errorf("SettleNext with a retry gave %d→%s, want nothing", n.Seq, n.To.Ref)
	}
	ds = claim(t, st, "p1", 10, at(5*time.Second), at(time.Minute))
	checkClaimed(t, "claim of the retry", ds, "2→a")
	// Dead: the next of a is not due yet, so nothing comes.
	if n := settleNext(ds[0], "p1", store.Settlement{Status: store.Dead, Error: "gone"}, at(6*time.Second)); n != nil {
		t.Errorf("SettleNext before 3→a is due gave %d→%s, want nothing", n.Seq, n.To.Ref)
	}
	// b has nothing behind it.
	if n := settleNext(byRef["b"], "p1", store.Settlement{Status: store.Delivered}, at(7*time.Second)); n != nil {
		t.Errorf("SettleNext of b's only delivery gave %d→%s", n.Seq, n.To.Ref)
	}
	// A paused conversation hands out nothing next either.
	mustEnqueue(t, st, delivery("sess-1", 5, a, t0))
	ds = claim(t, st, "p1", 10, at(2*time.Hour), at(3*time.Hour))
	checkClaimed(t, "claim of 3→a once due", ds, "3→a")
	bd, _ := mustBind(t, st, store.Binding{SessionID: "sess-1", Conversation: a}, nil)
	if _, err := st.PauseBinding(t.Context(), bd.ID, at(5*time.Hour), "loop"); err != nil {
		t.Fatalf("PauseBinding: %v", err)
	}
	if n := settleNext(ds[0], "p1", store.Settlement{Status: store.Delivered}, at(2*time.Hour+time.Second)); n != nil {
		t.Errorf("SettleNext into a paused conversation gave %d→%s", n.Seq, n.To.Ref)
	}
	checkClaimed(t, "claim after the pause", claim(t, st, "p1", 10, at(6*time.Hour), at(7*time.Hour)), "5→a")
}

// testSettleRun: SettleRun hands out a conversation's next delivery with
// the deliveries queued behind it, due, in order, and settles such a run
// in one call: each queued delivery with its attempt counted and
// recorded, a pending last one left the conversation's head; nothing when
// the lease on the run's first is not the settling owner's.
func (s suite) testSettleRun(t *testing.T) {
	st, _ := s.fresh(t)
	rs := runSettler(t, st)
	a, b := conv("a"), conv("b")
	// Four more records after a's six, to b, with no deliveries: a backend
	// that keeps the newest eight records of a session in memory (as
	// store.Tail does) holds 3 to 10, so that the run 2, 3, 4 below is
	// filled from the file and from memory.
	recs := outputs(t, st, "sess-1", a, a, a, a, a, a, b, b, b, b)
	for seq := int64(1); seq <= 5; seq++ {
		mustEnqueue(t, st, delivery("sess-1", seq, a, t0))
	}
	mustEnqueue(t, st, delivery("sess-1", 6, a, at(time.Hour)))
	ds := claim(t, st, "p1", 10, at(time.Second), at(time.Minute))
	checkClaimed(t, "first claim", ds, "1→a")
	settleRun := func(owner string, n int, now time.Time, run ...store.Outcome) []store.Delivery {
		t.Helper()
		next, err := rs.SettleRun(t.Context(), owner, run, n, now, now.Add(time.Minute))
		if err != nil {
			t.Fatalf("SettleRun(%s, %d outcomes): %v", owner, len(run), err)
		}
		return next
	}
	outcome := func(d store.Delivery, status store.DeliveryStatus) store.Outcome {
		return store.Outcome{ID: d.ID, Settlement: store.Settlement{Status: status}}
	}
	seqs := func(ds []store.Delivery) []int64 {
		out := make([]int64, len(ds))
		for i, d := range ds {
			out[i] = d.Seq
		}
		return out
	}

	// The next run: 2 leased, 3 and 4 queued behind it, in order, filled,
	// each counting the attempt to come.
	run := settleRun("p1", 3, at(2*time.Second), outcome(ds[0], store.Delivered))
	if got := seqs(run); !slices.Equal(got, []int64{2, 3, 4}) {
		t.Fatalf("the run after 1→a: seqs %v, want [2 3 4]", got)
	}
	for i, d := range run {
		if d.Attempts != 1 || d.Status != store.Pending || d.To != a {
			t.Errorf("run[%d] = %d→%s, %s, attempts %d; want pending with one attempt", i, d.Seq, d.To.Ref, d.Status, d.Attempts)
		}
		if diff := diffEnvelope(d.Envelope, recs[d.Seq-1].Envelope); diff != "" || d.Direction != recs[d.Seq-1].Direction {
			t.Errorf("run[%d]'s envelope and direction: %s %q", i, diff, d.Direction)
		}
	}
	// Nobody else gets any of them while p1 holds 2's lease.
	checkClaimed(t, "claim while the run is p1's", claim(t, st, "p2", 10, at(3*time.Second), at(time.Minute)))
	checkLeaseLost(t, "SettleRun by another owner", func() error {
		_, err := rs.SettleRun(t.Context(), "p2", []store.Outcome{outcome(run[0], store.Delivered), outcome(run[1], store.Delivered)}, 3,
			at(3*time.Second), at(time.Minute))
		return err
	}())
	if d := stored(t, st, "sess-1", 3, a); d.Status != store.Pending || d.Attempts != 0 {
		t.Errorf("after a refused run, 3→a is %s with %d attempts; want pending with none", d.Status, d.Attempts)
	}
	if _, err := rs.SettleRun(t.Context(), "p1", []store.Outcome{{ID: run[0].ID, Settlement: store.Settlement{Status: store.Pending}},
		outcome(run[1], store.Delivered)}, 3, at(3*time.Second), at(time.Minute)); err == nil {
		t.Error("SettleRun with a pending outcome before the last: no error")
	}
	if _, err := rs.SettleRun(t.Context(), "p1", nil, 3, at(3*time.Second), at(time.Minute)); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("SettleRun of no outcomes: %v, want ErrInvalid", err)
	}

	// 2 and 3 delivered (3's attempt recorded), 4 to be retried.
	third := outcome(run[1], store.Delivered)
	third.ChannelID = "ch-3"
	third.Attempt = &store.Attempt{DeliveryID: run[1].ID, SessionID: "sess-1", Seq: 3, Attempt: 1, Latency: time.Millisecond, At: at(3 * time.Second)}
	retry := store.Outcome{ID: run[2].ID, Settlement: store.Settlement{Status: store.Pending, Error: "503", NextAttempt: at(10 * time.Second)}}
	if next := settleRun("p1", 3, at(4*time.Second), outcome(run[0], store.Delivered), third, retry); len(next) != 0 {
		t.Errorf("SettleRun ending with a retry gave %v", seqs(next))
	}
	for seq, want := range map[int64]struct {
		status   store.DeliveryStatus
		attempts int
	}{2: {store.Delivered, 1}, 3: {store.Delivered, 1}, 4: {store.Pending, 1}, 5: {store.Pending, 0}} {
		if d := stored(t, st, "sess-1", seq, a); d.Status != want.status || d.Attempts != want.attempts {
			t.Errorf("after the run, %d→a is %s with %d attempts; want %s with %d", seq, d.Status, d.Attempts, want.status, want.attempts)
		}
	}
	if d := stored(t, st, "sess-1", 3, a); d.ChannelID != "ch-3" {
		t.Errorf("3→a's channel id is %q, want ch-3", d.ChannelID)
	}
	if d := stored(t, st, "sess-1", 4, a); d.LastError != "503" || !d.NextAttempt.Equal(at(10*time.Second)) {
		t.Errorf("4→a: last error %q, next attempt %v; want 503 at %v", d.LastError, d.NextAttempt, at(10*time.Second))
	}
	if got, err := st.DeliveryAttempts(t.Context(), run[1].ID, "", 10); err != nil || len(got) != 1 || got[0].Attempt != 1 {
		t.Errorf("DeliveryAttempts of 3→a = %+v, %v; want the attempt recorded with the run", got, err)
	}
	// 4 is the head, due at its retry: nothing of a before then.
	checkClaimed(t, "claim before the retry is due", claim(t, st, "p2", 10, at(5*time.Second), at(time.Minute)))
	ds = claim(t, st, "p2", 10, at(11*time.Second), at(time.Minute))
	checkClaimed(t, "claim of the retry", ds, "4→a")
	if ds[0].Attempts != 2 {
		t.Errorf("the retry of 4→a has %d attempts, want 2", ds[0].Attempts)
	}
	// The run after 4 stops before 6, which is not due.
	run = settleRun("p2", 10, at(12*time.Second), outcome(ds[0], store.Delivered))
	if got := seqs(run); !slices.Equal(got, []int64{5}) {
		t.Fatalf("the run after 4→a: seqs %v, want [5] (6 is not due)", got)
	}
	if next := settleRun("p2", 10, at(13*time.Second), outcome(run[0], store.Dead)); len(next) != 0 {
		t.Errorf("SettleRun before 6→a is due gave %v", seqs(next))
	}
	checkClaimed(t, "claim once 6→a is due", claim(t, st, "p1", 10, at(2*time.Hour), at(10*time.Hour)), "6→a")

	// Asked for nothing more (n = 0), a settle claims nothing, and the
	// conversation's next delivery is Claim's to hand out. A delivery of
	// another conversation passed as queued is left as it is.
	b, c := conv("b"), conv("c")
	outputs(t, st, "sess-2", b, b, c)
	mustEnqueue(t, st, delivery("sess-2", 1, b, t0), delivery("sess-2", 2, b, t0), delivery("sess-2", 3, c, at(5*time.Hour)))
	ds = claim(t, st, "p1", 10, at(3*time.Hour), at(4*time.Hour))
	checkClaimed(t, "claim of b", ds, "1→b")
	stranger := stored(t, st, "sess-2", 3, c)
	if next := settleRun("p1", 0, at(3*time.Hour), outcome(ds[0], store.Delivered), outcome(stranger, store.Delivered)); len(next) != 0 {
		t.Errorf("SettleRun asked for nothing more gave %v", seqs(next))
	}
	if d := stored(t, st, "sess-2", 3, c); d.Status != store.Pending || d.Attempts != 0 {
		t.Errorf("a delivery of another conversation passed as queued became %s with %d attempts; want it left pending", d.Status, d.Attempts)
	}
	checkClaimed(t, "claim after a settle that claimed nothing", claim(t, st, "p2", 10, at(3*time.Hour), at(4*time.Hour)), "2→b")
}

func (s suite) testSessionDeliveries(t *testing.T) {
	st, _ := s.fresh(t)
	a, b, c := conv("a"), conv("b"), conv("c")
	outputs(t, st, "sess-1", a, b, a)
	outputs(t, st, "sess-2", c)
	mustEnqueue(t, st, delivery("sess-1", 1, a, t0), delivery("sess-1", 2, b, t0), delivery("sess-1", 3, a, t0),
		delivery("sess-2", 1, c, t0))
	for _, d := range claim(t, st, "p1", 10, t0, at(time.Minute)) {
		if d.SessionID == "sess-1" && d.Seq == 1 {
			mustSettle(t, st, d, "p1", store.Settlement{Status: store.Delivered, ChannelID: "ch-1"})
		}
	}
	list := func(f store.DeliveryFilter, size int) []string {
		t.Helper()
		var got []string
		after := ""
		for range 100 {
			page, err := st.SessionDeliveries(t.Context(), f, after, size)
			if err != nil {
				t.Fatalf("SessionDeliveries(%+v, after %q, %d): %v", f, after, size, err)
			}
			if len(page) > size {
				t.Fatalf("SessionDeliveries(%+v, %d) returned %d", f, size, len(page))
			}
			if len(page) == 0 {
				return got
			}
			for _, d := range page {
				if d.ID <= after {
					t.Fatalf("SessionDeliveries(%+v) returned id %q out of order", f, d.ID)
				}
				after = d.ID
				got = append(got, fmt.Sprintf("%s/%d→%s", d.SessionID, d.Seq, d.To.Ref))
			}
		}
		t.Fatalf("SessionDeliveries(%+v) did not come to an end", f)
		return nil
	}
	for _, tc := range []struct {
		f    store.DeliveryFilter
		want []string
	}{
		{store.DeliveryFilter{SessionID: "sess-1"}, []string{"sess-1/1→a", "sess-1/2→b", "sess-1/3→a"}},
		{store.DeliveryFilter{SessionID: "sess-1", To: a}, []string{"sess-1/1→a", "sess-1/3→a"}},
		{store.DeliveryFilter{SessionID: "sess-1", Status: store.Delivered}, []string{"sess-1/1→a"}},
		{store.DeliveryFilter{SessionID: "sess-1", Status: store.Pending, To: a}, []string{"sess-1/3→a"}},
		{store.DeliveryFilter{SessionID: "sess-1", Status: store.Dead}, nil},
		{store.DeliveryFilter{SessionID: "sess-1", To: c}, nil},
		{store.DeliveryFilter{SessionID: "sess-2"}, []string{"sess-2/1→c"}},
		{store.DeliveryFilter{SessionID: "sess-unknown"}, nil},
	} {
		for _, size := range []int{1, 2, 100} {
			if got := list(tc.f, size); !slices.Equal(got, tc.want) {
				t.Errorf("SessionDeliveries(%+v) in pages of %d = %q, want %q", tc.f, size, got, tc.want)
			}
		}
	}
	for _, f := range []store.DeliveryFilter{
		{},
		{SessionID: "sess-1", Status: "lost"},
		{SessionID: "sess-1", To: envelope.Conversation{Source: "test"}},
		{SessionID: "sess-\x00"},
	} {
		if _, err := st.SessionDeliveries(t.Context(), f, "", 10); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("SessionDeliveries(%+v) = %v, want ErrInvalid", f, err)
		}
	}
}

func (s suite) testDeliveryAttempts(t *testing.T) {
	st, _ := s.fresh(t)
	a, b := conv("a"), conv("b")
	outputs(t, st, "sess-1", a, b)
	mustEnqueue(t, st, delivery("sess-1", 1, a, t0), delivery("sess-1", 2, b, t0))
	var first, other store.Delivery
	for _, d := range claim(t, st, "p1", 10, t0, at(time.Minute)) {
		if d.Seq == 1 {
			first = d
		} else {
			other = d
		}
	}
	attempt := func(d store.Delivery, n int, errText string) *store.Attempt {
		return &store.Attempt{DeliveryID: d.ID, SessionID: d.SessionID, Seq: d.Seq, Attempt: n,
			Latency: time.Duration(n) * time.Millisecond, Error: errText, At: at(time.Duration(n) * time.Second)}
	}
	mustSettle(t, st, first, "p1", store.Settlement{Status: store.Pending, Error: "ratelimited",
		NextAttempt: at(time.Second), Attempt: attempt(first, 1, "ratelimited")})
	mustSettle(t, st, other, "p1", store.Settlement{Status: store.Delivered, ChannelID: "ch-b"})
	ds := claim(t, st, "p2", 10, at(2*time.Second), at(time.Minute))
	if len(ds) != 1 || ds[0].ID != first.ID {
		t.Fatalf("claimed %v, want the retry of seq 1", claimedSeqs(ds))
	}
	mustSettle(t, st, ds[0], "p2", store.Settlement{Status: store.Delivered, ChannelID: "ch-a", Attempt: attempt(first, 2, "")})

	got, err := st.DeliveryAttempts(t.Context(), first.ID, "", 10)
	if err != nil {
		t.Fatalf("DeliveryAttempts: %v", err)
	}
	if len(got) != 2 || got[0].Attempt != 2 || got[1].Attempt != 1 {
		t.Fatalf("DeliveryAttempts = %+v, want attempts 2 then 1", got)
	}
	if a := got[1]; a.DeliveryID != first.ID || a.WebhookID != "" || a.Error != "ratelimited" || a.Latency != time.Millisecond ||
		!a.At.Equal(at(time.Second)) || a.ID == "" || a.SessionID != "sess-1" || a.Seq != 1 {
		t.Errorf("the first attempt was stored as %+v", a)
	}
	if page, err := st.DeliveryAttempts(t.Context(), first.ID, got[0].ID, 10); err != nil || len(page) != 1 || page[0].ID != got[1].ID {
		t.Errorf("DeliveryAttempts before the newest = %+v, %v; want the first attempt", page, err)
	}
	for _, id := range []string{other.ID, "dlv-unknown"} {
		if page, err := st.DeliveryAttempts(t.Context(), id, "", 10); err != nil || len(page) != 0 {
			t.Errorf("DeliveryAttempts(%s) = %+v, %v; want none", id, page, err)
		}
	}
}
