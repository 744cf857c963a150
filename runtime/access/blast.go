package access

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// SampleSize bounds the user names an AccessChange lists.
const SampleSize = 10

// Impact is the blast radius of a change of assignments on the live users
// and groups.
type Impact struct {
	// Users is how many users gain or lose anything.
	Users   int            `json:"users"`
	Changes []AccessChange `json:"changes"`
}

// AccessChange counts the users who gain or lose one role or version.
type AccessChange struct {
	Kind     string   `json:"kind"` // "role" or "version"
	Name     string   `json:"name"` // the role, or "app/version"
	Gained   int      `json:"gained"`
	Lost     int      `json:"lost"`
	GainedBy []string `json:"gainedBy,omitempty"` // first SampleSize, sorted
	LostBy   []string `json:"lostBy,omitempty"`
}

// BlastRadius compares the access that two spec revisions give the users and
// groups in txn. before and after are the documents of the two revisions;
// nil stands for what the store holds now. In a non-nil list the
// AccessAssignment documents are the complete set of assignments, and the
// Application and Role documents the complete sets of applications and of
// roles besides the builtin ones (the store's when the list has none of the
// kind, and for applications only when it has no Role document either, as
// every spec set holds the builtin roles): an apply deletes the rest, and an
// assignment it keeps grants nothing of a role or application it deletes.
// keep names resources an apply of after leaves as the store holds them
// (the drift report mode keeps: reconcile's Plan.Kept); after counts them
// as they are live.
//
// Only users that a changed assignment names, directly or through its group,
// are evaluated. Access is counted whether or not the user is active (a
// disabled user gets it back when re-enabled), and versions count only for
// users some role reaches.
func BlastRadius(txn *store.Txn, before, after []*spec.Document, keep ...spec.Ref) (*Impact, error) {
	snap := snapshot(txn)
	live, err := readSpec(snap)
	if err != nil {
		return nil, err
	}
	cb := newCatalog(revision(live, before))
	ca := newCatalog(keepLive(revision(live, after), live, keep))

	changed, err := changedGrants(snap, cb, ca)
	if err != nil {
		return nil, err
	}
	affected := make(map[string]*store.User)
	for _, name := range changed {
		for _, c := range []*catalog{cb, ca} {
			if err := subjectsOf(snap, c, name, affected); err != nil {
				return nil, err
			}
		}
	}

	changes := make(map[[2]string]*AccessChange)
	touched := 0
	for _, u := range affected {
		b, err := accessItems(snap, cb, u)
		if err != nil {
			return nil, err
		}
		a, err := accessItems(snap, ca, u)
		if err != nil {
			return nil, err
		}
		moved := false
		note := func(item [2]string, gained bool) {
			c := changes[item]
			if c == nil {
				c = &AccessChange{Kind: item[0], Name: item[1]}
				changes[item] = c
			}
			if gained {
				c.Gained++
				c.GainedBy = append(c.GainedBy, u.UserName)
			} else {
				c.Lost++
				c.LostBy = append(c.LostBy, u.UserName)
			}
			moved = true
		}
		for item := range a {
			if !b[item] {
				note(item, true)
			}
		}
		for item := range b {
			if !a[item] {
				note(item, false)
			}
		}
		if moved {
			touched++
		}
	}
	imp := &Impact{Users: touched, Changes: []AccessChange{}}
	for _, c := range changes {
		c.GainedBy = sample(c.GainedBy)
		c.LostBy = sample(c.LostBy)
		imp.Changes = append(imp.Changes, *c)
	}
	slices.SortFunc(imp.Changes, func(x, y AccessChange) int {
		return cmp.Or(strings.Compare(x.Kind, y.Kind), strings.Compare(x.Name, y.Name))
	})
	return imp, nil
}

func sample(names []string) []string {
	slices.SortFunc(names, func(a, b string) int { return strings.Compare(store.Fold(a), store.Fold(b)) })
	if len(names) > SampleSize {
		names = names[:SampleSize]
	}
	return names
}

// revision is the spec input of a document list, falling back to live.
func revision(live specInput, docs []*spec.Document) specInput {
	if docs == nil {
		return live
	}
	in := specInput{
		assignments: make(map[string]*spec.AccessAssignment),
		roles:       make(map[string]bool),
		apps:        make(map[string][]string),
		bindings:    live.bindings,
	}
	for _, d := range docs {
		switch s := d.Spec.(type) {
		case *spec.AccessAssignment:
			in.assignments[d.Metadata.Name] = s
		case *spec.Application:
			in.apps[d.Metadata.Name] = s.Versions
		case *spec.Role:
			in.roles[d.Metadata.Name] = true
		}
	}
	// A list with Role documents is a whole spec set (spec.Load and
	// spec.Validate add the builtin roles to every set), so its applications
	// are every application even when it has none: falling back to the
	// store's then kept the applications an apply deletes, and an assignment
	// the apply keeps went on granting their versions.
	if len(in.apps) == 0 && len(in.roles) == 0 {
		in.apps = live.apps
	}
	if len(in.roles) == 0 {
		in.roles = maps.Clone(live.roles)
	}
	for name := range spec.BuiltinRoles {
		in.roles[name] = true
	}
	return in
}

// keepLive returns in with the resources keep names as live holds them
// (or absent, as live has none): an apply leaves them as they are.
func keepLive(in, live specInput, keep []spec.Ref) specInput {
	if len(keep) == 0 {
		return in
	}
	in.assignments, in.roles, in.apps = maps.Clone(in.assignments), maps.Clone(in.roles), maps.Clone(in.apps)
	for _, r := range keep {
		switch r.Kind {
		case spec.KindAccessAssignment:
			setOrDelete(in.assignments, live.assignments, r.Name)
		case spec.KindRole:
			setOrDelete(in.roles, live.roles, r.Name)
		case spec.KindApplication:
			setOrDelete(in.apps, live.apps, r.Name)
		}
	}
	return in
}

func setOrDelete[V any](m, from map[string]V, key string) {
	if v, ok := from[key]; ok {
		m[key] = v
	} else {
		delete(m, key)
	}
}

// changedGrants names the assignments whose effect differs between the
// catalogs cb and ca.
func changedGrants(txn *store.Txn, cb, ca *catalog) ([]string, error) {
	index := func(c *catalog) map[string]*grant {
		m := make(map[string]*grant, len(c.grants))
		for _, g := range c.grants {
			m[g.name] = g
		}
		return m
	}
	mb, ma := index(cb), index(ca)
	var out []string
	for name, b := range mb {
		a, ok := ma[name]
		if !ok || !sameEffect(b, a) {
			out = append(out, name)
			continue
		}
		if b.isGroup() {
			tb, _, err := cb.target(txn, b)
			if err != nil {
				return nil, fmt.Errorf("look up group: %w", err)
			}
			ta, _, err := ca.target(txn, a)
			if err != nil {
				return nil, fmt.Errorf("look up group: %w", err)
			}
			if tb != ta {
				out = append(out, name)
			}
		}
	}
	for name := range ma {
		if _, ok := mb[name]; !ok {
			out = append(out, name)
		}
	}
	return out, nil
}

func sameEffect(a, b *grant) bool {
	if a.isGroup() != b.isGroup() || a.key != b.key || !slices.Equal(a.roles, b.roles) || len(a.versions) != len(b.versions) {
		return false
	}
	for i := range a.versions {
		if a.versions[i].app != b.versions[i].app || a.versions[i].version != b.versions[i].version {
			return false
		}
	}
	return true
}

// subjectsOf adds the users assignment name reaches under c to into.
func subjectsOf(txn *store.Txn, c *catalog, name string, into map[string]*store.User) error {
	i, found := slices.BinarySearchFunc(c.grants, name, func(g *grant, n string) int { return strings.Compare(g.name, n) })
	if !found {
		return nil
	}
	g := c.grants[i]
	if !g.isGroup() {
		u, err := txn.UserByName(g.subject.User)
		if err != nil {
			return fmt.Errorf("look up user: %w", err)
		}
		if u != nil {
			into[u.ID] = u
		}
		return nil
	}
	grp, _, err := c.target(txn, g)
	if err != nil {
		return fmt.Errorf("look up group: %w", err)
	}
	if grp == nil {
		return nil
	}
	ids, err := txn.MemberIDsOf(grp.ID)
	if err != nil {
		return fmt.Errorf("look up members of %s: %w", grp.DisplayName, err)
	}
	for id := range ids.All() {
		if _, ok := into[id]; ok {
			continue
		}
		u, err := txn.UserByID(id)
		if err != nil {
			return fmt.Errorf("look up user: %w", err)
		}
		if u != nil {
			into[id] = u
		}
	}
	return nil
}

// accessItems is the set of roles and (when a role reaches the user)
// versions u holds under c. It reads u's groups one by one: the group
// sources that effectiveOf reads are memoised for the store's catalog only,
// and building them for c would cost more than all of BlastRadius.
func accessItems(txn *store.Txn, c *catalog, u *store.User) (map[[2]string]bool, error) {
	grants := slices.Clip(c.byUserName[store.Fold(u.UserName)])
	gids, err := txn.GroupIDsOf(u.ID)
	if err != nil {
		return nil, fmt.Errorf("look up groups of %s: %w", u.UserName, err)
	}
	var buf []byte
	for _, gid := range gids {
		grp, err := txn.GroupByID(gid)
		if err != nil {
			return nil, fmt.Errorf("look up group: %w", err)
		}
		if grp == nil {
			continue
		}
		gs, err := c.grantsOf(txn, grp, &buf)
		if err != nil {
			return nil, fmt.Errorf("look up grants of %s: %w", grp.DisplayName, err)
		}
		grants = append(grants, gs...)
	}
	items := make(map[[2]string]bool)
	for _, g := range grants {
		for _, role := range g.roles {
			items[[2]string{"role", role}] = true
		}
	}
	if len(items) > 0 {
		for _, g := range grants {
			for _, v := range g.versions {
				items[[2]string{"version", v.app + "/" + v.version}] = true
			}
		}
	}
	return items, nil
}
