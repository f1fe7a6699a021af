package groupcommit

import (
	"context"
	"runtime"
	"sync"
	"syscall"
	"testing"
)

// TestLockThreadKeepsTheWorkerOnOneThread: with LockThread, every batch
// runs on the same OS thread, however the scheduler moves goroutines
// meanwhile, so that the thread's CPU time is the commits'.
func TestLockThreadKeepsTheWorkerOnOneThread(t *testing.T) {
	var mu sync.Mutex
	tids := map[int]bool{}
	c := New(1, 1, func(_ context.Context, b []int) ([]Result[int], error) {
		mu.Lock()
		tids[syscall.Gettid()] = true
		mu.Unlock()
		runtime.Gosched()
		return make([]Result[int], len(b)), nil
	}, Options{LockThread: true})
	defer c.Close()
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Do(context.Background(), i); err != nil {
				t.Error(err)
			}
			runtime.Gosched()
		}()
	}
	wg.Wait()
	if len(tids) != 1 {
		t.Errorf("the batches ran on %d threads, want 1", len(tids))
	}
}
