package audit

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestRecreatedDirectoryIsOwnerOnly: the directory the log recreates after
// it was deleted holds records that name users; others must not list or
// read it.
func TestRecreatedDirectoryIsOwnerOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "audit.log")
	l, err := Open(path, Options{Logger: quietLogger(&bytes.Buffer{})})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	l.Record(AdminEdit{Op: "put", Kind: "Role", Name: "after"})
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("recreated directory mode %v, want 0700", perm)
	}
}

// TestUnwrittenRecordIsCounted: a record the disk refused (full, or a file
// size limit) is lost; an operator must be able to alert on it, not only
// find it in the error log.
func TestUnwrittenRecordIsCounted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	var logged bytes.Buffer
	l, err := Open(path, Options{Logger: quietLogger(&logged)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(l); err != nil {
		t.Fatal(err)
	}
	const name = "idrecon_audit_records_not_written_total"
	if got, err := counterValue(reg, name); err != nil || got != 0 {
		t.Fatalf("%s = %v (%v) before any failure, want 0", name, got, err)
	}
	l.Record(SCIMWrite{Actor: "entra", Op: "create", ResourceType: "User", ID: "first"})
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	withFileSizeLimit(t, info.Size()+10, func() {
		l.Record(SCIMWrite{Actor: "entra", Op: "create", ResourceType: "User", ID: "cut-short"})
	})
	if got, err := counterValue(reg, name); err != nil || got != 1 {
		t.Errorf("%s = %v (%v) after a record was refused, want 1", name, got, err)
	}
	if !strings.Contains(logged.String(), "level=ERROR") || !strings.Contains(logged.String(), "audit record not written") {
		t.Errorf("the lost record was not logged: %q", logged.String())
	}
}

// TestConcurrentRotationKeepsEveryRecord: writers racing across many
// rotations lose no record and split none across two files, and the files
// are numbered without a gap.
func TestConcurrentRotationKeepsEveryRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	const writers, each, keep = 4, 100, 100
	l, err := Open(path, Options{MaxBytes: 1000, Keep: keep, Logger: quietLogger(&bytes.Buffer{})})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				l.Record(SCIMWrite{Actor: "entra", Op: "create", ResourceType: "User", ID: string(rune('a'+w)) + "-" + itoa(i)})
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	files := []string{path}
	for i := 1; ; i++ {
		p := path + "." + itoa(i)
		if _, err := os.Stat(p); err != nil {
			break
		}
		files = append(files, p)
	}
	if len(files) > keep+1 {
		t.Fatalf("%d files, want at most %d", len(files), keep+1)
	}
	if _, err := os.Stat(path + "." + itoa(len(files)+1)); err == nil {
		t.Errorf("a gap in the numbering after %s", files[len(files)-1])
	}
	for _, p := range files {
		for _, m := range readLines(t, p) { // fails on a split line
			seen[m["id"].(string)]++
		}
	}
	if len(seen) != writers*each {
		t.Errorf("%d records kept, want %d", len(seen), writers*each)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("record %s kept %d times", id, n)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// counterValue gathers reg and returns the value of the counter called name.
func counterValue(reg *prometheus.Registry, name string) (float64, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 && mf.GetMetric()[0].GetCounter() != nil {
			return mf.GetMetric()[0].GetCounter().GetValue(), nil
		}
	}
	return 0, fmt.Errorf("no counter %s", name)
}
