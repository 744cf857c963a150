package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idrecon/idrecon/reconcile/source"
	"github.com/idrecon/idrecon/runtime/audit"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// dirSource serves a temp folder whose files the test rewrites.
type dirSource struct {
	dir     string
	mu      sync.Mutex
	id      string
	err     error
	fetches atomic.Int32
	// gate, when set, holds every Fetch until the test sends on it;
	// entered, when set, is told when a Fetch starts.
	gate    chan struct{}
	entered chan struct{}
}

func newDirSource(t *testing.T) *dirSource {
	t.Helper()
	return &dirSource{dir: t.TempDir()}
}

func (s *dirSource) Fetch(ctx context.Context) (source.Revision, error) {
	s.fetches.Add(1)
	if s.entered != nil {
		s.entered <- struct{}{}
	}
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return source.Revision{}, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return source.Revision{ID: s.id, Dir: s.dir}, s.err
}

func (s *dirSource) String() string { return "dir:test" }

func (s *dirSource) set(id string, err error) {
	s.mu.Lock()
	s.id, s.err = id, err
	s.mu.Unlock()
}

// write replaces the spec in the folder with files (name → YAML).
func (s *dirSource) write(t *testing.T, id string, files map[string]string) {
	t.Helper()
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.Remove(filepath.Join(s.dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(s.dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s.set(id, nil)
}

func app(name string, versions ...string) string {
	return "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: " + name +
		"\nspec:\n  versions: [\"" + strings.Join(versions, `", "`) + "\"]\n"
}

func versions(t *testing.T, s *store.Store, name string) []string {
	t.Helper()
	r := resource(t, s, spec.KindApplication, name)
	if r == nil {
		return nil
	}
	return r.Spec.(*spec.Application).Versions
}

// loopEnv is a reconciler with a real store, a folder source and spec.Load.
type loopEnv struct {
	store *store.Store
	src   *dirSource
	r     *Reconciler
	clock *fakeClock
	logs  *logRecorder
}

func newLoopEnv(t *testing.T, mode DriftMode, onResult func(Result)) *loopEnv {
	t.Helper()
	e := &loopEnv{store: newStore(t), src: newDirSource(t), clock: newFakeClock(), logs: &logRecorder{}}
	e.r = newReconciler(t, Config{
		Store: e.store, Source: e.src, DriftMode: mode, Clock: e.clock,
		Logger: slog.New(e.logs), OnResult: onResult,
		Backoff: Backoff{Initial: time.Second, Max: 4 * time.Second},
	})
	return e
}

func (e *loopEnv) once(t *testing.T) *Plan {
	t.Helper()
	p, err := e.r.ReconcileOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReconcileOnceRefusesBadRevision(t *testing.T) {
	e := newLoopEnv(t, DriftCorrect, nil)
	e.src.write(t, "c1", map[string]string{"apps.yaml": app("webgoat", "1.0")})
	e.once(t)
	good := e.r.Status()
	if good.LastResult != OutcomeOK || good.SeenRevision != "c1" || good.AppliedRevision == "" {
		t.Fatalf("status after good revision: %+v", good)
	}

	// c2 has a typo at line 7 and a new version elsewhere: none of it applies.
	e.src.write(t, "c2", map[string]string{"apps.yaml": app("webgoat", "1.0", "2.0") + "  verions: [\"3.0\"]\n"})
	for range 3 {
		_, err := e.r.ReconcileOnce(context.Background())
		var refused *RefusedError
		if !errors.As(err, &refused) || refused.Revision != "c2" || !errors.Is(err, spec.ErrInvalid) {
			t.Fatalf("err = %v, want a refusal of c2", err)
		}
	}
	st := e.r.Status()
	if st.LastResult != OutcomeRefused || !strings.Contains(st.LastError, "apps.yaml:7:") ||
		st.SeenRevision != "c2" || st.AppliedRevision != good.AppliedRevision {
		t.Errorf("status after bad revision: %+v", st)
	}
	if got := versions(t, e.store, "webgoat"); !reflect.DeepEqual(got, []string{"1.0"}) {
		t.Errorf("webgoat versions %v, want the last good [1.0]", got)
	}
	if n := len(e.logs.find("reconcile failed")); n != 1 {
		t.Errorf("the same error was logged %d times, want once", n)
	}

	e.src.write(t, "c3", map[string]string{"apps.yaml": app("webgoat", "1.0", "2.0")})
	e.once(t)
	if got := versions(t, e.store, "webgoat"); !reflect.DeepEqual(got, []string{"1.0", "2.0"}) {
		t.Errorf("webgoat versions %v after fix", got)
	}
	if st := e.r.Status(); st.LastResult != OutcomeOK || st.LastError != "" {
		t.Errorf("status after fix: %+v", st)
	}
	if n := len(e.logs.find("reconcile recovered")); n != 1 {
		t.Errorf("recovery logged %d times, want once", n)
	}
}

func TestReconcileOnceDrift(t *testing.T) {
	tests := []struct {
		name      string
		mode      DriftMode
		suspend   bool
		want      []string // webgoat versions after the reconcile
		corrected string   // the drift log's corrected attribute
		pending   PlanSummary
	}{
		{name: "corrected", mode: DriftCorrect, want: []string{"1.0"}, corrected: "true"},
		{name: "reported", mode: DriftReport, want: []string{"9.9"}, corrected: "false", pending: PlanSummary{Kept: 1, Drift: 1}},
		{name: "suspended", mode: DriftCorrect, suspend: true, want: []string{"9.9"}, corrected: "false", pending: PlanSummary{Update: 1, Drift: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newLoopEnv(t, tt.mode, nil)
			e.src.write(t, "c1", map[string]string{"apps.yaml": app("webgoat", "1.0")})
			e.once(t)
			adminWrite(t, e.store, spec.KindApplication, "webgoat", &spec.Application{Versions: []string{"9.9"}})
			if tt.suspend {
				e.r.Suspend()
			}
			p := e.once(t)
			if p.Summary.Drift != 1 {
				t.Fatalf("plan drift %+v", p.Summary)
			}
			if got := versions(t, e.store, "webgoat"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("webgoat versions %v, want %v", got, tt.want)
			}
			logged := e.logs.find("drift")
			if len(logged) != 1 || logged[0]["field"] != "spec.versions" || logged[0]["before"] != `["9.9"]` ||
				logged[0]["after"] != `["1.0"]` || logged[0]["corrected"] != tt.corrected || logged[0]["name"] != "webgoat" {
				t.Errorf("drift log %v", logged)
			}
			// Corrected drift is no longer present, and status says when it
			// was put back; reported drift is present, since the reconcile
			// that found it.
			st := e.r.Status()
			if st.PendingPlan != tt.pending || st.Suspended != tt.suspend {
				t.Errorf("status %+v", st)
			}
			if tt.corrected == "true" {
				if st.DriftCount != 0 || len(st.Corrected) != 1 || st.Corrected[0].Name != "webgoat" || st.CorrectedAt.IsZero() || !st.DriftSince.IsZero() {
					t.Errorf("corrected drift: status %+v", st)
				}
			} else if st.DriftCount != 1 || len(st.Drift) != 1 || st.Drift[0].Name != "webgoat" || st.DriftSince.IsZero() || len(st.Corrected) != 0 {
				t.Errorf("present drift: status %+v", st)
			}
		})
	}
}

func TestSuspendAppliesNothing(t *testing.T) {
	e := newLoopEnv(t, DriftCorrect, nil)
	e.src.write(t, "c1", map[string]string{"apps.yaml": app("webgoat", "1.0")})
	e.once(t)
	e.r.Suspend()
	e.src.write(t, "c2", map[string]string{"apps.yaml": app("webgoat", "1.0", "2.0") + "---\n" + app("juice-shop", "1")})
	p := e.once(t)
	if p.Summary.Create != 1 || p.Summary.Update != 1 {
		t.Errorf("suspended plan %+v", p.Summary)
	}
	if got := versions(t, e.store, "webgoat"); !reflect.DeepEqual(got, []string{"1.0"}) || resource(t, e.store, spec.KindApplication, "juice-shop") != nil {
		t.Errorf("suspended reconcile applied changes: webgoat %v", got)
	}
	cur, err := e.r.CurrentPlan(context.Background())
	if err != nil || !reflect.DeepEqual(cur, p) {
		t.Errorf("CurrentPlan = %+v, %v; want the pending plan", cur, err)
	}
	st := e.r.Status()
	if !st.Suspended || st.PendingPlan.Create != 1 || st.PendingPlan.Update != 1 {
		t.Errorf("status %+v", st)
	}
	// The admin API serves the status as JSON under these names.
	js, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(js, &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"source", "appliedRevision", "seenRevision", "lastAttempt", "lastResult", "driftCount", "driftMode", "suspended", "pendingPlan"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("status JSON lacks %q: %s", k, js)
		}
	}
	e.r.Resume()
	e.once(t)
	if got := versions(t, e.store, "webgoat"); !reflect.DeepEqual(got, []string{"1.0", "2.0"}) {
		t.Errorf("after resume webgoat %v", got)
	}
	if st := e.r.Status(); st.Suspended || st.PendingPlan != (PlanSummary{}) {
		t.Errorf("status after resume %+v", st)
	}
}

// A fetch that fails keeps the last good revision, whose drift is still
// corrected.
func TestFetchFailureStillCorrectsDrift(t *testing.T) {
	e := newLoopEnv(t, DriftCorrect, nil)
	if _, err := e.r.CurrentPlan(context.Background()); !errors.Is(err, ErrNoRevision) {
		t.Errorf("CurrentPlan before a load: %v", err)
	}
	e.src.write(t, "c1", map[string]string{"apps.yaml": app("webgoat", "1.0")})
	e.once(t)
	unreachable := errors.New("remote unreachable")
	e.src.set("c1", unreachable)
	adminDelete(t, e.store, spec.KindApplication, "webgoat")
	p, err := e.r.ReconcileOnce(context.Background())
	if !errors.Is(err, unreachable) {
		t.Fatalf("err = %v", err)
	}
	if p == nil || p.Summary.Create != 1 || p.Summary.Drift != 1 || resource(t, e.store, spec.KindApplication, "webgoat") == nil {
		t.Errorf("drift not corrected after a failed fetch: %+v", p)
	}
	if st := e.r.Status(); st.LastResult != OutcomeError || !strings.Contains(st.LastError, "remote unreachable") {
		t.Errorf("status %+v", st)
	}
}

// waitFor receives from ch or fails after a generous deadline.
func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

func runLoop(t *testing.T, r *Reconciler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := waitFor(t, done, "Run to return"); err != nil {
			t.Errorf("Run returned %v", err)
		}
	})
}

func TestRunAppliesNewRevisions(t *testing.T) {
	results := make(chan Result, 10)
	e := newLoopEnv(t, DriftCorrect, func(r Result) { results <- r })
	e.src.write(t, "c1", map[string]string{"apps.yaml": app("webgoat", "1.0")})
	runLoop(t, e.r)
	if res := waitFor(t, results, "first reconcile"); res.Outcome != OutcomeOK || !res.Applied || res.Summary.Create == 0 {
		t.Fatalf("first result %+v", res)
	}
	if err := e.r.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run: %v", err)
	}
	d := waitFor(t, e.clock.waits, "the interval wait")
	if d < 54*time.Second || d > 66*time.Second {
		t.Errorf("interval %v, want 1m ± 10%%", d)
	}

	e.src.write(t, "c2", map[string]string{"apps.yaml": app("webgoat", "1.0", "2.0")})
	e.clock.fire <- t0 // the interval ends
	if res := waitFor(t, results, "second reconcile"); res.Outcome != OutcomeOK || res.Summary.Update != 1 {
		t.Fatalf("second result %+v", res)
	}
	if got := versions(t, e.store, "webgoat"); !reflect.DeepEqual(got, []string{"1.0", "2.0"}) {
		t.Errorf("webgoat %v", got)
	}
	if st := e.r.Status(); st.SeenRevision != "c2" || st.Source != "dir:test" {
		t.Errorf("status %+v", st)
	}
}

func TestRunBacksOff(t *testing.T) {
	results := make(chan Result, 10)
	e := newLoopEnv(t, DriftCorrect, func(r Result) { results <- r })
	e.src.set("c1", errors.New("no route to host"))
	runLoop(t, e.r)
	// Backoff 1s doubling to 4s, then the interval once a fetch works.
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
		if res := waitFor(t, results, "a failed reconcile"); res.Outcome != OutcomeError {
			t.Fatalf("result %d: %+v", i, res)
		}
		if got := waitFor(t, e.clock.waits, "a backoff wait"); got != want {
			t.Errorf("wait %d = %v, want %v", i, got, want)
		}
		if i == 3 {
			e.src.write(t, "c1", map[string]string{"apps.yaml": app("webgoat", "1.0")})
		}
		e.clock.fire <- t0
	}
	if res := waitFor(t, results, "the recovering reconcile"); res.Outcome != OutcomeOK {
		t.Fatalf("result %+v", res)
	}
	if got := waitFor(t, e.clock.waits, "the interval wait"); got < 54*time.Second {
		t.Errorf("wait after recovery %v, want the interval", got)
	}
	if n := len(e.logs.find("reconcile failed")); n != 1 {
		t.Errorf("repeated error logged %d times", n)
	}
}

func TestTriggerCoalesces(t *testing.T) {
	results := make(chan Result, 10)
	e := newLoopEnv(t, DriftCorrect, func(r Result) { results <- r })
	e.src.write(t, "c1", map[string]string{"apps.yaml": app("webgoat", "1.0")})
	e.src.gate = make(chan struct{})
	e.src.entered = make(chan struct{}, 10)
	runLoop(t, e.r)

	waitFor(t, e.src.entered, "the first fetch")
	for range 10 {
		e.r.Trigger() // while a reconcile runs
	}
	e.src.gate <- struct{}{}
	waitFor(t, results, "first reconcile")

	waitFor(t, e.src.entered, "the triggered fetch")
	if n := len(e.r.trigger); n != 0 {
		t.Errorf("%d triggers still pending after the follow-up started, want them merged into it", n)
	}
	e.src.gate <- struct{}{}
	waitFor(t, results, "the triggered reconcile")
	if n := e.src.fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
	// Trigger never blocks, running or not.
	for range 3 {
		e.r.Trigger()
	}
}

func TestNextDelay(t *testing.T) {
	r := newReconciler(t, Config{Store: newStore(t), Interval: 100 * time.Second, Backoff: Backoff{Initial: 3 * time.Second, Max: 20 * time.Second}})
	for _, tt := range []struct {
		failures int
		want     time.Duration
	}{{1, 3 * time.Second}, {2, 6 * time.Second}, {3, 12 * time.Second}, {4, 20 * time.Second}, {50, 20 * time.Second}} {
		if got := r.nextDelay(tt.failures); got != tt.want {
			t.Errorf("after %d failures: %v, want %v", tt.failures, got, tt.want)
		}
	}
	lo, hi := time.Hour, time.Duration(0)
	for range 1000 {
		d := r.nextDelay(0)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 90*time.Second || hi > 110*time.Second || hi-lo < 5*time.Second {
		t.Errorf("interval ranged over [%v, %v], want spread within 100s ± 10%%", lo, hi)
	}
}

// TestReconcileChangeHoldsTheLock: a push's change of the source and its
// pass run under the lock every pass takes, so no tick reads the source
// half replaced and two pushes never interleave; a refused change is
// undone, an adopted one kept.
func TestReconcileChangeHoldsTheLock(t *testing.T) {
	e := newLoopEnv(t, DriftCorrect, nil)
	e.src.write(t, "c1", map[string]string{"apps.yaml": app("webgoat", "1.0")})
	e.once(t)
	tests := []struct {
		name    string
		files   map[string]string
		refused bool
	}{
		{"refused", map[string]string{"apps.yaml": app("webgoat", "1.0") + "  verions: [\"3.0\"]\n"}, true},
		{"adopted", map[string]string{"apps.yaml": app("webgoat", "1.0", "2.0")}, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			undone := false
			change := func() error {
				if e.r.runMu.TryLock() {
					e.r.runMu.Unlock()
					t.Error("the change ran without the lock a pass holds")
				}
				e.src.write(t, fmt.Sprintf("p%d", i), tc.files)
				return nil
			}
			_, err := e.r.ReconcileChange(context.Background(), change, func() error { undone = true; return nil })
			var refused *RefusedError
			if got := errors.As(err, &refused); got != tc.refused || undone != tc.refused {
				t.Errorf("err %v, undone %v; want refused and undone %v", err, undone, tc.refused)
			}
		})
	}
	if got := versions(t, e.store, "webgoat"); !reflect.DeepEqual(got, []string{"1.0", "2.0"}) {
		t.Errorf("webgoat versions %v, want [1.0 2.0]", got)
	}
}

// TestSharedStatus: with several daemons on one state, the one that
// reconciles shares each reconcile's status, and another daemon's Status
// reports it (status and reconcile --wait at any daemon), newer than its own.
func TestSharedStatus(t *testing.T) {
	for _, share := range []bool{true, false} {
		t.Run(fmt.Sprint("share ", share), func(t *testing.T) {
			e := newLoopEnv(t, DriftCorrect, nil)
			e.r.cfg.ShareStatus = share
			other := newReconciler(t, Config{Store: e.store, Source: e.src, ShareStatus: true, Clock: e.clock})
			e.src.write(t, "c1", map[string]string{"apps.yaml": app("webgoat", "1.0")})
			e.once(t)
			leader, got := e.r.Status(), other.Status()
			if share && (!got.LastAttempt.Equal(leader.LastAttempt) || got.LastResult != OutcomeOK || got.AppliedRevision != leader.AppliedRevision) {
				t.Errorf("the other daemon reports %+v, want the reconciling one's %+v", got, leader)
			}
			if !share && !got.LastAttempt.IsZero() {
				t.Errorf("nothing shared, yet the other daemon reports an attempt at %v", got.LastAttempt)
			}
		})
	}
}

// In report mode an apply leaves the drift it keeps in place: the totals
// it logs and audits count only what it changed, as its change records do.
func TestAppliedTotalsLeaveKeptDriftOut(t *testing.T) {
	trail := &audit.Memory{}
	e := &loopEnv{store: newStore(t), src: newDirSource(t), clock: newFakeClock(), logs: &logRecorder{}}
	e.r = newReconciler(t, Config{Store: e.store, Source: e.src, DriftMode: DriftReport, Clock: e.clock,
		Logger: slog.New(e.logs), Audit: trail})
	e.src.write(t, "c1", map[string]string{"apps.yaml": app("webgoat", "1.0")})
	e.once(t)
	adminWrite(t, e.store, spec.KindApplication, "webgoat", &spec.Application{Versions: []string{"9.9"}})
	e.src.write(t, "c2", map[string]string{"apps.yaml": app("webgoat", "1.0") + "---\n" + app("juice-shop", "1")})
	p := e.once(t)
	if p.Summary != (PlanSummary{Create: 1, Kept: 1, Drift: 1}) || !p.Updates[0].Kept {
		t.Fatalf("plan %+v", p)
	}
	if got := versions(t, e.store, "webgoat"); !reflect.DeepEqual(got, []string{"9.9"}) {
		t.Fatalf("report mode overwrote the drift: %v", got)
	}
	var totals []audit.Applied
	var made []audit.AppliedChange
	for _, ev := range trail.Events() {
		switch ev := ev.(type) {
		case audit.Applied:
			totals = append(totals, ev)
		case audit.AppliedChange:
			if ev.Revision == p.Revision {
				made = append(made, ev)
			}
		}
	}
	if len(made) != 1 || made[0].Kind != spec.KindApplication || made[0].Name != "juice-shop" || made[0].Action != "create" {
		t.Errorf("change records %+v, want the create of juice-shop", made)
	}
	// Named by its source revision too, as status names it.
	if n := len(totals); n != 2 || totals[1] != (audit.Applied{Revision: p.Revision, Source: e.r.Status().AppliedRevision, Create: 1}) {
		t.Errorf("audited totals %+v, want the second {Create: 1} of the source revision status shows: the kept update was not made", totals)
	}
	logged := e.logs.find("applied")
	if n := len(logged); n != 2 || logged[1]["create"] != "1" || logged[1]["update"] != "0" || logged[1]["delete"] != "0" {
		t.Errorf("applied logs %v, want the second to count 1 create, 0 updates", logged)
	}
}

// TestFolderRevisionThatDoesNotLoadIsSeen: a watched folder has no commit
// to name it, so a revision that loads is named by its content. One that
// does not load (a YAML syntax error) must still be named as seen, in the
// status and the history, as a git commit is, while the last good revision
// keeps running; and each new bad save is a new seen revision.
func TestFolderRevisionThatDoesNotLoadIsSeen(t *testing.T) {
	dir := t.TempDir()
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "apps.yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := newStore(t)
	r := newReconciler(t, Config{Store: s, Source: source.Dir{Path: dir}, Clock: newFakeClock()})
	write(app("webgoat", "1.0"))
	if _, err := r.ReconcileOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	good := r.Status()
	if good.SeenRevision == "" || good.SeenRevision != good.AppliedRevision {
		t.Fatalf("after a good revision: seen %q, applied %q, want both its content revision", good.SeenRevision, good.AppliedRevision)
	}

	var seen []string
	for _, bad := range []string{app("webgoat", "1.0", "2.0") + "  versions: [\n", app("webgoat", "3.0") + "  : :\n"} {
		write(bad)
		_, err := r.ReconcileOnce(context.Background())
		if !errors.Is(err, spec.ErrInvalid) {
			t.Fatalf("err = %v, want the revision refused", err)
		}
		st := r.Status()
		if st.SeenRevision == "" || st.SeenRevision == good.AppliedRevision || st.AppliedRevision != good.AppliedRevision ||
			st.LastResult != OutcomeRefused || !strings.Contains(st.LastError, "apps.yaml:") {
			t.Fatalf("after a revision that does not load: seen %q, applied %q (was %q), result %q, error %q;"+
				" want a seen revision of its own, the last good one applied and the error with its file",
				st.SeenRevision, st.AppliedRevision, good.AppliedRevision, st.LastResult, st.LastError)
		}
		if h := r.History()[0]; h.Seen != st.SeenRevision || h.Revision != good.AppliedRevision {
			t.Errorf("history: seen %q, revision %q; want %q and the last good %q", h.Seen, h.Revision, st.SeenRevision, good.AppliedRevision)
		}
		seen = append(seen, st.SeenRevision)
	}
	if seen[0] == seen[1] {
		t.Errorf("two different bad saves are both seen as %q", seen[0])
	}
	if got := versions(t, s, "webgoat"); !reflect.DeepEqual(got, []string{"1.0"}) {
		t.Errorf("webgoat versions %v, want the last good [1.0]", got)
	}
}

// TestReconcileChangeSuspended: a push to a suspended daemon applies
// nothing, so it must not answer with a plan as if it had (the CLI would
// print "Apply complete"); it changes neither the source nor the runtime,
// and applies once resumed and pushed again.
func TestReconcileChangeSuspended(t *testing.T) {
	e := newLoopEnv(t, DriftCorrect, nil)
	e.src.write(t, "c1", map[string]string{"apps.yaml": app("webgoat", "1.0")})
	e.once(t)
	before := e.r.Status()
	e.r.Suspend()
	changed := false
	push := func() error {
		changed = true
		e.src.write(t, "p1", map[string]string{"apps.yaml": app("webgoat", "1.0", "2.0")})
		return nil
	}
	p, err := e.r.ReconcileChange(context.Background(), push, func() error { return nil })
	if !errors.Is(err, ErrSuspended) || p != nil {
		t.Errorf("push while suspended = %+v, %v; want ErrSuspended and no plan", p, err)
	}
	if changed {
		t.Error("push while suspended replaced the source")
	}
	if got := versions(t, e.store, "webgoat"); !reflect.DeepEqual(got, []string{"1.0"}) {
		t.Errorf("webgoat versions %v after a push while suspended, want [1.0]", got)
	}
	if st := e.r.Status(); st.AppliedRevision != before.AppliedRevision || st.LastAttempt != before.LastAttempt {
		t.Errorf("status after a refused push %+v, want it unchanged from %+v", st, before)
	}
	e.r.Resume()
	p, err = e.r.ReconcileChange(context.Background(), push, func() error { return nil })
	if err != nil || p == nil || p.Made().Update != 1 {
		t.Fatalf("push after resume = %+v, %v; want one update applied", p, err)
	}
	if got := versions(t, e.store, "webgoat"); !reflect.DeepEqual(got, []string{"1.0", "2.0"}) {
		t.Errorf("webgoat versions %v after resume and push, want [1.0 2.0]", got)
	}
}
