package metrics

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/idrecon/idrecon/reconcile"
)

// noStatus is the status of a reconciler that has not run.
func noStatus() reconcile.Status { return reconcile.Status{} }

// scrape fetches the handler's output over HTTP.
func scrape(t *testing.T, m *Metrics) (int, string) {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// family returns the gathered family called name, or nil.
func family(t *testing.T, m *Metrics, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	return nil
}

// A scrape while the status changes must see exactly one applied and one
// seen revision, of the same status: never none (a gap in the info
// metric), never two, never the applied one of one status with the seen
// one of another.
func TestRevisionsScrapeDuringUpdate(t *testing.T) {
	pairs := []*reconcile.Status{
		{AppliedRevision: "main@sha1:a", SeenRevision: "main@sha1:b"},
		{AppliedRevision: "main@sha1:c", SeenRevision: "main@sha1:d"},
	}
	var cur atomic.Pointer[reconcile.Status]
	cur.Store(pairs[0])
	m := New(func() reconcile.Status { return *cur.Load() })
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				cur.Store(pairs[(i+w)%2])
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	for range 1000 {
		mf := family(t, m, "idrecon_revision_info")
		got := map[string][]string{}
		if mf != nil {
			for _, mt := range mf.GetMetric() {
				var state, rev string
				for _, l := range mt.GetLabel() {
					switch l.GetName() {
					case "state":
						state = l.GetValue()
					case "revision":
						rev = l.GetValue()
					}
				}
				got[state] = append(got[state], rev)
			}
		}
		if len(got["applied"]) != 1 || len(got["seen"]) != 1 {
			t.Fatalf("scrape during update saw applied %q and seen %q, want one of each", got["applied"], got["seen"])
		}
		if a, s := got["applied"][0], got["seen"][0]; !(a == pairs[0].AppliedRevision && s == pairs[0].SeenRevision) && !(a == pairs[1].AppliedRevision && s == pairs[1].SeenRevision) {
			t.Fatalf("scrape during update saw applied %s with seen %s, of two statuses", a, s)
		}
	}
}

// Revision names are free text (a branch name): any of them must be
// exported, escaped, and none may panic a scrape.
func TestRevisionsOddNames(t *testing.T) {
	for _, tc := range []struct {
		name, applied, want string
	}{
		{"quote and backslash", `fix"\x@sha1:1`, `idrecon_revision_info{revision="fix\"\\x@sha1:1",state="applied"} 1`},
		{"newline", "a\nb@sha1:1", `idrecon_revision_info{revision="a\nb@sha1:1",state="applied"} 1`},
		{"invalid UTF-8", "br\xffanch@sha1:1", `idrecon_revision_info{revision="br` + "\uFFFD" + `anch@sha1:1",state="applied"} 1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A panic in Collect would take the daemon down at a scrape.
			m := New(func() reconcile.Status { return reconcile.Status{AppliedRevision: tc.applied} })
			code, body := scrape(t, m)
			if code != http.StatusOK {
				t.Fatalf("scrape answered %d", code)
			}
			if !strings.Contains(body, tc.want) {
				t.Errorf("metrics lack %q", tc.want)
			}
		})
	}
}

// A handler that writes nothing is answered 200 by net/http; the metric
// must say so rather than code="0".
func TestSCIMRequestStatusCode(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   string
	}{
		{0, `idrecon_scim_requests_total{code="200",route="users.get"} 1`},
		{201, `idrecon_scim_requests_total{code="201",route="users.get"} 1`},
		{404, `idrecon_scim_requests_total{code="404",route="users.get"} 1`},
	} {
		m := New(noStatus)
		m.SCIMRequest("users.get", tc.status, time.Millisecond)
		_, body := scrape(t, m)
		if !strings.Contains(body, tc.want) {
			t.Errorf("status %d: metrics lack %q", tc.status, tc.want)
		}
		if strings.Contains(body, `code="0"`) {
			t.Errorf("status %d: metrics report code 0", tc.status)
		}
	}
}

// Every reconcile outcome is exported from the start at 0, so that
// increase(idrecon_reconcile_total{result="error"}[5m]) sees the first
// error after a restart.
func TestReconcileOutcomesStartAtZero(t *testing.T) {
	m := New(noStatus)
	_, body := scrape(t, m)
	for _, result := range []string{reconcile.OutcomeOK, reconcile.OutcomeError, reconcile.OutcomeRefused, reconcile.OutcomeStalled} {
		want := `idrecon_reconcile_total{result="` + result + `"} 0`
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q before any reconcile", want)
		}
	}
}

// dup is an unchecked collector (as the Gateways' is) that sends one series
// twice.
type dup struct{ desc *prometheus.Desc }

func (dup) Describe(chan<- *prometheus.Desc) {}
func (d dup) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(d.desc, prometheus.CounterValue, 1)
	ch <- prometheus.MustNewConstMetric(d.desc, prometheus.CounterValue, 1)
}

// A registered collector that misbehaves must not take idrecon's own
// metrics off the scrape.
func TestHandlerSurvivesBadCollector(t *testing.T) {
	m := New(noStatus)
	m.Reconcile("ok", time.Millisecond)
	if err := m.Register(dup{prometheus.NewDesc("idrecon_test_dup_total", "Duplicated.", nil, nil)}); err != nil {
		t.Fatal(err)
	}
	scrape(t, m) // the error it counts shows on the next scrape
	code, body := scrape(t, m)
	if code != http.StatusOK {
		t.Fatalf("scrape answered %d, want 200", code)
	}
	for _, want := range []string{`idrecon_reconcile_total{result="ok"} 1`, `promhttp_metric_handler_errors_total{cause="gathering"} 1`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// revisionSeries returns the idrecon_revision_info lines of a scrape.
func revisionSeries(body string) []string {
	var lines []string
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, "idrecon_revision_info{") {
			lines = append(lines, strings.TrimSpace(line))
		}
	}
	return lines
}

// A daemon following a busy repo sees revision after revision: the info
// metric must keep describing the current pair only, so that neither the
// scrape nor Prometheus's live series grow with the daemon's age.
func TestRevisionInfoHoldsOnlyTheCurrentRevisions(t *testing.T) {
	var cur atomic.Pointer[reconcile.Status]
	cur.Store(&reconcile.Status{})
	m := New(func() reconcile.Status { return *cur.Load() })
	const revisions = 50
	for i := range revisions {
		// The seen revision runs one ahead of the applied one, as when a
		// commit was fetched and refused.
		applied, seen := fmt.Sprintf("main@sha1:%d", i), fmt.Sprintf("main@sha1:%d", i+1)
		cur.Store(&reconcile.Status{AppliedRevision: applied, SeenRevision: seen})
		code, body := scrape(t, m)
		if code != http.StatusOK {
			t.Fatalf("revision %d: scrape answered %d", i, code)
		}
		want := []string{
			fmt.Sprintf(`idrecon_revision_info{revision=%q,state="applied"} 1`, applied),
			fmt.Sprintf(`idrecon_revision_info{revision=%q,state="seen"} 1`, seen),
		}
		got := revisionSeries(body)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("revision %d: scrape holds %q, want only %q", i, got, want)
		}
	}
	if mf := family(t, m, "idrecon_revision_info"); len(mf.GetMetric()) != 2 {
		t.Errorf("after %d revisions, %d series of idrecon_revision_info gathered, want 2 (applied, seen)", revisions, len(mf.GetMetric()))
	}
}

// scimBounds returns the upper bounds of the SCIM latency histogram of
// route, with the cumulative count at each.
func scimBounds(t *testing.T, m *Metrics, route string) ([]float64, []uint64) {
	t.Helper()
	mf := family(t, m, "idrecon_scim_request_duration_seconds")
	for _, mt := range mf.GetMetric() {
		for _, l := range mt.GetLabel() {
			if l.GetName() == "route" && l.GetValue() == route {
				var bounds []float64
				var counts []uint64
				for _, b := range mt.GetHistogram().GetBucket() {
					bounds = append(bounds, b.GetUpperBound())
					counts = append(counts, b.GetCumulativeCount())
				}
				return bounds, counts
			}
		}
	}
	t.Fatalf("no SCIM latency histogram for route %q", route)
	return nil, nil
}

// Operators alert when a SCIM request kind's p99 passes its target: a
// bucket must end there, so that a request just under the target and one just
// over it are told apart (and the share under it read exactly), while the
// bounds that dashboards already name stay.
func TestSCIMLatencyBucketAtTarget(t *testing.T) {
	m := New(noStatus)
	m.SCIMRequest("users.get", 200, 19*time.Millisecond)
	m.SCIMRequest("users.get", 200, 21*time.Millisecond)
	bounds, counts := scimBounds(t, m, "users.get")
	at := slices.Index(bounds, 0.02)
	if at < 0 {
		t.Fatalf("SCIM latency bounds %v lack 0.02", bounds)
	}
	if counts[at] != 1 || counts[len(counts)-1] != 2 {
		t.Errorf("19 ms and 21 ms counted %d at le=0.02 and %d in all, want 1 and 2", counts[at], counts[len(counts)-1])
	}
	if at > 0 && counts[at-1] != 0 {
		t.Errorf("%d observations at le=%v, below both", counts[at-1], bounds[at-1])
	}
	for _, b := range prometheus.ExponentialBuckets(0.0001, 2, 18) {
		if !slices.Contains(bounds, b) {
			t.Errorf("SCIM latency bounds %v lost %v, which dashboards may name", bounds, b)
		}
	}
	if extra := len(bounds) - 18; extra > 2 {
		t.Errorf("SCIM latency has %d buckets, %d more than before", len(bounds), extra)
	}
	_, body := scrape(t, m)
	if want := `idrecon_scim_request_duration_seconds_bucket{route="users.get",le="0.02"} 1`; !strings.Contains(body, want) {
		t.Errorf("scrape lacks %q", want)
	}
}
