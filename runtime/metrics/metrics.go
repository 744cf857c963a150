// Package metrics exposes idrecon's Prometheus metrics: reconcile outcomes,
// the applied revision, drift, SCIM traffic and SAML sign-in results.
package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/idrecon/idrecon/reconcile"
)

// Metrics owns a registry with idrecon's collectors. The zero value is not
// usable; call New.
type Metrics struct {
	reg *prometheus.Registry

	reconcileDuration *prometheus.HistogramVec
	reconcileTotal    *prometheus.CounterVec
	revision          *revisions
	drift             prometheus.Gauge
	suspended         prometheus.Gauge
	scimRequests      *prometheus.CounterVec
	scimLatency       *prometheus.HistogramVec
	samlLogins        *prometheus.CounterVec
}

// New registers every collector, plus the Go runtime and process collectors,
// on a fresh registry.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		reconcileDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "idrecon_reconcile_duration_seconds",
			Help:    "Time taken by one reconcile (fetch, load, plan, apply).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}, []string{"result"}),
		reconcileTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idrecon_reconcile_total",
			Help: "Reconciles by result (ok, error, refused, stalled).",
		}, []string{"result"}),
		revision: &revisions{desc: prometheus.NewDesc("idrecon_revision_info",
			"The spec revision applied (value 1) and seen, by label.", []string{"state", "revision"}, nil)},
		drift: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "idrecon_drift_resources",
			Help: "Spec-owned resources that differ from the spec, as of the last reconcile.",
		}),
		suspended: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "idrecon_suspended",
			Help: "1 while reconciliation is suspended.",
		}),
		scimRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idrecon_scim_requests_total",
			Help: "SCIM requests by route and status code.",
		}, []string{"route", "code"}),
		scimLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "idrecon_scim_request_duration_seconds",
			Help:    "SCIM request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
		}, []string{"route"}),
		samlLogins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idrecon_saml_logins_total",
			Help: "SAML sign-in attempts by result.",
		}, []string{"result"}),
	}
	// Every outcome is exported from the start, at 0: a series that first
	// appears at 1 escapes increase() and rate(), so the first error after
	// a restart would raise no alert.
	for _, result := range outcomes {
		m.reconcileTotal.WithLabelValues(result)
		m.reconcileDuration.WithLabelValues(result)
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.reconcileDuration, m.reconcileTotal, m.revision, m.drift, m.suspended,
		m.scimRequests, m.scimLatency, m.samlLogins,
	)
	return m
}

// outcomes are the reconcile loop's results.
var outcomes = []string{reconcile.OutcomeOK, reconcile.OutcomeError, reconcile.OutcomeRefused, reconcile.OutcomeStalled}

// Register adds a collector of another part of the daemon (the Gateways').
func (m *Metrics) Register(c prometheus.Collector) error { return m.reg.Register(c) }

// Handler serves the metrics in the Prometheus exposition format. A
// collector that fails (an unchecked one sending a series twice) loses its
// own metrics only, not the whole scrape; the handler counts it in
// promhttp_metric_handler_errors_total.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg,
	})
}

// Reconcile records one reconcile.
func (m *Metrics) Reconcile(result string, d time.Duration, drift int, suspended bool) {
	m.reconcileDuration.WithLabelValues(result).Observe(d.Seconds())
	m.reconcileTotal.WithLabelValues(result).Inc()
	m.drift.Set(float64(drift))
	if suspended {
		m.suspended.Set(1)
	} else {
		m.suspended.Set(0)
	}
}

// Revisions records the applied and the last seen revision.
// Both change at once: a scrape sees the old pair or the new one.
func (m *Metrics) Revisions(applied, seen string) {
	m.revision.set(applied, seen)
}

// revisions exports idrecon_revision_info. It replaces both series under
// one lock, where a GaugeVec's Reset then Set would let a scrape in between
// see no revision (or, with two callers, two applied ones).
type revisions struct {
	desc *prometheus.Desc

	mu            sync.Mutex
	applied, seen string
}

func (r *revisions) set(applied, seen string) {
	// A label value must be UTF-8; WithLabelValues panics otherwise, and
	// a revision is named after a branch.
	applied, seen = strings.ToValidUTF8(applied, "\uFFFD"), strings.ToValidUTF8(seen, "\uFFFD")
	r.mu.Lock()
	r.applied, r.seen = applied, seen
	r.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (r *revisions) Describe(ch chan<- *prometheus.Desc) { ch <- r.desc }

// Collect implements prometheus.Collector.
func (r *revisions) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	applied, seen := r.applied, r.seen
	r.mu.Unlock()
	if applied != "" {
		ch <- prometheus.MustNewConstMetric(r.desc, prometheus.GaugeValue, 1, "applied", applied)
	}
	if seen != "" {
		ch <- prometheus.MustNewConstMetric(r.desc, prometheus.GaugeValue, 1, "seen", seen)
	}
}

// SCIMRequest records one SCIM request. Status 0, a handler that wrote
// nothing, is the 200 net/http then sends.
func (m *Metrics) SCIMRequest(route string, status int, d time.Duration) {
	if status == 0 {
		status = http.StatusOK
	}
	m.scimRequests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.scimLatency.WithLabelValues(route).Observe(d.Seconds())
}

// SAMLLogin records one sign-in attempt.
func (m *Metrics) SAMLLogin(result string) {
	m.samlLogins.WithLabelValues(result).Inc()
}
