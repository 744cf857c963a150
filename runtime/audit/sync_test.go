package audit

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fileSync is one call of the fake syncFile: which file, how big, and
// whether it still stood at the log's path (not yet renamed by rotation).
type fileSync struct {
	info   os.FileInfo
	size   int64
	atPath bool // the synced file is the one at the log's path
}

// syncRecorder replaces syncFile, syncDir and newTicker for one test.
type syncRecorder struct {
	path string // the log's path

	mu    sync.Mutex
	files []fileSync
	dirs  []string // "dir: names present" at each directory sync
	fail  error    // returned by syncFile while set

	tick      chan time.Time
	synced    chan struct{} // one value per syncFile call, for the goroutine test
	tickerOff chan struct{} // closed when the log stops its ticker
}

func fakeSync(t *testing.T, path string) *syncRecorder {
	t.Helper()
	r := &syncRecorder{path: path, tick: make(chan time.Time), synced: make(chan struct{}, 100), tickerOff: make(chan struct{})}
	oldFile, oldDir, oldTicker := syncFile, syncDir, newTicker
	t.Cleanup(func() { syncFile, syncDir, newTicker = oldFile, oldDir, oldTicker })
	syncFile = func(f *os.File) error {
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("fake sync of an unusable file: %w", err)
		}
		cur, err := os.Stat(r.path)
		r.mu.Lock()
		r.files = append(r.files, fileSync{info: fi, size: fi.Size(), atPath: err == nil && os.SameFile(fi, cur)})
		fail := r.fail
		r.mu.Unlock()
		r.synced <- struct{}{}
		return fail
	}
	syncDir = func(dir string) error {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.dirs = append(r.dirs, dir+": "+strings.Join(names, " "))
		return nil
	}
	newTicker = func(time.Duration) (<-chan time.Time, func()) {
		var once sync.Once
		return r.tick, func() { once.Do(func() { close(r.tickerOff) }) }
	}
	return r
}

func (r *syncRecorder) syncs() []fileSync {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]fileSync(nil), r.files...)
}

// sendTick ticks the fake ticker; the send returns once the sync
// goroutine has taken the tick, so after the last step is done.
func (r *syncRecorder) sendTick(t *testing.T) {
	t.Helper()
	select {
	case r.tick <- time.Time{}:
	case <-time.After(10 * time.Second):
		t.Fatal("no sync goroutine takes the ticks")
	}
}

func (r *syncRecorder) setFail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = err
}

func quietLogger(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, nil))
}

// TestSyncOnlyWhatWasWritten: the periodic sync step syncs the file once
// after records were written, and not at all when nothing was: an idle
// daemon does not fsync every interval, and a busy one fsyncs once per
// interval, not once per record.
func TestSyncOnlyWhatWasWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	r := fakeSync(t, path)
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	l.syncStep()
	if n := len(r.syncs()); n != 0 {
		t.Fatalf("%d syncs with nothing written, want 0", n)
	}
	for i := range 50 {
		l.Record(SCIMWrite{Actor: "entra", Op: "create", ResourceType: "User", ID: fmt.Sprint(i)})
	}
	if n := len(r.syncs()); n != 0 {
		t.Fatalf("%d syncs on the write path, want 0 (the sync step's job)", n)
	}
	l.syncStep()
	got := r.syncs()
	if len(got) != 1 {
		t.Fatalf("%d syncs after 50 records, want 1", len(got))
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got[0].atPath || got[0].size != info.Size() {
		t.Errorf("synced %d bytes (at path: %v), want the log's %d", got[0].size, got[0].atPath, info.Size())
	}
	l.syncStep()
	if n := len(r.syncs()); n != 1 {
		t.Errorf("%d syncs after a second step with nothing new, want still 1", n)
	}
}

// TestSyncBeforeRotation: the file rotation renames away is synced whole
// first (the sync goroutine then only sees the new file), and the
// directory is synced once the new file exists, or a crash can lose the
// renames or the new file's entry.
func TestSyncBeforeRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	r := fakeSync(t, path)
	l, err := Open(path, Options{MaxBytes: 300, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r.mu.Lock()
	r.dirs = nil // Open's own directory sync is not what this test checks
	r.mu.Unlock()
	for i := range 4 { // about 100 bytes each: one rotation
		l.Record(SCIMWrite{Actor: "entra", Op: "create", ResourceType: "User", ID: fmt.Sprint(i)})
	}
	rotated, err := os.Stat(path + ".1")
	if err != nil {
		t.Fatalf("no rotation: %v", err)
	}
	synced := false
	for _, s := range r.syncs() {
		if os.SameFile(s.info, rotated) && s.atPath && s.size == rotated.Size() {
			synced = true
		}
	}
	if !synced {
		t.Errorf("the rotated file was not synced whole before its rename; syncs: %+v", r.syncs())
	}
	r.mu.Lock()
	dirs := r.dirs
	r.mu.Unlock()
	want := dir + ": audit.log audit.log.1"
	if !slices.Contains(dirs, want) {
		t.Errorf("directory syncs %q, want one after the new file was created: %q", dirs, want)
	}
}

// TestSyncAtClose: what was written since the last sync step is synced
// before Close closes the file, and the sync goroutine is gone once Close
// returns.
func TestSyncAtClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	r := fakeSync(t, path)
	l, err := Open(path, Options{MaxApplyRecords: 1})
	if err != nil {
		t.Fatal(err)
	}
	// The summary Close writes is synced too.
	l.Record(Applied{Revision: "r1", Create: 3})
	for i := range 3 {
		l.Record(AppliedChange{Revision: "r1", Action: "create", Kind: "Role", Name: fmt.Sprint(i)})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	got := r.syncs()
	if len(got) != 1 || !os.SameFile(got[0].info, info) || got[0].size != info.Size() {
		t.Errorf("syncs %+v, want one of the whole file (%d bytes) at Close", got, info.Size())
	}
	select {
	case <-l.done:
	default:
		t.Error("the sync goroutine still runs after Close")
	}
	select {
	case <-r.tickerOff:
	default:
		t.Error("the ticker was not stopped")
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestSyncGoroutineSyncsOnTick: the goroutine Open starts runs the sync
// step at each tick of its ticker (a fake one here: no wall clock).
func TestSyncGoroutineSyncsOnTick(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	r := fakeSync(t, path)
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	l.Record(AdminEdit{Op: "put", Kind: "Role", Name: "a"})
	r.sendTick(t)
	select {
	case <-r.synced:
	case <-time.After(10 * time.Second):
		t.Fatal("no sync after a tick with a record written")
	}
	// The second tick is taken only once the first step is done; it
	// finds nothing new to sync.
	r.sendTick(t)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(r.syncs()); n != 1 {
		t.Errorf("%d syncs, want 1 (the tick's; nothing was written after it)", n)
	}
}

// TestFailedSyncIsReportedAndWritesGoOn: a sync that fails is logged, as a
// write that fails is, never returned to nor blocking the caller; records
// are still written and the sync is tried again at the next step.
func TestFailedSyncIsReportedAndWritesGoOn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	r := fakeSync(t, path)
	var logged bytes.Buffer
	l, err := Open(path, Options{Logger: quietLogger(&logged)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Record(AdminEdit{Op: "put", Kind: "Role", Name: "before"})
	r.setFail(errors.New("EIO from the disk"))
	l.syncStep()
	if !strings.Contains(logged.String(), "EIO from the disk") || !strings.Contains(logged.String(), "level=ERROR") {
		t.Errorf("the failed sync was not logged as an error: %q", logged.String())
	}
	// Retried with nothing new written: the records the failed sync
	// covered are still not known to be on disk.
	r.setFail(nil)
	l.syncStep()
	if n := len(r.syncs()); n != 2 {
		t.Errorf("%d syncs, want 2: the failed one and its retry", n)
	}
	l.Record(AdminEdit{Op: "put", Kind: "Role", Name: "after"})
	names := map[string]bool{}
	for _, m := range readLines(t, path) {
		names[fmt.Sprint(m["name"])] = true
	}
	if !names["before"] || !names["after"] {
		t.Errorf("records %v, want before and after", names)
	}
	l.syncStep()
	if n := len(r.syncs()); n != 3 {
		t.Errorf("%d syncs, want 3: the record after the failure synced too", n)
	}
}
