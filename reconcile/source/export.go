package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"

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

// exportTree writes the regular files of tree below dest, reading its
// objects from s. Symlinks and submodules are skipped: a spec tree has no
// use for them and a symlink could point the loader outside the revision;
// a tree that holds only such entries is refused with errOnlySkipped, so
// that the loader is not given a folder that is missing or, worse, empty.
// With maxBytes > 0 the export stops with a *spec.LimitError at the first
// file that takes the total past it, and with maxFiles > 0 with a
// *FilesLimitError at the first file past that many, before that file is
// written. Errors of reading s wrap errReadObject; a name no file can have
// is the commit's fault and matches spec.ErrInvalid.
//
// The tree is walked here rather than with (*object.Tree).Files: that
// iterator drops submodules before they can be counted as skipped, and
// stops at names git accepts but it refuses (a control character) with
// an error that cannot be told from a damaged object.
func exportTree(ctx context.Context, s storer.EncodedObjectStorer, tree *object.Tree, dest string, logger *slog.Logger, maxBytes int64, maxFiles int) error {
	e := &exporter{ctx: ctx, s: s, dest: dest, logger: logger, maxBytes: maxBytes, maxFiles: maxFiles}
	if err := e.tree(tree, ""); err != nil {
		return err
	}
	if e.written == 0 && e.skipped > 0 {
		return errOnlySkipped
	}
	return nil
}

// maxExportPath bounds the length of an exported file's path: no
// filesystem takes a longer one, and it bounds the walk's recursion
// through a crafted chain of nested trees.
const maxExportPath = 4096

type exporter struct {
	ctx              context.Context
	s                storer.EncodedObjectStorer
	dest             string
	logger           *slog.Logger
	maxBytes         int64
	maxFiles         int
	total            int64
	written, skipped int
}

// tree exports t, found at the slash-separated dir below the export root.
func (e *exporter) tree(t *object.Tree, dir string) error {
	for _, entry := range t.Entries {
		if err := e.ctx.Err(); err != nil {
			return err
		}
		name := entry.Name
		if dir != "" {
			name = dir + "/" + entry.Name
		}
		if entry.Name == "" || entry.Name == "." || entry.Name == ".." || strings.ContainsAny(entry.Name, "/\x00") ||
			len(name) > maxExportPath || !filepath.IsLocal(filepath.FromSlash(name)) {
			return fmt.Errorf("%w: tree entry %q escapes the checkout or names no file", spec.ErrInvalid, name)
		}
		switch entry.Mode {
		case filemode.Dir:
			sub, err := object.GetTree(e.s, entry.Hash)
			if err != nil {
				return fmt.Errorf("%w %s: %w", errReadObject, name, err)
			}
			if err := e.tree(sub, name); err != nil {
				return err
			}
		case filemode.Regular, filemode.Deprecated:
			if err := e.file(name, entry.Hash, 0o644); err != nil {
				return err
			}
		case filemode.Executable:
			if err := e.file(name, entry.Hash, 0o755); err != nil {
				return err
			}
		default:
			e.logger.Debug("skipping non-regular tree entry", "path", name, "mode", entry.Mode.String())
			e.skipped++
		}
	}
	return nil
}

// file writes the blob h to name below the export root.
func (e *exporter) file(name string, h plumbing.Hash, perm os.FileMode) error {
	blob, err := object.GetBlob(e.s, h)
	if err != nil {
		return fmt.Errorf("%w %s: %w", errReadObject, name, err)
	}
	if e.written++; e.maxFiles > 0 && e.written > e.maxFiles {
		return &FilesLimitError{Limit: e.maxFiles, File: name}
	}
	if e.total += blob.Size; e.maxBytes > 0 && e.total > e.maxBytes {
		return spec.NewBytesLimitError(name, e.maxBytes)
	}
	target := filepath.Join(e.dest, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	r, err := blob.Reader()
	if err != nil {
		return fmt.Errorf("%w %s: %w", errReadObject, name, err)
	}
	defer r.Close()
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, readErrs{r}); err != nil {
		out.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	return out.Close()
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
	if err := exportTree(ctx, repo.Storer, tree, dest, slog.New(slog.DiscardHandler), 0, 0); err != nil {
		return Revision{}, fmt.Errorf("checkout %s: %w", ref, err)
	}
	return Revision{ID: commit.Hash.String(), Dir: dest, Name: gitName(ref, commit.Hash.String())}, nil
}
