package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

var _ store.SessionEvents = (*Store)(nil)

// How the journal is followed
//
// The triggers of migration 0006 journal a session's creation and each
// change of its state in the transaction of the change, after the session
// row is written and so under its lock: a session's events are journaled
// one transaction at a time, and their eids rise in commit order.
//
// Across sessions, eids are taken before commit, so a reader following eid
// order could pass an eid whose transaction commits later, and miss it. The
// journal is read instead in (xid, eid) order, and only below the horizon
// of the reader's snapshot, the xid of the oldest transaction still running
// (pg_snapshot_xmin): every transaction below it has ended, and the row of
// one that commits later carries at least its own xid, which is at or above
// the horizon. So nothing new ever lands before the cursor. A row's xid is
// raised to that of the session's previous event when greater, which keeps
// each session's events in eid order in the journal's order.
//
// The price is latency: an event becomes readable once every transaction
// that was running when it committed (on the whole server, not only this
// schema's) has ended; a long transaction holds the journal back.

const eventColumns = "session_events.xid::text, session_events.eid, session_id, type, state, previous, after_seq, at"

// scanEvent scans eventColumns, returning the event and its xid.
func scanEvent(row pgx.Row) (store.SessionEvent, string, error) {
	var (
		ev                 store.SessionEvent
		xid, typ, st, prev string
	)
	if err := row.Scan(&xid, &ev.ID, &ev.SessionID, &typ, &st, &prev, &ev.AfterSeq, &ev.At); err != nil {
		return store.SessionEvent{}, "", err
	}
	ev.Type, ev.State, ev.Previous = envelope.EventType(typ), store.State(st), store.State(prev)
	ev.At = ev.At.UTC()
	return ev, xid, nil
}

// parseEventCursor splits a journal cursor "xid:eid" ("" for the start).
func parseEventCursor(cursor string) (xid string, eid int64, err error) {
	if cursor == "" {
		return "0", 0, nil
	}
	x, e, ok := strings.Cut(cursor, ":")
	if ok {
		var xv uint64
		if xv, err = strconv.ParseUint(x, 10, 64); err == nil {
			if eid, err = strconv.ParseInt(e, 10, 64); err == nil && eid >= 0 {
				return strconv.FormatUint(xv, 10), eid, nil
			}
		}
	}
	return "", 0, fmt.Errorf("bad cursor %q", cursor)
}

// ReadSessionEvents returns up to limit events journaled after the cursor
// after ("" for the start), in journal order, and the cursor to pass next
// (after itself when there is nothing new). It returns only events of
// transactions older than every transaction still running on the server,
// so a later commit never lands before the cursor; each session's events
// come in ID order. The cursor is "xid:eid" of the last event returned. It
// costs one round trip.
func (s *Store) ReadSessionEvents(ctx context.Context, after string, limit int) ([]store.SessionEvent, string, error) {
	if err := s.checkOpen("read session events"); err != nil {
		return nil, after, err
	}
	xid, eid, err := parseEventCursor(after)
	if err != nil {
		return nil, after, fmt.Errorf("postgres: read session events: %w", err)
	}
	if limit <= 0 {
		return nil, after, nil
	}
	// A cursor at or past the server's next xid cannot come from this
	// server (a database restored elsewhere): read from the start.
	rows, err := s.pool.Query(ctx, `WITH h AS (
			SELECT pg_current_snapshot() AS snap
		), c AS (
			SELECT CASE WHEN $1::text::xid8 >= pg_snapshot_xmax(snap) THEN '0'::xid8 ELSE $1::text::xid8 END AS xid,
				CASE WHEN $1::text::xid8 >= pg_snapshot_xmax(snap) THEN 0 ELSE $2::bigint END AS eid
			FROM h
		)
		SELECT `+eventColumns+` FROM session_events, c, h
		WHERE (session_events.xid, session_events.eid) > (c.xid, c.eid) AND session_events.xid < pg_snapshot_xmin(h.snap)
		ORDER BY session_events.xid, session_events.eid
		LIMIT $3`, xid, eid, limit)
	if err != nil {
		return nil, after, s.fail("read session events", err)
	}
	var last string
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.SessionEvent, error) {
		ev, x, err := scanEvent(row)
		last = x + ":" + strconv.FormatInt(ev.ID, 10)
		return ev, err
	})
	if err != nil {
		return nil, after, s.fail("read session events", err)
	}
	if len(evs) == 0 {
		return nil, after, nil
	}
	return evs, last, nil
}

// SessionEventsOf returns the events of session sessionID with AfterSeq
// between from and to, both included, in ID order; an error wrapping
// store.ErrNotFound for an unknown session. It costs one round trip.
func (s *Store) SessionEventsOf(ctx context.Context, sessionID string, from, to int64) ([]store.SessionEvent, error) {
	if err := s.checkOpen("session events"); err != nil {
		return nil, err
	}
	if err := store.CheckLookup("session", sessionID); err != nil {
		return nil, fmt.Errorf("postgres: session events: %w", err)
	}
	b := &pgx.Batch{}
	b.Queue("SELECT EXISTS (SELECT 1 FROM sessions WHERE id = $1)", sessionID)
	b.Queue(`SELECT `+eventColumns+` FROM session_events
		WHERE session_id = $1 AND after_seq BETWEEN $2 AND $3
		ORDER BY eid`, sessionID, from, to)
	var (
		exists bool
		evs    []store.SessionEvent
	)
	err := withBatch(s.pool.SendBatch(ctx, b), func(br pgx.BatchResults) error {
		if err := br.QueryRow().Scan(&exists); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		evs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.SessionEvent, error) {
			ev, _, err := scanEvent(row)
			return ev, err
		})
		return err
	})
	if err != nil {
		return nil, s.fail("session events", err)
	}
	if !exists {
		return nil, fmt.Errorf("postgres: session events of %q: %w", sessionID, store.ErrNotFound)
	}
	return evs, nil
}

// Cursor returns consumer's cursor for session sessionID: the last seq it
// processed, 0 when it has none (or the session does not exist). It costs
// one round trip.
func (s *Store) Cursor(ctx context.Context, consumer, sessionID string) (int64, error) {
	if err := s.checkOpen("cursor"); err != nil {
		return 0, err
	}
	if store.CheckText("cursor", consumer+sessionID) != nil {
		return 0, nil // no cursor can be stored under them
	}
	var seq int64
	err := s.pool.QueryRow(ctx, `SELECT seq FROM cursors WHERE consumer = $1 AND session_id = $2`,
		consumer, sessionID).Scan(&seq)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, s.fail("cursor", err)
	}
	return seq, nil
}

// clampJournalXIDs brings journal rows whose xid is ahead of the server's
// (a database dumped on one server and restored on another, whose xid
// counter is behind) down to the current transaction's xid. Left alone,
// they would hold their sessions' later events (whose xids are raised to
// them) back until the server's counter caught up. It costs one indexed
// statement, which normally changes nothing.
func clampJournalXIDs(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	tag, err := pool.Exec(ctx, `UPDATE session_events SET xid = pg_current_xact_id() WHERE xid > pg_current_xact_id()`)
	if err != nil {
		return fmt.Errorf("clamp journal xids: %w", err)
	}
	if n := tag.RowsAffected(); n > 0 {
		log.Warn("postgres: journal rows carried xids from another server; brought them to this one's", "rows", n)
	}
	return nil
}
