package daemon

import (
	"context"
	"errors"

	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/runtime/saml"
	"github.com/idrecon/idrecon/runtime/store"
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
	case len(e.Roles) == 0:
		d.Reason = saml.ReasonNoRole
	}
	for _, r := range e.Roles {
		d.Roles = append(d.Roles, saml.Grant{Name: r.Role, Via: grantVia(r.Group, r.Assignment)})
	}
	for _, v := range e.Versions {
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
