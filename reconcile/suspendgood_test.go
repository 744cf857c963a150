package reconcile

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/idrecon/idrecon/spec"
)

// A suspended pass only plans, so it cannot know that a revision would be
// refused when applied (too large for one journal transaction). Such a
// revision must not become the last good one: after resume it is refused,
// and the revision kept must be one that applies, so that drift is still
// corrected and status says refused, not an error retried with backoff.
func TestRevisionAdoptedWhileSuspendedIsNotKeptOnceRefused(t *testing.T) {
	st, src, r := appliedOnSmallJournal(t)
	applied := r.Status().AppliedRevision

	r.Suspend()
	many := ""
	for i := range 8 {
		many += "---\n" + app(fmt.Sprintf("app%d", i), "1.0")
	}
	src.write(t, "c2", map[string]string{"apps.yaml": app("a", "1.0") + many})
	if _, err := r.ReconcileOnce(t.Context()); err != nil {
		t.Fatalf("suspended pass: %v", err)
	}

	r.Resume()
	adminWrite(t, st, spec.KindApplication, "a", &spec.Application{Versions: []string{"1.0", "6.6.6"}})
	_, err := r.ReconcileOnce(t.Context())
	s := r.Status()
	if s.LastResult != OutcomeRefused || s.Stalled == "" {
		t.Errorf("after resume: err %v, result %q stalled %q; want refused", err, s.LastResult, s.Stalled)
	}
	if got := versions(t, st, "a"); !reflect.DeepEqual(got, []string{"1.0"}) {
		t.Errorf("a has versions %v, want the drift corrected back to the last applied [1.0]", got)
	}
	if s.AppliedRevision != applied {
		t.Errorf("applied revision %q, want %q", s.AppliedRevision, applied)
	}
	if cur, err := r.CurrentPlan(t.Context()); err != nil || cur.Revision != s.AppliedContent {
		t.Errorf("CurrentPlan plans the refused revision: %v %+v", err, cur)
	}
}
