package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/idrecon/idrecon/runtime/admin"
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
		{"user information, parses", "http://admin:s3cret@127.0.0.1:9090", "s3cret", "http://REDACTED@127.0.0.1:9090"},
		{"token as user name, parses", "https://s3cret-token@127.0.0.1:9090/admin", "s3cret", "https://REDACTED@127.0.0.1:9090/admin"},
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

// TestUnauthorizedNamesTheTokenSource: a daemon that refuses the admin
// token (HTTP 401) gets an error that says where the CLI took the token
// from (the flag's file, IDRECON_ADMIN_TOKEN, or the file it found) and
// what to do, in text and JSON, and never shows the token itself.
func TestUnauthorizedNamesTheTokenSource(t *testing.T) {
	const secret = "the-wrong-token-itself-0123456789"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(admin.Error{Error: "missing or wrong admin token"})
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	t.Chdir(dir) // where `make run` left ./data/admin-token
	if err := os.MkdirAll("data", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("data", "admin-token"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	flagFile := filepath.Join(dir, "flag-token")
	if err := os.WriteFile(flagFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	server := map[string]string{"IDRECON_SERVER": srv.URL}
	withEnvToken := map[string]string{"IDRECON_SERVER": srv.URL, "IDRECON_ADMIN_TOKEN": secret}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		from string // the source the error must name
	}{
		{"--admin-token-file", withEnvToken, []string{"status", "--admin-token-file", flagFile}, flagFile},
		{"IDRECON_ADMIN_TOKEN", withEnvToken, []string{"status"}, "IDRECON_ADMIN_TOKEN"},
		{"found in ./data", server, []string{"status"}, "data/admin-token"},
		{"found in ./data, json", server, []string{"users", "--output", "json"}, "data/admin-token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := run(t, tt.env, tt.args...)
			if code != 1 || !strings.Contains(errs, "HTTP 401") {
				t.Fatalf("exit %d, want 1 with the 401\nstdout:\n%s\nstderr:\n%s", code, out, errs)
			}
			for _, w := range []string{tt.from, "--admin-token-file"} {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr does not say %q:\n%s", w, errs)
				}
				if slices.Contains(tt.args, "json") && !strings.Contains(out, w) {
					t.Errorf("the JSON error does not say %q:\n%s", w, out)
				}
			}
			if strings.Contains(out+errs, secret) {
				t.Errorf("the token itself is shown:\n%s%s", out, errs)
			}
		})
	}
}

// TestServerURLWithCredentialsIsRefused: a --server holding a user name or
// password is a usage error before any request: the admin API takes a
// bearer token, and the client sends the URL's user information nowhere,
// so a URL that seems to authenticate would not. A query is refused too:
// the CLI appends each request's path to the URL, which would land in the
// query. The URL is echoed as spec/redact shows every URL, a token passed
// as the user name or in the query hidden (CI logs keep stderr), in text
// and JSON alike.
func TestServerURLWithCredentialsIsRefused(t *testing.T) {
	var asked atomic.Int32
	env := fakeDaemonEnv(t, func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.NotFound(w, r)
	})
	addr := strings.TrimPrefix(env["IDRECON_SERVER"], "http://")
	for _, tc := range []struct{ server, shown string }{
		{"http://s3cret-token@" + addr, "http://REDACTED@" + addr},
		{"http://admin:s3cret@" + addr, "http://REDACTED@" + addr},
		{"http://:s3cret@" + addr + "/", "http://REDACTED@" + addr + "/"},
		{"https://admin:s3cret@" + addr + "/prefix", "https://REDACTED@" + addr + "/prefix"},
		{"http://@" + addr, "http://REDACTED@" + addr},
		{"http://" + addr + "/?token=s3cret", "http://" + addr + "/?token=REDACTED"},
		{"http://" + addr + "/#frag", "http://" + addr + "/#frag"},
	} {
		for _, output := range []string{"text", "json"} {
			code, out, errs := run(t, map[string]string{"IDRECON_ADMIN_TOKEN": "x"}, "users", "--server", tc.server, "--output", output)
			if code != 1 || strings.Contains(out+errs, "s3cret") || !strings.Contains(errs, tc.shown) ||
				!strings.Contains(errs, "Run 'idrecon users --help'") {
				t.Errorf("users --server %s --output %s: exit %d, want a usage error showing %s without the secret\nstdout:\n%s\nstderr:\n%s",
					tc.server, output, code, tc.shown, out, errs)
			}
		}
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("the daemon was asked %d time(s)", n)
	}
	// Refused as the usage error it is also with no admin token to be found.
	t.Chdir(t.TempDir())
	code, out, errs := run(t, nil, "status", "--server", "http://admin:s3cret@"+addr)
	if code != 1 || strings.Contains(out+errs, "s3cret") || !strings.Contains(errs, "user name or password") {
		t.Errorf("status without a token: exit %d, want the --server usage error\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}

// TestServerURLPathIsAPrefix: a --server with a path reaches a daemon
// behind a proxy that serves the admin API below that path; a trailing
// '/' changes nothing.
func TestServerURLPathIsAPrefix(t *testing.T) {
	var paths []string
	env := fakeDaemonEnv(t, func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.Path)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}"))
	})
	for _, server := range []string{env["IDRECON_SERVER"] + "/admin/idrecon", env["IDRECON_SERVER"] + "/admin/idrecon/"} {
		paths = nil
		code, out, errs := run(t, map[string]string{"IDRECON_ADMIN_TOKEN": "x"}, "users", "--server", server, "--output", "json")
		if code != 0 || len(paths) != 1 || !strings.HasPrefix(paths[0], "/admin/idrecon/v1/") {
			t.Errorf("users --server %s: exit %d, asked %q, want one request below /admin/idrecon/v1/\nstdout:\n%s\nstderr:\n%s", server, code, paths, out, errs)
		}
	}
}
