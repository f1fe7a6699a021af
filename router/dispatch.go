package router

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/retry"
	"github.com/switchboardhq/switchboard/router/runtime"
	"github.com/switchboardhq/switchboard/store"
)

// consumerRuntime is the cursor consumer of the runtime dispatcher.
const consumerRuntime = "runtime"

// follower runs fn for each session that has log records past consumer's
// cursor, leasing the session so that one process at a time works on it,
// at most parallel sessions at once. fn returns the cursor the session's
// work reached, and the follower releases the session there. It returns
// when ctx ends, after the sessions in hand are done.
//
// A claim returns only sessions no process holds, this one included: the
// sessions in hand are neither returned nor written by it. So a session
// is released only once it is out of the follower's hands, and a claim
// that takes it up again starts it afresh.
//
// A session whose work fails is parked: its lease is set to run out after
// a backoff (doubling from failBackoffMin up to the lease time), so that
// no process takes it up again before then and a persistent failure is
// not retried in a tight loop.
type follower struct {
	r        *Router
	consumer string
	parallel int
	fn       func(ctx context.Context, w store.Work) (cursor int64, err error)
}

// parking is a failed session's backoff.
type parking struct {
	until time.Time
	b     retry.Backoff
}

// failBackoffMin is the first wait before a session whose work failed is
// run again.
const failBackoffMin = 100 * time.Millisecond

func (f *follower) run(ctx context.Context) {
	// Woken by the appends that can give it work, not by every append:
	// outputs and messages to inbox sessions would each cost a claim that
	// finds nothing.
	sig, cancel := f.r.st.Subscribe(store.RuntimeWork)
	defer cancel()
	ticker := time.NewTicker(f.r.poll)
	defer ticker.Stop()

	var (
		mu     sync.Mutex
		active = map[string]bool{}
		parked = map[string]*parking{}
		wg     sync.WaitGroup
		done   = make(chan struct{}, 1)
	)
	gauge := f.r.metrics.inHand.WithLabelValues(f.consumer)
	defer wg.Wait()
	// work runs fn for w, then releases the session, or parks it when fn
	// failed.
	work := func(w store.Work) {
		defer wg.Done()
		defer func() {
			select {
			case done <- struct{}{}:
			default:
			}
		}()
		cursor, err := f.fn(ctx, w)
		mu.Lock()
		// Out of hand before it is released: a claim that takes it up
		// once it is released starts it again.
		delete(active, w.SessionID)
		gauge.Set(float64(len(active)))
		if ctx.Err() != nil {
			// Stopping: its lease runs out, and another process takes
			// it up from its cursor.
			mu.Unlock()
			return
		}
		var until time.Time // release
		var wait time.Duration
		if err != nil {
			p := parked[w.SessionID]
			if p == nil {
				p = &parking{b: retry.Backoff{Min: min(failBackoffMin, f.r.lease), Max: f.r.lease}}
				parked[w.SessionID] = p
			}
			wait = p.b.Next()
			p.until = f.r.now().Add(wait)
			until = p.until
		} else {
			delete(parked, w.SessionID)
		}
		mu.Unlock()
		if err != nil {
			f.r.log.Error("session work failed", "consumer", f.consumer, "session", w.SessionID, "err", err, "retry_in", wait)
		}
		if err := f.r.st.Advance(ctx, f.consumer, w.SessionID, f.r.owner, cursor, until); err != nil && ctx.Err() == nil {
			f.r.log.Warn("release session", "consumer", f.consumer, "session", w.SessionID, "err", err)
		}
	}
	for {
		mu.Lock()
		free := f.parallel - len(active)
		mu.Unlock()
		if free > 0 {
			now := f.r.now()
			works, err := f.r.st.ClaimWork(ctx, f.consumer, f.r.owner, free, now, now.Add(f.r.lease))
			if err != nil && ctx.Err() == nil {
				f.r.log.Error("claim work", "consumer", f.consumer, "err", err)
			}
			mu.Lock()
			for id, p := range parked {
				// Not taken up here a lease after its backoff ended: done
				// elsewhere, or nothing more to do.
				if now.After(p.until.Add(f.r.lease)) {
					delete(parked, id)
				}
			}
			for _, w := range works {
				if active[w.SessionID] {
					// Its lease ran out while its work went on (a store too
					// slow to extend it), and this claim took it back: the
					// work in hand goes on, and releases it.
					continue
				}
				active[w.SessionID] = true
				wg.Add(1)
				go work(w)
			}
			gauge.Set(float64(len(active)))
			mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-sig:
			// Appends come in bursts: gather a moment's worth into one
			// claim rather than one claim (a write) per append.
			if !retry.Sleep(ctx, claimCoalesce) {
				return
			}
		case <-ticker.C:
		case <-done:
		}
	}
}

// claimCoalesce is how long a follower waits after being told of an append
// before claiming, so that one claim covers a burst of appends.
const claimCoalesce = 2 * time.Millisecond

// keepLease extends the lease on a session every third of the lease time
// until stop is called; lost is closed if the lease is lost.
func (r *Router) keepLease(ctx context.Context, consumer, sessionID string, cursor func() int64) (lost <-chan struct{}, stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	l := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(r.lease / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				err := r.st.Advance(ctx, consumer, sessionID, r.owner, cursor(), r.now().Add(r.lease))
				if errors.Is(err, store.ErrLeaseLost) {
					close(l)
					return
				}
			}
		}
	}()
	return l, func() { cancel(); wg.Wait() }
}

// dispatch hands a session's new inbound messages to its runtime, in order,
// one turn at a time, and returns the cursor it reached once the session
// is caught up (idle) or its work fails.
func (r *Router) dispatch(ctx context.Context, w store.Work) (int64, error) {
	sess, err := r.st.Session(ctx, w.SessionID)
	if err != nil {
		return w.Cursor, err
	}
	rt := r.routeOf(sess)
	if !hasRuntime(rt) {
		// The agent reads the log itself; nothing to hand over.
		return w.LastSeq, nil
	}
	run := r.runtimes[rt.Name]
	cursor := w.Cursor
	var mu sync.Mutex
	getCursor := func() int64 { mu.Lock(); defer mu.Unlock(); return cursor }
	lost, stop := r.keepLease(ctx, consumerRuntime, w.SessionID, getCursor)
	defer stop()
	for {
		recs, err := r.st.Read(ctx, w.SessionID, cursor, 256)
		if err != nil {
			return cursor, err
		}
		turn, last := pendingTurn(recs, rt)
		if len(turn) == 0 {
			if len(recs) > 0 {
				mu.Lock()
				cursor = last
				mu.Unlock()
				if err := r.st.Advance(ctx, consumerRuntime, w.SessionID, r.owner, cursor, r.now().Add(r.lease)); err != nil {
					return cursor, err
				}
				continue
			}
			// Caught up: the session goes idle, and is released.
			if _, err := r.st.SetState(ctx, w.SessionID, store.Idle); err != nil {
				return cursor, err
			}
			return cursor, nil
		}
		if rt.Busy == "collect" && rt.Debounce > 0 {
			select {
			case <-time.After(rt.Debounce.D()):
			case <-ctx.Done():
				return cursor, nil
			}
			if recs, err = r.st.Read(ctx, w.SessionID, cursor, 256); err != nil {
				return cursor, err
			}
			turn, _ = pendingTurn(recs, rt)
		}
		if _, err := r.st.SetState(ctx, w.SessionID, store.Running); err != nil {
			return cursor, err
		}
		interrupted, err := r.runTurn(ctx, rt, run, w.SessionID, turn, lost)
		if err != nil {
			return cursor, err
		}
		if interrupted {
			continue // run again with everything pending
		}
		mu.Lock()
		cursor = turn[len(turn)-1].Seq
		mu.Unlock()
		// The turn is recorded (runTurn): so is its end, even when the
		// gateway began to stop while it ran.
		actx, cancel := finishing(ctx)
		err = r.st.Advance(actx, consumerRuntime, w.SessionID, r.owner, cursor, r.now().Add(r.lease))
		cancel()
		if err != nil {
			return cursor, err
		}
	}
}

// finishTimeout bounds the recording of a turn that ended as the gateway
// began to stop (finishing).
const finishTimeout = 5 * time.Second

// finishing returns ctx, or, when ctx has ended, a context that has not,
// ending after finishTimeout: what an agent's finished run gave is recorded
// even as the gateway stops, since a turn not recorded runs again after
// the restart and the agent gets its messages twice. A run that the stop
// cut short is not finished, and runs again.
func finishing(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx.Err() == nil {
		return ctx, func() {}
	}
	return context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
}

// pendingTurn picks the next turn from recs (the records after the cursor):
// the first pending message alone (queue), or every pending message
// (collect, interrupt). last is the seq of the last record read.
func pendingTurn(recs []store.Record, rt *config.Route) (turn []store.Record, last int64) {
	for _, rec := range recs {
		last = rec.Seq
		if !rec.ForRuntime() {
			// Outputs and notices are not the agent's to answer, nor
			// messages that came while the session's route had no runtime.
			continue
		}
		turn = append(turn, rec)
		if rt.Busy == "queue" {
			break
		}
	}
	return turn, last
}

// runTurn runs one turn and appends its outputs (or a system envelope
// saying it failed). interrupted is true when the turn was cancelled for
// newer messages (busy: interrupt) and must be run again.
//
// An output longer than limits.max_text is cut to it, with a note saying
// so at its end. An output the store refuses is tried outputTries times;
// then a system envelope takes its place in the log, saying what failed,
// and the turn is over: the agent is not run again for an output it gave.
// That envelope is tried until it is stored (or the work stops), since
// without it the turn would have to run again.
func (r *Router) runTurn(ctx context.Context, rt *config.Route, run runtime.Runtime, sessionID string, turn []store.Record, lost <-chan struct{}) (interrupted bool, err error) {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var newer chan struct{}
	if rt.Busy == "interrupt" {
		newer = make(chan struct{})
		sig, unsub := r.st.Subscribe(sessionID)
		defer unsub()
		lastSeq := turn[len(turn)-1].Seq
		go func() {
			// Look once before waiting: a message stored after the turn
			// was read but before the subscription sent no signal.
			for {
				recs, err := r.st.Read(runCtx, sessionID, lastSeq, 64)
				if t, _ := pendingTurn(recs, rt); err == nil && len(t) > 0 {
					close(newer)
					cancel()
					return
				}
				select {
				case <-runCtx.Done():
					return
				case <-sig:
				}
			}
		}()
	}
	go func() {
		select {
		case <-lost:
			cancel()
		case <-runCtx.Done():
		}
	}()
	last := turn[len(turn)-1].Seq
	key := rt.Runtime + ":" + strconv.FormatInt(last, 10)
	rep := &replies{r: r, lost: lost, rt: rt, sessionID: sessionID, key: key, last: last}
	if rt.Progress == config.ProgressReactions {
		r.progress(ctx, turn, true)
		defer func() {
			if !interrupted { // an interrupted turn runs again at once
				r.progress(ctx, turn, false)
			}
		}()
	}
	if err := rep.begin(ctx); err != nil {
		return false, err
	}
	start := r.now()
	emit := func(o runtime.Output) error { return rep.add(ctx, -1, o) }
	outs, runErr := run.Run(runCtx, runtime.Turn{SessionID: sessionID, Records: turn, Token: r.token(sessionID), Emit: emit})
	r.metrics.turnSeconds.WithLabelValues(rt.Name).Observe(r.now().Sub(start).Seconds())
	select {
	case <-newer:
		r.metrics.turns.WithLabelValues(rt.Name, "interrupted").Inc()
		return true, rep.end(ctx)
	default:
	}
	select {
	case <-lost:
		return false, fmt.Errorf("router: session %s: %w", sessionID, store.ErrLeaseLost)
	default:
	}
	if ctx.Err() != nil && runErr != nil {
		return false, ctx.Err() // cut short by the stop: it runs again
	}
	// A run that finished is recorded, even when the gateway began to stop
	// while it ran (finishing).
	ctx, cancelFinish := finishing(ctx)
	defer cancelFinish()
	if runErr != nil {
		r.metrics.turns.WithLabelValues(rt.Name, "failed").Inc()
		r.log.Error("agent run failed", "session", sessionID, "route", rt.Name, "seq", last, "err", runErr)
		if err := rep.end(ctx); err != nil {
			return false, err
		}
		return false, r.appendSystem(ctx, sessionID, sessionID+":"+key+":failed",
			fmt.Sprintf("The agent failed to answer message %d: %v", last, runErr), store.Outbound, nil)
	}
	r.metrics.turns.WithLabelValues(rt.Name, "ok").Inc()
	for i, out := range outs {
		if err := rep.add(ctx, i, out); err != nil {
			return false, err
		}
	}
	return false, rep.end(ctx)
}

// How often an output the store refuses is tried, and the waits between.
const (
	outputTries      = 5
	outputBackoffMin = 100 * time.Millisecond
	outputBackoffMax = 2 * time.Second
)

// persist calls try until it returns nil, at most tries times (no bound
// when tries is 0; once, with a bound, when the store refuses the input as
// invalid), waiting a capped exponential backoff between calls
// and logging each failure as what. It gives up at once when ctx ends,
// the store is closed, or the lease is lost (the error then wraps
// store.ErrLeaseLost); stopped tells these apart from a failure of try.
func (r *Router) persist(ctx context.Context, lost <-chan struct{}, tries int, what string, try func() error) error {
	b := retry.Backoff{Min: outputBackoffMin, Max: outputBackoffMax}
	for n := 1; ; n++ {
		err := try()
		// Input the store will never hold (store.ErrInvalid) is not tried
		// again.
		if err == nil || stopped(ctx, err) || (tries > 0 && (n >= tries || errors.Is(err, store.ErrInvalid))) {
			return err
		}
		wait := b.Next()
		r.log.Warn(what+" failed; retrying", "err", err, "try", n, "in", wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-lost:
			t.Stop()
			return store.ErrLeaseLost
		}
	}
}

// stopped reports whether err (from persist) means that the work must stop
// rather than that the store refused what it was given.
func stopped(ctx context.Context, err error) bool {
	return err != nil && (ctx.Err() != nil || errors.Is(err, store.ErrClosed) || errors.Is(err, store.ErrLeaseLost))
}

// progressTimeout bounds one adapters.Progress call.
const progressTimeout = 5 * time.Second

// progress tells the adapters of the turn's messages that work on them
// started (working) or ended. It is best effort.
func (r *Router) progress(ctx context.Context, turn []store.Record, working bool) {
	for _, rec := range turn {
		p, ok := r.sinks[rec.Envelope.Source].(adapters.Progress)
		if !ok || rec.Envelope.Kind != envelope.KindMessage {
			continue
		}
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), progressTimeout)
		if err := p.Progress(pctx, rec.Envelope, working); err != nil {
			r.log.Warn("progress indicator failed", "source", rec.Envelope.Source, "id", rec.Envelope.ID, "working", working, "err", err)
		}
		cancel()
	}
}
