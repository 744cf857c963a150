package gateway

import (
	"context"
	"errors"

	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/runtime/store"
)

// ErrUnknownUser is returned by a Decider for a user that does not exist
// (any more): deleted in Entra, say.
var ErrUnknownUser = errors.New("gateway: unknown user")

// Access is what a Decider knows about a user right now.
type Access struct {
	// UserName is the stored spelling of the name, sent upstream.
	UserName string
	Active   bool
	// Roles are the distinct role names, sorted.
	Roles []string
	// Versions are the distinct "app/version" pairs, sorted.
	Versions []string
}

// Decider reports a user's current access. The Gateway asks it on every
// request and keeps no answer, so a user disabled, deleted or stripped of
// their last role is refused on their next request.
type Decider interface {
	Access(ctx context.Context, userName string) (Access, error)
}

// DeciderFunc adapts a function to Decider.
type DeciderFunc func(ctx context.Context, userName string) (Access, error)

// Access calls f.
func (f DeciderFunc) Access(ctx context.Context, userName string) (Access, error) {
	return f(ctx, userName)
}

// StoreDecider reads effective access from the store, as the SAML sign-in
// and the admin API do, so the front door can never disagree with them.
type StoreDecider struct {
	Store *store.Store
}

// Access implements Decider.
func (d StoreDecider) Access(_ context.Context, userName string) (Access, error) {
	e, err := access.ForUser(d.Store.Read(), userName)
	if errors.Is(err, access.ErrUnknownUser) {
		return Access{}, ErrUnknownUser
	}
	if err != nil {
		return Access{}, err
	}
	return Access{UserName: e.UserName, Active: e.Active, Roles: e.RoleNames(), Versions: e.VersionNames()}, nil
}
