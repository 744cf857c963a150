package cli

import (
	"os"
	"path/filepath"
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
