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
