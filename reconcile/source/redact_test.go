package source

import (
	"log/slog"
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		// What parses is redacted the same way, so one rule serves both
		// callers (a git source's display, the CLI's --server errors).
		{"password", "https://ci:s3cret@git.example.com/org/repo.git", "https://REDACTED@git.example.com/org/repo.git"},
		{"password unparsable", "https://ci:s3cr^t pa%zz@git.example.com/org/repo.git", "https://REDACTED@git.example.com/org/repo.git"},
		// A token is often the user name: all of the userinfo goes.
		{"token as user name", "https://t0k^en@git.example.com/r", "https://REDACTED@git.example.com/r"},
		// '/', '#', '?' and '@' in a password would end the userinfo early
		// for a parser; the last '@' does not.
		{"slash in password", "http://admin:s3/cret@127.0.0.1:9090", "http://REDACTED@127.0.0.1:9090"},
		{"hash in password", "http://admin:s3#cret@127.0.0.1:9090", "http://REDACTED@127.0.0.1:9090"},
		{"question mark in password", "http://admin:s3?cret@127.0.0.1:9090/x", "http://REDACTED@127.0.0.1:9090/x"},
		{"at in password", "http://admin:s3@cret@127.0.0.1:9090/x", "http://REDACTED@127.0.0.1:9090/x"},
		{"other scheme", "ftp://admin:s3cret@host", "ftp://REDACTED@host"},
		{"ssh", "ssh://git:s3cret@host/r.git", "ssh://REDACTED@host/r.git"},
		// Without a scheme, "user:password@" is still userinfo...
		{"no scheme", "admin:s3cret@127.0.0.1:9090", "REDACTED@127.0.0.1:9090"},
		{"no scheme, URL in the query", "admin:s3cret@host/?next=http://x", "REDACTED@host/?next=http://x"},
		// ...but scp-like "user@host:path" has no password and stays whole.
		{"scp-like", "git@github.com:org/repo.git", "git@github.com:org/repo.git"},
		{"scp-like, at in path", "git@host:org/re@po", "git@host:org/re@po"},
		{"no userinfo", "https://git.example.com/org/repo.git", "https://git.example.com/org/repo.git"},
		{"host and port", "localhost:9090", "localhost:9090"},
		{"local path", "/srv/git/repo.git", "/srv/git/repo.git"},
		{"empty", "", ""},
		// The price of splitting at the last '@': an '@' in the path hides
		// what comes before it. Better than showing part of a password.
		{"at in path", "https://host/org/@scope/repo", "https://REDACTED@scope/repo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RedactURL(tt.raw); got != tt.want {
				t.Errorf("RedactURL(%q) = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}

// A git source shows URLs that do not parse through RedactURL: its name,
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

// FuzzRedactURL checks that a password, whatever it holds, never survives:
// with or without a scheme, all that stays is what follows the userinfo.
func FuzzRedactURL(f *testing.F) {
	for _, s := range [][2]string{{"s3cret", "host/r"}, {"a/b#c?d@e", "h:1/p"}, {"", "h"}, {"^ %zz", "h/x?y#z"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pass, rest string) {
		if strings.Contains(rest, "@") {
			return // an '@' after the userinfo hides more, by design
		}
		cases := map[string]string{"https://user:": "https://REDACTED@" + rest}
		if !strings.HasPrefix(pass, "//") { // else "user://" reads as a scheme
			cases["user:"] = "REDACTED@" + rest
		}
		for prefix, want := range cases {
			raw := prefix + pass + "@" + rest
			if got := RedactURL(raw); got != want {
				t.Fatalf("RedactURL(%q) = %q, want %q", raw, got, want)
			}
		}
	})
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
