package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/idrecon/idrecon/reconcile"
)

// errNothingPushed is a push-mode daemon's state before its first apply.
var errNothingPushed = errors.New("no spec pushed yet: run 'idrecon apply DIR'")

// pushSource is the source of a daemon started without --spec or --git: the
// last spec pushed with `idrecon apply`, kept in the data dir so that it
// survives restarts and the loop checks drift against it like any source.
type pushSource struct {
	dir string // the current spec; replaced whole by each push
	mu  sync.Mutex
}

func newPushSource(dataDir string) (*pushSource, error) {
	base := dataDir
	if base == "" {
		var err error
		if base, err = os.MkdirTemp("", "idrecon-push-"); err != nil {
			return nil, err
		}
	}
	return &pushSource{dir: filepath.Join(base, "pushed")}, nil
}

func (p *pushSource) Fetch(context.Context) (reconcile.Revision, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := os.Stat(p.dir); errors.Is(err, os.ErrNotExist) {
		return reconcile.Revision{}, errNothingPushed
	}
	return reconcile.Revision{Dir: p.dir}, nil
}

func (p *pushSource) String() string { return "pushed specs (idrecon apply), kept in " + p.dir }

// replace makes dir, an unpacked and validated spec on the same filesystem,
// the current spec. The previous one is kept aside until the next replace,
// so that restore can put it back, and a failed rename leaves it serving.
func (p *pushSource) replace(dir string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.dir + ".old"
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	if err := os.Rename(p.dir, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("push: %w", err)
	}
	if err := os.Rename(dir, p.dir); err != nil {
		os.Rename(old, p.dir)
		return fmt.Errorf("push: %w", err)
	}
	return nil
}

// restore puts back the spec the last replace replaced (none, before the
// first push), so that a refused push is not what the next reconcile or
// restart reads.
func (p *pushSource) restore() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.dir + ".old"
	if err := os.RemoveAll(p.dir); err != nil {
		return fmt.Errorf("restore pushed spec: %w", err)
	}
	if err := os.Rename(old, p.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("restore pushed spec: %w", err)
	}
	return nil
}

func uploadDir(p *pushSource) string {
	if p == nil {
		return ""
	}
	return filepath.Dir(p.dir)
}

// pushFunc returns the admin API's push hook, or nil outside push mode.
func pushFunc(p *pushSource, rec *reconcile.Reconciler) func(context.Context, string) (*reconcile.Plan, error) {
	if p == nil {
		return nil
	}
	return func(ctx context.Context, dir string) (*reconcile.Plan, error) {
		if err := p.replace(dir); err != nil {
			return nil, err
		}
		plan, err := rec.ReconcileOnce(ctx)
		var refused *reconcile.RefusedError
		if errors.As(err, &refused) {
			// The runtime kept the last good spec: so does the source.
			return nil, errors.Join(err, p.restore())
		}
		return plan, err
	}
}
