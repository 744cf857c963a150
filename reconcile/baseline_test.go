package reconcile

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/durable"
	"github.com/idrecon/idrecon/spec"
)

// openDurable opens the store a daemon keeps in dir, loaded with what the
// file holds; close undoes it, as a daemon's shutdown does.
func openDurable(t testing.TB, dir string) (s *store.Store, close func()) {
	t.Helper()
	db, err := durable.Open(durable.Path(dir), durable.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err = store.New(store.Options{Journal: db})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	if _, err := db.LoadInto(s); err != nil {
		s.Close()
		db.Close()
		t.Fatal(err)
	}
	closed := false
	close = func() {
		if !closed {
			closed = true
			s.Close()
			db.Close()
		}
	}
	t.Cleanup(close)
	return s, close
}

func roleDoc(perms ...string) *spec.Document {
	return doc(spec.KindRole, "Release Manager", &spec.Role{Permissions: perms})
}

// findChange returns the plan's change of kind/name and the list it is in.
func findChange(p *Plan, kind, name string) (Change, string) {
	for _, l := range []struct {
		name string
		cs   []Change
	}{{"create", p.Creates}, {"update", p.Updates}, {"delete", p.Deletes}} {
		for _, c := range l.cs {
			if c.Kind == kind && c.Name == name {
				return c, l.name
			}
		}
	}
	return Change{}, ""
}

// The baseline (what the last apply wrote) is what tells drift from a spec
// change. A daemon restarted on its durable state must tell the same as
// before the restart: a resource the last apply created and that was then
// deleted or edited outside git is drift, kept in report mode and put back
// in correct mode, and plan says so before apply does it.
func TestBaselineSurvivesRestart(t *testing.T) {
	for _, tt := range []struct {
		name    string
		outside func(t testing.TB, s *store.Store)
		list    string   // where the plan lists the role
		kept    []string // the role's permissions after a report-mode apply; nil: deleted
	}{
		{
			name:    "deleted",
			outside: func(t testing.TB, s *store.Store) { adminDelete(t, s, spec.KindRole, "Release Manager") },
			list:    "create",
		},
		{
			name: "edited",
			outside: func(t testing.TB, s *store.Store) {
				adminWrite(t, s, spec.KindRole, "Release Manager", &spec.Role{Permissions: []string{"*"}})
			},
			list: "update",
			kept: []string{"*"},
		},
	} {
		for _, mode := range []DriftMode{DriftReport, DriftCorrect} {
			t.Run(tt.name+"/"+string(mode), func(t *testing.T) {
				ctx := context.Background()
				dir := t.TempDir()
				set := func() *spec.Set { return newSet("r1", appDoc(), roleDoc("version.create")) }

				s, stop := openDurable(t, dir)
				first := newReconciler(t, Config{Store: s, DriftMode: mode})
				if _, err := first.Apply(ctx, set()); err != nil {
					t.Fatal(err)
				}
				tt.outside(t, s)
				stop()

				s, _ = openDurable(t, dir) // restarted
				r := newReconciler(t, Config{Store: s, DriftMode: mode})
				planned, err := r.Plan(ctx, set())
				if err != nil {
					t.Fatal(err)
				}
				c, list := findChange(planned, spec.KindRole, "Release Manager")
				if list != tt.list || !c.Drift || c.Kept != (mode == DriftReport) {
					t.Fatalf("plan after restart lists the role as %q %+v; want %s with Drift, Kept %v", list, c, tt.list, mode == DriftReport)
				}
				applied, err := r.Apply(ctx, set())
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(planned, applied) {
					t.Errorf("plan and apply differ:\n plan  %+v\n apply %+v", planned, applied)
				}
				res := resource(t, s, spec.KindRole, "Release Manager")
				switch {
				case mode == DriftCorrect:
					if res == nil || !reflect.DeepEqual(res.Spec.(*spec.Role).Permissions, []string{"version.create"}) {
						t.Errorf("correct mode did not put the role back: %+v", res)
					}
				case tt.kept == nil:
					if res != nil {
						t.Errorf("report mode re-created the role deleted outside git: %+v", res)
					}
				case res == nil || !reflect.DeepEqual(res.Spec.(*spec.Role).Permissions, tt.kept):
					t.Errorf("report mode overwrote the role edited outside git: %+v", res)
				}
			})
		}
	}
}

// A commit that changes a resource deleted outside git is a spec change,
// after a restart as before it: the resource is created, and still named
// drift.
func TestBaselineSpecChangeWinsAfterRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, stop := openDurable(t, dir)
	first := newReconciler(t, Config{Store: s, DriftMode: DriftReport})
	if _, err := first.Apply(ctx, newSet("r1", appDoc(), roleDoc("version.create"))); err != nil {
		t.Fatal(err)
	}
	adminDelete(t, s, spec.KindRole, "Release Manager")
	stop()

	s, _ = openDurable(t, dir)
	r := newReconciler(t, Config{Store: s, DriftMode: DriftReport})
	// The same revision first: kept, and the baseline stays the first one.
	if _, err := r.Apply(ctx, newSet("r1", appDoc(), roleDoc("version.create"))); err != nil {
		t.Fatal(err)
	}
	p, err := r.Apply(ctx, newSet("r2", appDoc(), roleDoc("version.create", "report.view")))
	if err != nil {
		t.Fatal(err)
	}
	if c, list := findChange(p, spec.KindRole, "Release Manager"); list != "create" || !c.Drift || c.Kept {
		t.Errorf("role changed in git lists as %q %+v; want a create with Drift, not kept", list, c)
	}
	if resource(t, s, spec.KindRole, "Release Manager") == nil {
		t.Error("the role changed in git was not created")
	}
}

// The baseline record is written with the apply, in its transaction: a
// failed apply leaves the record as the last good apply wrote it.
func TestBaselineIsWrittenWithTheApply(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	r := newReconciler(t, Config{Store: s})
	if _, err := r.Apply(ctx, newSet("r1", appDoc(), roleDoc("version.create"))); err != nil {
		t.Fatal(err)
	}
	good, err := s.Read().MetaValue(store.MetaAppliedBaseline)
	if err != nil || good == "" {
		t.Fatalf("no baseline record after apply: %q, %v", good, err)
	}
	boom := errors.New("disk on fire")
	failing := newReconciler(t, Config{Store: failAfter{s, boom}})
	if _, err := failing.Apply(ctx, newSet("r2", appDoc())); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	if got, _ := s.Read().MetaValue(store.MetaAppliedBaseline); got != good {
		t.Error("a failed apply changed the baseline record")
	}
	if _, err := r.Apply(ctx, newSet("r2", appDoc())); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Read().MetaValue(store.MetaAppliedBaseline); got == good {
		t.Error("an apply that deleted a resource left the baseline record as it was")
	}
}

// A damaged or stale baseline record must not stop reconciling: the
// reconciler plans as without one (a deleted resource is a plain create),
// warns once for damage, and the next apply writes a good record.
func TestDamagedBaselineFallsBack(t *testing.T) {
	for _, tt := range []struct {
		name   string
		damage func(good string) (key, value string)
		warns  int
	}{
		{"garbage", func(string) (string, string) { return store.MetaAppliedBaseline, "not base64 !" }, 1},
		{"empty", func(string) (string, string) { return store.MetaAppliedBaseline, "" }, 1},
		{"truncated", func(good string) (string, string) { return store.MetaAppliedBaseline, good[:len(good)-5] }, 1},
		{"unknown version", func(string) (string, string) { return store.MetaAppliedBaseline, "Bw" }, 1},
		// An apply by a version that did not record the baseline.
		{"stale", func(string) (string, string) { return store.MetaAppliedRevision, "r0" }, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := newStore(t)
			set := func() *spec.Set { return newSet("r1", appDoc(), roleDoc("version.create")) }
			first := newReconciler(t, Config{Store: s, DriftMode: DriftReport})
			if _, err := first.Apply(ctx, set()); err != nil {
				t.Fatal(err)
			}
			good, _ := s.Read().MetaValue(store.MetaAppliedBaseline)
			adminDelete(t, s, spec.KindRole, "Release Manager")
			key, value := tt.damage(good)
			if err := s.Update(ctx, func(txn *store.Txn) error {
				return txn.Insert(store.TableMeta, &store.Meta{Key: key, Value: value})
			}); err != nil {
				t.Fatal(err)
			}

			// The same store object, a new Reconciler: a restart as far
			// as the baseline goes.
			logs := &logRecorder{}
			r := newReconciler(t, Config{Store: s, DriftMode: DriftReport, Logger: slog.New(logs)})
			for range 2 {
				p, err := r.Plan(ctx, set())
				if err != nil {
					t.Fatal(err)
				}
				if c, list := findChange(p, spec.KindRole, "Release Manager"); list != "create" || c.Drift || c.Kept {
					t.Fatalf("plan lists the role as %q %+v; want a plain create", list, c)
				}
			}
			if _, err := r.Apply(ctx, set()); err != nil {
				t.Fatal(err)
			}
			if got := len(logs.find(baselineWarning)); got != tt.warns {
				t.Errorf("%d warnings, want %d:\n%s", got, tt.warns, logs.all())
			}

			// The apply wrote a good record: the next restart sees drift.
			adminDelete(t, s, spec.KindRole, "Release Manager")
			again := newReconciler(t, Config{Store: s, DriftMode: DriftReport})
			p, err := again.Plan(ctx, set())
			if err != nil {
				t.Fatal(err)
			}
			if c, _ := findChange(p, spec.KindRole, "Release Manager"); !c.Drift || !c.Kept {
				t.Errorf("after the apply that replaced the damaged record: %+v, want kept drift", c)
			}
		})
	}
}

func TestBaselineEncoding(t *testing.T) {
	h := func(s string) [sha256.Size]byte { return sha256.Sum256([]byte(s)) }
	for _, tt := range []struct {
		name     string
		revision string
		base     map[spec.Ref][sha256.Size]byte
	}{
		{"empty", "main@sha1:abc", map[spec.Ref][sha256.Size]byte{}},
		{"no revision", "", map[spec.Ref][sha256.Size]byte{{Kind: "Role", Name: "a"}: h("a")}},
		{"awkward names", "r1", map[spec.Ref][sha256.Size]byte{
			{Kind: "Role", Name: "Release Manager"}:           h("1"),
			{Kind: "Role", Name: "tab\there\nnewline"}:        h("2"),
			{Kind: "Role", Name: "ünïcödé"}:                   h("3"),
			{Kind: "Application", Name: "webgoat"}:            h("4"),
			{Kind: "AccessAssignment", Name: "x"}:             h("5"),
			{Kind: "AccessAssignment", Name: ""}:              h("6"),
			{Kind: "Gateway", Name: strings.Repeat("g", 300)}: h("7"),
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			enc := encodeBaseline(tt.revision, tt.base)
			for range 5 {
				if again := encodeBaseline(tt.revision, tt.base); again != enc {
					t.Fatal("encoding is not deterministic")
				}
			}
			rev, got, err := decodeBaseline(enc)
			if err != nil {
				t.Fatal(err)
			}
			if rev != tt.revision || got == nil || !reflect.DeepEqual(got, tt.base) {
				t.Errorf("round trip: %q %v, want %q %v", rev, got, tt.revision, tt.base)
			}
			for n := range len(enc) {
				if _, _, err := decodeBaseline(enc[:n]); err == nil {
					t.Errorf("the first %d of %d bytes decode without error", n, len(enc))
				}
			}
		})
	}
}

// The record must stay well within etcd's request limit for specs of
// thousands of resources.
// TestBaselineRecordSize: the record of a large spec stays within what
// one store write may hold (etcd refuses a request past about 1.5 MB), and
// one past maxBaselineBytes is not written: the apply succeeds, an older
// record goes (it would describe another apply), the daemon warns once,
// and a restart plans as before the record existed.
func TestBaselineRecordSize(t *testing.T) {
	base := map[spec.Ref][sha256.Size]byte{}
	kinds := []string{spec.KindRole, spec.KindApplication, spec.KindAccessAssignment}
	for i := range 5000 {
		name := fmt.Sprintf("team-%05d-release-managers", i)
		base[spec.Ref{Kind: kinds[i%len(kinds)], Name: name}] = sha256.Sum256([]byte(name))
	}
	enc := encodeBaseline("main@sha1:0123456789abcdef0123456789abcdef01234567", base)
	t.Logf("%d resources: %d bytes, %.1f per resource", len(base), len(enc), float64(len(enc))/float64(len(base)))
	if len(enc) > maxBaselineBytes {
		t.Errorf("the baseline of %d resources takes %d bytes, over the %d written", len(base), len(enc), maxBaselineBytes)
	}

	ctx := context.Background()
	s := newStore(t)
	logs := &logRecorder{}
	r := newReconciler(t, Config{Store: s, DriftMode: DriftReport, Logger: slog.New(logs)})
	if _, err := r.Apply(ctx, newSet("r1", appDoc(), roleDoc("version.create"))); err != nil {
		t.Fatal(err)
	}
	if rec, _ := s.Read().MetaValue(store.MetaAppliedBaseline); rec == "" {
		t.Fatal("no baseline record after the first apply")
	}
	defer func(was int) { maxBaselineBytes = was }(maxBaselineBytes)
	maxBaselineBytes = 10
	for range 2 {
		if _, err := r.Apply(ctx, newSet("r2", appDoc(), roleDoc("version.create", "version.delete"))); err != nil {
			t.Fatalf("apply with a baseline too large to record: %v", err)
		}
	}
	if rec, _ := s.Read().MetaValue(store.MetaAppliedBaseline); rec != "" {
		t.Errorf("the record of the earlier apply stayed: %q", rec)
	}
	if got := len(logs.find(baselineTooLarge)); got != 1 {
		t.Errorf("%d warnings, want 1:\n%s", got, logs.all())
	}
	adminDelete(t, s, spec.KindRole, "Release Manager")
	again := newReconciler(t, Config{Store: s, DriftMode: DriftReport})
	p, err := again.Plan(ctx, newSet("r2", appDoc(), roleDoc("version.create", "version.delete")))
	if err != nil {
		t.Fatal(err)
	}
	if c, list := findChange(p, spec.KindRole, "Release Manager"); list != "create" || c.Drift {
		t.Errorf("with no record the role is %q %+v; want a plain create, as before records", list, c)
	}
}

// Plan and apply tell the same after a restart as without one: the drift
// TestDrift makes (an edit, a delete, a resource created outside git) in
// each mode, with the same revision and with a spec change. The restart
// is a new Reconciler on the same store object.
func TestDriftIsTheSameAfterRestart(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []DriftMode{DriftCorrect, DriftReport} {
		for _, next := range []func() *spec.Set{specA, specB} {
			t.Run(string(mode)+"/"+next().Revision, func(t *testing.T) {
				run := func(restart bool) (planned, applied *Plan, after []*store.Resource) {
					t.Helper()
					s := newStore(t)
					r := newReconciler(t, Config{Store: s, DriftMode: mode})
					applyAThenDrift(t, r, s)
					if restart {
						r = newReconciler(t, Config{Store: s, DriftMode: mode})
					}
					planned, err := r.Plan(ctx, next())
					if err != nil {
						t.Fatal(err)
					}
					if applied, err = r.Apply(ctx, next()); err != nil {
						t.Fatal(err)
					}
					after, err = s.Read().Resources("")
					if err != nil {
						t.Fatal(err)
					}
					return planned, applied, after
				}
				wantPlan, wantApplied, wantAfter := run(false)
				plan, applied, after := run(true)
				if !reflect.DeepEqual(plan, wantPlan) || !reflect.DeepEqual(applied, wantApplied) {
					t.Errorf("after a restart:\n plan  %+v\n apply %+v\nwithout one:\n plan  %+v\n apply %+v", plan, applied, wantPlan, wantApplied)
				}
				if !reflect.DeepEqual(after, wantAfter) {
					t.Errorf("after a restart the apply left\n %+v\nwithout one\n %+v", after, wantAfter)
				}
			})
		}
	}
}

// Daemons that share the state (etcd) take turns applying. One that leads
// again after another applied must plan against the other's baseline, the
// one the state records, not the one its own last apply left in memory:
// otherwise a commit changing what the other applied reads as drift, and a
// resource the other created and an admin then deleted as a plain create.
func TestBaselineOfAnotherDaemonsApply(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	a := newReconciler(t, Config{Store: s, DriftMode: DriftReport})
	b := newReconciler(t, Config{Store: s, DriftMode: DriftReport})
	if _, err := a.Apply(ctx, newSet("r1", appDoc(), roleDoc("version.create"))); err != nil {
		t.Fatal(err)
	}
	other := doc(spec.KindRole, "Auditor", &spec.Role{Permissions: []string{"report.view"}})
	if _, err := b.Apply(ctx, newSet("r2", appDoc(), roleDoc("version.create", "report.view"), other)); err != nil {
		t.Fatal(err)
	}

	p, err := a.Plan(ctx, newSet("r3", appDoc(), roleDoc("version.create", "report.view", "version.delete"), other))
	if err != nil {
		t.Fatal(err)
	}
	if c, list := findChange(p, spec.KindRole, "Release Manager"); list != "update" || c.Drift {
		t.Errorf("a commit changing what the other daemon applied lists as %q %+v; want an update, no drift", list, c)
	}

	adminDelete(t, s, spec.KindRole, "Auditor")
	p, err = a.Plan(ctx, newSet("r2", appDoc(), roleDoc("version.create", "report.view"), other))
	if err != nil {
		t.Fatal(err)
	}
	if c, list := findChange(p, spec.KindRole, "Auditor"); list != "create" || !c.Drift || !c.Kept {
		t.Errorf("what the other daemon created, deleted outside git, lists as %q %+v; want kept drift", list, c)
	}
}
