package reconcile

import (
	"context"
	"testing"

	"github.com/idrecon/idrecon/spec"
)

// TestHistory follows a sync history through an apply, quiet ticks (merged
// into one entry), a refused revision and corrected drift.
func TestHistory(t *testing.T) {
	e := newLoopEnv(t, DriftCorrect, nil)
	e.src.write(t, "c1", map[string]string{"apps.yaml": app("webgoat", "1.0")})
	e.once(t)
	e.once(t)
	e.once(t)
	e.src.write(t, "c2", map[string]string{"apps.yaml": app("webgoat", "1.0") + "  verions: [\"3.0\"]\n"})
	e.r.ReconcileOnce(context.Background())
	adminWrite(t, e.store, spec.KindApplication, "webgoat", &spec.Application{Versions: []string{"9.9"}})
	e.r.ReconcileOnce(context.Background())

	h := e.r.History()
	if len(h) != 4 {
		t.Fatalf("%d entries, want 4 (apply, 2 quiet ticks, refusal, drift corrected): %+v", len(h), h)
	}
	applied, quiet, refused, corrected := h[3], h[2], h[1], h[0]
	if applied.Outcome != OutcomeOK || !applied.Applied || applied.Summary.Create == 0 || applied.Seen != "c1" || applied.Count != 1 {
		t.Errorf("first apply: %+v", applied)
	}
	if quiet.Summary != (Summary{}) || quiet.Count != 2 || quiet.Outcome != OutcomeOK {
		t.Errorf("quiet ticks: %+v", quiet)
	}
	if refused.Outcome != OutcomeRefused || refused.Seen != "c2" || refused.Revision != applied.Revision || refused.Error == "" || refused.Stalled == "" {
		t.Errorf("refusal: %+v", refused)
	}
	if corrected.Summary.Drift != 1 || corrected.Summary.Update != 1 || corrected.Outcome != OutcomeRefused {
		t.Errorf("drift corrected (the bad revision still refused): %+v", corrected)
	}
}

func TestHistoryIsBounded(t *testing.T) {
	e := newLoopEnv(t, DriftCorrect, nil)
	for i := range MaxHistory + 5 {
		e.r.mu.Lock()
		e.r.addHistory(HistoryEntry{Count: 1, Outcome: OutcomeOK, Summary: Summary{Create: i + 1}})
		e.r.mu.Unlock()
	}
	h := e.r.History()
	if len(h) != MaxHistory || h[0].Summary.Create != MaxHistory+5 || h[len(h)-1].Summary.Create != 6 {
		t.Errorf("%d entries, newest %+v, oldest %+v", len(h), h[0], h[len(h)-1])
	}
}
