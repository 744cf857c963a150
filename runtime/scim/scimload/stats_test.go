package scimload

import (
	"strings"
	"testing"
	"time"
)

// TestPercentileNearestRank: pct is the nearest-rank percentile, the
// ceil(p/100·n)-th smallest sample, so p99 of fewer than 100 samples is
// the maximum.
func TestPercentileNearestRank(t *testing.T) {
	ms := func(n int) []time.Duration {
		d := make([]time.Duration, n)
		for i := range d {
			d[i] = time.Duration(i+1) * time.Millisecond // 1ms … n ms
		}
		return d
	}
	for _, tc := range []struct {
		n, p int
		want time.Duration // the rank, in ms
	}{
		{1, 50, 1}, {1, 99, 1},
		{2, 50, 1}, {2, 95, 2}, {2, 99, 2},
		{10, 50, 5}, {10, 95, 10}, {10, 99, 10},
		{100, 50, 50}, {100, 95, 95}, {100, 99, 99},
		{101, 99, 100}, // ceil(99.99)
		{1000, 99, 990},
		{1001, 50, 501}, // ceil(500.5)
	} {
		if got := pct(ms(tc.n), tc.p); got != tc.want*time.Millisecond {
			t.Errorf("p%d of %d samples = %v, want %v", tc.p, tc.n, got, tc.want*time.Millisecond)
		}
	}
}

// TestStatsOfAnsweredRequests: latencies are those of the answered
// requests; the failed ones are counted apart.
func TestStatsOfAnsweredRequests(t *testing.T) {
	d := []time.Duration{3, 1, 2, 4}
	s := stats("k", d, 2)
	want := Stats{Kind: "k", Count: 4, Errors: 2, P50: 2, P95: 4, P99: 4, Max: 4}
	if s != want {
		t.Errorf("stats = %+v, want %+v", s, want)
	}
	if s := stats("k", nil, 3); s != (Stats{Kind: "k", Errors: 3}) {
		t.Errorf("stats of failures only = %+v", s)
	}
}

// TestPrintSaysFailuresAreNotInTheLatencies: with errors, the report says
// its percentiles leave them out (a request that timed out after 30 s is
// in no p99).
func TestPrintSaysFailuresAreNotInTheLatencies(t *testing.T) {
	for _, tc := range []struct {
		errors int
		want   bool
	}{{0, false}, {3, true}} {
		r := &Result{Requests: 10, Errors: tc.errors, Elapsed: time.Second, Kinds: []Stats{{Kind: "user.create", Count: 10 - tc.errors, Errors: tc.errors}}}
		var b strings.Builder
		r.Print(&b)
		if got := strings.Contains(b.String(), "latencies leave out the 3 failed requests"); got != tc.want {
			t.Errorf("%d errors: note %v, want %v:\n%s", tc.errors, got, tc.want, b.String())
		}
	}
}
