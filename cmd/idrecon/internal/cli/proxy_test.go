package cli

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// signInPage is what a proxy in front of the admin API (an SSO gateway)
// answers a request without its session cookie: a web page, with 200.
const signInPage = "<!DOCTYPE html>\n<html>\n<head><title>Sign in</title></head>\n<body><form action=\"/login\"></form></body>\n</html>\n"

// TestAWebPageIsNotTheAdminAPIsAnswer: a --server that answers with a web
// page (a proxy's sign-in page, a web server on that port) is not taken for
// the daemon: backup and saml metadata wrote the page into the file and
// said it was saved, exit 0; a restore or Entra found out later. Commands
// that read JSON failed with the decoder's "invalid character '<'", which
// does not say that --server is what is wrong.
func TestAWebPageIsNotTheAdminAPIsAnswer(t *testing.T) {
	env := fakeDaemonEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(signInPage))
	})
	dir := t.TempDir()
	for _, args := range [][]string{
		{"backup", "-o", filepath.Join(dir, "idrecon.backup")},
		{"backup"},
		{"saml", "metadata", "-o", filepath.Join(dir, "sp.xml")},
		{"saml", "metadata"},
		{"status"},
		{"users"},
	} {
		code, out, errs := run(t, env, args...)
		if code != 1 || !strings.Contains(errs, "web page") || !strings.Contains(errs, "--server") {
			t.Errorf("%s: exit %d, want 1 saying the answer is a web page, not the admin API's, naming --server\nstdout:\n%s\nstderr:\n%s",
				strings.Join(args, " "), code, out, errs)
		}
		if out != "" {
			t.Errorf("%s: the page reached stdout:\n%s", strings.Join(args, " "), out)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files written from a web page: %v", ents)
	}
}

// TestAProxysErrorPageIsOneLine: a proxy in front of a daemon that is down
// answers 502 with its own HTML page, or with nothing; the error was the
// page's every line, markup and all, or an empty message before
// "(HTTP 502)". It says the status instead, on one line, and in JSON too.
func TestAProxysErrorPageIsOneLine(t *testing.T) {
	for _, tc := range []struct {
		name, contentType, body string
	}{
		{"html", "text/html", "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"},
		{"empty", "", ""},
		{"text with escapes", "text/plain", "upstream connect error\x1b[2J\nreset reason: connection failure\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := fakeDaemonEnv(t, func(w http.ResponseWriter, r *http.Request) {
				if tc.contentType != "" {
					w.Header().Set("Content-Type", tc.contentType)
				}
				w.WriteHeader(http.StatusBadGateway)
				w.Write([]byte(tc.body))
			})
			code, out, errs := run(t, env, "status")
			if code != 1 || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "Bad Gateway (HTTP 502)") ||
				strings.ContainsAny(errs, "<\x1b") || strings.Contains(errs, ":  (HTTP") {
				t.Errorf("status: exit %d, want 1 and one line saying Bad Gateway (HTTP 502), no markup or escape\nstdout:\n%s\nstderr:\n%q", code, out, errs)
			}
			code, out, _ = run(t, env, "status", "--output", "json")
			var e errorEnvelope
			if code != 1 || json.Unmarshal([]byte(out), &e) != nil || e.Kind != "Error" || !strings.Contains(e.Error.Message, "Bad Gateway (HTTP 502)") ||
				strings.ContainsAny(e.Error.Message, "<\x1b") {
				t.Errorf("status --output json: exit %d, want 1 and an Error saying Bad Gateway (HTTP 502)\n%s", code, out)
			}
		})
	}
}

// TestOutFileMistakesSayWhatIsWrong: -o naming a folder was refused
// "exists: give --force to replace it", and with --force the rename failed
// naming a temporary file; -o in a folder that does not exist named that
// temporary file too. Each says what -o names instead, and nothing is left.
func TestOutFileMistakesSayWhatIsWrong(t *testing.T) {
	env := fakeDaemonEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write([]byte("snapshot"))
	})
	dir := t.TempDir()
	folder := filepath.Join(dir, "backups")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing", "idrecon.backup")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"backup", "-o", folder}, folder + " is a folder"},
		{[]string{"backup", "-o", folder, "--force"}, folder + " is a folder"},
		{[]string{"saml", "metadata", "-o", folder}, folder + " is a folder"},
		{[]string{"backup", "-o", missing}, filepath.Dir(missing) + ": no such file or directory"},
		{[]string{"saml", "metadata", "-o", missing}, filepath.Dir(missing) + ": no such file or directory"},
	} {
		code, out, errs := run(t, env, tc.args...)
		if code != 1 || !strings.Contains(errs, tc.want) || strings.Contains(errs, ".tmp-") || strings.Contains(errs, "give --force") {
			t.Errorf("%s: exit %d, want 1 saying %q, no temporary file named, no advice to --force\nstdout:\n%s\nstderr:\n%s",
				strings.Join(tc.args, " "), code, tc.want, out, errs)
		}
	}
	if ents, _ := os.ReadDir(folder); len(ents) != 0 {
		t.Errorf("left in %s: %v", folder, ents)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("left in %s: %v", dir, ents)
	}
}

// TestKeystoreKeyOutFolder: --key-out naming a folder was refused "exists:
// give --force", advice that failed again with --force.
func TestKeystoreKeyOutFolder(t *testing.T) {
	env := map[string]string{"IDRECON_KEYSTORE_PASSWORD": "secret"}
	p12 := testPKCS12(t, "secret")
	root := t.TempDir()
	t.Chdir(root)
	if err := os.Mkdir("keys", 0o700); err != nil {
		t.Fatal(err)
	}
	for _, force := range [][]string{nil, {"--force"}} {
		args := append([]string{"keystore", "import", p12, "--name", "sp", "--spec", "spec", "--key-out", "keys"}, force...)
		code, out, errs := run(t, env, args...)
		if code != 1 || !strings.Contains(errs, "keys is a folder") || strings.Contains(errs, "give --force") {
			t.Errorf("%s: exit %d, want 1 saying keys is a folder\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errs)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "spec", "keystore-sp.yaml")); err == nil {
		t.Error("the document was written though the key was not")
	}
}

// TestAnotherServicesNotFoundNamesServer: --server at the daemon's SCIM and
// SAML port (the one an operator knows, from Entra) answered "404 page not
// found (HTTP 404)", which does not say that the port is wrong. The admin
// API answers every error in its JSON, so a plain-text 404 is another
// service's.
func TestAnotherServicesNotFoundNamesServer(t *testing.T) {
	example, _ := filepath.Abs("../../../../examples/entra")
	env, scim := startDaemon(t, example)
	for _, args := range [][]string{{"status"}, {"users"}, {"backup"}} {
		code, out, errs := run(t, env, append(args, "--server", scim)...)
		if code != 1 || !strings.Contains(errs, "HTTP 404") || !strings.Contains(errs, "--server") || !strings.Contains(errs, "SCIM and SAML port") {
			t.Errorf("%s --server %s: exit %d, want 1 with the 404 naming --server\nstdout:\n%s\nstderr:\n%s", args[0], scim, code, out, errs)
		}
	}
	// The admin API's own 404 (a prefix no proxy strips) is the daemon's
	// answer, and says so without the hint.
	code, _, errs := run(t, env, "status", "--server", env["IDRECON_SERVER"]+"/prefix")
	if code != 1 || !strings.Contains(errs, "not found: GET /prefix/v1/status (HTTP 404)") || strings.Contains(errs, "SCIM and SAML port") {
		t.Errorf("status below a prefix the daemon does not strip: exit %d\n%s", code, errs)
	}
}
