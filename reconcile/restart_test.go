package reconcile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/idrecon/idrecon/reconcile/source"
	"github.com/idrecon/idrecon/spec"
)

// Report mode promises that a drifted resource whose spec changed gets the
// new spec. After a restart the first revision cannot tell spec change from
// drift for a resource the admin API wrote, so it keeps it; but a later
// commit that does change that resource in git must then be applied, not
// kept forever.
func TestReportModeAppliesSpecChangeAfterRestart(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	role := func(perms ...string) *spec.Document {
		return doc(spec.KindRole, "Release Manager", &spec.Role{Permissions: perms})
	}
	first := newReconciler(t, Config{Store: s, DriftMode: DriftReport})
	if _, err := first.Apply(ctx, newSet("r1", appDoc(), role("version.create"))); err != nil {
		t.Fatal(err)
	}
	adminWrite(t, s, spec.KindRole, "Release Manager", &spec.Role{Permissions: []string{"*"}})

	// Restart: the same revision is kept as drift, as before.
	r := newReconciler(t, Config{Store: s, DriftMode: DriftReport})
	if _, err := r.Apply(ctx, newSet("r1", appDoc(), role("version.create"))); err != nil {
		t.Fatal(err)
	}
	if got := resource(t, s, spec.KindRole, "Release Manager").Spec.(*spec.Role).Permissions; !reflect.DeepEqual(got, []string{"*"}) {
		t.Fatalf("report mode overwrote the drifted role: %v", got)
	}

	// A commit that changes the role in git: a spec change, which wins.
	next := newSet("r2", appDoc(), role("version.create", "report.view"))
	planned, err := r.Plan(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	applied, err := r.Apply(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(planned, applied) {
		t.Errorf("plan and apply differ:\n plan  %+v\n apply %+v", planned, applied)
	}
	if got := resource(t, s, spec.KindRole, "Release Manager").Spec.(*spec.Role).Permissions; !reflect.DeepEqual(got, []string{"version.create", "report.view"}) {
		t.Fatalf("the role changed in git was kept as drift: permissions %v, plan %+v", got, applied.Updates)
	}
}

// TestGuardCountsOnlyAnAppliedSwitchOff after a restart: the SCIM
// provisioning an applied revision enabled, switched off (or just edited)
// through the admin API, must not be deleted by the first revision a
// restarted daemon sees without it. The process forgot what it applied;
// the guard must not forget with it.
func TestGuardSurvivesRestart(t *testing.T) {
	for _, enabled := range []bool{true, false} {
		ctx := context.Background()
		s := newStore(t)
		first := newReconciler(t, Config{Store: s})
		if _, err := first.Apply(ctx, newSet("r1", appDoc(), scimDoc(true))); err != nil {
			t.Fatal(err)
		}
		adminWrite(t, s, spec.KindScimProvisioning, "entra", &spec.ScimProvisioning{Enabled: enabled})

		r := newReconciler(t, Config{Store: s}) // restarted
		p, err := r.Plan(ctx, newSet("r2", appDoc()))
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Apply(ctx, newSet("r2", appDoc()))
		if _, ok := errors.AsType[*UnsafeError](err); !ok || p.Refused == "" {
			t.Errorf("admin edit enabled=%v: Apply = %v, plan refused %q; want a refusal", enabled, err, p.Refused)
		}
		if resource(t, s, spec.KindScimProvisioning, "entra") == nil {
			t.Errorf("admin edit enabled=%v: the restarted daemon deleted ScimProvisioning/entra", enabled)
		}
	}
}

// A commit whose spec is larger than the limit is as invalid from git as
// from a folder (where spec.Load refuses it): the revision is refused, the
// status says InvalidRevision, and the loop waits for a new commit at the
// interval instead of retrying the same commit with backoff as if the
// network had failed.
func TestOversizedGitRevisionIsRefused(t *testing.T) {
	repoDir := t.TempDir()
	repo, err := git.PlainInit(repoDir, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repoDir, "app.yaml"), []byte(app("webgoat", "1.0")+strings.Repeat("#", 4096)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "Test", Email: "test@example.com", When: time.Unix(1_700_000_000, 0)}
	if _, err := wt.Commit("too big", &git.CommitOptions{Author: sig}); err != nil {
		t.Fatal(err)
	}
	g, err := source.NewGit(source.GitOptions{URL: "file://" + repoDir, CacheDir: t.TempDir(), MaxBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	r := newReconciler(t, Config{Store: newStore(t), Source: g})
	_, res := r.reconcile(context.Background())
	if _, ok := errors.AsType[*spec.LimitError](res.Err); !ok {
		t.Fatalf("err = %v, want the *spec.LimitError", res.Err)
	}
	if st := r.Status(); res.Outcome != OutcomeRefused || st.Stalled != "InvalidRevision" {
		t.Fatalf("outcome %q, stalled %q (err %v); want %q, InvalidRevision", res.Outcome, st.Stalled, res.Err, OutcomeRefused)
	}
}
