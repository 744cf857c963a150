package gateway

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a request is refused, as counted and logged.
const (
	ReasonNoSession     = "no_session"
	ReasonUnknownUser   = "unknown_user"
	ReasonDisabled      = "disabled"
	ReasonNoRole        = "no_role"
	ReasonMissingRole   = "missing_role"
	ReasonUnsafeName    = "unsafe_user_name"
	ReasonDecisionError = "decision_error"
	ReasonBadPath       = "bad_path"
	ReasonCrossOrigin   = "cross_origin"
	ReasonBadUpgrade    = "bad_upgrade"
	ReasonBadMethod     = "bad_method"
	ReasonTooMany       = "too_many_requests"
)

var reasons = [...]string{ReasonNoSession, ReasonUnknownUser, ReasonDisabled, ReasonNoRole,
	ReasonMissingRole, ReasonUnsafeName, ReasonDecisionError, ReasonBadPath, ReasonCrossOrigin, ReasonBadUpgrade, ReasonBadMethod, ReasonTooMany}

// Modes a request is served in.
const (
	ModeProxy  = "proxy"
	ModeVerify = "verify"
)

// Stats is a snapshot of the Gateway's counters.
type Stats struct {
	// Requests by mode (ModeProxy, ModeVerify).
	Requests map[string]uint64
	// Refusals by reason (Reason*); only non-zero reasons appear.
	Refusals map[string]uint64
	// UpstreamErrors counts proxied requests the upstream failed (502/504).
	UpstreamErrors uint64
	// Cut counts proxied requests ended in flight (WebSockets, streams)
	// because their user lost access.
	Cut uint64
}

// counters are plain atomics, so a request pays no label lookup; Collect
// turns them into Prometheus metrics when scraped.
type counters struct {
	proxied, verified atomic.Uint64
	refused           [len(reasons)]atomic.Uint64 // indexed like reasons
	upstreamErrors    atomic.Uint64
	cut               atomic.Uint64
	latency           prometheus.Histogram
	descs             descs
}

func newCounters(name string) *counters {
	var labels prometheus.Labels
	if name != "" {
		labels = prometheus.Labels{"gateway": name}
	}
	return &counters{descs: newDescs(labels), latency: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:        "idrecon_gateway_upstream_duration_seconds",
		Help:        "Time from sending a request upstream to its response headers.",
		Buckets:     prometheus.ExponentialBuckets(0.0005, 4, 9),
		ConstLabels: labels,
	})}
}

func (c *counters) refuse(reason string) {
	for i, r := range reasons {
		if r == reason {
			c.refused[i].Add(1)
			return
		}
	}
}

func (c *counters) stats() Stats {
	s := Stats{
		Requests:       map[string]uint64{ModeProxy: c.proxied.Load(), ModeVerify: c.verified.Load()},
		Refusals:       map[string]uint64{},
		UpstreamErrors: c.upstreamErrors.Load(),
		Cut:            c.cut.Load(),
	}
	for i, r := range reasons {
		if n := c.refused[i].Load(); n > 0 {
			s.Refusals[r] = n
		}
	}
	return s
}

// descs are the Gateway's metric descriptions; a named Gateway labels its
// metrics gateway=<name>, so several can be collected side by side.
type descs struct {
	requests, refusals, upstreamErrors, cut *prometheus.Desc
}

func newDescs(labels prometheus.Labels) descs {
	return descs{
		requests: prometheus.NewDesc("idrecon_gateway_requests_total",
			"Requests to the front door by mode (proxy, verify).", []string{"mode"}, labels),
		refusals: prometheus.NewDesc("idrecon_gateway_refusals_total",
			"Requests refused, by reason.", []string{"reason"}, labels),
		upstreamErrors: prometheus.NewDesc("idrecon_gateway_upstream_errors_total",
			"Proxied requests the upstream failed (answered 502 or 504).", nil, labels),
		cut: prometheus.NewDesc("idrecon_gateway_requests_cut_total",
			"Proxied requests ended in flight (WebSockets, streams) because their user lost access.", nil, labels),
	}
}

// Describe implements prometheus.Collector.
func (g *Gateway) Describe(ch chan<- *prometheus.Desc) {
	d := g.counters.descs
	ch <- d.requests
	ch <- d.refusals
	ch <- d.upstreamErrors
	ch <- d.cut
	g.counters.latency.Describe(ch)
}

// Collect implements prometheus.Collector.
func (g *Gateway) Collect(ch chan<- prometheus.Metric) {
	s, d := g.counters.stats(), g.counters.descs
	for _, mode := range []string{ModeProxy, ModeVerify} {
		ch <- prometheus.MustNewConstMetric(d.requests, prometheus.CounterValue, float64(s.Requests[mode]), mode)
	}
	for i, r := range reasons {
		ch <- prometheus.MustNewConstMetric(d.refusals, prometheus.CounterValue, float64(g.counters.refused[i].Load()), r)
	}
	ch <- prometheus.MustNewConstMetric(d.upstreamErrors, prometheus.CounterValue, float64(s.UpstreamErrors))
	ch <- prometheus.MustNewConstMetric(d.cut, prometheus.CounterValue, float64(s.Cut))
	g.counters.latency.Collect(ch)
}

var _ prometheus.Collector = (*Gateway)(nil)
