package redact

import (
	"strings"
	"testing"
)

func TestUserinfo(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		// What parses is redacted the same way, so one rule serves every
		// caller (a git source's display, the CLI's --server errors).
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
			if got := Userinfo(tt.raw); got != tt.want {
				t.Errorf("Userinfo(%q) = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}

// URL hides the userinfo and the query's values of URLs that parse and of
// those that do not; what carries no secret is shown as written.
func TestURL(t *testing.T) {
	for _, tt := range []struct{ name, raw, want string }{
		{"query token", "https://idp.example.com/md.xml?appid=42&token=S", "https://idp.example.com/md.xml?appid=REDACTED&token=REDACTED"},
		{"userinfo", "https://ci:S@idp.example.com/md.xml", "https://REDACTED@idp.example.com/md.xml"},
		{"userinfo and query", "https://ci:S@h/p?token=S#f", "https://REDACTED@h/p?token=REDACTED#f"},
		// Parsed, the query's '@' does not end a userinfo: the token after
		// it stays hidden and the host stays shown.
		{"at in the query", "https://h/p?hint=a@b&token=S", "https://h/p?hint=REDACTED&token=REDACTED"},
		{"query that does not parse", "https://h/p?token=S%zz", "https://h/p?REDACTED"},
		{"unparsable, password", "https://ci:s3cr^t@h/r.git?private_token=S", "https://REDACTED@h/r.git?private_token=REDACTED"},
		{"unparsable, bad escape", "https://h/re%zz?private_token=S#f", "https://h/re%zz?private_token=REDACTED#f"},
		{"no scheme, password", "admin:S@127.0.0.1:9090", "REDACTED@127.0.0.1:9090"},
		{"nothing to hide", "https://login.microsoftonline.com/t/federationmetadata.xml", "https://login.microsoftonline.com/t/federationmetadata.xml"},
		{"scp-like", "git@github.com:org/repo.git", "git@github.com:org/repo.git"},
		{"local path", "/srv/git/repo.git", "/srv/git/repo.git"},
		{"empty", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := URL(tt.raw)
			if got != tt.want {
				t.Errorf("URL(%q) = %q, want %q", tt.raw, got, tt.want)
			}
			if strings.Contains(tt.raw, "S") && strings.Contains(strings.ReplaceAll(got, "REDACTED", ""), "S") &&
				!strings.Contains(tt.want, "S") {
				t.Errorf("URL(%q) = %q shows the secret", tt.raw, got)
			}
		})
	}
}

// FuzzUserinfo checks that a password, whatever it holds, never survives:
// with or without a scheme, all that stays is what follows the userinfo.
func FuzzUserinfo(f *testing.F) {
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
			if got := Userinfo(raw); got != want {
				t.Fatalf("Userinfo(%q) = %q, want %q", raw, got, want)
			}
		}
	})
}

// A query parameter written without '=' has no name to show: it is a value,
// and often the key itself ("md.xml?<key>", a webhook's "?<secret>"), so it
// is hidden like one, whether the URL parses or not.
func TestURLHidesBareParameters(t *testing.T) {
	const secret = "S3CRETKEYq0123456789"
	for _, tt := range []struct{ name, raw, want string }{
		{"alone", "https://idp.example.com/md.xml?" + secret, "https://idp.example.com/md.xml?REDACTED"},
		{"with named ones", "https://h/p?appid=1&" + secret + "&x=", "https://h/p?appid=REDACTED&x=REDACTED&REDACTED"},
		{"escaped", "https://h/p?" + secret + "%2F%3D", "https://h/p?REDACTED"},
		{"unparsable URL", "https://ci:s3cr^t@h/r.git?" + secret + "#f", "https://REDACTED@h/r.git?REDACTED#f"},
		{"empty parameters", "https://h/p?&a=1&", "https://h/p?a=REDACTED"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := URL(tt.raw)
			if got != tt.want {
				t.Errorf("URL(%q) = %q, want %q", tt.raw, got, tt.want)
			}
			if strings.Contains(got, secret) {
				t.Errorf("URL(%q) = %q shows the secret", tt.raw, got)
			}
		})
	}
}
