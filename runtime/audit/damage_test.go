package audit

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestRotationFailureDoesNotStopTheLog: a rotation that fails once (here a
// directory squats on path.1; a full disk does the same) must neither lose
// the record that triggered it nor every record after it. The record goes
// to the current file, the failure is logged, and rotation is tried again.
func TestRotationFailureDoesNotStopTheLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	var logged bytes.Buffer
	l, err := Open(path, Options{MaxBytes: 300, Keep: 1, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	squat := path + ".1"
	if err := os.MkdirAll(filepath.Join(squat, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	const n = 10 // each line is about 100 bytes: several rotations
	for i := range n {
		l.Record(SCIMWrite{Actor: "entra", Op: "create", ResourceType: "User", ID: fmt.Sprint("before-", i)})
	}
	if !strings.Contains(logged.String(), "rotate") {
		t.Errorf("the failed rotation was not logged: %q", logged.String())
	}
	if err := os.RemoveAll(squat); err != nil {
		t.Fatal(err)
	}
	l.Record(SCIMWrite{Actor: "entra", Op: "create", ResourceType: "User", ID: "after"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, p := range []string{path + ".1", path} {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		for _, m := range readLines(t, p) {
			ids[fmt.Sprint(m["id"])]++
		}
	}
	// The file outgrew MaxBytes while rotation failed; the first write
	// after that rotates it whole into path.1, so nothing is pruned.
	for i := range n + 1 {
		id := fmt.Sprint("before-", i)
		if i == n {
			id = "after"
		}
		if ids[id] != 1 {
			t.Errorf("record %s kept %d times, want once (kept: %v)", id, ids[id], ids)
		}
	}
	if info, err := os.Stat(path + ".1"); err != nil || !info.Mode().IsRegular() {
		t.Errorf("no rotation once the obstacle was gone: %v", err)
	}
}

// TestShortWriteDoesNotCorruptTheNextRecord: a write cut short (a full
// disk, a file size limit) must not leave half a line that the next record
// is glued to: that record would be written and acknowledged, yet
// unreadable.
func TestShortWriteDoesNotCorruptTheNextRecord(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := Open(path, Options{Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Record(SCIMWrite{Actor: "entra", Op: "create", ResourceType: "User", ID: "first"})
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}

	// The next write stops 10 bytes in.
	withFileSizeLimit(t, info.Size()+10, func() {
		l.Record(SCIMWrite{Actor: "entra", Op: "create", ResourceType: "User", ID: "cut-short"})
	})

	l.Record(SCIMWrite{Actor: "entra", Op: "create", ResourceType: "User", ID: "next"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path) // fails on a line that is not JSON
	var got []string
	for _, m := range lines {
		got = append(got, fmt.Sprint(m["id"]))
	}
	if len(got) != 2 || got[0] != "first" || got[1] != "next" {
		t.Errorf("records %v, want [first next]", got)
	}
}

// TestTornLastLineDoesNotSwallowTheNextRecord: a daemon killed in the middle
// of a write leaves a last line without its newline; the first record after
// the restart must not be glued to it.
func TestTornLastLineDoesNotSwallowTheNextRecord(t *testing.T) {
	whole := `{"time":"2020-01-01T00:00:00Z","level":"INFO","msg":"scim write","id":"whole"}` + "\n"
	var logged bytes.Buffer
	path := recordAfter(t, whole+`{"time":"2020-01-01T00:0`, slog.New(slog.NewTextHandler(&logged, nil)))
	// Every line must parse: jq, or a json.Decoder, stops at the first
	// that does not, and every record after it is out of reach.
	var ids []string
	var torn map[string]any
	for _, m := range readLines(t, path) {
		switch m["msg"] {
		case "scim write":
			ids = append(ids, fmt.Sprint(m["id"]))
		case "torn record":
			torn = m
		}
	}
	if len(ids) != 2 || ids[0] != "whole" || ids[1] != "next" {
		t.Errorf("records %v, want [whole next]", ids)
	}
	// The fragment is evidence of a write that was cut short: kept, as
	// a string inside a record of its own.
	if torn == nil || torn["fragment"] != `{"time":"2020-01-01T00:0` {
		t.Errorf("torn record %v, want one holding the fragment", torn)
	}
	if !strings.Contains(logged.String(), "torn") {
		t.Errorf("the torn line was not reported: %q", logged.String())
	}
}

// withFileSizeLimit runs fn while this process may grow no file past size
// bytes (RLIMIT_FSIZE): a write crossing it stops there with EFBIG, as on a
// full disk (Go ignores the SIGXFSZ that comes with it). The test is
// skipped where the limit cannot be set.
func withFileSizeLimit(t *testing.T, size int64, fn func()) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Skip(err)
	}
	lim := old
	lim.Cur = uint64(size)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Skip(err)
	}
	fn()
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
}

// TestWholeLastRecordWithoutNewline: a write cut short just before its
// newline leaves a whole record; it is ended, not wrapped as torn.
func TestWholeLastRecordWithoutNewline(t *testing.T) {
	last := `{"time":"2020-01-01T00:00:00Z","level":"INFO","msg":"scim write","id":"whole"}`
	path := recordAfter(t, last, quietLogger(&bytes.Buffer{}))
	var ids []string
	for _, m := range readLines(t, path) {
		ids = append(ids, fmt.Sprint(m["msg"], ":", m["id"]))
	}
	if strings.Join(ids, " ") != "scim write:whole scim write:next" {
		t.Errorf("records %v, want the whole one kept as it was, then next", ids)
	}
}

// recordAfter writes content as an audit log a process left behind, opens
// it with logger, records the create of user "next" and closes it, and
// returns the log's path.
func recordAfter(t *testing.T, content string, logger *slog.Logger) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path, Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	l.Record(SCIMWrite{Actor: "entra", Op: "create", ResourceType: "User", ID: "next"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
