package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/switchboardhq/switchboard/store"
)

// runKV runs the subtests of the adapters' key-value state (store.KV).
func (s suite) runKV(t *testing.T, cfg config) {
	t.Run("SetGetReplace", s.testKVSetGetReplace)
	t.Run("NamespacesAreSeparate", s.testKVNamespaces)
	t.Run("BinaryByteForByte", s.testKVBinary)
	t.Run("BadKeys", s.testKVBadKeys)
	t.Run("CompareAndSet", s.testKVCompareAndSet)
	t.Run("Delete", s.testKVDelete)
	t.Run("Keys", s.testKVKeys)
	t.Run("ConcurrentWritersLastWins", s.testKVConcurrentSet)
	t.Run("ConcurrentReadModifyWrite", s.testKVConcurrentCAS)
	t.Run("SurvivesReopen", s.testKVReopen)
	t.Run("Shared", func(t *testing.T) {
		if !cfg.shared {
			t.Skip("the backend does not support two stores on one database")
		}
		t.Run("TwoStoresReadModifyWrite", s.testKVTwoStores)
	})
}

// kvNS is the namespace the KV subtests use.
const kvNS = "test"

func mustValue(t *testing.T, kv store.KV, ns, key string) []byte {
	t.Helper()
	v, err := kv.Value(t.Context(), ns, key)
	if err != nil {
		t.Fatalf("Value(%s, %s): %v", ns, key, err)
	}
	return v
}

func mustSetValue(t *testing.T, kv store.KV, ns, key string, v []byte) {
	t.Helper()
	if err := kv.SetValue(t.Context(), ns, key, v); err != nil {
		t.Fatalf("SetValue(%s, %s): %v", ns, key, err)
	}
}

func checkValue(t *testing.T, kv store.KV, ns, key string, want []byte) {
	t.Helper()
	if got := mustValue(t, kv, ns, key); !bytes.Equal(got, want) {
		t.Errorf("Value(%s, %s) = %q, want %q", ns, key, got, want)
	}
}

func checkNoValue(t *testing.T, kv store.KV, ns, key string) {
	t.Helper()
	if v, err := kv.Value(t.Context(), ns, key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Value(%s, %s) = %q, %v; want ErrNotFound", ns, key, v, err)
	}
}

func mustCAS(t *testing.T, kv store.KV, ns, key string, old, v []byte) bool {
	t.Helper()
	ok, err := kv.CompareAndSetValue(t.Context(), ns, key, old, v)
	if err != nil {
		t.Fatalf("CompareAndSetValue(%s, %s, %q, %q): %v", ns, key, old, v, err)
	}
	return ok
}

func (s suite) testKVSetGetReplace(t *testing.T) {
	st, _ := s.fresh(t)
	checkNoValue(t, st, kvNS, "cursor")
	mustSetValue(t, st, kvNS, "cursor", []byte(`{"uid":1}`))
	checkValue(t, st, kvNS, "cursor", []byte(`{"uid":1}`))
	mustSetValue(t, st, kvNS, "cursor", []byte(`{"uid":2,"longer":true}`))
	checkValue(t, st, kvNS, "cursor", []byte(`{"uid":2,"longer":true}`))
	mustSetValue(t, st, kvNS, "cursor", []byte(`3`))
	checkValue(t, st, kvNS, "cursor", []byte(`3`))
	checkNoValue(t, st, kvNS, "cursor2")
	checkNoValue(t, st, kvNS, "cursorx")
}

func (s suite) testKVNamespaces(t *testing.T) {
	st, _ := s.fresh(t)
	mustSetValue(t, st, "email", "k", []byte("email's"))
	mustSetValue(t, st, "slack", "k", []byte("slack's"))
	mustSetValue(t, st, "email", "k2", []byte("other key"))
	checkValue(t, st, "email", "k", []byte("email's"))
	checkValue(t, st, "slack", "k", []byte("slack's"))
	checkNoValue(t, st, "slack", "k2")
	checkNoValue(t, st, "jira", "k")
	// No separator games: ("a/b", "c") and ("a", "b/c") are different.
	mustSetValue(t, st, "a/b", "c", []byte("1"))
	checkNoValue(t, st, "a", "b/c")
}

func (s suite) testKVBinary(t *testing.T) {
	st, _ := s.fresh(t)
	all := make([]byte, 0, 512)
	for i := range 512 {
		all = append(all, byte(i*7)) // every byte value, NUL and invalid UTF-8 included
	}
	big := bytes.Repeat([]byte("\x00\xff\xfe switchboard "), 64<<10/16) // 64 KiB
	cases := map[string][]byte{
		"all-bytes": all,
		"big":       big,
		"empty":     {},
		"nil":       nil,
		"unicode":   []byte("héllo, 世界 🚀"),
	}
	for key, v := range cases {
		mustSetValue(t, st, kvNS, key, v)
	}
	for key, v := range cases {
		got := mustValue(t, st, kvNS, key)
		if !bytes.Equal(got, v) {
			t.Errorf("%s: value of %d bytes came back as %d bytes, not byte for byte", key, len(v), len(got))
		}
		if got == nil {
			t.Errorf("%s: a stored value came back nil, want a non-nil slice", key)
		}
	}
	// Keys may be any UTF-8, like the Message-IDs the email adapter uses.
	key := "thread/<CAF=abc+x@mail.gmail.com> ünïcode"
	mustSetValue(t, st, kvNS, key, []byte("v"))
	checkValue(t, st, kvNS, key, []byte("v"))
}

func (s suite) testKVBadKeys(t *testing.T) {
	st, _ := s.fresh(t)
	long := string(bytes.Repeat([]byte("k"), store.MaxKVKey+1))
	for _, c := range []struct{ what, ns, key string }{
		{"empty namespace", "", "k"},
		{"empty key", kvNS, ""},
		{"NUL in key", kvNS, "a\x00b"},
		{"invalid UTF-8 key", kvNS, "\xff"},
		{"long key", kvNS, long},
		{"long namespace", long, "k"},
	} {
		if err := st.SetValue(t.Context(), c.ns, c.key, []byte("v")); err == nil {
			t.Errorf("SetValue with %s: no error", c.what)
		}
		if _, err := st.Value(t.Context(), c.ns, c.key); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("Value with %s: err = %v, want an invalid-key error", c.what, err)
		}
		if _, err := st.CompareAndSetValue(t.Context(), c.ns, c.key, nil, []byte("v")); err == nil {
			t.Errorf("CompareAndSetValue with %s: no error", c.what)
		}
	}
	if err := st.SetValue(t.Context(), kvNS, "huge", make([]byte, store.MaxKVValue+1)); err == nil {
		t.Error("SetValue of a value over MaxKVValue: no error")
	}
	// A longest key is fine.
	mustSetValue(t, st, kvNS, long[1:], []byte("v"))
	checkValue(t, st, kvNS, long[1:], []byte("v"))
}

func (s suite) testKVCompareAndSet(t *testing.T) {
	st, _ := s.fresh(t)
	if !mustCAS(t, st, kvNS, "k", nil, []byte("one")) {
		t.Fatal("CompareAndSetValue(nil old) on a missing key did not set it")
	}
	checkValue(t, st, kvNS, "k", []byte("one"))
	if mustCAS(t, st, kvNS, "k", nil, []byte("again")) {
		t.Error("CompareAndSetValue(nil old) on an existing key set it")
	}
	if mustCAS(t, st, kvNS, "k", []byte("on"), []byte("prefix")) {
		t.Error("CompareAndSetValue with a prefix of the value as old set it")
	}
	if mustCAS(t, st, kvNS, "k", []byte("one!"), []byte("longer")) {
		t.Error("CompareAndSetValue with a longer old set it")
	}
	if mustCAS(t, st, kvNS, "missing", []byte("one"), []byte("x")) {
		t.Error("CompareAndSetValue with an old value on a missing key set it")
	}
	checkNoValue(t, st, kvNS, "missing")
	checkValue(t, st, kvNS, "k", []byte("one"))
	if !mustCAS(t, st, kvNS, "k", []byte("one"), []byte("two")) {
		t.Fatal("CompareAndSetValue with the current value as old did not set")
	}
	checkValue(t, st, kvNS, "k", []byte("two"))
	// An empty value is a value: a non-nil empty old matches it, nil does not.
	if !mustCAS(t, st, kvNS, "k", []byte("two"), []byte{}) {
		t.Fatal("CompareAndSetValue to an empty value did not set")
	}
	if mustCAS(t, st, kvNS, "k", nil, []byte("x")) {
		t.Error("CompareAndSetValue(nil old) set a key holding an empty value")
	}
	if !mustCAS(t, st, kvNS, "k", []byte{}, []byte("\x00three")) {
		t.Fatal("CompareAndSetValue from an empty value did not set")
	}
	if !mustCAS(t, st, kvNS, "k", []byte("\x00three"), []byte("four")) {
		t.Fatal("CompareAndSetValue with a binary old did not set")
	}
	checkValue(t, st, kvNS, "k", []byte("four"))
	// Another namespace's key of the same name is another key.
	if !mustCAS(t, st, "other", "k", nil, []byte("mine")) {
		t.Error("CompareAndSetValue(nil old) in another namespace did not set")
	}
	checkValue(t, st, kvNS, "k", []byte("four"))
}

func (s suite) testKVConcurrentSet(t *testing.T) {
	st, _ := s.fresh(t)
	const writers, rounds = 16, 5
	written := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for w := range writers {
		for r := range rounds {
			written[fmt.Sprintf("w%d-r%d", w, r)] = true
		}
		wg.Go(func() {
			for r := range rounds {
				if err := st.SetValue(t.Context(), kvNS, "shared", fmt.Appendf(nil, "w%d-r%d", w, r)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent SetValue: %v", err)
	}
	got := mustValue(t, st, kvNS, "shared")
	if !written[string(got)] {
		t.Errorf("after concurrent writes the value is %q, which nobody wrote", got)
	}
	// The last write, once the others are done, is what stays.
	mustSetValue(t, st, kvNS, "shared", []byte("last"))
	checkValue(t, st, kvNS, "shared", []byte("last"))
}

// incrementAll runs writers goroutines that each increment a decimal
// counter under key n times with a Value/CompareAndSetValue loop, taking the
// store for each write from pick.
func incrementAll(t *testing.T, pick func(w int) store.KV, key string, writers, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		kv := pick(w)
		wg.Go(func() {
			for range n {
				for {
					old, err := kv.Value(t.Context(), kvNS, key)
					if err != nil {
						errs <- err
						return
					}
					c, err := strconv.Atoi(string(old))
					if err != nil {
						errs <- fmt.Errorf("counter %q: %w", old, err)
						return
					}
					ok, err := kv.CompareAndSetValue(t.Context(), kvNS, key, old, strconv.AppendInt(nil, int64(c+1), 10))
					if err != nil {
						errs <- err
						return
					}
					if ok {
						break
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("read-modify-write: %v", err)
	}
}

func (s suite) testKVConcurrentCAS(t *testing.T) {
	st, _ := s.fresh(t)
	const writers, n = 8, 10
	mustSetValue(t, st, kvNS, "counter", []byte("0"))
	incrementAll(t, func(int) store.KV { return st }, "counter", writers, n)
	checkValue(t, st, kvNS, "counter", []byte(strconv.Itoa(writers*n)))
}

func (s suite) testKVTwoStores(t *testing.T) {
	b := s.newBackend(t)
	one, two := open(t, b), open(t, b)
	mustSetValue(t, one, kvNS, "k", []byte("from one"))
	checkValue(t, two, kvNS, "k", []byte("from one"))
	const writers, n = 8, 10
	mustSetValue(t, two, kvNS, "counter", []byte("0"))
	incrementAll(t, func(w int) store.KV {
		if w%2 == 0 {
			return one
		}
		return two
	}, "counter", writers, n)
	checkValue(t, one, kvNS, "counter", []byte(strconv.Itoa(writers*n)))
}

func (s suite) testKVReopen(t *testing.T) {
	st, b := s.fresh(t)
	v := []byte("\x00\x01 cursor \xff")
	mustSetValue(t, st, kvNS, "cursor", v)
	mustSetValue(t, st, kvNS, "replaced", []byte("old"))
	mustSetValue(t, st, kvNS, "replaced", []byte("new"))
	if !mustCAS(t, st, kvNS, "swapped", nil, []byte("cas")) {
		t.Fatal("CompareAndSetValue(nil old) on a missing key did not set it")
	}
	closeStore(t, st)
	if _, err := st.Value(t.Context(), kvNS, "cursor"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Value after Close: err = %v, want ErrClosed", err)
	}
	if err := st.SetValue(t.Context(), kvNS, "cursor", v); !errors.Is(err, store.ErrClosed) {
		t.Errorf("SetValue after Close: err = %v, want ErrClosed", err)
	}
	re := open(t, b)
	checkValue(t, re, kvNS, "cursor", v)
	checkValue(t, re, kvNS, "replaced", []byte("new"))
	checkValue(t, re, kvNS, "swapped", []byte("cas"))
}

func (s suite) testKVDelete(t *testing.T) {
	st, _ := s.fresh(t)
	del := func(key string, old []byte, want bool) {
		t.Helper()
		got, err := st.DeleteValue(t.Context(), kvNS, key, old)
		if err != nil || got != want {
			t.Fatalf("DeleteValue(%s, old %q) = %v, %v; want %v", key, old, got, err, want)
		}
	}
	mustSetValue(t, st, kvNS, "a", []byte("1"))
	mustSetValue(t, st, kvNS, "b", []byte("2"))
	mustSetValue(t, st, kvNS, "empty", []byte{})
	mustSetValue(t, st, "other", "a", []byte("1"))
	del("a", []byte("2"), false) // another value: kept
	checkValue(t, st, kvNS, "a", []byte("1"))
	del("a", []byte("1"), true)
	checkNoValue(t, st, kvNS, "a")
	checkValue(t, st, "other", "a", []byte("1")) // namespaces are separate
	del("a", nil, false)                         // gone already
	del("b", nil, true)                          // whatever its value
	checkNoValue(t, st, kvNS, "b")
	del("empty", []byte("x"), false)
	del("empty", []byte{}, true) // an empty old matches a stored empty value
	checkNoValue(t, st, kvNS, "empty")
	// A deleted key can be created again, also by CompareAndSetValue with nil old.
	if set, err := st.CompareAndSetValue(t.Context(), kvNS, "a", nil, []byte("again")); err != nil || !set {
		t.Fatalf("CompareAndSetValue after DeleteValue = %v, %v; want set", set, err)
	}
	checkValue(t, st, kvNS, "a", []byte("again"))
	if _, err := st.DeleteValue(t.Context(), kvNS, "", nil); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("DeleteValue of an empty key = %v, want ErrInvalid", err)
	}
}

func (s suite) testKVKeys(t *testing.T) {
	st, _ := s.fresh(t)
	want := []string{"A", "a", "a/b", "b", "\u00e9", "\u4e16"} // byte order: upper before lower, ASCII before UTF-8
	for _, k := range []string{"b", "\u4e16", "a", "\u00e9", "a/b", "A"} {
		mustSetValue(t, st, kvNS, k, []byte(k))
	}
	mustSetValue(t, st, "other", "x", nil)
	mustSetValue(t, st, kvNS+"2", "c", nil)
	for _, size := range []int{1, 2, 4, 100} {
		var got []string
		after := ""
		for range 100 {
			page, err := st.Keys(t.Context(), kvNS, after, size)
			if err != nil {
				t.Fatalf("Keys(after %q, %d): %v", after, size, err)
			}
			if len(page) > size {
				t.Fatalf("Keys(after %q, %d) returned %d", after, size, len(page))
			}
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
			after = page[len(page)-1]
		}
		if !slices.Equal(got, want) {
			t.Errorf("Keys in pages of %d = %q, want %q", size, got, want)
		}
	}
	if keys, err := st.Keys(t.Context(), "none", "", 10); err != nil || len(keys) != 0 {
		t.Errorf("Keys of an empty namespace = %q, %v; want none", keys, err)
	}
	if keys, err := st.Keys(t.Context(), kvNS, "", 0); err != nil || len(keys) != 0 {
		t.Errorf("Keys with limit 0 = %q, %v; want none", keys, err)
	}
	if _, err := st.Keys(t.Context(), "", "", 10); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Keys of an empty namespace name = %v, want ErrInvalid", err)
	}
}
