package reconcile

import "context"

// Source hands the reconciler the spec to converge on. Fetch brings the
// source up to date (a git pull, a no-op for a folder) and says where the
// spec now is on disk.
type Source interface {
	Fetch(ctx context.Context) (Revision, error)
	String() string
}

// Revision is one fetched state of a Source.
type Revision struct {
	// ID is the commit sha, or "" for a plain folder.
	ID string
	// Dir is the spec root on disk.
	Dir string
}
