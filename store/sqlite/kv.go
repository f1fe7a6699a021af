package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/switchboardhq/switchboard/store"
)

var _ store.KV = (*Store)(nil)

// kvOp is what opSetValue and opCompareAndSetValue write.
type kvOp struct {
	namespace, key string
	value          []byte // never nil: an empty value is stored as an empty BLOB
	old            []byte // opCompareAndSetValue: nil for "the key must not exist"
}

// kvWrites are the writer's statements for the kv table.
type kvWrites struct {
	set, insert, swap *sql.Stmt
}

func (k *kvWrites) defs() []stmtDef {
	return []stmtDef{
		{&k.set, `INSERT INTO kv (namespace, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)
			ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`},
		{&k.insert, `INSERT INTO kv (namespace, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)
			ON CONFLICT (namespace, key) DO NOTHING`},
		{&k.swap, `UPDATE kv SET value = ?3, updated_at = ?4 WHERE namespace = ?1 AND key = ?2 AND value = ?5`},
	}
}

// kvReads are the readers' statements for the kv table.
type kvReads struct {
	value *sql.Stmt
}

func (k *kvReads) defs() []stmtDef {
	return []stmtDef{
		{&k.value, `SELECT value FROM kv WHERE namespace = ? AND key = ?`},
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
	op, err := kvWriteOp(opSetValue, namespace, key, value)
	if err != nil {
		return fmt.Errorf("sqlite: set value: %w", err)
	}
	if _, err := s.write(ctx, op); err != nil {
		if !isClientError(err) {
			s.metrics.Error("set_value")
		}
		return err
	}
	return nil
}

// CompareAndSetValue stores value under key in namespace only if the stored
// value is old (nil old: only if there is none), and reports whether it did.
// The single writer runs the comparison and the write in one IMMEDIATE
// transaction, so they are atomic also against other processes.
func (s *Store) CompareAndSetValue(ctx context.Context, namespace, key string, old, value []byte) (bool, error) {
	op, err := kvWriteOp(opCompareAndSetValue, namespace, key, value)
	if err != nil {
		return false, fmt.Errorf("sqlite: compare and set value: %w", err)
	}
	op.kv.old = old
	res, err := s.write(ctx, op)
	if err != nil {
		if !isClientError(err) {
			s.metrics.Error("compare_and_set_value")
		}
		return false, err
	}
	return res.ok, nil
}

func kvWriteOp(kind opKind, namespace, key string, value []byte) (writeOp, error) {
	if err := store.CheckKV(namespace, key, value); err != nil {
		return writeOp{}, err
	}
	if value == nil {
		value = []byte{}
	}
	return writeOp{kind: kind, kv: kvOp{namespace: namespace, key: key, value: value}}, nil
}

func (w *writer) setValue(ctx context.Context, op *writeOp, now int64) (groupcommitResult, error) {
	if _, err := w.kv.set.ExecContext(ctx, op.kv.namespace, op.kv.key, op.kv.value, now); err != nil {
		return groupcommitResult{}, fmt.Errorf("set value: %w", err)
	}
	return groupcommitResult{}, nil
}

func (w *writer) compareAndSetValue(ctx context.Context, op *writeOp, now int64) (groupcommitResult, error) {
	var (
		res sql.Result
		err error
	)
	if op.kv.old == nil {
		res, err = w.kv.insert.ExecContext(ctx, op.kv.namespace, op.kv.key, op.kv.value, now)
	} else {
		res, err = w.kv.swap.ExecContext(ctx, op.kv.namespace, op.kv.key, op.kv.value, now, op.kv.old)
	}
	if err != nil {
		return groupcommitResult{}, fmt.Errorf("compare and set value: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return groupcommitResult{}, fmt.Errorf("compare and set value: %w", err)
	}
	return groupcommitResult{Val: writeResult{ok: n == 1}}, nil
}
