package source

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/idrecon/idrecon/spec"
	"github.com/idrecon/idrecon/spec/bundle"
)

// storeObject encodes o into the repository and returns its hash.
func (r *testRepo) storeObject(o interface {
	Encode(plumbing.EncodedObject) error
}) plumbing.Hash {
	r.t.Helper()
	obj := r.repo.Storer.NewEncodedObject()
	if err := o.Encode(obj); err != nil {
		r.t.Fatal(err)
	}
	h, err := r.repo.Storer.SetEncodedObject(obj)
	if err != nil {
		r.t.Fatal(err)
	}
	return h
}

// blob stores content and returns its hash.
func (r *testRepo) blob(content string) plumbing.Hash {
	r.t.Helper()
	obj := r.repo.Storer.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	w, err := obj.Writer()
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := w.Write([]byte(content)); err != nil {
		r.t.Fatal(err)
	}
	w.Close()
	h, err := r.repo.Storer.SetEncodedObject(obj)
	if err != nil {
		r.t.Fatal(err)
	}
	return h
}

// tree stores a tree of entries, which must be sorted by name.
func (r *testRepo) tree(entries ...object.TreeEntry) plumbing.Hash {
	r.t.Helper()
	return r.storeObject(&object.Tree{Entries: entries})
}

// commitTree commits tree on main without touching the worktree: it
// builds trees no worktree can hold quickly (thousands of files, entries
// of any mode).
func (r *testRepo) commitTree(tree plumbing.Hash) plumbing.Hash {
	r.t.Helper()
	r.n++
	h := r.storeObject(&object.Commit{Author: *r.sig(), Committer: *r.sig(), Message: "tree", TreeHash: tree})
	r.setRef(plumbing.NewBranchReferenceName("main"), h)
	return h
}

// emptyFiles returns n tree entries of empty files, sorted by name.
func (r *testRepo) emptyFiles(n int) []object.TreeEntry {
	empty := r.blob("")
	entries := make([]object.TreeEntry, n)
	for i := range entries {
		entries[i] = object.TreeEntry{Name: fmt.Sprintf("f%06d.yaml", i), Mode: filemode.Regular, Hash: empty}
	}
	return entries
}

// The byte limit does not bound a tree of empty files: a commit of a
// million of them would write a million files. The export stops at the
// files a bundle may hold, before writing the file that crosses it.
func TestGitFetchStopsAtTheFilesLimit(t *testing.T) {
	r := newBareTestRepo(t)
	r.commitTree(r.tree(object.TreeEntry{Name: "deploy", Mode: filemode.Dir, Hash: r.tree(r.emptyFiles(bundle.MaxFiles + 1)...)}))

	g := newTestGit(t, GitOptions{URL: r.url(), Path: "deploy"})
	_, err := g.Fetch(context.Background())
	if le, ok := errors.AsType[*FilesLimitError](err); !ok || le.Limit != bundle.MaxFiles || !errors.Is(err, spec.ErrInvalid) ||
		!strings.Contains(err.Error(), fmt.Sprintf("more than %d files", bundle.MaxFiles)) {
		t.Fatalf("err = %v, want a *FilesLimitError naming the limit", err)
	}
	if entries, _ := filepath.Glob(filepath.Join(g.opts.CacheDir, "*rev-*")); len(entries) != 0 {
		t.Errorf("a refused revision was exported: %v", entries)
	}
}

// A spec path that holds only symlinks and submodules exports nothing: the
// loader would be given a folder that does not exist ("no such file or
// directory") or, for the whole repository, an empty one, an empty spec.
func TestGitFetchPathOfNoRegularFile(t *testing.T) {
	r := newBareTestRepo(t)
	link := r.blob("../../etc")
	sub := r.tree() // any hash: a submodule's commit is not in the repository
	r.commitTree(r.tree(object.TreeEntry{Name: "deploy", Mode: filemode.Dir, Hash: r.tree(
		object.TreeEntry{Name: "app.yaml", Mode: filemode.Symlink, Hash: link},
		object.TreeEntry{Name: "nested", Mode: filemode.Dir, Hash: r.tree(object.TreeEntry{Name: "b.yaml", Mode: filemode.Symlink, Hash: link})},
		object.TreeEntry{Name: "vendor", Mode: filemode.Submodule, Hash: sub},
	)}))
	for p, want := range map[string]string{"deploy": `spec path "deploy" holds no regular file`, "": "the repository root holds no regular file"} {
		g := newTestGit(t, GitOptions{URL: r.url(), Path: p})
		rev, err := g.Fetch(context.Background())
		if !errors.Is(err, ErrPathNotFound) || !strings.Contains(err.Error(), want) {
			t.Errorf("path %q: Fetch = %+v, %v; want ErrPathNotFound saying %q", p, rev, err, want)
		}
		if entries, _ := filepath.Glob(filepath.Join(g.opts.CacheDir, "*rev-*")); len(entries) != 0 {
			t.Errorf("path %q: a refused revision was exported: %v", p, entries)
		}
	}
}
