package main

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The daemon's histogram, as its /metrics serves it, read before and after
// a run: the run's syncs, their p99 bound and the slow ones.
func TestJournalSyncsFromTheExposition(t *testing.T) {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: syncMetric, Help: "syncs",
		Buckets: prometheus.ExponentialBuckets(0.00005, 2, 14)})
	reg := prometheus.NewRegistry()
	reg.MustRegister(h)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	h.Observe(0.010) // before the run
	before, err := scrapeJournal(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for range 98 {
		h.Observe(0.00015) // in the 200 µs bucket
	}
	h.Observe(0.005) // 6.4 ms bucket
	h.Observe(0.5)   // beyond the last bound
	after, err := scrapeJournal(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	run := after.since(before)
	if run.count != 100 {
		t.Errorf("count %v, want 100", run.count)
	}
	if q, _ := run.quantile(0.5); q != 200*time.Microsecond {
		t.Errorf("p50 bound %v, want 200µs", q)
	}
	if q, _ := run.quantile(0.99); q != 6400*time.Microsecond {
		t.Errorf("p99 bound %v, want 6.4ms", q)
	}
	if n := run.over(slowSync); n != 2 {
		t.Errorf("%v over %v, want 2", n, slowSync)
	}
	if _, err := parseJournal(httptest.NewRecorder().Body); !errors.Is(err, errNoJournal) {
		t.Errorf("an exposition without the metric: err %v, want errNoJournal", err)
	}
}
