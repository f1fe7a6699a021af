package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// metricValue returns the value of the counter (or the sample count of the
// histogram) name with exactly the given labels in reg, 0 when absent, and
// how many series name has.
func metricValue(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) (float64, int) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue series
				}
			}
			return value(m), len(f.GetMetric())
		}
		return 0, len(f.GetMetric())
	}
	return 0, 0
}

func value(m *dto.Metric) float64 {
	if m.GetHistogram() != nil {
		return float64(m.GetHistogram().GetSampleCount())
	}
	return m.GetCounter().GetValue()
}

func TestMetricsMiddleware(t *testing.T) {
	h := newHarness(t, nil)
	id := h.newSession()
	h.steer(id, "a", "k")
	h.steer(id, "a", "k")
	h.do(req{method: "GET", path: "/nowhere"})
	h.do(req{method: "GET", path: "/v3/sessions/" + id, token: "sb_bad"})

	for _, c := range []struct {
		route, status string
		want          float64
	}{
		{"POST /v3/sessions", "201", 1},
		{"POST /v3/sessions/{id}/messages", "202", 1},
		{"POST /v3/sessions/{id}/messages", "200", 1},
		{"GET /v3/sessions/{id}", "401", 1},
		{unmatchedRoute, "404", 1},
	} {
		if got, _ := metricValue(t, h.reg, "switchboard_http_requests_total", map[string]string{"route": c.route, "status": c.status}); got != c.want {
			t.Errorf("requests{route=%q,status=%q} = %v, want %v", c.route, c.status, got, c.want)
		}
	}
	got, series := metricValue(t, h.reg, "switchboard_http_request_duration_seconds", map[string]string{"route": "POST /v3/sessions/{id}/messages"})
	if got != 2 || series != 4 {
		t.Errorf("duration: %v messages observed in %d series, want 2 in 4 (one per route)", got, series)
	}

	// GET /metrics serves the registry in the Prometheus text format.
	w := h.do(req{method: "GET", path: "/metrics"})
	body, _ := io.ReadAll(w.Body)
	if w.Code != 200 || !strings.Contains(string(body), `switchboard_http_requests_total{route="POST /v3/sessions/{id}/messages",status="202"} 1`) ||
		!strings.Contains(string(body), "switchboard_http_request_duration_seconds_bucket") {
		t.Errorf("/metrics: %d\n%s", w.Code, body)
	}
}

func TestMetricsStatusWriter(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newHTTPMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /implicit", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("GET /flush", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush through the metrics writer: %v", err)
		}
	})
	h := m.middleware(mux)
	for _, p := range []string{"/implicit", "/flush"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	if got, _ := metricValue(t, reg, "switchboard_http_requests_total", map[string]string{"route": "GET /implicit", "status": "200"}); got != 1 {
		t.Errorf("implicit 200 counted %v", got)
	}
	if got, _ := metricValue(t, reg, "switchboard_http_requests_total", map[string]string{"route": "GET /flush", "status": "418"}); got != 1 {
		t.Errorf("418 counted %v", got)
	}

	// A second server on the same registry shares the collectors.
	m2, err := newHTTPMetrics(reg)
	if err != nil || m2.requests != m.requests {
		t.Errorf("second registration: %v, shared=%v", err, m2 != nil && m2.requests == m.requests)
	}
	// Without a registry nothing is recorded and nothing is wrapped.
	if m, err := newHTTPMetrics(nil); m != nil || err != nil {
		t.Errorf("nil registry: %v %v", m, err)
	}
}
