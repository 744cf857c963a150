package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/idrecon/idrecon/spec"
)

// FilesLimitError refuses a git export of more than Limit files: as many
// as idrecon apply accepts in a bundle (bundle.MaxFiles), so a spec served
// from git may be pushed too. The byte limit does not bound the files (a
// tree of empty ones has no bytes), and each costs an inode and a write.
// Like a *spec.LimitError it matches spec.ErrInvalid: the revision, not
// the daemon, is at fault.
type FilesLimitError struct {
	Limit int    // the limit that was crossed
	File  string // the file at which it was crossed, relative to the spec root
}

func (e *FilesLimitError) Error() string {
	return fmt.Sprintf("the spec has more than %d files (reached at %s); a spec has far fewer: check that the spec path names the spec's folder",
		e.Limit, e.File)
}

// Is reports whether target is spec.ErrInvalid.
func (e *FilesLimitError) Is(target error) bool { return target == spec.ErrInvalid }

// errOnlySkipped is returned by exportTree for a tree that has entries but
// no regular file: all were symlinks or submodules, which are skipped.
var errOnlySkipped = errors.New("no regular file to export (symlinks and submodules are not exported)")

// errReadObject marks an export that failed reading the repository's
// objects, not writing the files.
var errReadObject = errors.New("read git object")

// exportTree writes the regular files of tree below dest. Symlinks and
// submodules are skipped: a spec tree has no use for them and a symlink
// could point the loader outside the revision; a tree that holds only such
// entries is refused with errOnlySkipped, so that the loader is not given a
// folder that is missing or, worse, empty. With maxBytes > 0 the export
// stops with a *spec.LimitError at the first file that takes the total past
// it, and with maxFiles > 0 with a *FilesLimitError at the first file past
// that many, before that file is written.
func exportTree(ctx context.Context, tree *object.Tree, dest string, logger *slog.Logger, maxBytes int64, maxFiles int) error {
	files := tree.Files()
	defer files.Close()
	var total int64
	written, skipped := 0, 0
	var ownErr bool // the error, if any, is the callback's, not the tree walk's
	err := files.ForEach(func(f *object.File) (err error) {
		defer func() { ownErr = err != nil }()
		if err := ctx.Err(); err != nil {
			return err
		}
		rel := filepath.FromSlash(f.Name)
		if !filepath.IsLocal(rel) {
			return fmt.Errorf("tree entry %q escapes the checkout", f.Name)
		}
		var perm os.FileMode = 0o644
		switch f.Mode {
		case filemode.Regular, filemode.Deprecated:
		case filemode.Executable:
			perm = 0o755
		default:
			logger.Debug("skipping non-regular tree entry", "path", f.Name, "mode", f.Mode.String())
			skipped++
			return nil
		}
		if written++; maxFiles > 0 && written > maxFiles {
			return &FilesLimitError{Limit: maxFiles, File: f.Name}
		}
		if total += f.Size; maxBytes > 0 && total > maxBytes {
			return spec.NewBytesLimitError(f.Name, maxBytes)
		}
		target := filepath.Join(dest, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		r, err := f.Reader()
		if err != nil {
			return fmt.Errorf("%w %s: %w", errReadObject, f.Name, err)
		}
		defer r.Close()
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, readErrs{r}); err != nil {
			out.Close()
			return fmt.Errorf("write %s: %w", f.Name, err)
		}
		return out.Close()
	})
	if err != nil && !ownErr {
		return fmt.Errorf("%w: %w", errReadObject, err)
	}
	if err == nil && written == 0 && skipped > 0 {
		return errOnlySkipped
	}
	return err
}

// readErrs marks the errors of reading a blob, so that a damaged object
// is told from a full disk.
type readErrs struct{ r io.Reader }

func (r readErrs) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %w", errReadObject, err)
	}
	return n, err
}

// Checkout exports the tree of ref (a branch, tag, SHA or any revision
// expression go-git understands, e.g. "origin/main" or "HEAD~1") of the
// local repository containing repoDir into dest, which must not exist or be
// empty. It serves `idrecon plan --base-ref REF`: Revision.Dir is dest, the
// repository root; callers join their spec path to it. Symlinks and
// submodules are not exported.
func Checkout(ctx context.Context, repoDir, ref, dest string) (Revision, error) {
	repo, err := git.PlainOpenWithOptions(repoDir, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		return Revision{}, fmt.Errorf("open repository %s: %w", repoDir, err)
	}
	h, err := repo.ResolveRevision(plumbing.Revision(ref))
	if err != nil {
		return Revision{}, fmt.Errorf("resolve %q: %w: %w", ref, ErrRefNotFound, err)
	}
	// ResolveRevision may land on an annotated tag object.
	c, err := peel(repo, *h)
	if err != nil {
		return Revision{}, fmt.Errorf("resolve %q: %w", ref, err)
	}
	commit, err := repo.CommitObject(c)
	if err != nil {
		return Revision{}, fmt.Errorf("resolve %q: %w: %w", ref, ErrRefNotFound, err)
	}
	tree, err := commit.Tree()
	if err != nil {
		return Revision{}, fmt.Errorf("read tree of %s: %w", commit.Hash, err)
	}
	dest, err = filepath.Abs(dest)
	if err != nil {
		return Revision{}, fmt.Errorf("checkout destination: %w", err)
	}
	entries, err := os.ReadDir(dest)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dest, 0o755); err != nil {
			return Revision{}, fmt.Errorf("checkout destination: %w", err)
		}
	case err != nil:
		return Revision{}, fmt.Errorf("checkout destination: %w", err)
	case len(entries) > 0:
		return Revision{}, fmt.Errorf("checkout destination %s is not empty", dest)
	}
	// No limits: this is the user's own repository on their machine, and
	// spec.Load bounds what it reads of it.
	if err := exportTree(ctx, tree, dest, slog.New(slog.DiscardHandler), 0, 0); err != nil {
		return Revision{}, fmt.Errorf("checkout %s: %w", ref, err)
	}
	return Revision{ID: commit.Hash.String(), Dir: dest, Name: gitName(ref, commit.Hash.String())}, nil
}
