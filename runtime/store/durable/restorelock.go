package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// A restore holds its data dir's lock from before it creates its temporary
// file to its end. The lock is a flock on the directory itself: a lock file
// would be left in a data dir that a refused restore must leave as it found
// it (the CLI removes a data dir it made only when it is empty), and the
// daemon's daemon.lock is held by a running --etcd daemon for its life.
// Nothing else takes this lock for long: a daemon's Open takes it shared only
// while it removes leftovers, so whoever holds it exclusively is a restore.

// lockDataDir takes the lock of the data dir dir, exclusive or shared (how
// is syscall.LOCK_EX or LOCK_SH), without waiting; release releases it.
func lockDataDir(dir string, how int) (release func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil // closing f releases the lock
}

// HoldDataDir holds the data dir dir against a restore, for a daemon that
// keeps no state file there for a restore to find locked (its state is in
// etcd): a restore into it would report success and leave a file that a
// start without etcd would serve. Other holders may share it; it fails
// with ErrLocked while a restore runs. release lets it go.
func HoldDataDir(dir string) (release func(), err error) {
	release, err = lockDataDir(dir, syscall.LOCK_SH)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return nil, fmt.Errorf("%w: data dir %s is held by an idrecon restore running into it: start once it is done", ErrLocked, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("data dir: lock %s: %w", dir, err)
	}
	return release, nil
}

// lockForRestore takes the data dir of the state file at path for a
// restore, or fails with ErrLocked while another restore has it.
func lockForRestore(path string) (release func(), err error) {
	dir := filepath.Dir(path)
	release, err = lockDataDir(dir, syscall.LOCK_EX)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return nil, fmt.Errorf("%w: data dir %s is held by another restore, or by a daemon running on it with --etcd (its state is in etcd: idrecon restore --to-etcd puts a backup there); retry once it is done", ErrLocked, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("durable: restore: lock data dir %s: %w", dir, err)
	}
	return release, nil
}

// createRestoreTemp creates the empty temporary file a restore of the state
// file at path writes, in path's dir, under a name isRestoreLeftover knows.
func createRestoreTemp(path string) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+restoreInfix+"*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	if err := f.Close(); err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

const restoreInfix = ".restore-"

// isRestoreLeftover says whether name, in the dir of the state file at
// path, is a restore's temporary file (the state file's name, restoreInfix
// and os.CreateTemp's random digits) or a log segment that verifying it
// made.
func isRestoreLeftover(path, name string) bool {
	rest, ok := strings.CutPrefix(name, filepath.Base(path)+restoreInfix)
	if !ok {
		return false
	}
	random, seq, isSegment := strings.Cut(rest, ".wal.")
	if isSegment && (len(seq) != 16 || strings.Trim(seq, "0123456789abcdef") != "") {
		return false
	}
	return random != "" && strings.Trim(random, "0123456789") == ""
}

// removeRestoreLeftovers removes the files of restores that were killed
// before they finished from beside the state file at path, unless a
// restore is running there: its files are not leftovers.
func removeRestoreLeftovers(path string, log *slog.Logger) {
	release, err := lockDataDir(filepath.Dir(path), syscall.LOCK_SH)
	if err != nil {
		return
	}
	defer release()
	removeLeftovers(path, log)
}

// removeLeftovers is removeRestoreLeftovers for a caller that holds the
// data dir's lock. A leftover that cannot be removed now is only a file
// nothing reads, and the next restore or start tries again: it fails
// nothing.
func removeLeftovers(path string, log *slog.Logger) {
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return
	}
	for _, e := range entries {
		if !isRestoreLeftover(path, e.Name()) {
			continue
		}
		name := filepath.Join(filepath.Dir(path), e.Name())
		if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Warn("could not remove the leftover of a restore that did not finish", "file", name, "err", err)
			continue
		}
		log.Info("removed the leftover of a restore that did not finish", "file", name)
	}
}
