package cli

import (
	"strings"
	"testing"
)

// A --server that is refused is echoed in the usage error, which CI logs
// keep: whatever may be user information must not show, also in a URL that
// does not parse, while the rest still tells the user which value is meant.
func TestServerURLErrorHidesUserinfo(t *testing.T) {
	tests := []struct {
		name   string
		server string
		secret string // must not appear
		shown  string // must appear
	}{
		{"trailing space, unparsable", "http://admin:s3cret@127.0.0.1:9090 ", "s3cret", "127.0.0.1:9090"},
		{"slash in password, unparsable", "http://admin:s3/cret@127.0.0.1:9090", "cret", "127.0.0.1:9090"},
		{"hash in password, unparsable", "http://admin:s3#cret@127.0.0.1:9090", "cret", "127.0.0.1:9090"},
		{"token as user name, unparsable", "http://s3cret-token@127.0.0.1:9090 ", "s3cret", "127.0.0.1:9090"},
		{"wrong scheme, parses", "ftp://admin:s3cret@127.0.0.1:9090", "s3cret", "ftp://REDACTED@127.0.0.1:9090"},
		{"no scheme", "admin:s3cret@127.0.0.1:9090", "s3cret", "127.0.0.1:9090"},
		{"no user information", "localhost:9090", "", "localhost:9090"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := serverURL(tt.server)
			if err == nil {
				t.Fatalf("serverURL(%q) accepted", tt.server)
			}
			msg := err.Error()
			if tt.secret != "" && strings.Contains(msg, tt.secret) {
				t.Errorf("error leaks %q: %s", tt.secret, msg)
			}
			if !strings.Contains(msg, tt.shown) {
				t.Errorf("error does not show %q: %s", tt.shown, msg)
			}
		})
	}
}
