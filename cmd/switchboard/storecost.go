package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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

// perMessage formats the cost between before and after over n messages,
// and the CPU time the bench itself used meanwhile (benchCPU, zero where
// its platform does not report it).
func perMessage(before, after storeCost, benchCPU time.Duration, n int, what string) string {
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
	if gateway := time.Duration((after.processCPU - before.processCPU) * float64(time.Second)); gateway > 0 {
		cpu = append(cpu, fmt.Sprintf("%dµs in the gateway", (gateway/time.Duration(n)).Microseconds()))
	}
	if benchCPU > 0 {
		cpu = append(cpu, fmt.Sprintf("%dµs in the bench", (benchCPU/time.Duration(n)).Microseconds()))
	}
	if len(cpu) > 0 {
		out += "cpu:        " + strings.Join(cpu, ", ") + " per " + what + "\n"
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
