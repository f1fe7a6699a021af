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

func TestWaitSaysWhyItStopped(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Wait(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on a cancelled context = %v, want context.Canceled", err)
	}
	if err := Wait(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("Wait of an elapsed wait = %v, want nil", err)
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

func TestJitterAtPlacesTheWaitInTheUpperHalf(t *testing.T) {
	for _, tc := range []struct {
		attempt int
		f       float64
		want    time.Duration
	}{
		{1, 0, 125 * time.Millisecond},
		{1, 0.5, 187500 * time.Microsecond},
		{1, 1, 250 * time.Millisecond},
		{0, 1, 250 * time.Millisecond},    // before the first attempt: base
		{3, 0.5, 750 * time.Millisecond},  // 1s step
		{4, 0.5, 1500 * time.Millisecond}, // 2s step
		{5, 0.5, 2250 * time.Millisecond}, // 4s step capped at 3s
		{1 << 30, 1, 3 * time.Second},     // no overflow
		{2, -1, 250 * time.Millisecond},   // f clamped to [0, 1]
		{2, 7, 500 * time.Millisecond},
	} {
		if got := JitterAt(tc.attempt, 250*time.Millisecond, 3*time.Second, tc.f); got != tc.want {
			t.Errorf("JitterAt(%d, 250ms, 3s, %v) = %s, want %s", tc.attempt, tc.f, got, tc.want)
		}
	}
	// A cap near the largest duration does not overflow the doubling.
	huge := time.Duration(1<<63 - 1)
	if got := JitterAt(100, time.Second, huge, 1); got != huge {
		t.Errorf("JitterAt with a huge cap = %s, want the cap", got)
	}
}
