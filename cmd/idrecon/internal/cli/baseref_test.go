package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// baseRepo is a git repository made in a test, its spec in spec/.
type baseRepo struct {
	t       *testing.T
	repo    *git.Repository
	specDir string
	when    time.Time
}

func newBaseRepo(t *testing.T) *baseRepo {
	t.Helper()
	dir := t.TempDir()
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	specDir := filepath.Join(dir, "spec")
	if err := os.MkdirAll(specDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &baseRepo{t: t, repo: repo, specDir: specDir, when: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// write puts body into spec/apps.yaml, in the working tree only.
func (r *baseRepo) write(body string) {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.specDir, "apps.yaml"), []byte(body), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// commit writes body and commits it, returning the commit.
func (r *baseRepo) commit(body, msg string) plumbing.Hash {
	r.t.Helper()
	r.write(body)
	wt, err := r.repo.Worktree()
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := wt.Add("spec/apps.yaml"); err != nil {
		r.t.Fatal(err)
	}
	r.when = r.when.Add(time.Minute)
	h, err := wt.Commit(msg, &git.CommitOptions{Author: &object.Signature{Name: "t", Email: "t@example.com", When: r.when}})
	if err != nil {
		r.t.Fatal(err)
	}
	return h
}

func appYAML(versions string) string {
	return "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: webgoat\nspec:\n  versions: " + versions + "\n"
}

const brokenYAML = "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: webgoat\nspec:\n  verions: [\"1.0\"]\n"

// TestPlanBaseRefThatDoesNotLoad: a pull request that fixes a broken main
// is planned against what a daemon following main still serves, the newest
// ancestor of the base whose spec loads, and says so in one line naming
// both commits and why the base did not load; with no such ancestor, it is
// planned against an empty state, and says that.
func TestPlanBaseRefThatDoesNotLoad(t *testing.T) {
	t.Run("an ancestor loads", func(t *testing.T) {
		r := newBaseRepo(t)
		good := r.commit(appYAML(`["1.0"]`), "good")
		broken := r.commit(brokenYAML, "broken")
		r.commit(brokenYAML+"# still broken\n", "still broken")
		r.write(appYAML(`["1.0", "2.0"]`)) // the fix
		code, out, errs := run(t, nil, "plan", r.specDir, "--base-ref", "HEAD")
		if code != 2 || !strings.Contains(out, "~ Application/webgoat") || !strings.Contains(out, "Plan: 0 to create, 1 to update, 0 to delete.") {
			t.Fatalf("exit %d, want 2 with webgoat updated\nstdout:\n%s\nstderr:\n%s", code, out, errs)
		}
		head, _ := r.repo.Head()
		lines := strings.Split(strings.TrimSuffix(errs, "\n"), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], short(head.Hash().String())) || !strings.Contains(lines[0], short(good.String())) ||
			!strings.Contains(lines[0], "verions") || strings.Contains(lines[0], short(broken.String())) {
			t.Errorf("stderr is not one line naming HEAD %s, the good ancestor %s and why HEAD did not load:\n%s", short(head.Hash().String()), short(good.String()), errs)
		}
		// The same with JSON: the note is among the plan's warnings.
		code, out, _ = run(t, nil, "plan", r.specDir, "--base-ref", "HEAD", "--output", "json")
		if code != 2 || !strings.Contains(out, short(good.String())) {
			t.Errorf("--output json: exit %d, want 2 with the note in warnings:\n%s", code, out)
		}
	})
	t.Run("no ancestor loads", func(t *testing.T) {
		r := newBaseRepo(t)
		r.commit(brokenYAML, "broken from the start")
		r.write(appYAML(`["1.0"]`))
		code, out, errs := run(t, nil, "plan", r.specDir, "--base-ref", "HEAD")
		if code != 2 || !strings.Contains(out, "+ Application/webgoat") || !strings.Contains(out, "Plan: 1 to create, 0 to update, 0 to delete.") {
			t.Fatalf("exit %d, want 2 with webgoat created\nstdout:\n%s\nstderr:\n%s", code, out, errs)
		}
		lines := strings.Split(strings.TrimSuffix(errs, "\n"), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], "empty") || !strings.Contains(lines[0], "verions") {
			t.Errorf("stderr is not one line saying the plan is against an empty state and why:\n%s", errs)
		}
	})
}
