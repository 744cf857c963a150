package daemon

import (
	"fmt"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/runtime/internal/etcdtest"
)

// statusMetrics checks that d's /metrics shows the reconciler's state as
// its GET /v1/status does, read just before: the two must never disagree.
func statusMetrics(t *testing.T, d *running, what string) {
	t.Helper()
	st := d.status(t)
	_, b := d.call(t, "GET", d.admin+"/metrics", "", nil)
	m := string(b)
	suspended := 0
	if st.Suspended {
		suspended = 1
	}
	want := []string{
		fmt.Sprintf("\nidrecon_suspended %d\n", suspended),
		fmt.Sprintf("\nidrecon_drift_resources %d\n", st.DriftCount),
	}
	if st.AppliedRevision == "" || st.SeenRevision == "" {
		t.Fatalf("%s: status has applied revision %q and seen %q, want both", what, st.AppliedRevision, st.SeenRevision)
	}
	for state, rev := range map[string]string{"applied": st.AppliedRevision, "seen": st.SeenRevision} {
		want = append(want, fmt.Sprintf("\nidrecon_revision_info{revision=%q,state=%q} 1\n", rev, state))
	}
	for _, w := range want {
		if !strings.Contains(m, w) {
			t.Errorf("%s: /metrics lacks %q, which status (suspended %v, drift %d) implies",
				what, strings.TrimSpace(w), st.Suspended, st.DriftCount)
		}
	}
}

// TestSuspendShowsInMetricsAtOnce: `idrecon suspend` and `resume` show in
// idrecon_suspended as soon as they are answered, as they do in status,
// not only once a reconcile has run.
func TestSuspendShowsInMetricsAtOnce(t *testing.T) {
	d := start(t, Config{SpecDir: copyDir(t, "../../examples/entra"), DataDir: t.TempDir()})
	statusMetrics(t, d, "at start")

	// The gauge must move without a reconcile: a suspend requests none,
	// but one may still run (the folder watcher's first events, on a
	// loaded machine): the round is then tried again.
	for attempt := 1; ; attempt++ {
		before := d.status(t).LastAttempt
		if code, body := d.call(t, "POST", d.admin+"/v1/suspend", adminTok, nil); code != 200 {
			t.Fatalf("suspend: %d %s", code, body)
		}
		if !d.status(t).Suspended {
			t.Fatal("status does not say suspended after suspend")
		}
		statusMetrics(t, d, "after suspend")
		after := d.status(t).LastAttempt
		if after.Equal(before) {
			break
		}
		if attempt == 5 {
			t.Fatalf("a reconcile ran during each of %d suspends (the last at %v); the test proves nothing", attempt, after)
		}
		if code, body := d.call(t, "POST", d.admin+"/v1/resume", adminTok, nil); code != 200 {
			t.Fatalf("resume: %d %s", code, body)
		}
		// Resume requests a reconcile: the next round starts after it.
		eventually(t, "the reconcile resume requested", func() bool { return d.status(t).LastAttempt.After(after) })
	}

	if code, body := d.call(t, "POST", d.admin+"/v1/resume", adminTok, nil); code != 200 {
		t.Fatalf("resume: %d %s", code, body)
	}
	// Resume requests a reconcile, which may or may not have ended by
	// now: the gauge must say 0 either way.
	_, m := d.call(t, "GET", d.admin+"/metrics", "", nil)
	if !strings.Contains(string(m), "\nidrecon_suspended 0\n") {
		t.Error("/metrics does not report idrecon_suspended 0 right after resume")
	}
}

// TestFollowerMetricsFollowTheLeader: with several daemons on etcd, one
// reconciles; the others report its status, and their /metrics must show
// the same applied and seen revisions, drift and suspension, not the
// values they started with.
func TestFollowerMetricsFollowTheLeader(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ds := replicasWith(t, copyDir(t, "../../examples/entra"), c.Endpoints, 2)
	follower, leader := suspendedThroughTheFollower(t, ds)
	statusMetrics(t, follower, "follower")
	statusMetrics(t, leader, "leader")
	if !follower.status(t).Suspended {
		t.Error("the follower's status does not say suspended")
	}
}
