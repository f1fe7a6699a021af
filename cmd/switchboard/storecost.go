package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/switchboardhq/switchboard/internal/cputime"
)

// storeCost is what the gateway's store wrote, read from its /metrics:
// committed transactions that wrote, rows written, and the seconds of CPU
// its writer thread used (SQLite on Linux; zero otherwise); and the
// seconds of CPU the gateway's process used (process_cpu_seconds_total,
// zero where the gateway's platform does not report it).
type storeCost struct {
	commits, rows, writerCPU, processCPU float64
}

// readStoreCost scrapes the gateway's store counters.
func readStoreCost(ctx context.Context, urls []string) (storeCost, error) {
	var sum storeCost
	for _, u := range urls {
		c, err := readOneStoreCost(ctx, u)
		if err != nil {
			return storeCost{}, err
		}
		sum.commits += c.commits
		sum.rows += c.rows
		sum.writerCPU += c.writerCPU
		sum.processCPU += c.processCPU
	}
	return sum, nil
}

// readOneStoreCost reads what the store of the gateway at url wrote.
func readOneStoreCost(ctx context.Context, url string) (storeCost, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return storeCost{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return storeCost{}, fmt.Errorf("bench: read /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return storeCost{}, fmt.Errorf("bench: read /metrics: status %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return storeCost{}, fmt.Errorf("bench: read /metrics: %w", err)
	}
	value := func(name string) float64 {
		f := families[name]
		if f == nil || len(f.GetMetric()) == 0 {
			return 0
		}
		return f.GetMetric()[0].GetCounter().GetValue()
	}
	return storeCost{commits: value("switchboard_store_commits_total"), rows: value("switchboard_store_rows_written_total"),
		writerCPU: value("switchboard_store_writer_cpu_seconds_total"), processCPU: value("process_cpu_seconds_total")}, nil
}

// hostMeter measures what a run costs the machine the bench runs on: the
// bench's own CPU time and, on Linux, how busy the machine's processors
// were, whoever kept them busy.
type hostMeter struct {
	start  time.Time
	cpu    time.Duration // the bench process's, at start
	load   cputime.Load  // the machine's, at start
	loadOK bool
	local  bool // every gateway runs on this machine
}

// startHostMeter starts measuring, for a run against the gateways at urls.
func startHostMeter(urls []string) hostMeter {
	m := hostMeter{start: time.Now(), local: allLoopback(urls)}
	m.cpu, _ = cputime.Process()
	m.load, m.loadOK = cputime.Machine()
	return m
}

// hostUse is what a run cost the bench's machine (hostMeter.read).
type hostUse struct {
	bench time.Duration // the bench's own CPU time; zero where unknown
	busy  time.Duration // the machine's busy processor time; zero where unknown
	share float64       // of the machine's processor time, busy
	cpus  int
	local bool // every gateway runs on this machine
}

// read returns what the run has cost since the meter started.
func (m hostMeter) read() hostUse {
	u := hostUse{local: m.local}
	if now, ok := cputime.Process(); ok {
		u.bench = now - m.cpu
	}
	if load, ok := cputime.Machine(); ok && m.loadOK {
		u.share, u.cpus = load.Since(m.load)
		u.busy = load.Busy(m.load, time.Since(m.start))
	}
	return u
}

// allLoopback reports whether every URL names a loopback host
// (localhost, 127.0.0.0/8 or ::1): the gateways run on this machine.
func allLoopback(urls []string) bool {
	for _, s := range urls {
		u, err := url.Parse(s)
		if err != nil {
			return false
		}
		host := u.Hostname()
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return false
		}
	}
	return len(urls) > 0
}

// perMessage formats the cost between before and after over n messages,
// and what the run cost the bench's machine meanwhile (host).
func perMessage(before, after storeCost, host hostUse, n int, what string) string {
	if n == 0 || after.commits == 0 {
		return ""
	}
	out := fmt.Sprintf("store:      %.2f commits, %.1f rows written per %s (%d)\n",
		(after.commits-before.commits)/float64(n), (after.rows-before.rows)/float64(n), what, n)
	if cpu := after.writerCPU - before.writerCPU; cpu > 0 {
		// The writer's own thread: other load on the machine moves this
		// far less than it moves throughput or latency.
		out += fmt.Sprintf("writer:     %.0fµs of CPU per %s\n", cpu/float64(n)*1e6, what)
	}
	// What the run cost the machine's processors, the gateways' and the
	// bench's own (its clients, its agents and its webhook receiver) apart:
	// on a machine both share, the two together bound the rate. A
	// database server's CPU is neither.
	var cpu []string
	gateway := time.Duration((after.processCPU - before.processCPU) * float64(time.Second))
	if gateway > 0 {
		cpu = append(cpu, fmt.Sprintf("%dµs in the gateway", (gateway/time.Duration(n)).Microseconds()))
	}
	if host.bench > 0 {
		cpu = append(cpu, fmt.Sprintf("%dµs in the bench", (host.bench/time.Duration(n)).Microseconds()))
	}
	if len(cpu) > 0 {
		out += "cpu:        " + strings.Join(cpu, ", ") + " per " + what + "\n"
	}
	// How busy the machine was: near 100%, the machine is what limits the
	// run, not the gateway's design. With the gateways on this machine,
	// what neither they nor the bench used went to the rest: a database
	// running here, the kernel's interrupts, other programs.
	if host.cpus > 0 {
		out += fmt.Sprintf("machine:    %.0f%% of %d processors busy", host.share*100, host.cpus)
		if rest := host.busy - gateway - host.bench; host.local && gateway > 0 && host.bench > 0 {
			out += fmt.Sprintf(", %dµs per %s in neither (a database here, interrupts, other programs)",
				(max(rest, 0) / time.Duration(n)).Microseconds(), what)
		}
		out += "\n"
	}
	return out
}

// waitQuiet waits until the store of the gateways at urls has made no
// commit for a second (the work in flight is done), up to limit, and
// returns how long that took.
func waitQuiet(ctx context.Context, urls []string, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	last, err := readStoreCost(ctx, urls)
	if err != nil {
		return 0, err
	}
	for time.Since(start) < limit {
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(time.Second):
		}
		cur, err := readStoreCost(ctx, urls)
		if err != nil {
			return 0, err
		}
		if cur.commits == last.commits {
			return time.Since(start), nil
		}
		last = cur
	}
	return time.Since(start), fmt.Errorf("the gateway was still committing after %s", limit)
}
