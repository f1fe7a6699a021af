package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboardhq/switchboard/internal/ids"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/internal/groupcommit"
)

var _ store.Webhooks = (*Store)(nil)

const webhookColumns = `id, url, description, event_types, sessions, metadata, secret, prev_secret,
	prev_expires, disabled, disabled_reason, failing_since, origin, created_at, updated_at`

func scanWebhook(row pgx.Row) (store.Webhook, error) {
	var (
		w                store.Webhook
		prevExp, failing *time.Time
	)
	if err := row.Scan(&w.ID, &w.URL, &w.Description, &w.EventTypes, &w.Sessions, &w.Metadata, &w.Secret,
		&w.PrevSecret, &prevExp, &w.Disabled, &w.DisabledReason, &failing, &w.Origin, &w.CreatedAt, &w.UpdatedAt); err != nil {
		return store.Webhook{}, err
	}
	if prevExp != nil {
		w.PrevExpires = prevExp.UTC()
	}
	if failing != nil {
		w.FailingSince = failing.UTC()
	}
	w.CreatedAt, w.UpdatedAt = w.CreatedAt.UTC(), w.UpdatedAt.UTC()
	if w.EventTypes == nil {
		w.EventTypes = []string{}
	}
	if w.Sessions == nil {
		w.Sessions = []string{}
	}
	if w.Metadata == nil {
		w.Metadata = map[string]string{}
	}
	return w, nil
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func orEmptyMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// CreateWebhook stores w. It fails with an error wrapping store.ErrConflict
// when the id is taken.
func (s *Store) CreateWebhook(ctx context.Context, w store.Webhook) (store.Webhook, error) {
	if err := s.checkOpen("create webhook"); err != nil {
		return store.Webhook{}, err
	}
	if w.ID == "" || w.URL == "" || w.Secret == "" {
		return store.Webhook{}, fmt.Errorf("postgres: create webhook: %w: id, url and secret are required", store.ErrInvalid)
	}
	if err := store.CheckWebhook(w); err != nil {
		return store.Webhook{}, fmt.Errorf("postgres: create webhook: %w", err)
	}
	if w.Origin == "" {
		w.Origin = "api"
	}
	// Zero times are the database's clock, like the records' and the
	// journal's, which live deliveries compare with CreatedAt.
	out, err := scanWebhook(s.pool.QueryRow(ctx, `INSERT INTO webhooks (`+webhookColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
			coalesce($14, now()), coalesce($15, $14, now()))
		ON CONFLICT (id) DO NOTHING RETURNING `+webhookColumns,
		w.ID, w.URL, w.Description, orEmpty(w.EventTypes), orEmpty(w.Sessions), orEmptyMap(w.Metadata), w.Secret,
		w.PrevSecret, nullTime(w.PrevExpires), w.Disabled, w.DisabledReason, nullTime(w.FailingSince), w.Origin,
		nullTime(w.CreatedAt), nullTime(w.UpdatedAt)))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.Webhook{}, fmt.Errorf("postgres: create webhook: %w", store.ErrConflict)
	case err != nil:
		return store.Webhook{}, s.fail("create webhook", err)
	}
	return out, nil
}

// Webhook returns destination id, or an error wrapping store.ErrNotFound.
func (s *Store) Webhook(ctx context.Context, id string) (store.Webhook, error) {
	if err := s.checkOpen("webhook"); err != nil {
		return store.Webhook{}, err
	}
	if err := store.CheckLookup("webhook", id); err != nil {
		return store.Webhook{}, fmt.Errorf("postgres: %w", err)
	}
	w, err := scanWebhook(s.pool.QueryRow(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE id = $1`, id))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.Webhook{}, fmt.Errorf("postgres: webhook: %w", store.ErrNotFound)
	case err != nil:
		return store.Webhook{}, s.fail("webhook", err)
	}
	return w, nil
}

// ListWebhooks returns every destination, in id order.
func (s *Store) ListWebhooks(ctx context.Context) ([]store.Webhook, error) {
	if err := s.checkOpen("list webhooks"); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+webhookColumns+` FROM webhooks ORDER BY id`)
	if err != nil {
		return nil, s.fail("list webhooks", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Webhook, error) { return scanWebhook(r) })
	if err != nil {
		return nil, s.fail("list webhooks", err)
	}
	return out, nil
}

// updateWebhook runs an UPDATE … RETURNING of destination id, which is
// its query's $1 (args are $2 on).
func (s *Store) updateWebhook(ctx context.Context, op, query string, id string, args ...any) (store.Webhook, error) {
	if err := s.checkOpen(op); err != nil {
		return store.Webhook{}, err
	}
	if err := store.CheckLookup("webhook", id); err != nil {
		return store.Webhook{}, fmt.Errorf("postgres: %s: %w", op, err)
	}
	args = append([]any{id}, args...)
	w, err := scanWebhook(s.pool.QueryRow(ctx, query+` RETURNING `+webhookColumns, args...))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.Webhook{}, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	case err != nil:
		return store.Webhook{}, s.fail(op, err)
	}
	return w, nil
}

// UpdateWebhook replaces the descriptive fields of destination w.ID.
func (s *Store) UpdateWebhook(ctx context.Context, w store.Webhook) (store.Webhook, error) {
	if w.URL == "" {
		return store.Webhook{}, fmt.Errorf("postgres: update webhook: %w: url is required", store.ErrInvalid)
	}
	if err := store.CheckWebhook(w); err != nil {
		return store.Webhook{}, fmt.Errorf("postgres: update webhook: %w", err)
	}
	return s.updateWebhook(ctx, "update webhook", `UPDATE webhooks SET updated_at = now(), url = $2,
		description = $3, event_types = $4, sessions = $5, metadata = $6 WHERE id = $1`,
		w.ID, w.URL, w.Description, orEmpty(w.EventTypes), orEmpty(w.Sessions), orEmptyMap(w.Metadata))
}

// RotateWebhookSecret makes secret current and keeps the old one until
// prevExpires.
func (s *Store) RotateWebhookSecret(ctx context.Context, id, secret string, prevExpires time.Time) (store.Webhook, error) {
	if secret == "" {
		return store.Webhook{}, errors.New("postgres: rotate webhook secret: empty secret")
	}
	return s.updateWebhook(ctx, "rotate webhook secret", `UPDATE webhooks SET updated_at = now(),
		prev_secret = CASE WHEN $3::timestamptz IS NULL THEN '' ELSE secret END, prev_expires = $3, secret = $2
		WHERE id = $1`, id, secret, nullTime(prevExpires))
}

// SetWebhookHealth sets the failing-since time and the disabled flag.
func (s *Store) SetWebhookHealth(ctx context.Context, id string, failingSince time.Time, disabled bool, reason string) error {
	if err := store.CheckText("disabled reason", reason); err != nil {
		return fmt.Errorf("postgres: set webhook health: %w", err)
	}
	_, err := s.updateWebhook(ctx, "set webhook health", `UPDATE webhooks SET updated_at = now(),
		failing_since = $2, disabled = $3, disabled_reason = $4 WHERE id = $1`, id, nullTime(failingSince), disabled, reason)
	return err
}

// DeleteWebhook removes destination id and its attempts, in one
// transaction.
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	if err := s.checkOpen("delete webhook"); err != nil {
		return err
	}
	if err := store.CheckLookup("webhook", id); err != nil {
		return fmt.Errorf("postgres: delete webhook: %w", err)
	}
	var b pgx.Batch
	b.Queue(`DELETE FROM webhook_attempts WHERE webhook_id = $1`, id)
	b.Queue(`DELETE FROM webhooks WHERE id = $1`, id)
	br := s.pool.SendBatch(ctx, &b)
	_, err1 := br.Exec()
	tag, err2 := br.Exec()
	if err := errors.Join(err1, err2, br.Close()); err != nil {
		return s.fail("delete webhook", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: delete webhook: %w", store.ErrNotFound)
	}
	return nil
}

// RecordWebhookAttempt appends a to the attempts log (ID and At set when
// empty). Concurrent calls are recorded together.
func (s *Store) RecordWebhookAttempt(ctx context.Context, a store.Attempt) error {
	if err := s.checkOpen("record webhook attempt"); err != nil {
		return err
	}
	a, err := newAttempt(a)
	if err != nil {
		return fmt.Errorf("postgres: record webhook attempt: %w", err)
	}
	_, err = s.attempts.Do(ctx, a)
	if errors.Is(err, groupcommit.ErrClosed) {
		return fmt.Errorf("postgres: record webhook attempt: %w", store.ErrClosed)
	}
	return err
}

// newAttempt returns a with its ID and At set when empty, or why it cannot
// be stored.
func newAttempt(a store.Attempt) (store.Attempt, error) {
	if a.ID == "" {
		a.ID = ids.New("att")
	}
	if a.At.IsZero() {
		a.At = time.Now()
	}
	return a, store.CheckAttempt(a)
}

// commitAttempts records a batch of concurrent RecordWebhookAttempt calls
// in one statement; when it fails, it records each alone, so one bad call
// fails alone.
func (s *Store) commitAttempts(ctx context.Context, batch []store.Attempt) ([]groupcommit.Result[struct{}], error) {
	results := make([]groupcommit.Result[struct{}], len(batch))
	if len(batch) > 1 {
		err := s.insertAttempts(ctx, batch)
		if err == nil {
			return results, nil
		}
		s.log.Warn("postgres: recording webhook attempts together failed; one at a time", "n", len(batch), "err", err)
	}
	for i := range batch {
		if err := s.insertAttempts(ctx, batch[i:i+1]); err != nil {
			results[i].Err = s.fail("record webhook attempt", err)
		}
	}
	return results, nil
}

func (s *Store) insertAttempts(ctx context.Context, as []store.Attempt) error {
	// The attempts log is a record for people: a crash may lose its last
	// entries, so its commits do not wait for the disk.
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SET LOCAL synchronous_commit = off")
	queueInsertAttempts(b, as)
	b.Queue("COMMIT")
	return withBatch(s.pool.SendBatch(ctx, b), func(br pgx.BatchResults) error {
		for range 3 {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		return commitResult(br.Exec())
	})
}

// queueInsertAttempts queues on b the one statement that inserts as.
func queueInsertAttempts(b *pgx.Batch, as []store.Attempt) {
	n := len(as)
	var (
		id, webhook, delivery, event, session, response, errText = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		seq, latency                                             = make([]int64, n), make([]int64, n)
		attempt, status                                          = make([]int32, n), make([]int32, n)
		at                                                       = make([]time.Time, n)
	)
	for i, a := range as {
		id[i], webhook[i], delivery[i], event[i], session[i] = a.ID, a.WebhookID, a.DeliveryID, a.EventID, a.SessionID
		seq[i], attempt[i], status[i], latency[i] = a.Seq, int32(a.Attempt), int32(a.StatusCode), int64(a.Latency)
		response[i], errText[i], at[i] = a.Response, a.Error, a.At
	}
	b.Queue(`INSERT INTO webhook_attempts (id, webhook_id, delivery_id, event_id,
		session_id, seq, attempt, status_code, latency_ns, response, error, at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
			$7::int[], $8::int[], $9::bigint[], $10::text[], $11::text[], $12::timestamptz[])
		ON CONFLICT (id) DO NOTHING`,
		id, webhook, delivery, event, session, seq, attempt, status, latency, response, errText, at)
}

// WebhookAttempts returns up to limit attempts of webhookID before the
// cursor before, newest first.
func (s *Store) WebhookAttempts(ctx context.Context, webhookID, before string, limit int) ([]store.Attempt, error) {
	return s.listAttempts(ctx, "webhook attempts", "webhook", "webhook_id", webhookID, before, limit)
}

// DeliveryAttempts returns up to limit recorded attempts of delivery id
// before the cursor before, newest first.
func (s *Store) DeliveryAttempts(ctx context.Context, id, before string, limit int) ([]store.Attempt, error) {
	return s.listAttempts(ctx, "delivery attempts", "delivery", "delivery_id", id, before, limit)
}

// listAttempts lists the attempts whose column (webhook_id or delivery_id, each
// indexed with id) is value, for WebhookAttempts and DeliveryAttempts.
func (s *Store) listAttempts(ctx context.Context, what, name, column, value, before string, limit int) ([]store.Attempt, error) {
	if err := s.checkOpen(what); err != nil {
		return nil, err
	}
	if err := store.CheckText("before", before); err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", what, err)
	}
	if limit < 1 {
		return nil, nil
	}
	if store.CheckLookup(name, value) != nil {
		return nil, nil // an unknown id has no attempts
	}
	rows, err := s.pool.Query(ctx, `SELECT id, webhook_id, delivery_id, event_id, session_id, seq, attempt,
		status_code, latency_ns, response, error, at FROM webhook_attempts
		WHERE `+column+` = $1 AND ($2 = '' OR id < $2) ORDER BY id DESC LIMIT $3`, value, before, limit)
	if err != nil {
		return nil, s.fail(what, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Attempt, error) {
		var (
			a       store.Attempt
			latency int64
		)
		err := r.Scan(&a.ID, &a.WebhookID, &a.DeliveryID, &a.EventID, &a.SessionID, &a.Seq, &a.Attempt,
			&a.StatusCode, &latency, &a.Response, &a.Error, &a.At)
		a.Latency, a.At = time.Duration(latency), a.At.UTC()
		return a, err
	})
	if err != nil {
		return nil, s.fail(what, err)
	}
	return out, nil
}
