package spec

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

var (
	errTooLarge   = errors.New("too large")
	errNotRegular = errors.New("not a regular file")
	errInDataDir  = errors.New("inside the daemon's data dir")
)

// openFlags never block: opening a FIFO for reading waits for a writer,
// which would hang the reconcile loop and shutdown with it. The type is
// checked on the opened file before anything is read.
const openFlags = os.O_RDONLY | syscall.O_NONBLOCK

// files reads everything a load reads: the spec's YAML files and the files
// its documents refer to. Every read takes a regular file of bounded size.
type files struct {
	root *os.Root // the spec repo; nil when validating documents without one
	// realRoot and realDataDir are absolute, symlink-free paths; realDataDir
	// is "" when the load has no data dir to protect.
	realRoot    string
	realDataDir string
}

func newFiles(root *os.Root, rootDir, dataDir string) *files {
	f := &files{root: root}
	if rootDir != "" {
		f.realRoot = realPath(rootDir)
	}
	if dataDir != "" {
		f.realDataDir = realPath(dataDir)
	}
	return f
}

// realPath makes p absolute and resolves its symlinks as far as they exist.
func realPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	return filepath.Clean(p)
}

// within reports whether p is dir or below it; both are clean and absolute.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && (rel == "." || filepath.IsLocal(rel))
}

// repo reads a file named relative to the spec root; os.Root keeps it, and
// any symlink it follows, inside the root.
func (f *files) repo(name string, limit int64) ([]byte, error) {
	if f.root == nil {
		return nil, errors.New("files relative to the spec repo can only be read while loading the repo")
	}
	if err := f.checkDataDir(filepath.Join(f.realRoot, name)); err != nil {
		return nil, err
	}
	file, err := f.root.OpenFile(name, openFlags, 0)
	if err != nil {
		return nil, err
	}
	return readRegular(file, limit)
}

// abs reads an absolute path chosen by the operator (symlinks, as in
// Kubernetes secret volumes, are followed) that does not lead into the data
// dir: the state, audit log and admin token there are not spec inputs.
func (f *files) abs(name string, limit int64) ([]byte, error) {
	if err := f.checkDataDir(name); err != nil {
		return nil, err
	}
	file, err := os.OpenFile(name, openFlags, 0)
	if err != nil {
		return nil, err
	}
	return readRegular(file, limit)
}

// checkDataDir refuses a path that resolves into the data dir, unless it
// resolves into the spec repo as well (push mode keeps the spec there).
// The path is resolved before it is opened, so a symlink swapped in
// between is not caught; the data dir is the daemon's own, 0700.
func (f *files) checkDataDir(name string) error {
	if f.realDataDir == "" {
		return nil
	}
	p := realPath(name)
	if within(p, f.realDataDir) && (f.realRoot == "" || !within(p, f.realRoot)) {
		return errInDataDir
	}
	return nil
}

// readRegular reads an opened file, refusing anything but a regular file of
// at most limit bytes, and closes it. The size is checked before reading and
// again while reading, as the file may grow in between.
func readRegular(file *os.File, limit int64) ([]byte, error) {
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errNotRegular
	}
	tooLarge := fmt.Errorf("%w (more than %d bytes)", errTooLarge, limit)
	if fi.Size() > limit {
		return nil, tooLarge
	}
	data, err := io.ReadAll(io.LimitReader(file, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, tooLarge
	}
	return data, nil
}
