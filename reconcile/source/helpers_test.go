package source

import (
	"bytes"
	"context"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// testRepo is a real git repository on disk that tests commit into and
// sources fetch from.
type testRepo struct {
	t    testing.TB
	dir  string
	repo *git.Repository
	n    int // commit counter, keeps timestamps and messages distinct
}

func newTestRepo(t testing.TB) *testRepo {
	t.Helper()
	dir := t.TempDir()
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &testRepo{t: t, dir: dir, repo: repo}
}

// newBareTestRepo is a repository without a worktree, as a git server keeps
// them; commit into it with rawCommit.
func newBareTestRepo(t testing.TB) *testRepo {
	t.Helper()
	dir := t.TempDir()
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		Bare:        true,
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &testRepo{t: t, dir: dir, repo: repo}
}

func (r *testRepo) url() string { return "file://" + r.dir }

func (r *testRepo) sig() *object.Signature {
	return &object.Signature{Name: "Test", Email: "test@example.com", When: time.Unix(1_700_000_000+int64(r.n), 0)}
}

// commit writes files (an empty value deletes the file) and commits them on
// the checked-out branch, signed when key is not nil.
func (r *testRepo) commit(files map[string]string, key *openpgp.Entity) plumbing.Hash {
	r.t.Helper()
	wt, err := r.repo.Worktree()
	if err != nil {
		r.t.Fatal(err)
	}
	for name, content := range files {
		p := filepath.Join(r.dir, filepath.FromSlash(name))
		if content == "" {
			if err := os.Remove(p); err != nil {
				r.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		r.t.Fatal(err)
	}
	r.n++
	h, err := wt.Commit("change", &git.CommitOptions{Author: r.sig(), SignKey: key, AllowEmptyCommits: true})
	if err != nil {
		r.t.Fatal(err)
	}
	return h
}

// orphan stores a parentless commit with the tree of from: the result of
// rewriting history, as a force-push does.
func (r *testRepo) orphan(from plumbing.Hash) plumbing.Hash {
	r.t.Helper()
	c, err := r.repo.CommitObject(from)
	if err != nil {
		r.t.Fatal(err)
	}
	r.n++
	nc := &object.Commit{Author: *r.sig(), Committer: *r.sig(), Message: "rewritten", TreeHash: c.TreeHash}
	obj := r.repo.Storer.NewEncodedObject()
	if err := nc.Encode(obj); err != nil {
		r.t.Fatal(err)
	}
	h, err := r.repo.Storer.SetEncodedObject(obj)
	if err != nil {
		r.t.Fatal(err)
	}
	return h
}

func (r *testRepo) setRef(name plumbing.ReferenceName, h plumbing.Hash) {
	r.t.Helper()
	if err := r.repo.Storer.SetReference(plumbing.NewHashReference(name, h)); err != nil {
		r.t.Fatal(err)
	}
}

func (r *testRepo) tag(name string, h plumbing.Hash, annotated bool) {
	r.t.Helper()
	var opts *git.CreateTagOptions
	if annotated {
		opts = &git.CreateTagOptions{Tagger: r.sig(), Message: "release " + name}
	}
	if _, err := r.repo.CreateTag(name, h, opts); err != nil {
		r.t.Fatal(err)
	}
}

func (r *testRepo) deleteTag(name string) {
	r.t.Helper()
	if err := r.repo.DeleteTag(name); err != nil {
		r.t.Fatal(err)
	}
}

// newSigningKey generates a fresh OpenPGP key and returns it with its
// armored public key ring written to a file.
func newSigningKey(t testing.TB, name string) (*openpgp.Entity, string) {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", name+"@example.com", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name+".asc")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return e, path
}

// newHTTPGitServer serves the repositories under root over git's smart HTTP
// protocol (the system git-http-backend through CGI); requests that
// authorize rejects get a 401.
func newHTTPGitServer(t testing.TB, root string, authorize func(*http.Request) bool) *httptest.Server {
	t.Helper()
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Skip("system git not available for the smart-HTTP server")
	}
	backend := &cgi.Handler{
		Path: gitBin,
		Args: []string{"http-backend"},
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if authorize != nil && !authorize(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func mustFetch(t testing.TB, g *Git) Revision {
	t.Helper()
	rev, err := g.Fetch(context.Background())
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return rev
}

func readFile(t testing.TB, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func newTestGit(t testing.TB, opts GitOptions) *Git {
	t.Helper()
	if opts.CacheDir == "" {
		opts.CacheDir = t.TempDir()
	}
	g, err := NewGit(opts)
	if err != nil {
		t.Fatalf("NewGit: %v", err)
	}
	return g
}

// signingKey wraps an entity so that table rows can leave it nil.
type signingKey struct{ e *openpgp.Entity }

// rawCommit stores a commit of a one-file tree on top of parent without
// touching the worktree; it builds long histories quickly.
func (r *testRepo) rawCommit(parent plumbing.Hash, content string) plumbing.Hash {
	r.t.Helper()
	blobHash := r.blob(content)
	tree := r.storeObject(&object.Tree{Entries: []object.TreeEntry{{Name: "app.yaml", Mode: filemode.Regular, Hash: blobHash}}})
	r.n++
	c := &object.Commit{Author: *r.sig(), Committer: *r.sig(), Message: content, TreeHash: tree}
	if !parent.IsZero() {
		c.ParentHashes = []plumbing.Hash{parent}
	}
	return r.storeObject(c)
}
