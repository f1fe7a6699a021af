package router

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// breaker is the loop breaker: it counts, per binding, outputs and inbound
// messages from agents or bots over the last minute. Counts are per process
// (with replicas, each enforces its share), which is enough to stop a
// runaway loop within a minute or two.
type breaker struct {
	mu        sync.Mutex
	seen      map[string]*window // by binding id + kind
	lastSweep time.Time          // when idle windows were last forgotten
}

type window struct{ times []time.Time }

func newBreaker() *breaker { return &breaker{seen: map[string]*window{}} }

// hit records an event at now and reports whether more than limit happened
// in the minute up to now.
func (b *breaker) hit(key string, limit int, now time.Time) bool {
	if limit <= 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	w := b.seen[key]
	if w == nil {
		w = &window{}
		b.seen[key] = w
	}
	cut := now.Add(-time.Minute)
	keep := w.times[:0]
	for _, t := range w.times {
		if t.After(cut) {
			keep = append(keep, t)
		}
	}
	w.times = append(keep, now)
	// Forget idle windows, at most once a minute (they expire no faster).
	if len(b.seen) > 10000 && now.Sub(b.lastSweep) >= time.Minute {
		b.lastSweep = now
		for k, v := range b.seen {
			if len(v.times) == 0 || !v.times[len(v.times)-1].After(cut) {
				delete(b.seen, k)
			}
		}
	}
	return len(w.times) > limit
}

func budgetOf(rt *config.Route) config.Budget {
	if rt != nil {
		return rt.Budget
	}
	return config.DefaultBudget
}

// inbound counts a message from an agent or bot in binding bd's
// conversation and reports whether the budget is exceeded.
func (b *breaker) inbound(bd store.Binding, rt *config.Route, now time.Time) (bool, string) {
	limit := budgetOf(rt).BotMessagesPerMinute
	if b.hit(bd.ID+"/in", limit, now) {
		return true, fmt.Sprintf("more than %d messages a minute from agents or bots", limit)
	}
	return false, ""
}

// checkOutputBudget counts an output to conversation c and, when the
// budget is exceeded, pauses c's binding and reports paused.
func (r *Router) checkOutputBudget(ctx context.Context, c envelope.Conversation) (paused bool, err error) {
	bd, err := r.st.BindingFor(ctx, c)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	rt, _ := r.cfg.Route(bd.Route)
	limit := budgetOf(rt).OutputsPerMinute
	if !r.breaker.hit(bd.ID+"/out", limit, r.now()) || bd.Paused(r.now()) {
		return false, nil
	}
	return true, r.pause(ctx, bd, fmt.Sprintf("more than %d outputs a minute", limit))
}
