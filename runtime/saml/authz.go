package saml

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// Reasons a sign-in is refused by StoreAuthorizer.
const (
	ReasonUnknownUser  = "unknown user"
	ReasonUserDisabled = "user disabled"
	ReasonNoRole       = "no role"
)

// Authorizer decides whether a user named by the IdP may use the
// application. It is asked at sign-in and again on every request of a
// session, so a change over SCIM takes effect at once.
type Authorizer interface {
	Authorize(ctx context.Context, userName string) (Decision, error)
}

// Decision is an Authorizer's answer.
type Decision struct {
	Allowed bool
	// Reason says why a user is refused: ReasonUnknownUser,
	// ReasonUserDisabled or ReasonNoRole.
	Reason string
	// UserName is the provisioned user's userName as SCIM stored it.
	UserName string
	Roles    []Grant
	Versions []Grant
}

// Grant is one role or application version and how the user got it.
type Grant struct {
	Name string
	// Via is "direct" or "group <displayName>".
	Via string
}

// StoreAuthorizer decides from the runtime store: the user must be
// provisioned, active and reached by at least one AccessAssignment granting a
// role, directly or through a group it is a direct member of.
type StoreAuthorizer struct {
	Store *store.Store
}

// Authorize implements Authorizer.
func (a StoreAuthorizer) Authorize(_ context.Context, userName string) (Decision, error) {
	txn := a.Store.Read()
	u, err := txn.UserByName(userName)
	if err != nil {
		return Decision{}, fmt.Errorf("look up user: %w", err)
	}
	if u == nil {
		return Decision{Reason: ReasonUnknownUser}, nil
	}
	d := Decision{UserName: u.UserName}
	if !u.Active {
		d.Reason = ReasonUserDisabled
		return d, nil
	}
	groupIDs, err := txn.GroupIDsOf(u.ID)
	if err != nil {
		return Decision{}, fmt.Errorf("look up groups: %w", err)
	}
	groups := make(map[string]string, len(groupIDs)) // lower-cased displayName → displayName
	for _, id := range groupIDs {
		g, err := txn.GroupByID(id)
		if err != nil {
			return Decision{}, fmt.Errorf("look up group: %w", err)
		}
		if g != nil {
			groups[strings.ToLower(g.DisplayName)] = g.DisplayName
		}
	}
	assignments, err := txn.Resources(spec.KindAccessAssignment)
	if err != nil {
		return Decision{}, fmt.Errorf("list access assignments: %w", err)
	}
	for _, res := range assignments {
		aa, ok := res.Spec.(*spec.AccessAssignment)
		if !ok {
			continue
		}
		var via string
		switch {
		case aa.Subject.User != "" && strings.EqualFold(aa.Subject.User, u.UserName):
			via = "direct"
		case aa.Subject.Group != "":
			name, member := groups[strings.ToLower(aa.Subject.Group)]
			if !member {
				continue
			}
			via = "group " + name
		default:
			continue
		}
		for _, r := range aa.Roles {
			d.Roles = append(d.Roles, Grant{Name: r, Via: via})
		}
		for _, v := range aa.ApplicationVersions {
			d.Versions = append(d.Versions, Grant{Name: v, Via: via})
		}
	}
	d.Roles = sortGrants(d.Roles)
	d.Versions = sortGrants(d.Versions)
	if len(d.Roles) == 0 {
		d.Reason = ReasonNoRole
		return d, nil
	}
	d.Allowed = true
	return d, nil
}

func sortGrants(g []Grant) []Grant {
	slices.SortFunc(g, func(a, b Grant) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Via, b.Via))
	})
	return slices.Compact(g)
}
