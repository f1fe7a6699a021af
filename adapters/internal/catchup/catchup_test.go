package catchup

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/store/sqlite"
)

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func openKV(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), t.TempDir()+"/kv.db", sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestSeenNeverMovesBack: a mark follows the newest message stored, and
// an older one, or Start, leaves it where it is.
func TestSeenNeverMovesBack(t *testing.T) {
	m := New(openKV(t), "slack", func() time.Time { return t0 })
	ctx := t.Context()
	if _, ok, err := m.Get(ctx, "T/C/1"); err != nil || ok {
		t.Fatalf("Get before any mark: %v %v", ok, err)
	}
	must(t, m.Seen(ctx, "T/C/1", t0.Add(-time.Minute), "1.000"))
	must(t, m.Seen(ctx, "T/C/1", t0.Add(-2*time.Minute), "0.500"))
	must(t, m.Start(ctx, "T/C/1", t0, "9.000"))
	got, ok, err := m.Get(ctx, "T/C/1")
	if err != nil || !ok || !got.Last.Equal(t0.Add(-time.Minute)) || got.Cursor != "1.000" {
		t.Fatalf("mark %+v %v %v, want the newer message's", got, ok, err)
	}
	must(t, m.Start(ctx, "C9", t0, "5.000"))
	if got, _, _ := m.Get(ctx, "C9"); !got.Last.Equal(t0) || got.Cursor != "5.000" {
		t.Errorf("Start of a new scope gave %+v", got)
	}
}

// TestReplicasLoseNoAdvance: two replicas' Marks on one store, advancing
// different scopes at once, keep every advance (compare-and-set).
func TestReplicasLoseNoAdvance(t *testing.T) {
	kv := openKV(t)
	now := func() time.Time { return t0 }
	a, b := New(kv, "github", now), New(kv, "github", now)
	var wg sync.WaitGroup
	for i := range 40 {
		m := a
		if i%2 == 1 {
			m = b
		}
		wg.Go(func() {
			if err := m.Seen(t.Context(), fmt.Sprintf("o/r%d", i), t0.Add(-time.Duration(i)*time.Second), ""); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	all, err := a.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 40 {
		t.Fatalf("%d scopes kept of 40 advanced concurrently", len(all))
	}
}

// TestMarksAreBounded: scopes idle past the retention go, and past
// MaxScopes the idlest go.
func TestMarksAreBounded(t *testing.T) {
	now := t0
	m := New(openKV(t), "jira", func() time.Time { return now })
	ctx := t.Context()
	must(t, m.Seen(ctx, "OLD", t0.Add(-retention-time.Hour), ""))
	must(t, m.Seen(ctx, "NEW", t0, ""))
	all, err := m.Load(ctx)
	must(t, err)
	if _, ok := all["OLD"]; ok || len(all) != 1 {
		t.Errorf("after a change, marks %v, want the idle one gone", all)
	}
	v := map[string]Mark{}
	for i := range MaxScopes + 10 {
		v[fmt.Sprint(i)] = Mark{Last: t0.Add(time.Duration(i) * time.Second)}
	}
	prune(v, t0.Add(time.Hour))
	if len(v) != MaxScopes {
		t.Fatalf("%d marks after prune, want %d", len(v), MaxScopes)
	}
	for i := range 10 {
		if _, ok := v[fmt.Sprint(i)]; ok {
			t.Errorf("the idlest scope %d was kept", i)
		}
	}
}

// TestActiveAndFrom: a catch-up looks at the scopes active within its
// window, oldest first, and never fetches from before the window.
func TestActiveAndFrom(t *testing.T) {
	marks := map[string]Mark{
		"a": {Last: t0.Add(-3 * time.Hour)},
		"b": {Last: t0.Add(-time.Hour)},
		"c": {Last: t0.Add(-30 * time.Minute)},
		"d": {Last: t0.Add(-25 * time.Hour)},
	}
	if got := fmt.Sprint(Active(marks, t0, 2*time.Hour)); got != "[b c]" {
		t.Errorf("Active = %s, want [b c]", got)
	}
	if got := fmt.Sprint(Active(marks, t0, 24*time.Hour)); got != "[a b c]" {
		t.Errorf("Active = %s, want [a b c]", got)
	}
	if got := From(marks["b"], t0, 2*time.Hour); !got.Equal(t0.Add(-time.Hour)) {
		t.Errorf("From(b) = %s, want its last message", got)
	}
	if got := From(marks["a"], t0, 2*time.Hour); !got.Equal(t0.Add(-2 * time.Hour)) {
		t.Errorf("From(a) = %s, want the window's start", got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
