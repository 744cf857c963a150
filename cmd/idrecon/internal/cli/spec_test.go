package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// TestEmptySpecExitsOne: validate and plan of a folder with no documents
// (a mistyped path, a checkout of the wrong branch) fail instead of calling
// it valid or planning every resource away.
func TestEmptySpecExitsOne(t *testing.T) {
	empty := t.TempDir()
	for _, args := range [][]string{
		{"validate", empty},
		{"plan", empty},
		{"plan", empty, "--output", "json"},
	} {
		t.Run(strings.Join(args[:1], " "), func(t *testing.T) {
			code, out, errs := run(t, nil, args...)
			if code != 1 || !strings.Contains(out+errs, "no documents") {
				t.Fatalf("%v: exit %d, want 1 saying the spec has no documents\nstdout:\n%s\nstderr:\n%s", args, code, out, errs)
			}
		})
	}
}

// TestPlanShowsRefusedDelete: a pull request that deletes scim.yaml plans
// with the refusal shown, and exits 1, so the review sees it before merge.
func TestPlanShowsRefusedDelete(t *testing.T) {
	repoDir := t.TempDir()
	specDir := filepath.Join(repoDir, "spec")
	if err := os.CopyFS(specDir, os.DirFS("../../../../examples/entra")); err != nil {
		t.Fatal(err)
	}
	repo, err := git.PlainInit(repoDir, false)
	if err != nil {
		t.Fatal(err)
	}
	wt, _ := repo.Worktree()
	if err := wt.AddGlob("spec"); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "t", Email: "t@example.com", When: time.Now()}
	if _, err := wt.Commit("base", &git.CommitOptions{Author: sig}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(specDir, "scim.yaml")); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, nil, "plan", specDir, "--base-ref", "HEAD")
	if code != 1 || !strings.Contains(out, "- ScimProvisioning/entra") ||
		!strings.Contains(out, "Refused: ") || !strings.Contains(out, "enabled: false") {
		t.Fatalf("exit %d, want 1 with the delete and its refusal shown\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}

func TestEmptySpecAgainstADaemon(t *testing.T) {
	env, _ := startDaemon(t, "")
	example, _ := filepath.Abs("../../../../examples/entra")
	if code, out, errs := run(t, env, "apply", example); code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", code, out, errs)
	}
	empty := t.TempDir()
	for _, cmd := range []string{"plan", "apply"} {
		code, out, errs := run(t, env, cmd, empty)
		if code != 1 || !strings.Contains(out+errs, "no documents") {
			t.Errorf("%s of an empty folder: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", cmd, code, out, errs)
		}
	}
}

// TestSpecLimitFlags: validate and plan refuse a spec past a limit with an
// error that names the flag, and the flag lets it through.
func TestSpecLimitFlags(t *testing.T) {
	const dir = "../../../../examples/entra"
	for _, cmd := range []string{"validate", "plan"} {
		for _, tt := range []struct {
			flags []string
			want  string // in stderr; "" means it loads
		}{
			{flags: []string{"--max-spec-documents", "2"}, want: "--max-spec-documents"},
			{flags: []string{"--max-spec-bytes", "100"}, want: "--max-spec-bytes"},
			{flags: []string{"--max-spec-nodes", "50"}, want: "--max-spec-nodes"},
			{flags: []string{"--max-spec-documents", "1000", "--max-spec-bytes", "1000000", "--max-spec-nodes", "100000"}},
		} {
			t.Run(cmd+" "+strings.Join(tt.flags, " "), func(t *testing.T) {
				code, out, errs := run(t, nil, append([]string{cmd, dir}, tt.flags...)...)
				if tt.want == "" {
					if code == 1 {
						t.Fatalf("exit 1\nstdout:\n%s\nstderr:\n%s", out, errs)
					}
					return
				}
				if code != 1 || !strings.Contains(errs, tt.want) {
					t.Fatalf("exit %d, want 1 naming %s\nstdout:\n%s\nstderr:\n%s", code, tt.want, out, errs)
				}
			})
		}
	}
}

// TestOfflinePlanLeavesBuiltinRolesOut: a plan without a daemon is against
// a runtime that holds the builtin roles, as every daemon's does, so they
// are not shown as creates.
func TestOfflinePlanLeavesBuiltinRolesOut(t *testing.T) {
	code, out, errs := run(t, nil, "plan", "../../../../examples/entra")
	if code != 2 || strings.Contains(out, "+ Role/Administrator") || !strings.Contains(out, "+ Role/Release Manager") {
		t.Fatalf("exit %d, want 2 with the custom role created and no builtin one\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}
