package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/api"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/config/duration"
	"github.com/switchboardhq/switchboard/store"
)

// catchUpNamespace is the store namespace of the catch-up leases.
const catchUpNamespace = "catch-up"

// catchUpLease is how long a replica holds a channel's catch-up before
// another may take it over (it is released as soon as the catch-up ends;
// this only matters when the holder died).
const catchUpLease = 15 * time.Minute

// Triggers of a catch-up, as CatchUpStatus reports them.
const (
	triggerStart     = "start"
	triggerReconnect = "reconnect"
	triggerRequest   = "request"
)

// catchUps runs the channels' catch-ups (adapters.CatchUpper): every one
// when the gateway starts, one when its adapter asks (after a reconnect),
// and one on demand through the API. A channel's catch-up runs on one
// replica at a time, under a lease in the store. It implements
// api.CatchUps.
type catchUps struct {
	kv       store.KV
	owner    string // this process, as lease holder
	window   time.Duration
	onStart  bool
	places   map[string][]string
	channels map[string]adapters.CatchUpper
	log      *slog.Logger
	now      func() time.Time
	messages *prometheus.CounterVec
	requests chan string // channels whose adapter asked; bounded, never blocks

	mu      sync.Mutex
	running map[string]bool // in this process
	last    map[string]api.CatchUpStatus
}

var _ api.CatchUps = (*catchUps)(nil)

// newCatchUps gathers the adapters that can catch up. It does no I/O.
func newCatchUps(cfg *config.Config, kv store.KV, built []builtAdapter, log *slog.Logger, reg prometheus.Registerer) *catchUps {
	var b [8]byte
	_, _ = rand.Read(b[:])
	c := &catchUps{
		kv: kv, owner: "gw-" + hex.EncodeToString(b[:]), window: cfg.CatchUp.Window.D(),
		onStart: cfg.CatchUp.OnStart == nil || *cfg.CatchUp.OnStart,
		places:  map[string][]string{}, channels: map[string]adapters.CatchUpper{},
		log: log, now: time.Now,
		running: map[string]bool{}, last: map[string]api.CatchUpStatus{},
	}
	for _, a := range built {
		if cu, ok := a.a.(adapters.CatchUpper); ok {
			c.channels[a.name] = cu
			c.places[a.name] = cfg.Places(a.name)
		}
	}
	c.requests = make(chan string, max(1, len(c.channels)))
	c.messages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_catchup_messages_total",
		Help: "Messages the channels' catch-ups fetched (result=found) and, of those, stored for the first time (result=new).",
	}, []string{"source", "result"})
	if reg != nil {
		reg.MustRegister(c.messages)
	}
	return c
}

// request asks for channel's catch-up soon; it never blocks (a request
// already pending covers it).
func (c *catchUps) request(channel string) {
	select {
	case c.requests <- channel:
	default:
	}
}

// Run runs every channel's catch-up when the configuration says so, then
// the ones asked for, until ctx ends.
func (c *catchUps) Run(ctx context.Context) {
	if len(c.channels) == 0 {
		return
	}
	if c.onStart {
		var wg sync.WaitGroup
		for name := range c.channels {
			wg.Go(func() { _, _ = c.run(ctx, name, triggerStart) })
		}
		wg.Wait()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case name := <-c.requests:
			_, _ = c.run(ctx, name, triggerReconnect)
		}
	}
}

// CatchUp runs channel's catch-up now, for the API.
func (c *catchUps) CatchUp(ctx context.Context, channel string) (adapters.CatchUpReport, error) {
	return c.run(ctx, channel, triggerRequest)
}

// CatchUpStatus returns each channel's last catch-up.
func (c *catchUps) CatchUpStatus() map[string]api.CatchUpStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.last) == 0 {
		return nil
	}
	return maps.Clone(c.last)
}

// run runs channel's catch-up under its lease, then logs and records it.
func (c *catchUps) run(ctx context.Context, channel, trigger string) (adapters.CatchUpReport, error) {
	cu, ok := c.channels[channel]
	if !ok {
		return adapters.CatchUpReport{}, fmt.Errorf("catch-up: %w: %q", api.ErrNoCatchUp, channel)
	}
	c.mu.Lock()
	if c.running[channel] {
		c.mu.Unlock()
		return adapters.CatchUpReport{}, fmt.Errorf("catch-up of %s: %w here", channel, api.ErrCatchUpRunning)
	}
	c.running[channel] = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.running, channel)
		c.mu.Unlock()
	}()

	held, err := c.acquire(ctx, channel)
	if err != nil {
		c.log.Warn("catch-up: lease", "channel", channel, "err", err)
		return adapters.CatchUpReport{}, fmt.Errorf("catch-up of %s: lease: %w", channel, err)
	}
	if !held {
		c.log.Info("catch-up runs on another replica", "channel", channel, "trigger", trigger)
		return adapters.CatchUpReport{}, fmt.Errorf("catch-up of %s: %w on another replica", channel, api.ErrCatchUpRunning)
	}
	defer func() {
		if err := c.release(context.WithoutCancel(ctx), channel); err != nil {
			c.log.Warn("catch-up: release lease", "channel", channel, "err", err)
		}
	}()

	start := c.now()
	rep, err := cu.CatchUp(ctx, adapters.CatchUpRequest{Window: c.window, Places: c.places[channel]})
	took := c.now().Sub(start)
	c.messages.WithLabelValues(channel, "found").Add(float64(rep.Found))
	c.messages.WithLabelValues(channel, "new").Add(float64(rep.New))
	st := api.CatchUpStatus{CatchUpReport: rep, At: start.UTC(), Took: duration.Duration(took), Trigger: trigger}
	attrs := []any{"channel", channel, "trigger", trigger, "since", rep.Since, "scopes", rep.Scopes,
		"found", rep.Found, "new", rep.New, "took", took.Round(time.Millisecond)}
	if err != nil {
		st.Error = err.Error()
		c.log.Warn("catch-up stopped early", append(attrs, "err", err)...)
	} else {
		c.log.Info("catch-up", attrs...)
	}
	c.mu.Lock()
	c.last[channel] = st
	c.mu.Unlock()
	return rep, err
}

// leaseValue is the stored form of a channel's catch-up lease.
type leaseValue struct {
	Owner string    `json:"owner"`
	Until time.Time `json:"until"`
}

// acquire takes channel's catch-up lease for this process when nobody
// holds it or the holder's has expired, reporting whether it did.
func (c *catchUps) acquire(ctx context.Context, channel string) (bool, error) {
	for range 5 {
		old, err := c.kv.Value(ctx, catchUpNamespace, channel)
		switch {
		case errors.Is(err, store.ErrNotFound):
			old = nil
		case err != nil:
			return false, err
		default:
			var cur leaseValue
			if json.Unmarshal(old, &cur) == nil && cur.Owner != c.owner && cur.Until.After(c.now()) {
				return false, nil
			}
		}
		b, err := json.Marshal(leaseValue{Owner: c.owner, Until: c.now().Add(catchUpLease).UTC()})
		if err != nil {
			return false, err
		}
		set, err := c.kv.CompareAndSetValue(ctx, catchUpNamespace, channel, old, b)
		if err != nil || set {
			return set, err
		}
	}
	return false, nil // others keep changing it: someone holds it
}

// release gives channel's lease up when this process still holds it.
func (c *catchUps) release(ctx context.Context, channel string) error {
	old, err := c.kv.Value(ctx, catchUpNamespace, channel)
	if err != nil {
		return err
	}
	var cur leaseValue
	if json.Unmarshal(old, &cur) != nil || cur.Owner != c.owner {
		return nil
	}
	b, err := json.Marshal(leaseValue{})
	if err != nil {
		return err
	}
	_, err = c.kv.CompareAndSetValue(ctx, catchUpNamespace, channel, old, b)
	return err
}
