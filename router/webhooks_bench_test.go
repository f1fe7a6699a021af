package router_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// BenchmarkWebhookDelivery appends b.N messages to 16 sessions, one
// appender per session, and waits
// until a local receiver has them all. It reports delivered events per
// second and the latency from append (the envelope's ts) to receipt.
func BenchmarkWebhookDelivery(b *testing.B) {
	const sessions = 16
	var (
		mu        sync.Mutex
		latencies []time.Duration
		done      = make(chan struct{})
		want      = b.N
	)
	h := newWHHarness(b, whConfig)
	var rc *receiver
	rc = newReceiver(b, func(w http.ResponseWriter, r *http.Request, n int) int {
		rc.mu.Lock()
		d := rc.all[n-1]
		rc.mu.Unlock()
		var env envelope.Envelope
		_ = json.Unmarshal(d.event.Body, &env)
		mu.Lock()
		latencies = append(latencies, d.at.Sub(env.TS))
		if len(latencies) == want {
			close(done)
		}
		mu.Unlock()
		return http.StatusNoContent
	})
	h.addWebhook("bench", rc.srv.URL, "message")
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for g := range sessions {
		wg.Go(func() {
			for i := g; i < b.N; i += sessions {
				h.send("ses-"+strconv.Itoa(g), "m"+strconv.Itoa(i), store.Inbound)
			}
		})
	}
	wg.Wait()
	<-done
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(latencies)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
}
