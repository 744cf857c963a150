package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/idrecon/idrecon/reconcile"
)

func historyCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "history",
		Short: "List a daemon's latest reconciles",
		Long: `List a daemon's latest reconciles, newest first: when, the revision converged on
and the one fetched, the outcome, what an apply changed, and why one failed or
was refused. Reconciles in a row with the same outcome are one line, counted.
The daemon keeps them in memory: a restart starts the list afresh.`,
		Example: `  idrecon history
  idrecon history --output json`,
		Args: noArgs,
	}
	output := outputFlag(c)
	mkClient := serverFlags(c, env)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		cl, err := mkClient()
		if err != nil {
			return err
		}
		var h []reconcile.HistoryEntry
		if err := cl.getJSON(cmd.Context(), "/v1/history", &h); err != nil {
			return err
		}
		if *output == "json" {
			return writeItems(env.Stdout, "HistoryList", h, "")
		}
		return writeHistory(env.Stdout, h, env.Now())
	}
	return c
}

// writeHistory writes h, newest first, one line per run of reconciles.
func writeHistory(w io.Writer, h []reconcile.HistoryEntry, now time.Time) error {
	if len(h) == 0 {
		_, err := fmt.Fprintln(w, "No reconcile yet.")
		return err
	}
	tb := newTable(w, "LAST", "COUNT", "REVISION", "OUTCOME", "CHANGES")
	for _, e := range h {
		rev := orDash(short(e.Revision))
		if e.Seen != "" && e.Seen != e.Revision {
			rev += " (fetched " + short(e.Seen) + ")"
		}
		changes := "-"
		switch {
		case e.Applied && e.Summary == (reconcile.Summary{}):
			changes = "in sync"
		case e.Applied:
			s := e.Summary
			changes = fmt.Sprintf("%d created, %d updated, %d deleted", s.Create, s.Update, s.Delete)
		case e.Error != "":
			changes = firstLine(e.Error)
		}
		tb.row(fmt.Sprintf("%s (%s ago)", e.Last.Format(time.RFC3339), now.Sub(e.Last).Round(time.Second)),
			fmt.Sprint(e.Count), rev, e.Outcome, changes)
	}
	return tb.flush()
}
