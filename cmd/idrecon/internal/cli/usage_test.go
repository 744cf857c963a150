package cli

import (
	"strings"
	"testing"
)

// TestUsageErrorsExitOne runs every command with each kind of command-line
// mistake: all exit 1 (never plan's 2 for "changes"), print the command's
// usage on stderr, and touch nothing (no daemon is asked, nothing on stdout).
func TestUsageErrorsExitOne(t *testing.T) {
	type tc struct {
		name string
		args []string
	}
	var tests []tc
	// Valid arguments for each command, to which a mistake is added.
	valid := map[string][]string{
		"validate": {"."}, "plan": {"."}, "apply": {"."}, "serve": nil, "status": nil,
		"reconcile": nil, "suspend": nil, "resume": nil, "users": nil, "groups": nil,
		"access": {"pending"}, "token": {"new"}, "saml": {"metadata"}, "backup": {"-o", "x"},
		"restore": {"FILE"}, "keystore": {"import", "FILE.p12"}, "version": nil,
		"migrate": {"--from", "d", "--to-etcd", "http://127.0.0.1:1"}, "init": {"DIR"}, "export": {"-o", "x"},
	}
	for name := range commands() {
		args, ok := valid[name]
		if !ok {
			t.Fatalf("command %s has no valid arguments in this test", name)
		}
		with := func(extra ...string) []string {
			return append(append([]string{name}, args...), extra...)
		}
		tests = append(tests,
			tc{name + "/unknown flag", with("--no-such-flag")},
			tc{name + "/extra argument", with("extra", "more")},
		)
		if len(args) > 0 && !strings.HasPrefix(args[0], "-") && name != "validate" && name != "plan" && name != "apply" {
			tests = append(tests, tc{name + "/missing argument", append([]string{name}, args[:len(args)-1]...)})
		}
	}
	for _, name := range []string{"plan", "apply", "status", "users", "groups", "access"} {
		tests = append(tests, tc{name + "/bad output", append(append([]string{name}, valid[name]...), "--output", "yaml")})
	}
	tests = append(tests,
		tc{"no command", nil},
		tc{"unknown command", []string{"frobnicate"}},
		tc{"access without a name", []string{"access", "user"}},
		tc{"access version without a slash", []string{"access", "version", "webgoat"}},
		tc{"plan with DIR and --git", []string{"plan", ".", "--git", "file:///nowhere"}},
		tc{"plan with --server and --base-ref", []string{"plan", ".", "--server", "http://127.0.0.1:1", "--base-ref", "main"}},
	)
	// An unreachable daemon: a command that got past its usage checks fails
	// with another message, which the stderr check catches.
	env := map[string]string{"IDRECON_SERVER": "http://127.0.0.1:1", "IDRECON_ADMIN_TOKEN": "x"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := run(t, env, tt.args...)
			if code != 1 {
				t.Errorf("exit %d, want 1\nstderr:\n%s", code, errs)
			}
			if !strings.Contains(errs, "usage: idrecon") {
				t.Errorf("stderr has no usage:\n%s", errs)
			}
			if out != "" {
				t.Errorf("stdout not empty:\n%s", out)
			}
		})
	}
}

// TestHelpIsOutput: help asked for (idrecon -h, idrecon COMMAND -h) is the
// command's output: on stdout, exit 0, nothing on stderr; --version works
// like the version command.
func TestHelpIsOutput(t *testing.T) {
	for name := range commands() {
		for _, args := range [][]string{{name, "-h"}, {name, "--help"}} {
			code, out, errs := run(t, nil, args...)
			if code != 0 || !strings.Contains(out, "usage: idrecon "+name) || errs != "" {
				t.Errorf("%v: exit %d, stdout %q, stderr %q; want the usage on stdout and exit 0", args, code, out, errs)
			}
		}
	}
	for _, arg := range []string{"-h", "--help", "help"} {
		if code, out, errs := run(t, nil, arg); code != 0 || !strings.Contains(out, "usage: idrecon COMMAND") || errs != "" {
			t.Errorf("idrecon %s: exit %d, stdout %q, stderr %q", arg, code, out, errs)
		}
	}
	if code, out, _ := run(t, nil, "--version"); code != 0 || !strings.HasPrefix(out, "idrecon ") {
		t.Errorf("idrecon --version: exit %d, %q", code, out)
	}
}
