package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	return runWith(t, nil, env, args...)
}

// runWith is run with the command's clock now (nil: the wall clock).
func runWith(t *testing.T, now func() time.Time, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), Env{
		Args:   args,
		Getenv: func(k string) string { return env[k] },
		Stdout: &out,
		Stderr: &errb,
		Now:    now,
	})
	return code, out.String(), errb.String()
}

func TestValidateAndPlanExitCodes(t *testing.T) {
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "a.yaml"), []byte("apiVersion: idrecon.io/v1alpha1\nkind: Role\nmetadata:\n  name: r\nspec:\n  permisions: [x]\n"), 0o644)
	os.WriteFile(filepath.Join(bad, "b.yaml"), []byte("apiVersion: idrecon.io/v1alpha1\nkind: Nope\nmetadata:\n  name: n\nspec: {}\n"), 0o644)
	one := t.TempDir()
	os.WriteFile(filepath.Join(one, "a.yaml"), []byte("apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: a\nspec:\n  versions: [\"1\"]\n"), 0o644)

	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderrRE string
	}{
		{"validate example", []string{"validate", "../../../../examples/entra"}, 0, "valid", ""},
		{"validate one document", []string{"validate", one}, 0, ": 1 document, valid", ""},
		{"validate bad reports every error with positions", []string{"validate", bad}, 1, "", `(?s)a\.yaml:6:\d+.*b\.yaml:2:\d+`},
		{"plan example against empty runtime", []string{"plan", "../../../../examples/entra"}, 2, "to create", ""},
		{"plan json", []string{"plan", "../../../../examples/entra", "--output", "json"}, 2, `"creates"`, ""},
		{"plan bad", []string{"plan", bad}, 1, "", `a\.yaml:6`},
		{"unknown command", []string{"frobnicate"}, 1, "", "unknown command"},
		{"bad output flag", []string{"plan", "--output", "yaml", "../../../../examples/entra"}, 1, "", "text or json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := run(t, nil, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errs)
			}
			if tt.stdout != "" && !strings.Contains(out, tt.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.stdout, out)
			}
			if tt.stderrRE != "" && !regexp.MustCompile(tt.stderrRE).MatchString(errs) {
				t.Errorf("stderr does not match %q:\n%s", tt.stderrRE, errs)
			}
		})
	}
}

func TestTokenNewPrintsAValidTokenAndItsHash(t *testing.T) {
	code, out, _ := run(t, nil, "token", "new", "--name", "entra-2026")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	tok := regexp.MustCompile(`(?m)^  ([A-Za-z0-9_-]{32,512})$`).FindStringSubmatch(out)
	sum := regexp.MustCompile(`sha256: ([0-9a-f]{64})`).FindStringSubmatch(out)
	if tok == nil || sum == nil || !strings.Contains(out, "name: entra-2026") {
		t.Fatalf("unexpected output:\n%s", out)
	}
	h := sha256.Sum256([]byte(tok[1]))
	if hex.EncodeToString(h[:]) != sum[1] {
		t.Fatal("printed sha256 is not the token's")
	}
	_, out2, _ := run(t, nil, "token", "new")
	if strings.Contains(out2, tok[1]) {
		t.Fatal("two tokens are equal")
	}
}

// TestPlanBaseRef plans a pull request: the spec at main versus the working tree.
func TestPlanBaseRef(t *testing.T) {
	repoDir := t.TempDir()
	repo, err := git.PlainInit(repoDir, false)
	if err != nil {
		t.Fatal(err)
	}
	specDir := filepath.Join(repoDir, "spec")
	os.MkdirAll(specDir, 0o755)
	app := func(versions string) {
		os.WriteFile(filepath.Join(specDir, "apps.yaml"), []byte("apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: webgoat\nspec:\n  versions: "+versions+"\n"), 0o644)
	}
	app(`["1.0"]`)
	wt, _ := repo.Worktree()
	wt.Add("spec/apps.yaml")
	sig := &object.Signature{Name: "t", Email: "t@example.com", When: time.Now()}
	if _, err := wt.Commit("base", &git.CommitOptions{Author: sig}); err != nil {
		t.Fatal(err)
	}
	head, _ := repo.Head()

	app(`["1.0", "2.0"]`)
	code, out, errs := run(t, nil, "plan", specDir, "--base-ref", head.Hash().String(), "--output", "json")
	if code != 2 {
		t.Fatalf("exit %d, want 2\n%s\n%s", code, out, errs)
	}
	var resp struct {
		FormatVersion, Kind string
		Plan                struct {
			Creates []json.RawMessage `json:"creates"`
			Updates []struct {
				Kind, Name string
				Fields     []struct {
					Path          string
					Before, After any
				}
			} `json:"updates"`
		} `json:"item"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.FormatVersion != FormatVersion || resp.Kind != "Plan" || len(resp.Plan.Creates) != 0 || len(resp.Plan.Updates) != 1 || resp.Plan.Updates[0].Name != "webgoat" {
		t.Fatalf("want exactly one update of webgoat, got %s", out)
	}
	// Values are JSON values, not strings that hold JSON.
	if f := resp.Plan.Updates[0].Fields; len(f) != 1 || fmt.Sprint(f[0].After) != "[1.0 2.0]" {
		t.Errorf("the update's fields %+v, want after = [1.0 2.0] as a JSON list", f)
	}

	app(`["1.0"]`)
	if code, out, errs := run(t, nil, "plan", specDir, "--base-ref", head.Hash().String()); code != 0 {
		t.Fatalf("unchanged tree: exit %d, want 0\n%s\n%s", code, out, errs)
	}

	// The committed spec, fetched from git, planned against an empty runtime.
	code, out, errs = run(t, nil, "plan", "--git", "file://"+repoDir, "--path", "spec")
	if code != 2 || !strings.Contains(out, "+ Application/webgoat") || !strings.Contains(errs, head.Hash().String()[:12]) {
		t.Fatalf("plan --git: exit %d\n%s\n%s", code, out, errs)
	}
}

// TestPlanGitNamesFilesFromTheSpecRoot: plan --git loads a checkout in a
// temporary folder that is gone when the command ends; its errors name
// files from the spec's root, as its warnings do, not in that folder.
func TestPlanGitNamesFilesFromTheSpecRoot(t *testing.T) {
	repoDir := t.TempDir()
	repo, err := git.PlainInit(repoDir, false)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(repoDir, "spec"), 0o755)
	os.WriteFile(filepath.Join(repoDir, "spec", "a.yaml"), []byte("apiVersion: idrecon.io/v1alpha1\nkind: Role\nmetadata:\n  name: r\nspec:\n  permisions: [x]\n"), 0o644)
	wt, _ := repo.Worktree()
	wt.Add("spec/a.yaml")
	sig := &object.Signature{Name: "t", Email: "t@example.com", When: time.Now()}
	if _, err := wt.Commit("bad", &git.CommitOptions{Author: sig}); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, nil, "plan", "--git", "file://"+repoDir, "--path", "spec")
	if code != 1 || !regexp.MustCompile(`(?m)^a\.yaml:6:3: spec\.permisions`).MatchString(errs) || strings.Contains(errs, os.TempDir()+"/idrecon-plan-git-") {
		t.Errorf("plan --git: exit %d, want 1 naming a.yaml:6:3\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	code, out, errs = run(t, nil, "plan", "--git", "file://"+repoDir, "--path", "spec", "--output", "json")
	var env struct {
		Error struct{ Problems []specIssue } `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &env); err != nil || code != 1 || len(env.Error.Problems) == 0 {
		t.Fatalf("plan --git --output json: exit %d, %v\nstdout:\n%s\nstderr:\n%s", code, err, out, errs)
	}
	for _, p := range env.Error.Problems {
		if p.File != "a.yaml" {
			t.Errorf("problem names file %q, want a.yaml", p.File)
		}
	}
}
