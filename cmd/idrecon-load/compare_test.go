package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/scim/scimload"
)

// outcomeAt is a run of label whose cycle made n requests in one second.
func outcomeAt(label string, n int) *outcome {
	return &outcome{label: label, res: &scimload.Result{Requests: n, Elapsed: time.Second, CycleElapsed: time.Second,
		Cycle: scimload.Stats{Kind: "(cycle)", Count: n}}}
}

// TestCompareRatioOfMediansOfTwoRuns: with -runs 2 the ratio column is the
// ratio of the medians, the median of two runs being their mean. The
// README's 20,000-user compare (7,451–8,385 against 4,685–5,509 requests/s)
// is 1.55x by its medians.
func TestCompareRatioOfMediansOfTwoRuns(t *testing.T) {
	a := []*outcome{outcomeAt("idrecon", 7451), outcomeAt("idrecon", 8385)}
	b := []*outcome{outcomeAt("peer", 4685), outcomeAt("peer", 5509)}
	var out strings.Builder
	compareTable(&out, 20000, a, b)
	line := regexp.MustCompile(`(?m)^req/s \(cycle\).*$`).FindString(out.String())
	f := strings.Fields(line)
	if len(f) != 5 || f[2] != "7451–8385" || f[3] != "4685–5509" {
		t.Fatalf("row %q", line)
	}
	if want := "1.55"; f[4] != want { // (7451+8385)/2 / ((4685+5509)/2)
		t.Errorf("ratio %s, want %s: %q", f[4], want, line)
	}
}
