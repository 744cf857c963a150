package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/idrecon/idrecon/reconcile"
	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/runtime/admin"
	"github.com/idrecon/idrecon/spec"
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

// TestRefusedPlanSaysNothingIsApplied: a plan the daemon's guard refuses
// changes nothing, so its output must say so, and must not present the
// access blast radius as what will happen: neither the text nor the JSON
// a CI bot reads carries it.
func TestRefusedPlanSaysNothingIsApplied(t *testing.T) {
	env := fakeDaemonEnv(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/plan" {
			http.NotFound(w, r)
			return
		}
		p := &reconcile.Plan{Revision: "sha256:abc",
			Updates: []reconcile.Change{{Kind: "AccessAssignment", Name: "alice",
				Fields: []reconcile.FieldChange{{Path: "spec.roles", Before: `["View Only"]`, After: `["Developer"]`}}}},
			Deletes: []reconcile.Change{{Kind: "ScimProvisioning", Name: "entra",
				Fields: []reconcile.FieldChange{{Path: "spec.enabled", Before: "true"}}}},
			Summary: reconcile.PlanSummary{Update: 1, Delete: 1},
			Refused: (&reconcile.UnsafeError{Deletes: []spec.Ref{{Kind: "ScimProvisioning", Name: "entra"}}}).Error(),
		}
		json.NewEncoder(w).Encode(admin.PlanResponse{Plan: p, Impact: &access.Impact{Users: 1, Changes: []access.AccessChange{
			{Kind: "role", Name: "Developer", Gained: 1, GainedBy: []string{"alice@contoso.com"}}}}})
	})
	for _, tt := range []struct{ output, says string }{
		{"text", "Refused: nothing will be applied"},
		{"json", `"refused": "refusing to delete ScimProvisioning/entra`},
	} {
		t.Run(tt.output, func(t *testing.T) {
			code, out, errs := run(t, env, "plan", "../../../../examples/entra", "--output", tt.output)
			if code != 1 || !strings.Contains(out, tt.says) || strings.Contains(out, "alice@contoso.com") ||
				strings.Contains(out, "impact") || strings.Contains(out, "Impact") {
				t.Fatalf("refused plan: exit %d, want 1 saying nothing will be applied, without the blast radius\nstdout:\n%s\nstderr:\n%s",
					code, out, errs)
			}
		})
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

// TestPlanNamesWarningFilesAsValidate: a warning names its file as errors
// do, relative to the working directory, so that a CI log's "scim.yaml"
// is not looked for at the repository's root: plan (locally and through a
// daemon, which names files in the uploaded folder) as validate does.
func TestPlanNamesWarningFilesAsValidate(t *testing.T) {
	const dir = "../../../../examples/entra"
	want := filepath.Join(dir, "scim.yaml") + ":22:15: ScimProvisioning/entra: token \"entra\" is the published demo token"
	daemon, _ := startDaemon(t, "")
	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"validate", nil, []string{"validate", dir}},
		{"plan", nil, []string{"plan", dir}},
		{"plan json", nil, []string{"plan", dir, "--output", "json"}},
		{"plan --server", daemon, []string{"plan", dir}},
		{"plan --server json", daemon, []string{"plan", dir, "--output", "json"}},
		{"apply", daemon, []string{"apply", dir}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, out, errs := run(t, tt.env, tt.args...)
			got := errs
			if strings.Contains(strings.Join(tt.args, " "), "json") {
				var env struct {
					Item struct {
						Warnings []string `json:"warnings"`
					} `json:"item"`
				}
				if err := json.Unmarshal([]byte(out), &env); err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				got = strings.Join(env.Item.Warnings, "\n")
			}
			if !strings.Contains(got, want) {
				t.Errorf("warnings:\n%s\nwant one naming %s", got, want)
			}
		})
	}
}

// usageLine checks that errs is one usage error of cmd (the message and
// the pointer to its help) and returns the message.
func usageLine(t *testing.T, cmd, errs string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(errs, "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "idrecon "+cmd+": ") || lines[1] != "Run 'idrecon "+cmd+" --help' for usage." {
		t.Errorf("stderr is not a usage error of %s:\n%s", cmd, errs)
		return ""
	}
	return lines[0]
}

// TestPlanServerRefusesSpecLimitFlags: plan --server uploads the folder,
// and the daemon loads it under its own limits, so a --max-spec-* flag
// given with it would be ignored. It is a usage error saying so, found
// before any daemon is asked; plan --help says it too.
func TestPlanServerRefusesSpecLimitFlags(t *testing.T) {
	const dir = "../../../../examples/entra"
	viaEnv := map[string]string{"IDRECON_SERVER": "http://127.0.0.1:1", "IDRECON_ADMIN_TOKEN": "x"}
	for _, flag := range []string{"--max-spec-bytes", "--max-spec-documents", "--max-spec-nodes"} {
		for _, tt := range []struct {
			name string
			env  map[string]string
			args []string
		}{
			{"--server", nil, []string{"plan", dir, "--server", "http://127.0.0.1:1", "--admin-token-file", "/nonexistent", flag, "1000000"}},
			{"IDRECON_SERVER", viaEnv, []string{"plan", dir, flag, "1000000"}},
		} {
			t.Run(flag+" "+tt.name, func(t *testing.T) {
				code, out, errs := run(t, tt.env, tt.args...)
				if code != 1 || out != "" {
					t.Fatalf("exit %d, want 1 and nothing on stdout\nstdout:\n%s\nstderr:\n%s", code, out, errs)
				}
				msg := usageLine(t, "plan", errs)
				for _, w := range []string{flag, tt.name, "daemon"} {
					if !strings.Contains(msg, w) {
						t.Errorf("the usage error does not say %q: %s", w, msg)
					}
				}
			})
		}
	}
	_, help, _ := run(t, nil, "plan", "--help")
	long, _, _ := strings.Cut(help, "\nUsage:")
	if !strings.Contains(long, "--max-spec-") || !strings.Contains(long, "own limits") {
		t.Errorf("plan --help does not say the limits are the daemon's with --server:\n%s", long)
	}
}

// TestSpecLimitFlagsRefuseNonPositive: a limit of 0 or less used to mean
// the default, silently; every command taking the flags refuses it as a
// usage error.
func TestSpecLimitFlagsRefuseNonPositive(t *testing.T) {
	for _, cmd := range []string{"validate", "plan", "serve"} {
		for _, flag := range []string{"--max-spec-bytes", "--max-spec-documents", "--max-spec-nodes"} {
			for _, v := range []string{"0", "-1"} {
				t.Run(cmd+" "+flag+"="+v, func(t *testing.T) {
					args := []string{cmd, flag + "=" + v, "../../../../examples/entra"}
					if cmd == "serve" {
						// Should the flag pass, a daemon that cannot start (no
						// admin token) rather than one that runs on.
						args = []string{cmd, flag + "=" + v, "--data-dir=", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}
					}
					ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
					defer cancel()
					code, out, errs := runCtx(t, ctx, nil, args...)
					if code != 1 || out != "" {
						t.Fatalf("exit %d, want 1 and nothing on stdout\nstdout:\n%s\nstderr:\n%s", code, out, errs)
					}
					if msg := usageLine(t, cmd, errs); !strings.Contains(msg, flag) || !strings.Contains(msg, "positive") {
						t.Errorf("the usage error does not say %s must be positive: %s", flag, msg)
					}
				})
			}
		}
	}
}

// TestSpecLimitErrorIsAProblem: a spec past a limit is reported as any
// spec error is: one a line on stderr, with its file (relative to the
// working directory) and line when the limit names them, an ::error
// annotation with --output github, and a problem with --output json, from
// validate and plan alike.
func TestSpecLimitErrorIsAProblem(t *testing.T) {
	dir := t.TempDir()
	doc := "apiVersion: idrecon.io/v1alpha1\nkind: Role\nmetadata:\n  name: r%d\nspec:\n  permissions: [x]\n"
	if err := os.WriteFile(filepath.Join(dir, "roles.yaml"), []byte(fmt.Sprintf(doc, 1)+"---\n"+fmt.Sprintf(doc, 2)), 0o644); err != nil {
		t.Fatal(err)
	}
	big := t.TempDir() // one document over spec.MaxDocumentBytes, on line 1
	if err := os.WriteFile(filepath.Join(big, "big.yaml"), []byte("# "+strings.Repeat("x", spec.MaxDocumentBytes)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The temporary folders are not below the working directory: their
	// files are named as given.
	for _, tt := range []struct {
		dir   string
		flags []string
		file  string // "" for a limit of the whole spec, which names none
		line  int
		says  string
	}{
		{dir, []string{"--max-spec-documents", "1"}, "", 0, "--max-spec-documents"},
		{dir, []string{"--max-spec-nodes", "5"}, "", 0, "--max-spec-nodes"},
		{dir, []string{"--max-spec-bytes", "10"}, filepath.Join(dir, "roles.yaml"), 0, "--max-spec-bytes"},
		{big, nil, filepath.Join(big, "big.yaml"), 1, "the limit for one document"},
	} {
		at := tt.file
		if tt.line > 0 {
			at += fmt.Sprintf(":%d", tt.line)
		}
		for _, cmd := range []string{"validate", "plan"} {
			name := cmd + " " + strings.Join(tt.flags, " ")
			if tt.flags == nil {
				name = cmd + " one document too large"
			}
			args := append([]string{cmd, tt.dir}, tt.flags...)
			t.Run(name+" text", func(t *testing.T) {
				code, out, errs := run(t, nil, args...)
				prefix := "the "
				if at != "" {
					prefix = at + ": the "
				}
				if code != 1 || out != "" || !strings.HasPrefix(errs, prefix) || !strings.Contains(errs, tt.says) ||
					!strings.HasSuffix(errs, "\nidrecon "+cmd+": 1 error(s)\n") {
					t.Errorf("exit %d, want 1 with the problem, starting %q, and its count\nstdout:\n%s\nstderr:\n%s", code, prefix, out, errs)
				}
			})
			if cmd == "validate" {
				t.Run(name+" github", func(t *testing.T) {
					code, out, errs := run(t, nil, append(args, "--output", "github")...)
					want := "::error::the "
					switch {
					case tt.line > 0:
						want = fmt.Sprintf("::error file=%s,line=%d::the ", tt.file, tt.line)
					case tt.file != "":
						want = "::error file=" + tt.file + "::the "
					}
					if code != 1 || !strings.HasPrefix(out, want) || !strings.Contains(out, tt.says) {
						t.Errorf("exit %d, want 1 with an annotation starting %q\nstdout:\n%s\nstderr:\n%s", code, want, out, errs)
					}
				})
			}
			t.Run(name+" json", func(t *testing.T) {
				code, out, errs := run(t, nil, append(args, "--output", "json")...)
				var env errorEnvelope
				if err := json.Unmarshal([]byte(out), &env); err != nil {
					t.Fatalf("stdout is not JSON (%v):\n%s\nstderr:\n%s", err, out, errs)
				}
				p := env.Error.Problems
				if code != 1 || env.Error.ExitCode != 1 || len(p) != 1 || p[0].File != tt.file || p[0].Line != tt.line || !strings.Contains(p[0].Message, tt.says) {
					t.Errorf("exit %d, want 1 with one problem (file %q, line %d) saying %s:\n%s", code, tt.file, tt.line, tt.says, out)
				}
			})
		}
	}
}

// TestPlanApplyNameTheStatError: plan and apply with --server report a DIR
// they cannot stat with the reason (a loop of symbolic links here, which
// root cannot bypass as it does a permission), not as "not a folder"; a
// DIR that is a file is still "not a folder".
func TestPlanApplyNameTheStatError(t *testing.T) {
	var asked atomic.Int32
	env := fakeDaemonEnv(t, func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.NotFound(w, r)
	})
	root := t.TempDir()
	loop := filepath.Join(root, "loop")
	if err := os.Symlink(loop, loop); err != nil {
		t.Skipf("no symbolic links here: %v", err)
	}
	file := filepath.Join(root, "file")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct{ dir, want, not string }{
		{loop, loop + ": too many levels of symbolic links", "not a folder"},
		{filepath.Join(root, "missing"), filepath.Join(root, "missing") + ": no such file or directory", "not a folder"},
		{filepath.Join(file, "sub"), filepath.Join(file, "sub") + ": not a directory", "not a folder"},
		{file, file + " is not a folder", "\x00"},
	} {
		for _, cmd := range []string{"plan", "apply"} {
			code, out, errs := run(t, env, cmd, tc.dir, "--server", env["IDRECON_SERVER"])
			if code != 1 || !strings.Contains(errs, tc.want) || strings.Contains(errs, tc.not) {
				t.Errorf("%s %s: exit %d, want 1 saying %q\nstdout:\n%s\nstderr:\n%s", cmd, tc.dir, code, tc.want, out, errs)
			}
		}
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("the daemon was asked %d time(s)", n)
	}
}
