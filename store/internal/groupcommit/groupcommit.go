// Package groupcommit batches concurrent requests into shared commits, so
// that durability costs one fsync per batch rather than one per request.
package groupcommit

import (
	"context"
	"errors"
	"runtime"
	"sync"
)

// ErrClosed is returned by Do after Close.
var ErrClosed = errors.New("groupcommit: closed")

// Result is the outcome of one request in a batch.
type Result[Res any] struct {
	Val Res
	Err error
}

// CommitFunc commits batch in one transaction and returns one Result per
// request, in order. A non-nil error fails every request of the batch (the
// transaction did not commit).
type CommitFunc[Req, Res any] func(ctx context.Context, batch []Req) ([]Result[Res], error)

type call[Req, Res any] struct {
	req  Req
	done chan Result[Res]
}

// Committer runs workers goroutines, each of which takes the requests waiting
// (up to maxBatch) and commits them together. While one batch commits, the
// next gathers: no timer delays a request. Committer is safe for concurrent
// use; its goroutines stop when Close returns.
type Committer[Req, Res any] struct {
	fn       CommitFunc[Req, Res]
	maxBatch int
	calls    chan *call[Req, Res]
	onBatch  func(n int)
	lock     bool

	mu     sync.RWMutex
	closed bool
	wg     sync.WaitGroup
}

// Options tune a Committer.
type Options struct {
	// OnBatch, if not nil, is told the size of every batch (for metrics).
	OnBatch func(n int)
	// LockThread runs each worker locked to an OS thread of its own, so
	// that the thread's CPU time (package cputime) is the commits'.
	LockThread bool
}

// New starts a Committer with the given number of workers.
func New[Req, Res any](workers, maxBatch int, fn CommitFunc[Req, Res], opts Options) *Committer[Req, Res] {
	if workers < 1 {
		workers = 1
	}
	if maxBatch < 1 {
		maxBatch = 1
	}
	c := &Committer[Req, Res]{
		fn:       fn,
		maxBatch: maxBatch,
		calls:    make(chan *call[Req, Res], maxBatch*workers),
		onBatch:  opts.OnBatch,
		lock:     opts.LockThread,
	}
	c.wg.Add(workers)
	for range workers {
		go c.worker()
	}
	return c
}

// Do submits req and blocks until the batch holding it has committed (or
// failed). If ctx ends before req joins a batch, Do returns ctx.Err() and req
// is never committed; once req is in a batch, Do waits for the outcome.
func (c *Committer[Req, Res]) Do(ctx context.Context, req Req) (Res, error) {
	var zero Res
	cl := &call[Req, Res]{req: req, done: make(chan Result[Res], 1)}
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return zero, ErrClosed
	}
	select {
	case c.calls <- cl:
		c.mu.RUnlock()
	case <-ctx.Done():
		c.mu.RUnlock()
		return zero, ctx.Err()
	}
	r := <-cl.done
	return r.Val, r.Err
}

// Close stops taking requests, commits those already queued and waits for
// the workers to finish.
func (c *Committer[Req, Res]) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	close(c.calls)
	c.mu.Unlock()
	c.wg.Wait()
}

func (c *Committer[Req, Res]) worker() {
	defer c.wg.Done()
	if c.lock {
		// Never unlocked: the thread exits with the worker.
		runtime.LockOSThread()
	}
	batch := make([]*call[Req, Res], 0, c.maxBatch)
	reqs := make([]Req, 0, c.maxBatch)
	for first := range c.calls {
		batch = append(batch[:0], first)
	gather:
		for len(batch) < c.maxBatch {
			select {
			case cl, ok := <-c.calls:
				if !ok {
					break gather
				}
				batch = append(batch, cl)
			default:
				break gather
			}
		}
		reqs = reqs[:0]
		for _, cl := range batch {
			reqs = append(reqs, cl.req)
		}
		if c.onBatch != nil {
			c.onBatch(len(batch))
		}
		// The batch is committed even if the callers have gone: they may only
		// leave before joining a batch.
		results, err := c.fn(context.Background(), reqs)
		for i, cl := range batch {
			switch {
			case err != nil:
				cl.done <- Result[Res]{Err: err}
			case i < len(results):
				cl.done <- results[i]
			default:
				cl.done <- Result[Res]{Err: errors.New("groupcommit: commit returned too few results")}
			}
		}
	}
}
