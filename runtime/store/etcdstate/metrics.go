package etcdstate

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are what the State measures; Collect exports them.
type metrics struct {
	commit, barrierRead, barrierWait prometheus.Histogram
	grouped                          prometheus.Histogram
	stale, reloads                   prometheus.Counter
	revision                         *prometheus.Desc
}

func newMetrics() *metrics {
	buckets := prometheus.ExponentialBuckets(0.0005, 2, 14) // 0.5ms .. 4s
	return &metrics{
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "idrecon_etcd_commit_duration_seconds",
			Help: "Time to commit a batch of state changes to etcd (round trips included).", Buckets: buckets}),
		barrierRead: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "idrecon_etcd_barrier_read_duration_seconds",
			Help: "Time of the linearizable read that starts each SCIM request's barrier.", Buckets: buckets}),
		barrierWait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "idrecon_etcd_watch_lag_seconds",
			Help: "Time a barrier waited for the mirror to reach etcd's revision: the watch lag requests see.", Buckets: buckets}),
		grouped: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "idrecon_etcd_batches_per_transaction",
			Help: "Batches of state changes each etcd transaction carried (concurrent SCIM writes share one).", Buckets: prometheus.ExponentialBuckets(1, 2, 7)}),
		stale: prometheus.NewCounter(prometheus.CounterOpts{Name: "idrecon_etcd_stale_commits_total",
			Help: "Batches etcd refused because another daemon changed their keys first; they ran again."}),
		reloads: prometheus.NewCounter(prometheus.CounterOpts{Name: "idrecon_etcd_reloads_total",
			Help: "Times the mirror fell behind etcd's compaction and loaded the whole state again."}),
		revision: prometheus.NewDesc("idrecon_etcd_mirror_revision", "The etcd revision this daemon's state mirrors.", nil, nil),
	}
}

func since(h prometheus.Histogram, start time.Time) { h.Observe(time.Since(start).Seconds()) }

// Describe implements prometheus.Collector.
func (s *State) Describe(ch chan<- *prometheus.Desc) {
	m := s.metrics
	for _, c := range []prometheus.Collector{m.commit, m.grouped, m.barrierRead, m.barrierWait, m.stale, m.reloads} {
		c.Describe(ch)
	}
	ch <- m.revision
}

// Collect implements prometheus.Collector.
func (s *State) Collect(ch chan<- prometheus.Metric) {
	m := s.metrics
	for _, c := range []prometheus.Collector{m.commit, m.grouped, m.barrierRead, m.barrierWait, m.stale, m.reloads} {
		c.Collect(ch)
	}
	ch <- prometheus.MustNewConstMetric(m.revision, prometheus.GaugeValue, float64(s.Applied()))
}

var _ prometheus.Collector = (*State)(nil)
