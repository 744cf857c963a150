package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchHarness runs Watch on a temp folder and counts notifications.
type watchHarness struct {
	t     testing.TB
	root  string
	count atomic.Int64
	fired chan struct{}
	done  chan error
}

func startWatch(t testing.TB, debounce time.Duration) *watchHarness {
	t.Helper()
	h := &watchHarness{t: t, root: t.TempDir(), fired: make(chan struct{}, 100), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		h.done <- Watch(ctx, h.root, debounce, func() {
			h.count.Add(1)
			h.fired <- struct{}{}
		}, nil)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-h.done; err != nil {
			t.Errorf("Watch returned %v after cancel", err)
		}
	})
	// Watch sets up asynchronously: poke a probe file until a notification
	// proves the watch is live, then start from a clean count.
	probe := filepath.Join(h.root, "probe")
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		h.write("probe", fmt.Sprint(i))
		select {
		case <-h.fired:
			if err := os.Remove(probe); err != nil {
				t.Fatal(err)
			}
			h.wait("probe removal")
			h.count.Store(0)
			return h
		case <-time.After(debounce + 50*time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("watch never became ready")
		}
	}
}

func (h *watchHarness) write(name, content string) {
	h.t.Helper()
	p := filepath.Join(h.root, filepath.FromSlash(name))
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// wait blocks until the next notification or fails after a generous
// deadline (a missing notification, not a slow one, is the failure).
func (h *watchHarness) wait(what string) {
	h.t.Helper()
	select {
	case <-h.fired:
	case <-time.After(10 * time.Second):
		h.t.Fatalf("no notification for %s", what)
	}
}

func TestWatchDebouncesBurst(t *testing.T) {
	h := startWatch(t, 150*time.Millisecond)
	for i := range 50 {
		h.write("app.yaml", fmt.Sprintf("rev: %d\n", i))
	}
	h.wait("burst of 50 writes")
	// A later, separate change gets its own notification; by the time it
	// arrives any extra notification from the burst would have been counted.
	h.write("other.yaml", "x")
	h.wait("follow-up write")
	if got := h.count.Load(); got != 2 {
		t.Fatalf("burst + follow-up produced %d notifications, want 2", got)
	}
}

func TestWatchNewSubFolders(t *testing.T) {
	h := startWatch(t, 30*time.Millisecond)
	if err := os.MkdirAll(filepath.Join(h.root, "roles", "admins", "deep"), 0o755); err != nil {
		t.Fatal(err)
	}
	h.wait("new sub-folders")
	h.write("roles/admins/deep/r.yaml", "x")
	h.wait("write in a folder created after Watch started")
	h.write("roles/r.yaml", "x")
	h.wait("write in an intermediate new folder")
}

func TestWatchRenameSave(t *testing.T) {
	h := startWatch(t, 30*time.Millisecond)
	h.write("app.yaml", "v1")
	h.wait("initial write")
	// Atomic save: write a temp file (dot-prefixed, ignored) and rename it
	// over the original.
	h.write(".app.yaml.tmp", "v2")
	if err := os.Rename(filepath.Join(h.root, ".app.yaml.tmp"), filepath.Join(h.root, "app.yaml")); err != nil {
		t.Fatal(err)
	}
	h.wait("rename over the original")
	// Vim-style: move the original away, then write a new one.
	if err := os.Rename(filepath.Join(h.root, "app.yaml"), filepath.Join(h.root, "app.yaml~")); err != nil {
		t.Fatal(err)
	}
	h.write("app.yaml", "v3")
	h.wait("backup-then-write save")
}

func TestWatchConfigMapVolumeSwap(t *testing.T) {
	h := startWatch(t, 30*time.Millisecond)
	// The kubelet writes a new timestamped folder, points ..data_tmp at it
	// and renames that over ..data; user-visible files are symlinks through
	// ..data and never change themselves.
	for i, gen := range []string{"..2026_01_01_00_00_00.1", "..2026_01_01_00_01_00.2"} {
		if err := os.Mkdir(filepath.Join(h.root, gen), 0o755); err != nil {
			t.Fatal(err)
		}
		h.write(gen+"/app.yaml", fmt.Sprint(i))
		if err := os.Symlink(gen, filepath.Join(h.root, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(h.root, "..data_tmp"), filepath.Join(h.root, "..data")); err != nil {
			t.Fatal(err)
		}
		h.wait("..data swap " + gen)
	}
}

func TestWatchErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, root string }{
		{"missing folder", filepath.Join(t.TempDir(), "missing")},
		{"not a folder", file},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Watch(context.Background(), tt.root, 0, func() {}, nil); err == nil {
				t.Fatal("Watch succeeded")
			}
		})
	}
}

func TestIgnoredPath(t *testing.T) {
	tests := []struct {
		p    string
		want bool
	}{
		{"/r", false},
		{"/r/app.yaml", false},
		{"/r/sub/app.yaml", false},
		{"/r/.git", true},
		{"/r/.git/objects/ab", true},
		{"/r/sub/.app.yaml.swp", true},
		{"/r/.hidden/app.yaml", true},
		{"/r/..data", false},
		{"/r/..2026_11_27_10_00_00.1/app.yaml", true},
	}
	for _, tt := range tests {
		if got := ignoredPath("/r", tt.p); got != tt.want {
			t.Errorf("ignoredPath(%q) = %v, want %v", tt.p, got, tt.want)
		}
	}
}

// TestWatchRootRecreated: a spec folder deleted and made again (rm -rf
// then a fresh copy, a `mv spec.new spec` deploy) is still watched: a
// later save in it notifies.
func TestWatchRootRecreated(t *testing.T) {
	h := startWatch(t, 30*time.Millisecond)
	if err := os.RemoveAll(h.root); err != nil {
		t.Fatal(err)
	}
	h.wait("spec folder removed")
	if err := os.Mkdir(h.root, 0o755); err != nil {
		t.Fatal(err)
	}
	h.wait("spec folder recreated")
	h.write("app.yaml", "v2")
	h.wait("write in the recreated spec folder")

	// Replaced by a rename, as a deploy script swaps in a new copy.
	next := h.root + ".new"
	if err := os.Mkdir(next, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(next) })
	if err := os.RemoveAll(h.root); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, h.root); err != nil {
		t.Fatal(err)
	}
	h.wait("spec folder renamed into place")
	h.write("app.yaml", "v3")
	h.wait("write in the renamed-in spec folder")
}

// TestWatchOverflowRewatches: after the kernel's event queue overflowed,
// a sub-folder whose creation was among the lost events is watched too.
// The lost creation is played by removing the sub-folder's watch.
func TestWatchOverflowRewatches(t *testing.T) {
	root := t.TempDir()
	fired := make(chan struct{}, 100)
	watcher := make(chan *fsnotify.Watcher, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- watch(ctx, root, 30*time.Millisecond, func() { fired <- struct{}{} }, nil,
			func(w *fsnotify.Watcher) { watcher <- w })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watch returned %v", err)
		}
	})
	wait := func(what string) {
		t.Helper()
		select {
		case <-fired:
		case <-time.After(10 * time.Second):
			t.Fatalf("no notification for %s", what)
		}
	}
	w := <-watcher
	sub := filepath.Join(root, "roles")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	wait("new sub-folder")
	if err := w.Remove(sub); err != nil {
		t.Fatal(err)
	}
	w.Errors <- fsnotify.ErrEventOverflow
	wait("overflow")
	if err := os.WriteFile(filepath.Join(sub, "r.yaml"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	wait("write in a sub-folder whose creation was lost")
}

// startWatchOn runs watch on root and returns the notifications once the
// watch is set up, so that every later change must be seen.
func startWatchOn(t *testing.T, root string, logger *slog.Logger) <-chan struct{} {
	t.Helper()
	fired := make(chan struct{}, 100)
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- watch(ctx, root, 30*time.Millisecond, func() { fired <- struct{}{} }, logger,
			func(*fsnotify.Watcher) { close(ready) })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watch returned %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("watch returned %v before it was set up", err)
	}
	return fired
}

func waitFired(t *testing.T, fired <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-fired:
	case <-time.After(10 * time.Second):
		t.Fatalf("no notification for %s", what)
	}
}

// TestWatchSymlinkedRoot: a spec folder given as a symlink (a release
// folder switched with `ln -sfn`, the layout of many deploy tools) is
// watched through the link: a save in the release it names notifies, and
// after a switch so does a save in the new release, sub-folders included.
func TestWatchSymlinkedRoot(t *testing.T) {
	base := t.TempDir()
	v1, v2 := filepath.Join(base, "releases", "v1"), filepath.Join(base, "releases", "v2")
	for _, d := range []string{filepath.Join(v1, "roles"), filepath.Join(v2, "roles")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	root := filepath.Join(base, "spec")
	if err := os.Symlink(v1, root); err != nil {
		t.Fatal(err)
	}
	fired := startWatchOn(t, root, nil)
	write := func(p string) {
		t.Helper()
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(v1, "app.yaml"))
	waitFired(t, fired, "a save in the linked folder")
	write(filepath.Join(v1, "roles", "r.yaml"))
	waitFired(t, fired, "a save in a sub-folder of the linked folder")

	// ln -sfn: a new link renamed over the old one.
	tmp := filepath.Join(base, "spec.tmp")
	if err := os.Symlink(v2, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, root); err != nil {
		t.Fatal(err)
	}
	waitFired(t, fired, "the switch of the link")
	write(filepath.Join(v2, "app.yaml"))
	waitFired(t, fired, "a save in the newly linked folder")
	write(filepath.Join(v2, "roles", "r.yaml"))
	waitFired(t, fired, "a save in a sub-folder of the newly linked folder")
}

// TestWatchKernelLimitsNamed: when the kernel's inotify limits are reached
// (ENOSPC for watches, EMFILE for instances), the error and the warning say
// which limit and how to raise it, not "no space left on device", which
// sends the operator to look at the disk.
func TestWatchKernelLimitsNamed(t *testing.T) {
	origAdd, origNew := addWatch, newWatcher
	t.Cleanup(func() { addWatch, newWatcher = origAdd, origNew })
	addWatch = func(w *fsnotify.Watcher, p string) error {
		if filepath.Base(p) == "full" {
			return fmt.Errorf("%w", syscall.ENOSPC)
		}
		return origAdd(w, p)
	}

	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "full"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := Watch(context.Background(), root, 0, func() {}, nil)
	if err == nil || !strings.Contains(err.Error(), "fs.inotify.max_user_watches") || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Watch with the watch limit reached: %v", err)
	}

	// A sub-folder made while the daemon runs: its changes go unseen, and
	// the warning must say why.
	var logged syncBuffer
	root = t.TempDir()
	fired := startWatchOn(t, root, slog.New(slog.NewTextHandler(&logged, nil)))
	if err := os.Mkdir(filepath.Join(root, "full"), 0o755); err != nil {
		t.Fatal(err)
	}
	waitFired(t, fired, "the new sub-folder")
	if !strings.Contains(logged.String(), "fs.inotify.max_user_watches") {
		t.Errorf("warning does not name the limit: %s", logged.String())
	}

	newWatcher = func() (*fsnotify.Watcher, error) {
		return nil, fmt.Errorf("couldn't initialize inotify: %w", syscall.EMFILE)
	}
	err = Watch(context.Background(), t.TempDir(), 0, func() {}, nil)
	if err == nil || !strings.Contains(err.Error(), "fs.inotify.max_user_instances") {
		t.Errorf("Watch with the instance limit reached: %v", err)
	}
}

// syncBuffer is a log sink that the watch goroutine writes while the test
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
