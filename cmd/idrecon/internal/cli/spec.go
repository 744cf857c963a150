package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/idrecon/idrecon/reconcile"
	"github.com/idrecon/idrecon/reconcile/source"
	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/runtime/admin"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
	"github.com/idrecon/idrecon/spec/bundle"
)

// specLimits are the flags that bound the spec a command loads, so that a
// spec larger than the defaults fit can still be validated and planned.
type specLimits struct {
	bytes int64
	docs  int
	nodes int
}

// specLimitNames are the flags of specLimits.
var specLimitNames = []string{"max-spec-bytes", "max-spec-documents", "max-spec-nodes"}

func specLimitFlags(fs *pflag.FlagSet) *specLimits {
	l := &specLimits{bytes: spec.DefaultMaxBytes, docs: spec.DefaultMaxDocuments, nodes: spec.DefaultMaxNodes}
	fs.Var(positive[int64]{&l.bytes}, specLimitNames[0], "refuse a spec whose YAML files total more bytes than this")
	fs.Var(positive[int]{&l.docs}, specLimitNames[1], "refuse a spec with more documents than this")
	fs.Var(positive[int]{&l.nodes}, specLimitNames[2], "refuse a spec with more YAML nodes (keys, values, list items) than this")
	return l
}

// positive is the value of a limit flag, which must be above zero: the
// loader takes 0 or less for its default, so such a value would be
// ignored without a word.
type positive[T int | int64] struct{ p *T }

func (v positive[T]) String() string { return strconv.FormatInt(int64(*v.p), 10) }
func (v positive[T]) Type() string   { return "int" }
func (v positive[T]) Set(s string) error {
	n, err := strconv.ParseInt(s, 0, 64)
	switch {
	case err != nil || int64(T(n)) != n:
		return errors.New("want a whole number")
	case n <= 0:
		return errors.New("must be positive")
	}
	*v.p = T(n)
	return nil
}

func loadSpec(ctx context.Context, env Env, dir string, lim *specLimits) (*spec.Set, error) {
	return spec.Load(ctx, dir, spec.LoadOptions{Getenv: env.Getenv, MaxBytes: lim.bytes, MaxDocuments: lim.docs, MaxNodes: lim.nodes})
}

// printSpecErrors lists every spec error of the spec in dir, one a line
// with its file relative to the working directory (what editors and CI
// annotations resolve), and returns an error that exits 1 without
// repeating them. output json writes them as an Error's problems, output
// github as GitHub Actions annotations.
func printSpecErrors(env Env, dir, output string, err error) error {
	issues, ok := specIssues(dir, err)
	if !ok {
		return err
	}
	msg := fmt.Sprintf("%d error(s)", len(issues))
	switch output {
	case "json":
		if err := writeError(env.Stdout, msg, 1, issues); err != nil {
			return err
		}
		return &exitError{code: 1}
	case "github":
		for _, i := range issues {
			fmt.Fprintf(env.Stdout, "::error%s::%s\n", annotationPlace(i), annotation(i))
		}
	}
	for _, i := range issues {
		fmt.Fprintln(env.Stderr, issueLine(i))
	}
	return &exitError{code: 1, err: errors.New(msg)}
}

// issueLine is an issue as one line, "file:line:column: field: message",
// leaving out what it does not have (a limit of the whole spec names no
// file, one of a document's size no column).
func issueLine(i specIssue) string {
	var b strings.Builder
	if i.File != "" {
		b.WriteString(i.File)
		for _, n := range []int{i.Line, i.Column} {
			if n <= 0 {
				break
			}
			fmt.Fprintf(&b, ":%d", n)
		}
		b.WriteString(": ")
	}
	if i.Field != "" {
		b.WriteString(i.Field + ": ")
	}
	b.WriteString(i.Message)
	return b.String()
}

// annotationPlace is the properties of a GitHub Actions annotation that
// say where an issue is (" file=F,line=L,col=C"), those it has only.
func annotationPlace(i specIssue) string {
	if i.File == "" {
		return ""
	}
	s := " file=" + githubEscapeProperty(i.File)
	if i.Line > 0 {
		s += fmt.Sprintf(",line=%d", i.Line)
		if i.Column > 0 {
			s += fmt.Sprintf(",col=%d", i.Column)
		}
	}
	return s
}

// specIssues returns the errors of a spec that did not load, their files
// relative to the working directory, or as the spec's root names them when
// dir is "" (a checkout that is gone when the command ends); ok is false
// for any other error. A
// spec past a limit of the load is one issue, at the file and line the
// limit names, if any.
func specIssues(dir string, err error) ([]specIssue, bool) {
	var list spec.ErrorList
	var limit *spec.LimitError
	switch {
	case errors.As(err, &list):
	case errors.As(err, &limit):
		at := *limit // its message names the file as the issue does
		if at.File != "" && dir != "" {
			at.File = relToCwd(filepath.Join(dir, at.File))
		}
		return []specIssue{{File: at.File, Line: at.Line, Message: at.Error()}}, true
	default:
		return nil, false
	}
	out := make([]specIssue, 0, len(list))
	for _, e := range list {
		file := e.Pos.File
		if file != "" && dir != "" {
			file = relToCwd(filepath.Join(dir, file))
		}
		out = append(out, specIssue{File: file, Line: e.Pos.Line, Column: e.Pos.Column, Field: e.Field, Message: e.Msg})
	}
	return out, true
}

// relToCwd is path relative to the working directory when it lies below
// it, else path as given.
func relToCwd(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	if rel, err := filepath.Rel(wd, abs); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return path
}

// rebaseWarning names the file a warning starts with ("scim.yaml:22:15:
// ...", relative to the spec root dir) as errors name theirs: relative to
// the working directory.
func rebaseWarning(dir, w string) string {
	file, rest, ok := strings.Cut(w, ":")
	if !ok || file == "" || filepath.IsAbs(file) {
		return w
	}
	path := filepath.Join(dir, file)
	if st, err := os.Stat(path); err != nil || st.IsDir() {
		return w
	}
	return relToCwd(path) + ":" + rest
}

// rebaseWarnings rebases every warning of the spec in dir (see
// rebaseWarning), those a daemon sent about an uploaded folder too.
func rebaseWarnings(dir string, warnings []string) []string {
	out := make([]string, len(warnings))
	for i, w := range warnings {
		out[i] = rebaseWarning(dir, w)
	}
	return out
}

// annotation is an issue's text for a GitHub Actions annotation.
func annotation(i specIssue) string {
	s := i.Message
	if i.Field != "" {
		s = i.Field + ": " + s
	}
	return githubEscape(s)
}

// githubEscape escapes what would end or garble a GitHub Actions workflow
// command's message.
func githubEscape(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// githubEscapeProperty escapes a workflow command's property value, which
// ',' (the next property) and ':' (the "::" before the message) would end
// as well.
func githubEscapeProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}

func printWarnings(env Env, warnings []string) {
	for _, w := range warnings {
		fmt.Fprintf(env.Stderr, "warning: %s\n", w)
	}
}

func validateCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Check a spec repo and list every error",
		Long: `Load and check a spec repo (default the working directory) and list every
error at once, each with file:line:column and the field; exit 0 or 1.
--output github writes them as GitHub Actions annotations.`,
		Example: `  idrecon validate examples/entra
  idrecon validate . --output github
  idrecon validate . --output json`,
		Args:              optionalDir,
		ValidArgsFunction: completeDirs,
	}
	output := choiceFlag(c, "output", "output `format`: text, json, or github (GitHub Actions annotations)", "text", "json", "github")
	lim := specLimitFlags(c.Flags())
	c.RunE = func(cmd *cobra.Command, pos []string) error {
		return runValidate(cmd.Context(), env, dirArg(pos), *output, lim)
	}
	return c
}

func runValidate(ctx context.Context, env Env, dir, output string, lim *specLimits) error {
	set, err := loadSpec(ctx, env, dir, lim)
	if err != nil {
		return printSpecErrors(env, dir, output, err)
	}
	set.Warnings = rebaseWarnings(dir, set.Warnings)
	switch output {
	case "github":
		for _, w := range set.Warnings {
			fmt.Fprintf(env.Stdout, "::warning::%s\n", githubEscape(w))
		}
	case "text":
		printWarnings(env, set.Warnings)
	}
	if err := reconcile.CheckEmpty(set); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	user := 0
	for _, d := range set.Docs {
		if d.Pos.File != "" {
			user++
		}
	}
	if output == "json" {
		return writeItem(env.Stdout, "Validation", struct {
			Dir       string   `json:"dir"`
			Valid     bool     `json:"valid"`
			Documents int      `json:"documents"`
			Revision  string   `json:"revision"`
			Warnings  []string `json:"warnings"`
		}{dir, true, user, set.Revision, nonNil(set.Warnings)})
	}
	noun := "documents"
	if user == 1 {
		noun = "document"
	}
	fmt.Fprintf(env.Stdout, "%s: %d %s, valid (revision %s)\n", dir, user, noun, short(set.Revision))
	return nil
}

// short abbreviates a revision's hash to 12 digits, keeping what names it:
// "main@sha1:0123456789ab", "sha256:0123456789ab".
func short(rev string) string {
	name, hash := "", rev
	if i := strings.LastIndexByte(rev, ':'); i >= 0 {
		name, hash = rev[:i+1], rev[i+1:]
	}
	if len(hash) > 12 {
		hash = hash[:12]
	}
	return name + hash
}

// localReconciler returns a reconciler over a fresh in-memory store, seeded
// with base when it is non-nil.
func localReconciler(ctx context.Context, base *spec.Set) (*reconcile.Reconciler, func(), error) {
	st, err := store.New(store.Options{})
	if err != nil {
		return nil, nil, err
	}
	// AllowEmpty: the base may be the builtin roles alone (builtinRoles).
	rec, err := reconcile.New(reconcile.Config{Store: st, AllowEmpty: true})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	if base != nil {
		if _, err := rec.Apply(ctx, base); err != nil {
			st.Close()
			return nil, nil, fmt.Errorf("apply base revision: %w", err)
		}
	}
	return rec, func() { st.Close() }, nil
}

func planCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "plan [DIR | --git URL]",
		Short: "Show what apply would change (exit 0 none, 2 changes, 1 error)",
		Long: `Show what applying a spec repo (default the working directory) would change.

Without --server the plan is against a runtime holding only the builtin roles,
or with --base-ref against the spec at that git ref of the repo holding DIR
(the plan a pull request causes, without a daemon). With --server it is
against a live daemon, with the access blast radius: who gains or loses which
role or version. --git plans a spec repo straight from git.

--max-spec-bytes, --max-spec-documents and --max-spec-nodes bound a spec
loaded here; with --server the daemon loads it under its own limits (those
of serve), and they are refused.

The counts are of the changes apply would make: drift that a daemon with
--drift=report keeps is listed and counted apart ("3 kept"). A plan the
daemon would refuse (a spec with no documents, deleting an enabled
ScimProvisioning or SamlServiceProvider) says that nothing will be applied
and why, without the blast radius.

Exit 0 no changes, 2 changes, 1 error or refused (like terraform plan
-detailed-exitcode); kept drift alone is no change.`,
		Example: `  idrecon plan examples/entra
  idrecon plan . --base-ref origin/main
  idrecon plan . --server http://127.0.0.1:9090 --output json
  idrecon plan --git https://github.com/contoso/idrecon-spec --branch main --path spec`,
		Args:              optionalDir,
		ValidArgsFunction: completeDirs,
	}
	output := outputFlag(c)
	mkClient := serverFlags(c, env)
	baseRef := c.Flags().String("base-ref", "", "plan against the spec at this git ref of the repo holding DIR (for pull-request checks), without a daemon")
	gitOpts, gitCheck := gitFlags(c.Flags())
	lim := specLimitFlags(c.Flags())
	c.RunE = func(cmd *cobra.Command, pos []string) error {
		// Without --server (or IDRECON_SERVER) the plan is against a runtime
		// holding only the builtin roles, or the spec at --base-ref.
		if err := gitCheck(); err != nil {
			return err
		}
		serverGiven := env.Getenv("IDRECON_SERVER") != "" || cmd.Flags().Changed("server")
		if serverGiven {
			// Before any clone of --git: a mistake in the command line is
			// said at once.
			if *baseRef != "" {
				return usageErrorf("%s and --base-ref exclude each other", serverSource(cmd))
			}
			if err := limitsWithServer(cmd); err != nil {
				return err
			}
		}
		return runPlan(cmd.Context(), env, pos, planOptions{output: *output, baseRef: *baseRef, git: gitOpts(), lim: lim,
			serverGiven: serverGiven, mkClient: mkClient})
	}
	return c
}

// limitsWithServer refuses a --max-spec-* flag given with --server (or
// IDRECON_SERVER): the folder is uploaded and the daemon loads it under
// its own limits, so the flag would be ignored.
func limitsWithServer(cmd *cobra.Command) error {
	var given []string
	for _, name := range specLimitNames {
		if cmd.Flags().Changed(name) {
			given = append(given, "--"+name)
		}
	}
	if len(given) == 0 {
		return nil
	}
	verb := "bounds"
	if len(given) > 1 {
		verb = "bound"
	}
	return usageErrorf("%s %s a spec loaded here, not with %s: the daemon loads it, under its own limits (serve's flags of the same names)",
		strings.Join(given, " and "), verb, serverSource(cmd))
}

// serverSource names where plan's server came from, for a usage error: a
// CI job may set IDRECON_SERVER for every step, and a message naming
// --server would send its reader looking for a flag that is not there.
func serverSource(cmd *cobra.Command) string {
	if cmd.Flags().Changed("server") {
		return "--server"
	}
	return "IDRECON_SERVER"
}

// planOptions are plan's flags, parsed.
type planOptions struct {
	output, baseRef string
	git             *source.GitOptions
	lim             *specLimits
	serverGiven     bool
	mkClient        func() (*client, error)
}

func runPlan(ctx context.Context, env Env, pos []string, o planOptions) error {
	dir := dirArg(pos)
	// The spec's files are named relative to the working directory, as
	// dir + file; those of a --git checkout, a temporary folder removed
	// when plan ends, from the spec's root (named "", see specIssues), as
	// its warnings are, and the spec itself as the source.
	named, label := dir, dir
	if g := o.git; g != nil {
		if len(pos) > 0 {
			return usageErrorf("give either DIR or --git, not both")
		}
		cache, err := os.MkdirTemp("", "idrecon-plan-git-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(cache)
		g.CacheDir, g.Getenv, g.MaxBytes = cache, env.Getenv, o.lim.bytes
		src, err := source.NewGit(*g)
		if err != nil {
			return err
		}
		rev, err := src.Fetch(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "planning %s at %s\n", src, short(rev.ID))
		dir, named, label = rev.Dir, "", src.String()
	}
	var p *reconcile.Plan
	var err error
	var impact *access.Impact
	var warnings []string
	if o.serverGiven {
		c, err := o.mkClient()
		if err != nil {
			return err
		}
		var resp admin.PlanResponse
		if err := uploadSpec(ctx, c, "/v1/plan", dir, &resp); err != nil {
			return printAPIError(env, named, o.output, err)
		}
		p, impact, warnings = resp.Plan, resp.Impact, resp.Warnings
	} else if p, warnings, err = planLocally(ctx, env, dir, named, label, o.baseRef, o.output, o.lim); err != nil {
		return err
	}
	if o.git == nil {
		// Named as the errors are. A --git checkout is a temporary folder:
		// its warnings keep naming files from the spec's root.
		warnings = rebaseWarnings(dir, warnings)
	}
	if err := writePlan(env, o.output, p, impact, warnings); err != nil {
		return err
	}
	switch {
	case p.Refused != "":
		// Written already: the text plan ends with why, the JSON plan's
		// "refused" says it.
		return &exitError{code: 1}
	case p.Changes():
		// Drift that drift mode report keeps is listed, but apply would
		// change nothing for it: it is no change to exit 2 for.
		return &exitError{code: 2}
	}
	return nil
}

func writePlan(env Env, output string, p *reconcile.Plan, impact *access.Impact, warnings []string) error {
	if p.Refused != "" {
		// Nothing of a refused plan is applied, so its blast radius is not
		// what will happen; a spec with no documents would list every user
		// losing everything. Left out rather than labelled, so that no
		// reader (a CI bot reading "impact") takes it for the effect of the
		// change: once the spec is fixed, its plan shows the radius.
		impact = nil
	}
	if output == "json" {
		var im any
		if impact != nil {
			im = impact
		}
		return writeItem(env.Stdout, "Plan", toJSONPlan(p, im, warnings))
	}
	printWarnings(env, warnings)
	if err := p.WriteText(env.Stdout); err != nil {
		return err
	}
	if impact != nil && !p.Empty() {
		writeImpact(env.Stdout, impact)
	}
	return nil
}

// planLocally plans dir against a runtime that holds nothing, or the spec at
// baseRef of the repository holding dir. Errors name its files relative to
// named (see specIssues), the spec as label.
func planLocally(ctx context.Context, env Env, dir, named, label, baseRef, output string, lim *specLimits) (*reconcile.Plan, []string, error) {
	set, err := loadSpec(ctx, env, dir, lim)
	if err != nil {
		return nil, nil, printSpecErrors(env, named, output, err)
	}
	if err := reconcile.CheckEmpty(set); err != nil {
		// The local reconciler allows an empty base; the spec planned may not be.
		return nil, nil, &exitError{code: 1, err: fmt.Errorf("%s: %w", label, err)}
	}
	base := builtinRoles(set)
	warnings := set.Warnings
	if baseRef != "" {
		b, note, cleanup, err := loadBaseRef(ctx, env, dir, baseRef, lim)
		if err != nil {
			return nil, nil, err
		}
		defer cleanup()
		if len(b.Docs) > 0 {
			base = b
		}
		if note != "" {
			warnings = append(slices.Clip(warnings), note)
		}
	}
	rec, closeRec, err := localReconciler(ctx, base)
	if err != nil {
		return nil, nil, err
	}
	defer closeRec()
	p, err := rec.Plan(ctx, set)
	return p, warnings, err
}

// builtinRoles is the part of set every runtime holds before any spec is
// applied: the builtin roles. Planning against it rather than an empty
// runtime keeps them out of the plan, as a daemon's plan would.
func builtinRoles(set *spec.Set) *spec.Set {
	base := &spec.Set{Revision: "builtin"}
	for _, d := range set.Docs {
		if _, builtin := spec.BuiltinRoles[d.Metadata.Name]; builtin && d.Kind == spec.KindRole && d.Pos.File == "" {
			base.Docs = append(base.Docs, d)
		}
	}
	return base
}

// gitTopLevel finds the repository root above dir by looking for .git.
func gitTopLevel(_ context.Context, dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, ".git")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%s is not inside a git repository", dir)
		}
	}
}

func uploadSpec(ctx context.Context, c *client, path, dir string, out any) error {
	st, err := os.Stat(dir)
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe):
		// The reason alone, after the folder as given: "stat" is the
		// system's word, and a permission or a symlink loop is no "not a
		// folder".
		return fmt.Errorf("%s: %w", dir, pe.Err)
	case err != nil:
		return err
	case !st.IsDir():
		return fmt.Errorf("%s is not a folder", dir)
	}
	var buf bytes.Buffer
	if err := bundle.Pack(&buf, dir); err != nil {
		return err
	}
	return c.do(ctx, "POST", path, &buf, "application/gzip", out, nil)
}

// printAPIError reports the spec errors the daemon found in the spec in
// dir as printSpecErrors reports those of a spec loaded here: with --output
// json as the Error's problems, which CI reads, else one a line, files
// relative to the working directory either way. A daemon that sends no
// problems has its details printed as they come.
func printAPIError(env Env, dir, output string, err error) error {
	var ae *apiError
	if errors.As(err, &ae) && len(ae.Problems) > 0 {
		list := make(spec.ErrorList, 0, len(ae.Problems))
		for _, p := range ae.Problems {
			list = append(list, &spec.Error{Pos: spec.Position{File: p.File, Line: p.Line, Column: p.Column}, Field: p.Field, Msg: p.Message})
		}
		return printSpecErrors(env, dir, output, list)
	}
	if errors.As(err, &ae) && len(ae.Details) > 0 {
		for _, d := range ae.Details {
			fmt.Fprintln(env.Stderr, d)
		}
		return &exitError{code: 1, err: errors.New(ae.Message)}
	}
	return err
}

func applyCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "apply [DIR]",
		Short: "Apply a spec repo to a running daemon",
		Long: `Apply a spec repo (default the working directory) to a daemon started without
a source (push mode). A daemon that follows a folder or git refuses it.`,
		Example: `  idrecon apply examples/entra --server http://127.0.0.1:9090
  idrecon apply . --output json`,
		Args:              optionalDir,
		ValidArgsFunction: completeDirs,
	}
	output := outputFlag(c)
	mkClient := serverFlags(c, env)
	c.RunE = func(cmd *cobra.Command, pos []string) error {
		return runApply(cmd.Context(), env, dirArg(pos), *output, mkClient)
	}
	return c
}

func runApply(ctx context.Context, env Env, dir, output string, mkClient func() (*client, error)) error {
	c, err := mkClient()
	if err != nil {
		return err
	}
	var resp admin.PlanResponse
	if err := uploadSpec(ctx, c, "/v1/apply", dir, &resp); err != nil {
		return printAPIError(env, dir, output, err)
	}
	resp.Warnings = rebaseWarnings(dir, resp.Warnings)
	if output == "json" {
		var im any
		if resp.Impact != nil {
			im = resp.Impact
		}
		return writeItem(env.Stdout, "Plan", toJSONPlan(resp.Plan, im, resp.Warnings))
	}
	printWarnings(env, resp.Warnings)
	if resp.Plan.Empty() {
		fmt.Fprintln(env.Stdout, "No changes. The runtime matches the spec.")
		return nil
	}
	if err := resp.Plan.WriteText(env.Stdout); err != nil {
		return err
	}
	// The plan's summary counts the drift kept in place (drift mode
	// report) too: the apply made only the other changes.
	m := resp.Plan.Made()
	fmt.Fprintf(env.Stdout, "Apply complete: %d created, %d updated, %d deleted.\n", m.Create, m.Update, m.Delete)
	return nil
}

// writeImpact prints the blast radius the daemon computed for access changes.
func writeImpact(w io.Writer, impact *access.Impact) {
	fmt.Fprintln(w)
	if len(impact.Changes) == 0 {
		fmt.Fprintln(w, "Access impact: no provisioned user gains or loses a role or version.")
		return
	}
	fmt.Fprintf(w, "Access impact on the live runtime: %d user(s) affected.\n", impact.Users)
	for _, c := range impact.Changes {
		if c.Gained > 0 {
			fmt.Fprintf(w, "  + %d gain %s %s%s\n", c.Gained, c.Kind, printable(c.Name), sample(c.GainedBy, c.Gained))
		}
		if c.Lost > 0 {
			fmt.Fprintf(w, "  - %d lose %s %s%s\n", c.Lost, c.Kind, printable(c.Name), sample(c.LostBy, c.Lost))
		}
	}
}

func sample(names []string, n int) string {
	if len(names) == 0 {
		return ""
	}
	s := " (" + printable(strings.Join(names, ", "))
	if n > len(names) {
		s += fmt.Sprintf(", and %d more", n-len(names))
	}
	return s + ")"
}
