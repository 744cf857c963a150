// Package cli implements the idrecon command line: one function per
// subcommand, each parsing its own flags and returning an error that Main
// maps to an exit code.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Version is set at build time.
var Version = "dev"

// Env is what a command may touch of the outside world.
type Env struct {
	Args   []string
	Getenv func(string) string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// IsTerminal reports whether a writer is a terminal (default: ask the OS).
	IsTerminal func(io.Writer) bool
}

// exitError carries an exit code other than 1 (plan's 2 for "changes").
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// errUsage marks a command-line mistake; what is wrong and the usage text
// have been printed. It exits 1 like any other failure: exit 2 is plan's
// "changes", which CI must not confuse with a typo in its command line.
var errUsage = errors.New("usage")

// usageError prints what is wrong with the command line and the command's
// usage, and returns errUsage.
func usageError(fs *flag.FlagSet, format string, args ...any) error {
	fmt.Fprintf(fs.Output(), "%s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.Usage()
	return errUsage
}

type command struct {
	summary string
	run     func(ctx context.Context, env Env, args []string) error
}

func commands() map[string]command {
	return map[string]command{
		"init":      {"init DIR: start a spec repository (the Entra checklist as commented YAML, a fresh SCIM token)", runInit},
		"validate":  {"check a spec repo and list every error", runValidate},
		"export":    {"export -o DIR: write a daemon's live spec-owned state as a spec repository, for adopting a running set-up", runExport},
		"plan":      {"show what apply would change (exit 0 none, 2 changes, 1 error)", runPlan},
		"apply":     {"apply a spec repo to a running daemon", runApply},
		"serve":     {"run the daemon (SCIM, SAML, admin API, reconciler)", runServe},
		"status":    {"show where a daemon stands", runStatus},
		"reconcile": {"ask a daemon to reconcile now", runReconcile},
		"suspend":   {"stop a daemon from applying changes (it still serves and reports drift)", runSuspend},
		"resume":    {"let a suspended daemon apply changes again", runResume},
		"users":     {"list the users Entra provisioned", runUsers},
		"groups":    {"list the groups Entra provisioned", runGroups},
		"access":    {"explain who may do what: access user NAME | version APP/VERSION | pending", runAccess},
		"token":     {"token new: make a SCIM token and the sha256 line to commit", runToken},
		"saml":      {"saml metadata: save the SP metadata XML for Entra", runSAML},
		"backup":    {"write a consistent snapshot of a daemon's state to a file (mode 0600)", runBackup},
		"restore":   {"restore a snapshot into a data dir (daemon stopped)", runRestore},
		"migrate":   {"copy a stopped daemon's data dir into etcd, for serve --etcd", runMigrate},
		"keystore":  {"keystore import FILE.p12: turn a PKCS#12 keystore into a Certificate document", runKeystore},
		"version":   {"print the version", runVersion},
	}
}

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, env Env) int {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if env.IsTerminal == nil {
		env.IsTerminal = isTerminal
	}
	cmds := commands()
	switch {
	case len(env.Args) == 0:
		usage(env.Stderr, cmds)
		return 1
	case asksHelp(env.Args[:1]) || env.Args[0] == "help":
		// Asked for, help is the output: stdout, exit 0.
		usage(env.Stdout, cmds)
		return 0
	case env.Args[0] == "--version" || env.Args[0] == "-version":
		env.Args[0] = "version"
	}
	cmd, ok := cmds[env.Args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "idrecon: unknown command %q\n\n", env.Args[0])
		usage(env.Stderr, cmds)
		return 1
	}
	err := cmd.run(ctx, env, env.Args[1:])
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 1
	case errors.As(err, &ee):
		if ee.err != nil {
			fmt.Fprintf(env.Stderr, "idrecon %s: %v\n", env.Args[0], ee.err)
			jsonFailure(env, ee.err, ee.code)
		}
		return ee.code
	default:
		fmt.Fprintf(env.Stderr, "idrecon %s: %v\n", env.Args[0], err)
		jsonFailure(env, err, 1)
		return 1
	}
}

// jsonFailure writes a failure as JSON on stdout too when the command was
// asked for --output json, so a script reads one format whatever happens.
// (A command that wrote its own JSON failure returns no error text.)
func jsonFailure(env Env, err error, code int) {
	for i, a := range env.Args {
		if a == "--output=json" || a == "-output=json" || (a == "--output" || a == "-output") && i+1 < len(env.Args) && env.Args[i+1] == "json" {
			writeError(env.Stdout, err.Error(), code, nil)
			return
		}
	}
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: idrecon COMMAND [flags] [args]")
	fmt.Fprintln(w)
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'idrecon COMMAND -h' for a command's flags.")
}

// newFlags makes a FlagSet that reports to env.Stderr.
func newFlags(env Env, name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet("idrecon "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		// Asked for with -h, help is the output (stdout); after a usage
		// error it explains the error (stderr).
		w := env.Stderr
		if asksHelp(env.Args) {
			w = env.Stdout
		}
		fmt.Fprintln(w, strings.TrimSpace("usage: idrecon "+name+" "+args))
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(env.Stderr)
	}
	return fs
}

// asksHelp reports whether args ask for help the way the flag package
// understands it.
func asksHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "--h", "-help", "--help":
			return true
		case "--":
			return false
		}
	}
	return false
}

// parse parses flags that may come before, between or after positional
// arguments ("idrecon plan examples/entra --output json").
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// parseNoArgs parses flags and refuses positional arguments.
func parseNoArgs(fs *flag.FlagSet, args []string) error {
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	return wantArgs(fs, pos)
}

// wantArgs checks that there are exactly len(names) positional arguments;
// names say what each one is, for the message when one is missing.
func wantArgs(fs *flag.FlagSet, pos []string, names ...string) error {
	switch {
	case len(pos) < len(names):
		return usageError(fs, "missing %s", names[len(pos)])
	case len(pos) > len(names):
		return usageError(fs, "unexpected argument %q", pos[len(names)])
	}
	return nil
}

// subcommand checks that the first positional argument is one of words.
func subcommand(fs *flag.FlagSet, pos []string, words ...string) error {
	if len(pos) == 0 {
		return usageError(fs, "missing %s", strings.Join(words, " or "))
	}
	for _, w := range words {
		if pos[0] == w {
			return nil
		}
	}
	return usageError(fs, "unknown %q: want %s", pos[0], strings.Join(words, " or "))
}

// oneArg returns the single optional positional argument, or def.
func oneArg(fs *flag.FlagSet, pos []string, def string) (string, error) {
	switch len(pos) {
	case 0:
		return def, nil
	case 1:
		return pos[0], nil
	default:
		return "", wantArgs(fs, pos, "DIR")
	}
}

func runVersion(_ context.Context, env Env, args []string) error {
	fs := newFlags(env, "version", "")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "idrecon %s\n", version())
	return nil
}

// outputFlag registers --output text|json; the flag parser refuses any other value.
func outputFlag(fs *flag.FlagSet) *string {
	out := "text"
	fs.Func("output", "output `format`: text or json (default text)", func(v string) error {
		switch strings.ToLower(v) {
		case "text", "json":
			out = strings.ToLower(v)
			return nil
		}
		return fmt.Errorf("--output must be text or json, not %q", v)
	})
	return &out
}
