package adaptertest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/switchboardhq/switchboard/store"
)

// MemoryKV is a store.KV in memory, for tests and benchmarks of an
// adapter's own state without a database. It keeps the contract's
// semantics (a stored nil is an empty value, compare-and-set and
// compare-and-delete, keys in byte order) but checks no limits. The zero
// value is ready to use.
type MemoryKV struct {
	mu sync.Mutex
	m  map[string][]byte // by namespace + "\x00" + key
}

var _ store.KV = (*MemoryKV)(nil)

func kvKey(ns, key string) string { return ns + "\x00" + key }

// Value implements store.KV.
func (k *MemoryKV) Value(_ context.Context, ns, key string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[kvKey(ns, key)]
	if !ok {
		return nil, fmt.Errorf("memory kv: %s/%s: %w", ns, key, store.ErrNotFound)
	}
	return append([]byte{}, v...), nil
}

// SetValue implements store.KV.
func (k *MemoryKV) SetValue(_ context.Context, ns, key string, value []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = map[string][]byte{}
	}
	k.m[kvKey(ns, key)] = append([]byte{}, value...)
	return nil
}

// CompareAndSetValue implements store.KV.
func (k *MemoryKV) CompareAndSetValue(_ context.Context, ns, key string, old, value []byte) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	cur, ok := k.m[kvKey(ns, key)]
	if (old == nil && ok) || (old != nil && (!ok || !bytes.Equal(cur, old))) {
		return false, nil
	}
	if k.m == nil {
		k.m = map[string][]byte{}
	}
	k.m[kvKey(ns, key)] = append([]byte{}, value...)
	return true, nil
}

// DeleteValue implements store.KV.
func (k *MemoryKV) DeleteValue(_ context.Context, ns, key string, old []byte) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	cur, ok := k.m[kvKey(ns, key)]
	if !ok || (old != nil && !bytes.Equal(cur, old)) {
		return false, nil
	}
	delete(k.m, kvKey(ns, key))
	return true, nil
}

// Keys implements store.KV.
func (k *MemoryKV) Keys(_ context.Context, ns, after string, limit int) ([]string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var keys []string
	for full := range k.m {
		if key, ok := strings.CutPrefix(full, ns+"\x00"); ok && key > after {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	return slices.Clip(keys[:min(len(keys), max(limit, 0))]), nil
}

// Len returns how many keys k holds, in every namespace.
func (k *MemoryKV) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}

// FailingKV is a store.KV whose every call fails with Err, for tests of
// what an adapter does when its state cannot be read or written, or that
// it does not touch its state at all.
type FailingKV struct{ Err error }

var _ store.KV = FailingKV{}

// Value implements store.KV.
func (f FailingKV) Value(context.Context, string, string) ([]byte, error) { return nil, f.Err }

// SetValue implements store.KV.
func (f FailingKV) SetValue(context.Context, string, string, []byte) error { return f.Err }

// CompareAndSetValue implements store.KV.
func (f FailingKV) CompareAndSetValue(context.Context, string, string, []byte, []byte) (bool, error) {
	return false, f.Err
}

// DeleteValue implements store.KV.
func (f FailingKV) DeleteValue(context.Context, string, string, []byte) (bool, error) {
	return false, f.Err
}

// Keys implements store.KV.
func (f FailingKV) Keys(context.Context, string, string, int) ([]string, error) { return nil, f.Err }
