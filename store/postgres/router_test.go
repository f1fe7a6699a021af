package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/testenv"
	"github.com/switchboardhq/switchboard/store"
)

// The conformance suite (TestConformance) covers the router's storage
// contracts, with two stores on one database; the tests here press on what
// is particular to this backend: the pending_work bookkeeping racing with
// appends, consumer registration during appends, and leases across
// processes under load.

var t0 = time.Date(2026, 6, 18, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// TestBindTwoStores races Binds of the same conversations, each to its own
// new session, through two Stores: per conversation exactly one Bind
// creates the binding, every Bind returns it, and only its session exists.
func TestBindTwoStores(t *testing.T) {
	dsn := testenv.Postgres(t)
	stores := []*Store{openStore(t, dsn, Options{}), openStore(t, dsn, Options{})}
	const convs, binders = 5, 16
	type result struct {
		b       store.Binding
		created bool
	}
	results := make([][]result, convs)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for c := range convs {
		results[c] = make([]result, binders)
		for i := range binders {
			wg.Go(func() {
				<-start
				b, created, err := stores[i%2].Bind(t.Context(), store.Binding{
					SessionID:    fmt.Sprintf("sess-%d-%d", c, i),
					Conversation: envelope.Conversation{Source: "test", Ref: fmt.Sprint("conv-", c)},
				}, map[string]string{"binder": fmt.Sprint(i)})
				if err != nil {
					t.Errorf("Bind conv-%d by %d: %v", c, i, err)
				}
				results[c][i] = result{b, created}
			})
		}
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}
	for c, rs := range results {
		winner := -1
		for i, r := range rs {
			if r.created {
				if winner >= 0 {
					t.Fatalf("conv-%d: Binds %d and %d both created the binding", c, winner, i)
				}
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("conv-%d: no Bind created the binding", c)
		}
		won := rs[winner].b
		for i, r := range rs {
			if r.b.ID != won.ID || r.b.SessionID != won.SessionID {
				t.Errorf("conv-%d: Bind %d returned %+v, the binding is %+v", c, i, r.b, won)
			}
			_, err := stores[0].Session(t.Context(), fmt.Sprintf("sess-%d-%d", c, i))
			if exists := err == nil; exists != (i == winner) {
				t.Errorf("conv-%d: session of Bind %d exists = %v (err %v); only the winner's may", c, i, exists, err)
			}
		}
	}
}

// TestLeaseTakeoverAcrossStores: a process that stops renewing loses its
// session and its delivery to another process once the leases expire, and
// its late Advance and Settle are refused.
func TestLeaseTakeoverAcrossStores(t *testing.T) {
	dsn := testenv.Postgres(t)
	p1, p2 := openStore(t, dsn, Options{}), openStore(t, dsn, Options{})
	create(t, p1, "s")
	for i := range 3 {
		if _, err := p1.Append(t.Context(), msg("s", fmt.Sprint("k", i), "work")); err != nil {
			t.Fatal(err)
		}
	}
	works, err := p1.ClaimWork(t.Context(), "runtime", "p1", 10, t0, at(30*time.Second))
	if err != nil || len(works) != 1 || works[0] != (store.Work{SessionID: "s", LastSeq: 3}) {
		t.Fatalf("p1 ClaimWork = %v, %v", works, err)
	}
	if err := p1.Advance(t.Context(), "runtime", "s", "p1", 2, at(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	conv := envelope.Conversation{Source: "test", Ref: "thread"}
	if err := p1.Enqueue(t.Context(), []store.Delivery{{SessionID: "s", Seq: 1, To: conv, NextAttempt: t0}}); err != nil {
		t.Fatal(err)
	}
	ds, err := p1.Claim(t.Context(), "p1", 10, t0, at(30*time.Second))
	if err != nil || len(ds) != 1 {
		t.Fatalf("p1 Claim = %v, %v", ds, err)
	}

	// p1 dies. Before its leases expire p2 gets nothing; after, everything.
	if works, err := p2.ClaimWork(t.Context(), "runtime", "p2", 10, at(29*time.Second), at(time.Minute)); err != nil || len(works) != 0 {
		t.Fatalf("p2 ClaimWork within p1's lease = %v, %v", works, err)
	}
	if ds, err := p2.Claim(t.Context(), "p2", 10, at(29*time.Second), at(time.Minute)); err != nil || len(ds) != 0 {
		t.Fatalf("p2 Claim within p1's lease = %v, %v", ds, err)
	}
	works, err = p2.ClaimWork(t.Context(), "runtime", "p2", 10, at(31*time.Second), at(time.Minute))
	if err != nil || len(works) != 1 || works[0] != (store.Work{SessionID: "s", Cursor: 2, LastSeq: 3}) {
		t.Fatalf("p2 ClaimWork after p1's lease = %v, %v; want s from cursor 2", works, err)
	}
	taken, err := p2.Claim(t.Context(), "p2", 10, at(31*time.Second), at(time.Minute))
	if err != nil || len(taken) != 1 || taken[0].ID != ds[0].ID || taken[0].Attempts != 2 {
		t.Fatalf("p2 Claim after p1's lease = %+v, %v; want %s on its second attempt", taken, err, ds[0].ID)
	}
	if taken[0].Envelope.ID != "test:k0" {
		t.Errorf("taken over delivery carries envelope %q, want test:k0", taken[0].Envelope.ID)
	}

	if err := p1.Advance(t.Context(), "runtime", "s", "p1", 3, time.Time{}); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("p1's late Advance: %v, want ErrLeaseLost", err)
	}
	if err := p1.Settle(t.Context(), ds[0].ID, "p1", store.Settlement{Status: store.Delivered, ChannelID: "dup"}); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("p1's late Settle: %v, want ErrLeaseLost", err)
	}
	if err := p2.Advance(t.Context(), "runtime", "s", "p2", 3, time.Time{}); err != nil {
		t.Errorf("p2's Advance: %v", err)
	}
	if err := p2.Settle(t.Context(), ds[0].ID, "p2", store.Settlement{Status: store.Delivered, ChannelID: "once"}); err != nil {
		t.Errorf("p2's Settle: %v", err)
	}
	if posted, err := p1.Posted(t.Context(), "test", "dup"); err != nil || posted {
		t.Errorf("Posted(dup) = %v, %v; the refused Settle must leave no trace", posted, err)
	}
}

// TestCursorsUnderAppends runs appenders and cursor workers of two
// consumers on two Stores at once. Workers advance to the LastSeq they
// claimed and release, racing with appends to the same sessions; the
// outbox consumer registers only halfway through the appends. When all is
// done, both consumers must have caught up with every session (no pending
// mark lost to a race), and no session may ever have been held by two
// workers of one consumer at once.
func TestCursorsUnderAppends(t *testing.T) {
	dsn := testenv.Postgres(t)
	stores := []*Store{openStore(t, dsn, Options{}), openStore(t, dsn, Options{})}
	const sessions, appenders, perAppender = 6, 4, 120
	ids := make([]string, sessions)
	for i := range ids {
		ids[i] = fmt.Sprint("sess-", i)
	}
	create(t, stores[0], ids...)

	var appended atomic.Int64
	halfway, done := make(chan struct{}), make(chan struct{})
	var appWG sync.WaitGroup
	for a := range appenders {
		appWG.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(a), 7))
			for i := range perAppender {
				sess := ids[rng.IntN(sessions)]
				if _, err := stores[a%2].Append(t.Context(), msg(sess, fmt.Sprintf("a%d-%d", a, i), "work")); err != nil {
					t.Errorf("append: %v", err)
					return
				}
				if appended.Add(1) == appenders*perAppender/2 {
					close(halfway)
				}
			}
		})
	}

	var workWG sync.WaitGroup
	held := map[string]string{} // consumer/session → worker holding it
	var heldMu sync.Mutex
	worker := func(st *Store, consumer, owner string) {
		sig, cancel := st.Subscribe(store.AllSessions)
		defer cancel()
		for {
			works, err := st.ClaimWork(t.Context(), consumer, owner, 2, t0, at(time.Hour))
			if err != nil {
				t.Errorf("%s: ClaimWork: %v", owner, err)
				return
			}
			if len(works) == 0 {
				select {
				case <-done:
					return
				default:
				}
				select {
				case <-sig:
				case <-done:
				}
				continue
			}
			for _, w := range works {
				key := consumer + "/" + w.SessionID
				heldMu.Lock()
				if other := held[key]; other != "" {
					t.Errorf("%s claimed %s while %s held it", owner, key, other)
				}
				held[key] = owner
				heldMu.Unlock()
				// The work: read what is past the cursor.
				recs, err := st.Read(t.Context(), w.SessionID, w.Cursor, int(w.LastSeq-w.Cursor))
				if err != nil || len(recs) == 0 || int64(len(recs)) != w.LastSeq-w.Cursor {
					t.Errorf("%s: %s from cursor %d to %d reads %d records, %v", owner, key, w.Cursor, w.LastSeq, len(recs), err)
				}
				heldMu.Lock()
				delete(held, key)
				heldMu.Unlock()
				if err := st.Advance(t.Context(), consumer, w.SessionID, owner, w.LastSeq, time.Time{}); err != nil {
					t.Errorf("%s: Advance(%s): %v", owner, key, err)
					return
				}
			}
		}
	}
	for i, st := range stores {
		for w := range 2 {
			workWG.Go(func() { worker(st, "runtime", fmt.Sprintf("runtime-%d-%d", i, w)) })
		}
	}
	<-halfway
	for i, st := range stores {
		workWG.Go(func() { worker(st, "outbox", fmt.Sprintf("outbox-%d", i)) })
	}
	appWG.Wait()
	close(done)
	workWG.Wait()
	if t.Failed() {
		return
	}

	for _, consumer := range []string{"runtime", "outbox"} {
		for _, id := range ids {
			var cursor, last int64
			err := stores[1].pool.QueryRow(t.Context(), `SELECT coalesce(c.seq, 0), s.last_seq FROM sessions s
				LEFT JOIN cursors c ON c.consumer = $1 AND c.session_id = s.id WHERE s.id = $2`, consumer, id).Scan(&cursor, &last)
			if err != nil {
				t.Fatal(err)
			}
			if cursor != last {
				t.Errorf("%s cursor of %s is %d, its log ends at %d: work was lost", consumer, id, cursor, last)
			}
		}
		var marks int
		if err := stores[1].pool.QueryRow(t.Context(), "SELECT count(*) FROM pending_work WHERE consumer = $1", consumer).Scan(&marks); err != nil {
			t.Fatal(err)
		}
		if marks != 0 {
			t.Errorf("%d pending_work rows of %s are left with every cursor at the end of its log", marks, consumer)
		}
	}
	if total := appended.Load(); total != appenders*perAppender {
		t.Errorf("appended %d, want %d", total, appenders*perAppender)
	}
}

// TestOutboxUnderContention has claimers on two Stores claim and settle
// deliveries of several conversations while enqueuers on both Stores add
// more, failing some attempts for an immediate retry and some for good: at
// no time is more than one delivery of a conversation in flight, every
// delivery ends delivered or dead (no conversation stalls behind a head
// that went), in enqueue order within its conversation, and its attempts
// count its claims.
func TestOutboxUnderContention(t *testing.T) {
	dsn := testenv.Postgres(t)
	stores := []*Store{openStore(t, dsn, Options{}), openStore(t, dsn, Options{})}
	const convs, each = 4, 15
	create(t, stores[0], "s")
	byConv := make([][]store.Delivery, convs)
	for i := range convs * each {
		out := msg("s", fmt.Sprint("k", i), "output")
		out.Direction = store.Outbound
		res, err := stores[0].Append(t.Context(), out)
		if err != nil {
			t.Fatal(err)
		}
		c := i % convs
		byConv[c] = append(byConv[c], store.Delivery{SessionID: "s", Seq: res.Record.Seq,
			To: envelope.Conversation{Source: "test", Ref: fmt.Sprint("c", c)}, NextAttempt: t0})
	}

	var (
		mu       sync.Mutex
		inFlight = map[string]string{}  // conversation → delivery id
		claims   = map[string]int{}     // delivery id → times claimed
		final    = map[string][]int64{} // conversation → seqs settled for good, in order
		more     = make(chan struct{})  // closed and replaced after each Enqueue
		done     = make(chan struct{})  // closed when every delivery is enqueued
		wg, enq  sync.WaitGroup
	)
	// Each conversation is enqueued by one enqueuer, in seq order, one or
	// two deliveries a call, while claimers work.
	for e, st := range stores {
		enq.Go(func() {
			for k := 0; k < each; k += 1 + k%2 {
				for c := e; c < convs; c += len(stores) {
					if err := st.Enqueue(t.Context(), byConv[c][k:min(k+1+k%2, each)]); err != nil {
						t.Errorf("Enqueue: %v", err)
						return
					}
					mu.Lock()
					close(more)
					more = make(chan struct{})
					mu.Unlock()
				}
			}
		})
	}
	for si, st := range stores {
		for o := range 2 {
			owner := fmt.Sprintf("s%d-o%d", si, o)
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(si), uint64(o)))
				for {
					mu.Lock()
					wake := more
					mu.Unlock()
					got, err := st.Claim(t.Context(), owner, 3, t0, at(time.Hour))
					if err != nil {
						t.Errorf("%s: Claim: %v", owner, err)
						return
					}
					if len(got) == 0 {
						select {
						case <-done:
							return // the rest is settled, or in flight with owners who go on
						case <-wake:
						}
						continue
					}
					for _, d := range got {
						ref := d.To.Ref
						mu.Lock()
						if other := inFlight[ref]; other != "" {
							t.Errorf("%s claimed %s of %s while %s is in flight", owner, d.ID, ref, other)
						}
						inFlight[ref] = d.ID
						claims[d.ID]++
						if d.Attempts != claims[d.ID] {
							t.Errorf("%s on claim %d has %d attempts", d.ID, claims[d.ID], d.Attempts)
						}
						mu.Unlock()
						s := store.Settlement{Status: store.Delivered, ChannelID: d.ID}
						switch r := rng.IntN(10); {
						case r < 3:
							s = store.Settlement{Status: store.Pending, Error: "503", NextAttempt: t0}
						case r < 4:
							s = store.Settlement{Status: store.Dead, Error: "404"}
						}
						mu.Lock()
						delete(inFlight, ref)
						if s.Status != store.Pending {
							final[ref] = append(final[ref], d.Seq)
						}
						mu.Unlock()
						if err := st.Settle(t.Context(), d.ID, owner, s); err != nil {
							t.Errorf("%s: Settle(%s): %v", owner, d.ID, err)
							return
						}
					}
				}
			})
		}
	}
	enq.Wait()
	close(done)
	wg.Wait()
	if t.Failed() {
		return
	}
	for c := range convs {
		ref := fmt.Sprint("c", c)
		var want []int64
		for _, d := range byConv[c] {
			want = append(want, d.Seq)
		}
		if got := final[ref]; !slices.Equal(got, want) {
			t.Errorf("conversation %s settled %v, want %v", ref, got, want)
		}
	}
	pending, err := stores[1].ListDeliveries(t.Context(), store.Pending, "", 100)
	if err != nil || len(pending) != 0 {
		var left []string
		for _, d := range pending {
			left = append(left, fmt.Sprintf("%d→%s", d.Seq, d.To.Ref))
		}
		t.Errorf("pending deliveries left: %v, %v", left, err)
	}
}

// TestPendingWorkMarkedByAnyWriter: the trigger marks work for every
// registered consumer whenever woken_seq (the newest record for the
// runtime) rises, whoever raises it, and only then.
func TestPendingWorkMarkedByAnyWriter(t *testing.T) {
	s := openStore(t, testenv.Postgres(t), Options{})
	create(t, s, "a", "b", "c")
	if _, err := s.ClaimWork(t.Context(), "runtime", "p1", 1, t0, at(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(t.Context(), msg("a", "k1", "hello")); err != nil {
		t.Fatal(err)
	}
	// A writer other than Append (an older gateway, an operator).
	if _, err := s.pool.Exec(t.Context(), "UPDATE sessions SET last_seq = last_seq + 1, woken_seq = last_seq + 1 WHERE id = 'b'"); err != nil {
		t.Fatal(err)
	}
	// Updates that do not raise woken_seq mark nothing: a state change, an
	// output.
	out := msg("c", "k2", "answer")
	out.Direction = store.Outbound
	if _, err := s.Append(t.Context(), out); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetState(t.Context(), "c", store.Running); err != nil {
		t.Fatal(err)
	}
	rows, _ := s.pool.Query(t.Context(), "SELECT consumer || '/' || session_id FROM pending_work ORDER BY 1")
	marks, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(marks, []string{"runtime/a", "runtime/b"}) {
		t.Errorf("pending_work = %v, want [runtime/a runtime/b]", marks)
	}
}

// TestRegistrationWaitsForAppendsInFlight: a consumer registering while
// an append is in flight (its trigger ran before the consumer existed) must
// still see that append's work.
func TestRegistrationWaitsForAppendsInFlight(t *testing.T) {
	s := openStore(t, testenv.Postgres(t), Options{})
	create(t, s, "a")
	tx := appendInFlight(t, s, "a")
	type result struct {
		works []store.Work
		err   error
	}
	done := make(chan result, 1)
	go func() {
		works, err := s.ClaimWork(t.Context(), "runtime", "p1", 10, t0, at(time.Minute))
		done <- result{works, err}
	}()

	// Commit once the registration waits for the append, or, should it not
	// wait, once it is done.
	var res result
	finished := false
	deadline := time.After(signalTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for waiting := false; !waiting && !finished; {
		select {
		case res = <-done:
			finished = true
		case <-tick.C:
			err := s.pool.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'LOCK TABLE sessions%')`).Scan(&waiting)
			if err != nil {
				t.Fatal(err)
			}
		case <-deadline:
			t.Fatal("ClaimWork neither finished nor waited for the append in flight")
		}
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !finished {
		res = <-done
	} else {
		// The registration did not wait: the append's work must show anyway.
		res.works, res.err = s.ClaimWork(t.Context(), "runtime", "p1", 10, t0, at(time.Minute))
	}
	if res.err != nil || len(res.works) != 1 || res.works[0] != (store.Work{SessionID: "a", LastSeq: 1}) {
		t.Errorf("ClaimWork = %v, %v; want the work of the append that was in flight", res.works, res.err)
	}
}

// TestMigrationGivesSessionsCursorRows migrates a database to version 2,
// where sessions with records had no cursor rows until claimed, and then
// to the newest version: the sessions' work must be claimable.
func TestMigrationGivesSessionsCursorRows(t *testing.T) {
	dsn := testenv.Postgres(t)
	pool := migratedTo(t, dsn, 2)
	for _, q := range []string{
		"INSERT INTO consumers (name) VALUES ('runtime')",
		"INSERT INTO sessions (id, state, created_at, updated_at) VALUES ('a', 'idle', now(), now()), ('b', 'idle', now(), now())",
		"UPDATE sessions SET last_seq = 2 WHERE id = 'b'", // marked pending by the version 2 trigger, no cursor row
	} {
		if _, err := pool.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	s := openStore(t, dsn, Options{})
	works, err := s.ClaimWork(t.Context(), "runtime", "p1", 10, t0, at(time.Minute))
	if err != nil || len(works) != 1 || works[0] != (store.Work{SessionID: "b", LastSeq: 2}) {
		t.Errorf("ClaimWork after migrating = %v, %v; want b's work", works, err)
	}
	// The new trigger gives a's cursor row with its first record.
	if _, err := s.Append(t.Context(), msg("a", "k1", "first")); err != nil {
		t.Fatal(err)
	}
	works, err = s.ClaimWork(t.Context(), "runtime", "p1", 10, t0, at(time.Minute))
	if err != nil || len(works) != 1 || works[0] != (store.Work{SessionID: "a", LastSeq: 1}) {
		t.Errorf("ClaimWork after a's first record = %v, %v; want a's work (p1 holds b's)", works, err)
	}
}

// BenchmarkClaimWorkIdle measures a ClaimWork that finds nothing, with
// many sessions whose cursors are at the end of their logs: its cost must
// not grow with them.
func BenchmarkClaimWorkIdle(b *testing.B) {
	for _, idle := range []int{0, 20000} {
		b.Run(fmt.Sprint("idle=", idle), func(b *testing.B) {
			s := openStore(b, testenv.Postgres(b), Options{})
			ctx := context.Background()
			if _, err := s.ClaimWork(ctx, "runtime", "p", 1, t0, at(time.Minute)); err != nil {
				b.Fatal(err)
			}
			// Bulk setup: sessions with one record, the consumer caught up.
			if _, err := s.pool.Exec(ctx, `
				INSERT INTO sessions (id, state, last_seq, created_at, updated_at)
				SELECT 'idle-' || i, 'idle', 1, now(), now() FROM generate_series(1, $1) AS i`, idle); err != nil {
				b.Fatal(err)
			}
			if _, err := s.pool.Exec(ctx, `
				INSERT INTO cursors (consumer, session_id, seq) SELECT 'runtime', id, 1 FROM sessions`); err != nil {
				b.Fatal(err)
			}
			if _, err := s.pool.Exec(ctx, "ANALYZE"); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				works, err := s.ClaimWork(ctx, "runtime", "p", 4, t0, at(time.Minute))
				if err != nil || len(works) != 0 {
					b.Fatalf("ClaimWork = %v, %v", works, err)
				}
			}
		})
	}
}

// BenchmarkOutboxClaimIdle measures a Claim that finds nothing due, next to
// many settled deliveries and a backlog queued behind a delivery waiting
// for its retry: its cost must grow with neither.
func BenchmarkOutboxClaimIdle(b *testing.B) {
	for _, size := range []struct{ settled, backlog int }{{0, 0}, {20000, 5000}} {
		b.Run(fmt.Sprintf("settled=%d/backlog=%d", size.settled, size.backlog), func(b *testing.B) {
			s := openStore(b, testenv.Postgres(b), Options{})
			ctx := context.Background()
			create(b, s, "s")
			n := size.settled + 1 + size.backlog
			if _, err := s.pool.Exec(ctx, `
				INSERT INTO records (session_id, seq, direction, envelope_id, source, kind, actor_id, actor_display,
					actor_type, conv_source, conv_ref, text, refs, ts, ts_nanos, stored_at)
				SELECT 's', i, 'outbound', 'e' || i, 'test', 'message', 'a', '', 'agent', '', '', 'x', '{}', now(), 0, now()
				FROM generate_series(1, $1) AS i`, n); err != nil {
				b.Fatal(err)
			}
			if _, err := s.pool.Exec(ctx, `
				INSERT INTO deliveries (id, session_id, seq, conv_source, conv_ref, status, next_attempt, created_at, updated_at)
				SELECT 'd' || lpad(i::text, 8, '0'), 's', i, 'test', 'c' || (i % 100), 'delivered', now(), now(), now()
				FROM generate_series(1, $1) AS i`, size.settled); err != nil {
				b.Fatal(err)
			}
			ds := []store.Delivery{{SessionID: "s", Seq: int64(size.settled + 1), To: envelope.Conversation{Source: "test", Ref: "c0"}, NextAttempt: at(time.Hour)}}
			for seq := size.settled + 2; seq <= n; seq++ {
				ds = append(ds, store.Delivery{SessionID: "s", Seq: int64(seq), To: envelope.Conversation{Source: "test", Ref: "c0"}, NextAttempt: t0})
			}
			if err := s.Enqueue(ctx, ds); err != nil {
				b.Fatal(err)
			}
			if _, err := s.pool.Exec(ctx, "ANALYZE"); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				ds, err := s.Claim(ctx, "p", 4, at(time.Minute), at(2*time.Minute))
				if err != nil || len(ds) != 0 {
					b.Fatalf("Claim = %v, %v", ds, err)
				}
			}
		})
	}
}

// TestEnqueueBehindASettlingTail enqueues to a conversation whose only
// pending delivery is being settled by a transaction still open: the
// enqueue waits for the tail's row lock, finds it gone from pending and so
// does not mark the new delivery as waiting; otherwise the new delivery,
// the conversation's head once the tail is settled, would be flagged as
// queued behind it and never claimed. Enqueue's row-lock protocol is in
// "How the outbox keeps order" (outbox.go).
func TestEnqueueBehindASettlingTail(t *testing.T) {
	dsn := testenv.Postgres(t)
	st := openStore(t, dsn, Options{})
	create(t, st, "s")
	conv := envelope.Conversation{Source: "test", Ref: "c"}
	seqs := appendOutputs(t, st, "s", 2)
	if err := st.Enqueue(t.Context(), []store.Delivery{{SessionID: "s", Seq: seqs[0], To: conv, NextAttempt: t0}}); err != nil {
		t.Fatal(err)
	}
	head := claim1(t, st, "p1")

	// A settle in flight, as settleBatch makes it: the tail's row is
	// locked by lockSettlesSQL and updated, not yet committed.
	tx, err := st.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.WithoutCancel(t.Context()))
	if _, err := tx.Exec(t.Context(), lockSettlesSQL, []string{head.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), `UPDATE deliveries SET status = 'delivered', lease_owner = '', lease_until = NULL
		WHERE id = $1`, head.ID); err != nil {
		t.Fatal(err)
	}
	enqueued := make(chan error, 1)
	go func() {
		enqueued <- st.Enqueue(t.Context(), []store.Delivery{{SessionID: "s", Seq: seqs[1], To: conv, NextAttempt: t0}})
	}()
	// The enqueue must wait for the settle: its lock on the tail conflicts.
	waitForLockWait(t, st)
	select {
	case err := <-enqueued:
		t.Fatalf("Enqueue returned (%v) while the tail's settle was open", err)
	default:
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-enqueued; err != nil {
		t.Fatal(err)
	}
	if next := claim1(t, st, "p2"); next.Seq != seqs[1] {
		t.Fatalf("claimed seq %d, want %d", next.Seq, seqs[1])
	}
}

// TestEnqueueWithASnapshotOlderThanTheTailsSettle enqueues to two
// conversations at once. The enqueue's snapshot is taken, then it waits on
// the first conversation's tail (a transaction holds it FOR UPDATE), and
// meanwhile the second conversation's tail, pending and unleased in that
// snapshot, is claimed and settled. When the enqueue goes on to lock that
// tail it must find it gone from pending, as its own snapshot does not
// show: the settle locked it FOR UPDATE, which makes its update a key
// update, so the enqueue's FOR KEY SHARE on the version it saw fails and
// moves to the newest version, which it rechecks. (A settle taking FOR NO
// KEY UPDATE would let the enqueue lock the old pending version and flag
// its delivery as waiting behind a settled tail: a stalled conversation.)
func TestEnqueueWithASnapshotOlderThanTheTailsSettle(t *testing.T) {
	st := openStore(t, testenv.Postgres(t), Options{})
	create(t, st, "s")
	first, second := envelope.Conversation{Source: "test", Ref: "a"}, envelope.Conversation{Source: "test", Ref: "b"}
	seqs := appendOutputs(t, st, "s", 4)
	if err := st.Enqueue(t.Context(), []store.Delivery{
		{SessionID: "s", Seq: seqs[0], To: first, NextAttempt: t0},
		{SessionID: "s", Seq: seqs[1], To: second, NextAttempt: t0},
	}); err != nil {
		t.Fatal(err)
	}
	// Hold the first conversation's tail, so that the enqueue stops there
	// (it locks tails in conversation order) after taking its snapshot.
	tx, err := st.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.WithoutCancel(t.Context()))
	if _, err := tx.Exec(t.Context(), `SELECT 1 FROM deliveries WHERE conv_ref = 'a' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	enqueued := make(chan error, 1)
	go func() {
		enqueued <- st.Enqueue(t.Context(), []store.Delivery{
			{SessionID: "s", Seq: seqs[2], To: first, NextAttempt: t0},
			{SessionID: "s", Seq: seqs[3], To: second, NextAttempt: t0},
		})
	}()
	waitForLockWait(t, st)
	// The second tail, pending and unleased in the enqueue's snapshot, is
	// claimed and settled (Claim skips the first, which tx holds).
	tail := claim1(t, st, "p1")
	if tail.Seq != seqs[1] {
		t.Fatalf("claimed seq %d, want %d", tail.Seq, seqs[1])
	}
	if err := st.Settle(t.Context(), tail.ID, "p1", store.Settlement{Status: store.Delivered}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-enqueued; err != nil {
		t.Fatal(err)
	}
	// Both conversations' heads are claimable: the first's old tail, and
	// the second's new delivery, not flagged as waiting.
	ds, err := st.Claim(t.Context(), "p2", 10, at(time.Second), at(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, d := range ds {
		got = append(got, d.Seq)
	}
	slices.Sort(got)
	if want := []int64{seqs[0], seqs[3]}; !slices.Equal(got, want) {
		t.Fatalf("claimed seqs %v, want %v (the second conversation's new delivery stalled behind its settled tail)", got, want)
	}
}

// TestAppendLocksItsTriggersTailsInOrder: an append whose session changes
// state enqueues its records' deliveries, then its journal trigger the
// state change's. Were the trigger's tails locked only then, an append could
// hold one conversation's tail and wait for another's that a settle holds,
// while the settle, locking in conversation order, waits for the first: a
// deadlock (PostgreSQL broke it after a second; seen with one destination
// taking messages and another state changes). The append's enqueue locks the
// trigger's tails too, in the same sorted pass, so while it waits for the
// first it holds none after it.
func TestAppendLocksItsTriggersTailsInOrder(t *testing.T) {
	st := openStore(t, testenv.Postgres(t), Options{})
	ctx := t.Context()
	for id, types := range map[string][]string{"wh-a": {string(envelope.EventSessionState)}, "wh-b": {string(envelope.EventMessage)}} {
		if _, err := st.CreateWebhook(ctx, store.Webhook{ID: id, URL: "https://example.test/hook", Secret: "whsec_x", EventTypes: types}); err != nil {
			t.Fatal(err)
		}
	}
	create(t, st, "s")
	in := msg("s", "k0", "hello")
	in.Wake = true // idle to running: a state change for wh-a, a message for wh-b
	if _, err := st.Append(ctx, in); err != nil {
		t.Fatal(err)
	}
	lockedInOrder(t, st, "the append", func() error {
		out := msg("s", "k1", "answer")
		out.Direction = store.Outbound
		out.Rest = true // running to idle: a message for wh-b, a state change for wh-a
		_, err := st.Append(ctx, out)
		return err
	})
}

// TestStateChangeLocksTailsInOrder: a state change (SetState, no append)
// enqueues to each destination that takes it through the journal trigger,
// which locks the destinations' tails in conversation order (migration
// 0015), not in the order it scans webhooks: created wh-b first, it would
// hold wh-b's tail while waiting for wh-a's, which a settle holds before
// wanting wh-b's.
func TestStateChangeLocksTailsInOrder(t *testing.T) {
	st := openStore(t, testenv.Postgres(t), Options{})
	ctx := t.Context()
	for _, id := range []string{"wh-b", "wh-a"} {
		if _, err := st.CreateWebhook(ctx, store.Webhook{ID: id, URL: "https://example.test/hook", Secret: "whsec_x",
			EventTypes: []string{string(envelope.EventSessionState)}}); err != nil {
			t.Fatal(err)
		}
	}
	create(t, st, "s")
	if _, err := st.SetState(ctx, "s", store.Running); err != nil {
		t.Fatal(err)
	}
	lockedInOrder(t, st, "the state change", func() error {
		_, err := st.SetState(ctx, "s", store.Idle)
		return err
	})
}

// lockedInOrder runs change, which enqueues to the webhook conversations
// wh-a/s and wh-b/s of session s, while a settle holds wh-a/s's pending
// tail as lockSettlesSQL locks it (before wh-b/s's), and checks that
// change, waiting for that tail, holds no lock on wh-b/s's: else each
// would wait for the other.
func lockedInOrder(t *testing.T, st *Store, what string, change func() error) {
	t.Helper()
	ctx := t.Context()
	first, second := pendingTail(t, st, "wh-a/s"), pendingTail(t, st, "wh-b/s")
	tx, err := st.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, lockSettlesSQL, []string{first}); err != nil {
		t.Fatal(err)
	}
	changed := make(chan error, 1)
	go func() { changed <- change() }()
	waitForLockWait(t, st)
	if _, err := tx.Exec(ctx, `SELECT 1 FROM deliveries WHERE id = $1 FOR UPDATE NOWAIT`, second); err != nil {
		t.Fatalf("the settle could not lock the second conversation's tail while %s waited for the first: %v", what, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-changed; err != nil {
		t.Fatal(err)
	}
}

// pendingTail returns the id of the one pending delivery to the webhook
// conversation ref.
func pendingTail(t *testing.T, st *Store, ref string) string {
	t.Helper()
	var id string
	if err := st.pool.QueryRow(t.Context(), `SELECT id FROM deliveries WHERE status = 'pending' AND conv_ref = $1`, ref).Scan(&id); err != nil {
		t.Fatalf("the tail of %s: %v", ref, err)
	}
	return id
}

// TestClaimTakesATailAnAppendHolds: an append in flight holds its
// conversation's tail FOR KEY SHARE until it commits; a Claim of that
// delivery (the tail is the head too) neither skips it nor waits for the
// append, since a claim leaves it pending (see "How the outbox keeps
// order", outbox.go).
func TestClaimTakesATailAnAppendHolds(t *testing.T) {
	st := openStore(t, testenv.Postgres(t), Options{})
	create(t, st, "s")
	out := msg("s", "k", "output")
	out.Direction = store.Outbound
	res, err := st.Append(t.Context(), out)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Enqueue(t.Context(), []store.Delivery{{SessionID: "s", Seq: res.Record.Seq,
		To: envelope.Conversation{Source: "test", Ref: "c"}, NextAttempt: at(0)}}); err != nil {
		t.Fatal(err)
	}
	tx, err := st.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.WithoutCancel(t.Context()))
	var locked int
	if err := tx.QueryRow(t.Context(), `SELECT count(*) FROM (SELECT 1 FROM deliveries
		WHERE status = 'pending' AND conv_source = 'test' AND conv_ref = 'c' FOR KEY SHARE) AS t`).Scan(&locked); err != nil || locked != 1 {
		t.Fatalf("locking the tail: %d rows, %v", locked, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), signalTimeout)
	defer cancel()
	ds, err := st.Claim(ctx, "p", 10, at(time.Second), at(time.Hour))
	if err != nil || len(ds) != 1 || ds[0].Seq != res.Record.Seq {
		t.Fatalf("Claim while an append holds the tail = %+v, %v; want the delivery", ds, err)
	}
}

// claim1 claims the one due delivery.
func claim1(t *testing.T, st *Store, owner string) store.Delivery {
	t.Helper()
	ds, err := st.Claim(t.Context(), owner, 10, at(time.Second), at(time.Hour))
	if err != nil || len(ds) != 1 {
		t.Fatalf("Claim = %d deliveries, %v; want 1", len(ds), err)
	}
	return ds[0]
}

// enqueueOutputs appends n outputs to session id and enqueues a delivery
// of each to conv, due at t0, returning the deliveries.
func enqueueOutputs(t *testing.T, st *Store, id string, conv envelope.Conversation, n int) []store.Delivery {
	t.Helper()
	var ds []store.Delivery
	for _, seq := range appendOutputs(t, st, id, n) {
		ds = append(ds, store.Delivery{SessionID: id, Seq: seq, To: conv, NextAttempt: t0})
	}
	if err := st.Enqueue(t.Context(), ds); err != nil {
		t.Fatal(err)
	}
	return ds
}

// appendOutputs appends n outputs to session id, returning their seqs.
func appendOutputs(t *testing.T, st *Store, id string, n int) []int64 {
	t.Helper()
	var seqs []int64
	for i := range n {
		out := msg(id, fmt.Sprint("k", i), "output")
		out.Direction = store.Outbound
		res, err := st.Append(t.Context(), out)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, res.Record.Seq)
	}
	return seqs
}

// appendInFlight begins a transaction that writes session id's row as an
// append of its next record does (its trigger marks the work), and leaves
// it open; it is rolled back when the test ends unless committed.
func appendInFlight(t *testing.T, st *Store, id string) pgx.Tx {
	t.Helper()
	tx, err := st.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	if _, err := tx.Exec(t.Context(), "UPDATE sessions SET last_seq = last_seq + 1, woken_seq = last_seq + 1 WHERE id = $1", id); err != nil {
		t.Fatal(err)
	}
	return tx
}

// waitForLockWait waits until a session of st's database waits for a row
// lock.
func waitForLockWait(t *testing.T, st *Store) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting bool
		if err := st.pool.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no session waited for a lock in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSettleNextLeavesALockedHead: SettleRun claims a conversation's next
// delivery only when it can lock it at once. A head another transaction
// holds is left for Claim, and the delivery behind it is not handed out in
// its place, even when nothing else marks it as waiting (that would break
// the conversation's order); a settle that lost its lease claims nothing.
func TestSettleNextLeavesALockedHead(t *testing.T) {
	dsn := testenv.Postgres(t)
	st := openStore(t, dsn, Options{})
	create(t, st, "s")
	conv := envelope.Conversation{Source: "test", Ref: "c"}
	ds := enqueueOutputs(t, st, "s", conv, 3)
	first := claim1(t, st, "p1")
	// Nothing but the order of the queue keeps the third from going first.
	if _, err := st.pool.Exec(t.Context(), `UPDATE deliveries SET waiting = false WHERE session_id = 's'`); err != nil {
		t.Fatal(err)
	}
	// Another process holds the second delivery's row (a Claim in flight).
	tx, err := st.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.WithoutCancel(t.Context()))
	if _, err := tx.Exec(t.Context(), `SELECT 1 FROM deliveries WHERE session_id = 's' AND seq = $1 FOR UPDATE`, ds[1].Seq); err != nil {
		t.Fatal(err)
	}
	settleNext := func(d store.Delivery, owner string, now time.Time) ([]store.Delivery, error) {
		return st.SettleRun(t.Context(), owner, []store.Outcome{{ID: d.ID, Settlement: store.Settlement{Status: store.Delivered}}}, 3,
			now, at(time.Hour))
	}
	next, err := settleNext(first, "p1", at(2*time.Second))
	if err != nil {
		t.Fatalf("SettleRun: %v", err)
	}
	if len(next) != 0 {
		t.Fatalf("SettleRun handed out seq %d while the head (seq %d) was locked", next[0].Seq, ds[1].Seq)
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	second := claim1(t, st, "p1")
	if second.Seq != ds[1].Seq {
		t.Fatalf("Claim after the settle gave seq %d, want %d", second.Seq, ds[1].Seq)
	}

	// A settle by an owner that does not hold the lease claims nothing.
	_, err = settleNext(second, "p2", at(3*time.Second))
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("SettleRun by another owner: %v, want ErrLeaseLost", err)
	}
	pending, err := st.ListDeliveries(t.Context(), store.Pending, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range pending {
		if d.Seq == ds[2].Seq && d.Attempts != 0 {
			t.Fatalf("the lost settle claimed seq %d (attempts %d)", d.Seq, d.Attempts)
		}
	}
	// The owner's settle hands out the third.
	next, err = settleNext(second, "p1", at(4*time.Second))
	if err != nil || len(next) != 1 || next[0].Seq != ds[2].Seq || next[0].Attempts != 1 {
		t.Fatalf("SettleRun by the owner = %+v, %v; want seq %d with one attempt", next, err, ds[2].Seq)
	}
}

// TestClaimSweepsAStalledHead: a conversation whose head is flagged
// waiting (the stall "Stalled conversations" in stalls.go describes, made
// here by hand) gets nothing from Claim until its sweep, due
// stallSweepEvery after the last, clears the flag; the conversation then
// goes on in order.
func TestClaimSweepsAStalledHead(t *testing.T) {
	st := openStore(t, testenv.Postgres(t), Options{})
	create(t, st, "s")
	conv := envelope.Conversation{Source: "test", Ref: "c"}
	ds := enqueueOutputs(t, st, "s", conv, 3)
	tag, err := st.pool.Exec(t.Context(), `UPDATE deliveries SET waiting = true WHERE conv_ref = 'c' AND seq = $1`, ds[0].Seq)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("flagging the head: %v, %v", tag, err)
	}
	st.stalls.last = at(0) // a sweep just ran
	claim := func(now time.Time) []store.Delivery {
		t.Helper()
		got, err := st.Claim(t.Context(), "p", 10, now, now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := claim(at(stallSweepEvery - time.Second)); len(got) != 0 {
		t.Fatalf("before the sweep was due, Claim got %d deliveries of a stalled conversation", len(got))
	}
	got := claim(at(stallSweepEvery))
	if len(got) != 1 || got[0].Seq != ds[0].Seq {
		t.Fatalf("after the sweep, Claim got %v, want the head, seq %d", got, ds[0].Seq)
	}
	for i, want := range ds[1:] {
		now := at(stallSweepEvery + time.Duration(i+1)*time.Second)
		if err := st.Settle(t.Context(), got[0].ID, "p", store.Settlement{Status: store.Delivered}); err != nil {
			t.Fatal(err)
		}
		if got = claim(now); len(got) != 1 || got[0].Seq != want.Seq {
			t.Fatalf("next Claim got %v, want seq %d", got, want.Seq)
		}
	}
}
