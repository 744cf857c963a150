package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Dir is a spec tree in a local folder, read in place. Changes become
// visible as soon as they are written, so callers pair it with Watch.
//
// A folder reached through symlinks (a release switched with `ln -sfn`,
// the folder itself or one above it) is resolved at Fetch: the revision
// is the release the links named then, so a switch while the caller reads
// it cannot mix two releases, and the next Fetch returns the new one.
type Dir struct {
	// Path is the folder; relative paths resolve against the working
	// directory at Fetch time.
	Path string
}

// Fetch checks that the folder exists and returns its absolute path, with
// symlinks resolved.
func (d Dir) Fetch(ctx context.Context) (Revision, error) {
	if err := ctx.Err(); err != nil {
		return Revision{}, err
	}
	abs, err := filepath.Abs(d.Path)
	if err != nil {
		return Revision{}, fmt.Errorf("resolve spec folder %s: %w", d.Path, err)
	}
	// The loader walks the tree, opens it as an os.Root and reads each
	// file by separate paths: through a link, each would resolve it anew.
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		return Revision{}, fmt.Errorf("spec folder: %w", err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return Revision{}, fmt.Errorf("spec folder: %w", err)
	}
	if !fi.IsDir() {
		return Revision{}, fmt.Errorf("spec folder %s: %w", abs, ErrNotDir)
	}
	return Revision{Dir: abs}, nil
}

// String returns the folder path.
func (d Dir) String() string { return d.Path }
