package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/idrecon/idrecon/reconcile"
	"github.com/idrecon/idrecon/runtime/admin"
	"github.com/idrecon/idrecon/runtime/daemon"
	"github.com/idrecon/idrecon/runtime/scim"
	"github.com/idrecon/idrecon/runtime/store/durable"
	"github.com/idrecon/idrecon/runtime/store/etcdstate"
	"github.com/idrecon/idrecon/spec"
)

func statusCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "status",
		Short: "Show where a daemon stands",
		Long: `Show where a daemon stands: its source, applied and seen revision, last attempt,
drift, readiness, gateways and shared state.

Exit 0 when ready, 3 when not ready or the latest revision was refused or
stalled (the last good one still serving), 1 when the daemon cannot be asked.`,
		Example: `  idrecon status
  idrecon status --output json
  idrecon status --watch --every 5s`,
		Args: noArgs,
	}
	output := outputFlag(c)
	mkClient := serverFlags(c, env)
	watch := c.Flags().Bool("watch", false, "print the status again whenever it changes, until interrupted")
	every := c.Flags().Duration("every", 2*time.Second, "with --watch, how often to ask")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		if err := flagsNeed(cmd.Flags(), *watch, "--watch", "every"); err != nil {
			return err
		}
		if *watch && *every <= 0 {
			return usageErrorf("--every must be positive")
		}
		cl, err := mkClient()
		if err != nil {
			return err
		}
		if *watch {
			return watchStatus(ctx, env, cl, *output == "json", *every)
		}
		var st admin.StatusResponse
		if err := cl.getJSON(ctx, "/v1/status", &st); err != nil {
			return err
		}
		if *output == "json" {
			if err := writeItem(env.Stdout, "Status", st); err != nil {
				return err
			}
		} else {
			writeStatus(env.Stdout, st, env.Now())
		}
		if ready, _ := readiness(st); !ready {
			// Scripts can wait on it: 0 in sync, 3 not (1 stays "could not ask").
			return &exitError{code: exitNotReady}
		}
		return nil
	}
	return c
}

// watchStatus prints the status whenever it changes, until ctx ends (^C).
// A daemon that cannot be reached (restarting, during a deploy: what one
// watches for) is said once on stderr and asked again at the next tick; one
// that answers with an error (a wrong token) ends the watch.
func watchStatus(ctx context.Context, env Env, c *client, asJSON bool, every time.Duration) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	var last []byte
	for {
		var st admin.StatusResponse
		err := c.getJSON(ctx, "/v1/status", &st)
		var answered *apiError
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &answered):
			return err
		case err != nil:
			if key := []byte(err.Error()); !bytes.Equal(key, last) {
				last = key
				fmt.Fprintf(env.Stderr, "--- %s %v (asking again every %s)\n", env.Now().Format(time.RFC3339), err, every)
			}
		}
		if key, _ := json.Marshal(st); err == nil && !bytes.Equal(key, last) {
			last = key
			if asJSON {
				writeItem(env.Stdout, "Status", st)
			} else {
				fmt.Fprintf(env.Stdout, "--- %s\n", env.Now().Format(time.RFC3339))
				writeStatus(env.Stdout, st, env.Now())
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// exitNotReady is status's exit code for a daemon that is not ready or
// whose latest revision was refused or stalled.
const exitNotReady = 3

// readiness is status's READY: the daemon's checks pass and the latest
// revision was applied. A refused or stalled revision makes it False with
// its reason, though the daemon still serves the last good one.
func readiness(st admin.StatusResponse) (bool, string) {
	switch {
	case !st.Ready:
		for _, name := range []string{"reconcile", "scim", "saml", "tls"} {
			if v, ok := st.Components[name]; ok && !strings.HasPrefix(v, "ready") {
				return false, name + ": " + firstLine(v)
			}
		}
		return false, "not ready"
	case st.LastResult == "refused" || st.LastResult == "stalled":
		return false, "latest revision " + st.LastResult + ": " + firstLine(st.LastError) + " (serving the last good one)"
	}
	return true, ""
}

// pendingLine counts what the last reconcile left unmade as plan counts a
// plan: the changes an apply would make, and the drift a --drift=report
// daemon keeps apart.
func pendingLine(st reconcile.Status) string {
	s := st.PendingPlan
	line := fmt.Sprintf("%d to create, %d to update, %d to delete", s.Create, s.Update, s.Delete)
	switch {
	case s.Kept > 0:
		line += fmt.Sprintf(", %d kept", s.Kept)
	case s.Drift > 0:
		line += fmt.Sprintf(" (%d of them drift)", s.Drift)
	}
	return line
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

func writeStatus(w io.Writer, st admin.StatusResponse, now time.Time) {
	tb := newTable(w)
	ready := "True"
	if ok, why := readiness(st); !ok {
		ready = "False: " + why
	}
	tb.row("SOURCE", st.Source)
	tb.row("READY", ready)
	tb.row("APPLIED REVISION", orDash(short(st.AppliedRevision)))
	tb.row("SEEN REVISION", orDash(short(st.SeenRevision)))
	if st.AppliedContent != "" && st.AppliedContent != st.AppliedRevision {
		tb.row("APPLIED CONTENT", short(st.AppliedContent))
	}
	last := "-"
	if !st.LastAttempt.IsZero() {
		last = fmt.Sprintf("%s (%s ago): %s", st.LastAttempt.Format(time.RFC3339), now.Sub(st.LastAttempt).Round(time.Second), st.LastResult)
	}
	tb.row("LAST ATTEMPT", last)
	if st.LastError != "" {
		tb.row("LAST ERROR", firstLine(st.LastError)+moreLines(st.LastError))
	}
	if st.Stalled != "" {
		tb.row("STALLED", st.Stalled+": not retried with backoff; retried at the interval or when triggered")
	}
	tb.row("DRIFT", driftLine(st.Status, now))
	tb.row("SUSPENDED", fmt.Sprint(st.Suspended))
	tb.row("PENDING", pendingLine(st.Status))
	for _, name := range []string{"reconcile", "scim", "saml", "tls", "etcd"} {
		if v, ok := st.Components[name]; ok {
			tb.row(upper(name), v)
		}
	}
	if r := st.Replication; r != nil {
		tb.row("STATE", replicationLine(r))
	}
	if p := st.Provisioned; p != nil {
		tb.row("PROVISIONED", provisionedLine(p))
	}
	for _, g := range st.Gateways {
		tb.row("GATEWAY "+g.Name, gatewayLine(g))
	}
	tb.flush()
	renamed := map[string]bool{}
	for _, r := range st.Renames {
		renamed[r.Assignment] = true
	}
	for _, d := range st.Drift {
		if d.Kind == spec.KindAccessAssignment && renamed[d.Name] {
			continue // the rename's own line below says more
		}
		fmt.Fprintf(w, "  drift: %s\n", printable(d.Kind+"/"+d.Name))
	}
	for _, r := range st.Renames {
		fmt.Fprintf(w, "  drift: AccessAssignment/%s names group %q, which Entra renamed to %q: %s\n",
			printable(r.Assignment), r.From, r.To, printable(r.Suggestion))
	}
	if strings.Contains(st.LastError, "\n") {
		// The table has the first line; the whole error, every file:line
		// of it, goes below.
		fmt.Fprintln(w, "\nLast error:")
		for _, line := range strings.Split(st.LastError, "\n") {
			fmt.Fprintln(w, printable(line))
		}
	}
}

// driftLine says whether drift is present now or was corrected, and when.
func driftLine(st reconcile.Status, now time.Time) string {
	when := func(t time.Time) string {
		return fmt.Sprintf("%s (%s ago)", t.Format(time.RFC3339), now.Sub(t).Round(time.Second))
	}
	var s string
	switch {
	case st.DriftCount > 0 && !st.DriftSince.IsZero():
		s = fmt.Sprintf("%d present since %s", st.DriftCount, when(st.DriftSince))
	case st.DriftCount > 0:
		s = fmt.Sprintf("%d present", st.DriftCount)
	default:
		s = "none present"
	}
	if len(st.Corrected) > 0 {
		s += fmt.Sprintf("; %d corrected at %s", len(st.Corrected), when(st.CorrectedAt))
	}
	return s + " (mode " + string(st.DriftMode) + ")"
}

// replicationLine says where a shared state lives and who applies the spec.
func replicationLine(r *admin.ReplicationStatus) string {
	leader := "no leader"
	switch {
	case r.Leader == r.Replica:
		leader = "this replica (" + r.Replica + ") leads the reconciler"
	case r.Leader != "":
		leader = "leader " + r.Leader + ", this is " + r.Replica
	}
	line := fmt.Sprintf("%s, %d endpoint(s), revision %d; %s", r.Backend, len(r.Endpoints), r.Revision, printable(leader))
	if len(r.Unreachable) > 0 {
		line += fmt.Sprintf("; %d not answering: %s", len(r.Unreachable), printable(strings.Join(r.Unreachable, ", ")))
	}
	return line
}

// provisionedLine counts what SCIM clients provisioned, each against its
// bound, and names the flag of any bound nearly reached.
func provisionedLine(p *scim.Provisioned) string {
	var parts, near []string
	for _, c := range p.Counts() {
		kind := c.Kind
		if c.N == 1 {
			kind = strings.TrimSuffix(kind, "s")
		}
		part := fmt.Sprintf("%d %s", c.N, kind)
		if c.Bound > 0 {
			part += fmt.Sprintf(" of %d", c.Bound)
		}
		if c.Near() {
			near = append(near, c.Flag)
		}
		parts = append(parts, part)
	}
	line := strings.Join(parts, ", ")
	if len(near) > 0 {
		line += "; near the bound: raise " + strings.Join(near, ", ") + " or narrow the provisioning scope"
	}
	return line
}

// moreLines says that an error goes on below the table.
func moreLines(s string) string {
	if n := strings.Count(s, "\n"); n > 0 {
		return fmt.Sprintf(" (and %d more line(s) below)", n)
	}
	return ""
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// simplePost is a command that posts to path and says done. With canWait
// it takes --wait: block until the daemon's next reconcile ends, as
// "flux reconcile" and "argocd app wait" do.
func simplePost(env Env, c *cobra.Command, path, done string, canWait bool) *cobra.Command {
	c.Args = noArgs
	mkClient := serverFlags(c, env)
	var wait bool
	var timeout time.Duration
	if canWait {
		c.Flags().BoolVar(&wait, "wait", false, "wait until the reconcile this starts has applied or refused the revision")
		c.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "with --wait, how long to wait")
	}
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		if err := flagsNeed(cmd.Flags(), wait, "--wait", "timeout"); err != nil {
			// Without --wait nothing is waited for, and a --timeout meant
			// to bound the command would bound nothing.
			return err
		}
		if wait {
			if timeout <= 0 {
				return usageErrorf("--timeout must be positive")
			}
			// --timeout bounds the whole wait, the status read and the
			// trigger included: a daemon that accepts connections but does
			// not answer would otherwise hold the command for the HTTP
			// client's own timeout (minutes), whatever --timeout says.
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		cl, err := mkClient()
		if err != nil {
			return err
		}
		var before admin.StatusResponse
		if wait {
			if err := cl.getJSON(ctx, "/v1/status", &before); err != nil {
				return timedOut(ctx, err, "the daemon did not answer within %s", timeout)
			}
		}
		var req admin.Requested
		if err := cl.post(ctx, path, &req); err != nil {
			return timedOut(ctx, err, "the daemon did not answer within %s", timeout)
		}
		if !wait {
			fmt.Fprintln(env.Stdout, done)
			return nil
		}
		return waitForReconcile(ctx, env, cl, reconcileAfter{request: req.Request, attempt: before.LastAttempt}, timeout)
	}
	return c
}

// reconcileAfter says which reconciles --wait may report: those answering
// request, the number the daemon gave the reconcile it was asked for, as
// its status shows it; or, from a daemon that does not number requests
// (request 0), those that began after attempt, the last one before the
// request. The number is what tells them apart: a reconcile under way when
// the request came began after attempt too, maybe while the daemon was
// still suspended, or before the change the user waits for.
type reconcileAfter struct {
	request uint64
	attempt time.Time
}

func (a reconcileAfter) answered(st admin.StatusResponse) bool {
	if a.request > 0 {
		return st.Request >= a.request
	}
	return st.LastAttempt.After(a.attempt)
}

// timedOut names --timeout when it is what ended a request, rather than
// the bare "context deadline exceeded" of the HTTP client.
func timedOut(ctx context.Context, err error, format string, timeout time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf(format, timeout)
	}
	return err
}

// waitForReconcile polls the daemon until a reconcile after has ended, and
// says how it ended: exit 0 applied, 3 refused or failed, or not applied
// because the daemon is suspended. ctx carries --timeout.
func waitForReconcile(ctx context.Context, env Env, c *client, after reconcileAfter, timeout time.Duration) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		var st admin.StatusResponse
		if err := c.getJSON(ctx, "/v1/status", &st); err != nil && ctx.Err() == nil {
			return err
		}
		if after.answered(st) {
			switch {
			case st.LastResult == reconcile.OutcomeOK && st.Suspended:
				// A suspended daemon's reconcile only plans: it ends "ok"
				// but applied nothing, and AppliedRevision is the old one.
				p := st.PendingPlan
				return &exitError{code: exitNotReady, err: fmt.Errorf(
					"the daemon is suspended: it planned revision %s but applied nothing (%d to create, %d to update, %d to delete pending); 'idrecon resume' lets it apply",
					orDash(short(st.SeenRevision)), p.Create, p.Update, p.Delete)}
			case st.LastResult == reconcile.OutcomeOK:
				fmt.Fprintf(env.Stdout, "applied revision %s\n", orDash(short(st.AppliedRevision)))
				return nil
			}
			return &exitError{code: exitNotReady, err: fmt.Errorf("%s: %s", st.LastResult, firstLine(st.LastError))}
		}
		select {
		case <-ctx.Done():
			return timedOut(ctx, ctx.Err(), "no reconcile ended within %s", timeout)
		case <-tick.C:
		}
	}
}

func reconcileCmd(env Env) *cobra.Command {
	return simplePost(env, &cobra.Command{
		Use:   "reconcile",
		Short: "Ask a daemon to reconcile now",
		Long: `Ask a daemon to reconcile now. With --wait, block until that reconcile ends:
exit 0 when it applied the revision, 3 when it refused it, failed, or applied
nothing because the daemon is suspended, 1 when the daemon did not answer or
--timeout ran out (it bounds the whole command).`,
		Example: `  idrecon reconcile
  idrecon reconcile --wait --timeout 1m`,
	}, "/v1/reconcile", "reconcile triggered; see 'idrecon status', or use --wait", true)
}

func suspendCmd(env Env) *cobra.Command {
	return simplePost(env, &cobra.Command{
		Use:     "suspend",
		Short:   "Stop a daemon from applying changes (it still serves and reports drift)",
		Example: "  idrecon suspend --server http://127.0.0.1:9090",
	}, "/v1/suspend", "suspended: the daemon serves and reports drift but applies nothing", false)
}

func resumeCmd(env Env) *cobra.Command {
	return simplePost(env, &cobra.Command{
		Use:   "resume",
		Short: "Let a suspended daemon apply changes again",
		Long: `Let a suspended daemon apply changes again. With --wait, block until the
reconcile that follows ends: exit 0 when it applied the revision, 3 when it
refused it, failed, or applied nothing because the daemon is suspended (again),
1 when the daemon did not answer or --timeout ran out (it bounds the whole
command).`,
		Example: `  idrecon resume
  idrecon resume --wait`,
	}, "/v1/resume", "resumed", true)
}

func samlCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "saml metadata",
		Short: "Save the SP metadata XML for Entra",
		Long: `Save the SAML service provider's metadata XML, to upload in Entra
(Single sign-on > Upload metadata file). Without -o it goes to stdout.`,
		Example: `  idrecon saml metadata -o sp.xml
  idrecon saml metadata > sp.xml`,
	}
	withVerbs(c, verb{word: "metadata"})
	out := c.Flags().StringP("out", "o", "", "write the SP metadata XML to `FILE` (default stdout)")
	c.MarkFlagFilename("out", "xml")
	mkClient := serverFlags(c, env)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		cl, err := mkClient()
		if err != nil {
			return err
		}
		get := func(w io.Writer) error { return cl.do(ctx, "GET", "/v1/saml/metadata", nil, "", nil, w) }
		if *out == "" {
			return get(env.Stdout)
		}
		// Metadata is public; a 0600 file would surprise whoever uploads it.
		if err := writeFile(*out, 0o644, true, get); err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "SP metadata saved to %s: upload it in Entra (Single sign-on > Upload metadata file)\n", *out)
		return nil
	}
	return c
}

// writeFile writes path whole or not at all: into a temporary file in the
// same folder, synced, then moved into place. With replace, an existing file
// is replaced atomically; without, the move fails if path exists (a hard
// link, so no other file appearing meanwhile is clobbered either).
func writeFile(path string, perm os.FileMode, replace bool, write func(io.Writer) error) error {
	if err := notAFolder(path); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	var pe *fs.PathError
	if errors.As(err, &pe) {
		// The temporary file's name would send the user looking for a
		// file they never named: the folder is what is missing or closed.
		return fmt.Errorf("write %s: %s: %w", path, dir, pe.Err)
	}
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a rename or a link, this removes nothing or the extra name
	// CreateTemp makes the file 0600 whatever the umask; Chmod is not
	// subject to the umask either.
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if replace {
		err = os.Rename(tmp, path)
	} else if err = os.Link(tmp, path); errors.Is(err, os.ErrExist) {
		if err := notAFolder(path); err != nil {
			return err
		}
		return existsError(path)
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		if err := notAFolder(path); err != nil {
			return err // made there while the file was written
		}
		return fmt.Errorf("write %s: %w", path, le.Err)
	}
	if err != nil {
		return err
	}
	return syncDir(dir)
}

func existsError(path string) error {
	return fmt.Errorf("%s exists: give --force to replace it", path)
}

// notAFolder refuses a file to write that names a folder, which --force
// would not replace either. The flag is the caller's (-o, --key-out).
func notAFolder(path string) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a folder: name the file to write (a new name in that folder, say)", path)
	}
	return nil
}

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func backupCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "backup",
		Short: "Write a consistent snapshot of a daemon's state to a file (mode 0600)",
		Long: `Write a consistent snapshot of a daemon's state, written whole and mode 0600
(it holds every provisioned user's personal data). An existing file is
replaced only with --force. Restore it with 'idrecon restore'.`,
		Example: `  idrecon backup -o idrecon.backup
  idrecon backup -o idrecon.backup --force`,
		Args: noArgs,
	}
	out := c.Flags().StringP("out", "o", "", "write the snapshot to `FILE`, mode 0600 (default stdout, unless it is a terminal)")
	c.MarkFlagFilename("out")
	force := c.Flags().Bool("force", false, "replace FILE if it exists")
	mkClient := serverFlags(c, env)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		switch {
		case *out == "" && *force:
			return usageErrorf("--force needs -o FILE")
		case *out == "" && env.IsTerminal(env.Stdout):
			return usageErrorf("will not write a binary backup to a terminal: give -o FILE")
		case *out != "":
			// Fail before the download; writeFile checks again at the end.
			if err := notAFolder(*out); err != nil {
				return err
			}
			if _, err := os.Lstat(*out); err == nil && !*force {
				return existsError(*out)
			}
		}
		cl, err := mkClient()
		if err != nil {
			return err
		}
		get := func(w io.Writer) error { return cl.do(cmd.Context(), "GET", "/v1/backup", nil, "", nil, w) }
		if *out == "" {
			return get(env.Stdout)
		}
		// The snapshot holds every provisioned user's personal data.
		if err := writeFile(*out, 0o600, *force, get); err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "backup written to %s\n", *out)
		return nil
	}
	return c
}

func restoreCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "restore FILE",
		Short: "Restore a snapshot into a data dir (daemon stopped), or into etcd",
		Example: `  idrecon restore idrecon.backup --data-dir data
  idrecon restore idrecon.backup --data-dir data --force
  idrecon restore idrecon.backup --to-etcd https://etcd-1:2379,https://etcd-2:2379 --etcd-prefix /idrecon/`,
		Args: exactArgs("FILE"),
	}
	dataDir := c.Flags().String("data-dir", "data", "the (stopped) daemon's data dir")
	c.MarkFlagDirname("data-dir")
	force := c.Flags().Bool("force", false, "replace an existing state file")
	to := c.Flags().String("to-etcd", "", "restore into etcd instead, for daemons started with --etcd: comma-separated client URLs; the prefix there must be empty")
	etcd, etcdNames := etcdFlags(c)
	c.RunE = func(cmd *cobra.Command, pos []string) error {
		if err := flagsNeed(cmd.Flags(), *to != "", "--to-etcd", etcdNames...); err != nil {
			return err
		}
		f, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer f.Close()
		if *to != "" {
			if cmd.Flags().Changed("data-dir") || *force {
				return usageErrorf("--to-etcd restores into etcd: --data-dir and --force do not apply")
			}
			ec := etcd(*to)
			stats, err := daemon.RestoreToEtcd(cmd.Context(), f, ec)
			if err != nil {
				return fmt.Errorf("restore %s into etcd %s: %w", pos[0], ec.Shown(), err)
			}
			fmt.Fprintln(env.Stdout, etcdDone("restored", pos[0], ec, stats))
			return nil
		}
		undo, err := mkdirAllUndo(*dataDir, 0o700)
		if err != nil {
			return err
		}
		var opts []durable.RestoreOption
		if *force {
			opts = append(opts, durable.Overwrite())
		}
		if err := durable.Restore(f, durable.Path(*dataDir), opts...); err != nil {
			// Left behind, an empty data dir would be taken for a fresh
			// state by the daemon started next.
			undo()
			if errors.Is(err, durable.ErrExists) {
				return fmt.Errorf("%w; --force replaces it (with the daemon stopped)", err)
			}
			return err
		}
		fmt.Fprintf(env.Stdout, "restored %s into %s\n", pos[0], durable.Path(*dataDir))
		return nil
	}
	return c
}

// gatewayLine says where a Gateway forwards, whether it serves, and what it
// did since it was built.
func gatewayLine(g admin.GatewayStatus) string {
	to := g.Upstream
	if to == "" {
		to = "forward-auth only"
	}
	if !g.Serving {
		return fmt.Sprintf("%s -> %s: not serving: %s", g.PathPrefix, to, g.Error)
	}
	refused := uint64(0)
	for _, n := range g.Refusals {
		refused += n
	}
	return fmt.Sprintf("%s -> %s: serving; %d proxied, %d verified, %d refused, %d upstream errors",
		g.PathPrefix, to, g.Requests["proxy"], g.Requests["verify"], refused, g.UpstreamErrors)
}

func migrateCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "migrate --from DATA_DIR --to-etcd ENDPOINTS",
		Short: "Copy a stopped daemon's data dir into etcd, for serve --etcd",
		Long: `Copy a stopped daemon's state from its data dir into etcd, under a prefix that
must be empty there, for 'idrecon serve --etcd'.`,
		Example: `  idrecon migrate --from data --to-etcd https://etcd-1:2379,https://etcd-2:2379 \
    --etcd-ca ca.pem --etcd-cert client.pem --etcd-key client-key.pem`,
		Args: noArgs,
	}
	fs := c.Flags()
	from := fs.String("from", "", "the stopped daemon's data dir")
	to := fs.String("to-etcd", "", "comma-separated etcd client URLs; the prefix there must be empty")
	etcd, _ := etcdFlags(c)
	c.MarkFlagDirname("from")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if *from == "" || *to == "" {
			return usageErrorf("--from and --to-etcd are required")
		}
		ec := etcd(*to)
		stats, err := daemon.Migrate(cmd.Context(), *from, ec)
		if err != nil {
			return fmt.Errorf("migrate %s into etcd %s: %w", *from, ec.Shown(), err)
		}
		fmt.Fprintln(env.Stdout, etcdDone("migrated", *from, ec, stats))
		return nil
	}
	return c
}

// etcdDone says where restore or migrate (verb) put the state from from.
func etcdDone(verb, from string, ec *daemon.EtcdConfig, stats etcdstate.Stats) string {
	return fmt.Sprintf("%s %s into etcd %s under %s: %d users, %d groups, %d memberships, %d resources (etcd revision %d)",
		verb, from, ec.Shown(), ec.Prefix, stats.Users, stats.Groups, stats.Memberships, stats.Resources, stats.Revision)
}

// etcdFlags adds the flags that say how to reach etcd (all but the
// endpoints, whose flag differs per command) and returns the configuration
// they give for endpoints, and the flags' names.
func etcdFlags(c *cobra.Command) (func(endpoints string) *daemon.EtcdConfig, []string) {
	fs := c.Flags()
	var prefix, ca, cert, key *string
	names := added(fs, func() {
		prefix = fs.String("etcd-prefix", "/idrecon/", "key prefix of the state in etcd")
		ca = fs.String("etcd-ca", "", "CA file verifying the etcd members' certificates")
		cert = fs.String("etcd-cert", "", "client certificate file for etcd")
		key = fs.String("etcd-key", "", "client key file for etcd")
	})
	return func(endpoints string) *daemon.EtcdConfig {
		return &daemon.EtcdConfig{Endpoints: strings.Split(endpoints, ","), Prefix: *prefix, CAFile: *ca, CertFile: *cert, KeyFile: *key}
	}, names
}
