package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/switchboardhq/switchboard/internal/ids"
	"github.com/switchboardhq/switchboard/store"
)

var _ store.Webhooks = (*Store)(nil)

// Webhook writes are rare (an administrator's changes, a destination's
// health) except for the attempts log; all of them go through the single
// writer (writeFunc), so they share its batches and never contend for the
// file's write lock. Reads go to the reader pool, unprepared: they are off
// every hot path.

const webhookColumns = `id, url, description, event_types, sessions, metadata, secret, prev_secret,
	prev_expires, disabled, disabled_reason, failing_since, origin, created_at, updated_at`

func scanWebhook(row scanner) (store.Webhook, error) {
	var (
		w                              store.Webhook
		types, sessions, meta          string
		prevExp, failing, created, upd int64
	)
	if err := row.Scan(&w.ID, &w.URL, &w.Description, &types, &sessions, &meta, &w.Secret, &w.PrevSecret,
		&prevExp, &w.Disabled, &w.DisabledReason, &failing, &w.Origin, &created, &upd); err != nil {
		return store.Webhook{}, err
	}
	if err := errors.Join(json.Unmarshal([]byte(types), &w.EventTypes), json.Unmarshal([]byte(sessions), &w.Sessions),
		json.Unmarshal([]byte(meta), &w.Metadata)); err != nil {
		return store.Webhook{}, fmt.Errorf("decode webhook %s: %w", w.ID, err)
	}
	w.PrevExpires, w.FailingSince = fromNanos(prevExp), fromNanos(failing)
	w.CreatedAt, w.UpdatedAt = time.Unix(0, created).UTC(), time.Unix(0, upd).UTC()
	return w, nil
}

// fromNanos is the time of Unix nanoseconds n, zero for 0.
func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// toNanos is t in Unix nanoseconds, 0 for the zero time.
func toNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// webhookJSON encodes a destination's list and map columns.
func webhookJSON(w *store.Webhook) (types, sessions, meta string, err error) {
	t, err1 := json.Marshal(nonNil(w.EventTypes))
	s, err2 := json.Marshal(nonNil(w.Sessions))
	m := w.Metadata
	if m == nil {
		m = map[string]string{}
	}
	mb, err3 := json.Marshal(m)
	return string(t), string(s), string(mb), errors.Join(err1, err2, err3)
}

// writeFunc runs fn in the writer's next batch, on the writer connection,
// and returns its value. fn may change a destination, so the writer reads
// its list of them again after fn.
func (s *Store) writeFunc(ctx context.Context, op string, fn func(ctx context.Context, now int64) (groupcommitResult, error)) (any, error) {
	res, err := s.write(ctx, op, func(ctx context.Context, w *writer, now int64) (groupcommitResult, error) {
		res, err := fn(ctx, now)
		w.destsValid = false
		return res, err
	})
	return res.val, err
}

// webhookByID reads destination id on the writer connection, inside the
// batch's transaction.
func (s *Store) webhookByID(ctx context.Context, id string) (store.Webhook, error) {
	return scanWebhook(s.wconn.QueryRowContext(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE id = ?`, id))
}

var (
	errWebhookNotFound = fmt.Errorf("sqlite: webhook: %w", store.ErrNotFound)
	errWebhookExists   = fmt.Errorf("sqlite: create webhook: %w", store.ErrConflict)
)

// CreateWebhook stores w. It fails with an error wrapping store.ErrConflict
// when the id is taken.
func (s *Store) CreateWebhook(ctx context.Context, w store.Webhook) (store.Webhook, error) {
	if w.ID == "" || w.URL == "" || w.Secret == "" {
		return store.Webhook{}, fmt.Errorf("sqlite: create webhook: %w: id, url and secret are required", store.ErrInvalid)
	}
	if err := store.CheckWebhook(w); err != nil {
		return store.Webhook{}, fmt.Errorf("sqlite: create webhook: %w", err)
	}
	if w.Origin == "" {
		w.Origin = "api"
	}
	types, sessions, meta, err := webhookJSON(&w)
	if err != nil {
		return store.Webhook{}, fmt.Errorf("sqlite: create webhook: %w", err)
	}
	v, err := s.writeFunc(ctx, "create_webhook", func(ctx context.Context, now int64) (groupcommitResult, error) {
		created, updated := toNanos(w.CreatedAt), toNanos(w.UpdatedAt)
		if created == 0 {
			created = now
		}
		if updated == 0 {
			updated = created
		}
		res, err := s.wconn.ExecContext(ctx, `INSERT INTO webhooks (`+webhookColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			w.ID, w.URL, w.Description, types, sessions, meta, w.Secret, w.PrevSecret, toNanos(w.PrevExpires),
			w.Disabled, w.DisabledReason, toNanos(w.FailingSince), w.Origin, created, updated)
		if err != nil {
			return groupcommitResult{}, fmt.Errorf("insert webhook: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return groupcommitResult{Err: errWebhookExists}, err
		}
		out, err := s.webhookByID(ctx, w.ID)
		return groupcommitResult{Val: writeResult{val: out}}, err
	})
	if err != nil {
		return store.Webhook{}, err
	}
	return v.(store.Webhook), nil
}

// Webhook returns destination id, or an error wrapping store.ErrNotFound.
func (s *Store) Webhook(ctx context.Context, id string) (store.Webhook, error) {
	w, err := scanWebhook(s.r.webhook.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Webhook{}, errWebhookNotFound
	}
	if err != nil {
		return store.Webhook{}, s.readErr("webhook", err)
	}
	return w, nil
}

// ListWebhooks returns every destination, in id order.
func (s *Store) ListWebhooks(ctx context.Context) ([]store.Webhook, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+webhookColumns+` FROM webhooks ORDER BY id`)
	if err != nil {
		return nil, s.readErr("list_webhooks", err)
	}
	out, err := collect(rows, scanWebhook)
	if err != nil {
		return nil, s.readErr("list_webhooks", err)
	}
	return out, nil
}

// updateWebhook runs the UPDATE query with args (the destination id last)
// and returns the destination as it is afterwards.
func (s *Store) updateWebhook(ctx context.Context, op, query string, args ...any) (store.Webhook, error) {
	id := args[len(args)-1]
	v, err := s.writeFunc(ctx, op, func(ctx context.Context, now int64) (groupcommitResult, error) {
		res, err := s.wconn.ExecContext(ctx, query, append([]any{now}, args...)...)
		if err != nil {
			return groupcommitResult{}, fmt.Errorf("%s: %w", op, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return groupcommitResult{Err: errWebhookNotFound}, err
		}
		out, err := s.webhookByID(ctx, id.(string))
		return groupcommitResult{Val: writeResult{val: out}}, err
	})
	if err != nil {
		return store.Webhook{}, err
	}
	return v.(store.Webhook), nil
}

// UpdateWebhook replaces the descriptive fields of destination w.ID.
func (s *Store) UpdateWebhook(ctx context.Context, w store.Webhook) (store.Webhook, error) {
	if w.URL == "" {
		return store.Webhook{}, fmt.Errorf("sqlite: update webhook: %w: url is required", store.ErrInvalid)
	}
	if err := store.CheckWebhook(w); err != nil {
		return store.Webhook{}, fmt.Errorf("sqlite: update webhook: %w", err)
	}
	types, sessions, meta, err := webhookJSON(&w)
	if err != nil {
		return store.Webhook{}, fmt.Errorf("sqlite: update webhook: %w", err)
	}
	return s.updateWebhook(ctx, "update_webhook", `UPDATE webhooks SET updated_at = ?, url = ?, description = ?,
		event_types = ?, sessions = ?, metadata = ? WHERE id = ?`, w.URL, w.Description, types, sessions, meta, w.ID)
}

// RotateWebhookSecret makes secret current and keeps the old one until
// prevExpires.
func (s *Store) RotateWebhookSecret(ctx context.Context, id, secret string, prevExpires time.Time) (store.Webhook, error) {
	if secret == "" {
		return store.Webhook{}, errors.New("sqlite: rotate webhook secret: empty secret")
	}
	return s.updateWebhook(ctx, "rotate_webhook_secret", `UPDATE webhooks SET updated_at = ?,
		prev_secret = CASE WHEN ? = 0 THEN '' ELSE secret END, prev_expires = ?, secret = ? WHERE id = ?`,
		toNanos(prevExpires), toNanos(prevExpires), secret, id)
}

// SetWebhookHealth sets the failing-since time and the disabled flag.
func (s *Store) SetWebhookHealth(ctx context.Context, id string, failingSince time.Time, disabled bool, reason string) error {
	if err := store.CheckText("disabled reason", reason); err != nil {
		return fmt.Errorf("sqlite: set webhook health: %w", err)
	}
	_, err := s.updateWebhook(ctx, "set_webhook_health", `UPDATE webhooks SET updated_at = ?,
		failing_since = ?, disabled = ?, disabled_reason = ? WHERE id = ?`, toNanos(failingSince), disabled, reason, id)
	return err
}

// DeleteWebhook removes destination id and its attempts.
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	_, err := s.writeFunc(ctx, "delete_webhook", func(ctx context.Context, _ int64) (groupcommitResult, error) {
		res, err := s.wconn.ExecContext(ctx, `DELETE FROM webhooks WHERE id = ?`, id)
		if err != nil {
			return groupcommitResult{}, fmt.Errorf("delete webhook: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return groupcommitResult{Err: errWebhookNotFound}, err
		}
		if _, err := s.wconn.ExecContext(ctx, `DELETE FROM webhook_attempts WHERE webhook_id = ?`, id); err != nil {
			return groupcommitResult{}, fmt.Errorf("delete webhook attempts: %w", err)
		}
		return groupcommitResult{}, nil
	})
	return err
}

// RecordWebhookAttempt appends a to the attempts log.
func (s *Store) RecordWebhookAttempt(ctx context.Context, a store.Attempt) error {
	a = newAttempt(a)
	if err := store.CheckAttempt(a); err != nil {
		return fmt.Errorf("sqlite: record webhook attempt: %w", err)
	}
	// Not through writeFunc: an attempt changes no destination, so the
	// writer's destinations stay cached for fan-out.
	_, err := s.write(ctx, "record_webhook_attempt", func(ctx context.Context, w *writer, now int64) (groupcommitResult, error) {
		return groupcommitResult{}, w.recordAttempt(ctx, &a, now)
	})
	return err
}

// newAttempt returns a with an id when it has none.
func newAttempt(a store.Attempt) store.Attempt {
	if a.ID == "" {
		a.ID = ids.New("att")
	}
	return a
}

// recordAttempt inserts a, at now when a.At is zero.
func (w *writer) recordAttempt(ctx context.Context, a *store.Attempt, now int64) error {
	at := toNanos(a.At)
	if at == 0 {
		at = now
	}
	_, err := w.insertAttempt.ExecContext(ctx, a.ID, a.WebhookID, a.DeliveryID, a.EventID, a.SessionID, a.Seq,
		a.Attempt, a.StatusCode, int64(a.Latency), a.Response, a.Error, at)
	if err != nil {
		return fmt.Errorf("insert webhook attempt: %w", err)
	}
	return nil
}

// WebhookAttempts returns up to limit attempts of webhookID before the
// cursor before, newest first. A limit below 1 returns nothing.
func (s *Store) WebhookAttempts(ctx context.Context, webhookID, before string, limit int) ([]store.Attempt, error) {
	return s.attempts(ctx, "webhook attempts", "webhook_id", webhookID, before, limit)
}

// DeliveryAttempts returns up to limit recorded attempts of delivery id
// before the cursor before, newest first. A limit below 1 returns nothing.
func (s *Store) DeliveryAttempts(ctx context.Context, id, before string, limit int) ([]store.Attempt, error) {
	return s.attempts(ctx, "delivery attempts", "delivery_id", id, before, limit)
}

// attempts lists the attempts whose column (webhook_id or delivery_id, each
// indexed with id) is value, for WebhookAttempts and DeliveryAttempts.
func (s *Store) attempts(ctx context.Context, what, column, value, before string, limit int) ([]store.Attempt, error) {
	if err := store.CheckText("before", before); err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	if limit < 1 {
		return nil, nil
	}
	q := `SELECT id, webhook_id, delivery_id, event_id, session_id, seq, attempt, status_code, latency_ns,
		response, error, at FROM webhook_attempts WHERE ` + column + ` = ?`
	args := []any{value}
	if before != "" {
		q += ` AND id < ?`
		args = append(args, before)
	}
	rows, err := s.rdb.QueryContext(ctx, q+` ORDER BY id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, s.readErr("webhook_attempts", err)
	}
	out, err := collect(rows, func(row scanner) (store.Attempt, error) {
		var (
			a           store.Attempt
			latency, at int64
		)
		if err := row.Scan(&a.ID, &a.WebhookID, &a.DeliveryID, &a.EventID, &a.SessionID, &a.Seq, &a.Attempt,
			&a.StatusCode, &latency, &a.Response, &a.Error, &at); err != nil {
			return store.Attempt{}, err
		}
		a.Latency, a.At = time.Duration(latency), time.Unix(0, at).UTC()
		return a, nil
	})
	if err != nil {
		return nil, s.readErr("webhook_attempts", err)
	}
	return out, nil
}
