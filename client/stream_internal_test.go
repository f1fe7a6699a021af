package client

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestStreamBackoff fails Stream's connections: its waits must double from
// 100ms, stop at 5s, and start over after a connection that brought a
// record.
func TestStreamBackoff(t *testing.T) {
	var mu sync.Mutex
	conns := 0
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns++
		n := conns
		mu.Unlock()
		if n != 8 {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		// The 8th connection brings record 1, then drops.
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "id: 1\ndata: {\"seq\":1}\n\n")
	}))
	defer hs.Close()
	c := New(hs.URL, "token", hs.Client())
	var waits []time.Duration
	c.sleep = func(ctx context.Context, d time.Duration) bool {
		waits = append(waits, d)
		return len(waits) < 10
	}
	var got []int64
	if err := c.Stream(context.Background(), "ses_1", 0, func(r Record) error { got = append(got, r.Seq); return nil }); err != nil {
		t.Fatalf("Stream = %v, want nil when its wait is cut short", err)
	}
	ms := time.Millisecond
	want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 5000 * ms, 100 * ms, 200 * ms, 400 * ms}
	if !slices.Equal(waits, want) || !slices.Equal(got, []int64{1}) {
		t.Errorf("waits %v, records %v; want waits %v and record 1", waits, got, want)
	}
}
