package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is the quiet period Watch waits for when given zero.
const DefaultDebounce = 300 * time.Millisecond

// maxDelayFactor bounds how long a continuous stream of events can postpone
// a notification: a steady trickle of writes still notifies at least every
// maxDelayFactor debounce periods.
const maxDelayFactor = 10

// Watch watches the folder tree at root and calls notify once a burst of
// changes has been quiet for debounce (DefaultDebounce when zero or
// negative). Sub-folders created later are watched too; dot-entries such as
// .git are ignored. Editors that save by writing a temp file and renaming it
// over the original are seen through the create/rename events on the target
// name. The folder itself may be deleted and made again, or replaced by a
// rename, and it may be a symlink switched to another folder (a release
// switch with `ln -sfn`): its parent is watched for that, and the folder
// it then names is watched from then on, in place of the old one. So is a
// switched symlink higher on its path ("current/spec"), whose folder is
// watched for that. On a network or FUSE filesystem, where inotify sees
// only this machine's own writes, it warns at start that other changes
// wait for the next periodic reconcile.
//
// notify runs on Watch's goroutine and must not block for long (a
// non-blocking send on a buffered channel is the intended use). Watch blocks
// until ctx is done and then returns nil after releasing the watcher; it
// returns an error only when the watch cannot be set up.
func Watch(ctx context.Context, root string, debounce time.Duration, notify func(), logger *slog.Logger) error {
	return watch(ctx, root, debounce, notify, logger, nil)
}

// watch is Watch; started, when not nil, is given the watcher once it is
// set up (tests use it to stand for the kernel).
func watch(ctx context.Context, root string, debounce time.Duration, notify func(), logger *slog.Logger, started func(*fsnotify.Watcher)) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return fmt.Errorf("watch %s: %w", root, err)
	}
	fi, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("watch %s: %w", root, ErrNotDir)
	}
	w, err := newWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", root, kernelLimit(err))
	}
	defer w.Close()

	fw := &folderWatcher{w: w, root: root, parent: filepath.Dir(root), logger: logger}
	if err := fw.addTree(root); err != nil {
		return fmt.Errorf("watch %s: %w", root, err)
	}
	if fw.parent != root {
		// Without it a deleted-and-recreated spec folder goes unwatched:
		// the kernel drops a watch with its folder.
		if err := addWatch(w, fw.parent); err != nil {
			logger.Warn("watch spec folder's parent: a recreated spec folder will not be seen", "path", fw.parent, "error", kernelLimit(err))
			fw.parent = ""
		}
	} else {
		fw.parent = ""
	}
	fw.watchLinks()
	if fs := fsOf(root); fs != "" {
		logger.Warn("spec folder is on a network or FUSE filesystem: changes made other than through this machine's mount raise no event and are seen only at the next periodic reconcile",
			"path", root, "filesystem", fs)
	}
	if started != nil {
		started(w)
	}

	// The timer only runs while changes are pending.
	timer := time.NewTimer(debounce)
	timer.Stop()
	var pendingSince time.Time
	pend := func() {
		now := time.Now()
		if pendingSince.IsZero() {
			pendingSince = now
		}
		wait := debounce
		if deadline := pendingSince.Add(maxDelayFactor * debounce); now.Add(wait).After(deadline) {
			wait = max(deadline.Sub(now), 0)
		}
		timer.Reset(wait)
	}

	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if fw.handle(ev) {
				pend()
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			// An overflowed event queue means changes were lost: reload to be
			// safe, and watch again, since the creation of a sub-folder may
			// be among the lost events and it would then stay unwatched.
			logger.Warn("spec folder watch error", "path", root, "error", err)
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				if err := fw.addTree(root); err != nil && !errors.Is(err, fs.ErrNotExist) {
					logger.Warn("re-watch spec folder after overflow", "path", root, "error", err)
				}
				pend()
			}
		case <-timer.C:
			pendingSince = time.Time{}
			notify()
		}
	}
}

// newWatcher and addWatch stand for the kernel's inotify calls, and fsOf
// for its statfs; tests replace them to play its limits and filesystems.
var (
	newWatcher = fsnotify.NewWatcher
	addWatch   = (*fsnotify.Watcher).Add
	fsOf       = remoteFS
)

type folderWatcher struct {
	w      *fsnotify.Watcher
	root   string
	parent string // watched for the root's own removal and re-creation; "" if not
	// links are the symlinks above the root on its path; their
	// folders, linkDirs, are watched for their switch, which the watches
	// below would not see: inotify holds the folders the links named.
	links, linkDirs map[string]bool
	logger          *slog.Logger
}

// handle reports whether ev is a change the spec loader may care about and
// starts watching folders that appeared.
func (fw *folderWatcher) handle(ev fsnotify.Event) bool {
	if fw.links[ev.Name] {
		if ev.Has(fsnotify.Create) {
			fw.rewatchAll()
			return true
		}
		return false // the old link renamed away or removed: its replacement follows
	}
	if fw.linkDirs[filepath.Dir(ev.Name)] {
		return false // a sibling of a link above the spec folder
	}
	if fw.parent != "" && ev.Name != fw.root && filepath.Dir(ev.Name) == fw.parent {
		return false // a sibling of the spec folder
	}
	if ignoredPath(fw.root, ev.Name) {
		return false
	}
	if ev.Op == fsnotify.Chmod {
		return false
	}
	if ev.Name == fw.root && ev.Has(fsnotify.Create) {
		fw.rewatchRoot()
		return true
	}
	if ev.Has(fsnotify.Create) {
		if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
			// Files may land in the new folder before its watch is in place,
			// so the walk inside addTree is what guarantees they are seen:
			// any change already made is covered by this one notification.
			if err := fw.addTree(ev.Name); err != nil {
				fw.logger.Warn("watch new spec sub-folder", "path", ev.Name, "error", err)
			}
		}
	}
	return true
}

// rewatchRoot watches the folder that now stands at the root's path (made
// again, renamed in, or a symlink switched to another release). The
// watches of the folder it replaced go first: that folder may live on (an
// older release), and its saves are no longer the spec's, while each of its
// watches would count against the kernel's limit until the daemon stops.
func (fw *folderWatcher) rewatchRoot() {
	for _, p := range fw.w.WatchList() {
		if p == fw.root || strings.HasPrefix(p, fw.root+string(filepath.Separator)) {
			if err := fw.w.Remove(p); err != nil && !errors.Is(err, fsnotify.ErrNonExistentWatch) {
				fw.logger.Debug("unwatch replaced spec folder", "path", p, "error", err)
			}
		}
	}
	if err := fw.addTree(fw.root); err != nil && !errors.Is(err, fs.ErrNotExist) {
		fw.logger.Warn("watch replaced spec folder", "path", fw.root, "error", err)
	}
}

// watchLinks finds the symlinks on the root's path above it (the root's
// own switch is seen from its parent) and watches the folder of each.
func (fw *folderWatcher) watchLinks() {
	for d := range fw.linkDirs {
		if err := fw.w.Remove(d); err != nil && !errors.Is(err, fsnotify.ErrNonExistentWatch) {
			fw.logger.Debug("unwatch folder of a link above the spec folder", "path", d, "error", err)
		}
	}
	fw.links, fw.linkDirs = map[string]bool{}, map[string]bool{}
	for p := filepath.Dir(fw.root); ; p = filepath.Dir(p) {
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			fw.links[p] = true
			fw.linkDirs[filepath.Dir(p)] = true
		}
		if filepath.Dir(p) == p {
			break
		}
	}
	for d := range fw.linkDirs {
		if err := addWatch(fw.w, d); err != nil {
			fw.logger.Warn("watch folder of a link above the spec folder: its switch will not be seen", "path", d, "error", kernelLimit(err))
		}
	}
}

// rewatchAll watches anew everything the root's path resolves through,
// after a link above the root was switched.
func (fw *folderWatcher) rewatchAll() {
	if fw.parent != "" {
		// Watches are kept by path: the old one would hold the old folder.
		if err := fw.w.Remove(fw.parent); err != nil && !errors.Is(err, fsnotify.ErrNonExistentWatch) {
			fw.logger.Debug("unwatch replaced spec folder's parent", "path", fw.parent, "error", err)
		}
		if err := addWatch(fw.w, fw.parent); err != nil && !errors.Is(err, fs.ErrNotExist) {
			fw.logger.Warn("watch spec folder's parent: a recreated spec folder will not be seen", "path", fw.parent, "error", kernelLimit(err))
		}
	}
	fw.watchLinks()
	fw.rewatchRoot()
}

// addTree watches dir and every non-dot folder below it. The root may be
// a symlink to the folder: WalkDir does not follow it, so the walk goes
// through the folder it names while the watches keep the root's path,
// which inotify resolves, so that events name paths below the root.
func (fw *folderWatcher) addTree(dir string) error {
	walkDir := dir
	if dir == fw.root {
		target, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return err
		}
		walkDir = target
	}
	return filepath.WalkDir(walkDir, func(p string, d fs.DirEntry, err error) error {
		if walkDir != dir {
			rel, relErr := filepath.Rel(walkDir, p)
			if relErr != nil {
				return relErr
			}
			p = filepath.Join(dir, rel)
		}
		if err != nil {
			// A folder removed while walking is not an error worth failing on.
			if errors.Is(err, fs.ErrNotExist) && p != dir {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if p != fw.root && ignoredPath(fw.root, p) {
			return filepath.SkipDir
		}
		if err := addWatch(fw.w, p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return filepath.SkipDir
			}
			return fmt.Errorf("%s: %w", p, kernelLimit(err))
		}
		return nil
	})
}

// ignoredPath reports whether p, below root, has a dot-prefixed component
// (.git, editor swap files, atomic-save temp files). "..data" is the
// exception: a Kubernetes ConfigMap or Secret volume publishes each update
// by swapping that symlink, and it is the only event such an update makes.
func ignoredPath(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	if err != nil || rel == "." {
		return false
	}
	for part := range strings.SplitSeq(rel, string(filepath.Separator)) {
		if strings.HasPrefix(part, ".") && part != ".." && part != "..data" {
			return true
		}
	}
	return false
}

// kernelLimit names the inotify limit behind err, if any: the kernel
// reports the watch limit as ENOSPC ("no space left on device") and the
// instance limit as EMFILE, shared with every process of the same user.
func kernelLimit(err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("the kernel's limit on inotify watches is reached (raise the sysctl fs.inotify.max_user_watches): %w", err)
	case errors.Is(err, syscall.EMFILE):
		return fmt.Errorf("the kernel's limit on inotify instances or the process's on open files is reached (raise the sysctl fs.inotify.max_user_instances or the open files limit): %w", err)
	}
	return err
}
