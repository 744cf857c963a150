package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/idrecon/idrecon/runtime/audit"
	"github.com/idrecon/idrecon/spec"
)

// TestKeptDriftReportedOnce: drift left in place (report mode, suspended)
// is found again by every tick; it is logged and audited when it appears,
// not once a minute, which would push the audit trail's real records out
// of its rotated files. Drift that changes, or comes back, is new.
func TestKeptDriftReportedOnce(t *testing.T) {
	for _, tt := range []struct {
		name    string
		mode    DriftMode
		suspend bool
	}{
		{"report", DriftReport, false},
		{"suspended", DriftCorrect, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			trail := &audit.Memory{}
			e := &loopEnv{store: newStore(t), src: newDirSource(t), clock: newFakeClock(), logs: &logRecorder{}}
			e.r = newReconciler(t, Config{Store: e.store, Source: e.src, DriftMode: tt.mode, Clock: e.clock,
				Logger: slog.New(e.logs), Audit: trail})
			e.src.write(t, "c1", map[string]string{"apps.yaml": app("webgoat", "1.0")})
			e.once(t)
			if tt.suspend {
				e.r.Suspend()
			}
			drifts := func() int {
				n := 0
				for _, ev := range trail.Events() {
					if _, ok := ev.(audit.Drift); ok {
						n++
					}
				}
				return n
			}
			adminWrite(t, e.store, spec.KindApplication, "webgoat", &spec.Application{Versions: []string{"9.9"}})
			for range 3 {
				e.once(t)
			}
			if n, logged := drifts(), len(e.logs.find("drift")); n != 1 || logged != 1 {
				t.Errorf("the same kept drift was audited %d times and logged %d times over 3 ticks, want once", n, logged)
			}
			if st := e.r.Status(); st.DriftCount != 1 {
				t.Errorf("drift count %d, want 1: the drift is still present", st.DriftCount)
			}
			// A different edit is new drift.
			adminWrite(t, e.store, spec.KindApplication, "webgoat", &spec.Application{Versions: []string{"8.8"}})
			e.once(t)
			e.once(t)
			if n := drifts(); n != 2 {
				t.Errorf("%d drift records after a second edit, want 2", n)
			}
			// Fixed by hand, then made again: reported again.
			adminWrite(t, e.store, spec.KindApplication, "webgoat", &spec.Application{Versions: []string{"1.0"}})
			e.once(t)
			if st := e.r.Status(); st.DriftCount != 0 || !st.DriftSince.IsZero() {
				t.Errorf("drift fixed by hand: count %d, since %v; want none", st.DriftCount, st.DriftSince)
			}
			adminWrite(t, e.store, spec.KindApplication, "webgoat", &spec.Application{Versions: []string{"8.8"}})
			e.once(t)
			if n := drifts(); n != 3 {
				t.Errorf("%d drift records after the drift came back, want 3", n)
			}
			if tt.suspend {
				// Resumed, the drift is corrected, and that is recorded.
				e.r.Resume()
				e.once(t)
				if n := drifts(); n != 4 {
					t.Errorf("%d drift records after the correction, want 4", n)
				}
			}
		})
	}
}

// TestSharedStatusAppliedRevisionBeforeApply: a daemon that starts leading
// (after a restart) and has not applied yet reports the revision the state
// holds as applied; the daemons it shares its status with must report the
// same, not "".
func TestSharedStatusAppliedRevisionBeforeApply(t *testing.T) {
	e := newLoopEnv(t, DriftCorrect, nil)
	e.src.write(t, "c1", map[string]string{"apps.yaml": app("webgoat", "1.0")})
	e.once(t) // an earlier leader applied c1

	leader := newReconciler(t, Config{Store: e.store, Source: e.src, ShareStatus: true, Clock: e.clock})
	follower := newReconciler(t, Config{Store: e.store, Source: e.src, ShareStatus: true, Clock: e.clock})
	leader.Suspend()
	if _, err := leader.ReconcileOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := leader.Status().AppliedRevision
	if want == "" {
		t.Fatal("the leader reports no applied revision")
	}
	if got := follower.Status(); got.LastAttempt.IsZero() || got.AppliedRevision != want {
		t.Errorf("follower reports applied revision %q (attempt %v), want the leader's %q", got.AppliedRevision, got.LastAttempt, want)
	}
}

// TestCancelledPassIsNotAFailure: a pass cut short because the loop stops
// (shutdown, a lost leadership) did not fail: status, history and the
// metrics keep the last real outcome.
func TestCancelledPassIsNotAFailure(t *testing.T) {
	var results []Result
	e := newLoopEnv(t, DriftCorrect, func(r Result) { results = append(results, r) })
	e.src.write(t, "c1", map[string]string{"apps.yaml": app("webgoat", "1.0")})
	e.once(t)
	before := e.r.Status()

	e.src.gate = make(chan struct{})
	e.src.entered = make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := e.r.ReconcileOnce(ctx); done <- err }()
	waitFor(t, e.src.entered, "the fetch")
	cancel()
	if err := waitFor(t, done, "the cancelled pass"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if st := e.r.Status(); st.LastResult != OutcomeOK || st.LastError != "" || !st.LastAttempt.Equal(before.LastAttempt) {
		t.Errorf("status after a cancelled pass: result %q, error %q", st.LastResult, st.LastError)
	}
	if h := e.r.History(); len(h) != 1 || h[0].Outcome != OutcomeOK {
		t.Errorf("history after a cancelled pass: %+v", h)
	}
	if len(results) != 1 {
		t.Errorf("%d results reported, want only the real one: %+v", len(results), results)
	}
}
