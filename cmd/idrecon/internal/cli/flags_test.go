package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFlagsThatWouldMeanNothing: a flag whose value the command would
// ignore (it needs another flag that is not given) or quietly replace (an
// interval of zero becomes the default), or that the daemon would refuse
// only once asked, is a mistake in the command line: exit 1 with one line
// naming the flag, before any daemon is asked or started.
func TestFlagsThatWouldMeanNothing(t *testing.T) {
	tests := []struct {
		args []string
		want string // in the message
	}{
		{[]string{"reconcile", "--timeout", "1m"}, "--timeout"},
		{[]string{"resume", "--timeout", "1m"}, "--timeout"},
		{[]string{"status", "--every", "5s"}, "--every"},
		{[]string{"plan", ".", "--branch", "main"}, "--branch"},
		{[]string{"plan", ".", "--path", "spec", "--tag", "v1"}, "--path"},
		{[]string{"serve", "--spec", ".", "--branch", "main"}, "--branch"},
		{[]string{"serve", "--spec", ".", "--git-password-file", "/etc/pw"}, "--git-password-file"},
		{[]string{"serve", "--spec", ".", "--interval", "0"}, "--interval"},
		{[]string{"serve", "--spec", ".", "--interval", "-1m"}, "--interval"},
		{[]string{"serve", "--spec", ".", "--max-connections", "0"}, "--max-connections"},
		{[]string{"serve", "--spec", ".", "--max-users", "0"}, "--max-users"},
		{[]string{"serve", "--spec", ".", "--max-groups", "-1"}, "--max-groups"},
		{[]string{"serve", "--spec", ".", "--max-memberships", "0"}, "--max-memberships"},
		{[]string{"serve", "--spec", ".", "--etcd-prefix", "/other/"}, "--etcd-prefix"},
		{[]string{"serve", "--spec", ".", "--etcd-ca", "ca.pem"}, "--etcd-ca"},
		{[]string{"serve", "--spec", ".", "--etcd-max-stale", "1m"}, "--etcd-max-stale"},
		{[]string{"serve", "--spec", ".", "--etcd-max-txn-ops", "1000"}, "--etcd-max-txn-ops"},
		{[]string{"serve", "--spec", ".", "--etcd", "http://127.0.0.1:1", "--etcd-max-txn-ops", "100"}, "--etcd-max-txn-ops"},
		{[]string{"serve", "--spec", ".", "--etcd", "http://127.0.0.1:1", "--etcd-max-stale", "-1s"}, "--etcd-max-stale"},
		{[]string{"restore", "FILE", "--etcd-prefix", "/other/"}, "--etcd-prefix"},
		{[]string{"users", "--active", "yes"}, "--active"},
		{[]string{"users", "--limit", "0"}, "--limit"},
		{[]string{"groups", "--limit", "501"}, "--limit"},
		// The server here is IDRECON_SERVER's, which the message names,
		// and the mistake is said before any clone.
		{[]string{"plan", ".", "--base-ref", "main"}, "IDRECON_SERVER"},
		{[]string{"plan", "--git", "file:///nonexistent/idrecon-spec", "--base-ref", "main"}, "IDRECON_SERVER"},
	}
	env := map[string]string{"IDRECON_SERVER": "http://127.0.0.1:1", "IDRECON_ADMIN_TOKEN": "x"}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			args := tt.args
			if args[0] == "serve" {
				// Should the flag be taken, the daemon starts: on no
				// fixed port, and only until the deadline.
				args = append(append([]string{}, args...), "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data-dir", t.TempDir())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var out, errb bytes.Buffer
			code := Main(ctx, Env{Args: args, Getenv: func(k string) string { return env[k] }, Stdout: &out, Stderr: &errb})
			errs := errb.String()
			cmd := "idrecon " + args[0]
			lines := strings.Split(strings.TrimSuffix(errs, "\n"), "\n")
			if code != 1 || len(lines) != 2 || !strings.HasPrefix(lines[0], cmd+": ") || !strings.Contains(lines[0], tt.want) ||
				lines[1] != "Run '"+cmd+" --help' for usage." {
				t.Errorf("exit %d, want 1 and a usage error naming %s\nstdout:\n%s\nstderr:\n%s", code, tt.want, out.String(), errs)
			}
		})
	}
}

// TestRestoreRefusedCreatesNoDataDir: a restore refused (not a backup)
// leaves no data dir it made, which a daemon would take for a fresh state.
func TestRestoreRefusedCreatesNoDataDir(t *testing.T) {
	tmp := t.TempDir()
	bad := filepath.Join(tmp, "bad.backup")
	if err := os.WriteFile(bad, []byte("not a backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(tmp, "new", "data")
	code, out, errs := run(t, nil, "restore", bad, "--data-dir", data)
	if code != 1 || !strings.Contains(errs, "not an idrecon backup") {
		t.Errorf("exit %d, want 1 refusing the file\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if _, err := os.Lstat(filepath.Join(tmp, "new")); !os.IsNotExist(err) {
		t.Errorf("a refused restore left %s (%v)", filepath.Join(tmp, "new"), err)
	}
	// A data dir that was there stays, empty or not.
	kept := filepath.Join(tmp, "kept")
	os.Mkdir(kept, 0o700)
	if code, _, _ := run(t, nil, "restore", bad, "--data-dir", kept); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if _, err := os.Stat(kept); err != nil {
		t.Errorf("the data dir given was removed: %v", err)
	}
}
