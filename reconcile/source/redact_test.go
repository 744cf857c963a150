package source

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

// A git source shows URLs that do not parse through redact.URL: its name,
// errors and log value keep the userinfo out, and an scp-like address
// (which url.Parse refuses too) is shown as given.
func TestGitDisplayOfUnparsableURL(t *testing.T) {
	tests := []struct {
		name, raw, secret, display string
	}{
		{"password", "https://ci:s3cr^t@git.example.com/org/repo.git", "s3cr", "https://REDACTED@git.example.com/org/repo.git"},
		{"token as user name", "https://t0k^en@git.example.com/org/repo.git", "t0k", "https://REDACTED@git.example.com/org/repo.git"},
		{"slash in password", "https://ci:s3/cr%t@git.example.com/org/repo.git", "s3/cr", "https://REDACTED@git.example.com/org/repo.git"},
		{"scp-like", "git@github.com:org/repo.git", "", "git@github.com:org/repo.git"},
		// A token in the query stays out however the URL fails to parse:
		// a bad escape in the path, a password url.Parse refuses.
		{"query token, bad escape", "https://git.example.com/org/re%zzpo.git?private_token=S3CRETQ",
			"S3CRETQ", "https://git.example.com/org/re%zzpo.git?private_token=REDACTED"},
		{"query token after a password", "https://ci:s3cr^t@git.example.com/org/repo.git?access_token=S3CRETQ&ref=main",
			"S3CRETQ", "https://REDACTED@git.example.com/org/repo.git?access_token=REDACTED&ref=REDACTED"},
		{"query token, bad query escape", "https://git.example.com/re%zz?private_token=S3%CRETQ#frag",
			"CRETQ", "https://git.example.com/re%zz?REDACTED#frag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, display := splitURL(tt.raw); display != tt.display {
				t.Fatalf("display = %q, want %q", display, tt.display)
			}
			var logged strings.Builder
			slog.New(slog.NewTextHandler(&logged, nil)).Info("configured", "git", GitOptions{URL: tt.raw})
			if !strings.Contains(logged.String(), tt.display) {
				t.Errorf("log value does not show %q: %s", tt.display, logged.String())
			}
			if tt.secret == "" {
				return
			}
			if strings.Contains(logged.String(), tt.secret) {
				t.Errorf("log value leaks the secret: %s", logged.String())
			}
			g, err := NewGit(GitOptions{URL: tt.raw, CacheDir: t.TempDir()})
			if err != nil {
				if strings.Contains(err.Error(), tt.secret) {
					t.Fatalf("NewGit error leaks the secret: %v", err)
				}
				return
			}
			if strings.Contains(g.String(), tt.secret) || strings.Contains(g.describe(), tt.secret) {
				t.Fatalf("source name leaks the secret: %s", g.describe())
			}
		})
	}
}

// queryOf finds the query go-git may echo, so that Fetch scrubs it from
// errors, in URLs that parse and in those that do not.
func TestQueryOf(t *testing.T) {
	for _, tt := range []struct{ raw, want string }{
		{"https://git.example.com/r?private_token=T", "private_token=T"},
		{"https://git.example.com/re%zz?private_token=T#f", "private_token=T"},
		// A '?' in a password that url.Parse refuses is not the query.
		{"https://ci:s3?cr^t@git.example.com/r?private_token=T", "private_token=T"},
		{"https://ci:s3?cr^t@git.example.com/r", ""},
		{"git@github.com:org/repo.git", ""},
	} {
		if got := queryOf(tt.raw); got != tt.want {
			t.Errorf("queryOf(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

// An scp-like address with a password ("deploy:pw@host:org/repo.git",
// which url.Parse reads as the scheme "deploy") loses the password as an
// ssh:// URL does: SSH authenticates with a key, and the name, errors and
// log value must not show it, nor must the server get it as the user name.
func TestSCPLikeURLPasswordHidden(t *testing.T) {
	const secret = "hunt3rPW"
	for _, tt := range []struct{ name, raw, want string }{
		{"user and password", "deploy:" + secret + "@127.0.0.1:org/spec.git", "deploy@127.0.0.1:org/spec.git"},
		{"password only", ":" + secret + "@127.0.0.1:org/spec.git", "127.0.0.1:org/spec.git"},
	} {
		// The sub-test's name goes into its temp dirs, which errors show.
		t.Run(tt.name, func(t *testing.T) {
			var logged strings.Builder
			slog.New(slog.NewTextHandler(&logged, nil)).Info("configured", "git", GitOptions{URL: tt.raw})
			if strings.Contains(logged.String(), secret) {
				t.Errorf("log value leaks the password: %s", logged.String())
			}
			g, err := NewGit(GitOptions{URL: tt.raw, CacheDir: t.TempDir(), Auth: GitAuth{SSHKeyFile: filepath.Join(t.TempDir(), "missing-key")}})
			if err != nil {
				t.Fatal(err)
			}
			if !g.ssh {
				t.Fatalf("%s is not taken for an ssh address", tt.raw)
			}
			if g.String() != tt.want || g.url != tt.want {
				t.Errorf("name %q, address %q; want %q for both", g.String(), g.url, tt.want)
			}
			_, err = g.Fetch(context.Background())
			if err == nil || strings.Contains(err.Error(), secret) {
				t.Errorf("Fetch error %v, want one without the password", err)
			}
		})
	}
}
