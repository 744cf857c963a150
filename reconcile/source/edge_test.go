package source

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An SSH server that drops the connection during the handshake (a rate
// limit, a restarting load balancer, "kex_exchange_identification:
// Connection closed") is a network failure worth retrying, not rejected
// credentials: it must not stall as AuthenticationFailed.
func TestSSHHandshakeDropIsTransient(t *testing.T) {
	addr := serveTCP(t, func(conn net.Conn) { conn.Close() }) // before any SSH banner
	_, keyFile := writeClientKey(t, "")
	g := newTestGit(t, GitOptions{
		URL:  "ssh://git@" + addr + "/repo.git",
		Auth: GitAuth{SSHKeyFile: keyFile, InsecureSkipHostKeyCheck: true},
	})
	_, err := g.Fetch(context.Background())
	if err == nil {
		t.Fatal("fetch from a server that hangs up succeeded")
	}
	if errors.Is(err, ErrAuth) {
		t.Fatalf("err = %v: a dropped connection is classified as rejected credentials (stalls)", err)
	}
	if !errors.Is(err, ErrTransient) {
		t.Fatalf("err = %v, want ErrTransient", err)
	}
}

// A password that makes the URL unparsable (a '^', a space, a '%' that is
// no escape: characters a generated password often has) must still be
// kept out of errors, String and logs.
func TestUnparsableURLDoesNotLeakPassword(t *testing.T) {
	const secret = "s3cr^t pa%zz"
	raw := "https://ci:" + secret + "@git.example.com/org/repo.git"
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("configured", "git", GitOptions{URL: raw})
	if strings.Contains(logged.String(), "s3cr") {
		t.Errorf("GitOptions log value leaks the password: %s", logged.String())
	}
	g, err := NewGit(GitOptions{URL: raw, CacheDir: t.TempDir()})
	if err == nil {
		if strings.Contains(g.String(), "s3cr") || strings.Contains(g.describe(), "s3cr") {
			t.Fatalf("source name leaks the password: %s", g)
		}
		if _, err := g.Fetch(context.Background()); err != nil && strings.Contains(err.Error(), "s3cr") {
			t.Fatalf("fetch error leaks the password: %v", err)
		}
		return
	}
	if strings.Contains(err.Error(), "s3cr") {
		t.Fatalf("NewGit error leaks the password: %v", err)
	}
}

// The daemon keeps one cache dir (DATA_DIR/git) whatever the spec path. A
// restart with another --git-path must export the path it now follows, not
// serve the tree exported for the old one: from "prod" to the whole
// repository that would load only prod's documents (and delete the rest),
// from "prod" to "staging" a folder that is not there.
func TestPathChangeReusesNoStaleExport(t *testing.T) {
	r := newTestRepo(t)
	c := r.commit(map[string]string{"prod/a.yaml": "prod", "staging/b.yaml": "staging", "top.yaml": "top"}, nil)
	cache := t.TempDir()
	if rev := mustFetch(t, newTestGit(t, GitOptions{URL: r.url(), Path: "prod", CacheDir: cache})); readFile(t, rev.Dir, "a.yaml") != "prod" {
		t.Fatalf("prod export: %+v", rev)
	}

	rev := mustFetch(t, newTestGit(t, GitOptions{URL: r.url(), Path: "staging", CacheDir: cache}))
	if rev.ID != c.String() {
		t.Fatalf("rev = %+v", rev)
	}
	if b, err := os.ReadFile(filepath.Join(rev.Dir, "b.yaml")); err != nil || string(b) != "staging" {
		t.Errorf("after switching to path staging: b.yaml = %q, %v", b, err)
	}

	rev = mustFetch(t, newTestGit(t, GitOptions{URL: r.url(), CacheDir: cache}))
	for name, want := range map[string]string{"top.yaml": "top", "staging/b.yaml": "staging", "prod/a.yaml": "prod"} {
		if b, err := os.ReadFile(filepath.Join(rev.Dir, filepath.FromSlash(name))); err != nil || string(b) != want {
			t.Errorf("after switching to the whole repository: %s = %q, %v", name, b, err)
		}
	}
}
