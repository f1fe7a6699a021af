package catchup

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/store"
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

// TestOnlyACatchUpMovesAMark: a live message makes its scope known (it
// starts there) and active, but never moves the start of its catch-up,
// which would skip what was missed before it; Advance moves it forward
// only, and Start leaves a known scope alone.
func TestOnlyACatchUpMovesAMark(t *testing.T) {
	m := New(openKV(t), "slack", func() time.Time { return t0 })
	ctx := t.Context()
	if _, ok, err := m.Get(ctx, "T/C/1"); err != nil || ok {
		t.Fatalf("Get before any mark: %v %v", ok, err)
	}
	must(t, m.Seen(ctx, "T/C/1", t0.Add(-time.Hour), "1.000"))
	// The gateway was down; a live message after the restart.
	must(t, m.Seen(ctx, "T/C/1", t0.Add(-time.Minute), "2.000"))
	got, _, err := m.Get(ctx, "T/C/1")
	must(t, err)
	if !got.Last.Equal(t0.Add(-time.Hour)) || got.Cursor != "1.000" || !got.Active.Equal(t0.Add(-time.Minute)) {
		t.Fatalf("after a live message past a gap: %+v, want the start kept and the scope active", got)
	}
	must(t, m.Advance(ctx, "T/C/1", t0.Add(-30*time.Minute), "1.500"))
	must(t, m.Advance(ctx, "T/C/1", t0.Add(-40*time.Minute), "1.400"))
	must(t, m.Start(ctx, "T/C/1", t0, "9.000"))
	got, _, err = m.Get(ctx, "T/C/1")
	must(t, err)
	if !got.Last.Equal(t0.Add(-30*time.Minute)) || got.Cursor != "1.500" {
		t.Fatalf("mark %+v, want the newest message the catch-up handled", got)
	}
	must(t, m.Start(ctx, "C9", t0, "5.000"))
	if got, _, _ := m.Get(ctx, "C9"); !got.Last.Equal(t0) || got.Cursor != "5.000" {
		t.Errorf("Start of a new scope gave %+v", got)
	}
}

// TestLiveActivityIsWrittenByTheMinute: a busy scope's live messages cost
// a write when its activity moves by a minute, not one each.
func TestLiveActivityIsWrittenByTheMinute(t *testing.T) {
	kv := &countingKV{KV: openKV(t)}
	m := New(kv, "slack", func() time.Time { return t0 })
	for i := range 120 {
		must(t, m.Seen(t.Context(), "T/C/1", t0.Add(time.Duration(i)*time.Second), ""))
	}
	if kv.sets != 2 {
		t.Errorf("120 live messages over two minutes wrote the marks %d times, want 2", kv.sets)
	}
}

type countingKV struct {
	store.KV
	sets int
}

func (k *countingKV) CompareAndSetValue(ctx context.Context, ns, key string, old, v []byte) (bool, error) {
	k.sets++
	return k.KV.CompareAndSetValue(ctx, ns, key, old, v)
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
			if err := m.Advance(t.Context(), fmt.Sprintf("o/r%d", i), t0.Add(-time.Duration(i)*time.Second), ""); err != nil {
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
	must(t, m.Advance(ctx, "OLD", t0.Add(-retention-time.Hour), ""))
	must(t, m.Advance(ctx, "NEW", t0, ""))
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
		// Its catch-up start is old, but a live message came an hour ago.
		"e": {Last: t0.Add(-48 * time.Hour), Active: t0.Add(-time.Hour)},
	}
	if got := fmt.Sprint(Active(marks, t0, 2*time.Hour)); got != "[e b c]" {
		t.Errorf("Active = %s, want [e b c]", got)
	}
	if got := fmt.Sprint(Active(marks, t0, 24*time.Hour)); got != "[e a b c]" {
		t.Errorf("Active = %s, want [e a b c]", got)
	}
	if got := From(marks["e"], t0, 24*time.Hour); !got.Equal(t0.Add(-24 * time.Hour)) {
		t.Errorf("From(e) = %s, want the window's start", got)
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
