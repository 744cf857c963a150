// Package metrics exposes idrecon's Prometheus metrics: reconcile outcomes,
// the applied revision, drift, SCIM traffic and SAML sign-in results.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics owns a registry with idrecon's collectors. The zero value is not
// usable; call New.
type Metrics struct {
	reg *prometheus.Registry

	reconcileDuration *prometheus.HistogramVec
	reconcileTotal    *prometheus.CounterVec
	revision          *prometheus.GaugeVec
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
			Help: "Reconciles by result (ok, error, refused).",
		}, []string{"result"}),
		revision: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "idrecon_revision_info",
			Help: "The spec revision applied (value 1) and seen, by label.",
		}, []string{"state", "revision"}),
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
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.reconcileDuration, m.reconcileTotal, m.revision, m.drift, m.suspended,
		m.scimRequests, m.scimLatency, m.samlLogins,
	)
	return m
}

// Handler serves the metrics in the Prometheus exposition format.
// Register adds a collector of another part of the daemon (the Gateways').
func (m *Metrics) Register(c prometheus.Collector) error { return m.reg.Register(c) }

func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
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
func (m *Metrics) Revisions(applied, seen string) {
	m.revision.Reset()
	if applied != "" {
		m.revision.WithLabelValues("applied", applied).Set(1)
	}
	if seen != "" {
		m.revision.WithLabelValues("seen", seen).Set(1)
	}
}

// SCIMRequest records one SCIM request.
func (m *Metrics) SCIMRequest(route string, status int, d time.Duration) {
	m.scimRequests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.scimLatency.WithLabelValues(route).Observe(d.Seconds())
}

// SAMLLogin records one sign-in attempt.
func (m *Metrics) SAMLLogin(result string) {
	m.samlLogins.WithLabelValues(result).Inc()
}
