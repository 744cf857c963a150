package access_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// world is a store with helpers that write what the SCIM server and the
// reconciler would. Every helper fails the test on error.
type world struct {
	t  tester
	st *store.Store
	n  int
}

// tester is what both *testing.T and *rapid.T provide.
type tester interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

func newWorld(t testing.TB) *world {
	t.Helper()
	w, closeStore := openWorld(t)
	t.Cleanup(closeStore)
	return w
}

// openWorld is newWorld for testers without Cleanup; call the returned func
// when done.
func openWorld(t tester) (*world, func()) {
	t.Helper()
	st, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &world{t: t, st: st}, func() { st.Close() }
}

func (w *world) update(fn func(*store.Txn) error) {
	w.t.Helper()
	if err := w.st.Update(context.Background(), fn); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) nextID(prefix string) string {
	w.n++
	return fmt.Sprintf("%s-%04d", prefix, w.n)
}

func (w *world) user(name string, active bool) string {
	w.t.Helper()
	id := w.nextID("u")
	w.update(func(tx *store.Txn) error {
		return tx.Insert(store.TableUsers, &store.User{ID: id, UserName: name, Active: active})
	})
	return id
}

func (w *world) setActive(id string, active bool) {
	w.t.Helper()
	w.update(func(tx *store.Txn) error {
		u, err := tx.UserByID(id)
		if err != nil || u == nil {
			return fmt.Errorf("user %s: %v", id, err)
		}
		c := *u
		c.Active = active
		return tx.Insert(store.TableUsers, &c)
	})
}

func (w *world) group(name string) string {
	w.t.Helper()
	id := w.nextID("g")
	w.update(func(tx *store.Txn) error {
		return tx.Insert(store.TableGroups, &store.Group{ID: id, DisplayName: name, ExternalID: "ext-" + id})
	})
	return id
}

func (w *world) rename(gid, name string) {
	w.t.Helper()
	w.update(func(tx *store.Txn) error {
		g, err := tx.GroupByID(gid)
		if err != nil || g == nil {
			return fmt.Errorf("group %s: %v", gid, err)
		}
		c := *g
		c.DisplayName = name
		return tx.Insert(store.TableGroups, &c)
	})
}

func (w *world) member(gid, memberID string) {
	w.t.Helper()
	w.update(func(tx *store.Txn) error {
		return tx.ChangeMembers(gid, []string{memberID}, nil, time.Time{})
	})
}

func (w *world) unmember(gid, memberID string) {
	w.t.Helper()
	w.update(func(tx *store.Txn) error {
		return tx.ChangeMembers(gid, nil, []string{memberID}, time.Time{})
	})
}

// deleteGroup deletes a group and its memberships (as group and as member).
func (w *world) deleteGroup(gid string) {
	w.t.Helper()
	w.update(func(tx *store.Txn) error {
		if err := tx.DeleteMemberships(gid, time.Time{}); err != nil {
			return err
		}
		_, err := tx.DeleteAll(store.TableGroups, store.IndexID, gid)
		return err
	})
}

// deleteUser deletes a user and their memberships.
func (w *world) deleteUser(uid string) {
	w.t.Helper()
	w.update(func(tx *store.Txn) error {
		if err := tx.DeleteMemberships(uid, time.Time{}); err != nil {
			return err
		}
		_, err := tx.DeleteAll(store.TableUsers, store.IndexID, uid)
		return err
	})
}

func (w *world) resource(kind, name string, s any) {
	w.t.Helper()
	w.update(func(tx *store.Txn) error {
		return tx.Insert(store.TableResources, &store.Resource{Kind: kind, Name: name, Spec: s, Revision: "r1", ModifiedBy: "reconcile", Modified: time.Unix(0, 0)})
	})
}

func (w *world) deleteResource(kind, name string) {
	w.t.Helper()
	w.update(func(tx *store.Txn) error {
		_, err := tx.DeleteAll(store.TableResources, store.IndexID, kind, name)
		return err
	})
}

func (w *world) builtinRoles() {
	w.t.Helper()
	for name, r := range spec.BuiltinRoles {
		w.resource(spec.KindRole, name, &r)
	}
}

func (w *world) app(name string, versions ...string) {
	w.t.Helper()
	w.resource(spec.KindApplication, name, &spec.Application{Versions: versions})
}

// assign writes an AccessAssignment; subject is "group:X" or "user:X".
func (w *world) assign(name, subject string, roles []string, versions ...string) {
	w.t.Helper()
	w.resource(spec.KindAccessAssignment, name, assignment(subject, roles, versions...))
}

// bind runs what the Binder runs after a commit.
func (w *world) bind() {
	w.t.Helper()
	w.update(func(tx *store.Txn) error {
		_, err := access.SyncBindings(tx)
		return err
	})
}

func (w *world) forUser(name string) *access.Effective {
	w.t.Helper()
	e, err := access.ForUser(w.st.Read(), name)
	if err != nil {
		w.t.Fatalf("ForUser(%q): %v", name, err)
	}
	return e
}

func (w *world) reachers(app, version string) []string {
	w.t.Helper()
	r, err := access.WhoCanReach(w.st.Read(), app, version)
	if err != nil {
		w.t.Fatalf("WhoCanReach(%s/%s): %v", app, version, err)
	}
	out := []string{}
	for _, u := range r.Users {
		out = append(out, u.UserName)
	}
	return out
}

func (w *world) pending() []string {
	w.t.Helper()
	p, err := access.Pending(w.st.Read())
	if err != nil {
		w.t.Fatal(err)
	}
	out := []string{}
	for _, a := range p {
		out = append(out, a.Assignment+"="+a.Reason)
	}
	return out
}

// roleGrants renders grants as "role<assignment@group" for comparisons.
func roleGrants(e *access.Effective) []string {
	out := []string{}
	for _, r := range e.Roles() {
		out = append(out, r.Role+"<"+r.Assignment+"@"+r.Group)
	}
	return out
}

func assignment(subject string, roles []string, versions ...string) *spec.AccessAssignment {
	kind, who, _ := strings.Cut(subject, ":")
	a := &spec.AccessAssignment{Roles: roles, ApplicationVersions: versions}
	if kind == "group" {
		a.Subject.Group = who
	} else {
		a.Subject.User = who
	}
	return a
}

// reachPages renders WhoCanReach and the concatenated pages of
// WhoCanReachPage of size limit alike ("userName assignment@group via"
// per path), checking each page's total and cursor on the way.
func (w *world) reachPages(app, version string, limit int) (whole, paged []string) {
	w.t.Helper()
	render := func(out []string, users []access.ReachingUser) []string {
		for _, u := range users {
			for _, p := range u.Paths {
				out = append(out, u.UserName+" "+p.Assignment+"@"+p.Group+" "+p.Via)
			}
		}
		return out
	}
	r, err := access.WhoCanReach(w.st.Read(), app, version)
	if err != nil {
		w.t.Fatalf("WhoCanReach(%s/%s): %v", app, version, err)
	}
	whole = render([]string{}, r.Users)
	paged = []string{}
	after, seen := "", 0
	for {
		p, err := access.WhoCanReachPage(w.st.Read(), app, version, after, limit)
		if err != nil {
			w.t.Fatalf("WhoCanReachPage(%s/%s, %q): %v", app, version, after, err)
		}
		if p.Total != len(r.Users) {
			w.t.Fatalf("WhoCanReachPage(%s/%s, %q) total = %d, want %d", app, version, after, p.Total, len(r.Users))
		}
		if len(p.Users) > limit || (p.Next != "" && len(p.Users) != limit) {
			w.t.Fatalf("WhoCanReachPage(%s/%s, %q) = %d users, next %q; limit %d", app, version, after, len(p.Users), p.Next, limit)
		}
		seen += len(p.Users)
		paged = render(paged, p.Users)
		if p.Next == "" {
			break
		}
		if seen >= len(r.Users) {
			w.t.Fatalf("WhoCanReachPage(%s/%s, %q) names a next page after every user", app, version, after)
		}
		after = p.Next
	}
	return whole, paged
}
