// Package bounded holds a map that forgets its oldest keys, for the
// adapters' process-lifetime memories (parts posted per delivery, say).
package bounded

import (
	"slices"
	"sync"
)

// Map is a map that holds at most max keys, forgetting the oldest inserted
// (replacing a key's value does not make it newer). Values are stored and
// returned as given: a caller that mutates a stored slice must clone it.
// Safe for concurrent use; the zero Map is not usable, call NewMap.
type Map[K comparable, V any] struct {
	mu    sync.Mutex
	max   int
	m     map[K]V
	order []K // keys, oldest first
}

// NewMap returns an empty map holding at most n keys (at least 1).
func NewMap[K comparable, V any](n int) *Map[K, V] {
	return &Map[K, V]{max: max(n, 1), m: map[K]V{}}
}

// Get returns the value of k and whether k is held.
func (b *Map[K, V]) Get(k K) (V, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.m[k]
	return v, ok
}

// Put sets the value of k, forgetting the oldest key when a new one makes
// the map exceed its size.
func (b *Map[K, V]) Put(k K, v V) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.m[k]; !ok {
		b.order = append(b.order, k)
		for len(b.order) > b.max {
			delete(b.m, b.order[0])
			b.order = b.order[1:]
		}
	}
	b.m[k] = v
}

// Delete forgets k.
func (b *Map[K, V]) Delete(k K) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.m[k]; !ok {
		return
	}
	delete(b.m, k)
	for i, o := range b.order {
		if o == k {
			b.order = append(b.order[:i], b.order[i+1:]...)
			break
		}
	}
}

// DeleteFunc forgets every key for which del returns true. del is called
// with the map locked and must not use it.
func (b *Map[K, V]) DeleteFunc(del func(K, V) bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.order = slices.DeleteFunc(b.order, func(k K) bool {
		if del(k, b.m[k]) {
			delete(b.m, k)
			return true
		}
		return false
	})
}

// Len returns the number of keys held.
func (b *Map[K, V]) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}
