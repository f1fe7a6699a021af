package postgres

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboardhq/switchboard/internal/retry"
)

// Listener timings.
const (
	// healthInterval is how long the listener waits for a notification
	// before pinging its connection, to notice a dead one.
	healthInterval = 30 * time.Second
	pingTimeout    = 5 * time.Second
	minBackoff     = 100 * time.Millisecond
	maxBackoff     = 5 * time.Second
)

// listener holds one dedicated connection LISTENing on the store's channel
// and turns each notification (a session id) into a hub signal. When the
// connection fails it reconnects with capped, jittered exponential backoff
// (retry.Jitter) and then wakes every subscriber, since notifications sent
// in the gap are lost.
type listener struct {
	config  *pgx.ConnConfig
	channel string
	publish func(sessionID string)
	// own, if not nil, reports whether a backend pid is one of the store's
	// own connections, whose notifications are skipped (the store signalled
	// its subscribers itself).
	own     func(pid uint32) bool
	wakeAll func()
	// heard, if not nil, is called with the session id before the
	// subscribers are signalled of another process's notification, and
	// with "" after a reconnection (any notification may have been lost),
	// before they are all woken.
	heard func(sessionID string)
	log   *slog.Logger
	// health is how long to wait for a notification before pinging the
	// connection (healthInterval; shorter in tests).
	health time.Duration
	// pinged, if not nil, is called after each successful health ping (for
	// tests).
	pinged func()
	// sleep, if not nil, replaces retry.Sleep between reconnects (for
	// tests).
	sleep func(ctx context.Context, d time.Duration) bool

	pid atomic.Uint32 // backend pid of the current connection, for tests
}

// connect opens a connection and LISTENs on the channel.
func (l *listener) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, l.config.Copy())
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{l.channel}.Sanitize()); err != nil {
		closeConn(conn)
		return nil, err
	}
	l.pid.Store(conn.PgConn().PID())
	return conn, nil
}

// run owns conn, and every connection after it, until ctx is cancelled.
func (l *listener) run(ctx context.Context, conn *pgx.Conn) {
	for {
		err := l.listen(ctx, conn)
		closeConn(conn)
		if ctx.Err() != nil {
			return
		}
		l.log.Warn("postgres: notification listener lost its connection; reconnecting", "err", err)
		if conn = l.reconnect(ctx); conn == nil {
			return
		}
		l.log.Info("postgres: notification listener reconnected")
		l.hear("")
		l.wakeAll()
	}
}

// listen publishes notifications from conn until conn fails or ctx ends.
func (l *listener) listen(ctx context.Context, conn *pgx.Conn) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, l.health)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			if l.own == nil || !l.own(n.PID) {
				l.hear(n.Payload)
				l.publish(n.Payload)
			}
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			// Quiet for a while: make sure the connection is still alive.
			pctx, cancel := context.WithTimeout(ctx, pingTimeout)
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				return err
			}
			if l.pinged != nil {
				l.pinged()
			}
		default:
			return err
		}
	}
}

func (l *listener) hear(sessionID string) {
	if l.heard != nil {
		l.heard(sessionID)
	}
}

// reconnect retries connect until it succeeds (returning the connection)
// or ctx ends (returning nil), waiting retry.Jitter from minBackoff up to
// maxBackoff before each try, so that replicas that lost the server
// together do not return in lockstep.
func (l *listener) reconnect(ctx context.Context) *pgx.Conn {
	sleep := l.sleep
	if sleep == nil {
		sleep = retry.Sleep
	}
	wait := retry.Jitter(1, minBackoff, maxBackoff)
	for attempt := 1; ; attempt++ {
		if !sleep(ctx, wait) {
			return nil
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		conn, err := l.connect(cctx)
		cancel()
		if err == nil {
			return conn
		}
		if ctx.Err() != nil {
			return nil
		}
		wait = retry.Jitter(attempt+1, minBackoff, maxBackoff)
		l.log.Warn("postgres: notification listener reconnect failed", "err", err, "retry_in", wait)
	}
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}
