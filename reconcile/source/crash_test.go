package source

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// damageCache stands for what a crash or power loss can leave of the git
// cache: go-git writes packs and refs without syncing them.
var cacheDamages = map[string]func(t *testing.T, repoDir string){
	"pack cut short": func(t *testing.T, repoDir string) {
		eachFile(t, repoDir, "objects/pack/*.pack", func(p string, size int64) { os.Truncate(p, size/2) })
	},
	"pack zeroed": func(t *testing.T, repoDir string) {
		eachFile(t, repoDir, "objects/pack/*.pack", func(p string, size int64) { os.WriteFile(p, make([]byte, size), 0o644) })
	},
	"target ref empty": func(t *testing.T, repoDir string) {
		eachFile(t, repoDir, "refs/idrecon/target", func(p string, _ int64) { os.WriteFile(p, nil, 0o644) })
	},
}

func eachFile(t *testing.T, dir, pattern string, f func(path string, size int64)) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, filepath.FromSlash(pattern)))
	if err != nil || len(files) == 0 {
		t.Fatalf("nothing to damage at %s: %v", pattern, err)
	}
	for _, p := range files {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		f(p, fi.Size())
	}
}

// TestGitRestartRecoversDamagedCache: the daemon restarts on a cache that
// a crash damaged. Whether or not the remote moved meanwhile (unmoved,
// go-git transfers nothing and reads only what is in the cache), and
// whatever the source follows, the fetch must re-clone, not fail on every
// poll with an error that reads like a deleted ref or a flaky network.
func TestGitRestartRecoversDamagedCache(t *testing.T) {
	for name, damage := range cacheDamages {
		for _, pin := range []string{"branch", "tag", "commit"} {
			for _, moved := range []bool{false, true} {
				if moved && pin == "commit" {
					continue
				}
				t.Run(name+"/"+pin+"/moved="+map[bool]string{false: "no", true: "yes"}[moved], func(t *testing.T) {
					if pin == "commit" && name == "target ref empty" {
						t.Skip("a commit pin has no target ref")
					}
					r := newTestRepo(t)
					want := r.commit(map[string]string{"spec/f": "one"}, nil)
					r.tag("v1", want, true)
					cache := t.TempDir()
					opts := GitOptions{URL: r.url(), CacheDir: cache, Path: "spec"}
					switch pin {
					case "branch":
						opts.Branch = "main"
					case "tag":
						opts.Tag = "v1"
					case "commit":
						opts.Commit = want.String()
					}
					mustFetch(t, newTestGit(t, opts))
					damage(t, filepath.Join(cache, "repo.git"))
					content := "one"
					if moved {
						want, content = r.commit(map[string]string{"spec/f": "two"}, nil), "two"
						r.deleteTag("v1")
						r.tag("v1", want, true)
					}

					g := newTestGit(t, opts) // a restart
					for range 2 {
						rev, err := g.Fetch(context.Background())
						if err != nil {
							t.Fatalf("fetch after the cache was damaged: %v", err)
						}
						if rev.ID != want.String() || readFile(t, rev.Dir, "f") != content {
							t.Fatalf("got %+v, want %s with f=%q", rev, want, content)
						}
					}
				})
			}
		}
	}
}

// TestGitRecoversDamagedBlob: the commit and trees read fine but a blob
// of the spec is cut short. The export must re-clone, not refuse the
// revision for good.
func TestGitRecoversDamagedBlob(t *testing.T) {
	r := newTestRepo(t)
	big := make([]byte, 256<<10)
	for i := range big {
		big[i] = byte('a' + i*7919%26) // poorly compressible, so that it ends the pack
	}
	want := r.commit(map[string]string{"spec/f": "one", "spec/z": string(big)}, nil)
	cache := t.TempDir()
	opts := GitOptions{URL: r.url(), CacheDir: cache, Path: "spec"}
	rev := mustFetch(t, newTestGit(t, opts))
	if err := os.RemoveAll(filepath.Dir(rev.Dir)); err != nil {
		t.Fatal(err)
	}
	eachFile(t, filepath.Join(cache, "repo.git"), "objects/pack/*.pack", func(p string, size int64) { os.Truncate(p, size-200) })

	rev, err := newTestGit(t, opts).Fetch(context.Background())
	if err != nil {
		t.Fatalf("fetch after a blob was damaged: %v", err)
	}
	if rev.ID != want.String() || readFile(t, rev.Dir, "f") != "one" || readFile(t, rev.Dir, "z") != string(big) {
		t.Fatalf("got %+v", rev)
	}
}

// TestGitRestartReexports: an exported revision is renamed into place but
// its files are not synced, so after a power loss it may hold empty or
// cut-short files. A restarted daemon must not serve it as it is: an empty
// file is a spec nobody committed.
func TestGitRestartReexports(t *testing.T) {
	r := newTestRepo(t)
	r.commit(map[string]string{"f": "one"}, nil)
	cache := t.TempDir()
	rev := mustFetch(t, newTestGit(t, GitOptions{URL: r.url(), CacheDir: cache}))
	if err := os.WriteFile(filepath.Join(rev.Dir, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rev = mustFetch(t, newTestGit(t, GitOptions{URL: r.url(), CacheDir: cache}))
	if got := readFile(t, rev.Dir, "f"); got != "one" {
		t.Fatalf("after a restart f = %q, want %q", got, "one")
	}
}

// TestGitSSHHandshakeBounded: an SSH server that accepts the connection
// and then says nothing (a hung sshd, a black-holing load balancer) must
// not hold the fetch past its timeout, nor past shutdown: the fetch holds
// the source's lock, and the daemon's stop waits for it.
func TestGitSSHHandshakeBounded(t *testing.T) {
	hung := make(chan struct{})
	addr := serveTCP(t, func(conn net.Conn) {
		defer conn.Close()
		<-hung
	})
	t.Cleanup(func() { close(hung) }) // runs before serveTCP's cleanup waits
	_, keyFile := writeClientKey(t, "")
	newGit := func(timeout time.Duration) *Git {
		return newTestGit(t, GitOptions{
			URL:          "ssh://git@" + addr + "/repo.git",
			Auth:         GitAuth{SSHKeyFile: keyFile, InsecureSkipHostKeyCheck: true},
			FetchTimeout: timeout,
		})
	}
	fetch := func(ctx context.Context, g *Git) error {
		done := make(chan error, 1)
		go func() {
			_, err := g.Fetch(ctx)
			done <- err
		}()
		select {
		case err := <-done:
			return err
		case <-time.After(time.Minute):
			t.Fatal("fetch still running a minute after its timeout or cancellation")
			return nil
		}
	}

	t.Run("timeout", func(t *testing.T) {
		err := fetch(context.Background(), newGit(100*time.Millisecond))
		if !errors.Is(err, ErrTransient) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ErrTransient and DeadlineExceeded", err)
		}
	})
	t.Run("shutdown", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		err := fetch(ctx, newGit(time.Hour))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if strings.Contains(err.Error(), "idrecon-fetch") {
			t.Errorf("err = %v names the internal dialer", err)
		}
	})
}
