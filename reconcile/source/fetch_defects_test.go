package source

import (
	"context"
	"log/slog"
	"strings"
	"testing"
)

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
