package audit

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRemovedLogIsRecreated: a log whose directory was deleted while the
// daemon runs (or whose file was moved away by hand) must not swallow every
// later record into a file no name reaches: the next record recreates the
// directory and the file, owner-only, and the event is logged.
func TestRemovedLogIsRecreated(t *testing.T) {
	for _, tc := range []struct {
		name   string
		remove func(t *testing.T, dir, path string)
	}{
		{"directory deleted", func(t *testing.T, dir, _ string) {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
		}},
		{"file moved away", func(t *testing.T, _, path string) {
			if err := os.Rename(path, path+".moved"); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			path := filepath.Join(dir, "audit.log")
			var logged bytes.Buffer
			l, err := Open(path, Options{MaxBytes: 1 << 20, Logger: quietLogger(&logged)})
			if err != nil {
				t.Fatal(err)
			}
			l.Record(AdminEdit{Op: "put", Kind: "Role", Name: "before"})
			tc.remove(t, dir, path)
			for i := range 3 {
				l.Record(AdminEdit{Op: "put", Kind: "Role", Name: fmt.Sprint("after-", i)})
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			info, err := os.Stat(path)
			if err != nil {
				t.Fatalf("the log was not recreated: %v; logged: %q", err, logged.String())
			}
			if perm := info.Mode().Perm(); perm != 0o600 {
				t.Errorf("recreated log mode %v, want 0600", perm)
			}
			var names []string
			for _, m := range readLines(t, path) {
				names = append(names, fmt.Sprint(m["name"]))
			}
			if strings.Join(names, " ") != "after-0 after-1 after-2" {
				t.Errorf("records %v, want the three written after the removal", names)
			}
			if !strings.Contains(logged.String(), "level=ERROR") || !strings.Contains(logged.String(), "recreat") {
				t.Errorf("the removal was not reported: %q", logged.String())
			}
		})
	}
}
