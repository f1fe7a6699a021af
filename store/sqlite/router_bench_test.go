package sqlite_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/sqlite"
)

// parallel runs fn(i) for i in [0, n) on 64 goroutines, so that the writes
// share transactions, and fails b on the first error.
func parallel(b *testing.B, n int, fn func(i int) error) {
	b.Helper()
	var wg sync.WaitGroup
	next := make(chan int)
	for range 64 {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
}

// BenchmarkClaimWork measures one round of the router's log follower among
// many idle sessions whose cursors are at the end of their logs: an append
// to one session, ClaimWork, and the Advance that releases it. claim-µs is
// ClaimWork's share. It must not grow with the number of idle sessions.
func BenchmarkClaimWork(b *testing.B) {
	for _, idle := range []int{100, 10000} {
		b.Run(fmt.Sprint("idle=", idle), func(b *testing.B) { benchmarkClaimWork(b, idle) })
	}
}

func benchmarkClaimWork(b *testing.B, idle int) {
	s := openTemp(b, sqlite.Options{})
	ctx := b.Context()
	t0 := time.Date(2026, 6, 18, 12, 0, 0, 0, time.UTC)
	parallel(b, idle, func(i int) error {
		id := fmt.Sprint("sess-", i)
		if _, _, err := s.CreateSession(ctx, id, nil); err != nil {
			return err
		}
		_, err := s.Append(ctx, inbound(id, "first"))
		return err
	})
	works, err := s.ClaimWork(ctx, "runtime", "p1", idle, t0, t0.Add(time.Hour))
	if err != nil || len(works) != idle {
		b.Fatalf("ClaimWork of the idle sessions: %d, %v", len(works), err)
	}
	parallel(b, idle, func(i int) error {
		return s.Advance(ctx, "runtime", works[i].SessionID, "p1", works[i].LastSeq, time.Time{})
	})

	var claiming time.Duration
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprint("sess-", i%idle)
		if _, err := s.Append(ctx, inbound(id, fmt.Sprint("k", i))); err != nil {
			b.Fatal(err)
		}
		now := t0.Add(time.Duration(i) * time.Millisecond)
		start := time.Now()
		works, err := s.ClaimWork(ctx, "runtime", "p1", 16, now, now.Add(time.Minute))
		claiming += time.Since(start)
		if err != nil || len(works) != 1 || works[0].SessionID != id {
			b.Fatalf("ClaimWork = %+v, %v; want %s alone", works, err, id)
		}
		if err := s.Advance(ctx, "runtime", id, "p1", works[0].LastSeq, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(claiming.Microseconds())/float64(b.N), "claim-µs/op")
}

// BenchmarkClaim measures one round of the delivery workers beside a
// backlog of pending deliveries that are not due: 1000 conversations
// waiting to retry, one of them with the rest of the backlog queued behind
// its head. Each round enqueues a delivery to a fresh conversation, claims
// it and settles it. claim-µs is Claim's share. It must not grow with the
// backlog.
func BenchmarkClaim(b *testing.B) {
	for _, backlog := range []int{0, 10000} {
		b.Run(fmt.Sprint("backlog=", backlog), func(b *testing.B) { benchmarkClaim(b, backlog) })
	}
}

// oneSession opens a store holding the session "sess", and gives the
// benchmark's context and a fixed time to start the clock at.
func oneSession(b *testing.B) (*sqlite.Store, context.Context, time.Time) {
	s := openTemp(b, sqlite.Options{})
	if _, _, err := s.CreateSession(b.Context(), "sess", nil); err != nil {
		b.Fatal(err)
	}
	return s, b.Context(), time.Date(2026, 6, 18, 12, 0, 0, 0, time.UTC)
}

func benchmarkClaim(b *testing.B, backlog int) {
	s, ctx, t0 := oneSession(b)
	parallel(b, max(backlog, 1), func(i int) error {
		_, err := s.Append(ctx, inbound("sess", fmt.Sprint("out-", i)))
		return err
	})
	later := t0.Add(24 * time.Hour)
	ds := make([]store.Delivery, backlog)
	for i := range ds {
		ref := "stuck-0"
		if i < 1000 {
			ref = fmt.Sprint("stuck-", i)
		}
		ds[i] = store.Delivery{SessionID: "sess", Seq: int64(i + 1), To: envelope.Conversation{Source: "test", Ref: ref}, NextAttempt: later}
	}
	if err := s.Enqueue(ctx, ds); err != nil {
		b.Fatal(err)
	}

	var claiming time.Duration
	b.ResetTimer()
	for i := range b.N {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		d := store.Delivery{SessionID: "sess", Seq: 1, To: envelope.Conversation{Source: "test", Ref: fmt.Sprint("fresh-", i)}, NextAttempt: now}
		if err := s.Enqueue(ctx, []store.Delivery{d}); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		got, err := s.Claim(ctx, "p1", 16, now, now.Add(time.Minute))
		claiming += time.Since(start)
		if err != nil || len(got) != 1 || got[0].To != d.To {
			b.Fatalf("Claim = %+v, %v; want the fresh delivery alone", got, err)
		}
		if err := s.Settle(ctx, got[0].ID, "p1", store.Settlement{Status: store.Delivered, ChannelID: got[0].ID}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(claiming.Microseconds())/float64(b.N), "claim-µs/op")
}

// BenchmarkSettleRun measures the run path of a webhook destination's
// conversation: four deliveries queued, the head claimed, then one
// SettleRun that settles it and hands out the other three, and one that
// settles those. settle-µs is the two SettleRuns' share of the time, mostly
// their fsyncs; settle-cpu-µs their share of the process's CPU time, mostly
// the writer's. With records=tail
// the records are the session's newest, which the store keeps in memory;
// with records=file each round appends eight more records after them, so
// that they are read from the file.
func BenchmarkSettleRun(b *testing.B) {
	for _, fromFile := range []bool{false, true} {
		name := "records=tail"
		if fromFile {
			name = "records=file"
		}
		b.Run(name, func(b *testing.B) { benchmarkSettleRun(b, fromFile) })
	}
}

func benchmarkSettleRun(b *testing.B, fromFile bool) {
	s, ctx, t0 := oneSession(b)
	const run = 4
	var (
		seq      int64
		settling time.Duration
		cpu      time.Duration
	)
	appendN := func(i, n int) {
		for j := range n {
			if _, err := s.Append(ctx, inbound("sess", fmt.Sprint("m-", i, "-", j))); err != nil {
				b.Fatal(err)
			}
			seq++
		}
	}
	delivered := func(ds []store.Delivery) []store.Outcome {
		out := make([]store.Outcome, len(ds))
		for i, d := range ds {
			out[i] = store.Outcome{ID: d.ID, Settlement: store.Settlement{Status: store.Delivered}}
		}
		return out
	}
	b.ResetTimer()
	for i := range b.N {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		to := envelope.Conversation{Source: "test", Ref: fmt.Sprint("c-", i)}
		appendN(i, run)
		ds := make([]store.Delivery, run)
		for j := range ds {
			ds[j] = store.Delivery{SessionID: "sess", Seq: seq - run + 1 + int64(j), To: to, NextAttempt: now}
		}
		if err := s.Enqueue(ctx, ds); err != nil {
			b.Fatal(err)
		}
		if fromFile {
			appendN(-i-1, 8)
		}
		head, err := s.Claim(ctx, "p1", 1, now, now.Add(time.Minute))
		if err != nil || len(head) != 1 {
			b.Fatalf("Claim = %v, %v; want the head", head, err)
		}
		start, startCPU := time.Now(), cpuTime()
		rest, err := s.SettleRun(ctx, "p1", delivered(head), 16, now, now.Add(time.Minute))
		if err != nil || len(rest) != run-1 || rest[0].Envelope.ID == "" {
			b.Fatalf("SettleRun = %d deliveries, %v; want %d with envelopes", len(rest), err, run-1)
		}
		if rest, err = s.SettleRun(ctx, "p1", delivered(rest), 16, now, now.Add(time.Minute)); err != nil || len(rest) != 0 {
			b.Fatalf("SettleRun = %d deliveries, %v; want none", len(rest), err)
		}
		settling += time.Since(start)
		cpu += cpuTime() - startCPU
	}
	b.ReportMetric(float64(settling.Microseconds())/float64(b.N), "settle-µs")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "settle-cpu-µs")
}
