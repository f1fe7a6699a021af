package sqlite

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

func newTestStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "switchboard.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// mustOp returns a function that unwraps an op constructor's result.
func mustOp(t *testing.T) func(writeOp, error) writeOp {
	return func(op writeOp, err error) writeOp {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return op
	}
}

func appendReq(session, id, text string) store.AppendRequest {
	return store.AppendRequest{SessionID: session, Direction: store.Inbound, Envelope: envelope.Envelope{
		ID: id, Source: "test", Kind: envelope.KindMessage, Text: text, TS: time.Now(),
		Actor: envelope.Actor{ID: "test:ada", Type: envelope.Human},
	}}
}

// TestBatchOutcomes commits hand-made batches, so that the cases that only
// occur when requests meet in one transaction are certain to occur.
func TestBatchOutcomes(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	must := mustOp(t)
	res, err := s.commitBatch(ctx, []writeOp{
		must(appendOp(appendReq("late", "test:0", "before the session"))),
		must(createSessionOp("late", nil)),
		must(appendOp(appendReq("late", "test:1", "hello"))),
		must(appendOp(appendReq("late", "test:1", "hello"))),       // replay in the batch
		must(appendOp(appendReq("late", "test:1", "other text"))),  // conflict in the batch
		must(appendOp(appendReq("late", "test:2", "second"))),      // next seq
		must(createSessionOp("late", map[string]string{"a": "b"})), // exists now
	})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res[0].Err, store.ErrNotFound) {
		t.Errorf("append before the session exists: %v, want ErrNotFound", res[0].Err)
	}
	if res[1].Err != nil || !res[1].Val.ok {
		t.Errorf("create session: %+v", res[1])
	}
	first := res[2].Val.append
	if res[2].Err != nil || !first.Created || first.Record.Seq != 1 {
		t.Errorf("first append: %+v, %v", first, res[2].Err)
	}
	if r := res[3].Val.append; res[3].Err != nil || r.Created || r.Record.Seq != 1 {
		t.Errorf("replay in the same batch: %+v, %v; want the original", r, res[3].Err)
	}
	if r := res[4].Val.append; !errors.Is(res[4].Err, store.ErrConflict) || r.Record.Envelope.Text != "hello" {
		t.Errorf("conflict in the same batch: %+v, %v; want ErrConflict with the original", r, res[4].Err)
	}
	if r := res[5].Val.append; res[5].Err != nil || r.Record.Seq != 2 {
		t.Errorf("second append: %+v, %v; want seq 2", r, res[5].Err)
	}
	if r := res[6].Val; res[6].Err != nil || r.ok || r.val.(store.Session).LastSeq != 2 || len(r.val.(store.Session).Metadata) != 0 {
		t.Errorf("create of the existing session: %+v, %v; want it unchanged with last seq 2", r, res[6].Err)
	}
}

// TestBatchFailureIsolated checks that one request whose statement fails does
// not fail the others of its batch.
func TestBatchFailureIsolated(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	must := mustOp(t)
	if _, _, err := s.CreateSession(ctx, "sess", nil); err != nil {
		t.Fatal(err)
	}
	tok := store.Token{ID: "tok", Name: "t", Scopes: []store.Scope{store.ScopeAdmin}}
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	res, err := s.commitBatch(ctx, []writeOp{
		must(appendOp(appendReq("sess", "test:1", "one"))),
		must(createTokenOp(tok)), // the same id again: a constraint error
		must(appendOp(appendReq("sess", "test:2", "two"))),
		must(createTokenOp(tok)), // and once more
		must(createTokenOp(store.Token{ID: "tok-2", Hash: [32]byte{2}})),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{1, 3} {
		if res[i].Err == nil {
			t.Errorf("duplicate token id (op %d): no error", i)
		}
	}
	if res[4].Err != nil {
		t.Errorf("new token beside failing ones: %v", res[4].Err)
	}
	if n, err := s.CountTokens(ctx); err != nil || n != 2 {
		t.Errorf("CountTokens = %d, %v; want 2", n, err)
	}
	for _, i := range []int{0, 2} {
		if r := res[i].Val.append; res[i].Err != nil || !r.Created {
			t.Errorf("append %d beside a failing request: %+v, %v", i, r, res[i].Err)
		}
	}
	recs, err := s.Read(ctx, "sess", 0, 10)
	if err != nil || len(recs) != 2 || recs[0].Seq != 1 || recs[1].Seq != 2 {
		t.Fatalf("log after the isolated failure: %+v, %v; want seqs 1 and 2", recs, err)
	}
}

// TestWebhookWriteRefreshesDestinations checks that the writer's cached
// webhook destinations, which no other connection's commit invalidates
// here, are read again after each webhook write.
func TestWebhookWriteRefreshesDestinations(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	if _, _, err := s.CreateSession(ctx, "sess", nil); err != nil {
		t.Fatal(err)
	}
	appendSeq := func(id string) int64 {
		t.Helper()
		res, err := s.Append(ctx, appendReq("sess", id, "hello"))
		if err != nil {
			t.Fatal(err)
		}
		return res.Record.Seq
	}
	// Seqs of the records with a delivery to the destination.
	delivered := func() []int64 {
		t.Helper()
		ds, err := s.ListDeliveries(ctx, "", "", 100)
		if err != nil {
			t.Fatal(err)
		}
		var seqs []int64
		for _, d := range ds {
			if d.To.Source == store.SourceWebhook && d.Event == 0 {
				seqs = append(seqs, d.Seq)
			}
		}
		return seqs
	}
	appendSeq("test:1") // the writer reads the destinations: none
	hook := store.Webhook{ID: "hook", URL: "https://example.test/hook", Secret: "whsec_hook", CreatedAt: time.Now().Add(-time.Hour)}
	if _, err := s.CreateWebhook(ctx, hook); err != nil {
		t.Fatal(err)
	}
	created := appendSeq("test:2")
	if got := delivered(); !slices.Equal(got, []int64{created}) {
		t.Errorf("after CreateWebhook: deliveries of records %v, want %v", got, []int64{created})
	}
	if err := s.SetWebhookHealth(ctx, "hook", time.Time{}, true, "by hand"); err != nil {
		t.Fatal(err)
	}
	appendSeq("test:3")
	if got := delivered(); !slices.Equal(got, []int64{created}) {
		t.Errorf("after disabling the destination: deliveries of records %v, want %v", got, []int64{created})
	}
}

// BenchmarkCommitBatch measures the writer alone: one transaction of 32
// appends to 32 different sessions per iteration, as the group committer
// would hand it over, without the goroutine handoffs around it. The
// sync=off variant (not durable, never used by Open) shows how much of the
// time is the fsync.
func BenchmarkCommitBatch(b *testing.B) {
	for _, sync := range []string{"full", "off"} {
		b.Run("sync="+sync, func(b *testing.B) { benchmarkCommitBatch(b, sync) })
	}
}

func benchmarkCommitBatch(b *testing.B, sync string) {
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "switchboard.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if _, err := s.wconn.ExecContext(b.Context(), "PRAGMA synchronous = "+sync); err != nil {
		b.Fatal(err)
	}
	const sessions, batch = 64, 32
	for i := range sessions {
		if _, _, err := s.CreateSession(b.Context(), fmt.Sprint("sess-", i), nil); err != nil {
			b.Fatal(err)
		}
	}
	ops := make([]writeOp, batch)
	n := 0
	for b.Loop() {
		for i := range ops {
			n++
			req := appendReq(fmt.Sprint("sess-", n%sessions), fmt.Sprint("test:", n), "also check the CI config")
			req.Envelope.Refs = envelope.Refs{envelope.RefRepo: "octo/cat"}
			req.Envelope.Raw = []byte(`{"text":"also check the CI config","idempotency_key":"` + fmt.Sprint(n) + `"}`)
			if ops[i], err = appendOp(req); err != nil {
				b.Fatal(err)
			}
		}
		res, err := s.commitBatch(b.Context(), ops)
		if err != nil || res[0].Err != nil {
			b.Fatal(err, res[0].Err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*batch), "µs/append")
}
