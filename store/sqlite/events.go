package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// The journal of session events is written by the triggers of migration 7,
// in the transaction of the change; this file reads it.

// eventReads are the readers' statements for session events and cursors.
type eventReads struct {
	journal, ofSession, cursor *sql.Stmt
}

const eventSelect = `SELECT e.eid, s.id, e.type, e.state, e.previous, e.after_seq, e.at
	FROM session_events e JOIN sessions s ON s.sid = e.sid`

func (e *eventReads) defs() []stmtDef {
	return []stmtDef{
		{&e.journal, eventSelect + ` WHERE e.eid > ? ORDER BY e.eid LIMIT ?`},
		{&e.ofSession, eventSelect + ` WHERE e.sid = ? AND e.after_seq BETWEEN ? AND ? ORDER BY e.eid`},
		{&e.cursor, `SELECT seq FROM cursors WHERE consumer = ? AND sid = ?`},
	}
}

func scanEvent(row scanner) (store.SessionEvent, error) {
	var (
		ev               store.SessionEvent
		typ, st, prev    string
		afterSeq, atNano int64
	)
	if err := row.Scan(&ev.ID, &ev.SessionID, &typ, &st, &prev, &afterSeq, &atNano); err != nil {
		return ev, err
	}
	ev.Type, ev.State, ev.Previous = envelope.EventType(typ), store.State(st), store.State(prev)
	ev.AfterSeq, ev.At = afterSeq, time.Unix(0, atNano).UTC()
	return ev, nil
}

// ReadSessionEvents returns up to limit events journaled after the cursor
// after ("" for the start), in journal (eid, hence commit) order, and the
// cursor to pass next. The cursor is the decimal eid of the last event.
func (s *Store) ReadSessionEvents(ctx context.Context, after string, limit int) ([]store.SessionEvent, string, error) {
	var from int64
	if after != "" {
		var err error
		if from, err = strconv.ParseInt(after, 10, 64); err != nil || from < 0 {
			return nil, after, fmt.Errorf("sqlite: read session events: bad cursor %q", after)
		}
	}
	if limit < 1 {
		return nil, after, nil
	}
	rows, err := s.r.events.journal.QueryContext(ctx, from, limit)
	if err != nil {
		return nil, after, s.readErr("read_session_events", err)
	}
	out, err := collect(rows, scanEvent)
	if err != nil {
		return nil, after, s.readErr("read_session_events", err)
	}
	if len(out) == 0 {
		return nil, after, nil
	}
	return out, strconv.FormatInt(out[len(out)-1].ID, 10), nil
}

// SessionEventsOf returns the events of session sessionID with AfterSeq
// between from and to, both included, in eid order; an error wrapping
// store.ErrNotFound for an unknown session.
func (s *Store) SessionEventsOf(ctx context.Context, sessionID string, from, to int64) ([]store.SessionEvent, error) {
	sid, err := s.sid(ctx, sessionID)
	if err != nil {
		return nil, s.readErr("session_events_of", err)
	}
	rows, err := s.r.events.ofSession.QueryContext(ctx, sid, from, to)
	if err != nil {
		return nil, s.readErr("session_events_of", err)
	}
	out, err := collect(rows, scanEvent)
	if err != nil {
		return nil, s.readErr("session_events_of", err)
	}
	return out, nil
}

// Cursor returns consumer's cursor for session sessionID, 0 when it has
// none (or the session does not exist).
func (s *Store) Cursor(ctx context.Context, consumer, sessionID string) (int64, error) {
	sid, err := s.sid(ctx, sessionID)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, s.readErr("cursor", err)
	}
	var seq int64
	err = s.r.events.cursor.QueryRowContext(ctx, consumer, sid).Scan(&seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, s.readErr("cursor", err)
	}
	return seq, nil
}

// sid returns the integer key of session id, or errSessionNotFound.
func (s *Store) sid(ctx context.Context, id string) (int64, error) {
	var sid int64
	err := s.r.sessionSID.QueryRowContext(ctx, id).Scan(&sid)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, errSessionNotFound
	}
	return sid, err
}
