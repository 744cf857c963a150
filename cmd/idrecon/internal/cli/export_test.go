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
