package saml

import (
	"context"
	"errors"

	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/runtime/store"
)

// Reasons a sign-in is refused.
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
	// UserID is that user's SCIM id (store.User.ID), which a session
	// records at sign-in: it follows this user, not the userName (see
	// Server.liveSession). An Authorizer that leaves it "" has its sessions
	// bound to the user holding the userName when they are first checked.
	UserID   string
	Roles    []Grant
	Versions []Grant
}

// Grant is one role or application version and how the user got it.
type Grant struct {
	Name string
	// Via is "direct (assignment <name>)" or "group <displayName>
	// (assignment <name>)".
	Via string
}

// AccessAuthorizer decides from effective access (runtime/access), the
// one place idrecon's access rules live, so that sign-in and "who may do
// what" can never disagree: the user must be provisioned, active and hold
// a role.
type AccessAuthorizer struct {
	Store *store.Store
}

var _ Authorizer = AccessAuthorizer{}

// Authorize implements Authorizer.
func (a AccessAuthorizer) Authorize(_ context.Context, userName string) (Decision, error) {
	e, err := access.ForUser(a.Store.Read(), userName)
	if errors.Is(err, access.ErrUnknownUser) {
		return Decision{Reason: ReasonUnknownUser}, nil
	}
	if err != nil {
		return Decision{}, err
	}
	d := Decision{UserName: e.UserName, UserID: e.UserID, Allowed: e.HasAccess()}
	switch {
	case !e.Active:
		d.Reason = ReasonUserDisabled
	case !e.HasRole():
		d.Reason = ReasonNoRole
	}
	for _, r := range e.Roles() {
		d.Roles = append(d.Roles, Grant{Name: r.Role, Via: grantVia(r.Group, r.Assignment)})
	}
	for _, v := range e.Versions() {
		d.Versions = append(d.Versions, Grant{Name: v.Application + "/" + v.Version, Via: grantVia(v.Group, v.Assignment)})
	}
	return d, nil
}

func grantVia(group, assignment string) string {
	if group == "" {
		return "direct (assignment " + assignment + ")"
	}
	return "group " + group + " (assignment " + assignment + ")"
}
