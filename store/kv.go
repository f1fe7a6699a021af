package store

import (
	"context"
	"fmt"
)

// KV is a small durable key-value space for channel adapters' own state (an
// IMAP cursor, an email thread's reply headers). Values are opaque bytes,
// kept byte for byte; keys are namespaced by the adapter ("email"), so
// adapters never see each other's keys. Namespaces and keys are non-empty
// UTF-8 strings without NUL bytes, of at most MaxKVKey bytes each; values
// hold at most MaxKVValue bytes. Backends check both with CheckKV.
//
// It is meant for small values written now and then, not for bulk data:
// every write is a durable commit. Every method is safe for concurrent use,
// also from several processes sharing one database.
type KV interface {
	// Value returns the value of key in namespace, or an error wrapping
	// ErrNotFound. A stored empty value is returned as a non-nil empty
	// slice.
	Value(ctx context.Context, namespace, key string) ([]byte, error)
	// SetValue stores value (nil is stored as empty) under key in
	// namespace, replacing any earlier value, durably when it returns nil.
	// Of concurrent writers of one key, the last to commit wins.
	SetValue(ctx context.Context, namespace, key string, value []byte) error
	// CompareAndSetValue stores value under key in namespace, durably, only
	// if the key's current value is old, byte for byte, or, when old is nil,
	// only if the key does not exist (a non-nil empty old matches a stored
	// empty value). It reports whether it stored value; false changes
	// nothing. The comparison and the write are atomic, also against other
	// processes, so a read-modify-write loop over Value and
	// CompareAndSetValue loses no concurrent update.
	CompareAndSetValue(ctx context.Context, namespace, key string, old, value []byte) (set bool, err error)
	// DeleteValue removes key from namespace, durably, only if its value is
	// old, byte for byte, or, when old is nil, whatever its value. It
	// reports whether it removed the key; false (a key that does not exist,
	// or holds another value) changes nothing. Like CompareAndSetValue, the
	// comparison and the removal are atomic.
	DeleteValue(ctx context.Context, namespace, key string, old []byte) (deleted bool, err error)
	// Keys returns up to limit keys of namespace that sort after the key
	// after ("" for the first), in byte order, so that a caller can walk a
	// namespace page by page (to sweep what has expired, say). A limit
	// below 1 returns none.
	Keys(ctx context.Context, namespace, after string, limit int) ([]string, error)
}

// Limits of KV.
const (
	// MaxKVKey is the longest namespace, and the longest key, in bytes.
	MaxKVKey = 512
	// MaxKVValue is the largest value, in bytes.
	MaxKVValue = 1 << 20
)

// CheckKV reports whether namespace, key and value are within KV's limits,
// naming what is wrong, wrapping ErrInvalid, when they are not.
func CheckKV(namespace, key string, value []byte) error {
	for _, f := range [...]struct{ name, v string }{{"namespace", namespace}, {"key", key}} {
		switch {
		case f.v == "":
			return fmt.Errorf("%w: empty %s", ErrInvalid, f.name)
		case len(f.v) > MaxKVKey:
			return fmt.Errorf("%w: %s is %d bytes, more than %d", ErrInvalid, f.name, len(f.v), MaxKVKey)
		}
		if err := CheckText(f.name, f.v); err != nil {
			return err
		}
	}
	if len(value) > MaxKVValue {
		return fmt.Errorf("%w: value is %d bytes, more than %d", ErrInvalid, len(value), MaxKVValue)
	}
	return nil
}
