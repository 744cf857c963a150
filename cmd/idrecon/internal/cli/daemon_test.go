package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/daemon"
)

const (
	testAdminToken = "cli-test-admin-token-0123456789"
	demoSCIMToken  = "idrecon-demo-token-for-make-run-only-0123456789"
)

// startDaemon runs a real daemon and returns the env its CLI commands need.
func startDaemon(t *testing.T, specDir string) (map[string]string, string) {
	t.Helper()
	addrs := make(chan [2]string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Config{
			SpecDir: specDir, DataDir: t.TempDir(), AdminToken: testAdminToken,
			Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", InsecureHTTP: true, Interval: time.Hour,
			Logger:  slog.New(slog.DiscardHandler),
			Started: func(a, b string) { addrs <- [2]string{a, b} },
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	})
	select {
	case a := <-addrs:
		return map[string]string{"IDRECON_SERVER": "http://" + a[1], "IDRECON_ADMIN_TOKEN": testAdminToken}, "http://" + a[0]
	case err := <-done:
		t.Fatalf("daemon did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not start in time")
	}
	return nil, ""
}

func scimPost(t *testing.T, url, body string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+demoSCIMToken)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, b)
	}
}

func TestCommandsAgainstADaemon(t *testing.T) {
	example, _ := filepath.Abs("../../../../examples/entra")
	env, base := startDaemon(t, example)
	scimPost(t, base+"/api/scim/v2/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice@contoso.com","active":true,"externalId":"alice"}`)

	changed := t.TempDir()
	if err := os.CopyFS(changed, os.DirFS(example)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(changed, "assignments.yaml"))
	os.WriteFile(filepath.Join(changed, "assignments.yaml"), bytes.ReplaceAll(b, []byte("View Only"), []byte("Developer")), 0o644)
	spFile := filepath.Join(t.TempDir(), "sp.xml")

	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
	}{
		{"status", []string{"status"}, 0, []string{"READY             True", "LAST ATTEMPT", ": ok", "ready (serving /api/scim/v2 with 1 token(s))"}},
		{"status json", []string{"status", "--output", "json"}, 0, []string{`"formatVersion": "idrecon.io/cli/v1"`, `"kind": "Status"`, `"appliedRevision"`, `"ready": true`}},
		{"users", []string{"users"}, 0, []string{"alice@contoso.com", "View Only", "webgoat/2.0"}},
		{"users json", []string{"users", "--output", "json", "--filter", "ALICE"}, 0, []string{`"kind": "UserList"`, `"userName": "alice@contoso.com"`}},
		{"groups json (none)", []string{"groups", "--output", "json"}, 0, []string{`"kind": "GroupList"`, `"items": []`}},
		{"access pending json", []string{"access", "pending", "--output", "json"}, 0, []string{`"kind": "PendingAssignmentList"`, `"appsec-admins"`}},
		{"groups (none yet)", []string{"groups"}, 0, []string{"No groups"}},
		{"access user", []string{"access", "user", "alice@contoso.com"}, 0, []string{"View Only", "direct, assignment alice"}},
		{"access version", []string{"access", "version", "webgoat/2.0"}, 0, []string{"1 user(s)", "alice@contoso.com"}},
		{"access pending", []string{"access", "pending"}, 0, []string{"appsec-admins", "not provisioned"}},
		{"plan unchanged", []string{"plan", example, "--server", env["IDRECON_SERVER"]}, 0, []string{"No changes"}},
		{"plan with blast radius", []string{"plan", changed, "--server", env["IDRECON_SERVER"]}, 2, []string{
			"~ AccessAssignment/alice", `["View Only"] → ["Developer"]`, "+ 1 gain role Developer (alice@contoso.com)", "- 1 lose role View Only"}},
		{"apply refused in pull mode", []string{"apply", changed}, 1, nil},
		{"saml metadata", []string{"saml", "metadata", "-o", spFile}, 0, nil},
		{"suspend", []string{"suspend"}, 0, []string{"suspended"}},
		{"status suspended", []string{"status"}, 0, []string{"SUSPENDED         true"}},
		{"resume", []string{"resume"}, 0, []string{"resumed"}},
		{"reconcile --wait", []string{"reconcile", "--wait", "--timeout", "30s"}, 0, []string{"applied revision"}},
		{"wrong token", []string{"status", "--admin-token-file", "/dev/null"}, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := run(t, env, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errs)
			}
			for _, want := range tt.stdout {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
		})
	}
	if b, err := os.ReadFile(spFile); err != nil || !bytes.Contains(b, []byte("EntityDescriptor")) {
		t.Fatalf("saml metadata file: %v %.200s", err, b)
	}

	// A backup restores into a data dir that a new daemon serves from.
	code, backup, errs := run(t, env, "backup")
	if code != 0 || len(backup) == 0 {
		t.Fatalf("backup: exit %d %s", code, errs)
	}
	file := filepath.Join(t.TempDir(), "backup")
	os.WriteFile(file, []byte(backup), 0o600)
	dataDir := t.TempDir()
	if code, out, errs := run(t, nil, "restore", file, "--data-dir", dataDir); code != 0 {
		t.Fatalf("restore: exit %d %s %s", code, out, errs)
	}
	if code, _, errs := run(t, nil, "restore", file, "--data-dir", dataDir); code != 1 || !strings.Contains(errs, "--force replaces it") {
		t.Fatalf("restore over an existing state file without --force: exit %d, %q; want exit 1 naming --force", code, errs)
	}

	t.Run("backup -o", func(t *testing.T) { testBackupToFile(t, env) })
}

// testBackupToFile: -o writes the backup 0600 whatever the umask, refuses
// to replace a file without --force, and replaces it whole with it.
func testBackupToFile(t *testing.T, env map[string]string) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
	dir := t.TempDir()
	file := filepath.Join(dir, "idrecon.backup")
	check := func() {
		t.Helper()
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("backup file mode %v, want 0600", fi.Mode().Perm())
		}
		if code, out, errs := run(t, nil, "restore", file, "--data-dir", t.TempDir()); code != 0 {
			t.Errorf("the backup file does not restore: exit %d\n%s%s", code, out, errs)
		}
	}
	if code, out, errs := run(t, env, "backup", "-o", file); code != 0 || out != "" {
		t.Fatalf("backup -o: exit %d\n%s\n%s", code, out, errs)
	}
	check()

	os.WriteFile(file, []byte("an older backup"), 0o600)
	if code, _, errs := run(t, env, "backup", "-o", file); code != 1 || !strings.Contains(errs, "--force") {
		t.Fatalf("backup over an existing file: exit %d\n%s", code, errs)
	}
	if b, _ := os.ReadFile(file); string(b) != "an older backup" {
		t.Fatal("a refused backup changed the existing file")
	}
	if code, _, errs := run(t, env, "backup", "-o", file, "--force"); code != 0 {
		t.Fatalf("backup -o --force: exit %d\n%s", code, errs)
	}
	check()
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary files left behind: %v", ents)
	}
}

func TestApplyInPushMode(t *testing.T) {
	example, _ := filepath.Abs("../../../../examples/entra")
	env, _ := startDaemon(t, "")
	if code, out, errs := run(t, env, "apply", example); code != 0 || !strings.Contains(out, "Apply complete") {
		t.Fatalf("apply: exit %d\n%s\n%s", code, out, errs)
	}
	if code, out, errs := run(t, env, "plan", example, "--server", env["IDRECON_SERVER"]); code != 0 {
		t.Fatalf("plan after apply: exit %d\n%s\n%s", code, out, errs)
	}
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "x.yaml"), []byte("apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: x\nspec:\n  versions: []\n  extra: 1\n"), 0o644)
	code, _, errs := run(t, env, "apply", bad)
	if code != 1 || !strings.Contains(errs, "x.yaml:7") {
		t.Fatalf("bad apply: exit %d\n%s", code, errs)
	}
}

// TestServeRefusesAPlainAdminAPIOffLoopback: the admin API has no TLS, so
// serve keeps it on loopback unless told otherwise.
func TestServeRefusesAPlainAdminAPIOffLoopback(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := Main(ctx, Env{
		Args:   []string{"serve", "--admin-listen", "0.0.0.0:0", "--listen", "127.0.0.1:0", "--insecure-http", "--data-dir", ""},
		Getenv: func(k string) string { return map[string]string{"IDRECON_ADMIN_TOKEN": testAdminToken}[k] },
		Stdout: &out, Stderr: &errb,
	})
	if code != 1 || !strings.Contains(errb.String(), "--admin-insecure-http") {
		t.Fatalf("exit %d\n%s", code, errb.String())
	}
}

// TestReconcileWait: reconcile --wait blocks until the reconcile ends and
// says how: 0 and the revision when applied, 3 and why when refused.
func TestReconcileWait(t *testing.T) {
	example, _ := filepath.Abs("../../../../examples/entra")
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(example)); err != nil {
		t.Fatal(err)
	}
	env, _ := startDaemon(t, dir)
	if code, out, errs := run(t, env, "reconcile", "--wait", "--timeout", "30s"); code != 0 || !strings.Contains(out, "applied revision") {
		t.Fatalf("exit %d, want 0 and the revision\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	f, _ := os.OpenFile(filepath.Join(dir, "roles.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("kind: Nope\n")
	f.Close()
	if code, out, errs := run(t, env, "reconcile", "--wait", "--timeout", "30s"); code != exitNotReady || !strings.Contains(errs, "refused") {
		t.Fatalf("exit %d, want %d saying refused\nstdout:\n%s\nstderr:\n%s", code, exitNotReady, out, errs)
	}
}

// TestGeneratedTokenLogSaysWhereTheCLILooks: the daemon's log line for a
// token it generated says what is true of the CLI: it looks in the places
// of adminTokenFiles without any flag, and --admin-token-file is for a
// token kept anywhere else.
func TestGeneratedTokenLogSaysWhereTheCLILooks(t *testing.T) {
	var logs bytes.Buffer // written by the daemon's goroutines, read once it stopped
	ctx, cancel := context.WithCancel(context.Background())
	started, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Config{
			DataDir: t.TempDir(), Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", InsecureHTTP: true, Interval: time.Hour,
			Logger:  slog.New(slog.NewTextHandler(&logs, nil)),
			Started: func(string, string) { close(started) },
		})
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("daemon did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not start in time")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("daemon: %v", err)
	}
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "generated an admin token") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no log line for the generated token:\n%s", logs.String())
	}
	for _, f := range adminTokenFiles {
		if !strings.Contains(line, f) {
			t.Errorf("the log line does not name %s, where the CLI looks without flags:\n%s", f, line)
		}
	}
	if !strings.Contains(line, "--admin-token-file") {
		t.Errorf("the log line does not say how to use a token kept elsewhere:\n%s", line)
	}
}

// TestServeRefusesAnUnusableWebhookSecretFile: a webhook secret or token
// file that is missing or empty stops serve with the flag named. An empty
// one used to start a webhook that refuses every push, in silence.
func TestServeRefusesAnUnusableWebhookSecretFile(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ flag, file, want string }{
		{"--webhook-secret-file", empty, "--webhook-secret-file: " + empty + " is empty"},
		{"--webhook-token-file", empty, "--webhook-token-file: " + empty + " is empty"},
		{"--webhook-secret-file", filepath.Join(t.TempDir(), "missing"), "--webhook-secret-file: open "},
	} {
		t.Run(tc.flag+" "+filepath.Base(tc.file), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var out, errb bytes.Buffer
			code := Main(ctx, Env{
				Args:   []string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--insecure-http", "--data-dir", t.TempDir(), tc.flag, tc.file},
				Getenv: func(k string) string { return map[string]string{"IDRECON_ADMIN_TOKEN": testAdminToken}[k] },
				Stdout: &out, Stderr: &errb,
			})
			if code != 1 || !strings.Contains(errb.String(), tc.want) {
				t.Fatalf("exit %d, want 1 and %q\n%s", code, tc.want, errb.String())
			}
		})
	}
}
