package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboardhq/switchboard/client"
)

// e2eResult is what an end-to-end run measured: for each message, the
// time from its steer being accepted to the agent seeing it on the
// session's stream, and to the agent's answer being committed.
type e2eResult struct {
	Sent, Answered int
	Elapsed        time.Duration
	Seen, Answer   []time.Duration // sorted
	// Delivered, with a webhook receiver, is the time from the steer being
	// sent to the answer's event reaching the receiver through the outbox;
	// Event the time from the steer being sent to its own message event
	// reaching the receiver (append to receipt, plus the steer's round
	// trip). Events counts every event the receiver got.
	Delivered, Event []time.Duration
	Events           int
}

// e2eRoute picks the gateway for each part of the end-to-end work when
// several gateways (replicas on one store) share it. Session i is followed
// on gateway i mod k, and message n goes to session n mod sessions. By
// default the work crosses gateways: message n is sent to gateway n mod k
// and session i is answered through the gateway after its stream's, so
// every answer is appended by another process than the one its stream
// follows. With affinity, all of session i's steers, its stream and its
// answers go through gateway i mod k.
type e2eRoute struct {
	gateways, sessions int
	affinity           bool
}

func (r e2eRoute) follow(session int) int { return session % r.gateways }

func (r e2eRoute) answer(session int) int {
	if r.affinity {
		return r.follow(session)
	}
	return (session + 1) % r.gateways
}

func (r e2eRoute) steer(n int) int {
	if r.affinity {
		return r.follow(n % r.sessions)
	}
	return n % r.gateways
}

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[int(q*float64(len(d)-1))]
}

func (r *e2eResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "messages:   %d sent, %d answered in %s (%.0f/s)\n", r.Sent, r.Answered, r.Elapsed.Round(time.Millisecond), float64(r.Sent)/r.Elapsed.Seconds())
	row := func(name string, d []time.Duration) {
		fmt.Fprintf(&b, "%-11s p50 %s  p90 %s  p99 %s  max %s\n", name, quantile(d, .5).Round(10*time.Microsecond),
			quantile(d, .9).Round(10*time.Microsecond), quantile(d, .99).Round(10*time.Microsecond), quantile(d, 1).Round(10*time.Microsecond))
	}
	row("to agent:", r.Seen)
	row("answered:", r.Answer)
	if len(r.Delivered) > 0 {
		row("event:", r.Event)
		row("delivered:", r.Delivered)
		fmt.Fprintf(&b, "webhook:    %d events received (%.0f/s)\n", r.Events, float64(r.Events)/r.Elapsed.Seconds())
	}
	return b.String()
}

// runE2E sends a steady rate of messages over the sessions and plays the
// agent itself: it follows every session's stream (as an inbox agent
// does) and answers each message through the outputs endpoint. With dests
// above 0, a local receiver registered as that many webhook destinations
// measures delivery: each destination gets every event.
func runE2E(ctx context.Context, bc benchConfig, rate int, dests int) (*e2eResult, error) {
	rate = max(rate, 1)
	receiver := dests > 0
	tr := &http.Transport{MaxIdleConnsPerHost: bc.connections + bc.sessions*2}
	defer tr.CloseIdleConnections()
	route := e2eRoute{gateways: len(bc.urls), sessions: bc.sessions, affinity: bc.affinity}
	cs := make([]*client.Client, len(bc.urls))
	for i, u := range bc.urls {
		cs[i] = client.New(u, bc.token, &http.Client{Transport: tr})
	}
	c := cs[0]
	ids, err := createSessions(ctx, c, bc.sessions, "e2e")
	if err != nil {
		return nil, err
	}
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	var (
		mu        sync.Mutex
		accepted  = map[string]time.Time{}
		res       = &e2eResult{}
		answered  = make(chan struct{}, 1) // a pending "recount", never blocks
		delivered = map[string]bool{}
	)
	if receiver {
		// A local receiver registered as a webhook destination for the
		// bench's sessions: the answers reach it through the outbox.
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var ev struct {
				Direction string `json:"direction"`
				Body      struct {
					ID string `json:"id"`
				} `json:"body"`
			}
			err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&ev)
			now := time.Now()
			dest := r.URL.Path // one per destination
			mu.Lock()
			res.Events++
			if key, ok := strings.CutPrefix(ev.Body.ID, "client:"); err == nil && ev.Direction == "inbound" && ok {
				if t0, ok := accepted[key]; ok && !delivered[dest+" in:"+key] {
					delivered[dest+" in:"+key] = true
					res.Event = append(res.Event, now.Sub(t0))
				}
			}
			if key, ok := strings.CutPrefix(ev.Body.ID, "agent:"); err == nil && ev.Direction == "outbound" && ok {
				if t0, ok := accepted[key]; ok && !delivered[dest+" "+key] {
					delivered[dest+" "+key] = true
					res.Delivered = append(res.Delivered, now.Sub(t0))
				}
			}
			mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		}))
		defer srv.Close()
		for i := range dests {
			if _, err := c.CreateWebhook(ctx, client.NewWebhook{URL: srv.URL + "/d" + strconv.Itoa(i), EventTypes: []string{"message"},
				Sessions: ids, Description: "switchboard bench --e2e"}); err != nil {
				return nil, fmt.Errorf("bench: register webhook: %w", err)
			}
		}
	}
	agentCtx, stopAgents := context.WithCancel(ctx)
	var agents sync.WaitGroup
	for i, id := range ids {
		agents.Add(1)
		follow, answer := cs[route.follow(i)], cs[route.answer(i)]
		go func() {
			defer agents.Done()
			_ = follow.Stream(agentCtx, id, 0, func(r client.Record) error {
				key, ok := strings.CutPrefix(r.Envelope.ID, "client:")
				if r.Direction != "inbound" || !ok || !strings.HasPrefix(key, run) {
					return nil
				}
				seen := time.Now()
				_, err := answer.Output(agentCtx, id, client.Message{Text: "re: " + r.Envelope.Text, IdempotencyKey: key})
				done := time.Now()
				mu.Lock()
				if t0, ok := accepted[key]; ok && err == nil {
					res.Seen = append(res.Seen, seen.Sub(t0))
					res.Answer = append(res.Answer, done.Sub(t0))
					res.Answered++
				}
				mu.Unlock()
				select { // the waiting loop recounts under mu: one pending signal is enough
				case answered <- struct{}{}:
				default:
				}
				return nil
			})
		}()
	}
	// A steady load: message n is due at n/rate seconds, spread over the
	// sessions, each sent from its own goroutine so a slow answer does not
	// slow the pace. The load is open: a tick that comes late (a busy
	// machine drops ticks) sends every message due by then, so the
	// offered rate is the rate asked for, not what the bench could keep up.
	var senders sync.WaitGroup
	send := func(n int, due time.Time) {
		key := run + "-" + strconv.Itoa(n)
		id := ids[n%len(ids)]
		senders.Add(1)
		go func() {
			defer senders.Done()
			mu.Lock()
			accepted[key] = due // latency counts from when the message was due
			mu.Unlock()
			if _, err := cs[route.steer(n)].Steer(ctx, id, client.Message{Text: "e2e " + key, IdempotencyKey: key}); err != nil {
				mu.Lock()
				delete(accepted, key)
				mu.Unlock()
				return
			}
			mu.Lock()
			res.Sent++
			mu.Unlock()
		}()
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	total := int(int64(rate) * int64(bc.duration) / int64(time.Second))
	for n := 0; n < total && ctx.Err() == nil; {
		select {
		case <-ctx.Done():
			continue
		case <-tick.C:
		}
		due := min(total, int(int64(rate)*int64(time.Since(start))/int64(time.Second))+1)
		for ; n < due; n++ {
			send(n, start.Add(time.Duration(int64(n)*int64(time.Second)/int64(rate))))
		}
	}
	senders.Wait()
	deadline := time.After(30 * time.Second)
	for {
		mu.Lock()
		done := res.Answered >= res.Sent
		mu.Unlock()
		if done {
			break
		}
		select {
		case <-answered:
		case <-deadline:
			stopAgents()
			agents.Wait()
			return nil, fmt.Errorf("bench: only %d of %d messages answered within 30s", res.Answered, res.Sent)
		}
	}
	for receiver {
		mu.Lock()
		done := len(res.Delivered) >= dests*res.Answered && len(res.Event) >= dests*res.Sent
		mu.Unlock()
		if done {
			break
		}
		select {
		case <-deadline:
			stopAgents()
			agents.Wait()
			mu.Lock() // the receiver may still be appending
			got := len(res.Delivered)
			mu.Unlock()
			return nil, fmt.Errorf("bench: only %d of %d answer deliveries reached the webhook receiver within 30s (does the gateway allow private webhook destinations? see examples/bench.yaml)", got, dests*res.Answered)
		case <-time.After(10 * time.Millisecond):
		}
	}
	res.Elapsed = time.Since(start)
	stopAgents()
	agents.Wait()
	mu.Lock() // the receiver runs until srv closes
	slices.Sort(res.Seen)
	slices.Sort(res.Answer)
	slices.Sort(res.Delivered)
	slices.Sort(res.Event)
	mu.Unlock()
	return res, nil
}
