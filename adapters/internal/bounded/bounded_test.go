package bounded

import (
	"sync"
	"testing"
)

func TestMapForgetsOldest(t *testing.T) {
	m := NewMap[string, int](2)
	m.Put("a", 1)
	m.Put("b", 2)
	m.Put("a", 10) // replacing does not make "a" newer
	m.Put("c", 3)
	if _, ok := m.Get("a"); ok {
		t.Error(`"a" kept past the size`)
	}
	for k, want := range map[string]int{"b": 2, "c": 3} {
		if v, ok := m.Get(k); !ok || v != want {
			t.Errorf("Get(%q) = %d, %v; want %d", k, v, ok, want)
		}
	}
	m.Delete("b")
	m.Delete("missing")
	m.Put("d", 4) // room left by the delete: "c" stays
	if _, ok := m.Get("c"); !ok || m.Len() != 2 {
		t.Errorf(`after a delete, "c" was forgotten (len %d)`, m.Len())
	}
	m.Put("e", 5)
	if _, ok := m.Get("c"); ok {
		t.Error(`"c" kept past the size`)
	}
}

func TestMapDeleteFunc(t *testing.T) {
	m := NewMap[string, int](3)
	m.Put("a", 1)
	m.Put("b", 2)
	m.Put("c", 1)
	m.DeleteFunc(func(_ string, v int) bool { return v == 1 })
	if _, ok := m.Get("b"); !ok || m.Len() != 1 {
		t.Fatalf("after DeleteFunc: len %d", m.Len())
	}
	m.Put("d", 4)
	m.Put("e", 5) // the deleted keys left the order too: "b" stays
	if _, ok := m.Get("b"); !ok {
		t.Error(`"b" was forgotten though the map had room`)
	}
}

func TestMapConcurrent(t *testing.T) {
	m := NewMap[int, int](8)
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			m.Put(i, i)
			m.Get(i)
			if i%3 == 0 {
				m.Delete(i)
			}
		})
	}
	wg.Wait()
	if n := m.Len(); n > 8 {
		t.Errorf("holds %d keys, max 8", n)
	}
}
