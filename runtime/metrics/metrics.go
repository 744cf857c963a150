// Package metrics exposes idrecon's Prometheus metrics: reconcile outcomes,
// the applied revision, drift, SCIM traffic and SAML sign-in results.
package metrics

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
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
	scimRequests      *prometheus.CounterVec
	scimLatency       *prometheus.HistogramVec
	samlLogins        *prometheus.CounterVec
}

// New registers every collector, plus the Go runtime and process collectors,
// on a fresh registry.
//
// status is the reconciler's status as the admin API's GET /v1/status
// serves it; the gauges of the reconciler's state (drift, suspension,
// revisions) read it at every scrape rather than keep a copy that only
// reconciles update. A copy would lag behind a suspend or resume until the
// next reconcile, and on a daemon that does not lead the reconciler (with
// etcd) would never move at all, while status reports the leader's. It is
// called once per scrape, concurrently with anything else, and must not be
// nil.
func New(status func() reconcile.Status) *Metrics {
	if status == nil {
		// Fail when the daemon is assembled, not at its first scrape.
		panic("metrics: New with a nil status func")
	}
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
		scimRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idrecon_scim_requests_total",
			Help: "SCIM requests by route and status code.",
		}, []string{"route", "code"}),
		scimLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "idrecon_scim_request_duration_seconds",
			Help:    "SCIM request latency by route.",
			Buckets: scimLatencyBuckets(),
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
		m.reconcileDuration, m.reconcileTotal, newStatusGauges(status),
		m.scimRequests, m.scimLatency, m.samlLogins,
	)
	return m
}

// scimLatencyTarget is the latency operators hold every SCIM request kind's
// p99 under.
const scimLatencyTarget = 0.02

// scimLatencyBuckets double from far below any request's cost: fine
// enough to tell a p99 within its target from one twice it, and reaching
// the seconds a lost etcd quorum takes to answer. The target is a bound of
// its own, since no doubling meets it: the alert then reads the share of
// requests under it from one bucket, and histogram_quantile no longer
// blurs a request just under it with one just over. The doubling bounds
// all stay, so the queries and dashboards that name them keep working.
func scimLatencyBuckets() []float64 {
	b := append(prometheus.ExponentialBuckets(0.0001, 2, 18), scimLatencyTarget)
	slices.Sort(b)
	return slices.Compact(b)
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

// Reconcile records one reconcile's outcome and duration. What it left
// (drift, revisions) is read from the status at scrape time.
func (m *Metrics) Reconcile(result string, d time.Duration) {
	m.reconcileDuration.WithLabelValues(result).Observe(d.Seconds())
	m.reconcileTotal.WithLabelValues(result).Inc()
}

// statusGauges exports the reconciler's state from one status read per
// scrape, so that the drift, the suspension and the revisions of a scrape
// belong together (never an applied revision of one status with the seen
// one of the next) and agree with GET /v1/status.
type statusGauges struct {
	status                     func() reconcile.Status
	drift, suspended, revision *prometheus.Desc
}

func newStatusGauges(status func() reconcile.Status) *statusGauges {
	return &statusGauges{
		status: status,
		drift: prometheus.NewDesc("idrecon_drift_resources",
			"Spec-owned resources that differ from the spec, as the status reports them (found by the last reconcile).", nil, nil),
		suspended: prometheus.NewDesc("idrecon_suspended",
			"1 while reconciliation is suspended.", nil, nil),
		revision: prometheus.NewDesc("idrecon_revision_info",
			"The spec revision applied (value 1) and seen, by label.", []string{"state", "revision"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (g *statusGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.drift
	ch <- g.suspended
	ch <- g.revision
}

// Collect implements prometheus.Collector.
func (g *statusGauges) Collect(ch chan<- prometheus.Metric) {
	s := g.status()
	ch <- prometheus.MustNewConstMetric(g.drift, prometheus.GaugeValue, float64(s.DriftCount))
	suspended := 0.0
	if s.Suspended {
		suspended = 1
	}
	ch <- prometheus.MustNewConstMetric(g.suspended, prometheus.GaugeValue, suspended)
	for _, r := range []struct{ state, revision string }{{"applied", s.AppliedRevision}, {"seen", s.SeenRevision}} {
		if r.revision == "" {
			continue
		}
		// A label value must be UTF-8 (MustNewConstMetric panics
		// otherwise), and a revision is named after a branch.
		ch <- prometheus.MustNewConstMetric(g.revision, prometheus.GaugeValue, 1, r.state, strings.ToValidUTF8(r.revision, "\uFFFD"))
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
