package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboardhq/switchboard/client"
)

// benchResult is what one bench run measured.
type benchResult struct {
	Sent, OK, Replayed int
	Errors             map[int]int // by HTTP status; 0 for transport errors
	Elapsed            time.Duration
	Latencies          []time.Duration // of the successful requests, sorted
}

func (r *benchResult) rate() float64 { return float64(r.OK) / r.Elapsed.Seconds() }

func (r *benchResult) quantile(q float64) time.Duration { return quantile(r.Latencies, q) }

func (r *benchResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "messages:   %d acknowledged (%d replayed) of %d sent in %s\n", r.OK, r.Replayed, r.Sent, r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(&b, "throughput: %.0f messages/s\n", r.rate())
	fmt.Fprintf(&b, "latency:    p50 %s  p90 %s  p99 %s  max %s\n",
		r.quantile(.50).Round(10*time.Microsecond), r.quantile(.90).Round(10*time.Microsecond),
		r.quantile(.99).Round(10*time.Microsecond), r.quantile(1).Round(10*time.Microsecond))
	if len(r.Errors) > 0 {
		codes := make([]int, 0, len(r.Errors))
		for c := range r.Errors {
			codes = append(codes, c)
		}
		slices.Sort(codes)
		b.WriteString("errors:    ")
		for _, c := range codes {
			name := strconv.Itoa(c)
			if c == 0 {
				name = "transport"
			}
			fmt.Fprintf(&b, " %s×%d", name, r.Errors[c])
		}
		b.WriteByte('\n')
	}
	return b.String()
}

type benchConfig struct {
	urls        []string // one gateway, or several replicas sharing a store
	token       string
	connections int
	sessions    int
	duration    time.Duration
	messages    int // stop after this many (0: run for duration)
	textSize    int
	dupEvery    int // every Nth request reuses the previous key (0: never)
	// affinity, with --e2e and several gateways, sends all of a session's
	// traffic through one gateway, as a load balancer with session
	// affinity would; without it the answers cross to another gateway.
	affinity bool
}

// settle is how long bench --e2e waits after its run before reading what
// the store wrote, so that work still in flight is counted.
const settle = 2 * time.Second

func bench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var bc benchConfig
	def := os.Getenv("SWITCHBOARD_URL")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	urls := fs.String("url", def, "gateway URL (SWITCHBOARD_URL); several, comma-separated, for replicas sharing one store: the load is spread over them")
	fs.IntVar(&bc.connections, "connections", 64, "concurrent connections")
	fs.IntVar(&bc.sessions, "sessions", 64, "sessions to spread messages over")
	fs.DurationVar(&bc.duration, "duration", 10*time.Second, "how long to send")
	fs.IntVar(&bc.messages, "messages", 0, "stop after this many messages (0: run for --duration)")
	fs.IntVar(&bc.textSize, "text-size", 64, "bytes of text per message")
	fs.IntVar(&bc.dupEvery, "dup-every", 0, "every Nth request repeats the previous idempotency key (exercises dedup)")
	e2e := fs.Bool("e2e", false, "measure end to end: play an inbox agent that answers every message, at a steady --rate")
	rate := fs.Int("rate", 200, "with --e2e: messages per second")
	preload := fs.Int("preload", 0, "first store this many messages over --preload-sessions sessions, unmeasured, to measure on a full store")
	preloadSessions := fs.Int("preload-sessions", 100000, "sessions the --preload messages are spread over")
	settleAfter := fs.Bool("preload-settle", true, "after --preload, wait until the gateway's store stops committing (the work the preload caused is done) before measuring")
	receiver := fs.Bool("webhook", true, "with --e2e: also measure delivery of the answers to a local webhook receiver (needs webhooks.allow_private on the gateway)")
	dests := fs.Int("webhooks", 1, "with --e2e: how many webhook destinations the receiver is registered as; each gets every event")
	fs.BoolVar(&bc.affinity, "affinity", false, "with --e2e and several --url: send all of a session's traffic (its steers, its stream, the agent's answers) through one gateway, as a load balancer with session affinity would; without it each answer goes through another gateway than the session's stream")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	for u := range strings.SplitSeq(*urls, ",") {
		if u = strings.TrimSpace(u); u != "" {
			bc.urls = append(bc.urls, strings.TrimSuffix(u, "/"))
		}
	}
	if len(bc.urls) == 0 {
		return usageError{"--url needs at least one gateway URL"}
	}
	bc.token = os.Getenv("SWITCHBOARD_TOKEN")
	if bc.token == "" {
		return errors.New("SWITCHBOARD_TOKEN is not set")
	}
	if bc.connections < 1 || bc.sessions < 1 {
		return usageError{"--connections and --sessions must be at least 1"}
	}
	if *preload > 0 {
		pc := bc
		pc.messages, pc.sessions, pc.dupEvery = *preload, max(*preloadSessions, 1), 0
		fmt.Fprintf(stdout, "preload: %d messages over %d sessions, %s\n", pc.messages, pc.sessions, strings.Join(bc.urls, ", "))
		res, err := runBench(ctx, pc)
		if err != nil {
			return fmt.Errorf("bench: preload: %w", err)
		}
		fmt.Fprintf(stdout, "preload:    %d stored in %s (%.0f/s)\n", res.OK, res.Elapsed.Round(time.Millisecond), res.rate())
		if *settleAfter {
			// The gateway is still working through what the preload caused
			// (every preloaded session's agent turn); measure once it is
			// done, so that the run shows the cost of the store's size.
			took, err := waitQuiet(ctx, bc.urls, 10*time.Minute)
			if err != nil {
				return fmt.Errorf("bench: preload: %w", err)
			}
			fmt.Fprintf(stdout, "preload:    the gateway was busy with it for %s more\n", took.Round(time.Second))
		}
	}
	// The store's cost per message, when the gateway serves its metrics,
	// and the CPU time each side spends on it.
	before, costErr := readStoreCost(ctx, bc.urls)
	host := startHostMeter(bc.urls)
	if *e2e {
		routing := ""
		if len(bc.urls) > 1 && bc.affinity {
			routing = " (each session through one gateway)"
		} else if len(bc.urls) > 1 {
			routing = " (answers cross gateways)"
		}
		fmt.Fprintf(stdout, "bench --e2e: %d messages/s over %d sessions for %s, %s%s\n", *rate, bc.sessions, bc.duration, strings.Join(bc.urls, ", "), routing)
		if *receiver && *dests < 1 {
			return errors.New("bench: --webhooks must be at least 1 (use --webhook=false for no receiver)")
		}
		if !*receiver {
			*dests = 0
		}
		res, err := runE2E(ctx, bc, *rate, *dests)
		if err != nil {
			return err
		}
		fmt.Fprint(stdout, res)
		// Let the followers and the outbox finish what the run left them.
		time.Sleep(settle)
		if after, err := readStoreCost(ctx, bc.urls); err == nil && costErr == nil {
			fmt.Fprint(stdout, perMessage(before, after, host.read(), res.Answered, "round trip (message, answer and their deliveries)"))
		}
		return nil
	}
	fmt.Fprintf(stdout, "bench: %d connections, %d sessions, %s\n", bc.connections, bc.sessions, strings.Join(bc.urls, ", "))
	res, err := runBench(ctx, bc)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, res)
	if after, err := readStoreCost(ctx, bc.urls); err == nil && costErr == nil {
		fmt.Fprint(stdout, perMessage(before, after, host.read(), res.OK-res.Replayed, "message"))
	}
	return nil
}

// createSessions creates n sessions for a bench run, with the metadata
// bench=kind, and returns their ids.
func createSessions(ctx context.Context, c *client.Client, n int, kind string) ([]string, error) {
	ids := make([]string, n)
	next := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range min(n, 32) {
		wg.Go(func() {
			for i := range next {
				s, err := c.CreateSession(ctx, map[string]string{"bench": kind})
				if err != nil {
					select {
					case errs <- fmt.Errorf("bench: create session: %w", err):
					default:
					}
					continue
				}
				ids[i] = s.ID
			}
		})
	}
	for i := range ids {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	return ids, nil
}

func runBench(ctx context.Context, bc benchConfig) (*benchResult, error) {
	tr := &http.Transport{MaxIdleConns: bc.connections, MaxIdleConnsPerHost: bc.connections, MaxConnsPerHost: bc.connections, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	c := client.New(bc.urls[0], bc.token, hc)
	ids, err := createSessions(ctx, c, bc.sessions, "true")
	if err != nil {
		return nil, err
	}
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	text := strings.Repeat("x", max(bc.textSize, 1))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if bc.messages == 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeout(ctx, bc.duration)
		defer stop()
	}
	var (
		mu    sync.Mutex
		total = &benchResult{Errors: map[int]int{}}
		wg    sync.WaitGroup
		next  = make(chan struct{}, bc.connections)
	)
	if bc.messages > 0 {
		go func() { // a budget of messages, handed out one at a time
			defer close(next)
			for range bc.messages {
				select {
				case next <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	start := time.Now()
	for w := range bc.connections {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := &benchResult{Errors: map[int]int{}}
			body := make([]byte, 0, 256)
			key := ""
			for n := 0; ; n++ {
				if bc.messages > 0 {
					if _, ok := <-next; !ok {
						break
					}
				} else if ctx.Err() != nil {
					break
				}
				// Connection w's n-th message goes to session w + n·connections:
				// with as many sessions as connections, always the same one.
				// With several gateways, connection w sends to gateway w mod k.
				endpoint := bc.urls[w%len(bc.urls)] + "/v3/sessions/" + ids[(w+n*bc.connections)%len(ids)] + "/messages"
				if bc.dupEvery == 0 || n%bc.dupEvery != bc.dupEvery-1 || key == "" {
					key = run + "-" + strconv.Itoa(w) + "-" + strconv.Itoa(n)
				}
				body = append(body[:0], `{"text":"`...)
				body = append(body, text...)
				body = append(body, `","idempotency_key":"`...)
				body = append(body, key...)
				body = append(body, `"}`...)
				req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, endpoint, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+bc.token)
				req.Header.Set("Content-Type", "application/json")
				t0 := time.Now()
				resp, err := hc.Do(req)
				local.Sent++
				if err != nil {
					local.Errors[0]++
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusAccepted, http.StatusOK:
					local.OK++
					local.Latencies = append(local.Latencies, time.Since(t0))
					if resp.StatusCode == http.StatusOK {
						local.Replayed++
					}
				default:
					local.Errors[resp.StatusCode]++
				}
			}
			mu.Lock()
			total.Sent += local.Sent
			total.OK += local.OK
			total.Replayed += local.Replayed
			total.Latencies = append(total.Latencies, local.Latencies...)
			for k, v := range local.Errors {
				total.Errors[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	total.Elapsed = time.Since(start)
	slices.Sort(total.Latencies)
	return total, nil
}
