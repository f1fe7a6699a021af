package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchboardhq/switchboard/store"
)

var _ store.KV = (*Store)(nil)

// Value returns the value of key in namespace, or an error wrapping
// store.ErrNotFound. It costs one round trip.
func (s *Store) Value(ctx context.Context, namespace, key string) ([]byte, error) {
	if err := s.checkOpen("value"); err != nil {
		return nil, err
	}
	if err := store.CheckKV(namespace, key, nil); err != nil {
		return nil, fmt.Errorf("postgres: value: %w", err)
	}
	var v []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM kv WHERE namespace = $1 AND key = $2`, namespace, key).Scan(&v)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("postgres: value %s/%s: %w", namespace, key, store.ErrNotFound)
	case err != nil:
		return nil, s.fail("value", err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// SetValue stores value under key in namespace, replacing any earlier
// value, and returns once the write is committed. Concurrent writers of one
// key never fail on each other (INSERT … ON CONFLICT DO UPDATE); the last
// to commit wins. It costs one round trip.
func (s *Store) SetValue(ctx context.Context, namespace, key string, value []byte) error {
	if err := s.checkOpen("set value"); err != nil {
		return err
	}
	if err := store.CheckKV(namespace, key, value); err != nil {
		return fmt.Errorf("postgres: set value: %w", err)
	}
	if value == nil {
		value = []byte{}
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO kv (namespace, key, value) VALUES ($1, $2, $3)
		ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated_at = now()`,
		namespace, key, value); err != nil {
		return s.fail("set value", err)
	}
	return nil
}

// CompareAndSetValue stores value under key in namespace only if the stored
// value is old (nil old: only if there is none), and reports whether it did.
// A conditional UPDATE (or an INSERT … ON CONFLICT DO NOTHING) makes the
// comparison and the write atomic: an UPDATE that waited for a concurrent
// writer's row lock compares against that writer's value. It costs one
// round trip.
func (s *Store) CompareAndSetValue(ctx context.Context, namespace, key string, old, value []byte) (bool, error) {
	if err := s.checkOpen("compare and set value"); err != nil {
		return false, err
	}
	if err := store.CheckKV(namespace, key, value); err != nil {
		return false, fmt.Errorf("postgres: compare and set value: %w", err)
	}
	if value == nil {
		value = []byte{}
	}
	var (
		tag pgconn.CommandTag
		err error
	)
	if old == nil {
		tag, err = s.pool.Exec(ctx, `INSERT INTO kv (namespace, key, value) VALUES ($1, $2, $3)
			ON CONFLICT (namespace, key) DO NOTHING`, namespace, key, value)
	} else {
		tag, err = s.pool.Exec(ctx, `UPDATE kv SET value = $3, updated_at = now()
			WHERE namespace = $1 AND key = $2 AND value = $4`, namespace, key, value, old)
	}
	if err != nil {
		return false, s.fail("compare and set value", err)
	}
	return tag.RowsAffected() == 1, nil
}

// DeleteValue removes key from namespace only if its value is old (nil old:
// whatever it is), and reports whether it did. A conditional DELETE makes
// the comparison and the removal atomic. It costs one round trip.
func (s *Store) DeleteValue(ctx context.Context, namespace, key string, old []byte) (bool, error) {
	if err := s.checkOpen("delete value"); err != nil {
		return false, err
	}
	if err := store.CheckKV(namespace, key, nil); err != nil {
		return false, fmt.Errorf("postgres: delete value: %w", err)
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM kv WHERE namespace = $1 AND key = $2 AND ($3::bytea IS NULL OR value = $3)`,
		namespace, key, old)
	if err != nil {
		return false, s.fail("delete value", err)
	}
	return tag.RowsAffected() == 1, nil
}

// Keys returns up to limit keys of namespace after the key after, in byte
// order (the primary key's "C" collation). It costs one round trip.
func (s *Store) Keys(ctx context.Context, namespace, after string, limit int) ([]string, error) {
	if err := s.checkOpen("keys"); err != nil {
		return nil, err
	}
	if err := errors.Join(store.CheckKV(namespace, "-", nil), store.CheckText("after", after)); err != nil {
		return nil, fmt.Errorf("postgres: keys: %w", err)
	}
	if limit < 1 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT key FROM kv WHERE namespace = $1 AND key > $2 ORDER BY key LIMIT $3`,
		namespace, after, limit)
	if err != nil {
		return nil, s.fail("keys", err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.fail("keys", err)
	}
	return keys, nil
}
