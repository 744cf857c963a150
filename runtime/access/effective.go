package access

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// Errors callers test for.
var (
	ErrUnknownUser        = errors.New("access: unknown user")
	ErrUnknownGroup       = errors.New("access: unknown group")
	ErrUnknownApplication = errors.New("access: unknown application")
	ErrUnknownVersion     = errors.New("access: unknown application version")
)

// Reasons an assignment is pending.
const (
	// ReasonNotProvisioned: no user or group of that name exists.
	ReasonNotProvisioned = "not provisioned"
	// ReasonDeleted: the group the assignment was bound to was deleted.
	ReasonDeleted = "deleted"
)

// RoleGrant is one role a user holds and where it comes from.
type RoleGrant struct {
	Role       string `json:"role"`
	Assignment string `json:"assignment"`
	// Group is the displayName of the group it comes through, "" when the
	// assignment names the user.
	Group string `json:"group,omitempty"`
}

// VersionGrant is one application version a user is assigned and where it
// comes from.
type VersionGrant struct {
	Application string `json:"application"`
	Version     string `json:"version"`
	Assignment  string `json:"assignment"`
	Group       string `json:"group,omitempty"`
	// Via is the spec entry that grants it: "app/version" or "app/*".
	Via string `json:"via"`
}

// Effective is a user's effective access. Its roles and versions are
// ordered by source: direct assignments first, then groups by displayName;
// within a source by assignment, then role or application and version.
//
// The grants of each group are shared with the memoised group sources
// rather than copied: a user in hundreds of groups holds hundreds of grants,
// and copying them was most of the cost of a query (and of the garbage it
// left). Roles and Versions flatten them for display.
type Effective struct {
	UserName string
	UserID   string
	Active   bool
	direct   groupSource
	groups   []*groupSource
}

// sources yields the sources in order: direct, then the groups.
func (e *Effective) sources(yield func(*groupSource) bool) {
	if !yield(&e.direct) {
		return
	}
	for _, g := range e.groups {
		if !yield(g) {
			return
		}
	}
}

// Roles returns every role grant, in order.
func (e *Effective) Roles() []RoleGrant {
	out := []RoleGrant{}
	for s := range e.sources {
		out = append(out, s.roles...)
	}
	return out
}

// Versions returns every version grant, in order.
func (e *Effective) Versions() []VersionGrant {
	out := []VersionGrant{}
	for s := range e.sources {
		out = append(out, s.versions...)
	}
	return out
}

// HasRole reports whether any role reaches the user.
func (e *Effective) HasRole() bool {
	for s := range e.sources {
		if len(s.roles) > 0 {
			return true
		}
	}
	return false
}

// HasAccess reports whether the user may sign in to Application Security:
// they are active and at least one role reaches them.
func (e *Effective) HasAccess() bool { return e.Active && e.HasRole() }

// effectiveJSON is Effective's JSON form.
type effectiveJSON struct {
	UserName  string         `json:"userName"`
	UserID    string         `json:"userId"`
	Active    bool           `json:"active"`
	Roles     []RoleGrant    `json:"roles"`
	Versions  []VersionGrant `json:"versions"`
	HasAccess bool           `json:"hasAccess"`
}

// MarshalJSON writes the grants flattened, and hasAccess.
func (e *Effective) MarshalJSON() ([]byte, error) {
	return json.Marshal(effectiveJSON{UserName: e.UserName, UserID: e.UserID, Active: e.Active,
		Roles: e.Roles(), Versions: e.Versions(), HasAccess: e.HasAccess()})
}

// UnmarshalJSON reads what MarshalJSON writes, for API clients.
func (e *Effective) UnmarshalJSON(b []byte) error {
	var j effectiveJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*e = Effective{UserName: j.UserName, UserID: j.UserID, Active: j.Active,
		direct: groupSource{roles: j.Roles, versions: j.Versions}}
	return nil
}

// RoleNames returns the distinct roles, sorted.
func (e *Effective) RoleNames() []string {
	var out []string
	for s := range e.sources {
		for _, r := range s.roles {
			out = append(out, r.Role)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// VersionNames returns the distinct "app/version" pairs, sorted.
func (e *Effective) VersionNames() []string {
	var out []string
	for s := range e.sources {
		for _, v := range s.versions {
			out = append(out, v.Application+"/"+v.Version)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ForUser returns the effective access of the user with userName
// (case-insensitive), or ErrUnknownUser. The result may be shared with other
// callers and must not be modified.
func ForUser(txn *store.Txn, userName string) (*Effective, error) {
	snap := snapshot(txn)
	u, err := snap.UserByName(userName)
	if err != nil {
		return nil, fmt.Errorf("look up user: %w", err)
	}
	if u == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownUser, userName)
	}
	c, err := catalogOf(snap)
	if err != nil {
		return nil, err
	}
	key, ok, err := scimKeyOf(snap, c)
	if err != nil {
		return nil, err
	}
	if ok {
		if ok, err = asStored(snap, u); err != nil {
			return nil, err
		}
	}
	if ok {
		if e := effectiveMemo.get(key, u); e != nil {
			return e, nil
		}
	}
	e, err := effectiveOf(snap, c, u)
	if err == nil && ok {
		effectiveMemo.put(key, u, e)
	}
	return e, err
}

// scimKey identifies everything effective access reads besides the user
// row: the groups and memberships tables (by the watch channels of their
// radix roots, which every write replaces) and the catalog.
type scimKey struct {
	groups, members <-chan struct{}
	cat             *catalog
}

func scimKeyOf(snap *store.Txn, c *catalog) (scimKey, bool, error) {
	g, err := watch(snap, store.TableGroups, store.IndexID)
	if err != nil {
		return scimKey{}, false, err
	}
	m, err := watch(snap, store.TableMemberOf, store.IndexID)
	if err != nil {
		return scimKey{}, false, err
	}
	return scimKey{groups: g, members: m, cat: c}, g != nil && m != nil, nil
}

// asStored reports whether the groups u is in are, in snap, those of snap's
// stored memberships, which the memo key stands for. A write transaction
// keeps the memberships it changed apart until its batch commits (see
// snapshot): an answer from them is not one to share with the readers of
// the stored rows, nor to take from them. (A user row the write changed is
// a row no reader of the stored ones looks up.)
func asStored(snap *store.Txn, u *store.User) (bool, error) {
	if !snap.MembershipsPending() {
		return true, nil // every read, and a write that changed none
	}
	a, err := snap.GroupIDsOf(u.ID)
	if err != nil {
		return false, err
	}
	b, err := (&store.Txn{Txn: snap.Txn}).GroupIDsOf(u.ID)
	if err != nil {
		return false, err
	}
	// The lists are shared with the store, and a changed one is a new list.
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0]), nil
}

// userMemo keeps effective access per user row for one scimKey. A SAML
// session re-checks access on every request, and between SCIM writes or
// spec changes the answer cannot change; any such write starts a new key.
// Stored rows are immutable, so a user row pointer stands for its contents.
type userMemo struct {
	mu  sync.Mutex
	key scimKey
	m   map[*store.User]*Effective
}

// maxMemoUsers bounds the memo; past it, it starts over.
const maxMemoUsers = 10_000

var effectiveMemo userMemo

func (m *userMemo) get(key scimKey, u *store.User) *Effective {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.key != key {
		return nil
	}
	return m.m[u]
}

func (m *userMemo) put(key scimKey, u *store.User, e *Effective) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.key != key || len(m.m) >= maxMemoUsers {
		m.key, m.m = key, make(map[*store.User]*Effective)
	}
	m.m[u] = e
}

// effectiveOf computes u's effective access. c must be txn's catalog (see
// catalogOf): the group sources are memoised for it, and another would have
// them built for every call.
func effectiveOf(txn *store.Txn, c *catalog, u *store.User) (*Effective, error) {
	sources, err := groupSourcesOf(txn, c)
	if err != nil {
		return nil, err
	}
	gids, err := txn.GroupIDsOf(u.ID)
	if err != nil {
		return nil, fmt.Errorf("look up groups of %s: %w", u.UserName, err)
	}
	// Grants come out by source, which needs only the sources sorted (a
	// source holds its grants in order).
	groups := make([]*groupSource, 0, len(gids))
	for _, gid := range gids {
		if s := sources[gid]; s != nil {
			groups = append(groups, s)
		}
	}
	slices.SortFunc(groups, func(a, b *groupSource) int { return cmp.Compare(a.rank, b.rank) })
	e := &Effective{UserName: u.UserName, UserID: u.ID, Active: u.Active, groups: groups}
	if direct := c.byUserName[store.Fold(u.UserName)]; len(direct) > 0 {
		e.direct.roles, e.direct.versions = render(nil, nil, direct, "")
	}
	return e, nil
}

// hasRole reports whether any role reaches u.
func hasRole(txn *store.Txn, c *catalog, sources groupSources, u *store.User) (bool, error) {
	for _, g := range c.byUserName[store.Fold(u.UserName)] {
		if len(g.roles) > 0 {
			return true, nil
		}
	}
	gids, err := txn.GroupIDsOf(u.ID)
	if err != nil {
		return false, fmt.Errorf("look up groups of %s: %w", u.UserName, err)
	}
	for _, gid := range gids {
		if s := sources[gid]; s != nil && len(s.roles) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// PendingAssignment is an assignment whose subject does not exist.
type PendingAssignment struct {
	Assignment string       `json:"assignment"`
	Subject    spec.Subject `json:"subject"`
	// Reason is ReasonNotProvisioned or ReasonDeleted.
	Reason string `json:"reason"`
}

// Pending returns the assignments waiting for their user or group, sorted by
// assignment name.
func Pending(txn *store.Txn) ([]PendingAssignment, error) {
	snap := snapshot(txn)
	cat, err := catalogOf(snap)
	if err != nil {
		return nil, err
	}
	out := []PendingAssignment{}
	for _, g := range cat.grants {
		reason := ""
		if g.isGroup() {
			grp, deleted, err := cat.target(snap, g)
			if err != nil {
				return nil, fmt.Errorf("look up group: %w", err)
			}
			switch {
			case grp != nil:
			case deleted:
				reason = ReasonDeleted
			default:
				reason = ReasonNotProvisioned
			}
		} else {
			u, err := snap.UserByName(g.subject.User)
			if err != nil {
				return nil, fmt.Errorf("look up user: %w", err)
			}
			if u == nil {
				reason = ReasonNotProvisioned
			}
		}
		if reason != "" {
			out = append(out, PendingAssignment{Assignment: g.name, Subject: g.subject, Reason: reason})
		}
	}
	return out, nil
}

// GroupRename is drift: an assignment still names a group by a displayName
// the group no longer has. The assignment keeps applying to the group.
type GroupRename struct {
	Assignment      string `json:"assignment"`
	From            string `json:"from"`
	To              string `json:"to"`
	GroupID         string `json:"groupId"`
	GroupExternalID string `json:"groupExternalId,omitempty"`
	// Suggestion is the spec change that resolves the drift.
	Suggestion string `json:"suggestion"`
}

// Renames returns the assignments whose group was renamed, sorted by
// assignment name.
func Renames(txn *store.Txn) ([]GroupRename, error) {
	snap := snapshot(txn)
	cat, err := catalogOf(snap)
	if err != nil {
		return nil, err
	}
	out := []GroupRename{}
	for _, g := range cat.grants {
		// Only a binding can make an assignment apply to a group of another name.
		if b, ok := cat.bindings[g.name]; !ok || !g.isGroup() || !b.madeFor(g.key) {
			continue
		}
		grp, _, err := cat.target(snap, g)
		if err != nil {
			return nil, fmt.Errorf("look up group: %w", err)
		}
		if grp == nil || store.Fold(grp.DisplayName) == g.key {
			continue
		}
		out = append(out, GroupRename{
			Assignment:      g.name,
			From:            g.subject.Group,
			To:              grp.DisplayName,
			GroupID:         grp.ID,
			GroupExternalID: grp.ExternalID,
			Suggestion:      fmt.Sprintf("rename subject.group from %q to %q", g.subject.Group, grp.DisplayName),
		})
	}
	return out, nil
}
