// Package postgres is the PostgreSQL store backend, for deployments where
// several gateway processes share one database.
//
// Tables are created by versioned migrations at Open, under unqualified
// names, so the DSN's search_path picks the schema. Appends are group
// committed by several workers, each owning a share of the sessions; a batch
// is one transaction that locks the rows of the sessions it touches, in id
// order, which keeps per-session sequence numbers contiguous and idempotency
// exact across processes. Subscribe signals cross processes through
// LISTEN/NOTIFY on a channel named after the schema: appends notify, and so
// do the triggers that journal session events (events.go); each process
// signals its own writes directly and skips their notifications.
//
// The router's state (bindings.go, cursors.go, outbox.go) is shared by the
// processes the same way: per-session cursors and outbox deliveries are
// leased with SELECT … FOR UPDATE SKIP LOCKED and rechecked after locking,
// so no two live processes hold the same work, and a lease that expires is
// taken over by whoever claims next.
package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/internal/groupcommit"
)

// Defaults for Options.
const (
	// DefaultWorkers is one because a batch's fixed cost (two round trips,
	// eight statements, a commit) dominates: fewer and larger batches commit
	// more appends per second for less of the server's CPU, and batches of
	// one process never wait for each other's session locks. Measured on a
	// 2-core host with the server on it, one worker against two: plain
	// ingest 8,762 and 10,854/s against 8,741 and 9,551/s with a fifth less
	// server CPU; bench --e2e at 1,000/s delivered p99 57-64 ms against
	// 97-103 ms, and with two gateways on the database 0.44-0.71 s against
	// 3.1 s. A database server with cores to spare may gain from more.
	DefaultWorkers  = 1
	DefaultMaxBatch = 128
	// DefaultMaxConns is the connection pool's size unless the URL sets
	// pool_max_conns. Besides the commit workers, the router's delivery
	// workers, the session dispatcher and every API read take a
	// connection while a statement runs, and wait for one in the pool
	// (cheaply, in this process) when all are taken. More connections let
	// more statements run on the server at once, which helps only while it
	// has cores for them: on a 2-core host with the server on it, a pool of
	// 32 gave PostgreSQL a quarter more CPU for the same work, spent on
	// contention. Measured there with bench --e2e at 1,000/s, alternating:
	// one gateway, pools of 4, 6 and 8 sustained 993-995/s with delivered
	// p99 340-436 ms, where 32 sustained 879-925/s with p99 1.2-1.6 s (and
	// 828-899 ticks of server CPU against 1,105-1,169); two gateways, 4 and
	// 8 each delivered p99 4.8-5.0 s at 686-702/s, where 32 each gave
	// 7.9-8.7 s at 534-571/s; ten webhook destinations at 200/s, p99
	// 0.93-2.07 s against 1.25-3.89 s. (Before deliveries were settled
	// in batches, a pool of 6 starved the delivery workers; it no longer
	// does.) A server with more cores may gain from more.
	DefaultMaxConns = 8
)

// Options tune a Store. The zero value is ready to use.
type Options struct {
	// Metrics receives append latencies, batch sizes and errors; nil records
	// nothing.
	Metrics *store.Metrics
	// Logger receives migration and listener events; nil means slog.Default().
	Logger *slog.Logger
	// MaxBatch caps the appends committed in one transaction (default
	// DefaultMaxBatch).
	MaxBatch int
	// Workers is the number of group-commit transactions that may be in
	// flight at once (default DefaultWorkers). Sessions are spread over the
	// workers by a hash of their id.
	Workers int
}

// Store is the PostgreSQL backend of store.Store. It is safe for concurrent
// use, also with other Stores (in this or other processes) on the same
// database and schema.
type Store struct {
	pool    *pgxpool.Pool
	metrics *store.Metrics
	log     *slog.Logger
	channel string
	// shards are the group committers, one worker each; a session's appends
	// always go to the same shard, so concurrent batches of this process
	// never wait for each other's session locks.
	shards []*groupcommit.Committer[store.AppendRequest, store.AppendResult]
	// settles groups concurrent Settle calls into shared transactions.
	settles *groupcommit.Committer[settleReq, []store.Delivery]
	// attempts groups concurrent RecordWebhookAttempt calls.
	attempts *groupcommit.Committer[store.Attempt, struct{}]

	hub store.Hub
	// tail keeps the newest records this process appended, for Read, each
	// session's marked with its news count when the batch that last
	// appended to it began.
	tail store.Tail
	// news counts, per session, what was heard of other processes' appends
	// (see news).
	news news

	// stalls is Claim's sweep for conversations stalled behind a head
	// flagged waiting (see "Stalled conversations").
	stalls stallSweep

	// consumers holds the cursor consumers known to be registered in the
	// database (see registerConsumer).
	consumers sync.Map

	listener     *listener
	stopListener context.CancelFunc
	listenerDone chan struct{}

	// sleep, if not nil, replaces retry.Sleep between the tries of an
	// append batch (for tests).
	sleep func(ctx context.Context, d time.Duration) bool

	closed    atomic.Bool
	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// Open connects to the database named by dsn (a postgres:// URL or key=value
// string; pgxpool's pool_* settings are honoured), applies pending schema
// migrations and starts the group committer and the notification listener.
// ctx bounds the connecting and migrating only. The caller must Close the
// Store.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		// Every commit worker holds a connection for its transaction; leave
		// room for the rest beside them. pgx's own default (the number of
		// this host's CPUs) is not used: what the pool should match is the
		// server's cores, and with it the size depended on the host, above
		// DefaultMaxConns on one with more than eight CPUs.
		cfg.MaxConns = max(int32(opts.Workers)+4, DefaultMaxConns)
	}
	// backends holds the backend pids of the pool's connections. Every
	// write of this store that notifies also signals this process's
	// subscribers itself, so the listener skips the notifications these
	// backends send, which would only signal them again, late (and
	// spuriously, for a subscription made since).
	backends := &sync.Map{}
	listenConfig := cfg.ConnConfig.Copy() // untraced: it only listens
	var tracer *writeTracer
	if opts.Metrics != nil {
		tracer = newWriteTracer(opts.Metrics)
		cfg.ConnConfig.Tracer = tracer
	}
	afterConnect, beforeClose := cfg.AfterConnect, cfg.BeforeClose
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		if afterConnect != nil {
			if err := afterConnect(ctx, conn); err != nil {
				return err
			}
		}
		backends.Store(conn.PgConn().PID(), true)
		return nil
	}
	cfg.BeforeClose = func(conn *pgx.Conn) {
		backends.Delete(conn.PgConn().PID())
		if tracer != nil {
			tracer.forget(conn)
		}
		if beforeClose != nil {
			beforeClose(conn)
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if err := migrate(ctx, pool, ms, opts.Logger); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if err := clampJournalXIDs(ctx, pool, opts.Logger); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if err := drainLegacyFollowers(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	schema, err := currentSchema(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	warnAutovacuumOff(ctx, pool, opts.Logger)

	s := &Store{
		pool:    pool,
		metrics: opts.Metrics,
		log:     opts.Logger,
		channel: channelName(schema),
	}
	s.listener = &listener{
		config:  listenConfig,
		channel: s.channel,
		publish: s.hub.Publish,
		own: func(pid uint32) bool {
			_, ok := backends.Load(pid)
			return ok
		},
		wakeAll: s.wakeAll,
		heard: func(id string) {
			if id != store.RuntimeWork { // no session's news
				s.news.hear(id)
			}
		},
		log:    opts.Logger,
		health: healthInterval,
	}
	// Listen before returning, so that a Subscribe right after Open already
	// hears other processes.
	conn, err := s.listener.connect(ctx)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: listen: %w", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	s.stopListener = cancel
	s.listenerDone = make(chan struct{})
	go func() {
		defer close(s.listenerDone)
		s.listener.run(lctx, conn)
	}()
	s.shards = make([]*groupcommit.Committer[store.AppendRequest, store.AppendResult], opts.Workers)
	for i := range s.shards {
		s.shards[i] = groupcommit.New(1, opts.MaxBatch, s.commit, groupcommit.Options{OnBatch: s.metrics.ObserveBatch})
	}
	s.settles = groupcommit.New(opts.Workers, opts.MaxBatch, s.commitSettles, groupcommit.Options{})
	s.attempts = groupcommit.New(opts.Workers, opts.MaxBatch, s.commitAttempts, groupcommit.Options{})
	return s, nil
}

// channelName is the NOTIFY channel for a schema. Channels are per database,
// not per schema, so the schema is part of the name; a name that would
// exceed PostgreSQL's 63-byte identifier limit uses a hash of the schema.
// The SQL function notify_channel (migration 0006), which the journal's
// triggers notify on, computes the same name.
func channelName(schema string) string {
	const prefix = "switchboard_log:"
	if len(prefix)+len(schema) <= 63 {
		return prefix + schema
	}
	sum := sha256.Sum256([]byte(schema))
	return prefix + hex.EncodeToString(sum[:16])
}

// Close stops taking appends, waits for those in flight to commit, stops the
// listener and closes the pool. It is safe to call more than once; later
// calls return nil.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		var wg sync.WaitGroup
		for _, c := range s.shards {
			wg.Go(c.Close)
		}
		wg.Go(s.settles.Close)
		wg.Go(s.attempts.Close)
		wg.Wait()
		s.stopListener()
		<-s.listenerDone
		s.pool.Close()
	})
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("postgres: ping: %w", store.ErrClosed)
	}
	if err := s.pool.Ping(ctx); err != nil {
		return s.fail("ping", err)
	}
	return nil
}

// fail wraps err for operation op, counts it, and reports ErrClosed when the
// store was closed under the operation.
func (s *Store) fail(op string, err error) error {
	if s.closed.Load() {
		return fmt.Errorf("postgres: %s: %w", op, store.ErrClosed)
	}
	if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		s.metrics.Error(op)
	}
	if cannotWrite(err) {
		return fmt.Errorf("postgres: %s: %w: %w", op, store.ErrUnavailable, err)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// cannotWrite reports whether err is the database failing for a reason
// outside the request, so that the call may succeed later (see
// store.ErrUnavailable): the connection could not be made or was lost
// (SQLSTATE class 08, or no SQLSTATE and a network error), the server is
// short of resources such as disk space (class 53) or is shutting down
// (57P), or the transaction is read-only (25006, a hot standby or
// default_transaction_read_only).
func cannotWrite(err error) bool {
	if errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if code := pgCode(err); code != "" {
		return code == "25006" || strings.HasPrefix(code, "08") ||
			strings.HasPrefix(code, "53") || strings.HasPrefix(code, "57P")
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.ErrUnexpectedEOF) || pgconn.SafeToRetry(err)
}

func (s *Store) checkOpen(op string) error {
	if s.closed.Load() {
		return fmt.Errorf("postgres: %s: %w", op, store.ErrClosed)
	}
	return nil
}

const sessionColumns = "id, state, metadata, last_seq, created_at, updated_at"

func scanSession(row pgx.Row) (store.Session, error) {
	var sess store.Session
	var state string
	err := row.Scan(&sess.ID, &state, &sess.Metadata, &sess.LastSeq, &sess.CreatedAt, &sess.UpdatedAt)
	if err != nil {
		return store.Session{}, err
	}
	sess.State = store.State(state)
	if sess.Metadata == nil {
		sess.Metadata = map[string]string{}
	}
	sess.CreatedAt = sess.CreatedAt.UTC()
	sess.UpdatedAt = sess.UpdatedAt.UTC()
	return sess, nil
}

// CreateSession creates session id, idle, with metadata, journaling its
// creation, or returns the existing session of that id unchanged with
// created false.
func (s *Store) CreateSession(ctx context.Context, id string, metadata map[string]string) (store.Session, bool, error) {
	if err := s.checkOpen("create session"); err != nil {
		return store.Session{}, false, err
	}
	if err := errors.Join(store.CheckID("session id", id), store.CheckMetadata("metadata", metadata)); err != nil {
		return store.Session{}, false, fmt.Errorf("postgres: create session: %w", err)
	}
	if metadata == nil {
		metadata = map[string]string{}
	}
	sess, err := scanSession(s.pool.QueryRow(ctx, `
		INSERT INTO sessions (id, state, metadata, created_at, updated_at)
		VALUES ($1, 'idle', $2, now(), now())
		ON CONFLICT (id) DO NOTHING
		RETURNING `+sessionColumns, id, metadata))
	switch {
	case err == nil:
		// The trigger signals other processes at commit; this one now.
		s.hub.Publish(id)
		return sess, true, nil
	case errors.Is(err, pgx.ErrNoRows):
		// It exists: ON CONFLICT waited for its creator to commit.
		sess, err = s.Session(ctx, id)
		return sess, false, err
	default:
		return store.Session{}, false, s.fail("create session", err)
	}
}

// Session returns session id, or ErrNotFound.
func (s *Store) Session(ctx context.Context, id string) (store.Session, error) {
	if err := s.checkOpen("session"); err != nil {
		return store.Session{}, err
	}
	if err := store.CheckLookup("session", id); err != nil {
		return store.Session{}, fmt.Errorf("postgres: %w", err)
	}
	sess, err := scanSession(s.pool.QueryRow(ctx, "SELECT "+sessionColumns+" FROM sessions WHERE id = $1", id))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.Session{}, fmt.Errorf("postgres: session %q: %w", id, store.ErrNotFound)
	case err != nil:
		return store.Session{}, s.fail("session", err)
	}
	return sess, nil
}

// ListSessions returns up to limit sessions whose ids sort (bytewise) after
// after, in id order.
func (s *Store) ListSessions(ctx context.Context, after string, limit int) ([]store.Session, error) {
	return s.listSessions(ctx, "after", after, limit, "WHERE id > $1 ORDER BY id LIMIT $2", after)
}

// ListSessionsBefore returns up to limit sessions with ids before the
// cursor before ("" for the newest), newest first, along the primary key.
func (s *Store) ListSessionsBefore(ctx context.Context, before string, limit int) ([]store.Session, error) {
	if before == "" {
		return s.listSessions(ctx, "before", before, limit, "ORDER BY id DESC LIMIT $1")
	}
	return s.listSessions(ctx, "before", before, limit, "WHERE id < $1 ORDER BY id DESC LIMIT $2", before)
}

// listSessions runs a session listing whose last parameter is the limit,
// after checking its cursor.
func (s *Store) listSessions(ctx context.Context, name, cursor string, limit int, where string, args ...any) ([]store.Session, error) {
	if err := s.checkOpen("list sessions"); err != nil {
		return nil, err
	}
	if err := store.CheckText(name, cursor); err != nil {
		return nil, fmt.Errorf("postgres: list sessions: %w", err)
	}
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, "SELECT "+sessionColumns+" FROM sessions "+where, append(args, limit)...)
	if err != nil {
		return nil, s.fail("list sessions", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Session, error) { return scanSession(row) })
	if err != nil {
		return nil, s.fail("list sessions", err)
	}
	return out, nil
}

// SetState sets a session's state, journaling the change; changed is false
// when it already was state. ErrNotFound for an unknown session.
func (s *Store) SetState(ctx context.Context, id string, state store.State) (bool, error) {
	if err := s.checkOpen("set state"); err != nil {
		return false, err
	}
	if !state.Valid() {
		return false, fmt.Errorf("postgres: set state: %w: state %q is not idle or running", store.ErrInvalid, state)
	}
	if err := store.CheckLookup("session", id); err != nil {
		return false, fmt.Errorf("postgres: set state: %w", err)
	}
	var changed, exists bool
	err := s.pool.QueryRow(ctx, `
		WITH u AS (
			UPDATE sessions SET state = $2, updated_at = now()
			WHERE id = $1 AND state <> $2
			RETURNING 1
		)
		SELECT EXISTS (SELECT 1 FROM u), EXISTS (SELECT 1 FROM sessions WHERE id = $1)`,
		id, string(state)).Scan(&changed, &exists)
	if err != nil {
		return false, s.fail("set state", err)
	}
	if !exists {
		return false, fmt.Errorf("postgres: set state of %q: %w", id, store.ErrNotFound)
	}
	if changed {
		s.hub.Publish(id)
	}
	return changed, nil
}

// Lookup returns the record of sessionID whose envelope id is envelopeID,
// or an error wrapping store.ErrNotFound, along the records' envelope id
// index.
func (s *Store) Lookup(ctx context.Context, sessionID, envelopeID string) (store.Record, error) {
	if err := s.checkOpen("lookup"); err != nil {
		return store.Record{}, err
	}
	if store.CheckLookup("session", sessionID) != nil || store.CheckText("envelope id", envelopeID) != nil {
		return store.Record{}, fmt.Errorf("postgres: lookup %q in session %q: %w", envelopeID, sessionID, store.ErrNotFound)
	}
	rec, err := scanRecord(s.pool.QueryRow(ctx, "SELECT "+recordColumns+" FROM records WHERE session_id = $1 AND envelope_id = $2",
		sessionID, envelopeID))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.Record{}, fmt.Errorf("postgres: lookup %q in session %q: %w", envelopeID, sessionID, store.ErrNotFound)
	case err != nil:
		return store.Record{}, s.fail("lookup", err)
	}
	return rec, nil
}

// Read returns up to limit records of a session with Seq > after, in order,
// or ErrNotFound for an unknown session. It costs one round trip.
//
// Records this process just appended come from its tail (store.Tail) when
// it holds them: the round trip then only reads the session's last seq,
// and the tail answers when it holds every record up to it (or up to
// limit), so that a record another process appended meanwhile is never
// hidden. Records are never changed or removed once committed, and a
// session's seqs have no gaps, so what the tail holds is what the
// database holds.
func (s *Store) Read(ctx context.Context, sessionID string, after int64, limit int) ([]store.Record, error) {
	return s.read(ctx, sessionID, after, limit, false)
}

// ReadFollowing is Read for a follower (store.FollowReader). Besides a
// full page, as Read does, it returns the records the tail holds without a
// query when nothing was heard of another process's appends to their
// session since the batch that last appended to it began (news): a record
// another process appended after that batch committed is signalled to the
// follower when its notification arrives, and the next read finds the
// session's count moved.
func (s *Store) ReadFollowing(ctx context.Context, sessionID string, after int64, limit int) ([]store.Record, error) {
	return s.read(ctx, sessionID, after, limit, true)
}

var _ store.FollowReader = (*Store)(nil)

func (s *Store) read(ctx context.Context, sessionID string, after int64, limit int, follow bool) ([]store.Record, error) {
	if err := s.checkOpen("read"); err != nil {
		return nil, err
	}
	if err := store.CheckLookup("session", sessionID); err != nil {
		return nil, fmt.Errorf("postgres: read: %w", err)
	}
	limit = max(limit, 0)
	if recs, mark, ok := s.tail.ReadMarked(sessionID, after, limit); ok {
		// A full page is the answer whatever was appended after it.
		if len(recs) == limit || follow && mark == s.news.of(sessionID) {
			return recs, nil
		}
		var last int64
		switch err := s.pool.QueryRow(ctx, "SELECT last_seq FROM sessions WHERE id = $1", sessionID).Scan(&last); {
		case errors.Is(err, pgx.ErrNoRows):
			return nil, fmt.Errorf("postgres: read %q: %w", sessionID, store.ErrNotFound)
		case err != nil:
			return nil, s.fail("read", err)
		}
		if recs[len(recs)-1].Seq >= min(after+int64(limit), last) {
			return recs, nil
		}
	}
	// A session's records say that it exists: only a read that finds none
	// asks whether it does.
	rows, _ := s.pool.Query(ctx, "SELECT "+recordColumns+" FROM records WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
		sessionID, after, limit)
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Record, error) { return scanRecord(row) })
	if err != nil {
		return nil, s.fail("read", err)
	}
	if len(recs) > 0 {
		return recs, nil
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM sessions WHERE id = $1)", sessionID).Scan(&exists); err != nil {
		return nil, s.fail("read", err)
	}
	if !exists {
		return nil, fmt.Errorf("postgres: read %q: %w", sessionID, store.ErrNotFound)
	}
	return recs, nil
}

// warnAutovacuumOff logs a warning when the server's autovacuum is off.
// Every message updates and deletes rows of the queue tables (sessions,
// cursors, pending_work, deliveries); without vacuum their dead rows are
// never reclaimed, the tables and their indexes grow without end, and
// their statistics are never refreshed.
func warnAutovacuumOff(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) {
	var on string
	if err := pool.QueryRow(ctx, "SHOW autovacuum").Scan(&on); err != nil || on == "on" {
		return
	}
	log.Warn("postgres: autovacuum is off, so the queue tables grow with every message and are never cleaned; set autovacuum = on in postgresql.conf (or VACUUM ANALYZE them on a schedule)")
}

// Subscribe returns a channel that receives a value (coalesced) after
// records are appended to sessionID, or a session event of it is journaled,
// by this or another process using the same database and schema (the
// journal's triggers notify for events). Call cancel to release it.
func (s *Store) Subscribe(sessionID string) (<-chan struct{}, func()) {
	return s.hub.Subscribe(sessionID)
}

// wakeAll signals every subscribed session. The listener calls it after a
// reconnect, since notifications sent while it was away are lost.
func (s *Store) wakeAll() { s.hub.PublishAll() }

// CreateToken stores t. Its id and hash must be new.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	if err := s.checkOpen("create token"); err != nil {
		return err
	}
	scopes := make([]string, len(t.Scopes))
	for i, sc := range t.Scopes {
		scopes[i] = string(sc)
	}
	sessions := orEmpty(t.Sessions)
	for _, v := range append([]string{t.ID, t.Name}, append(scopes, sessions...)...) {
		if err := store.CheckText("token field", v); err != nil {
			return fmt.Errorf("postgres: create token: %w", err)
		}
	}
	created := t.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO tokens (id, hash, name, scopes, sessions, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		t.ID, t.Hash[:], t.Name, scopes, sessions, created)
	if err != nil {
		return s.fail("create token", err)
	}
	return nil
}

// TokenByHash finds the token whose secret hashes to hash, or ErrNotFound.
func (s *Store) TokenByHash(ctx context.Context, hash [32]byte) (store.Token, error) {
	if err := s.checkOpen("token"); err != nil {
		return store.Token{}, err
	}
	var t store.Token
	var h []byte
	var scopes []string
	err := s.pool.QueryRow(ctx, "SELECT id, hash, name, scopes, sessions, created_at FROM tokens WHERE hash = $1", hash[:]).
		Scan(&t.ID, &h, &t.Name, &scopes, &t.Sessions, &t.CreatedAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.Token{}, fmt.Errorf("postgres: token: %w", store.ErrNotFound)
	case err != nil:
		return store.Token{}, s.fail("token", err)
	}
	copy(t.Hash[:], h)
	t.Scopes = make([]store.Scope, len(scopes))
	for i, sc := range scopes {
		t.Scopes[i] = store.Scope(sc)
	}
	if len(t.Sessions) == 0 {
		t.Sessions = nil
	}
	t.CreatedAt = t.CreatedAt.UTC()
	return t, nil
}

// CountTokens returns how many tokens are stored.
func (s *Store) CountTokens(ctx context.Context) (int, error) {
	if err := s.checkOpen("count tokens"); err != nil {
		return 0, err
	}
	var n int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM tokens").Scan(&n); err != nil {
		return 0, s.fail("count tokens", err)
	}
	return n, nil
}

// pgCode returns the SQLSTATE of err, or "" when the server did not send one.
func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
