package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// commandNames are idrecon's own commands (not cobra's help and completion).
func commandNames() []string {
	var names []string
	for _, c := range commands(Env{Getenv: func(string) string { return "" }}) {
		names = append(names, c.Name())
	}
	slices.Sort(names)
	return names
}

// TestGoldenCommandsAreEveryCommand: the help goldens cover every command.
func TestGoldenCommandsAreEveryCommand(t *testing.T) {
	if got := commandNames(); !slices.Equal(got, goldenCommands) {
		t.Fatalf("commands %v, goldens for %v", got, goldenCommands)
	}
}

// TestUsageErrorsExitOne runs every command with each kind of command-line
// mistake: all exit 1 (never plan's 2 for "changes"), say what is wrong in
// one line naming the command and point to its --help, and touch nothing
// (no daemon is asked, nothing on stdout).
func TestUsageErrorsExitOne(t *testing.T) {
	type tc struct {
		name    string
		args    []string
		command string // the command the error line names
	}
	var tests []tc
	// Valid arguments for each command, to which a mistake is added.
	valid := map[string][]string{
		"validate": {"."}, "plan": {"."}, "apply": {"."}, "serve": nil, "status": nil, "history": nil,
		"reconcile": nil, "suspend": nil, "resume": nil, "users": nil, "groups": nil,
		"access": {"pending"}, "token": {"new"}, "saml": {"metadata"}, "backup": {"-o", "x"},
		"restore": {"FILE"}, "keystore": {"import", "FILE.p12"}, "version": nil,
		"migrate": {"--from", "d", "--to-etcd", "http://127.0.0.1:1"}, "init": {"DIR"}, "export": {"-o", "x"},
	}
	// A command that takes a verb is named with the verb its valid
	// arguments start with.
	verbs := map[string]bool{"access": true, "token": true, "saml": true, "keystore": true}
	named := func(name string) string {
		if verbs[name] {
			return name + " " + valid[name][0]
		}
		return name
	}
	for _, name := range commandNames() {
		args, ok := valid[name]
		if !ok {
			t.Fatalf("command %s has no valid arguments in this test", name)
		}
		with := func(extra ...string) []string {
			return append(append([]string{name}, args...), extra...)
		}
		tests = append(tests,
			tc{name + "/unknown flag", with("--no-such-flag"), named(name)},
			tc{name + "/extra argument", with("extra", "more"), named(name)},
		)
		if len(args) > 0 && !strings.HasPrefix(args[0], "-") && name != "validate" && name != "plan" && name != "apply" {
			given := args[:len(args)-1]
			cmd := name // a missing verb is the parent's mistake
			if verbs[name] && len(given) > 0 {
				cmd = named(name)
			}
			tests = append(tests, tc{name + "/missing argument", append([]string{name}, given...), cmd})
		}
	}
	for _, name := range []string{"plan", "apply", "status", "users", "groups", "access"} {
		tests = append(tests, tc{name + "/bad output", append(append([]string{name}, valid[name]...), "--output", "yaml"), named(name)})
	}
	tests = append(tests,
		tc{"unknown command", []string{"frobnicate"}, ""},
		tc{"unknown root flag", []string{"--frobnicate"}, ""},
		tc{"access without a name", []string{"access", "user"}, "access user"},
		tc{"access version without a slash", []string{"access", "version", "webgoat"}, "access version"},
		tc{"plan with DIR and --git", []string{"plan", ".", "--git", "file:///nowhere"}, "plan"},
		tc{"plan with --server and --base-ref", []string{"plan", ".", "--server", "http://127.0.0.1:1", "--base-ref", "main"}, "plan"},
		tc{"plan with --server and a spec limit", []string{"plan", ".", "--max-spec-nodes", "10"}, "plan"},
		tc{"validate with a spec limit of 0", []string{"validate", ".", "--max-spec-bytes", "0"}, "validate"},
		tc{"serve with a spec limit below 0", []string{"serve", "--max-spec-documents", "-5"}, "serve"},
		tc{"keystore with an unknown usage", []string{"keystore", "import", "FILE.p12", "--usage", "signing"}, "keystore import"},
		tc{"single-dash long flag", []string{"status", "-output", "json"}, "status"},
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
			cmd := strings.TrimSpace("idrecon " + tt.command)
			lines := strings.Split(strings.TrimSuffix(errs, "\n"), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], cmd+": ") || lines[1] != "Run '"+cmd+" --help' for usage." {
				t.Errorf("stderr is not one line naming %q and a pointer to its help:\n%s", cmd, errs)
			}
			if out != "" {
				t.Errorf("stdout not empty:\n%s", out)
			}
		})
	}
	// No command at all: what there is to run, on stderr.
	if code, out, errs := run(t, nil); code != 1 || out != "" || !strings.Contains(errs, "Available Commands:") {
		t.Errorf("idrecon alone: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}

// TestHelpIsOutput: help asked for (idrecon -h, idrecon COMMAND -h, idrecon
// help COMMAND) is the command's output: on stdout, exit 0, nothing on
// stderr, with an example; --version works like the version command.
func TestHelpIsOutput(t *testing.T) {
	for _, name := range commandNames() {
		for _, args := range [][]string{{name, "-h"}, {name, "--help"}, {"help", name}} {
			code, out, errs := run(t, nil, args...)
			if code != 0 || !strings.Contains(out, "Usage:\n  idrecon "+name) || !strings.Contains(out, "Examples:\n  ") || errs != "" {
				t.Errorf("%v: exit %d, stdout %q, stderr %q; want the usage and an example on stdout and exit 0", args, code, out, errs)
			}
		}
	}
	for _, arg := range []string{"-h", "--help", "help"} {
		if code, out, errs := run(t, nil, arg); code != 0 || !strings.Contains(out, "Available Commands:") || errs != "" {
			t.Errorf("idrecon %s: exit %d, stdout %q, stderr %q", arg, code, out, errs)
		}
	}
	for _, arg := range []string{"--version", "-v"} {
		if code, out, _ := run(t, nil, arg); code != 0 || out != "idrecon "+Version+"\n" {
			t.Errorf("idrecon %s: exit %d, %q", arg, code, out)
		}
	}
}

// TestCompletion: cobra's generator writes a script for each shell (bash
// -n accepts the bash one), and completion completes commands, the words
// after access and the values of --output.
func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		code, out, errs := run(t, nil, "completion", shell)
		if code != 0 || !strings.Contains(out, "__complete") || errs != "" {
			t.Errorf("completion %s: exit %d, stderr %q, script %.200q", shell, code, errs, out)
		}
		if shell != "bash" {
			continue
		}
		bash, err := exec.LookPath("bash")
		if err != nil {
			t.Log("no bash to check the script with")
			continue
		}
		file := filepath.Join(t.TempDir(), "idrecon.bash")
		os.WriteFile(file, []byte(out), 0o644)
		if b, err := exec.Command(bash, "-n", file).CombinedOutput(); err != nil {
			t.Errorf("bash -n: %v\n%s", err, b)
		}
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"st"}, []string{"status"}},
		{[]string{"re"}, []string{"reconcile", "restore", "resume"}},
		{[]string{"access", ""}, []string{"user", "version", "pending"}},
		{[]string{"token", ""}, []string{"new"}},
		{[]string{"plan", "--output", ""}, []string{"text", "json"}},
		{[]string{"validate", "--output", ""}, []string{"text", "json", "github"}},
		{[]string{"serve", "--drift", ""}, []string{"correct", "report"}},
	} {
		code, out, errs := run(t, nil, append([]string{"__complete"}, tc.args...)...)
		var got []string
		for _, l := range strings.Split(out, "\n") {
			if l != "" && !strings.HasPrefix(l, ":") {
				got = append(got, strings.SplitN(l, "\t", 2)[0])
			}
		}
		if code != 0 || !slices.Equal(got, tc.want) {
			t.Errorf("__complete %q: exit %d, %q, want %q\n%s", tc.args, code, got, tc.want, errs)
		}
	}
}

// TestReadmeCommandTable: every command and flag the README's command table
// names exists, spelled as written.
func TestReadmeCommandTable(t *testing.T) {
	readme, err := os.ReadFile("../../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(string(readme), "\n## Commands\n")
	table, _, _ = strings.Cut(table, "\n\n")
	root := newRoot(Env{Getenv: func(string) string { return "" }})
	// What cobra adds when it runs.
	root.InitDefaultVersionFlag()
	root.InitDefaultCompletionCmd()
	span := regexp.MustCompile("`([^`]+)`")
	checked := 0
	for _, row := range strings.Split(table, "\n") {
		cells := strings.Split(row, " | ")
		if !strings.HasPrefix(row, "| `idrecon") || len(cells) < 2 {
			continue
		}
		cmd := root
		for _, m := range span.FindAllStringSubmatch(cells[0], -1) {
			words := strings.Fields(strings.ReplaceAll(m[1], `\|`, "|"))
			if words[0] == "idrecon" {
				cmd = root
				words = words[1:]
				if len(words) > 0 && !strings.HasPrefix(words[0], "-") {
					c, _, err := root.Find(words[:1])
					if err != nil || c == root {
						t.Errorf("README names command %q, which does not exist", words[0])
						continue
					}
					cmd, words = c, words[1:]
					checked++
				}
			}
			for _, w := range words {
				name := strings.TrimLeft(w, "-")
				switch {
				case strings.HasPrefix(w, "--"):
					if cmd.Flags().Lookup(name) == nil {
						t.Errorf("README: %s has no flag %s", cmd.CommandPath(), w)
					}
					checked++
				case strings.HasPrefix(w, "-"):
					if cmd.Flags().ShorthandLookup(name) == nil {
						t.Errorf("README: %s has no flag %s", cmd.CommandPath(), w)
					}
					checked++
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d flags: is the table still under ## Commands?", checked)
	}
}

// TestErrorsNameTheWholeCommand: a command that takes a verb (access user,
// saml metadata, token new, keystore import) names it in its errors, usage
// errors and failures alike, as the command that was run; a verb that is
// missing or unknown is the parent's mistake and names the parent.
func TestErrorsNameTheWholeCommand(t *testing.T) {
	tmp := t.TempDir()
	env := map[string]string{"IDRECON_SERVER": "http://127.0.0.1:1", "IDRECON_ADMIN_TOKEN": "x"}
	for _, tt := range []struct {
		args    []string
		command string
		says    string
	}{
		{[]string{"access", "version", "webgoat"}, "idrecon access version", "want APP/VERSION"},
		{[]string{"access", "user"}, "idrecon access user", "missing USERNAME"},
		{[]string{"access", "pending", "extra"}, "idrecon access pending", "unexpected argument"},
		{[]string{"access", "pending", "--output", "yaml"}, "idrecon access pending", "text or json"},
		{[]string{"access", "pending"}, "idrecon access pending", "127.0.0.1:1"},
		{[]string{"saml", "metadata", "--out", filepath.Join(tmp, "nonexist", "x")}, "idrecon saml metadata", "write "},
		{[]string{"token", "new", "--name", ""}, "idrecon token new", "--name"},
		{[]string{"keystore", "import", filepath.Join(tmp, "none.p12"), "--key-out", filepath.Join(tmp, "key")}, "idrecon keystore import", "none.p12"},
		{[]string{"access"}, "idrecon access", "missing user or version or pending"},
		{[]string{"access", "nope"}, "idrecon access", `unknown "nope"`},
		{[]string{"plan", "a", "b"}, "idrecon plan", "unexpected argument"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, errs := run(t, env, tt.args...)
			if code != 1 || !strings.HasPrefix(errs, tt.command+": ") || !strings.Contains(strings.SplitN(errs, "\n", 2)[0], tt.says) {
				t.Errorf("exit %d, want 1 and an error naming %q that says %q:\n%s", code, tt.command, tt.says, errs)
			}
			if strings.Contains(errs, "Run '") && !strings.Contains(errs, "Run '"+tt.command+" --help' for usage.") {
				t.Errorf("the pointer to help names another command:\n%s", errs)
			}
		})
	}
}
