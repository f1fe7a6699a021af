package api

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkSteer posts unique messages from 64 concurrent clients over 64
// sessions on the SQLite store, each acknowledged only once durably
// committed, and reports messages per second and latency percentiles.
// "handler" calls ServeHTTP directly; "http" goes through loopback HTTP/1.1
// with 64 keep-alive connections.
func BenchmarkSteer(b *testing.B) {
	b.Run("handler", func(b *testing.B) {
		benchSteer(b, func(h *harness) func(path string, body []byte) int {
			return func(path string, body []byte) int {
				r := httptest.NewRequest("POST", path, bytes.NewReader(body))
				r.Header.Set("Authorization", "Bearer "+steerSecret)
				w := httptest.NewRecorder()
				h.srv.ServeHTTP(w, r)
				return w.Code
			}
		})
	})
	b.Run("http", func(b *testing.B) {
		benchSteer(b, func(h *harness) func(path string, body []byte) int {
			ts := httptest.NewServer(h.srv)
			b.Cleanup(ts.Close)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}}
			b.Cleanup(client.CloseIdleConnections)
			return func(path string, body []byte) int {
				r, _ := http.NewRequest("POST", ts.URL+path, bytes.NewReader(body))
				r.Header.Set("Authorization", "Bearer "+steerSecret)
				resp, err := client.Do(r)
				if err != nil {
					return 0
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode
			}
		})
	})
}

func benchSteer(b *testing.B, transport func(*harness) func(path string, body []byte) int) {
	const clients, sessions = 64, 64
	h := newHarness(b, func(o *Options) {
		o.Limits.RatePerSecond = -1
		o.Now = time.Now
	})
	post := transport(h)
	paths := make([]string, sessions)
	for i := range paths {
		paths[i] = "/v3/sessions/" + h.newSession() + "/messages"
	}
	var (
		next      atomic.Int64
		failures  atomic.Int64
		mu        sync.Mutex
		latencies []time.Duration
	)
	b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var local []time.Duration
		buf := make([]byte, 0, 128)
		for pb.Next() {
			n := next.Add(1)
			buf = append(buf[:0], `{"text":"bench message `...)
			buf = strconv.AppendInt(buf, n, 10)
			buf = append(buf, `","idempotency_key":"b-`...)
			buf = strconv.AppendInt(buf, n, 10)
			buf = append(buf, `"}`...)
			t := time.Now()
			if code := post(paths[n%sessions], buf); code != http.StatusAccepted {
				failures.Add(1)
			}
			local = append(local, time.Since(t))
		}
		mu.Lock()
		latencies = append(latencies, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if f := failures.Load(); f > 0 {
		b.Fatalf("%d of %d requests did not get 202", f, b.N)
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
