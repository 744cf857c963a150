package source

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// A spec folder that vendors the spec as a submodule ("deploy/entra")
// holds no file the daemon can read: the fetch must say so, as it does
// for a folder of symlinks, rather than export nothing and leave the
// loader a folder that does not exist.
func TestGitFetchPathOfOnlySubmodules(t *testing.T) {
	r := newBareTestRepo(t)
	r.commitTree(r.tree(
		object.TreeEntry{Name: ".gitmodules", Mode: filemode.Regular, Hash: r.blob("[submodule \"entra\"]\n")},
		object.TreeEntry{Name: "deploy", Mode: filemode.Dir, Hash: r.tree(
			object.TreeEntry{Name: "entra", Mode: filemode.Submodule, Hash: r.tree()},
		)},
	))
	g := newTestGit(t, GitOptions{URL: r.url(), Path: "deploy"})
	rev, err := g.Fetch(context.Background())
	if !errors.Is(err, ErrPathNotFound) || !strings.Contains(err.Error(), `spec path "deploy" holds no regular file`) {
		t.Fatalf("Fetch = %+v, %v; want ErrPathNotFound saying the path holds no regular file", rev, err)
	}
}

// A file name git accepts and go-git's tree walk refuses (a control
// character) is the commit's doing: it must not be taken for a damaged
// cache, which re-clones the repository on every poll and still fails.
func TestGitFetchOddFileNameIsNoBrokenCache(t *testing.T) {
	r := newBareTestRepo(t)
	r.commitTree(r.tree(
		object.TreeEntry{Name: "app.yaml", Mode: filemode.Regular, Hash: r.blob("kind: App\n")},
		object.TreeEntry{Name: "notes\tdraft.md", Mode: filemode.Regular, Hash: r.blob("x")},
	))
	var logged bytes.Buffer
	g := newTestGit(t, GitOptions{URL: r.url(), Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	rev, err := g.Fetch(context.Background())
	if strings.Contains(logged.String(), "re-cloning") || errors.Is(err, errCacheBroken) {
		t.Fatalf("Fetch = %v; log:\n%s\nwant no re-clone for a file name in the commit", err, logged.String())
	}
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if got := readFile(t, rev.Dir, "app.yaml"); got != "kind: App\n" {
		t.Fatalf("app.yaml = %q", got)
	}
}
