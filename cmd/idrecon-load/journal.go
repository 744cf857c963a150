package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/idrecon/idrecon/runtime/scim/scimload"
)

// syncMetric is the daemon's histogram of journal syncs: one write and one
// fdatasync of the write-ahead log per batch of writes, which every SCIM
// write waits for.
const syncMetric = "idrecon_journal_sync_duration_seconds"

// journalSyncs is a reading of the daemon's syncMetric: the number of
// syncs, and per bucket bound (ascending, in seconds) how many took at
// most that long.
type journalSyncs struct {
	count  float64
	bounds []float64
	atMost []float64
}

// scrapeJournal reads syncMetric from the Prometheus exposition at url.
func scrapeJournal(ctx context.Context, url string) (journalSyncs, error) {
	resp, err := get(ctx, url)
	if err != nil {
		return journalSyncs{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return journalSyncs{}, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return parseJournal(resp.Body)
}

func parseJournal(r io.Reader) (journalSyncs, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return journalSyncs{}, err
	}
	f, ok := families[syncMetric]
	if !ok || len(f.GetMetric()) == 0 {
		return journalSyncs{}, errNoJournal
	}
	h := f.GetMetric()[0].GetHistogram()
	j := journalSyncs{count: float64(h.GetSampleCount())}
	for _, b := range h.GetBucket() {
		if !math.IsInf(b.GetUpperBound(), 1) {
			j.bounds = append(j.bounds, b.GetUpperBound())
			j.atMost = append(j.atMost, float64(b.GetCumulativeCount()))
		}
	}
	return j, nil
}

// errNoJournal is scrapeJournal's error for a daemon without a journal
// (its state in memory only).
var errNoJournal = errors.New("no " + syncMetric + " in the exposition")

// since returns the syncs made after the reading before.
func (j journalSyncs) since(before journalSyncs) journalSyncs {
	d := journalSyncs{count: j.count - before.count, bounds: j.bounds, atMost: make([]float64, len(j.atMost))}
	for i := range j.atMost {
		d.atMost[i] = j.atMost[i]
		if i < len(before.atMost) {
			d.atMost[i] -= before.atMost[i]
		}
	}
	return d
}

// over returns how many syncs took longer than bound, which must be one of
// the histogram's bounds (NaN otherwise).
func (j journalSyncs) over(bound time.Duration) float64 {
	for i, b := range j.bounds {
		if time.Duration(b*float64(time.Second)) == bound {
			return j.count - j.atMost[i]
		}
	}
	return math.NaN()
}

// quantile returns the bound of the first bucket holding the q-quantile:
// the q-quantile is at most that. It is false when there were no syncs, or
// the quantile lies beyond the last bound: there is no bound to give then.
func (j journalSyncs) quantile(q float64) (time.Duration, bool) {
	if j.count == 0 {
		return 0, false
	}
	for i, b := range j.bounds {
		if j.atMost[i] >= q*j.count {
			return time.Duration(b * float64(time.Second)), true
		}
	}
	return 0, false
}

// lastBound is the histogram's highest finite bound (0 without one).
func (j journalSyncs) lastBound() time.Duration {
	if len(j.bounds) == 0 {
		return 0
	}
	return time.Duration(j.bounds[len(j.bounds)-1] * float64(time.Second))
}

// atMostString formats a quantile's bound: "≤ b", or "> the last bound" beyond.
func (j journalSyncs) atMostString(q float64) string {
	if b, ok := j.quantile(q); ok {
		return "≤ " + b.String()
	}
	return "> " + j.lastBound().String()
}

// slowSync is the bound above which a sync is counted as slow: far beyond
// a healthy disk's, and long enough to show in a request's p99.
const slowSync = 3200 * time.Microsecond

// print reports the syncs of a run that made writes SCIM writes.
func (j journalSyncs) print(w io.Writer, writes int) {
	if j.count == 0 {
		fmt.Fprintln(w, "journal     no syncs")
		return
	}
	fmt.Fprintf(w, "journal     %.0f syncs for %d SCIM writes, p50 %s, p99 %s, %.0f over %v\n",
		j.count, writes, j.atMostString(0.5), j.atMostString(0.99), j.over(slowSync), slowSync)
}

// writes counts the requests of res that change the state: every kind but
// lookups and the read-back.
func writes(res *scimload.Result) int {
	n := 0
	for _, k := range res.Kinds {
		if !strings.HasSuffix(k.Kind, ".lookup") && !strings.HasPrefix(k.Kind, "verify.") {
			n += k.Count + k.Errors
		}
	}
	return n
}
