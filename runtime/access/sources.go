package access

import (
	"fmt"
	"slices"
	"strings"

	"github.com/idrecon/idrecon/runtime/store"
)

// groupSource is what one group gives its members: grantsOf the group,
// rendered as effective access lists it.
type groupSource struct {
	// rank is the group's position by displayName among the sources, so
	// that ordering a user's groups compares ints rather than names.
	rank     int
	roles    []RoleGrant
	versions []VersionGrant
}

// groupSources is the groupSource of every group that assignments apply to,
// by group id. Without it a user in hundreds of groups costs a query
// hundreds of group lookups and grantsOf calls, and reading grants scattered
// over the heap; the rendered grants of all sources are instead laid out in
// rank order in two arrays.
type groupSources map[string]*groupSource

// newGroupSources applies grantsOf to the groups that can have grants: those
// bindings name, and those named by an assignment that no binding holds.
// Looking these up, rather than scanning the groups, keeps the cost in
// proportion to the assignments.
func newGroupSources(txn *store.Txn, c *catalog) (groupSources, error) {
	type found struct {
		id, displayName string
		grants          []*grant
	}
	groups := make([]found, 0, len(c.byBoundGroup))
	byID := make(map[string]bool, len(c.byBoundGroup))
	var buf []byte
	add := func(grp *store.Group) error {
		gs, err := c.grantsOf(txn, grp, &buf)
		if err != nil {
			return fmt.Errorf("look up grants of %s: %w", grp.DisplayName, err)
		}
		if len(gs) > 0 {
			groups = append(groups, found{grp.ID, grp.DisplayName, gs})
			byID[grp.ID] = true
		}
		return nil
	}
	for id := range c.byBoundGroup {
		grp, err := txn.GroupByID(id)
		if err != nil {
			return nil, fmt.Errorf("look up group: %w", err)
		}
		if grp != nil {
			// Its bound grants make it a source.
			if err := add(grp); err != nil {
				return nil, err
			}
		}
	}
	for key, gs := range c.byGroupName {
		for _, g := range gs {
			// A binding applies while its group exists, and that group is
			// a source by now.
			if id := c.boundTo[g.idx]; id != "" && byID[id] {
				continue
			}
			grp, err := txn.GroupByName(key)
			if err != nil {
				return nil, fmt.Errorf("look up group: %w", err)
			}
			if grp != nil && !byID[grp.ID] {
				if err := add(grp); err != nil {
					return nil, err
				}
			}
			break // grantsOf found the others of this name
		}
	}
	slices.SortFunc(groups, func(a, b found) int { return strings.Compare(a.displayName, b.displayName) })
	nr, nv := 0, 0
	for _, f := range groups {
		for _, g := range f.grants {
			nr += len(g.roles)
			nv += len(g.versions)
		}
	}
	srcs := make([]groupSource, len(groups))
	roles := make([]RoleGrant, 0, nr)
	versions := make([]VersionGrant, 0, nv)
	out := make(groupSources, len(groups))
	for i, f := range groups {
		r, v := len(roles), len(versions)
		roles, versions = render(roles, versions, f.grants, f.displayName)
		srcs[i] = groupSource{rank: i, roles: roles[r:len(roles):len(roles)], versions: versions[v:len(versions):len(versions)]}
		out[f.id] = &srcs[i]
	}
	return out, nil
}

// render appends what grants give through group ("" for assignments naming
// the user) in effective access's order.
func render(roles []RoleGrant, versions []VersionGrant, grants []*grant, group string) ([]RoleGrant, []VersionGrant) {
	for _, g := range grants {
		for _, role := range g.roles {
			roles = append(roles, RoleGrant{Role: role, Assignment: g.name, Group: group})
		}
		for _, v := range g.versions {
			versions = append(versions, VersionGrant{Application: v.app, Version: v.version, Assignment: g.name, Group: group, Via: v.via})
		}
	}
	return roles, versions
}

type groupsKey struct {
	cat    *catalog
	groups <-chan struct{}
}

// sourceSets is package state for the reasons given for the catalog memos.
var sourceSets memo[groupsKey, groupSources]

// groupSourcesOf returns the group sources of a frozen snapshot (see
// snapshot) and its catalog. They are rebuilt after any change to the groups
// table or the catalog, except bindings that leave every assignment applying
// where it did.
func groupSourcesOf(txn *store.Txn, c *catalog) (groupSources, error) {
	ch, err := watch(txn, store.TableGroups, store.IndexID)
	if err != nil {
		return nil, err
	}
	if ch == nil {
		return newGroupSources(txn, c)
	}
	return sourceSets.get(groupsKey{cat: c, groups: ch}, func() (groupSources, error) {
		// The Binder binds assignments to the groups they apply to, which
		// changes no group's grants, one binding at a time while groups
		// arrive.
		if last := sourceSets.last.Load(); last != nil && last.key.groups == ch {
			same, err := sameTargets(txn, last.key.cat, c)
			if err != nil {
				return nil, err
			}
			if same {
				return last.val, nil
			}
		}
		return newGroupSources(txn, c)
	})
}

// sameTargets reports whether every assignment applies to the same group in
// txn under catalogs a and b. The assignments that apply to a group are its
// grants (see grantsOf), so a and b then give the groups the same sources.
func sameTargets(txn *store.Txn, a, b *catalog) (bool, error) {
	if a.specCatalog != b.specCatalog {
		return false, nil
	}
	for _, g := range a.grants {
		// Only a binding can change where an assignment applies.
		if a.boundTo[g.idx] == b.boundTo[g.idx] {
			continue
		}
		ta, _, err := a.target(txn, g)
		if err != nil {
			return false, fmt.Errorf("look up group: %w", err)
		}
		tb, _, err := b.target(txn, g)
		if err != nil {
			return false, fmt.Errorf("look up group: %w", err)
		}
		if ta != tb {
			return false, nil
		}
	}
	return true, nil
}
