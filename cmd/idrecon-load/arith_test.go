package main

import (
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/scim/scimload"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		v    []float64
		want float64
	}{
		{nil, 0},
		{[]float64{7}, 7},
		{[]float64{1, 9}, 5},
		{[]float64{1, 2, 9}, 2},
		{[]float64{1, 2, 4, 100}, 3},
		{[]float64{4685, 5209, 5509}, 5209},
	} {
		if got := median(tc.v); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.v, got, tc.want)
		}
	}
}

// TestCompareRatio: the ratio column is the first server's median over the
// second's, as its header a/b says, for every row that has one.
func TestCompareRatio(t *testing.T) {
	withCPU := func(label string, rps int, cpu time.Duration, before, after int64) *outcome {
		o := outcomeAt(label, rps)
		o.rss = rssFigures{cpu: cpu, cycle: true, before: before, peak: after, after: after}
		return o
	}
	const mib = 1 << 20
	// idrecon: 3 runs, medians 8000 req/s, 1,000,000 µs CPU / 8000 = 125 µs.
	a := []*outcome{withCPU("idrecon", 8000, time.Second, 10*mib, 20*mib), withCPU("idrecon", 7000, 7*time.Second/8, 10*mib, 20*mib), withCPU("idrecon", 9000, 9*time.Second/8, 10*mib, 20*mib)}
	// peer: 2 runs, medians (4000+6000)/2 = 5000 req/s, 250 µs.
	b := []*outcome{withCPU("peer", 4000, time.Second, 10*mib, 50*mib), withCPU("peer", 6000, 3*time.Second/2, 10*mib, 50*mib)}
	var out strings.Builder
	compareTable(&out, 1024, a, b)
	for _, tc := range []struct{ row, want string }{
		{`req/s \(cycle\)`, "1.60"},             // 8000 / 5000
		{`server CPU per request`, "0.50"},      // 125 / 250
		{`  per user \(minus before\)`, "0.25"}, // 10 MiB/1024 users = 10 KiB, against 40 KiB
	} {
		line := regexp.MustCompile(`(?m)^` + tc.row + `.*$`).FindString(out.String())
		if f := strings.Fields(line); len(f) == 0 || f[len(f)-1] != tc.want {
			t.Errorf("row %q: ratio want %s\n%s", line, tc.want, out.String())
		}
	}
}

// TestCompareP99OfAKindWithNoAnswer: a run whose requests of a kind all
// failed has no latency for it; the table must not show its p99 as 0.
func TestCompareP99OfAKindWithNoAnswer(t *testing.T) {
	ok := outcomeAt("idrecon", 100)
	ok.res.Kinds = []scimload.Stats{{Kind: "user.create", Count: 100, P99: 4 * time.Millisecond}}
	failed := outcomeAt("idrecon", 100)
	failed.res.Kinds = []scimload.Stats{{Kind: "user.create", Errors: 100}}
	failed.res.Errors = 100
	var out strings.Builder
	compareTable(&out, 100, []*outcome{ok, failed}, []*outcome{outcomeAt("peer", 100)})
	line := regexp.MustCompile(`(?m)^p99 user\.create.*$`).FindString(out.String())
	if f := strings.Fields(line); len(f) < 3 || f[2] != "4ms" {
		t.Errorf("row %q, want the only measured p99, 4ms", line)
	}
}

func TestCPUTimeFromStat(t *testing.T) {
	// Fields after the command: state ppid pgrp session tty tpgid flags
	// minflt cminflt majflt cmajflt utime stime cutime cstime ...
	const tail = " S 1 2 3 0 -1 4194560 100 0 0 0 %s 0 0 20 0 8 0 1234 5678 90"
	for _, tc := range []struct {
		name, stat string
		want       time.Duration
		ok         bool
	}{
		{"ticks are 10ms", "42 (idrecon)" + strings.Replace(tail, "%s", "250 130", 1), 3800 * time.Millisecond, true},
		{"children not counted", "42 (idrecon)" + strings.Replace(tail, "%s", "1 2", 1) + " 999 999", 30 * time.Millisecond, true},
		{"command with ') ' in it", "42 (a) b c)" + strings.Replace(tail, "%s", "250 130", 1), 3800 * time.Millisecond, true},
		{"truncated", "42 (idrecon) S 1 2", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCPUTime(tc.stat)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("parseCPUTime = %v, %v; want %v, ok %v", got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestStatusField(t *testing.T) {
	const status = "Name:\tidrecon\nVmPeak:\t  900000 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t12\n"
	for _, tc := range []struct {
		name string
		want int64
		ok   bool
	}{
		{"VmRSS", 100 << 20, true}, // 102,400 kB is 100 MiB
		{"VmHWM", 200 << 20, true},
		{"VmSwap", 0, false},
	} {
		got, err := parseStatus(strings.NewReader(status), tc.name)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%s = %d, %v; want %d, ok %v", tc.name, got, err, tc.want, tc.ok)
		}
	}
}

func TestPerUserMinusBefore(t *testing.T) {
	f := rssFigures{before: 26 << 20}
	// 26 MiB idle, 91 MiB after 50,000 users: 65 MiB / 50,000 = 1.3312 KiB.
	if got := f.perUser(91<<20, 50000) / 1024; math.Abs(got-1.3312) > 1e-9 {
		t.Errorf("per user %v KiB, want 1.3312", got)
	}
}

// journalOf is a reading with the daemon's bounds (50µs doubling, 14
// buckets) and these cumulative counts, padded with the last.
func journalOf(count float64, atMost ...float64) journalSyncs {
	j := journalSyncs{count: count}
	b := 0.00005
	for i := range 14 {
		j.bounds = append(j.bounds, b)
		if i < len(atMost) {
			j.atMost = append(j.atMost, atMost[i])
		} else {
			j.atMost = append(j.atMost, atMost[len(atMost)-1])
		}
		b *= 2
	}
	return j
}

func TestJournalQuantileAndOver(t *testing.T) {
	for _, tc := range []struct {
		name     string
		j        journalSyncs
		q        float64
		want     time.Duration
		ok       bool
		over3200 float64
	}{
		// 1000 syncs: 10 ≤ 50µs, 500 ≤ 100µs, 990 ≤ 200µs, 995 ≤ 400µs …
		{"p50", journalOf(1000, 10, 500, 990, 995, 995, 995, 998), 0.5, 100 * time.Microsecond, true, 2},
		{"p99 on a bucket's count exactly", journalOf(1000, 10, 500, 990, 995, 995, 995, 998), 0.99, 200 * time.Microsecond, true, 2},
		{"p99 one past it", journalOf(1000, 10, 500, 989, 995, 995, 995, 998), 0.99, 400 * time.Microsecond, true, 2},
		{"beyond the last bound", journalOf(100, 0, 0, 50), 0.99, 0, false, 50},
		{"no syncs", journalOf(0, 0), 0.99, 0, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.j.quantile(tc.q)
			if got != tc.want || ok != tc.ok {
				t.Errorf("quantile(%v) = %v, %v; want %v, %v", tc.q, got, ok, tc.want, tc.ok)
			}
			if n := tc.j.over(slowSync); n != tc.over3200 {
				t.Errorf("over %v: %v, want %v", slowSync, n, tc.over3200)
			}
		})
	}
}

// TestJournalBeyondTheBuckets: when more than 1 % of the syncs took longer
// than the last bound, the line and the table say so rather than print a
// bound that is not one.
func TestJournalBeyondTheBuckets(t *testing.T) {
	j := journalOf(100, 0, 0, 50)
	var line strings.Builder
	j.print(&line, 100)
	if !strings.Contains(line.String(), "p99 > 409.6ms") {
		t.Errorf("line %q, want p99 > 409.6ms", line.String())
	}
	a := outcomeAt("idrecon", 100)
	a.journal = &j
	var out strings.Builder
	compareTable(&out, 100, []*outcome{a}, []*outcome{outcomeAt("peer", 100)})
	row := regexp.MustCompile(`(?m)^  p99 at most.*$`).FindString(out.String())
	if f := strings.Fields(row); len(f) < 5 || f[3] != "> 409.6ms" && f[3]+" "+f[4] != "> 409.6ms" {
		t.Errorf("row %q, want > 409.6ms", row)
	}
}
