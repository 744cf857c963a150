package access

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/idrecon/idrecon/runtime/store"
)

// Path is one way a user reaches an application version.
type Path struct {
	Assignment string `json:"assignment"`
	// Group is the displayName of the group, "" for a direct assignment.
	Group string `json:"group,omitempty"`
	// Via is the spec entry: "app/version" or "app/*".
	Via string `json:"via"`
}

// ReachingUser is a user who can reach a version, and every way they do.
type ReachingUser struct {
	UserName string `json:"userName"`
	UserID   string `json:"userId"`
	Paths    []Path `json:"paths"`
}

// Reach lists the users who can reach one application version: active, with
// a role, and assigned the version directly or through a group.
type Reach struct {
	Application string         `json:"application"`
	Version     string         `json:"version"`
	Users       []ReachingUser `json:"users"`
}

// ReachPage is one page of a Reach, in the same order.
type ReachPage struct {
	Application string `json:"application"`
	Version     string `json:"version"`
	// Total counts the users of every page.
	Total int            `json:"total"`
	Users []ReachingUser `json:"users"`
	// Next is the cursor of the following page (after), "" on the last.
	Next string `json:"next,omitempty"`
}

// WhoCanReach returns every user who can reach app/version and how, in
// userName order (case-insensitive). It returns ErrUnknownApplication or
// ErrUnknownVersion when the spec does not define it.
func WhoCanReach(txn *store.Txn, app, version string) (*Reach, error) {
	q, err := newReachQuery(txn, app, version)
	if err != nil {
		return nil, err
	}
	all := make([]reacher, len(q.users))
	for i, u := range q.users {
		all[i] = reacher{key: store.Fold(u.UserName), u: u}
	}
	slices.SortFunc(all, compareReachers)
	reach := &Reach{Application: app, Version: version, Users: make([]ReachingUser, 0, len(all))}
	if reach.Users, err = q.render(reach.Users, all); err != nil {
		return nil, err
	}
	return reach, nil
}

// WhoCanReachPage is one page of WhoCanReach: up to limit users (at most
// MaxPage) whose folded userName (store.Fold) comes after the cursor after
// ("" for the first page), and how many users can reach the version in
// all. Every user is counted, but only the page's users are sorted into
// place and have their ways in listed, so a page of a version the whole
// tenant reaches costs a fraction of the whole list.
func WhoCanReachPage(txn *store.Txn, app, version, after string, limit int) (*ReachPage, error) {
	q, err := newReachQuery(txn, app, version)
	if err != nil {
		return nil, err
	}
	if limit <= 0 || limit > MaxPage {
		limit = MaxPage
	}
	after = store.Fold(after)
	// The page and the user after it, which says whether a page follows.
	page := make([]reacher, 0, limit+1)
	var buf []byte
	for _, u := range q.users {
		buf = store.AppendFold(buf[:0], u.UserName)
		if after != "" && string(buf) <= after {
			continue
		}
		if len(page) > limit && string(buf) >= page[limit].key {
			continue
		}
		r := reacher{key: string(buf), u: u}
		i, _ := slices.BinarySearchFunc(page, r, compareReachers)
		page = slices.Insert(page, i, r)
		page = page[:min(len(page), limit+1)]
	}
	p := &ReachPage{Application: app, Version: version, Total: len(q.users)}
	if len(page) > limit {
		page = page[:limit]
		p.Next = page[limit-1].key
	}
	if p.Users, err = q.render(make([]ReachingUser, 0, len(page)), page); err != nil {
		return nil, err
	}
	return p, nil
}

// reacher is a user who can reach the version, with their sort key.
type reacher struct {
	key string // store.Fold of the userName
	u   *store.User
}

func compareReachers(a, b reacher) int { return strings.Compare(a.key, b.key) }

// reachQuery is who can reach one version, before their ways in are
// listed.
type reachQuery struct {
	snap *store.Txn
	// byGroup holds the paths through each group that a grant of the
	// version applies to, by group id; direct the paths of assignments
	// naming a user, by user id.
	byGroup map[string][]Path
	direct  map[string][]Path
	// users can reach the version: active, some role reaches them, and a
	// path leads to them. In no order.
	users []*store.User
}

func newReachQuery(txn *store.Txn, app, version string) (*reachQuery, error) {
	snap := snapshot(txn)
	cat, err := catalogOf(snap)
	if err != nil {
		return nil, err
	}
	versions, ok := cat.apps[app]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownApplication, app)
	}
	if !slices.Contains(versions, version) {
		return nil, fmt.Errorf("%w: %q", ErrUnknownVersion, app+"/"+version)
	}
	sources, err := groupSourcesOf(snap, cat)
	if err != nil {
		return nil, err
	}
	q := &reachQuery{snap: snap, byGroup: make(map[string][]Path), direct: make(map[string][]Path)}
	// Whether a user reaches the version does not depend on the path that
	// found them (a role from anywhere counts), so each is decided once;
	// members that are groups are remembered too.
	decided := make(map[string]bool)
	admit := func(u *store.User, roleOnPath bool) error {
		if !u.Active {
			return nil
		}
		if !roleOnPath {
			ok, err := hasRole(snap, cat, sources, u)
			if err != nil || !ok {
				return err
			}
		}
		q.users = append(q.users, u)
		return nil
	}
	for _, g := range cat.byApp[app] {
		via := ""
		for _, v := range g.versions {
			if v.app == app && v.version == version {
				via = v.via
				break
			}
		}
		if via == "" {
			continue
		}
		if !g.isGroup() {
			u, err := snap.UserByName(g.subject.User)
			if err != nil {
				return nil, fmt.Errorf("look up user: %w", err)
			}
			if u == nil {
				continue
			}
			q.direct[u.ID] = append(q.direct[u.ID], Path{Assignment: g.name, Via: via})
			if !decided[u.ID] {
				decided[u.ID] = true
				if err := admit(u, len(g.roles) > 0); err != nil {
					return nil, err
				}
			}
			continue
		}
		grp, _, err := cat.target(snap, g)
		if err != nil {
			return nil, fmt.Errorf("look up group: %w", err)
		}
		if grp == nil {
			continue
		}
		q.byGroup[grp.ID] = append(q.byGroup[grp.ID], Path{Assignment: g.name, Group: grp.DisplayName, Via: via})
		// A role the group itself grants reaches every member, which spares
		// checking each member's other groups.
		src := sources[grp.ID]
		groupRole := src != nil && len(src.roles) > 0
		members, err := snap.MemberIDsOf(grp.ID)
		if err != nil {
			return nil, fmt.Errorf("look up members of %s: %w", grp.DisplayName, err)
		}
		for id := range members.All() {
			if decided[id] {
				continue
			}
			decided[id] = true
			u, err := snap.UserByID(id)
			if err != nil {
				return nil, fmt.Errorf("look up user: %w", err)
			}
			if u == nil {
				continue // nested groups are members too, and reach nothing
			}
			if err := admit(u, groupRole); err != nil {
				return nil, err
			}
		}
	}
	return q, nil
}

// render appends the users of rs, in order, with their paths: their direct
// ones, then those through the groups they are members of, by group and
// assignment.
func (q *reachQuery) render(out []ReachingUser, rs []reacher) ([]ReachingUser, error) {
	for _, r := range rs {
		paths := slices.Clone(q.direct[r.u.ID])
		gids, err := q.snap.GroupIDsOf(r.u.ID)
		if err != nil {
			return nil, fmt.Errorf("look up groups of %s: %w", r.u.UserName, err)
		}
		for _, gid := range gids {
			paths = append(paths, q.byGroup[gid]...)
		}
		slices.SortFunc(paths, func(a, b Path) int {
			return cmp.Or(strings.Compare(a.Group, b.Group), strings.Compare(a.Assignment, b.Assignment))
		})
		out = append(out, ReachingUser{UserName: r.u.UserName, UserID: r.u.ID, Paths: paths})
	}
	return out, nil
}
