package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/testenv"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		dsn := testenv.Postgres(t)
		return func() (store.Store, error) { return Open(t.Context(), dsn, Options{}) }
	}, storetest.Shared())
}

// signalTimeout guards waits for signals against hangs; it measures nothing.
const signalTimeout = 10 * time.Second

func openStore(t testing.TB, dsn string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// migratedTo returns a pool on the database at dsn, migrated to version
// (the first version migrations), closed when the test ends.
func migratedTo(t *testing.T, dsn string, version int) *pgxpool.Pool {
	t.Helper()
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := migrate(t.Context(), pool, ms[:version], slog.Default()); err != nil {
		t.Fatal(err)
	}
	return pool
}

func msg(session, key, text string) store.AppendRequest {
	return store.AppendRequest{
		SessionID: session,
		Direction: store.Inbound,
		Envelope: envelope.Envelope{
			ID:     "test:" + key,
			Source: "test",
			Kind:   envelope.KindMessage,
			Actor:  envelope.Actor{ID: "test:ada", Type: envelope.Human},
			Text:   text,
			TS:     time.Date(2026, 6, 18, 12, 0, 0, 999, time.UTC),
			Raw:    []byte(`{ "k" : "` + key + `" }`),
		},
	}
}

func create(t testing.TB, s *Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, _, err := s.CreateSession(context.Background(), id, nil); err != nil {
			t.Fatalf("CreateSession(%s): %v", id, err)
		}
	}
}

func waitSignal(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(signalTimeout):
		t.Fatalf("no signal %s within %s", what, signalTimeout)
	}
}

// checkLog checks that session's log has contiguous seqs from 1, each
// envelope id once, and LastSeq matching; it returns the ids stored.
func checkLog(t *testing.T, s *Store, session string) map[string]int64 {
	t.Helper()
	recs, err := s.Read(t.Context(), session, 0, 1_000_000)
	if err != nil {
		t.Fatalf("Read(%s): %v", session, err)
	}
	ids := make(map[string]int64, len(recs))
	for i, r := range recs {
		if r.Seq != int64(i+1) {
			t.Fatalf("session %s: record %d has seq %d", session, i, r.Seq)
		}
		if prev, dup := ids[r.Envelope.ID]; dup {
			t.Fatalf("session %s: %s stored at seq %d and %d", session, r.Envelope.ID, prev, r.Seq)
		}
		ids[r.Envelope.ID] = r.Seq
	}
	sess, err := s.Session(t.Context(), session)
	if err != nil {
		t.Fatalf("Session(%s): %v", session, err)
	}
	if sess.LastSeq != int64(len(recs)) {
		t.Fatalf("session %s: LastSeq %d, %d records", session, sess.LastSeq, len(recs))
	}
	return ids
}

// TestTwoStoresRaceOnManySessions has two Stores on one schema (two gateway
// processes) append overlapping keys to several sessions at once, with big
// batches so that one transaction locks many sessions: no deadlock may
// surface, every key is stored once, seqs stay contiguous.
func TestTwoStoresRaceOnManySessions(t *testing.T) {
	dsn := testenv.Postgres(t)
	stores := []*Store{
		openStore(t, dsn, Options{Workers: 3, MaxBatch: 64}),
		openStore(t, dsn, Options{Workers: 3, MaxBatch: 64}),
	}
	sessions := []string{"s0", "s1", "s2", "s3", "s4"}
	create(t, stores[0], sessions...)

	const writers, perWriter, keys = 32, 40, 60
	var created sync.Map // "session/key" -> *atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			<-start
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range perWriter {
				sess := sessions[rng.IntN(len(sessions))]
				key := fmt.Sprint("k", rng.IntN(keys))
				res, err := stores[w%2].Append(t.Context(), msg(sess, key, "same text"))
				if err != nil {
					t.Errorf("append %s/%s: %v", sess, key, err)
					return
				}
				if res.Created {
					n, _ := created.LoadOrStore(sess+"/"+key, new(atomic.Int32))
					n.(*atomic.Int32).Add(1)
				}
				if res.Record.SessionID != sess || res.Record.Envelope.ID != "test:"+key {
					t.Errorf("append %s/%s returned record %s/%s", sess, key, res.Record.SessionID, res.Record.Envelope.ID)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}
	total := 0
	for _, sess := range sessions {
		stored := checkLog(t, stores[1], sess)
		total += len(stored)
		for id := range stored {
			n, ok := created.Load(sess + "/" + strings.TrimPrefix(id, "test:"))
			if !ok || n.(*atomic.Int32).Load() != 1 {
				t.Errorf("%s/%s is stored, but was reported created %v times", sess, id, n)
			}
		}
	}
	created.Range(func(k, _ any) bool {
		total--
		return true
	})
	if total != 0 {
		t.Errorf("stored and created keys differ by %d", total)
	}
}

// TestReadNeverHidesAnotherReplicasRecords: a Read of what this store just
// appended may come from its tail, but not when another store (another
// replica) has appended to the session since: that record is read too,
// without this store writing anything first. And a Read of records the
// tail holds answers up to the limit.
func TestReadNeverHidesAnotherReplicasRecords(t *testing.T) {
	dsn := testenv.Postgres(t)
	one, two := openStore(t, dsn, Options{}), openStore(t, dsn, Options{})
	create(t, one, "sess")
	for _, key := range []string{"a", "b", "c"} {
		if _, err := one.Append(t.Context(), msg("sess", key, "by one")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := two.Append(t.Context(), msg("sess", "d", "by two")); err != nil {
		t.Fatal(err)
	}
	recs, err := one.Read(t.Context(), "sess", 2, 10)
	if err != nil || len(recs) != 2 || recs[0].Envelope.ID != "test:c" || recs[1].Envelope.ID != "test:d" {
		t.Fatalf("Read after 2 = %+v, %v; want c, then the other store's d", recs, err)
	}
	recs, err = one.Read(t.Context(), "sess", 0, 2)
	if err != nil || len(recs) != 2 || recs[0].Seq != 1 || recs[1].Seq != 2 {
		t.Fatalf("Read of 2 after 0 = %+v, %v; want 1 and 2", recs, err)
	}
}

// TestReadFollowingFromTheTail: a follower's read of records this store
// just appended costs no query while nothing was heard from another
// process, and so does a Read of a full page of them; a Read of fewer than
// it asked for still checks the session's last seq.
func TestReadFollowingFromTheTail(t *testing.T) {
	s := openStore(t, testenv.Postgres(t), Options{})
	create(t, s, "sess")
	for _, key := range []string{"a", "b"} {
		if _, err := s.Append(t.Context(), msg("sess", key, "hello")); err != nil {
			t.Fatal(err)
		}
	}
	acquired := s.pool.Stat().AcquireCount()
	recs, err := s.ReadFollowing(t.Context(), "sess", 0, 10)
	if err != nil || len(recs) != 2 || recs[0].Envelope.ID != "test:a" || recs[1].Envelope.ID != "test:b" {
		t.Fatalf("ReadFollowing = %+v, %v; want a and b", recs, err)
	}
	if n := s.pool.Stat().AcquireCount() - acquired; n != 0 {
		t.Errorf("ReadFollowing of records in the tail took %d connections, want none", n)
	}
	if recs, err := s.Read(t.Context(), "sess", 0, 2); err != nil || len(recs) != 2 {
		t.Fatalf("Read of 2 = %+v, %v; want a and b", recs, err)
	}
	if n := s.pool.Stat().AcquireCount() - acquired; n != 0 {
		t.Errorf("Read of a full page of records in the tail took %d connections, want none", n)
	}
	if _, err := s.Read(t.Context(), "sess", 0, 10); err != nil {
		t.Fatal(err)
	}
	if n := s.pool.Stat().AcquireCount() - acquired; n != 1 {
		t.Errorf("Read of records in the tail, fewer than asked for, took %d connections, want 1 (the last seq's check)", n)
	}
	if _, err := s.ReadFollowing(t.Context(), "nobody", 0, 10); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ReadFollowing of an unknown session = %v, want ErrNotFound", err)
	}
}

// TestReadFollowingHearsOtherReplicas: once a follower is signalled of
// another replica's append, its read returns that record too, though the
// tail holds the records before it.
func TestReadFollowingHearsOtherReplicas(t *testing.T) {
	dsn := testenv.Postgres(t)
	one, two := openStore(t, dsn, Options{}), openStore(t, dsn, Options{})
	create(t, one, "sess")
	ch, cancel := one.Subscribe("sess")
	defer cancel()
	for _, key := range []string{"a", "b"} {
		if _, err := one.Append(t.Context(), msg("sess", key, "by one")); err != nil {
			t.Fatal(err)
		}
	}
	waitSignal(t, ch, "for one's own appends")
	if _, err := two.Append(t.Context(), msg("sess", "c", "by two")); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, ch, "for two's append")
	recs, err := one.ReadFollowing(t.Context(), "sess", 0, 10)
	if err != nil || len(recs) != 3 || recs[2].Envelope.ID != "test:c" {
		t.Fatalf("ReadFollowing after two's signal = %+v, %v; want a, b and two's c", recs, err)
	}
}

// TestReadFollowingIgnoresOtherSessionsNews: another replica's append to
// another session (in another news slot) does not make a follower's read
// of records the tail holds query the database.
func TestReadFollowingIgnoresOtherSessionsNews(t *testing.T) {
	dsn := testenv.Postgres(t)
	one, two := openStore(t, dsn, Options{}), openStore(t, dsn, Options{})
	other := "other"
	for i := 0; fnv32a(other)%newsSlots == fnv32a("sess")%newsSlots; i++ {
		other = "other" + strconv.Itoa(i)
	}
	create(t, one, "sess", other)
	flushNotifications(t, one)
	if _, err := one.Append(t.Context(), msg("sess", "a", "by one")); err != nil {
		t.Fatal(err)
	}
	ch, cancel := one.Subscribe(other)
	defer cancel()
	if _, err := two.Append(t.Context(), msg(other, "b", "by two")); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, ch, "for two's append to "+other)
	acquired := one.pool.Stat().AcquireCount()
	recs, err := one.ReadFollowing(t.Context(), "sess", 0, 10)
	if err != nil || len(recs) != 1 || recs[0].Envelope.ID != "test:a" {
		t.Fatalf("ReadFollowing = %+v, %v; want a", recs, err)
	}
	if n := one.pool.Stat().AcquireCount() - acquired; n != 0 {
		t.Errorf("ReadFollowing of sess after news of %s took %d connections, want none", other, n)
	}
}

// TestRuntimeWorkCrossesProcesses: another replica's append of a message
// a runtime acts on signals this process's subscribers of runtime work
// (the runtime dispatchers), which its plain session notifications do not.
func TestRuntimeWorkCrossesProcesses(t *testing.T) {
	dsn := testenv.Postgres(t)
	one, two := openStore(t, dsn, Options{}), openStore(t, dsn, Options{})
	create(t, one, "sess")
	flushNotifications(t, one)
	work, cancel := one.Subscribe(store.RuntimeWork)
	defer cancel()
	if _, err := two.Append(t.Context(), msg("sess", "a", "for the runtime")); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, work, "of runtime work after two's append")
}

// TestReadFollowingAfterAReconnection: an append by another replica whose
// notification was lost while the listener was away is read by the
// follower after the reconnection wakes it.
func TestReadFollowingAfterAReconnection(t *testing.T) {
	dsn := testenv.Postgres(t)
	one, two := openStore(t, dsn, Options{}), openStore(t, dsn, Options{})
	create(t, one, "sess")
	flushNotifications(t, one)
	if _, err := one.Append(t.Context(), msg("sess", "a", "by one")); err != nil {
		t.Fatal(err)
	}
	ch, cancel := one.Subscribe("sess")
	defer cancel()
	// The listener may be back before two's append (it waits at least
	// minBackoff/2 to reconnect): then the notification was not lost, and
	// the test kills it again.
	for try := 1; ; try++ {
		oldPID := one.listener.pid.Load()
		killListener(t, one, two)
		if _, err := two.Append(t.Context(), msg("sess", "b"+strconv.Itoa(try), "by two")); err != nil {
			t.Fatal(err)
		}
		if one.listener.pid.Load() == oldPID {
			break
		}
		if try == 5 {
			t.Fatal("the listener reconnected before two's append five times")
		}
		waitSignal(t, ch, "after the listener reconnected")
	}
	waitSignal(t, ch, "after the listener reconnected")
	recs, err := one.ReadFollowing(t.Context(), "sess", 0, 10)
	if err != nil || len(recs) < 2 || !strings.HasPrefix(recs[len(recs)-1].Envelope.ID, "test:b") {
		t.Fatalf("ReadFollowing after the reconnection = %+v, %v; want a and two's b", recs, err)
	}
}

// killListener terminates s's listener's backend through other, and
// returns once the backend is gone: nothing sent after that reaches s's
// listener until it reconnects.
func killListener(t *testing.T, s, other *Store) {
	t.Helper()
	pid := int32(s.listener.pid.Load())
	var killed bool
	if err := other.pool.QueryRow(t.Context(), "SELECT pg_terminate_backend($1)", pid).Scan(&killed); err != nil || !killed {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, killed, err)
	}
	for deadline := time.Now().Add(signalTimeout); ; time.Sleep(5 * time.Millisecond) {
		var alive bool
		if err := other.pool.QueryRow(t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)", pid).Scan(&alive); err != nil {
			t.Fatal(err)
		}
		if !alive {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend %d still alive after %s", pid, signalTimeout)
		}
	}
}

// TestCrossProcessSubscribe: a subscriber of one Store hears appends made
// through another Store on the same schema, and nothing from a Store on
// another schema of the same database.
func TestCrossProcessSubscribe(t *testing.T) {
	dsn := testenv.Postgres(t)
	a := openStore(t, dsn, Options{})
	b := openStore(t, dsn, Options{})
	other := openStore(t, testenv.Postgres(t), Options{})
	create(t, a, "sess-1")
	create(t, other, "x")

	ch, cancel := a.Subscribe("sess-1")
	defer cancel()
	chX, cancelX := a.Subscribe("x")
	defer cancelX()

	// PostgreSQL delivers notifications in commit order, so had other's
	// notification reached a's listener, chX would fire before ch.
	if _, err := other.Append(t.Context(), msg("x", "k0", "elsewhere")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Append(t.Context(), msg("sess-1", "k1", "hello")); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, ch, "in store a after an append through store b")
	select {
	case <-chX:
		t.Fatal("store a was signalled for an append to another schema")
	default:
	}
	recs, err := a.Read(t.Context(), "sess-1", 0, 10)
	if err != nil || len(recs) != 1 || recs[0].Envelope.ID != "test:k1" {
		t.Fatalf("store a reads %v, %v after the signal; want b's record", recs, err)
	}
}

// TestListenerReconnects kills the listener's server connection: the
// listener must reconnect, wake subscribers (they may have missed
// notifications) and hear later appends.
func TestListenerReconnects(t *testing.T) {
	dsn := testenv.Postgres(t)
	a := openStore(t, dsn, Options{})
	b := openStore(t, dsn, Options{})
	create(t, a, "sess-1")
	ch, cancel := a.Subscribe("sess-1")
	defer cancel()
	// The creation notified too: let that arrive first, so that the next
	// signal is the reconnect's.
	flushNotifications(t, a)
	select {
	case <-ch:
	default:
	}

	oldPID := a.listener.pid.Load()
	var killed bool
	if err := b.pool.QueryRow(t.Context(), "SELECT pg_terminate_backend($1)", int32(oldPID)).Scan(&killed); err != nil || !killed {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", oldPID, killed, err)
	}
	waitSignal(t, ch, "after the listener reconnected")
	if pid := a.listener.pid.Load(); pid == oldPID {
		t.Fatalf("listener still on backend %d after it was terminated", pid)
	}
	if _, err := b.Append(t.Context(), msg("sess-1", "k1", "after reconnect")); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, ch, "for an append after the reconnect")
}

// flushNotifications returns once s's listener has received every
// notification committed before the call: PostgreSQL delivers them in
// commit order, so after one sent now (from a connection of the test's own,
// since the listener skips what the store's connections send).
func flushNotifications(t *testing.T, s *Store) {
	t.Helper()
	const marker = "flush-marker" // no session of the tests has this id
	ch, cancel := s.Subscribe(marker)
	defer cancel()
	conn, err := pgx.ConnectConfig(t.Context(), s.listener.config.Copy())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), "SELECT pg_notify($1, $2)", s.channel, marker); err != nil {
		t.Fatalf("notify: %v", err)
	}
	waitSignal(t, ch, "for a notification of the test's own")
}

// TestListenerHealthPing makes the listener ping its quiet connection
// often: after the pings, notifications must still arrive.
func TestListenerHealthPing(t *testing.T) {
	dsn := testenv.Postgres(t)
	s := openStore(t, dsn, Options{})
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pings := make(chan struct{}, 1)
	got := make(chan string, 1)
	l := &listener{
		config:  cfg,
		channel: s.channel,
		publish: func(id string) { got <- id },
		wakeAll: func() { t.Error("wakeAll without a reconnect") },
		log:     s.log,
		health:  time.Millisecond,
		pinged: func() {
			select {
			case pings <- struct{}{}:
			default:
			}
		},
	}
	conn, err := l.connect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(ctx, conn)
	}()
	defer func() { cancel(); <-done }()

	for range 3 {
		waitSignal(t, pings, "for a health ping")
	}
	if _, err := s.pool.Exec(t.Context(), "SELECT pg_notify($1, 'sess-9')", s.channel); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-got:
		if id != "sess-9" {
			t.Fatalf("published %q, want sess-9", id)
		}
	case <-time.After(signalTimeout):
		t.Fatal("no notification after health pings")
	}
}

// TestListenerReconnectBackoff keeps the listener failing to reconnect (to
// a port nobody listens on): its waits must grow from minBackoff and stop
// growing at maxBackoff, each jittered within the upper half of its step.
func TestListenerReconnectBackoff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg, err := pgx.ParseConfig("postgres://nobody@" + addr + "/none?sslmode=disable&connect_timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	var waits []time.Duration
	l := &listener{
		config: cfg,
		log:    slog.New(slog.DiscardHandler),
		sleep: func(ctx context.Context, d time.Duration) bool {
			waits = append(waits, d)
			return len(waits) < 12
		},
	}
	if conn := l.reconnect(t.Context()); conn != nil {
		t.Fatal("reconnected to a closed port")
	}
	if len(waits) != 12 {
		t.Fatalf("%d waits, want 12", len(waits))
	}
	for i, d := range waits {
		step := min(minBackoff<<i, maxBackoff)
		if d < step/2 || d > step {
			t.Errorf("wait %d = %s, want within [%s, %s] (all: %v)", i+1, d, step/2, step, waits)
		}
	}
}

// TestAppendRetryBackoff makes every insert into records lose a
// serialization conflict: the batch is tried maxAttempts times, waiting a
// backoff that grows from appendBackoffMin and stops at appendBackoffMax.
func TestAppendRetryBackoff(t *testing.T) {
	dsn := testenv.Postgres(t)
	s := openStore(t, dsn, Options{})
	create(t, s, "s1")
	if _, err := s.pool.Exec(t.Context(), `
		CREATE FUNCTION conflict() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'test conflict' USING ERRCODE = '40001'; END $$;
		CREATE TRIGGER conflict BEFORE INSERT ON records FOR EACH ROW EXECUTE FUNCTION conflict();`); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var waits []time.Duration
	s.sleep = func(ctx context.Context, d time.Duration) bool {
		mu.Lock()
		defer mu.Unlock()
		waits = append(waits, d)
		return true
	}
	_, err := s.Append(t.Context(), msg("s1", "k1", "hi"))
	if pgCode(err) != "40001" {
		t.Fatalf("Append = %v, want the serialization failure", err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond, 4 * time.Millisecond}
	if !slices.Equal(waits, want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
}

// TestConcurrentOpenMigratesOnce starts several Stores on a fresh schema at
// once: the advisory lock must let exactly one apply each migration.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	dsn := testenv.Postgres(t)
	var wg sync.WaitGroup
	stores := make([]*Store, 4)
	errs := make([]error, len(stores))
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = Open(t.Context(), dsn, Options{}) })
	}
	wg.Wait()
	for i, s := range stores {
		if errs[i] != nil {
			t.Fatalf("Open %d: %v", i, errs[i])
		}
		defer s.Close()
	}
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := stores[0].pool.Query(t.Context(), "SELECT version FROM schema_migrations ORDER BY version")
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) != len(ms) {
		t.Fatalf("schema_migrations holds %v, want each of %d migrations once", versions, len(ms))
	}
	for i, m := range ms {
		if versions[i] != m.version {
			t.Fatalf("schema_migrations holds %v, want the versions of %d migrations", versions, len(ms))
		}
	}
}

func TestLoadMigrations(t *testing.T) {
	ms, err := loadMigrations(fstest.MapFS{
		"migrations/0010_later.sql": {Data: []byte("SELECT 10")},
		"migrations/0002_next.sql":  {Data: []byte("SELECT 2")},
		"migrations/0001_init.sql":  {Data: []byte("SELECT 1")},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, fmt.Sprint(m.version, m.name, m.sql))
	}
	if want := "[10001_initSELECT 1 20002_nextSELECT 2 100010_laterSELECT 10]"; fmt.Sprint(got) != want {
		t.Errorf("migrations = %v, want %s", got, want)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"no number":  {"migrations/init.sql": {}},
		"zero":       {"migrations/0000_init.sql": {}},
		"duplicated": {"migrations/0001_a.sql": {}, "migrations/01_b.sql": {}},
	} {
		if _, err := loadMigrations(fsys); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestBadRequestFailsAlone commits a batch in which one request passes the
// up-front checks but is refused by the server (a check constraint the test
// adds, since store.CheckAppend now refuses what the schema would), and one
// is refused up front: the others must still commit.
func TestBadRequestFailsAlone(t *testing.T) {
	s := openStore(t, testenv.Postgres(t), Options{})
	create(t, s, "a", "b")
	if _, err := s.pool.Exec(t.Context(),
		`ALTER TABLE records ADD CONSTRAINT test_refused CHECK (text <> 'refused by the server')`); err != nil {
		t.Fatalf("add constraint: %v", err)
	}
	nul := msg("b", "nul", "has a \x00 byte")
	batch := []store.AppendRequest{
		msg("a", "ok1", "fine"),
		msg("b", "refused", "refused by the server"),
		nul,
		msg("b", "ok2", "fine"),
		msg("nope", "k", "unknown session"),
	}
	results, err := s.commit(t.Context(), batch)
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	for _, i := range []int{0, 3} {
		if results[i].Err != nil || !results[i].Val.Created || results[i].Val.Record.Seq != 1 {
			t.Errorf("request %d: %+v; want created at seq 1", i, results[i])
		}
	}
	if results[1].Err == nil || results[2].Err == nil {
		t.Errorf("bad requests succeeded: %v, %v", results[1].Err, results[2].Err)
	}
	if !errors.Is(results[4].Err, store.ErrNotFound) {
		t.Errorf("unknown session: %v, want ErrNotFound", results[4].Err)
	}
	if ids := checkLog(t, s, "b"); len(ids) != 1 || ids["test:ok2"] != 1 {
		t.Errorf("session b holds %v, want only ok2", ids)
	}

	// Through Append, a request refused up front fails alone too.
	if _, err := s.Append(t.Context(), nul); !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "NUL") {
		t.Errorf("Append with a NUL byte: %v, want ErrInvalid naming it", err)
	}
}

// TestDuplicatesWithinOneBatch: replays and conflicts of a key first seen in
// the same batch are answered from that batch.
func TestDuplicatesWithinOneBatch(t *testing.T) {
	s := openStore(t, testenv.Postgres(t), Options{})
	create(t, s, "a")
	wake := msg("a", "k1", "first")
	wake.Wake = true
	batch := []store.AppendRequest{
		msg("a", "k0", "before"),
		wake,
		msg("a", "k1", "first"),
		msg("a", "k1", "changed"),
		msg("a", "k2", "after"),
	}
	results, err := s.commit(t.Context(), batch)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		seq     int64
		created bool
		state   store.State
		err     error
	}{
		{1, true, store.Idle, nil},
		{2, true, store.Running, nil},
		{2, false, store.Running, nil},
		{2, false, store.Running, store.ErrConflict},
		{3, true, store.Running, nil},
	}
	for i, w := range want {
		r := results[i]
		if r.Val.Record.Seq != w.seq || r.Val.Created != w.created || r.Val.State != w.state || !errors.Is(r.Err, w.err) {
			t.Errorf("request %d: seq %d created %v state %s err %v; want %d %v %s %v",
				i, r.Val.Record.Seq, r.Val.Created, r.Val.State, r.Err, w.seq, w.created, w.state, w.err)
		}
	}
	if ids := checkLog(t, s, "a"); len(ids) != 3 {
		t.Errorf("log holds %v, want 3 records", ids)
	}
}

// TestCloseWaitsForAppends races appends with Close: every append either
// fails with ErrClosed or is durable, as a reopened store shows.
func TestCloseWaitsForAppends(t *testing.T) {
	dsn := testenv.Postgres(t)
	s, err := Open(t.Context(), dsn, Options{Workers: 2, MaxBatch: 8})
	if err != nil {
		t.Fatal(err)
	}
	create(t, s, "a")
	const n = 200
	acked := make([]bool, n)
	var wg sync.WaitGroup
	started := make(chan struct{}, n)
	for i := range n {
		wg.Go(func() {
			started <- struct{}{}
			_, err := s.Append(context.Background(), msg("a", fmt.Sprint("k", i), "racing close"))
			switch {
			case err == nil:
				acked[i] = true
			case !errors.Is(err, store.ErrClosed):
				t.Errorf("append %d: %v, want success or ErrClosed", i, err)
			}
		})
	}
	for range n / 2 {
		<-started
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()

	s2 := openStore(t, dsn, Options{})
	stored := checkLog(t, s2, "a")
	for i, ok := range acked {
		if _, in := stored[fmt.Sprint("test:k", i)]; ok && !in {
			t.Errorf("append %d was acknowledged but is not stored", i)
		}
	}
	if _, err := s.Read(t.Context(), "a", 0, 1); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Read after Close: %v, want ErrClosed", err)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := openStore(t, testenv.Postgres(t), Options{Metrics: store.NewMetrics(reg)})
	create(t, s, "a")
	const n = 5
	for i := range n {
		if _, err := s.Append(t.Context(), msg("a", fmt.Sprint("k", i), "counted")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Append(t.Context(), msg("a", "k0", "conflicting")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("conflict: %v", err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				counts[f.GetName()] = h.GetSampleCount()
			}
		}
	}
	if got := counts["switchboard_store_append_seconds"]; got != n+1 {
		t.Errorf("append latency observed %d times, want %d", got, n+1)
	}
	if got := counts["switchboard_store_commit_batch_size"]; got < 1 || got > n+1 {
		t.Errorf("batch size observed %d times, want 1..%d", got, n+1)
	}
}

// BenchmarkAppend appends from 64 goroutines over 64 sessions, each append a
// new envelope, and reports durable appends per second and the mean
// group-commit batch size, for several worker counts.
func BenchmarkAppend(b *testing.B) {
	for _, workers := range []int{1, 2, 4} {
		b.Run(fmt.Sprint("workers=", workers), func(b *testing.B) { benchmarkAppend(b, workers) })
	}
}

func benchmarkAppend(b *testing.B, workers int) {
	reg := prometheus.NewRegistry()
	s := openStore(b, testenv.Postgres(b), Options{Metrics: store.NewMetrics(reg), Workers: workers})
	const sessions = 64
	ids := make([]string, sessions)
	for i := range ids {
		ids[i] = fmt.Sprint("bench-", i)
	}
	create(b, s, ids...)
	var next atomic.Int64
	var mu sync.Mutex
	var latencies []time.Duration
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		defer func() {
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		}()
		for pb.Next() {
			i := next.Add(1)
			t0 := time.Now()
			if _, err := s.Append(context.Background(), msg(ids[i%sessions], fmt.Sprint("k", i), "benchmark message")); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
	if len(latencies) > 0 {
		slices.Sort(latencies)
		b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
	}
	families, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "switchboard_store_commit_batch_size" {
			h := f.GetMetric()[0].GetHistogram()
			b.ReportMetric(h.GetSampleSum()/float64(h.GetSampleCount()), "appends/batch")
		}
	}
}

// TestCommitMetrics: every committed transaction that wrote is counted once,
// explicit (an append batch) or implicit (a statement or a pipelined batch
// on its own), with the rows its statements report; reads and a repeated
// append, which write nothing, are not.
func TestCommitMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := openStore(t, testenv.Postgres(t), Options{Metrics: store.NewMetrics(reg)})
	ctx := t.Context()
	read := func() (float64, float64) {
		return storetest.Counter(t, reg, "switchboard_store_commits_total"), storetest.Counter(t, reg, "switchboard_store_rows_written_total")
	}
	c0, _ := read()
	create(t, s, "a")
	c1, r1 := read()
	if c1-c0 != 1 {
		t.Errorf("create session: %v commits, want 1", c1-c0)
	}
	for i := range 3 {
		if _, err := s.Append(ctx, msg("a", fmt.Sprint("k", i), "counted")); err != nil {
			t.Fatal(err)
		}
	}
	c2, r2 := read()
	if c2-c1 != 3 || r2-r1 != 6 {
		t.Errorf("three appends one after the other: %v commits, %v rows; want 3 and 6 (record, session)", c2-c1, r2-r1)
	}
	if _, err := s.Append(ctx, msg("a", "k0", "counted")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(ctx, "a", 0, 10); err != nil {
		t.Fatal(err)
	}
	if c3, r3 := read(); c3 != c2 || r3 != r2 {
		t.Errorf("a repeated append and a read wrote nothing, yet counted %v commits, %v rows", c3-c2, r3-r2)
	}
	// A claim (a CTE that updates) and an advance (a pipelined batch).
	now := time.Now()
	works, err := s.ClaimWork(ctx, "metrics-test", "me", 10, now, now.Add(time.Minute))
	if err != nil || len(works) != 1 {
		t.Fatalf("claim: %v %v", works, err)
	}
	if err := s.Advance(ctx, "metrics-test", "a", "me", works[0].LastSeq, time.Time{}); err != nil {
		t.Fatal(err)
	}
	c4, r4 := read()
	if c4-c2 < 2 {
		t.Errorf("a claim and an advance counted %v commits, want at least 2", c4-c2)
	}
	// The polls of an idle gateway change nothing and count nothing.
	if works, err := s.ClaimWork(ctx, "metrics-test", "me", 10, now, now.Add(time.Minute)); err != nil || len(works) != 0 {
		t.Fatalf("idle claim: %v %v", works, err)
	}
	if ds, err := s.Claim(ctx, "me", 10, now, now.Add(time.Minute)); err != nil || len(ds) != 0 {
		t.Fatalf("idle outbox claim: %v %v", ds, err)
	}
	if c5, r5 := read(); c5 != c4 || r5 != r4 {
		t.Errorf("idle claims counted %v commits, %v rows; want none", c5-c4, r5-r4)
	}
}

// TestPoolSize: the pool has room for the router's workers beside the
// commit workers unless the URL sets its size.
func TestPoolSize(t *testing.T) {
	dsn := testenv.Postgres(t)
	if got := openStore(t, dsn, Options{}).pool.Config().MaxConns; got != DefaultMaxConns {
		t.Errorf("pool of %d connections by default, want %d", got, DefaultMaxConns)
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	if got := openStore(t, dsn+sep+"pool_max_conns=7", Options{}).pool.Config().MaxConns; got != 7 {
		t.Errorf("pool_max_conns=7 gave a pool of %d connections", got)
	}
}

// Open warns when the server's autovacuum is off, and only then.
func TestOpenWarnsWhenAutovacuumIsOff(t *testing.T) {
	dsn := testenv.Postgres(t)
	var logged strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logged.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelWarn}))
	st := openStore(t, dsn, Options{Logger: log})
	var on string
	if err := st.pool.QueryRow(t.Context(), "SHOW autovacuum").Scan(&on); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	warned := strings.Contains(logged.String(), "autovacuum is off")
	mu.Unlock()
	if warned != (on == "off") {
		t.Errorf("with autovacuum %s, the warning was logged: %v; log:\n%s", on, warned, logged.String())
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// The tracer's cache of which row-returning statements write answers as
// the pattern does and holds at most maxCachedStatements texts.
func TestWriteTracerCacheIsBounded(t *testing.T) {
	tr := newWriteTracer(nil)
	for _, q := range []string{"WITH u AS (UPDATE deliveries SET x = 1 RETURNING 1) SELECT 1", "SELECT 1 FROM records"} {
		for range 2 { // computed, then cached
			if got, want := tr.writes(q), writes.MatchString(q); got != want {
				t.Errorf("writes(%q) = %v, want %v", q, got, want)
			}
		}
	}
	for i := range 2 * maxCachedStatements {
		tr.writes(fmt.Sprintf("SELECT %d", i))
	}
	n := 0
	tr.writers.Range(func(any, any) bool { n++; return true })
	if n > maxCachedStatements {
		t.Errorf("the cache holds %d statements, more than %d", n, maxCachedStatements)
	}
}
