package reconcile

import (
	"context"

	"github.com/idrecon/idrecon/reconcile/source"
)

// Source hands the reconciler the spec to converge on. Fetch brings the
// source up to date (a git pull, a no-op for a folder) and says where the
// spec now is on disk. source.Dir, *source.Git and *source.Push implement it.
type Source interface {
	Fetch(ctx context.Context) (source.Revision, error)
	String() string
}

var (
	_ Source = source.Dir{}
	_ Source = (*source.Git)(nil)
	_ Source = (*source.Push)(nil)
)
