package daemon

import (
	"log/slog"
	"strconv"

	"github.com/idrecon/idrecon/reconcile"
	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/runtime/audit"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// renameLog reports groups renamed in Entra whose assignments still name
// the old displayName: drift that only the spec can resolve, so it is logged
// (once per rename) with the change to make, and listed as drift.
type renameLog struct {
	log   *slog.Logger
	audit audit.Recorder
	seen  map[string]bool // guarded by the reconcile loop, which calls drift
}

// drift is the loop's reconcile.Config.DriftCheck: one kept (uncorrected)
// update per renamed group. As in a plan, Before is what the runtime holds
// (the group's new name) and After what the spec says.
func (l *renameLog) drift(txn *store.Txn) []reconcile.Change {
	renames, err := access.Renames(txn)
	if err != nil {
		l.log.Warn("check group renames", "err", err)
		return nil
	}
	now := map[string]bool{}
	changes := make([]reconcile.Change, 0, len(renames))
	for _, r := range renames {
		key := r.Assignment + "\x00" + r.To
		now[key] = true
		if !l.seen[key] {
			l.log.Warn("drift", "kind", spec.KindAccessAssignment, "name", r.Assignment,
				"field", "spec.subject.group", "before", r.To, "after", r.From, "suggestion", r.Suggestion)
			l.audit.Record(audit.Drift{Kind: spec.KindAccessAssignment, Name: r.Assignment, Action: "update",
				Field: "spec.subject.group", Before: r.To, After: r.From, Suggestion: r.Suggestion})
		}
		changes = append(changes, reconcile.Change{
			Kind: spec.KindAccessAssignment, Name: r.Assignment, Drift: true, Kept: true,
			Fields: []reconcile.FieldChange{{Path: "spec.subject.group", Before: strconv.Quote(r.To), After: strconv.Quote(r.From)}},
		})
	}
	l.seen = now
	return changes
}
