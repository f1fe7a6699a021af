package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/ids"
	"github.com/switchboardhq/switchboard/store"
)

var _ store.Bindings = (*Store)(nil)

const bindingColumns = "id, session_id, conv_source, conv_ref, route, paused_until, paused_reason, created_at"

func scanBinding(row pgx.Row) (store.Binding, error) {
	var b store.Binding
	var paused pgtype.Timestamptz
	err := row.Scan(&b.ID, &b.SessionID, &b.Conversation.Source, &b.Conversation.Ref, &b.Route,
		&paused, &b.PausedReason, &b.CreatedAt)
	if err != nil {
		return store.Binding{}, err
	}
	if paused.Valid {
		b.PausedUntil = paused.Time.UTC()
	}
	b.CreatedAt = b.CreatedAt.UTC()
	return b, nil
}

// nullTime is t as a timestamptz parameter, NULL when t is zero.
func nullTime(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

// Bind binds b.Conversation to b.SessionID, creating that session (idle,
// with metadata) when it does not exist, atomically, also against other
// processes binding the same conversation at once: exactly one binding
// wins and only the winner's session is created. When the conversation is
// already bound it changes nothing and returns the existing binding with
// created false. Creating the session journals its creation. b.ID (a new
// "cnv_" id) and b.CreatedAt (the database's clock) are set when empty. It
// costs one round trip.
func (s *Store) Bind(ctx context.Context, b store.Binding, metadata map[string]string) (store.Binding, bool, error) {
	if err := s.checkOpen("bind"); err != nil {
		return store.Binding{}, false, err
	}
	if err := store.CheckBinding(b, metadata); err != nil {
		return store.Binding{}, false, fmt.Errorf("postgres: bind: %w", err)
	}
	if b.ID == "" {
		b.ID = ids.New("cnv")
	}
	if metadata == nil {
		metadata = map[string]string{}
	}
	// The binding is inserted first and the session only when the binding
	// was: a conversation bound meanwhile (ON CONFLICT waits for its binder
	// to commit) creates no stray session. The foreign key is checked at the
	// end of the statement, when the session row exists.
	batch := &pgx.Batch{}
	batch.Queue(`WITH b AS (
			INSERT INTO bindings (id, session_id, conv_source, conv_ref, route, paused_until, paused_reason, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8::timestamptz, now()))
			ON CONFLICT (conv_source, conv_ref) DO NOTHING
			RETURNING `+bindingColumns+`
		), s AS (
			INSERT INTO sessions (id, state, metadata, created_at, updated_at)
			SELECT session_id, 'idle', $9::jsonb, now(), now() FROM b
			ON CONFLICT (id) DO NOTHING
			RETURNING 1
		)
		SELECT `+bindingColumns+`, EXISTS (SELECT 1 FROM s) FROM b`,
		b.ID, b.SessionID, b.Conversation.Source, b.Conversation.Ref, b.Route,
		nullTime(b.PausedUntil), b.PausedReason, nullTime(b.CreatedAt), metadata)
	batch.Queue(`SELECT `+bindingColumns+` FROM bindings WHERE conv_source = $1 AND conv_ref = $2`,
		b.Conversation.Source, b.Conversation.Ref)
	var out store.Binding
	var created, sessionCreated bool
	err := withBatch(s.pool.SendBatch(ctx, batch), func(br pgx.BatchResults) error {
		var err error
		out, err = scanBinding(suffixedRow{br.QueryRow(), []any{&sessionCreated}})
		switch {
		case err == nil:
			created = true
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		existing, err := scanBinding(br.QueryRow())
		if !created {
			out = existing
		}
		return err
	})
	if err != nil {
		return store.Binding{}, false, s.fail("bind", err)
	}
	if sessionCreated {
		// The trigger signals other processes at commit; this one now.
		s.hub.Publish(b.SessionID)
	}
	return out, created, nil
}

// suffixedRow scans its trailing columns into suffix and hands the rest to
// the caller's destinations, so that scanBinding can read a binding's
// columns followed by others.
type suffixedRow struct {
	row    pgx.Row
	suffix []any
}

func (r suffixedRow) Scan(dest ...any) error {
	return r.row.Scan(append(dest[:len(dest):len(dest)], r.suffix...)...)
}

// BindingFor returns the binding of conv, or ErrNotFound.
func (s *Store) BindingFor(ctx context.Context, conv envelope.Conversation) (store.Binding, error) {
	if err := s.checkOpen("binding"); err != nil {
		return store.Binding{}, err
	}
	if store.CheckText("conversation", conv.Source+conv.Ref) != nil {
		// No binding can name it.
		return store.Binding{}, fmt.Errorf("postgres: binding of %s: %w", conv.Key(), store.ErrNotFound)
	}
	b, err := scanBinding(s.pool.QueryRow(ctx,
		`SELECT `+bindingColumns+` FROM bindings WHERE conv_source = $1 AND conv_ref = $2`, conv.Source, conv.Ref))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.Binding{}, fmt.Errorf("postgres: binding of %s: %w", conv.Key(), store.ErrNotFound)
	case err != nil:
		return store.Binding{}, s.fail("binding", err)
	}
	return b, nil
}

// SessionBindings lists the bindings of a session, oldest first; none for
// an unknown session.
func (s *Store) SessionBindings(ctx context.Context, sessionID string) ([]store.Binding, error) {
	if err := s.checkOpen("session bindings"); err != nil {
		return nil, err
	}
	if store.CheckLookup("session", sessionID) != nil {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx,
		`SELECT `+bindingColumns+` FROM bindings WHERE session_id = $1 ORDER BY created_at, id`, sessionID)
	if err != nil {
		return nil, s.fail("session bindings", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Binding, error) { return scanBinding(row) })
	if err != nil {
		return nil, s.fail("session bindings", err)
	}
	return out, nil
}

// PauseBinding pauses binding id until the given time with a reason, or
// resumes it (clearing the reason) when until is zero. ErrNotFound for an
// unknown binding.
func (s *Store) PauseBinding(ctx context.Context, id string, until time.Time, reason string) (store.Binding, error) {
	if err := s.checkOpen("pause binding"); err != nil {
		return store.Binding{}, err
	}
	if until.IsZero() {
		reason = ""
	}
	if err := errors.Join(store.CheckLookup("binding", id), store.CheckText("paused reason", reason)); err != nil {
		return store.Binding{}, fmt.Errorf("postgres: pause binding: %w", err)
	}
	b, err := scanBinding(s.pool.QueryRow(ctx,
		`UPDATE bindings SET paused_until = $2, paused_reason = $3 WHERE id = $1 RETURNING `+bindingColumns,
		id, nullTime(until), reason))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.Binding{}, fmt.Errorf("postgres: pause binding %q: %w", id, store.ErrNotFound)
	case err != nil:
		return store.Binding{}, s.fail("pause binding", err)
	}
	return b, nil
}

// LatestInbound returns the conversation of the newest inbound record of
// the session with Seq < before that names one, or the zero Conversation
// when there is none (an unknown session included). It walks the session's
// log backwards from before through the primary key.
func (s *Store) LatestInbound(ctx context.Context, sessionID string, before int64) (envelope.Conversation, error) {
	if err := s.checkOpen("latest inbound"); err != nil {
		return envelope.Conversation{}, err
	}
	if store.CheckLookup("session", sessionID) != nil {
		return envelope.Conversation{}, nil
	}
	var c envelope.Conversation
	err := s.pool.QueryRow(ctx, `SELECT conv_source, conv_ref FROM records
		WHERE session_id = $1 AND seq < $2 AND direction = 'inbound' AND (conv_source <> '' OR conv_ref <> '')
		ORDER BY seq DESC LIMIT 1`, sessionID, before).Scan(&c.Source, &c.Ref)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return envelope.Conversation{}, nil
	case err != nil:
		return envelope.Conversation{}, s.fail("latest inbound", err)
	}
	return c, nil
}
