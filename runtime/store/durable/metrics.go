package durable

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are what a DB measures; the DB exports them as a
// prometheus.Collector.
type metrics struct {
	sync, checkpoint prometheus.Histogram
}

func newMetrics() *metrics {
	return &metrics{
		sync: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "idrecon_journal_sync_duration_seconds",
			Help: "Time to write one batch of SCIM and spec changes to the write-ahead log and fdatasync it. " +
				"Every write waits for one; a slow disk shows here first.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 14)}), // 50µs .. 400ms
		checkpoint: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "idrecon_journal_checkpoint_duration_seconds",
			Help:    "Time to apply one full log segment to the state file, in the background.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12)}), // 10ms .. 20s
	}
}

func since(h prometheus.Histogram, start time.Time) { h.Observe(time.Since(start).Seconds()) }

// Describe implements prometheus.Collector.
func (db *DB) Describe(ch chan<- *prometheus.Desc) {
	db.metrics.sync.Describe(ch)
	db.metrics.checkpoint.Describe(ch)
}

// Collect implements prometheus.Collector.
func (db *DB) Collect(ch chan<- prometheus.Metric) {
	db.metrics.sync.Collect(ch)
	db.metrics.checkpoint.Collect(ch)
}

var _ prometheus.Collector = (*DB)(nil)
