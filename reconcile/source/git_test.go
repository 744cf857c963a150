package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/idrecon/idrecon/spec"
)

func TestGitFetchFollowsNewCommits(t *testing.T) {
	r := newTestRepo(t)
	c1 := r.commit(map[string]string{"spec/app.yaml": "v1"}, nil)
	cache := t.TempDir()
	g := newTestGit(t, GitOptions{URL: r.url(), CacheDir: cache})

	rev1 := mustFetch(t, g)
	if rev1.ID != c1.String() {
		t.Fatalf("first fetch: ID = %s, want %s", rev1.ID, c1)
	}
	if got := readFile(t, rev1.Dir, "spec/app.yaml"); got != "v1" {
		t.Fatalf("first fetch content = %q", got)
	}

	// An unchanged remote must not transfer anything new.
	packsBefore, _ := filepath.Glob(filepath.Join(cache, "repo.git", "objects", "pack", "*.pack"))
	if again := mustFetch(t, g); again != rev1 {
		t.Fatalf("unchanged remote: got %+v, want %+v", again, rev1)
	}
	packsAfter, _ := filepath.Glob(filepath.Join(cache, "repo.git", "objects", "pack", "*.pack"))
	if len(packsAfter) != len(packsBefore) {
		t.Fatalf("unchanged remote fetched objects: %d packs before, %d after", len(packsBefore), len(packsAfter))
	}

	c2 := r.commit(map[string]string{"spec/app.yaml": "v2", "spec/new.yaml": "n"}, nil)
	rev2 := mustFetch(t, g)
	if rev2.ID != c2.String() || readFile(t, rev2.Dir, "spec/app.yaml") != "v2" || readFile(t, rev2.Dir, "spec/new.yaml") != "n" {
		t.Fatalf("second fetch: %+v", rev2)
	}
	// The previous revision stays readable until the next one lands.
	if got := readFile(t, rev1.Dir, "spec/app.yaml"); got != "v1" {
		t.Fatalf("previous revision changed under the reader: %q", got)
	}

	c3 := r.commit(map[string]string{"spec/new.yaml": ""}, nil)
	rev3 := mustFetch(t, g)
	if rev3.ID != c3.String() {
		t.Fatalf("third fetch: ID = %s, want %s", rev3.ID, c3)
	}
	if _, err := os.Stat(filepath.Join(rev3.Dir, "spec/new.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("deleted file still exported: %v", err)
	}
	if _, err := os.Stat(rev1.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("revision two generations old not removed: %v", err)
	}
	if _, err := os.Stat(rev2.Dir); err != nil {
		t.Fatalf("previous revision removed too early: %v", err)
	}
}

func TestGitFetchRefPins(t *testing.T) {
	r := newTestRepo(t)
	c1 := r.commit(map[string]string{"f": "one"}, nil)
	r.tag("v1", c1, false)
	r.tag("v1-annotated", c1, true)
	r.setRef(plumbing.NewBranchReferenceName("release"), c1)
	r.setRef(plumbing.NewBranchReferenceName("trunk"), c1)
	c2 := r.commit(map[string]string{"f": "two"}, nil)

	// A second repository whose default branch is not main.
	other := newTestRepo(t)
	o1 := other.commit(map[string]string{"f": "trunk"}, nil)
	other.setRef(plumbing.NewBranchReferenceName("trunk"), o1)
	if err := other.repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName("trunk"))); err != nil {
		t.Fatal(err)
	}
	other.commit(map[string]string{"f": "trunk-2"}, nil) // lands on trunk, HEAD's branch
	otherTip, err := other.repo.ResolveRevision("trunk")
	if err != nil {
		t.Fatal(err)
	}

	// A repository whose HEAD names a branch that does not exist.
	dangling := newTestRepo(t)
	d1 := dangling.commit(map[string]string{"f": "main"}, nil)
	if err := dangling.repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName("gone"))); err != nil {
		t.Fatal(err)
	}

	// A server that lets clients ask for any reachable commit by SHA, so a
	// commit pin is fetched shallow instead of with full history.
	bySHA := newTestRepo(t)
	s1 := bySHA.commit(map[string]string{"f": "s1"}, nil)
	bySHATip := bySHA.commit(map[string]string{"f": "s2"}, nil)
	cfg, err := bySHA.repo.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Raw.Section("uploadpack").SetOption("allowReachableSHA1InWant", "true")
	if err := bySHA.repo.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		opts    GitOptions
		wantID  plumbing.Hash
		content string
		shallow bool // the cache must hold a cut-off history
	}{
		{"default branch is remote HEAD", GitOptions{URL: r.url()}, c2, "two", true},
		{"dangling remote HEAD falls back to main", GitOptions{URL: dangling.url()}, d1, "main", false},
		{"commit by SHA want", GitOptions{URL: bySHA.url(), Commit: s1.String()}, s1, "s1", false},
		{"tip commit by SHA want is shallow", GitOptions{URL: bySHA.url(), Commit: bySHATip.String()}, bySHATip, "s2", true},
		{"default branch not main", GitOptions{URL: other.url()}, *otherTip, "trunk-2", true},
		{"branch", GitOptions{URL: r.url(), Branch: "release"}, c1, "one", false},
		{"lightweight tag", GitOptions{URL: r.url(), Tag: "v1"}, c1, "one", false},
		{"annotated tag", GitOptions{URL: r.url(), Tag: "v1-annotated"}, c1, "one", false},
		{"commit", GitOptions{URL: r.url(), Commit: c1.String()}, c1, "one", false},
		{"commit upper-case", GitOptions{URL: r.url(), Commit: strings.ToUpper(c1.String())}, c1, "one", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.CacheDir = t.TempDir()
			g := newTestGit(t, tt.opts)
			rev := mustFetch(t, g)
			if _, err := os.Stat(filepath.Join(tt.opts.CacheDir, "repo.git", "shallow")); tt.shallow && err != nil {
				t.Fatalf("cache is not shallow: %v", err)
			}
			if rev.ID != tt.wantID.String() {
				t.Fatalf("ID = %s, want %s", rev.ID, tt.wantID)
			}
			if got := readFile(t, rev.Dir, "f"); got != tt.content {
				t.Fatalf("content = %q, want %q", got, tt.content)
			}
			// A second poll is served from the cache and agrees.
			if again := mustFetch(t, g); again != rev {
				t.Fatalf("second fetch = %+v, want %+v", again, rev)
			}
		})
	}
}

// A configured branch is fetched whatever the remote's HEAD names. A
// server's bare repository can have HEAD set to a commit (update-ref
// --no-deref), a non-bare one can be checked out at a commit, and HEAD can
// name a default branch that was never created or was deleted. None of
// these says anything about the branch the source follows, so none may
// stop it from being fetched.
func TestGitFetchBranchWhateverTheRemoteHEAD(t *testing.T) {
	main := plumbing.NewBranchReferenceName("main")

	// Bare, HEAD detached at an older commit of main that no ref names.
	bare := newBareTestRepo(t)
	bareOld := bare.rawCommit(plumbing.ZeroHash, "bare-1")
	bareTip := bare.rawCommit(bareOld, "bare-2")
	bare.setRef(main, bareTip)
	bare.setRef(plumbing.HEAD, bareOld)

	// Bare, HEAD detached at a commit on no branch at all.
	bareAside := newBareTestRepo(t)
	asideTip := bareAside.rawCommit(plumbing.ZeroHash, "aside-main")
	bareAside.setRef(main, asideTip)
	bareAside.setRef(plumbing.HEAD, bareAside.rawCommit(plumbing.ZeroHash, "aside-detached"))

	// Non-bare, checked out at an older commit of main.
	checkout := newTestRepo(t)
	checkoutOld := checkout.commit(map[string]string{"app.yaml": "checkout-1"}, nil)
	checkoutTip := checkout.commit(map[string]string{"app.yaml": "checkout-2"}, nil)
	wt, err := checkout.repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.Checkout(&git.CheckoutOptions{Hash: checkoutOld}); err != nil {
		t.Fatal(err)
	}
	if head, err := checkout.repo.Storer.Reference(plumbing.HEAD); err != nil || head.Type() != plumbing.HashReference {
		t.Fatalf("checkout did not detach HEAD: %v, %v", head, err)
	}

	// Bare, HEAD names a branch that does not exist.
	unborn := newBareTestRepo(t)
	unbornTip := unborn.rawCommit(plumbing.ZeroHash, "unborn-main")
	unborn.setRef(main, unbornTip)
	if err := unborn.repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName("gone"))); err != nil {
		t.Fatal(err)
	}

	// Servers see the same repositories over smart HTTP, where go-git reads
	// the advertisement of git-http-backend rather than a local upload-pack.
	httpURL := func(r *testRepo) string {
		srv := newHTTPGitServer(t, filepath.Dir(r.dir), nil)
		return srv.URL + "/" + filepath.Base(r.dir)
	}

	tests := []struct {
		name    string
		url     string
		branch  string
		wantID  plumbing.Hash
		content string
	}{
		{"bare, HEAD at an older commit", bare.url(), "main", bareTip, "bare-2"},
		{"bare, HEAD at an older commit, http", httpURL(bare), "main", bareTip, "bare-2"},
		{"bare, HEAD at a commit on no branch", bareAside.url(), "main", asideTip, "aside-main"},
		{"non-bare checked out at a commit", checkout.url(), "main", checkoutTip, "checkout-2"},
		{"HEAD names a missing branch", unborn.url(), "main", unbornTip, "unborn-main"},
		{"HEAD names a missing branch, http", httpURL(unborn), "main", unbornTip, "unborn-main"},
		// Without a branch, a HEAD that names no branch falls back to
		// main (GitOptions), a detached one as much as a missing one.
		{"default branch, HEAD at an older commit", bare.url(), "", bareTip, "bare-2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newTestGit(t, GitOptions{URL: tt.url, Branch: tt.branch})
			rev := mustFetch(t, g)
			if rev.ID != tt.wantID.String() {
				t.Fatalf("ID = %s, want main's tip %s", rev.ID, tt.wantID)
			}
			if got := readFile(t, rev.Dir, "app.yaml"); got != tt.content {
				t.Fatalf("content = %q, want %q", got, tt.content)
			}
			// The next poll runs against a warm cache and must agree.
			if again := mustFetch(t, g); again != rev {
				t.Fatalf("second fetch = %+v, want %+v", again, rev)
			}
		})
	}
}

func TestGitFetchPath(t *testing.T) {
	r := newTestRepo(t)
	r.commit(map[string]string{"deploy/idrecon/app.yaml": "spec", "README": "x"}, nil)

	g := newTestGit(t, GitOptions{URL: r.url(), Path: "./deploy/idrecon/"})
	rev := mustFetch(t, g)
	if filepath.Base(rev.Dir) != "idrecon" || readFile(t, rev.Dir, "app.yaml") != "spec" {
		t.Fatalf("spec root %s not served", rev.Dir)
	}

	for _, p := range []string{"missing", "README"} {
		g := newTestGit(t, GitOptions{URL: r.url(), Path: p})
		if _, err := g.Fetch(context.Background()); !errors.Is(err, ErrPathNotFound) {
			t.Errorf("path %q: err = %v, want ErrPathNotFound", p, err)
		}
	}
}

func TestGitFetchStopsAtTheByteLimit(t *testing.T) {
	r := newTestRepo(t)
	r.commit(map[string]string{
		"deploy/a.yaml": strings.Repeat("a", 3000),
		"deploy/b.yaml": strings.Repeat("b", 3000),
		"other/big.bin": strings.Repeat("x", 100000), // outside the spec path: not exported, not counted
	}, nil)

	g := newTestGit(t, GitOptions{URL: r.url(), Path: "deploy", MaxBytes: 5000})
	_, err := g.Fetch(context.Background())
	var le *spec.LimitError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "larger than 5000 bytes") || !strings.Contains(err.Error(), "--max-spec-bytes") {
		t.Fatalf("err = %v, want a *spec.LimitError naming the limit and how to raise it", err)
	}
	if entries, _ := filepath.Glob(filepath.Join(g.opts.CacheDir, "rev-*")); len(entries) != 0 {
		t.Errorf("a refused revision was exported: %v", entries)
	}

	g = newTestGit(t, GitOptions{URL: r.url(), Path: "deploy", MaxBytes: 6000})
	rev := mustFetch(t, g)
	if readFile(t, rev.Dir, "b.yaml") != strings.Repeat("b", 3000) {
		t.Fatal("spec at the limit not served")
	}
}

func TestNewGitRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts GitOptions
	}{
		{"no URL", GitOptions{CacheDir: "c"}},
		{"no cache dir", GitOptions{URL: "file:///x"}},
		{"two pins", GitOptions{URL: "file:///x", CacheDir: "c", Branch: "a", Tag: "b"}},
		{"short commit", GitOptions{URL: "file:///x", CacheDir: "c", Commit: "abc123"}},
		{"non-hex commit", GitOptions{URL: "file:///x", CacheDir: "c", Commit: strings.Repeat("z", 40)}},
		{"bad branch name", GitOptions{URL: "file:///x", CacheDir: "c", Branch: "a..b"}},
		{"path escapes", GitOptions{URL: "file:///x", CacheDir: "c", Path: "../outside"}},
		{"path escapes after clean", GitOptions{URL: "file:///x", CacheDir: "c", Path: "a/../../b"}},
		{"absolute path", GitOptions{URL: "file:///x", CacheDir: "c", Path: "/etc"}},
		{"two auth methods", GitOptions{URL: "https://h/r", CacheDir: "c", Auth: GitAuth{Username: "u", PasswordEnv: "P", BearerTokenEnv: "T"}}},
		{"password in URL and auth", GitOptions{URL: "https://u:p@h/r", CacheDir: "c", Auth: GitAuth{BearerTokenEnv: "T"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewGit(tt.opts); !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("err = %v, want ErrInvalidOptions", err)
			}
		})
	}
}

func TestGitForcePushTakesNewTip(t *testing.T) {
	r := newTestRepo(t)
	r.commit(map[string]string{"f": "one"}, nil)
	g := newTestGit(t, GitOptions{URL: r.url(), Branch: "main"})
	mustFetch(t, g)

	c2 := r.commit(map[string]string{"f": "rewritten"}, nil)
	orphan := r.orphan(c2)
	r.setRef(plumbing.NewBranchReferenceName("main"), orphan) // history replaced, no common ancestor

	rev := mustFetch(t, g)
	if rev.ID != orphan.String() || readFile(t, rev.Dir, "f") != "rewritten" {
		t.Fatalf("after force-push got %+v", rev)
	}

	// And back onto a descendant of the old history.
	c3 := r.commit(map[string]string{"f": "three"}, nil)
	r.setRef(plumbing.NewBranchReferenceName("main"), c3)
	if rev := mustFetch(t, g); rev.ID != c3.String() || readFile(t, rev.Dir, "f") != "three" {
		t.Fatalf("after second rewrite got %+v", rev)
	}
}

func TestGitMissingRefs(t *testing.T) {
	r := newTestRepo(t)
	c1 := r.commit(map[string]string{"f": "one"}, nil)
	r.tag("v1", c1, true)

	g := newTestGit(t, GitOptions{URL: r.url(), Tag: "v1"})
	mustFetch(t, g)
	r.deleteTag("v1")
	if _, err := g.Fetch(context.Background()); !errors.Is(err, ErrRefNotFound) {
		t.Fatalf("deleted tag: err = %v, want ErrRefNotFound", err)
	}

	tests := []struct {
		name string
		opts GitOptions
	}{
		{"missing branch", GitOptions{URL: r.url(), Branch: "nope"}},
		{"missing tag", GitOptions{URL: r.url(), Tag: "v9"}},
		{"unknown commit", GitOptions{URL: r.url(), Commit: strings.Repeat("ab", 20)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newTestGit(t, tt.opts)
			if _, err := g.Fetch(context.Background()); !errors.Is(err, ErrRefNotFound) {
				t.Fatalf("err = %v, want ErrRefNotFound", err)
			}
		})
	}

	empty := newTestRepo(t)
	if _, err := newTestGit(t, GitOptions{URL: empty.url()}).Fetch(context.Background()); !errors.Is(err, ErrRefNotFound) {
		t.Fatalf("empty repository: err = %v, want ErrRefNotFound", err)
	}
}

func TestGitSignedCommits(t *testing.T) {
	trusted, ring := newSigningKey(t, "trusted")
	stranger, _ := newSigningKey(t, "stranger")

	tests := []struct {
		name       string
		key        *signingKey
		wantReason string // "" means accepted
	}{
		{"signed by trusted key", &signingKey{trusted}, ""},
		{"unsigned", nil, "unsigned"},
		{"signed by unknown key", &signingKey{stranger}, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRepo(t)
			var h plumbing.Hash
			if tt.key != nil {
				h = r.commit(map[string]string{"f": "x"}, tt.key.e)
			} else {
				h = r.commit(map[string]string{"f": "x"}, nil)
			}
			g := newTestGit(t, GitOptions{URL: r.url(), VerifySignatures: ring})
			rev, err := g.Fetch(context.Background())
			if tt.wantReason == "" {
				if err != nil || rev.ID != h.String() {
					t.Fatalf("Fetch = %+v, %v; want accepted %s", rev, err, h)
				}
				return
			}
			var se *SignatureError
			if !errors.As(err, &se) || !errors.Is(err, ErrUnverified) {
				t.Fatalf("err = %v, want *SignatureError", err)
			}
			if se.Reason != tt.wantReason || se.Commit != h.String() {
				t.Fatalf("SignatureError = %+v, want reason %q for %s", se, tt.wantReason, h)
			}
			if rev != (Revision{}) {
				t.Fatalf("refused fetch returned a revision: %+v", rev)
			}
		})
	}

	t.Run("unreadable key ring", func(t *testing.T) {
		r := newTestRepo(t)
		r.commit(map[string]string{"f": "x"}, trusted)
		g := newTestGit(t, GitOptions{URL: r.url(), VerifySignatures: filepath.Join(t.TempDir(), "missing.asc")})
		var se *SignatureError
		if _, err := g.Fetch(context.Background()); !errors.As(err, &se) || se.Reason != "keyring" {
			t.Fatalf("err = %v, want keyring SignatureError", err)
		}
	})
}

func TestGitSmartHTTPAuth(t *testing.T) {
	const user, pass, token = "ci", "pa55-w0rd-secret", "bearer-t0ken-secret"
	r := newTestRepo(t)
	c1 := r.commit(map[string]string{"spec/a.yaml": "http"}, nil)
	srv := newHTTPGitServer(t, filepath.Dir(r.dir), func(req *http.Request) bool {
		if u, p, ok := req.BasicAuth(); ok {
			return u == user && p == pass
		}
		return req.Header.Get("Authorization") == "Bearer "+token
	})
	repoURL := srv.URL + "/" + filepath.Base(r.dir)
	secretFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secretFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"GIT_PASSWORD": pass, "WRONG_PASSWORD": "not-the-pa55word"}
	getenv := func(k string) string { return env[k] }

	tests := []struct {
		name    string
		url     string
		auth    GitAuth
		wantErr error
	}{
		{"basic auth from env", repoURL, GitAuth{Username: user, PasswordEnv: "GIT_PASSWORD"}, nil},
		{"bearer token from file", repoURL, GitAuth{BearerTokenFile: secretFile}, nil},
		{"password embedded in URL", strings.Replace(repoURL, "://", "://"+user+":"+pass+"@", 1), GitAuth{}, nil},
		{"user in URL, password from env", strings.Replace(repoURL, "://", "://"+user+"@", 1), GitAuth{PasswordEnv: "GIT_PASSWORD"}, nil},
		{"secret passed as URL user name", strings.Replace(repoURL, "://", "://"+pass+"@", 1), GitAuth{}, ErrAuth},
		{"wrong password", repoURL, GitAuth{Username: user, PasswordEnv: "WRONG_PASSWORD"}, ErrAuth},
		{"wrong password in URL", strings.Replace(repoURL, "://", "://"+user+":not-the-pa55word@", 1), GitAuth{}, ErrAuth},
		{"no credentials", repoURL, GitAuth{}, ErrAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newTestGit(t, GitOptions{URL: tt.url, Auth: tt.auth, Getenv: getenv, Path: "spec"})
			var logged strings.Builder
			slog.New(slog.NewJSONHandler(&logged, nil)).Info("configured", "git", g.opts, "source", g)
			for _, shown := range []string{g.String(), g.describe(), logged.String()} {
				if strings.Contains(shown, pass) || strings.Contains(shown, "not-the-pa55word") {
					t.Fatalf("credential shown: %s", shown)
				}
			}
			rev, err := g.Fetch(context.Background())
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				if rev.ID != c1.String() || readFile(t, rev.Dir, "a.yaml") != "http" {
					t.Fatalf("Fetch = %+v", rev)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			for _, secret := range []string{pass, token, "not-the-pa55word"} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error leaks a credential: %v", err)
				}
			}
		})
	}
}

func TestGitUnreachableRemote(t *testing.T) {
	const secret = "s3cr3t-t0ken"
	tests := []struct {
		name string
		url  string
	}{
		{"connection refused", "http://user:" + secret + "@127.0.0.1:1/repo.git"},
		{"unknown host", "https://user:" + secret + "@idrecon-test.invalid/repo.git"},
		{"token as user name, unknown host", "https://" + secret + "@idrecon-test.invalid/repo.git"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newTestGit(t, GitOptions{URL: tt.url})
			_, err := g.Fetch(context.Background())
			if !errors.Is(err, ErrTransient) {
				t.Fatalf("err = %v, want ErrTransient", err)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(g.String(), secret) || strings.Contains(g.describe(), secret) {
				t.Fatalf("credential leaked: %v / %s", err, g)
			}
		})
	}

	t.Run("fetch timeout", func(t *testing.T) {
		r := newTestRepo(t)
		r.commit(map[string]string{"f": "x"}, nil)
		g := newTestGit(t, GitOptions{URL: r.url(), FetchTimeout: time.Nanosecond})
		if _, err := g.Fetch(context.Background()); !errors.Is(err, ErrTransient) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ErrTransient and DeadlineExceeded", err)
		}
	})

	t.Run("no repository at path", func(t *testing.T) {
		g := newTestGit(t, GitOptions{URL: "file://" + filepath.Join(t.TempDir(), "none")})
		if _, err := g.Fetch(context.Background()); !errors.Is(err, ErrRepositoryNotFound) {
			t.Fatalf("err = %v, want ErrRepositoryNotFound", err)
		}
	})
}

func TestGitRecoversFromBrokenCache(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, repoDir string)
	}{
		{"unreadable repository", func(t *testing.T, repoDir string) {
			if err := os.WriteFile(filepath.Join(repoDir, "HEAD"), []byte("garbage"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(filepath.Join(repoDir, "objects")); err != nil {
				t.Fatal(err)
			}
		}},
		{"packs corrupted", func(t *testing.T, repoDir string) {
			packs, err := filepath.Glob(filepath.Join(repoDir, "objects", "pack", "*.pack"))
			if err != nil || len(packs) == 0 {
				t.Fatalf("no packs to damage: %v", err)
			}
			for _, p := range packs {
				if err := os.WriteFile(p, []byte("PACK garbage"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"objects lost, refs kept", func(t *testing.T, repoDir string) {
			if err := os.RemoveAll(filepath.Join(repoDir, "objects")); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(repoDir, "objects", "pack"), 0o755); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		for _, moved := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/remote moved=%v", tt.name, moved), func(t *testing.T) {
				r := newTestRepo(t)
				want := r.commit(map[string]string{"f": "one"}, nil)
				cache := t.TempDir()
				g := newTestGit(t, GitOptions{URL: r.url(), CacheDir: cache})
				rev := mustFetch(t, g)
				// The exported tree is gone too, so nothing can be served from it.
				if err := os.RemoveAll(rev.Dir); err != nil {
					t.Fatal(err)
				}

				tt.damage(t, filepath.Join(cache, "repo.git"))
				content := "one"
				if moved {
					want, content = r.commit(map[string]string{"f": "two"}, nil), "two"
				}
				if rev := mustFetch(t, g); rev.ID != want.String() || readFile(t, rev.Dir, "f") != content {
					t.Fatalf("after cache damage got %+v, want %s", rev, want)
				}
			})
		}
	}
}

func TestCheckout(t *testing.T) {
	r := newTestRepo(t)
	c1 := r.commit(map[string]string{"spec/a.yaml": "base", "tool.sh": "#!/bin/sh"}, nil)
	r.tag("base", c1, true)
	c2 := r.commit(map[string]string{"spec/a.yaml": "head"}, nil)

	tests := []struct {
		name, ref string
		wantID    plumbing.Hash
		content   string
	}{
		{"branch", "main", c2, "head"},
		{"parent", "HEAD~1", c1, "base"},
		{"annotated tag", "base", c1, "base"},
		{"sha", c1.String(), c1, "base"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "out")
			rev, err := Checkout(context.Background(), filepath.Join(r.dir, "spec"), tt.ref, dest)
			if err != nil {
				t.Fatal(err)
			}
			if rev.ID != tt.wantID.String() || rev.Dir != dest {
				t.Fatalf("Checkout = %+v, want ID %s in %s", rev, tt.wantID, dest)
			}
			if got := readFile(t, dest, "spec/a.yaml"); got != tt.content {
				t.Fatalf("content = %q, want %q", got, tt.content)
			}
		})
	}

	if _, err := Checkout(context.Background(), r.dir, "no-such-ref", t.TempDir()); !errors.Is(err, ErrRefNotFound) {
		t.Fatalf("unknown ref: err = %v, want ErrRefNotFound", err)
	}
	busy := t.TempDir()
	if err := os.WriteFile(filepath.Join(busy, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Checkout(context.Background(), r.dir, "main", busy); err == nil {
		t.Fatal("checkout into a non-empty folder succeeded")
	}
}

// Some forges take the access token in the query string
// ("?private_token=", "?access_token="). Like userinfo it must stay out of
// the source's name, its errors and its log value.
func TestQueryTokenDoesNotLeak(t *testing.T) {
	const secret = "S3CRETTOK"
	raw := "https://git.example.invalid/org/repo.git?private_token=" + secret
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("configured", "git", GitOptions{URL: raw})
	if strings.Contains(logged.String(), secret) {
		t.Errorf("GitOptions log value leaks the token: %s", logged.String())
	}
	g := newTestGit(t, GitOptions{URL: raw, FetchTimeout: 5e9})
	if strings.Contains(g.String(), secret) || strings.Contains(g.describe(), secret) {
		t.Errorf("source name leaks the token: %s", g.describe())
	}
	_, err := g.Fetch(context.Background())
	if err == nil {
		t.Fatal("fetch from an unresolvable host succeeded")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("fetch error leaks the token: %v", err)
	}
}

// The daemon keeps one cache dir whatever it follows. Pinning an older
// commit (the usual rollback) after following the branch at depth 1 must
// fetch that commit, not report it missing: the shallow cache tells the
// server it already has the tip, so the commit behind it is never sent.
func TestCommitPinAfterShallowBranchCache(t *testing.T) {
	r := newTestRepo(t)
	c1 := r.commit(map[string]string{"f": "one"}, nil)
	r.commit(map[string]string{"f": "two"}, nil)
	cache := t.TempDir()
	mustFetch(t, newTestGit(t, GitOptions{URL: r.url(), Branch: "main", CacheDir: cache}))

	g := newTestGit(t, GitOptions{URL: r.url(), Commit: c1.String(), CacheDir: cache})
	rev, err := g.Fetch(context.Background())
	if err != nil {
		t.Fatalf("pin %s after following main: %v", c1, err)
	}
	if rev.ID != c1.String() || readFile(t, rev.Dir, "f") != "one" {
		t.Fatalf("rev = %+v, want %s with f=one", rev, c1)
	}
}

// TestGitCacheWarningsHideCredentials: the warning a damaged cache logs
// before re-cloning passes through the same scrubbing as Fetch's errors. The
// password here is the commit's own hash, so the cache's error ("read
// commit <hash>") quotes it; a real token would appear there only by
// accident, which is what the scrubbing is for.
func TestGitCacheWarningsHideCredentials(t *testing.T) {
	r := newTestRepo(t)
	tip := r.commit(map[string]string{"f": "one"}, nil)
	secret := tip.String()
	srv := newHTTPGitServer(t, filepath.Dir(r.dir), func(req *http.Request) bool {
		_, pass, ok := req.BasicAuth()
		return ok && pass == secret
	})
	u, err := url.Parse(srv.URL + "/" + filepath.Base(r.dir))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("ci", secret)
	var logged bytes.Buffer
	cache := t.TempDir()
	g := newTestGit(t, GitOptions{URL: u.String(), CacheDir: cache, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	mustFetch(t, g)

	for _, damage := range []struct {
		name string
		do   func(repoDir string) error
	}{
		{"objects lost", func(dir string) error {
			if err := os.RemoveAll(filepath.Join(dir, "objects")); err != nil {
				return err
			}
			return os.MkdirAll(filepath.Join(dir, "objects", "pack"), 0o755)
		}},
		{"unreadable", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "config"), []byte("[bad "+secret+"\n"), 0o644)
		}},
	} {
		logged.Reset()
		if err := damage.do(filepath.Join(cache, "repo.git")); err != nil {
			t.Fatal(err)
		}
		mustFetch(t, g)
		if !strings.Contains(logged.String(), "re-cloning") {
			t.Fatalf("%s: no re-clone warning logged: %s", damage.name, logged.String())
		}
		if strings.Contains(logged.String(), secret) {
			t.Errorf("%s: the password is in the log: %s", damage.name, logged.String())
		}
		if strings.Count(logged.String(), "git cache inconsistent") > 1 {
			t.Errorf("%s: the cause is named twice: %s", damage.name, logged.String())
		}
	}
}

// TestQueryTokenScrubbedAlone: a server that echoes the token of the query
// alone, not the whole query, is scrubbed too; a short parameter value is
// not, which would mangle every error holding its letters.
func TestQueryTokenScrubbedAlone(t *testing.T) {
	const secret = "S3CRET/TOK+EN"
	vals := querySecrets(queryOf("https://git.example.invalid/org/repo.git?private_token=" + url.QueryEscape(secret) + "&ref=main"))
	for _, echoed := range []string{secret, url.QueryEscape(secret)} {
		err := scrub(fmt.Errorf("remote: token %s is not valid for ref main", echoed), vals)
		if strings.Contains(err.Error(), echoed) || !strings.Contains(err.Error(), "ref main") {
			t.Errorf("scrubbed: %v", err)
		}
	}
}
