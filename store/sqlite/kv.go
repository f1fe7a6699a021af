package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/switchboardhq/switchboard/store"
)

var _ store.KV = (*Store)(nil)

// kvWrites are the writer's statements for the kv table.
type kvWrites struct {
	set, insert, swap, del, delIf *sql.Stmt
}

func (k *kvWrites) defs() []stmtDef {
	return []stmtDef{
		{&k.set, `INSERT INTO kv (namespace, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)
			ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`},
		{&k.insert, `INSERT INTO kv (namespace, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)
			ON CONFLICT (namespace, key) DO NOTHING`},
		{&k.swap, `UPDATE kv SET value = ?3, updated_at = ?4 WHERE namespace = ?1 AND key = ?2 AND value = ?5`},
		{&k.del, `DELETE FROM kv WHERE namespace = ?1 AND key = ?2`},
		{&k.delIf, `DELETE FROM kv WHERE namespace = ?1 AND key = ?2 AND value = ?3`},
	}
}

// kvReads are the readers' statements for the kv table.
type kvReads struct {
	value, keys *sql.Stmt
}

func (k *kvReads) defs() []stmtDef {
	return []stmtDef{
		{&k.value, `SELECT value FROM kv WHERE namespace = ? AND key = ?`},
		{&k.keys, `SELECT key FROM kv WHERE namespace = ? AND key > ? ORDER BY key LIMIT ?`},
	}
}

// Value returns the value of key in namespace, or an error wrapping
// store.ErrNotFound. It reads the last committed state, concurrently with
// the writer.
func (s *Store) Value(ctx context.Context, namespace, key string) ([]byte, error) {
	if err := store.CheckKV(namespace, key, nil); err != nil {
		return nil, fmt.Errorf("sqlite: value: %w", err)
	}
	if s.closed.Load() {
		return nil, fmt.Errorf("sqlite: value: %w", store.ErrClosed)
	}
	var v []byte
	err := s.r.kv.value.QueryRowContext(ctx, namespace, key).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("sqlite: value %s/%s: %w", namespace, key, store.ErrNotFound)
	case err != nil:
		return nil, s.readErr("value", err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// SetValue stores value under key in namespace, replacing any earlier
// value, and returns once the write is committed (sharing the commit with
// concurrent writes).
func (s *Store) SetValue(ctx context.Context, namespace, key string, value []byte) error {
	stored, err := checkKV(namespace, key, value)
	if err != nil {
		return fmt.Errorf("sqlite: set value: %w", err)
	}
	_, err = s.write(ctx, "set_value", func(ctx context.Context, w *writer, now int64) (groupcommitResult, error) {
		if _, err := w.kv.set.ExecContext(ctx, namespace, key, stored, now); err != nil {
			return groupcommitResult{}, fmt.Errorf("set value: %w", err)
		}
		return groupcommitResult{}, nil
	})
	return err
}

// CompareAndSetValue stores value under key in namespace only if the stored
// value is old (nil old: only if there is none), and reports whether it did.
// The single writer runs the comparison and the write in one IMMEDIATE
// transaction, so they are atomic also against other processes.
func (s *Store) CompareAndSetValue(ctx context.Context, namespace, key string, old, value []byte) (bool, error) {
	stored, err := checkKV(namespace, key, value)
	if err != nil {
		return false, fmt.Errorf("sqlite: compare and set value: %w", err)
	}
	res, err := s.write(ctx, "compare_and_set_value", func(ctx context.Context, w *writer, now int64) (groupcommitResult, error) {
		var (
			res sql.Result
			err error
		)
		if old == nil {
			res, err = w.kv.insert.ExecContext(ctx, namespace, key, stored, now)
		} else {
			res, err = w.kv.swap.ExecContext(ctx, namespace, key, stored, now, old)
		}
		if err != nil {
			return groupcommitResult{}, fmt.Errorf("compare and set value: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return groupcommitResult{}, fmt.Errorf("compare and set value: %w", err)
		}
		return groupcommitResult{Val: writeResult{ok: n == 1}}, nil
	})
	return res.ok, err
}

// DeleteValue removes key from namespace only if its value is old (nil
// old: whatever it is), and reports whether it did, in one IMMEDIATE
// transaction of the single writer.
func (s *Store) DeleteValue(ctx context.Context, namespace, key string, old []byte) (bool, error) {
	if err := store.CheckKV(namespace, key, nil); err != nil {
		return false, fmt.Errorf("sqlite: delete value: %w", err)
	}
	res, err := s.write(ctx, "delete_value", func(ctx context.Context, w *writer, now int64) (groupcommitResult, error) {
		var (
			res sql.Result
			err error
		)
		if old == nil {
			res, err = w.kv.del.ExecContext(ctx, namespace, key)
		} else {
			res, err = w.kv.delIf.ExecContext(ctx, namespace, key, old)
		}
		if err != nil {
			return groupcommitResult{}, fmt.Errorf("delete value: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return groupcommitResult{}, fmt.Errorf("delete value: %w", err)
		}
		return groupcommitResult{Val: writeResult{ok: n == 1}}, nil
	})
	return res.ok, err
}

// Keys returns up to limit keys of namespace after the key after, in byte
// order (the kv table's primary key, whose BINARY collation is byte order).
func (s *Store) Keys(ctx context.Context, namespace, after string, limit int) ([]string, error) {
	if err := store.CheckKV(namespace, "-", nil); err != nil {
		return nil, fmt.Errorf("sqlite: keys: %w", err)
	}
	if err := store.CheckText("after", after); err != nil {
		return nil, fmt.Errorf("sqlite: keys: %w", err)
	}
	if s.closed.Load() {
		return nil, fmt.Errorf("sqlite: keys: %w", store.ErrClosed)
	}
	if limit < 1 {
		return nil, nil
	}
	rows, err := s.r.kv.keys.QueryContext(ctx, namespace, after, limit)
	if err != nil {
		return nil, s.readErr("keys", err)
	}
	out, err := collect(rows, func(row scanner) (string, error) {
		var k string
		return k, row.Scan(&k)
	})
	if err != nil {
		return nil, s.readErr("keys", err)
	}
	return out, nil
}

// checkKV checks a key and the value to store under it, and returns the
// value to store: never nil, for an empty value is stored as an empty BLOB.
func checkKV(namespace, key string, value []byte) ([]byte, error) {
	if err := store.CheckKV(namespace, key, value); err != nil {
		return nil, err
	}
	if value == nil {
		value = []byte{}
	}
	return value, nil
}
