package access_test

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// model is an independent, deliberately naive statement of the access rules:
// it scans everything for every question.
type model struct {
	users       map[string]*mUser  // id →
	groups      map[string]string  // id → displayName
	members     map[[2]string]bool // {groupID, memberID}
	apps        map[string][]string
	roles       map[string]bool
	assignments map[string]mAssignment
	bindings    map[string]mBinding // assignment →
}

type mUser struct {
	name   string
	active bool
}

type mAssignment struct {
	group    bool
	subject  string
	roles    []string
	versions []string
}

type mBinding struct {
	subject string // as the assignment named it; compared case-insensitively
	groupID string
}

func (m *model) groupNamed(name string) string {
	for id, n := range m.groups {
		if strings.EqualFold(n, name) {
			return id
		}
	}
	return ""
}

func (m *model) userNamed(name string) string {
	for id, u := range m.users {
		if strings.EqualFold(u.name, name) {
			return id
		}
	}
	return ""
}

// target is the group an assignment applies to, and whether its bound group
// was deleted.
func (m *model) target(name string) (string, bool) {
	a := m.assignments[name]
	b, ok := m.bindings[name]
	if ok && strings.EqualFold(b.subject, a.subject) {
		if _, exists := m.groups[b.groupID]; exists {
			return b.groupID, false
		}
		return m.groupNamed(a.subject), true
	}
	return m.groupNamed(a.subject), false
}

func (m *model) bind() {
	for name := range m.bindings {
		if a, ok := m.assignments[name]; !ok || !a.group {
			delete(m.bindings, name)
		}
	}
	for name, a := range m.assignments {
		if !a.group {
			continue
		}
		t, deleted := m.target(name)
		switch {
		case t != "":
			m.bindings[name] = mBinding{subject: a.subject, groupID: t}
		case !deleted:
			delete(m.bindings, name)
		}
	}
}

func (m *model) versionsOf(entries []string) [][2]string {
	var out [][2]string
	for _, e := range entries {
		app, v, _ := strings.Cut(e, "/")
		for _, have := range m.apps[app] {
			if v == "*" || v == have {
				out = append(out, [2]string{app, have})
			}
		}
	}
	return out
}

// effective renders what ForUser must say about user id, in the form
// renderEffective gives.
func (m *model) effective(id string) (roles, versions []string, hasAccess bool) {
	u := m.users[id]
	roleSet, versionSet := map[string]bool{}, map[string]bool{}
	for name, a := range m.assignments {
		group := ""
		switch {
		case !a.group && strings.EqualFold(a.subject, u.name):
		case a.group:
			t, _ := m.target(name)
			if t == "" || !m.members[[2]string{t, id}] {
				continue
			}
			group = m.groups[t]
		default:
			continue
		}
		for _, r := range a.roles {
			if m.roles[r] {
				roleSet[r+"<"+name+"@"+group] = true
			}
		}
		for _, v := range m.versionsOf(a.versions) {
			versionSet[v[0]+"/"+v[1]+"<"+name+"@"+group] = true
		}
	}
	roles, versions = slices.Sorted(maps.Keys(roleSet)), slices.Sorted(maps.Keys(versionSet))
	return roles, versions, u.active && len(roles) > 0
}

func (m *model) reachers(app, version string) []string {
	var out []string
	for id, u := range m.users {
		_, versions, ok := m.effective(id)
		if !ok {
			continue
		}
		for _, v := range versions {
			if strings.HasPrefix(v, app+"/"+version+"<") {
				out = append(out, u.name)
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return store.Fold(out[i]) < store.Fold(out[j]) })
	return out
}

func (m *model) pending() []string {
	out := []string{}
	for name, a := range m.assignments {
		if a.group {
			if t, deleted := m.target(name); t == "" {
				reason := access.ReasonNotProvisioned
				if deleted {
					reason = access.ReasonDeleted
				}
				out = append(out, name+"="+reason)
			}
		} else if m.userNamed(a.subject) == "" {
			out = append(out, name+"="+access.ReasonNotProvisioned)
		}
	}
	slices.Sort(out)
	return out
}

func renderEffective(e *access.Effective) (roles, versions []string) {
	for _, r := range e.Roles() {
		roles = append(roles, r.Role+"<"+r.Assignment+"@"+r.Group)
	}
	for _, v := range e.Versions() {
		versions = append(versions, v.Application+"/"+v.Version+"<"+v.Assignment+"@"+v.Group)
	}
	slices.Sort(roles)
	slices.Sort(versions)
	return roles, versions
}

// inOrder reports whether e lists grants in the documented order: direct
// assignments first, then groups by displayName; within a source by
// assignment, then role or application and version.
func inOrder(e *access.Effective) bool {
	return slices.IsSortedFunc(e.Roles(), func(a, b access.RoleGrant) int {
		return cmp.Or(strings.Compare(a.Group, b.Group), strings.Compare(a.Assignment, b.Assignment), strings.Compare(a.Role, b.Role))
	}) && slices.IsSortedFunc(e.Versions(), func(a, b access.VersionGrant) int {
		return cmp.Or(strings.Compare(a.Group, b.Group), strings.Compare(a.Assignment, b.Assignment),
			strings.Compare(a.Application, b.Application), strings.Compare(a.Version, b.Version))
	})
}

var (
	// Names that fold alike only under Unicode folding: the Kelvin sign,
	// final and capital sigma.
	userNames  = []string{"ann", "ANN", "bob", "cid", "Dan", "eve", "kay", "\u212Aay"}
	groupNames = []string{"Dev", "dev", "Ops", "QA", "Sec", "Operations", "ΣΑΣ", "σας"}
	roleNames  = []string{"Developer", "View Only", "Custom", "Ghost"}
	grantPool  = []string{"pay/1", "pay/2", "pay/*", "led/*", "led/9", "ghost/*", "bad"}
)

func TestPropertyAgainstModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		w, done := openWorld(rt)
		defer done()
		m := &model{
			users: map[string]*mUser{}, groups: map[string]string{}, members: map[[2]string]bool{},
			apps: map[string][]string{}, roles: map[string]bool{}, assignments: map[string]mAssignment{},
			bindings: map[string]mBinding{},
		}
		for _, r := range []string{"Developer", "View Only", "Custom"} {
			w.resource(spec.KindRole, r, &spec.Role{Permissions: []string{"x"}})
			m.roles[r] = true
		}
		m.apps["pay"] = []string{"1", "2"}
		m.apps["led"] = []string{"1"}
		for app, vs := range m.apps {
			w.app(app, vs...)
		}

		pickUser := func() string {
			ids := slices.Sorted(maps.Keys(m.users))
			if len(ids) == 0 {
				return ""
			}
			return rapid.SampledFrom(ids).Draw(rt, "user")
		}
		pickGroup := func() string {
			ids := slices.Sorted(maps.Keys(m.groups))
			if len(ids) == 0 {
				return ""
			}
			return rapid.SampledFrom(ids).Draw(rt, "group")
		}
		actions := []func(){
			func() { // a user arrives
				name := rapid.SampledFrom(userNames).Draw(rt, "name")
				if m.userNamed(name) != "" {
					return
				}
				active := rapid.Bool().Draw(rt, "active")
				m.users[w.user(name, active)] = &mUser{name: name, active: active}
			},
			func() { // a group arrives
				name := rapid.SampledFrom(groupNames).Draw(rt, "name")
				if m.groupNamed(name) != "" {
					return
				}
				m.groups[w.group(name)] = name
			},
			func() { // disable or enable
				if id := pickUser(); id != "" {
					active := rapid.Bool().Draw(rt, "active")
					w.setActive(id, active)
					m.users[id].active = active
				}
			},
			func() { // delete a user
				if id := pickUser(); id != "" {
					w.deleteUser(id)
					delete(m.users, id)
					for k := range m.members {
						if k[1] == id {
							delete(m.members, k)
						}
					}
				}
			},
			func() { // delete a group
				if id := pickGroup(); id != "" {
					w.deleteGroup(id)
					delete(m.groups, id)
					for k := range m.members {
						if k[0] == id || k[1] == id {
							delete(m.members, k)
						}
					}
				}
			},
			func() { // rename a group
				id := pickGroup()
				name := rapid.SampledFrom(groupNames).Draw(rt, "name")
				if id == "" {
					return
				}
				if other := m.groupNamed(name); other != "" && other != id {
					return
				}
				w.rename(id, name)
				m.groups[id] = name
			},
			func() { // add a member: a user, sometimes a group
				gid := pickGroup()
				if gid == "" {
					return
				}
				mid := pickUser()
				if rapid.IntRange(0, 4).Draw(rt, "nested") == 0 {
					mid = pickGroup()
				}
				if mid == "" || m.members[[2]string{gid, mid}] {
					return
				}
				w.member(gid, mid)
				m.members[[2]string{gid, mid}] = true
			},
			func() { // remove a member
				keys := slices.SortedFunc(maps.Keys(m.members), func(a, b [2]string) int {
					return strings.Compare(a[0]+a[1], b[0]+b[1])
				})
				if len(keys) == 0 {
					return
				}
				k := rapid.SampledFrom(keys).Draw(rt, "membership")
				w.unmember(k[0], k[1])
				delete(m.members, k)
			},
			func() { // an application gets a version
				app := rapid.SampledFrom([]string{"pay", "led"}).Draw(rt, "app")
				v := fmt.Sprint(len(m.apps[app]) + 1)
				m.apps[app] = append(slices.Clone(m.apps[app]), v)
				w.app(app, m.apps[app]...)
			},
			func() { // the spec sets an assignment
				name := rapid.SampledFrom([]string{"a1", "a2", "a3", "a4"}).Draw(rt, "assignment")
				a := mAssignment{group: rapid.Bool().Draw(rt, "isGroup")}
				if a.group {
					a.subject = rapid.SampledFrom(groupNames).Draw(rt, "subject")
				} else {
					a.subject = rapid.SampledFrom(userNames).Draw(rt, "subject")
				}
				a.roles = rapid.SliceOfNDistinct(rapid.SampledFrom(roleNames), 0, 2, rapid.ID[string]).Draw(rt, "roles")
				a.versions = rapid.SliceOfNDistinct(rapid.SampledFrom(grantPool), 0, 3, rapid.ID[string]).Draw(rt, "versions")
				m.assignments[name] = a
				kind := "user:"
				if a.group {
					kind = "group:"
				}
				w.assign(name, kind+a.subject, a.roles, a.versions...)
			},
			func() { // the spec drops an assignment
				names := slices.Sorted(maps.Keys(m.assignments))
				if len(names) == 0 {
					return
				}
				name := rapid.SampledFrom(names).Draw(rt, "assignment")
				w.deleteResource(spec.KindAccessAssignment, name)
				delete(m.assignments, name)
			},
			func() { // the Binder runs
				w.bind()
				m.bind()
			},
		}

		steps := rapid.IntRange(1, 100).Draw(rt, "steps")
		for step := range steps {
			rapid.SampledFrom(actions).Draw(rt, "action")()
			check(rt, w, m, step)
		}
	})
}

func check(rt *rapid.T, w *world, m *model, step int) {
	rt.Helper()
	for id, u := range m.users {
		e := w.forUser(u.name)
		if e.UserID != id {
			rt.Fatalf("step %d: ForUser(%s) id = %s, want %s", step, u.name, e.UserID, id)
		}
		if !inOrder(e) {
			rt.Fatalf("step %d: ForUser(%s) out of order: roles %v versions %v", step, u.name, e.Roles(), e.Versions())
		}
		gotR, gotV := renderEffective(e)
		wantR, wantV, wantOK := m.effective(id)
		if !slices.Equal(gotR, wantR) || !slices.Equal(gotV, wantV) || e.HasAccess() != wantOK {
			rt.Fatalf("step %d: ForUser(%s):\n got roles %v versions %v access %v\nwant roles %v versions %v access %v",
				step, u.name, gotR, gotV, e.HasAccess(), wantR, wantV, wantOK)
		}
	}
	for app, versions := range m.apps {
		for _, v := range versions {
			got, want := w.reachers(app, v), m.reachers(app, v)
			if want == nil {
				want = []string{}
			}
			if !slices.Equal(got, want) {
				rt.Fatalf("step %d: WhoCanReach(%s/%s) = %v, want %v", step, app, v, got, want)
			}
			whole, paged := w.reachPages(app, v, 2)
			if !slices.Equal(whole, paged) {
				rt.Fatalf("step %d: WhoCanReachPage(%s/%s) pages = %v, WhoCanReach = %v", step, app, v, paged, whole)
			}
		}
	}
	if got, want := w.pending(), m.pending(); !slices.Equal(got, want) {
		rt.Fatalf("step %d: Pending = %v, want %v", step, got, want)
	}
}
