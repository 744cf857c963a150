package audit

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestHandlerWritesOnlyAuditRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	logger := slog.New(NewHandler(slog.NewTextHandler(io.Discard, nil), l)).With("component", "scim")
	logger.Info("scim write", "actor", "entra", "op", "create", "id", "u1")
	logger.Info("request served")
	logger.Debug("scim write", "actor", "entra", "op", "delete", "id", "u1")

	lines := readLines(t, path)
	if len(lines) != 2 {
		t.Fatalf("got %d audit lines, want 2: %v", len(lines), lines)
	}
	if lines[0]["actor"] != "entra" || lines[0]["component"] != "scim" || lines[1]["op"] != "delete" {
		t.Errorf("unexpected audit lines: %v", lines)
	}
}

func TestRotationKeepsEveryLineWhole(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := Open(path, Options{MaxBytes: 200, Keep: 3})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(NewHandler(slog.NewTextHandler(io.Discard, nil), l))
	for i := range 40 {
		logger.Info("applied change", "n", i)
	}
	l.Close()

	total := 0
	for _, p := range []string{path, path + ".1", path + ".2", path + ".3"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("missing %s: %v", p, err)
		}
		total += len(readLines(t, p))
	}
	if _, err := os.Stat(path + ".4"); err == nil {
		t.Error("kept more rotated files than Keep")
	}
	if total == 0 || total >= 40 {
		t.Errorf("kept %d lines; want some, and fewer than all 40 after pruning", total)
	}
}

// One apply of 100,000 changes must not rotate the history before it out of
// the files kept: past MaxApplyRecords its changes become one summary.
func TestLargeApplyKeepsEarlierHistory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	// 1 MiB × 3 files hold the history below and a capped apply, not 100,000 lines.
	l, err := Open(path, Options{MaxBytes: 1 << 20, Keep: 2, MaxApplyRecords: 100})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(NewHandler(slog.NewTextHandler(io.Discard, nil), l))
	scim := logger.With("component", "scim")
	for i := range 50 {
		scim.Info("scim write", "actor", "entra", "op", "create", "id", i)
	}
	rec := logger.With("component", "reconcile")
	const rev, n = "rev-big", 100_000
	rec.Info("applied", "revision", rev, "create", n-10, "update", 0, "delete", 10)
	for i := range n - 10 {
		rec.Info("applied change", "revision", rev, "action", "create", "kind", "AccessAssignment", "name", i, "drift", false)
	}
	for i := range 10 {
		rec.Info("applied change", "revision", rev, "action", "delete", "kind", "Role", "name", i, "drift", false)
	}
	scim.Info("scim write", "actor", "entra", "op", "create", "id", "after")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	var lines []map[string]any
	for _, p := range []string{path + ".2", path + ".1", path} {
		if _, err := os.Stat(p); err == nil {
			lines = append(lines, readLines(t, p)...)
		}
	}
	scimWrites, changes := 0, 0
	var summary map[string]any
	for _, m := range lines {
		switch m["msg"] {
		case "scim write":
			scimWrites++
		case "applied change":
			changes++
		case "applied changes summary":
			summary = m
		}
	}
	if scimWrites != 51 {
		t.Errorf("%d scim writes kept, want all 51 (the history before the apply was rotated out)", scimWrites)
	}
	if changes != 100 {
		t.Errorf("%d change records, want MaxApplyRecords = 100", changes)
	}
	if summary == nil {
		t.Fatal("no summary record")
	}
	counts, _ := summary["counts"].(map[string]any)
	if summary["revision"] != rev || summary["omitted"] != float64(n-100) ||
		counts["create AccessAssignment"] != float64(n-10-100) || counts["delete Role"] != float64(10) {
		t.Errorf("summary = %v", summary)
	}
}
