package retry

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"
)

func TestBackoffDoublesUpToMaxAndResets(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 5 * time.Second}
	var got []time.Duration
	for range 5 {
		got = append(got, b.Next())
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("waits %v, want %v", got, want)
		}
	}
	b.Reset()
	if d := b.Next(); d != time.Second {
		t.Fatalf("after Reset: %v, want Min", d)
	}
}

func TestSleepStopsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep reported the full wait on a cancelled context")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep did not report the elapsed wait")
	}
}

func TestUntilRetriesUntilSuccessOrCancel(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	calls := 0
	ok := Until(context.Background(), &Backoff{Min: time.Millisecond, Max: time.Millisecond}, log, "probe", func() error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if !ok || calls != 3 {
		t.Fatalf("Until = %v after %d calls, want true after 3", ok, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ok = Until(ctx, &Backoff{Min: time.Hour, Max: time.Hour}, log, "probe", func() error { cancel(); return errors.New("down") })
	if ok {
		t.Fatal("Until reported success after its context ended")
	}
}

func TestJitterGrowsAndIsCapped(t *testing.T) {
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 5: 16 * time.Second, 30: time.Minute} {
		for range 50 {
			got := Jitter(attempt, time.Second, time.Minute)
			if got < want/2 || got > want {
				t.Fatalf("Jitter(%d) = %s, want within [%s, %s]", attempt, got, want/2, want)
			}
		}
	}
}
