// Package cli implements the idrecon command line on spf13/cobra, the
// library kubectl, flux, argocd and helm are built on: one constructor per
// command, whose RunE returns an error that Main maps to an exit code.
// Help is output (stdout, exit 0); a mistake in the command line is one
// line on stderr naming the command, and exit 1.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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
	// Now is the command's clock (default time.Now).
	Now func() time.Time
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

// usageError is a mistake in the command line. It exits 1 like any other
// failure: exit 2 is plan's "changes", which CI must not confuse with a typo
// in its command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errUsagePrinted is a usage error whose explanation has been printed.
var errUsagePrinted = errors.New("usage")

// commands are idrecon's commands, each made for env.
func commands(env Env) []*cobra.Command {
	return []*cobra.Command{
		initCmd(env), validateCmd(env), exportCmd(env), planCmd(env), applyCmd(env), serveCmd(env),
		statusCmd(env), historyCmd(env), reconcileCmd(env), suspendCmd(env), resumeCmd(env), usersCmd(env), groupsCmd(env),
		accessCmd(env), tokenCmd(env), samlCmd(env), backupCmd(env), restoreCmd(env), migrateCmd(env),
		keystoreCmd(env), versionCmd(env),
	}
}

// newRoot returns the idrecon command with every command below it.
func newRoot(env Env) *cobra.Command {
	root := &cobra.Command{
		Use:   "idrecon",
		Short: "Manage Application Security's identity set-up from git",
		Long: `idrecon manages Application Security's identity set-up from git: it validates and
plans spec repos, and runs the daemon that serves SCIM and SAML and converges
the runtime to the spec.`,
		Example: `  idrecon validate examples/entra
  idrecon serve --spec examples/entra --insecure-http
  idrecon status`,
		Version:       version(),
		SilenceErrors: true, // Main prints errors, one line naming the command
		SilenceUsage:  true, // and no usage after an error that is not the command line's
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				msg := fmt.Sprintf("unknown command %q", args[0])
				if s := c.SuggestionsFor(args[0]); len(s) > 0 {
					msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
				}
				return &usageError{msg: msg}
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error {
			// No command: what there is to run explains the mistake (stderr).
			fmt.Fprint(env.Stderr, c.UsageString())
			return errUsagePrinted
		},
	}
	root.SetVersionTemplate("idrecon {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{msg: err.Error()} })
	// Never nil: cobra reads os.Args when given nil.
	root.SetArgs(append([]string{}, env.Args...))
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.AddCommand(commands(env)...)
	return root
}

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, env Env) int {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if env.IsTerminal == nil {
		env.IsTerminal = isTerminal
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	cmd, err := newRoot(env).ExecuteContextC(ctx)
	name := commandName(cmd)
	var ee *exitError
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsagePrinted):
		return 1
	case errors.As(err, &ue):
		fmt.Fprintf(env.Stderr, "%s: %s\nRun '%s --help' for usage.\n", name, ue.msg, name)
		return 1
	case errors.As(err, &ee):
		if ee.err != nil {
			fmt.Fprintf(env.Stderr, "%s: %v\n", name, ee.err)
			jsonFailure(env, cmd, ee.err, ee.code)
		}
		return ee.code
	default:
		fmt.Fprintf(env.Stderr, "%s: %v\n", name, err)
		jsonFailure(env, cmd, err, 1)
		return 1
	}
}

// verbsKey is the annotation withVerbs keeps a command's verbs under.
const verbsKey = "idrecon/verbs"

// commandName is the command that ran, as its errors name it: its path,
// with its verb for a command that takes one ("idrecon access version"),
// since "access" alone names another command's arguments. A verb that is
// missing or unknown is the parent's mistake, named by the parent.
func commandName(cmd *cobra.Command) string {
	if cmd == nil {
		return "idrecon"
	}
	name := cmd.CommandPath()
	if pos := cmd.Flags().Args(); len(pos) > 0 && slices.Contains(strings.Fields(cmd.Annotations[verbsKey]), pos[0]) {
		name += " " + pos[0]
	}
	return name
}

// jsonFailure writes a failure as JSON on stdout too when the command was
// asked for --output json, so a script reads one format whatever happens.
// (A command that wrote its own JSON failure returns no error text.)
func jsonFailure(env Env, cmd *cobra.Command, err error, code int) {
	if cmd == nil {
		return
	}
	if f := cmd.Flags().Lookup("output"); f != nil && f.Value.String() == "json" {
		writeError(env.Stdout, err.Error(), code, nil)
	}
}

// wantArgs checks that there are exactly len(names) positional arguments;
// names say what each one is, for the message when one is missing.
func wantArgs(pos []string, names ...string) error {
	switch {
	case len(pos) < len(names):
		return usageErrorf("missing %s", names[len(pos)])
	case len(pos) > len(names):
		return usageErrorf("unexpected argument %q", pos[len(names)])
	}
	return nil
}

// exactArgs wants the named positional arguments, no more, no fewer.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(_ *cobra.Command, pos []string) error { return wantArgs(pos, names...) }
}

// flagsNeed refuses any of names given without the flag need (have says
// whether it was): the command would ignore them in silence.
func flagsNeed(fs *pflag.FlagSet, have bool, need string, names ...string) error {
	if have {
		return nil
	}
	for _, n := range names {
		if fs.Changed(n) {
			return usageErrorf("--%s needs %s", n, need)
		}
	}
	return nil
}

// added returns the names of the flags add registers in fs.
func added(fs *pflag.FlagSet, add func()) []string {
	before := map[string]bool{}
	fs.VisitAll(func(f *pflag.Flag) { before[f.Name] = true })
	add()
	var names []string
	fs.VisitAll(func(f *pflag.Flag) {
		if !before[f.Name] {
			names = append(names, f.Name)
		}
	})
	return names
}

// noArgs refuses positional arguments.
var noArgs = exactArgs()

// optionalDir takes one optional positional DIR.
func optionalDir(_ *cobra.Command, pos []string) error {
	if len(pos) > 1 {
		return wantArgs(pos, "DIR")
	}
	return nil
}

// dirArg is the optional DIR, "." when not given.
func dirArg(pos []string) string {
	if len(pos) == 0 {
		return "."
	}
	return pos[0]
}

// verb is a word a command's first argument may be ("access user NAME"),
// with the arguments that follow it.
type verb struct {
	word string
	args []string
}

// withVerbs makes c's first argument one of verbs, each followed by its
// arguments, and completes it.
func withVerbs(c *cobra.Command, verbs ...verb) {
	words := make([]string, len(verbs))
	for i, v := range verbs {
		words[i] = v.word
	}
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	c.Annotations[verbsKey] = strings.Join(words, " ")
	c.Args = func(_ *cobra.Command, pos []string) error {
		if len(pos) == 0 {
			return usageErrorf("missing %s", strings.Join(words, " or "))
		}
		for _, v := range verbs {
			if pos[0] == v.word {
				return wantArgs(pos[1:], v.args...)
			}
		}
		return usageErrorf("unknown %q: want %s", pos[0], strings.Join(words, " or "))
	}
	c.ValidArgsFunction = func(_ *cobra.Command, pos []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(pos) == 0 {
			return words, cobra.ShellCompDirectiveNoFileComp
		}
		return nil, cobra.ShellCompDirectiveDefault
	}
}

// completeDirs completes positional arguments with folder names.
func completeDirs(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveFilterDirs
}

func versionCmd(env Env) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version",
		Example: "  idrecon version",
		Args:    noArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintf(env.Stdout, "idrecon %s\n", version())
			return nil
		},
	}
}

// choice is a flag whose value is one of a few words, given in any case.
type choice struct {
	value   string
	allowed []string
}

func (c *choice) String() string { return c.value }
func (c *choice) Type() string   { return "format" }
func (c *choice) Set(v string) error {
	for _, a := range c.allowed {
		if strings.EqualFold(v, a) {
			c.value = a
			return nil
		}
	}
	return fmt.Errorf("want %s", orList(c.allowed))
}

func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// choiceFlag registers a flag taking one of allowed, the first the default,
// and completes its values.
func choiceFlag(c *cobra.Command, name, usage string, allowed ...string) *string {
	v := &choice{value: allowed[0], allowed: allowed}
	c.Flags().Var(v, name, usage)
	c.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(allowed, cobra.ShellCompDirectiveNoFileComp))
	return &v.value
}

// outputFlag registers --output text|json; the flag parser refuses any other value.
func outputFlag(c *cobra.Command) *string {
	return choiceFlag(c, "output", "output `format`: text or json", "text", "json")
}
