package reconcile

import (
	"slices"
	"time"
)

// MaxHistory is how many entries History keeps.
const MaxHistory = 100

// HistoryEntry is one run of reconciles of the loop with the same outcome,
// as a sync history shows it: a run of identical reconciles that changed
// nothing (the loop's ticks on an unchanged spec) is one entry with a count,
// so that the entries that matter are not pushed out by the ticks.
type HistoryEntry struct {
	// First and Last are when the first and the last reconcile of the run
	// started; Count how many there were.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
	Count int       `json:"count"`
	// Revision is the revision converged on (the last good one when the
	// fetched one was refused), as Status names it; Seen the one fetched.
	Revision string  `json:"revision,omitempty"`
	Seen     string  `json:"seen,omitempty"`
	Outcome  string  `json:"outcome"`
	Error    string  `json:"error,omitempty"`
	Stalled  string  `json:"stalled,omitempty"`
	Applied  bool    `json:"applied"`
	Summary  Summary `json:"summary"`
}

// History returns the latest reconciles of the loop, newest first, at most
// MaxHistory entries. It is kept in memory: a restart starts it afresh.
func (r *Reconciler) History() []HistoryEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.history)
	slices.Reverse(out)
	return out
}

// addHistory records e, merging it into the newest entry when both are the
// same outcome on the same revisions and neither changed anything; r.mu is
// held.
func (r *Reconciler) addHistory(e HistoryEntry) {
	if n := len(r.history); n > 0 {
		last := &r.history[n-1]
		if quiet(*last) && quiet(e) && last.Revision == e.Revision && last.Seen == e.Seen &&
			last.Outcome == e.Outcome && last.Error == e.Error && last.Stalled == e.Stalled && last.Applied == e.Applied {
			last.Last = e.First
			last.Count++
			return
		}
	}
	if len(r.history) == MaxHistory {
		r.history = slices.Delete(r.history, 0, 1)
	}
	r.history = append(r.history, e)
}

// quiet reports whether e changed nothing.
func quiet(e HistoryEntry) bool { return e.Summary == Summary{} }
