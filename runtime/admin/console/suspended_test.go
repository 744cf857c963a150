package console

import (
	"strings"
	"testing"
)

// TestDriftPageWhileSuspended: while reconciling is suspended nothing is
// put back, so the drift page must not promise that the next reconcile
// corrects the drift it lists (correct mode), as the overview says
// ("nothing is applied; drift is still reported").
func TestDriftPageWhileSuspended(t *testing.T) {
	e := newEnv(t, consoleRole)
	c := e.signedIn(t, "alice@contoso.example")
	e.rec.Suspend()
	t.Cleanup(e.rec.Resume)
	e.update(t, adminEdit("webgoat", "9.9"))
	e.reconcile(t)
	if st := e.rec.Status(); !st.Suspended || st.DriftCount == 0 {
		t.Fatalf("status: suspended %v, drift %d", st.Suspended, st.DriftCount)
	}
	_, body := get(t, c, e.adminURL+Path+"drift")
	if strings.Contains(body, "the next reconcile puts it back") {
		t.Errorf("drift page promises a correction while suspended:\n%s", body)
	}
	if !strings.Contains(body, "suspended") {
		t.Errorf("drift page does not say reconciling is suspended:\n%s", body)
	}
}
