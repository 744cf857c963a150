package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// ErrNothingPushed is what a Push source's Fetch returns before the first
// push.
// It stalls: only a push, which triggers a reconcile, changes the outcome.
var ErrNothingPushed error = &stallingError{msg: "no spec pushed yet: run 'idrecon apply DIR'", reason: "NothingPushed"}

// Push is the source of a daemon started without a folder or git
// repository: the last spec pushed with `idrecon apply`, kept in a folder
// of the data dir so that it survives restarts and the loop checks drift
// against it like any source.
type Push struct {
	dir string // the current spec; replaced whole by each push
	mu  sync.Mutex
}

// NewPush returns the push source kept in dataDir/pushed, or, without a
// data dir, in a new temporary folder (nothing then survives a restart).
func NewPush(dataDir string) (*Push, error) {
	base := dataDir
	if base == "" {
		var err error
		if base, err = os.MkdirTemp("", "idrecon-push-"); err != nil {
			return nil, err
		}
	}
	p := &Push{dir: filepath.Join(base, "pushed")}
	if err := p.recover(); err != nil {
		return nil, err
	}
	return p, nil
}

// recover finishes a Replace or Restore that a stop interrupted between
// its renames: the spec then served is in .old, and none is current. Put
// back, it is again what the runtime last kept; read as "nothing pushed",
// the daemon would wait for a push it had already taken.
func (p *Push) recover() error {
	if _, err := os.Lstat(p.dir); !errors.Is(err, os.ErrNotExist) {
		return removeRefused(p.dir)
	}
	if err := os.Rename(p.dir+".old", p.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("push: recover the pushed spec: %w", err)
	}
	return removeRefused(p.dir)
}

// removeRefused removes what Restore set aside.
func removeRefused(dir string) error {
	if err := os.RemoveAll(dir + ".refused"); err != nil {
		return fmt.Errorf("push: remove the refused spec: %w", err)
	}
	return nil
}

// Fetch returns the current pushed spec, or ErrNothingPushed.
func (p *Push) Fetch(context.Context) (Revision, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := os.Stat(p.dir); errors.Is(err, os.ErrNotExist) {
		return Revision{}, ErrNothingPushed
	}
	return Revision{Dir: p.dir}, nil
}

func (p *Push) String() string { return "pushed specs (idrecon apply), kept in " + p.dir }

// UploadDir is where uploads are unpacked: on the filesystem of the current
// spec, so that Replace can rename one into place.
func (p *Push) UploadDir() string { return filepath.Dir(p.dir) }

// Replace makes dir, an unpacked and validated spec in UploadDir, the
// current spec. The previous one is kept aside until the next Replace, so
// that Restore can put it back, and a failed rename leaves it serving.
func (p *Push) Replace(dir string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	// The push is answered once its reconcile applied: its files and their
	// names must be on disk first, or a power loss brings back an empty or
	// half-written spec that the next start serves as the one pushed.
	if err := syncTree(dir); err != nil {
		return fmt.Errorf("push: %w", err)
	}
	old := p.dir + ".old"
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("push: %w", err)
	}
	if err := os.Rename(p.dir, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("push: %w", err)
	}
	if err := os.Rename(dir, p.dir); err != nil {
		os.Rename(old, p.dir)
		return fmt.Errorf("push: %w", err)
	}
	if err := syncPath(filepath.Dir(p.dir)); err != nil {
		return fmt.Errorf("push: %w", err)
	}
	return nil
}

// syncPath syncs a file or directory; tests count the calls.
var syncPath = func(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// syncTree syncs every file and directory under root, root included:
// a spec is at most bundle.MaxFiles small files.
func syncTree(root string) error {
	return filepath.WalkDir(root, func(name string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return syncPath(name)
	})
}

// Restore puts back the spec the last Replace replaced (none, before the
// first push), so that a refused push is not what the next reconcile or
// restart reads.
func (p *Push) Restore() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	// The refused spec is renamed aside before it is removed: removed in
	// place, a stop or an error halfway would leave part of it current,
	// served on the next reconcile or restart.
	old, refused := p.dir+".old", p.dir+".refused"
	if err := removeRefused(p.dir); err != nil {
		return fmt.Errorf("restore pushed spec: %w", err)
	}
	if err := os.Rename(p.dir, refused); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("restore pushed spec: %w", err)
	}
	if err := os.Rename(old, p.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("restore pushed spec: %w", err)
	}
	if err := syncPath(filepath.Dir(p.dir)); err != nil {
		return fmt.Errorf("restore pushed spec: %w", err)
	}
	if err := removeRefused(p.dir); err != nil {
		return fmt.Errorf("restore pushed spec: %w", err)
	}
	return nil
}
