package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/cputime"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/sqlite"
	"github.com/switchboardhq/switchboard/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		path := filepath.Join(t.TempDir(), "switchboard.db")
		return func() (store.Store, error) {
			return sqlite.Open(context.Background(), path, sqlite.Options{})
		}
	}, storetest.Shared())
}

func openPath(tb testing.TB, path string, opts sqlite.Options) *sqlite.Store {
	tb.Helper()
	s, err := sqlite.Open(context.Background(), path, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

func openTemp(tb testing.TB, opts sqlite.Options) *sqlite.Store {
	tb.Helper()
	return openPath(tb, filepath.Join(tb.TempDir(), "switchboard.db"), opts)
}

func message(key string) envelope.Envelope {
	return envelope.Envelope{
		ID:           "client:" + key,
		Source:       "client",
		Kind:         envelope.KindMessage,
		Actor:        envelope.Actor{ID: "client:user-7", Display: "Ada", Type: envelope.Human},
		Conversation: envelope.Conversation{Source: "client", Ref: "thread-42"},
		Text:         "also check the CI config",
		Refs:         envelope.Refs{envelope.RefRepo: "octo/cat", envelope.RefPR: "42"},
		TS:           time.Now(),
		Raw:          []byte(`{ "text": "also check the CI config", "idempotency_key": "` + key + `" }`),
	}
}

func inbound(session, key string) store.AppendRequest {
	return store.AppendRequest{SessionID: session, Direction: store.Inbound, Envelope: message(key)}
}

// TestGroupCommit shows that concurrent appends share transactions: with
// many appenders the committed batches average well above one write.
func TestGroupCommit(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := openTemp(t, sqlite.Options{Metrics: store.NewMetrics(reg)})
	ctx := t.Context()
	if _, _, err := s.CreateSession(ctx, "sess", nil); err != nil {
		t.Fatal(err)
	}
	const writers, each = 64, 20
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			<-start
			for i := range each {
				if _, err := s.Append(ctx, inbound("sess", fmt.Sprintf("%d-%d", w, i))); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()

	batch := histogram(t, reg, "switchboard_store_commit_batch_size")
	appends := histogram(t, reg, "switchboard_store_append_seconds")
	if appends.GetSampleCount() != writers*each {
		t.Errorf("append latency samples = %d, want %d", appends.GetSampleCount(), writers*each)
	}
	// The batch histogram counts the CreateSession too.
	if got, want := batch.GetSampleSum(), float64(writers*each+1); got != want {
		t.Errorf("writes over all batches = %v, want %v", got, want)
	}
	mean := batch.GetSampleSum() / float64(batch.GetSampleCount())
	t.Logf("%d appends from %d goroutines in %d transactions (mean batch %.1f)",
		writers*each, writers, batch.GetSampleCount(), mean)
	if mean < 2 {
		t.Errorf("mean batch size %.2f with %d concurrent appenders: appends are not grouped", mean, writers)
	}
}

// TestMaxBatch checks that no transaction holds more writes than MaxBatch.
func TestMaxBatch(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := openTemp(t, sqlite.Options{Metrics: store.NewMetrics(reg), MaxBatch: 2})
	ctx := t.Context()
	if _, _, err := s.CreateSession(ctx, "sess", nil); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			if _, err := s.Append(ctx, inbound("sess", fmt.Sprint(i))); err != nil {
				t.Errorf("Append: %v", err)
			}
		})
	}
	wg.Wait()
	h := histogram(t, reg, "switchboard_store_commit_batch_size")
	for _, b := range h.GetBucket() {
		if b.GetUpperBound() == 2 && b.GetCumulativeCount() != h.GetSampleCount() {
			t.Errorf("%d of %d batches held more than 2 writes", h.GetSampleCount()-b.GetCumulativeCount(), h.GetSampleCount())
		}
	}
}

// TestTwoStoresAlternate appends to one session through two stores in turn:
// each must see the other's records, so that seqs stay contiguous.
func TestTwoStoresAlternate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "switchboard.db")
	stores := []*sqlite.Store{openPath(t, path, sqlite.Options{}), openPath(t, path, sqlite.Options{})}
	ctx := t.Context()
	if _, _, err := stores[0].CreateSession(ctx, "sess", nil); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		res, err := stores[i%2].Append(ctx, inbound("sess", fmt.Sprint(i)))
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		if res.Record.Seq != int64(i+1) {
			t.Fatalf("append %d through store %d got seq %d, want %d", i, i%2, res.Record.Seq, i+1)
		}
	}
	// A state change through one store is seen by the other's next append.
	r := inbound("sess", "wake")
	r.Wake = true
	if res, err := stores[0].Append(ctx, r); err != nil || res.State != store.Running {
		t.Fatalf("wake: %+v, %v", res, err)
	}
	if _, err := stores[1].SetState(ctx, "sess", store.Idle); err != nil {
		t.Fatal(err)
	}
	if res, err := stores[0].Append(ctx, inbound("sess", "after")); err != nil || res.State != store.Idle || res.Record.Seq != 12 {
		t.Fatalf("append after the other store set idle: state %s, seq %d, err %v; want idle, 12", res.State, res.Record.Seq, err)
	}
}

// TestCloseWhileAppending closes the store under load: every append either
// succeeds, and is then durable, or fails with ErrClosed.
func TestCloseWhileAppending(t *testing.T) {
	path := filepath.Join(t.TempDir(), "switchboard.db")
	s, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, _, err := s.CreateSession(ctx, "sess", nil); err != nil {
		t.Fatal(err)
	}
	const writers = 32
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		acked    []string
		firstAck = make(chan struct{})
		once     sync.Once
	)
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				key := fmt.Sprintf("%d-%d", w, i)
				_, err := s.Append(ctx, inbound("sess", key))
				if errors.Is(err, store.ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Append during Close: %v, want nil or ErrClosed", err)
					return
				}
				mu.Lock()
				acked = append(acked, "client:"+key)
				mu.Unlock()
				once.Do(func() { close(firstAck) })
			}
		})
	}
	<-firstAck
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()

	s = openPath(t, path, sqlite.Options{})
	recs, err := s.Read(ctx, "sess", 0, len(acked)+100)
	if err != nil {
		t.Fatal(err)
	}
	stored := make(map[string]bool, len(recs))
	for i, r := range recs {
		if r.Seq != int64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
		stored[r.Envelope.ID] = true
	}
	for _, id := range acked {
		if !stored[id] {
			t.Errorf("acknowledged append %s is missing after reopen", id)
		}
	}
	t.Logf("%d appends acknowledged before Close, %d stored", len(acked), len(recs))
}

func TestMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "switchboard.db")
	for range 2 { // the second Open finds the schema current
		s, err := sqlite.Open(t.Context(), path, sqlite.Options{})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, top int
	if err := db.QueryRow(`SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &top); err != nil {
		t.Fatal(err)
	}
	if n != top || n < 1 {
		t.Fatalf("schema_migrations holds %d rows up to version %d, want each version once", n, top)
	}

	// A database from a newer binary is refused, not half-used.
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)`, top+1); err != nil {
		t.Fatal(err)
	}
	if s, err := sqlite.Open(t.Context(), path, sqlite.Options{}); err == nil {
		s.Close()
		t.Fatal("Open accepted a database whose schema is newer than the binary")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer schema: %v, want an error saying so", err)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := sqlite.Open(t.Context(), "", sqlite.Options{}); err == nil {
		t.Error("Open with an empty path succeeded")
	}
	if _, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "missing", "dir", "x.db"), sqlite.Options{}); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
}

func TestAppendRejectsBadInput(t *testing.T) {
	s := openTemp(t, sqlite.Options{})
	ctx := t.Context()
	if _, _, err := s.CreateSession(ctx, "sess", nil); err != nil {
		t.Fatal(err)
	}
	r := inbound("sess", "k")
	r.Direction = "sideways"
	if _, err := s.Append(ctx, r); err == nil {
		t.Error("Append with an invalid direction succeeded")
	}
	r = inbound("sess", "k")
	r.Envelope.TS = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := s.Append(ctx, r); err == nil {
		t.Error("Append with a ts past 2262 succeeded")
	}
	if _, err := s.SetState(ctx, "sess", "sleeping"); err == nil {
		t.Error("SetState with an invalid state succeeded")
	}
	// None of it reached the log.
	if recs, err := s.Read(ctx, "sess", 0, 10); err != nil || len(recs) != 0 {
		t.Errorf("log after rejected appends: %d records, %v", len(recs), err)
	}
}

func histogram(tb testing.TB, reg *prometheus.Registry, name string) *dto.Histogram {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram()
		}
	}
	tb.Fatalf("metric %s not registered", name)
	return nil
}

// BenchmarkAppend measures durable, deduplicated appends: conns goroutines
// append new envelopes round-robin over 64 sessions (every append a new
// record, committed with fsync). It reports appends/s, process CPU per
// append, p50/p99 latency and the mean group-commit batch.
func BenchmarkAppend(b *testing.B) {
	for _, sessions := range []int{64, 8} {
		for _, conns := range []int{1, 16, 64, 256} {
			b.Run(fmt.Sprintf("sessions=%d/conns=%d", sessions, conns), func(b *testing.B) {
				benchmarkAppend(b, conns, sessions)
			})
		}
	}
}

func benchmarkAppend(b *testing.B, conns, sessions int) {
	reg := prometheus.NewRegistry()
	s := openTemp(b, sqlite.Options{Metrics: store.NewMetrics(reg)})
	ctx := context.Background()
	ids := make([]string, sessions)
	for i := range ids {
		ids[i] = fmt.Sprint("sess-", i)
		if _, _, err := s.CreateSession(ctx, ids[i], nil); err != nil {
			b.Fatal(err)
		}
	}
	reqs := make([]store.AppendRequest, b.N)
	for i := range reqs {
		reqs[i] = inbound(ids[i%sessions], fmt.Sprint(i))
	}
	latencies := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	for range conns {
		wg.Go(func() {
			for {
				n := next.Add(1) - 1
				if n >= int64(b.N) {
					return
				}
				t0 := time.Now()
				if _, err := s.Append(ctx, reqs[n]); err != nil {
					b.Error(err)
					return
				}
				latencies[n] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	slices.Sort(latencies)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/append")
	b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
	batch := histogram(b, reg, "switchboard_store_commit_batch_size")
	b.ReportMetric(batch.GetSampleSum()/float64(batch.GetSampleCount()), "writes/batch")
}

// cpuTime returns the CPU time (user and system) this process has used,
// zero where the platform does not tell.
func cpuTime() time.Duration {
	d, _ := cputime.Process()
	return d
}

// BenchmarkRead measures reading 100 records of a session's log.
func BenchmarkRead(b *testing.B) {
	s := openTemp(b, sqlite.Options{})
	ctx := context.Background()
	for i := range 8 {
		if _, _, err := s.CreateSession(ctx, fmt.Sprint("sess-", i), nil); err != nil {
			b.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Go(func() {
			for i := range 50 {
				if _, err := s.Append(ctx, inbound(fmt.Sprint("sess-", (w+i)%8), fmt.Sprintf("%d-%d", w, i))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			recs, err := s.Read(ctx, fmt.Sprint("sess-", i%8), int64(i%300), 100)
			if err != nil || len(recs) != 100 {
				b.Fatalf("Read: %d records, %v", len(recs), err)
			}
		}
	})
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "records/s")
}

// openCounted opens a store whose commits and rows written read returns.
func openCounted(t *testing.T) (s *sqlite.Store, read func() (commits, rows float64)) {
	reg := prometheus.NewRegistry()
	s = openTemp(t, sqlite.Options{Metrics: store.NewMetrics(reg)})
	return s, func() (float64, float64) {
		return storetest.Counter(t, reg, "switchboard_store_commits_total"), storetest.Counter(t, reg, "switchboard_store_rows_written_total")
	}
}

// TestCommitMetrics: every committed batch that wrote is counted once, with
// the rows it changed (triggers included); a batch that changed nothing,
// such as a repeated append, is not.
func TestCommitMetrics(t *testing.T) {
	s, read := openCounted(t)
	ctx := t.Context()
	// Creating a session: its row and its session.created journal entry.
	c0, r0 := read()
	if _, _, err := s.CreateSession(ctx, "sess", nil); err != nil {
		t.Fatal(err)
	}
	c1, r1 := read()
	if c1-c0 != 1 || r1-r0 != 2 {
		t.Errorf("create session: %v commits, %v rows; want 1 and 2 (session, journal)", c1-c0, r1-r0)
	}
	for i := range 3 {
		if _, err := s.Append(ctx, inbound("sess", fmt.Sprint("k", i))); err != nil {
			t.Fatal(err)
		}
	}
	c2, r2 := read()
	if c2-c1 != 3 || r2-r1 != 3 {
		t.Errorf("three appends one after the other: %v commits, %v rows; want 3 and 3", c2-c1, r2-r1)
	}
	if _, err := s.Append(ctx, inbound("sess", "k0")); err != nil {
		t.Fatal(err)
	}
	if c3, r3 := read(); c3 != c2 || r3 != r2 {
		t.Errorf("a repeated append wrote nothing, yet counted %v commits, %v rows", c3-c2, r3-r2)
	}
}

// TestSettleRunWritesARowPerDelivery: a SettleRun that hands out the
// conversation's next run writes the settled row and the next head, once
// each, in one commit (the next is made the head and leased by one
// statement; the deliveries queued behind it are only read); settling a
// run of three that finds nothing due after it writes the three and the
// head flag of the next, in one commit.
func TestSettleRunWritesARowPerDelivery(t *testing.T) {
	s, read := openCounted(t)
	ctx := t.Context()
	if _, _, err := s.CreateSession(ctx, "sess", nil); err != nil {
		t.Fatal(err)
	}
	to := envelope.Conversation{Source: "test", Ref: "c"}
	now := time.Now()
	var ds []store.Delivery
	for i := range 5 {
		res, err := s.Append(ctx, inbound("sess", fmt.Sprint("k", i)))
		if err != nil {
			t.Fatal(err)
		}
		due := now
		if i == 4 {
			due = now.Add(time.Hour)
		}
		ds = append(ds, store.Delivery{SessionID: "sess", Seq: res.Record.Seq, To: to, NextAttempt: due})
	}
	if err := s.Enqueue(ctx, ds); err != nil {
		t.Fatal(err)
	}
	claimed, err := s.Claim(ctx, "p1", 10, now, now.Add(time.Minute))
	if err != nil || len(claimed) != 1 {
		t.Fatalf("Claim = %v, %v; want the conversation's head", claimed, err)
	}
	c0, r0 := read()
	run, err := s.SettleRun(ctx, "p1", []store.Outcome{{ID: claimed[0].ID, Settlement: store.Settlement{Status: store.Delivered}}}, 3,
		now, now.Add(time.Minute))
	if err != nil || len(run) != 3 || run[0].Seq != 2 || run[2].Seq != 4 {
		t.Fatalf("SettleRun = %+v, %v; want the deliveries of seqs 2 to 4", run, err)
	}
	if c1, r1 := read(); c1-c0 != 1 || r1-r0 != 2 {
		t.Errorf("SettleRun that hands out the next run: %v commits, %v rows; want 1 and 2", c1-c0, r1-r0)
	}
	c1, r1 := read()
	outcomes := make([]store.Outcome, len(run))
	for i, d := range run {
		outcomes[i] = store.Outcome{ID: d.ID, Settlement: store.Settlement{Status: store.Delivered}}
	}
	if next, err := s.SettleRun(ctx, "p1", outcomes, 3, now, now.Add(time.Minute)); err != nil || len(next) != 0 {
		t.Fatalf("SettleRun before the last is due = %+v, %v; want nothing", next, err)
	}
	if c2, r2 := read(); c2-c1 != 1 || r2-r1 != 4 {
		t.Errorf("SettleRun of three that hands out nothing: %v commits, %v rows; want 1 and 4", c2-c1, r2-r1)
	}
}
