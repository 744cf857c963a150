package reconcile

import (
	"fmt"
	"slices"
	"strings"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// UnsafeError is a revision the guard refuses to apply because it would cut
// Entra off: it has no documents (a wrong folder, one emptied by a branch
// switch), so applying it would delete everything; or it deletes the SCIM
// provisioning or SAML service provider while they are enabled, and no
// enabled one of the same kind takes its place (a rename), so Entra's
// provisioning job would get 403 and be quarantined; or Config.Keeps says
// it takes what the daemon serves with (its TLS certificate). Plan reports it in
// Plan.Refused, Apply returns it and changes nothing, and the loop refuses
// the revision like an invalid one, keeping the last good revision.
type UnsafeError struct {
	// Empty is set when the revision has no documents.
	Empty bool
	// Deletes are the enabled ScimProvisioning and SamlServiceProvider
	// documents the revision would delete.
	Deletes []spec.Ref
	// Keeps is why the revision would take what the daemon serves with
	// (Config.Keeps).
	Keeps string
}

func (e *UnsafeError) Error() string {
	if e.Keeps != "" {
		return e.Keeps
	}
	if e.Empty {
		return "the spec has no documents: applying it would delete every resource, SCIM provisioning and SAML sign-on included " +
			"(is it the right folder, or was it emptied by a branch switch?); a daemon started with --allow-empty applies it"
	}
	refs := make([]string, len(e.Deletes))
	for i, ref := range e.Deletes {
		refs[i] = ref.String()
	}
	n := len(refs)
	return fmt.Sprintf("refusing to delete %s while %s enabled: Entra would be cut off (SCIM provisioning gets 403 and is quarantined, SAML sign-on fails); "+
		"first commit %s with enabled: false and let that apply, then delete %[3]s",
		strings.Join(refs, " and "), plural(n, "it is", "they are"), plural(n, "it", "them"))
}

// Is makes a refusal a spec.ErrInvalid: like a spec that does not load, the
// revision is refused as a whole (HTTP 422 from the admin API, exit 1 from
// the CLI).
func (e *UnsafeError) Is(target error) bool { return target == spec.ErrInvalid }

// CheckEmpty returns an *UnsafeError when set holds no document but the
// built-in roles that spec.Load adds to every set.
func CheckEmpty(set *spec.Set) error {
	if hasDocuments(set.Docs) {
		return nil
	}
	return &UnsafeError{Empty: true}
}

func hasDocuments(docs []*spec.Document) bool {
	for _, d := range docs {
		if !builtin(d) {
			return true
		}
	}
	return false
}

func builtin(d *spec.Document) bool {
	if d == nil || d.Pos.File != "" || d.Kind != spec.KindRole {
		return false
	}
	_, ok := spec.BuiltinRoles[d.Metadata.Name]
	return ok
}

// cutsOff reports whether deleting a, which an applied revision holds,
// cuts Entra off: it is SCIM provisioning or a SAML service provider that
// no applied revision switched off. A switch-off made outside git (the
// admin API) does not count: the guard asks for two deliberate commits.
func cutsOff(a *store.Resource) bool {
	enabled, guarded := switchedOn(a.Spec)
	return guarded && (enabled || a.ModifiedBy != ModifiedBy)
}

// switchedOn reports whether v is a kind the guard protects (guarded) and,
// if so, whether it is enabled.
func switchedOn(v any) (enabled, guarded bool) {
	switch s := v.(type) {
	case *spec.ScimProvisioning:
		return s.Enabled, true
	case *spec.SamlServiceProvider:
		return s.Enabled, true
	}
	return false, false
}

// unreplaced returns the refs of cut that the apply of ds does not replace
// with an enabled resource of the same kind in the same transaction. The
// runtime finds SCIM provisioning and the SAML service provider by kind,
// not by name, so a rename that stays enabled never cuts Entra off; and
// since the spec allows one of each, refusing it would leave only the way
// out that does (switch it off, then rename). A document whose change is
// kept (drift mode report) is not written, so it replaces nothing.
func unreplaced(cut []spec.Ref, ds *desiredState, ops []op) []spec.Ref {
	kept := map[spec.Ref]bool{}
	for _, o := range ops {
		if o.kept {
			kept[o.ref] = true
		}
	}
	on := map[string]bool{}
	for _, d := range ds.docs {
		if enabled, _ := switchedOn(d.Spec); enabled && !kept[d.Ref()] {
			on[d.Kind] = true
		}
	}
	return slices.DeleteFunc(cut, func(ref spec.Ref) bool { return on[ref.Kind] })
}

// guard returns why ds must not replace the runtime, or nil. cut lists the
// resources the plan deletes that cutsOff.
func (r *Reconciler) guard(ds *desiredState, cut []spec.Ref) *UnsafeError {
	if !hasDocuments(ds.docs) {
		if r.cfg.AllowEmpty {
			// Emptying the runtime was allowed, SCIM and SAML included.
			return nil
		}
		return &UnsafeError{Empty: true}
	}
	if len(cut) > 0 {
		return &UnsafeError{Deletes: cut}
	}
	if r.cfg.Keeps != nil {
		if err := r.cfg.Keeps(ds.docs); err != nil {
			return &UnsafeError{Keeps: err.Error()}
		}
	}
	return nil
}
