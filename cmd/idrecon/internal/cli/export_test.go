package cli

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestExportAdoptsARunningSetUp: the spec repository export writes from a
// running daemon (with the files it names copied over) validates, and
// planning it against that daemon changes nothing.
func TestExportAdoptsARunningSetUp(t *testing.T) {
	example, _ := filepath.Abs("../../../../examples/entra")
	env, _ := startDaemon(t, example)
	dir := filepath.Join(t.TempDir(), "adopted")
	code, out, errs := run(t, env, "export", "-o", dir)
	if code != 0 {
		t.Fatalf("export: %d %s %s", code, out, errs)
	}
	_, list, ok := strings.Cut(out, "to the same paths:\n")
	if !ok {
		t.Fatalf("export names no files to copy:\n%s", out)
	}
	for _, f := range strings.Fields(list) {
		b, err := os.ReadFile(filepath.Join(example, f))
		if err != nil {
			t.Fatalf("export names %s: %v", f, err)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755)
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	if code, out, errs := run(t, env, "validate", dir); code != 0 {
		t.Fatalf("validate the export: %d %s %s", code, out, errs)
	}
	if code, out, errs := run(t, env, "plan", dir, "--server", env["IDRECON_SERVER"]); code != 0 || !strings.Contains(out, "No changes") {
		t.Errorf("plan of the export against its daemon: %d\n%s%s", code, out, errs)
	}
	if code, _, errs := run(t, env, "export", "-o", dir); code != 1 || !strings.Contains(errs, "not empty") {
		t.Errorf("export into a non-empty directory: %d %s", code, errs)
	}
}

// TestExportKeepsSecretReferences: a token or shared secret read from
// outside git is exported as the reference it was written as, never its
// value; the export validates and plans to no changes against its daemon.
// The loader's resolved sha256 next to the valueFrom made the document
// one that sets both, which the loader refuses.
func TestExportKeepsSecretReferences(t *testing.T) {
	example, _ := filepath.Abs("../../../../examples/entra")
	src := t.TempDir()
	if err := os.CopyFS(src, os.DirFS(example)); err != nil {
		t.Fatal(err)
	}
	secrets := t.TempDir()
	const token, shared = "export-test-scim-token-0123456789abcdef", "export-test-shared-secret-0123456789"
	tokenFile, sharedFile := filepath.Join(secrets, "scim-token"), filepath.Join(secrets, "shared")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	os.WriteFile(sharedFile, []byte(shared+"\n"), 0o600)
	edit := func(name, old, new string) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil || !strings.Contains(string(b), old) {
			t.Fatalf("%s lacks %q: %v", name, old, err)
		}
		os.WriteFile(filepath.Join(src, name), []byte(strings.Replace(string(b), old, new, 1)), 0o644)
	}
	edit("scim.yaml", "  userAttributes:", "    - name: rotated\n      valueFrom:\n        file: "+tokenFile+"\n  userAttributes:")
	edit("gateway.yaml", "  userHeader: username", "  userHeader: username\n  sharedSecret:\n    header: X-Idrecon-Secret\n    valueFrom:\n      file: "+sharedFile)

	env, _ := startDaemon(t, src)
	dir := filepath.Join(t.TempDir(), "adopted")
	code, out, errs := run(t, env, "export", "-o", dir)
	if code != 0 {
		t.Fatalf("export: %d %s %s", code, out, errs)
	}
	os.CopyFS(filepath.Join(dir, "idp"), os.DirFS(filepath.Join(example, "idp")))
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), token) || strings.Contains(string(b), shared) {
			t.Errorf("%s holds a secret's value:\n%s", path, b)
		}
		return nil
	})
	if b, _ := os.ReadFile(filepath.Join(dir, "scimprovisioning.yaml")); !strings.Contains(string(b), "file: "+tokenFile) {
		t.Errorf("the token's reference is not exported:\n%s", b)
	}
	if code, out, errs := run(t, env, "validate", dir); code != 0 {
		b, _ := os.ReadFile(filepath.Join(dir, "scimprovisioning.yaml"))
		t.Fatalf("validate the export: %d %s %s\n%s", code, out, errs, b)
	}
	if code, out, errs := run(t, env, "plan", dir, "--server", env["IDRECON_SERVER"]); code != 0 || !strings.Contains(out, "No changes") {
		t.Errorf("plan of the export against its daemon: %d\n%s%s", code, out, errs)
	}
}

// TestExportFailureLeavesNothing: export that fails midway (a full disk, a
// permission; here a path too long) leaves no half-written repository: not
// a new folder, nor files in the empty one it was given, nor a temporary
// folder. Into an empty folder that is fine, it writes the repository
// there and nothing else.
func TestExportFailureLeavesNothing(t *testing.T) {
	env := fakeDaemonEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`[{"kind":"Application","name":"webgoat","spec":{"versions":["1.0"]}}]`))
	})
	parent, dir := nearPathMax(t, "spec")
	code, out, errs := run(t, env, "export", "-o", dir)
	if code != 1 || !strings.Contains(errs, "file name too long") {
		t.Fatalf("exit %d, want 1 saying why\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if left := leftIn(t, parent); len(left) > 0 {
		t.Errorf("a failed export left %v", left)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := run(t, env, "export", "-o", dir); code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, errs)
	}
	if left := leftIn(t, dir); len(left) > 0 {
		t.Errorf("a failed export left %v in the empty folder", left)
	}

	empty := t.TempDir()
	if code, out, errs := run(t, env, "export", "-o", empty); code != 0 {
		t.Fatalf("export into an empty folder: exit %d\n%s%s", code, out, errs)
	}
	if left := leftIn(t, empty); !slices.Equal(left, []string{schemaDir, "application.yaml"}) {
		t.Errorf("export wrote %v", left)
	}
}
