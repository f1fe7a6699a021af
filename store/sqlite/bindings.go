package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/ids"
	"github.com/switchboardhq/switchboard/store"
)

var errBindingNotFound = fmt.Errorf("sqlite: binding: %w", store.ErrNotFound)

// bindingSelect reads what scanBinding scans.
const bindingSelect = `SELECT b.id, s.id, b.conv_source, b.conv_ref, b.route, b.paused_until, b.paused_reason, b.created_at
	FROM bindings b JOIN sessions s ON s.sid = b.sid`

// bindingWrites are the writer's statements for bindings.
type bindingWrites struct {
	byConv, byID, insert, pause *sql.Stmt
}

func (b *bindingWrites) defs() []stmtDef {
	return []stmtDef{
		{&b.byConv, bindingSelect + ` WHERE b.conv_source = ? AND b.conv_ref = ?`},
		{&b.byID, bindingSelect + ` WHERE b.id = ?`},
		{&b.insert, `INSERT INTO bindings (id, sid, conv_source, conv_ref, route, paused_until, paused_reason, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`},
		{&b.pause, `UPDATE bindings SET paused_until = ?, paused_reason = ? WHERE id = ?`},
	}
}

// bindingReads are the readers' statements for bindings.
type bindingReads struct {
	byConv, ofSession, latestInbound *sql.Stmt
}

func (b *bindingReads) defs() []stmtDef {
	return []stmtDef{
		{&b.byConv, bindingSelect + ` WHERE b.conv_source = ? AND b.conv_ref = ?`},
		{&b.ofSession, bindingSelect + ` WHERE s.id = ? ORDER BY b.created_at, b.bid`},
		// The newest first along records_seq, skipping outbound records and
		// those without a conversation.
		{&b.latestInbound, `SELECT conv_source, conv_ref FROM records
			WHERE sid = (SELECT sid FROM sessions WHERE id = ?) AND seq < ? AND direction = 'inbound'
				AND (conv_source <> '' OR conv_ref <> '')
			ORDER BY seq DESC LIMIT 1`},
	}
}

func scanBinding(row scanner) (store.Binding, error) {
	var (
		b       store.Binding
		paused  sql.NullInt64
		created int64
	)
	if err := row.Scan(&b.ID, &b.SessionID, &b.Conversation.Source, &b.Conversation.Ref, &b.Route,
		&paused, &b.PausedReason, &created); err != nil {
		return store.Binding{}, err
	}
	if paused.Valid {
		b.PausedUntil = time.Unix(0, paused.Int64).UTC()
	}
	b.CreatedAt = time.Unix(0, created).UTC()
	return b, nil
}

// Bind binds b.Conversation to b.SessionID, creating that session (idle,
// with metadata) when it does not exist, in one transaction. When the
// conversation is bound already it changes nothing and returns the existing
// binding with created false. An empty b.ID gets a new id, a zero
// b.CreatedAt the current time.
func (s *Store) Bind(ctx context.Context, b store.Binding, metadata map[string]string) (store.Binding, bool, error) {
	op, err := bindOp(b, metadata)
	if err != nil {
		return store.Binding{}, false, fmt.Errorf("sqlite: bind: %w", err)
	}
	res, err := s.write(ctx, "bind", op)
	if err != nil {
		return store.Binding{}, false, err
	}
	return res.val.(store.Binding), res.ok, nil
}

func bindOp(b store.Binding, metadata map[string]string) (writeOp, error) {
	if err := store.CheckBinding(b, metadata); err != nil {
		return nil, err
	}
	meta, err := sessionMetadata(b.SessionID, metadata)
	if err != nil {
		return nil, err
	}
	if b.ID == "" {
		b.ID = ids.New("cnv")
	}
	if b.CreatedAt.IsZero() {
		b.CreatedAt = time.Now()
	}
	created, err := nanos("created_at", b.CreatedAt)
	if err != nil {
		return nil, err
	}
	pausedUntil, err := optionalNanos("paused_until", b.PausedUntil)
	if err != nil {
		return nil, err
	}
	b.CreatedAt = time.Unix(0, created).UTC()
	if !b.PausedUntil.IsZero() {
		b.PausedUntil = b.PausedUntil.UTC()
	}
	return func(ctx context.Context, w *writer, now int64) (groupcommitResult, error) {
		return w.bind(ctx, &b, meta, pausedUntil, created, now)
	}, nil
}

// optionalNanos is nanos for a time where zero means none: it returns nil
// for the zero time.
func optionalNanos(what string, t time.Time) (any, error) {
	if t.IsZero() {
		return nil, nil
	}
	return nanos(what, t)
}

// bind inserts b, created at created (Unix nanoseconds) and paused until
// pausedUntil, unless its conversation is bound already, creating its
// session with metadata meta when there is none.
func (w *writer) bind(ctx context.Context, b *store.Binding, meta string, pausedUntil any, created, now int64) (groupcommitResult, error) {
	existing, err := scanBinding(w.bindings.byConv.QueryRowContext(ctx, b.Conversation.Source, b.Conversation.Ref))
	switch {
	case err == nil:
		return groupcommitResult{Val: writeResult{val: existing}}, nil
	case !errors.Is(err, sql.ErrNoRows):
		return groupcommitResult{}, fmt.Errorf("read binding: %w", err)
	}
	bs, err := w.session(ctx, b.SessionID)
	if err != nil {
		return groupcommitResult{}, err
	}
	if bs == nil {
		if bs, err = w.newSession(ctx, b.SessionID, meta, now); err != nil {
			return groupcommitResult{}, err
		}
		if bs == nil {
			// w.session found none in this transaction: cannot happen.
			return groupcommitResult{}, fmt.Errorf("insert session %s: it exists already", b.SessionID)
		}
	}
	if _, err := w.bindings.insert.ExecContext(ctx, b.ID, bs.sid, b.Conversation.Source, b.Conversation.Ref,
		b.Route, pausedUntil, b.PausedReason, created); err != nil {
		return groupcommitResult{}, fmt.Errorf("insert binding: %w", err)
	}
	return groupcommitResult{Val: writeResult{val: *b, ok: true}}, nil
}

// BindingFor returns the binding of conv, or an error wrapping
// store.ErrNotFound.
func (s *Store) BindingFor(ctx context.Context, conv envelope.Conversation) (store.Binding, error) {
	b, err := scanBinding(s.r.bindings.byConv.QueryRowContext(ctx, conv.Source, conv.Ref))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.Binding{}, errBindingNotFound
	case err != nil:
		return store.Binding{}, s.readErr("binding_for", err)
	}
	return b, nil
}

// SessionBindings lists the bindings of session sessionID, oldest first.
// An unknown session has none.
func (s *Store) SessionBindings(ctx context.Context, sessionID string) ([]store.Binding, error) {
	rows, err := s.r.bindings.ofSession.QueryContext(ctx, sessionID)
	if err != nil {
		return nil, s.readErr("session_bindings", err)
	}
	out, err := collect(rows, scanBinding)
	if err != nil {
		return nil, s.readErr("session_bindings", err)
	}
	return out, nil
}

// PauseBinding pauses binding id until the given time with a reason, or
// resumes it when until is zero, and returns the binding as changed. An
// unknown binding gives an error wrapping store.ErrNotFound.
func (s *Store) PauseBinding(ctx context.Context, id string, until time.Time, reason string) (store.Binding, error) {
	pausedUntil, err := optionalNanos("until", until)
	if err != nil {
		return store.Binding{}, fmt.Errorf("sqlite: pause binding: %w", err)
	}
	if until.IsZero() {
		reason = ""
	}
	if err := store.CheckText("paused reason", reason); err != nil {
		return store.Binding{}, fmt.Errorf("sqlite: pause binding: %w", err)
	}
	res, err := s.write(ctx, "pause_binding", func(ctx context.Context, w *writer, _ int64) (groupcommitResult, error) {
		return w.pauseBinding(ctx, id, pausedUntil, reason)
	})
	if err != nil {
		return store.Binding{}, err
	}
	return res.val.(store.Binding), nil
}

func (w *writer) pauseBinding(ctx context.Context, id string, until any, reason string) (groupcommitResult, error) {
	res, err := w.bindings.pause.ExecContext(ctx, until, reason, id)
	if err != nil {
		return groupcommitResult{}, fmt.Errorf("update binding: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return groupcommitResult{}, fmt.Errorf("update binding: %w", err)
	}
	if n == 0 {
		return groupcommitResult{Err: errBindingNotFound}, nil
	}
	b, err := scanBinding(w.bindings.byID.QueryRowContext(ctx, id))
	if err != nil {
		return groupcommitResult{}, fmt.Errorf("read binding: %w", err)
	}
	return groupcommitResult{Val: writeResult{val: b}}, nil
}

// LatestInbound returns the conversation of the newest inbound record of
// session sessionID with Seq < before that names one, or the zero
// conversation when there is none (or no such session).
func (s *Store) LatestInbound(ctx context.Context, sessionID string, before int64) (envelope.Conversation, error) {
	var c envelope.Conversation
	err := s.r.bindings.latestInbound.QueryRowContext(ctx, sessionID, before).Scan(&c.Source, &c.Ref)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return envelope.Conversation{}, nil
	case err != nil:
		return envelope.Conversation{}, s.readErr("latest_inbound", err)
	}
	return c, nil
}
