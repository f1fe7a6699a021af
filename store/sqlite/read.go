package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// sessionSelect reads what scanSession scans: a session joined with the
// newest record of its log.
const sessionSelect = `SELECT s.id, s.state, s.metadata, s.created_at, s.updated_at,
	coalesce(r.seq, 0), coalesce(r.stored_at, 0)
	FROM sessions s LEFT JOIN records r
	ON r.sid = s.sid AND r.seq = (SELECT max(seq) FROM records WHERE sid = s.sid)`

// recordColumns are the columns scanRecord reads, in order.
const recordColumns = `seq, envelope_id, direction, stored_at, source, kind, actor_id, actor_display,
	actor_type, conv_source, conv_ref, text, refs, ts, raw, no_turn`

// readStmts are the prepared statements of the reader pool.
type readStmts struct {
	ping, session, listSessions, listSessionsBefore, listSessionsNewest, sessionSID, records, lookup, tokenByHash, countTokens, webhook *sql.Stmt

	events   eventReads
	bindings bindingReads
	outbox   outboxReads
	kv       kvReads

	all []*sql.Stmt // every prepared statement, to close
}

func (r *readStmts) prepare(ctx context.Context, db *sql.DB) error {
	stmts := []stmtDef{
		{&r.ping, `SELECT 1`},
		{&r.session, sessionSelect + ` WHERE s.id = ?`},
		{&r.listSessions, sessionSelect + ` WHERE s.id > ? ORDER BY s.id LIMIT ?`},
		{&r.listSessionsBefore, sessionSelect + ` WHERE s.id < ? ORDER BY s.id DESC LIMIT ?`},
		{&r.listSessionsNewest, sessionSelect + ` ORDER BY s.id DESC LIMIT ?`},
		{&r.sessionSID, `SELECT sid FROM sessions WHERE id = ?`},
		{&r.records, `SELECT ` + recordColumns + ` FROM records
			WHERE sid = (SELECT sid FROM sessions WHERE id = ?) AND seq > ? ORDER BY seq LIMIT ?`},
		{&r.lookup, `SELECT ` + recordColumns + ` FROM records
			WHERE sid = (SELECT sid FROM sessions WHERE id = ?) AND envelope_id = ?`},
		{&r.tokenByHash, `SELECT id, name, scopes, sessions, created_at FROM tokens WHERE hash = ?`},
		{&r.countTokens, `SELECT count(*) FROM tokens`},
		{&r.webhook, `SELECT ` + webhookColumns + ` FROM webhooks WHERE id = ?`},
	}
	stmts = append(stmts, r.events.defs()...)
	stmts = append(stmts, r.bindings.defs()...)
	stmts = append(stmts, r.outbox.defs()...)
	stmts = append(stmts, r.kv.defs()...)
	for _, st := range stmts {
		p, err := db.PrepareContext(ctx, st.query)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", st.query, err)
		}
		*st.dst = p
		r.all = append(r.all, p)
	}
	return nil
}

func (r *readStmts) close() error {
	var errs []error
	for _, st := range r.all {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// collect scans every row of rows with scan and closes rows. It returns nil
// for no rows, and the first error of scan or of the iteration.
func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func scanSession(row scanner) (store.Session, error) {
	var (
		id, state, meta                   string
		created, updated, lastSeq, lastAt int64
	)
	if err := row.Scan(&id, &state, &meta, &created, &updated, &lastSeq, &lastAt); err != nil {
		return store.Session{}, err
	}
	return decodeSession(id, state, meta, created, max(updated, lastAt), lastSeq)
}

func decodeSession(id, state, meta string, created, updated, lastSeq int64) (store.Session, error) {
	s := store.Session{
		ID:        id,
		State:     store.State(state),
		CreatedAt: time.Unix(0, created).UTC(),
		UpdatedAt: time.Unix(0, updated).UTC(),
		LastSeq:   lastSeq,
	}
	if meta != "" && meta != "{}" {
		if err := json.Unmarshal([]byte(meta), &s.Metadata); err != nil {
			return store.Session{}, fmt.Errorf("session %s: decode metadata: %w", id, err)
		}
	}
	return s, nil
}

// scanRecord reads the recordColumns of one record of session sessionID.
func scanRecord(row scanner, sessionID string) (store.Record, error) {
	var (
		rec            store.Record
		e              = &rec.Envelope
		dir, kind, at  string
		stored, tsNano int64
		refs           sql.NullString
	)
	if err := row.Scan(&rec.Seq, &e.ID, &dir, &stored, &e.Source, &kind, &e.Actor.ID, &e.Actor.Display,
		&at, &e.Conversation.Source, &e.Conversation.Ref, &e.Text, &refs, &tsNano, (*[]byte)(&e.Raw), &rec.NoTurn); err != nil {
		return store.Record{}, err
	}
	rec.SessionID = sessionID
	rec.Direction = store.Direction(dir)
	rec.StoredAt = time.Unix(0, stored).UTC()
	e.Kind = envelope.Kind(kind)
	e.Actor.Type = envelope.ActorType(at)
	e.TS = time.Unix(0, tsNano).UTC()
	if refs.Valid {
		var m map[string]string
		if err := json.Unmarshal([]byte(refs.String), &m); err != nil {
			return store.Record{}, fmt.Errorf("record %s/%d: decode refs: %w", sessionID, rec.Seq, err)
		}
		e.Refs = m
	}
	if len(e.Raw) == 0 {
		e.Raw = nil
	}
	return rec, nil
}

// readErr wraps a failure of read operation op and counts it, unless the
// store was closed or the caller gave up.
func (s *Store) readErr(op string, err error) error {
	if s.closed.Load() {
		return fmt.Errorf("sqlite: %s: %w", op, store.ErrClosed)
	}
	if !isClientError(err) {
		s.metrics.Error(op)
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

// Session returns session id, or an error wrapping store.ErrNotFound.
func (s *Store) Session(ctx context.Context, id string) (store.Session, error) {
	sess, err := scanSession(s.r.session.QueryRowContext(ctx, id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.Session{}, errSessionNotFound
	case err != nil:
		return store.Session{}, s.readErr("session", err)
	}
	return sess, nil
}

// ListSessions returns up to limit sessions whose ids sort after after, in
// id order. A limit below 1 returns nothing.
func (s *Store) ListSessions(ctx context.Context, after string, limit int) ([]store.Session, error) {
	return s.listSessions(ctx, "after", after, limit, s.r.listSessions, after)
}

// ListSessionsBefore returns up to limit sessions with ids before the
// cursor before ("" for the newest), newest first.
func (s *Store) ListSessionsBefore(ctx context.Context, before string, limit int) ([]store.Session, error) {
	if before == "" {
		return s.listSessions(ctx, "before", before, limit, s.r.listSessionsNewest)
	}
	return s.listSessions(ctx, "before", before, limit, s.r.listSessionsBefore, before)
}

// listSessions runs one of the session listings, whose last argument is
// the limit, after checking its cursor.
func (s *Store) listSessions(ctx context.Context, name, cursor string, limit int, stmt *sql.Stmt, args ...any) ([]store.Session, error) {
	if err := store.CheckText(name, cursor); err != nil {
		return nil, fmt.Errorf("sqlite: list sessions: %w", err)
	}
	if limit < 1 {
		return nil, nil
	}
	rows, err := stmt.QueryContext(ctx, append(args, limit)...)
	if err != nil {
		return nil, s.readErr("list_sessions", err)
	}
	out, err := collect(rows, scanSession)
	if err != nil {
		return nil, s.readErr("list_sessions", err)
	}
	return out, nil
}

// Read returns up to limit records of sessionID with Seq > after, in order,
// or an error wrapping store.ErrNotFound for an unknown session. A limit
// below 1 returns nothing. Records this process committed lately come
// from the store's tail (store.Tail) without a query.
func (s *Store) Read(ctx context.Context, sessionID string, after int64, limit int) ([]store.Record, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("sqlite: read: %w", store.ErrClosed)
	}
	if recs, ok := s.tail.Read(sessionID, after, limit); ok {
		return recs, nil
	}
	if limit >= 1 {
		recs, err := s.readRecords(ctx, sessionID, after, limit)
		if err != nil || len(recs) > 0 {
			return recs, err
		}
	}
	// Nothing new: tell an empty log from a missing session.
	if _, err := s.sid(ctx, sessionID); err != nil {
		return nil, s.readErr("read", err)
	}
	return nil, nil
}

// Lookup returns the record of sessionID whose envelope id is envelopeID,
// or an error wrapping store.ErrNotFound.
func (s *Store) Lookup(ctx context.Context, sessionID, envelopeID string) (store.Record, error) {
	rec, err := scanRecord(s.r.lookup.QueryRowContext(ctx, sessionID, envelopeID), sessionID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.Record{}, fmt.Errorf("sqlite: lookup %q in session %q: %w", envelopeID, sessionID, store.ErrNotFound)
	case err != nil:
		return store.Record{}, s.readErr("lookup", err)
	}
	return rec, nil
}

func (s *Store) readRecords(ctx context.Context, sessionID string, after int64, limit int) ([]store.Record, error) {
	rows, err := s.r.records.QueryContext(ctx, sessionID, after, limit)
	if err != nil {
		return nil, s.readErr("read", err)
	}
	out, err := collect(rows, func(row scanner) (store.Record, error) { return scanRecord(row, sessionID) })
	if err != nil {
		return nil, s.readErr("read", err)
	}
	return out, nil
}

// TokenByHash returns the token whose secret hashes to hash, or an error
// wrapping store.ErrNotFound.
func (s *Store) TokenByHash(ctx context.Context, hash [32]byte) (store.Token, error) {
	t := store.Token{Hash: hash}
	var scopes, sessions string
	var created int64
	err := s.r.tokenByHash.QueryRowContext(ctx, hash[:]).Scan(&t.ID, &t.Name, &scopes, &sessions, &created)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.Token{}, fmt.Errorf("sqlite: token: %w", store.ErrNotFound)
	case err != nil:
		return store.Token{}, s.readErr("token", err)
	}
	if err := json.Unmarshal([]byte(scopes), &t.Scopes); err != nil {
		return store.Token{}, s.readErr("token", fmt.Errorf("decode scopes: %w", err))
	}
	if err := json.Unmarshal([]byte(sessions), &t.Sessions); err != nil {
		return store.Token{}, s.readErr("token", fmt.Errorf("decode sessions: %w", err))
	}
	t.CreatedAt = time.Unix(0, created).UTC()
	return t, nil
}

// CountTokens returns how many tokens are stored.
func (s *Store) CountTokens(ctx context.Context) (int, error) {
	var n int
	if err := s.r.countTokens.QueryRowContext(ctx).Scan(&n); err != nil {
		return 0, s.readErr("count_tokens", err)
	}
	return n, nil
}
