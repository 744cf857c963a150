package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// A resource created outside git that a later commit declares is a spec
// change: the applied revision's baseline lists every document it held, so
// a name it lacks was added in git. Report mode keeps drift only where the
// spec did not change; a commit that declares, say, an assignment an admin
// made with the role Administrator as one with the role Developer must
// apply it, and plan must say so, not keep Administrator forever.
func TestReportModeAppliesWhatGitNowDeclares(t *testing.T) {
	ctx := context.Background()
	declared := func() *spec.Set {
		a := specA()
		return newSet("rev-declared", append(a.Docs, doc(spec.KindAccessAssignment, "backdoor", &spec.AccessAssignment{
			Subject: spec.Subject{User: "mallory@contoso.com"}, Roles: []string{"Developer"},
		}))...)
	}
	for _, tt := range []struct {
		name    string
		mode    DriftMode
		restart bool
	}{
		{"report mode", DriftReport, false},
		{"report mode, restarted", DriftReport, true},
		{"correct mode", DriftCorrect, false},
		{"correct mode, restarted", DriftCorrect, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			r := newReconciler(t, Config{Store: s, DriftMode: tt.mode})
			applyAThenDrift(t, r, s)
			// A reconcile of the same revision, which reports the
			// assignment (and in correct mode removes it), before the
			// admin makes it again.
			if _, err := r.Apply(ctx, specA()); err != nil {
				t.Fatal(err)
			}
			adminWrite(t, s, spec.KindAccessAssignment, "backdoor", &spec.AccessAssignment{
				Subject: spec.Subject{User: "mallory@contoso.com"}, Roles: []string{"Administrator"},
			})
			if tt.restart {
				r = newReconciler(t, Config{Store: s, DriftMode: tt.mode})
			}
			planned, err := r.Plan(ctx, declared())
			if err != nil {
				t.Fatal(err)
			}
			if c, list := findChange(planned, spec.KindAccessAssignment, "backdoor"); list != "update" || !c.Drift || c.Kept {
				t.Errorf("the assignment git now declares plans as %q %+v; want an update over drift, not kept", list, c)
			}
			applied, err := r.Apply(ctx, declared())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(planned, applied) {
				t.Errorf("plan and apply differ:\n plan  %+v\n apply %+v", planned, applied)
			}
			if got := resource(t, s, spec.KindAccessAssignment, "backdoor").Spec.(*spec.AccessAssignment).Roles; !reflect.DeepEqual(got, []string{"Developer"}) {
				t.Errorf("after the apply the assignment grants %v, want what git declares, [Developer]", got)
			}
			p, err := r.Plan(ctx, declared())
			if err != nil {
				t.Fatal(err)
			}
			if c, list := findChange(p, spec.KindAccessAssignment, "backdoor"); list != "" {
				t.Errorf("after the apply the assignment still plans as %q %+v", list, c)
			}
		})
	}
}

// Only one ScimProvisioning and one SamlServiceProvider may exist, and the
// runtime finds each by kind, not by name: renaming one that stays enabled
// swaps it in one transaction, and Entra is never cut off. The guard must
// not refuse that: the way out its refusal names (switch it off, then
// delete it) is the very cut-off it exists to prevent. A rename that
// leaves the new one switched off does cut Entra off, and stays refused.
func TestGuardLetsAnEnabledSingletonBeRenamed(t *testing.T) {
	ctx := context.Background()
	renamed := func(d *spec.Document, name string) *spec.Document {
		c := *d
		c.Metadata.Name = name
		return &c
	}
	for _, kind := range []struct {
		name string
		doc  func(enabled bool) *spec.Document
	}{
		{spec.KindScimProvisioning, scimDoc},
		{spec.KindSamlServiceProvider, samlDoc},
	} {
		for _, tt := range []struct {
			name    string
			next    *spec.Document // what replaces kind/entra; nil: nothing
			mode    DriftMode
			refused bool
		}{
			{name: "renamed, enabled", next: renamed(kind.doc(true), "main")},
			{name: "renamed, enabled, report mode", next: renamed(kind.doc(true), "main"), mode: DriftReport},
			{name: "renamed, switched off", next: renamed(kind.doc(false), "main"), refused: true},
			{name: "deleted", refused: true},
		} {
			t.Run(kind.name+"/"+tt.name, func(t *testing.T) {
				s := newStore(t)
				r := newReconciler(t, Config{Store: s, DriftMode: tt.mode})
				if _, err := r.Apply(ctx, newSet("r1", appDoc(), kind.doc(true))); err != nil {
					t.Fatal(err)
				}
				docs := []*spec.Document{appDoc()}
				if tt.next != nil {
					docs = append(docs, tt.next)
				}
				p, err := r.Plan(ctx, newSet("r2", docs...))
				if err != nil {
					t.Fatal(err)
				}
				_, err = r.Apply(ctx, newSet("r2", docs...))
				var unsafe *UnsafeError
				if refused := errors.As(err, &unsafe); refused != tt.refused || (p.Refused != "") != tt.refused {
					t.Fatalf("plan refused %q, apply %v; want refused %v", p.Refused, err, tt.refused)
				}
				if tt.refused {
					if resource(t, s, kind.name, "entra") == nil {
						t.Error("the refused revision deleted it")
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if resource(t, s, kind.name, "entra") != nil || resource(t, s, kind.name, "main") == nil {
					t.Errorf("after the rename: entra %v, main %v", resource(t, s, kind.name, "entra"), resource(t, s, kind.name, "main"))
				}
			})
		}
	}
}

// failingStore refuses every write while fail is set, as a journal that
// lost its disk or its etcd quorum does.
type failingStore struct {
	*store.Store
	fail atomic.Bool
}

func (f *failingStore) Update(ctx context.Context, fn func(*store.Txn) error) error {
	if f.fail.Load() {
		return errors.New("journal unavailable")
	}
	return f.Store.Update(ctx, fn)
}

// When an apply fails nothing of its plan was made: status must say what
// is pending and which drift is present now, as after a suspended pass,
// not what the last successful apply left (nothing pending, no drift).
func TestStatusAfterAFailedApply(t *testing.T) {
	for _, tt := range []struct {
		name    string
		mode    DriftMode
		pending PlanSummary
	}{
		{"correct mode", DriftCorrect, PlanSummary{Update: 2, Drift: 1}},
		{"report mode", DriftReport, PlanSummary{Update: 2, Drift: 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := &failingStore{Store: newStore(t)}
			src := newDirSource(t)
			r := newReconciler(t, Config{Store: st, Source: src, DriftMode: tt.mode, Logger: slog.New(slog.DiscardHandler)})
			src.write(t, "c1", map[string]string{"apps.yaml": app("webgoat", "1.0") + "---\n" + app("payments", "1.0")})
			if _, err := r.ReconcileOnce(t.Context()); err != nil {
				t.Fatal(err)
			}
			adminWrite(t, st.Store, spec.KindApplication, "payments", &spec.Application{Versions: []string{"1.0", "9.9"}})
			src.write(t, "c2", map[string]string{"apps.yaml": app("webgoat", "1.0", "2.0") + "---\n" + app("payments", "1.0", "1.1")})
			st.fail.Store(true)
			if _, err := r.ReconcileOnce(t.Context()); err == nil {
				t.Fatal("the apply did not fail")
			}
			s := r.Status()
			if s.LastResult != OutcomeError {
				t.Fatalf("status %+v, want an error", s)
			}
			if s.PendingPlan != tt.pending {
				t.Errorf("pending plan %+v after the apply failed, want %+v", s.PendingPlan, tt.pending)
			}
			if s.DriftCount != 1 || len(s.Drift) != 1 || s.Drift[0].Name != "payments" {
				t.Errorf("drift %d %+v after the apply failed, want payments", s.DriftCount, s.Drift)
			}

			st.fail.Store(false)
			if _, err := r.ReconcileOnce(t.Context()); err != nil {
				t.Fatal(err)
			}
			if s := r.Status(); s.PendingPlan != (PlanSummary{}) || s.DriftCount != 0 {
				t.Errorf("after the apply succeeded: pending %+v, drift %d", s.PendingPlan, s.DriftCount)
			}
		})
	}
}
