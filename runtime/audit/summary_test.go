package audit

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestFailedSummaryIsNotLost: the summary of an apply's counted changes
// that cannot be written (a full disk, a file size limit) is written by a
// later record once writes go through again, not dropped with its counts;
// and the record whose turn it was is still tried.
func TestFailedSummaryIsNotLost(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{MaxApplyRecords: 1, Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Record(Applied{Revision: "r1", Create: 3})
	for i := range 3 {
		l.Record(AppliedChange{Revision: "r1", Action: "create", Kind: "Role", Name: fmt.Sprint(i)})
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// Room for a short line, not for the summary that goes before it.
	withFileSizeLimit(t, info.Size()+120, func() {
		l.Record(AdminEdit{Op: "put", Kind: "Role", Name: "during"})
	})
	l.Record(AdminEdit{Op: "put", Kind: "Role", Name: "after"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var summary map[string]any
	names := map[string]bool{}
	for _, m := range readLines(t, path) {
		if m["msg"] == "applied changes summary" {
			summary = m
		}
		if m["msg"] == "admin edit" {
			names[fmt.Sprint(m["name"])] = true
		}
	}
	if summary == nil || summary["omitted"] != 2.0 {
		t.Errorf("summary %v, want one with omitted 2", summary)
	}
	if !names["during"] || !names["after"] {
		t.Errorf("admin edits kept %v, want during and after", names)
	}
}
