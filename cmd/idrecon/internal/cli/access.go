package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/idrecon/idrecon/runtime/access"
)

// listFlags are the flags shared by users and groups.
type listFlags struct {
	filter *string
	limit  *int
	after  *string
	all    *bool
}

func addListFlags(fs *pflag.FlagSet, what string) listFlags {
	return listFlags{
		filter: fs.String("filter", "", "show only "+what+" whose name contains this text (case-insensitive)"),
		limit:  fs.Int("limit", 100, "page size (at most 500)"),
		after:  fs.String("after", "", "start after this cursor (the previous page's next)"),
		all:    fs.Bool("all", false, "page through everything"),
	}
}

// check refuses a page size the daemon would refuse once asked.
func (lf listFlags) check() error {
	if *lf.limit < 1 || *lf.limit > access.MaxPage {
		return usageErrorf("--limit %d: want 1 to %d", *lf.limit, access.MaxPage)
	}
	return nil
}

// fetchPages reads pages of path until one page (or all, with --all).
func fetchPages[T any](ctx context.Context, c *client, path string, lf listFlags, extra url.Values, each func([]T)) (string, error) {
	after := *lf.after
	for {
		q := url.Values{}
		for k, v := range extra {
			q[k] = v
		}
		if *lf.filter != "" {
			q.Set("filter", *lf.filter)
		}
		q.Set("limit", fmt.Sprint(*lf.limit))
		if after != "" {
			q.Set("after", after)
		}
		var page access.Page[T]
		if err := c.getJSON(ctx, path+"?"+q.Encode(), &page); err != nil {
			return "", err
		}
		each(page.Items)
		if page.Next == "" || !*lf.all {
			return page.Next, nil
		}
		after = page.Next
	}
}

func usersCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "users",
		Short: "List the users Entra provisioned",
		Long: `List the users Entra provisioned, with their effective roles and versions,
a page at a time (--all for every page).`,
		Example: `  idrecon users
  idrecon users --filter alice --active true
  idrecon users --all --output json`,
		Args: noArgs,
	}
	output := outputFlag(c)
	lf := addListFlags(c.Flags(), "users")
	active := c.Flags().String("active", "", "only active (true) or disabled (false) users")
	c.RegisterFlagCompletionFunc("active", cobra.FixedCompletions([]string{"true", "false"}, cobra.ShellCompDirectiveNoFileComp))
	mkClient := serverFlags(c, env)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := lf.check(); err != nil {
			return err
		}
		if *active != "" && *active != "true" && *active != "false" {
			return usageErrorf("--active %q: want true or false", *active)
		}
		cl, err := mkClient()
		if err != nil {
			return err
		}
		extra := url.Values{}
		if *active != "" {
			extra.Set("active", *active)
		}
		var all []access.UserSummary
		next, err := fetchPages(cmd.Context(), cl, "/v1/users", lf, extra, func(p []access.UserSummary) { all = append(all, p...) })
		if err != nil {
			return err
		}
		if *output == "json" {
			return writeItems(env.Stdout, "UserList", all, next)
		}
		if len(all) == 0 {
			fmt.Fprintln(env.Stdout, "No users (none provisioned yet, or none match).")
			return nil
		}
		tb := newTable(env.Stdout, "USERNAME", "ACTIVE", "ACCESS", "EXTERNAL ID", "GROUPS", "ROLES", "VERSIONS")
		for _, u := range all {
			tb.row(u.UserName, fmt.Sprint(u.Active), yesNo(u.HasAccess), orDash(u.ExternalID),
				list(u.Groups), list(u.Roles), list(u.Versions))
		}
		tb.flush()
		morePages(env.Stdout, len(all), next)
		return nil
	}
	return c
}

func groupsCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "groups",
		Short: "List the groups Entra provisioned",
		Long: `List the groups Entra provisioned, with their members, assignments, roles and
versions, a page at a time (--all for every page).`,
		Example: `  idrecon groups
  idrecon groups --filter appsec --output json`,
		Args: noArgs,
	}
	output := outputFlag(c)
	lf := addListFlags(c.Flags(), "groups")
	mkClient := serverFlags(c, env)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := lf.check(); err != nil {
			return err
		}
		cl, err := mkClient()
		if err != nil {
			return err
		}
		var all []access.GroupSummary
		next, err := fetchPages(cmd.Context(), cl, "/v1/groups", lf, nil, func(p []access.GroupSummary) { all = append(all, p...) })
		if err != nil {
			return err
		}
		if *output == "json" {
			return writeItems(env.Stdout, "GroupList", all, next)
		}
		if len(all) == 0 {
			fmt.Fprintln(env.Stdout, "No groups (none provisioned yet, or none match).")
			return nil
		}
		tb := newTable(env.Stdout, "DISPLAY NAME", "EXTERNAL ID", "MEMBERS", "ASSIGNMENTS", "ROLES", "VERSIONS")
		for _, g := range all {
			tb.row(g.DisplayName, orDash(g.ExternalID), fmt.Sprint(g.Members),
				list(g.Assignments), list(g.Roles), list(g.Versions))
		}
		tb.flush()
		morePages(env.Stdout, len(all), next)
		return nil
	}
	return c
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func morePages(w io.Writer, n int, next string) {
	if next != "" {
		fmt.Fprintf(w, "(%d shown; more with --after %s, or --all)\n", n, printable(next))
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ", ")
}

func via(group, assignment string) string {
	if group == "" {
		return "direct, assignment " + assignment
	}
	return "group " + group + ", assignment " + assignment
}

func accessCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "access user USERNAME | version APP/VERSION | pending",
		Short: "Explain who may do what",
		Long: `Explain who may do what, and why: the roles and versions a user has and the
assignment (and group) each comes from; the users who can reach an
application version; the assignments whose subject is not provisioned yet.`,
		Example: `  idrecon access user alice@contoso.com
  idrecon access version webgoat/2.0
  idrecon access pending --output json`,
	}
	withVerbs(c, verb{"user", []string{"USERNAME"}}, verb{"version", []string{"APP/VERSION"}}, verb{word: "pending"})
	output := outputFlag(c)
	mkClient := serverFlags(c, env)
	c.RunE = func(cmd *cobra.Command, pos []string) error {
		return runAccess(cmd.Context(), env, mkClient, *output, pos)
	}
	return c
}

func runAccess(ctx context.Context, env Env, mkClient func() (*client, error), output string, pos []string) error {
	// Both halves are needed: "/2.0" asked for an empty application, whose
	// doubled slash the admin API's router redirected to another path.
	if pos[0] == "version" {
		if app, version, ok := strings.Cut(pos[1], "/"); !ok || app == "" || version == "" {
			return usageErrorf("want APP/VERSION, e.g. webgoat/2.0, not %q", pos[1])
		}
	}
	c, err := mkClient()
	if err != nil {
		return err
	}
	w := env.Stdout
	switch pos[0] {
	case "user":
		var e access.Effective
		if err := c.getJSON(ctx, "/v1/access/users/"+url.PathEscape(pos[1]), &e); err != nil {
			return err
		}
		if output == "json" {
			return writeItem(w, "UserAccess", &e)
		}
		writeEffective(w, &e)
	case "version":
		app, version, _ := strings.Cut(pos[1], "/")
		var r access.Reach
		if err := c.getJSON(ctx, "/v1/access/applications/"+url.PathEscape(app)+"/"+url.PathEscape(version), &r); err != nil {
			return err
		}
		if output == "json" {
			return writeItem(w, "VersionAccess", &r)
		}
		fmt.Fprintf(w, "%s: %d user(s) can reach it\n", printable(r.Application+"/"+r.Version), len(r.Users))
		if len(r.Users) == 0 {
			return nil
		}
		tb := newTable(w, "USERNAME", "HOW")
		for _, u := range r.Users {
			for i, p := range u.Paths {
				name := u.UserName
				if i > 0 {
					name = ""
				}
				tb.row(name, via(p.Group, p.Assignment)+" via "+p.Via)
			}
		}
		tb.flush()
	case "pending":
		var p []access.PendingAssignment
		if err := c.getJSON(ctx, "/v1/access/pending", &p); err != nil {
			return err
		}
		if output == "json" {
			return writeItems(w, "PendingAssignmentList", p, "")
		}
		if len(p) == 0 {
			fmt.Fprintln(w, "No pending assignments: every subject is provisioned.")
			return nil
		}
		tb := newTable(w, "ASSIGNMENT", "SUBJECT", "REASON")
		for _, a := range p {
			tb.row(a.Assignment, a.Subject.String(), a.Reason)
		}
		tb.flush()
	}
	return nil
}

func writeEffective(w io.Writer, e *access.Effective) {
	state := "active"
	if !e.Active {
		state = "disabled: assignments kept, no access until re-enabled"
	}
	fmt.Fprintf(w, "%s (%s), access: %s\n", printable(e.UserName), state, yesNo(e.HasAccess()))
	roles, versions := e.Roles(), e.Versions()
	if len(roles) == 0 {
		fmt.Fprintln(w, "No role reaches this user, so they cannot sign in.")
	}
	if len(roles) > 0 {
		fmt.Fprintln(w)
		tb := newTable(w, "ROLE", "GRANTED BY")
		for _, r := range roles {
			tb.row(r.Role, via(r.Group, r.Assignment))
		}
		tb.flush()
	}
	if len(versions) > 0 {
		fmt.Fprintln(w)
		tb := newTable(w, "VERSION", "GRANTED BY")
		for _, v := range versions {
			tb.row(v.Application+"/"+v.Version, via(v.Group, v.Assignment)+" ("+v.Via+")")
		}
		tb.flush()
	}
}
