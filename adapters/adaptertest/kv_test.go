package adaptertest

import (
	"errors"
	"slices"
	"testing"

	"github.com/switchboardhq/switchboard/store"
)

func TestMemoryKV(t *testing.T) {
	var kv MemoryKV
	ctx := t.Context()
	if _, err := kv.Value(ctx, "ns", "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Value of a missing key: %v", err)
	}
	if set, _ := kv.CompareAndSetValue(ctx, "ns", "a", nil, []byte("1")); !set {
		t.Fatal("CompareAndSetValue with nil old on a missing key did not set")
	}
	if set, _ := kv.CompareAndSetValue(ctx, "ns", "a", nil, []byte("2")); set {
		t.Fatal("CompareAndSetValue with nil old on an existing key set")
	}
	_ = kv.SetValue(ctx, "ns", "b", nil)
	_ = kv.SetValue(ctx, "other", "c", []byte("x"))
	if v, err := kv.Value(ctx, "ns", "b"); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("a stored nil reads as %q, %v; want empty, not nil", v, err)
	}
	if keys, _ := kv.Keys(ctx, "ns", "", 10); !slices.Equal(keys, []string{"a", "b"}) {
		t.Fatalf("Keys = %q", keys)
	}
	if keys, _ := kv.Keys(ctx, "ns", "a", 1); !slices.Equal(keys, []string{"b"}) {
		t.Fatalf("Keys after a = %q", keys)
	}
	if del, _ := kv.DeleteValue(ctx, "ns", "a", []byte("2")); del {
		t.Fatal("DeleteValue of another value deleted")
	}
	if del, _ := kv.DeleteValue(ctx, "ns", "a", []byte("1")); !del {
		t.Fatal("DeleteValue of the value did not delete")
	}
	if del, _ := kv.DeleteValue(ctx, "ns", "b", nil); !del {
		t.Fatal("DeleteValue with nil old did not delete")
	}
	if keys, _ := kv.Keys(ctx, "ns", "", 10); len(keys) != 0 {
		t.Fatalf("Keys after deleting = %q", keys)
	}
}
