package source

import (
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
)

// TestGitBranchRewound: a branch reset to an older commit (git push
// --force after a reset, the usual rollback) is followed, though the
// shallow cache only holds the newer tip.
func TestGitBranchRewound(t *testing.T) {
	r := newTestRepo(t)
	c1 := r.commit(map[string]string{"f": "one", "d/g": "g1"}, nil)
	r.commit(map[string]string{"f": "two", "d/g": "g2"}, nil)
	g := newTestGit(t, GitOptions{URL: r.url(), Branch: "main"})
	if rev := mustFetch(t, g); readFile(t, rev.Dir, "f") != "two" {
		t.Fatalf("first fetch got %+v", rev)
	}
	r.setRef(plumbing.NewBranchReferenceName("main"), c1)
	rev := mustFetch(t, g)
	if rev.ID != c1.String() || readFile(t, rev.Dir, "f") != "one" || readFile(t, rev.Dir, "d/g") != "g1" {
		t.Fatalf("after rewind got %+v", rev)
	}
	if want := "main@sha1:" + c1.String(); rev.Name != want {
		t.Errorf("Name = %q, want %q", rev.Name, want)
	}
}

// TestGitDefaultBranchFallbackName: a source following the remote's
// default branch whose HEAD names no branch follows "main", and its
// revision name says so: status must not claim it follows HEAD.
func TestGitDefaultBranchFallbackName(t *testing.T) {
	bare := newBareTestRepo(t)
	old := bare.rawCommit(plumbing.ZeroHash, "one")
	tip := bare.rawCommit(old, "two")
	bare.setRef(plumbing.NewBranchReferenceName("main"), tip)
	bare.setRef(plumbing.HEAD, old) // detached, at a commit no ref names

	g := newTestGit(t, GitOptions{URL: bare.url()})
	for range 2 { // cold, then warm cache
		rev := mustFetch(t, g)
		if want := "main@sha1:" + tip.String(); rev.ID != tip.String() || rev.Name != want {
			t.Fatalf("got %+v, want ID %s and Name %q", rev, tip, want)
		}
	}

	// A HEAD that names a branch keeps the name HEAD (GitOptions).
	r := newTestRepo(t)
	c := r.commit(map[string]string{"f": "x"}, nil)
	if rev := mustFetch(t, newTestGit(t, GitOptions{URL: r.url()})); rev.Name != "HEAD@sha1:"+c.String() {
		t.Fatalf("default branch: Name = %q", rev.Name)
	}
}
