package groupcommit

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

func TestBatchesConcurrentCalls(t *testing.T) {
	release := make(chan struct{})
	var batches, total, held atomic.Int64
	var first sync.Once
	c := New(1, 64, func(_ context.Context, b []int) ([]Result[int], error) {
		first.Do(func() { held.Store(int64(len(b))); <-release }) // hold the first batch so others gather
		batches.Add(1)
		total.Add(int64(len(b)))
		out := make([]Result[int], len(b))
		for i, v := range b {
			out[i] = Result[int]{Val: v * 2}
		}
		return out, nil
	}, Options{})
	defer c.Close()

	var wg sync.WaitGroup
	const n = 50
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := c.Do(context.Background(), i)
			if err == nil && v != i*2 {
				err = errors.New("wrong result")
			}
			errs <- err
		}()
	}
	for held.Load()+int64(len(c.calls)) < n { // all are held or queued
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if total.Load() != n {
		t.Fatalf("committed %d requests, want %d", total.Load(), n)
	}
	if b := batches.Load(); b > 3 {
		t.Fatalf("%d batches for %d queued calls, want them grouped", b, n)
	}
}

func TestBatchErrorFailsEveryCall(t *testing.T) {
	boom := errors.New("boom")
	c := New(1, 8, func(context.Context, []string) ([]Result[string], error) { return nil, boom }, Options{})
	defer c.Close()
	if _, err := c.Do(context.Background(), "x"); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
}

func TestPerItemErrors(t *testing.T) {
	bad := errors.New("bad")
	c := New(2, 8, func(_ context.Context, b []int) ([]Result[int], error) {
		out := make([]Result[int], len(b))
		for i, v := range b {
			if v < 0 {
				out[i].Err = bad
			} else {
				out[i].Val = v
			}
		}
		return out, nil
	}, Options{})
	defer c.Close()
	if _, err := c.Do(context.Background(), -1); !errors.Is(err, bad) {
		t.Fatalf("err = %v, want bad", err)
	}
	if v, err := c.Do(context.Background(), 3); err != nil || v != 3 {
		t.Fatalf("got %v, %v", v, err)
	}
}

func TestDoAfterClose(t *testing.T) {
	c := New(1, 1, func(_ context.Context, b []int) ([]Result[int], error) { return make([]Result[int], len(b)), nil }, Options{})
	c.Close()
	c.Close() // idempotent
	if _, err := c.Do(context.Background(), 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
}

func TestCanceledBeforeQueued(t *testing.T) {
	block := make(chan struct{})
	entered := make(chan struct{}, 1)
	c := New(1, 1, func(_ context.Context, b []int) ([]Result[int], error) {
		entered <- struct{}{}
		<-block
		return make([]Result[int], len(b)), nil
	}, Options{})
	defer func() { close(block); c.Close() }()
	// Fill the worker and the queue (capacity maxBatch*workers = 1).
	go c.Do(context.Background(), 1)
	<-entered
	go c.Do(context.Background(), 2)
	for len(c.calls) < 1 {
		runtime.Gosched()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Do(ctx, 3); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
