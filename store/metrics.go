package store

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus collectors that backends report to. A nil
// *Metrics records nothing, so backends call its methods unconditionally.
type Metrics struct {
	appendSeconds prometheus.Histogram
	batchSize     prometheus.Histogram
	errors        *prometheus.CounterVec
	commits       prometheus.Counter
	rowsWritten   prometheus.Counter
	writerCPU     prometheus.Counter
}

// NewMetrics creates the store's collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchboard_store_append_seconds",
			Help:    "Time from an Append call to its durable commit.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1},
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchboard_store_commit_batch_size",
			Help:    "Appends committed together in one group-commit transaction.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_store_errors_total",
			Help: "Store operations that failed, by operation.",
		}, []string{"op"}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_store_commits_total",
			Help: "Transactions the store committed that wrote something: the cost of a message is how many of these it takes.",
		}),
		rowsWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_store_rows_written_total",
			Help: "Rows inserted, updated or deleted by the store's committed transactions.",
		}),
		writerCPU: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_store_writer_cpu_seconds_total",
			Help: "CPU time the store's one writer thread spent on its commits (SQLite, on Linux; zero elsewhere): a cost per message that the rest of the machine's load does not move.",
		}),
	}
	reg.MustRegister(m.appendSeconds, m.batchSize, m.errors, m.commits, m.rowsWritten, m.writerCPU)
	return m
}

// ObserveCommit counts one committed transaction that wrote rows rows.
func (m *Metrics) ObserveCommit(rows int64) {
	if m != nil {
		m.commits.Inc()
		m.rowsWritten.Add(float64(rows))
	}
}

// ObserveWriterCPU counts d of CPU time spent by the store's writer.
func (m *Metrics) ObserveWriterCPU(d time.Duration) {
	if m != nil {
		m.writerCPU.Add(d.Seconds())
	}
}

// ObserveAppend records the latency of one Append.
func (m *Metrics) ObserveAppend(d time.Duration) {
	if m != nil {
		m.appendSeconds.Observe(d.Seconds())
	}
}

// ObserveBatch records the size of one group commit.
func (m *Metrics) ObserveBatch(n int) {
	if m != nil {
		m.batchSize.Observe(float64(n))
	}
}

// Error counts a failed operation op ("append", "read", …).
func (m *Metrics) Error(op string) {
	if m != nil {
		m.errors.WithLabelValues(op).Inc()
	}
}
