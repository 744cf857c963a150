package daemon

import (
	"context"
	"errors"
	"log/slog"
	"strconv"

	"github.com/idrecon/idrecon/reconcile"
	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/runtime/saml"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// accessAuthorizer makes sign-in decisions from effective access, so SAML
// and the admin API's "who may do what" can never disagree.
type accessAuthorizer struct {
	st *store.Store
}

var _ saml.Authorizer = accessAuthorizer{}

func (a accessAuthorizer) Authorize(_ context.Context, userName string) (saml.Decision, error) {
	e, err := access.ForUser(a.st.Read(), userName)
	if errors.Is(err, access.ErrUnknownUser) {
		return saml.Decision{Reason: saml.ReasonUnknownUser}, nil
	}
	if err != nil {
		return saml.Decision{}, err
	}
	d := saml.Decision{UserName: e.UserName, Allowed: e.HasAccess()}
	switch {
	case !e.Active:
		d.Reason = saml.ReasonUserDisabled
	case !e.HasRole():
		d.Reason = saml.ReasonNoRole
	}
	for _, r := range e.Roles() {
		d.Roles = append(d.Roles, saml.Grant{Name: r.Role, Via: grantVia(r.Group, r.Assignment)})
	}
	for _, v := range e.Versions() {
		d.Versions = append(d.Versions, saml.Grant{Name: v.Application + "/" + v.Version, Via: grantVia(v.Group, v.Assignment)})
	}
	return d, nil
}

func grantVia(group, assignment string) string {
	if group == "" {
		return "direct (assignment " + assignment + ")"
	}
	return "group " + group + " (assignment " + assignment + ")"
}

// renameLog reports groups renamed in Entra whose assignments still name
// the old displayName: drift that only the spec can resolve, so it is logged
// (once per rename) with the change to make, and listed as drift.
type renameLog struct {
	log  *slog.Logger
	seen map[string]bool // guarded by the reconcile loop, which calls drift
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
				"field", "spec.subject.group", "before", r.From, "after", r.To, "suggestion", r.Suggestion)
		}
		changes = append(changes, reconcile.Change{
			Kind: spec.KindAccessAssignment, Name: r.Assignment, Drift: true, Kept: true,
			Fields: []reconcile.FieldChange{{Path: "spec.subject.group", Before: strconv.Quote(r.To), After: strconv.Quote(r.From)}},
		})
	}
	l.seen = now
	return changes
}
