package gateway_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/idrecon/idrecon/runtime/gateway"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// world is a real store written the way SCIM and the reconciler write it.
type world struct {
	t  testing.TB
	st *store.Store
}

func newWorld(t testing.TB) *world {
	t.Helper()
	st, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w := &world{t: t, st: st}
	for name, r := range spec.BuiltinRoles {
		w.resource(spec.KindRole, name, &r)
	}
	return w
}

func (w *world) update(fn func(*store.Txn) error) {
	w.t.Helper()
	if err := w.st.Update(context.Background(), fn); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) resource(kind, name string, s any) {
	w.t.Helper()
	w.update(func(tx *store.Txn) error {
		return tx.Insert(store.TableResources, &store.Resource{Kind: kind, Name: name, Spec: s, Revision: "r1", ModifiedBy: "reconcile"})
	})
}

func (w *world) user(id, name string, active bool) {
	w.t.Helper()
	w.update(func(tx *store.Txn) error {
		return tx.Insert(store.TableUsers, &store.User{ID: id, UserName: name, Active: active})
	})
}

func (w *world) assign(name, user string, roles []string, versions ...string) {
	w.t.Helper()
	a := &spec.AccessAssignment{Roles: roles, ApplicationVersions: versions}
	a.Subject.User = user
	w.resource(spec.KindAccessAssignment, name, a)
}

func (w *world) assignGroup(name, group string, roles []string, versions ...string) {
	w.t.Helper()
	a := &spec.AccessAssignment{Roles: roles, ApplicationVersions: versions}
	a.Subject.Group = group
	w.resource(spec.KindAccessAssignment, name, a)
}

func (w *world) unassign(name string) {
	w.t.Helper()
	w.update(func(tx *store.Txn) error {
		_, err := tx.DeleteAll(store.TableResources, store.IndexID, spec.KindAccessAssignment, name)
		return err
	})
}

func (w *world) deleteUser(id string) {
	w.t.Helper()
	w.update(func(tx *store.Txn) error {
		_, err := tx.DeleteAll(store.TableUsers, store.IndexID, id)
		return err
	})
}

// TestAccessCheckedOnEveryRequest: with the StoreDecider on a real store, a
// change in Entra or the spec takes effect on the very next request, in
// both modes.
func TestAccessCheckedOnEveryRequest(t *testing.T) {
	w := newWorld(t)
	w.resource(spec.KindApplication, "ledger", &spec.Application{Versions: []string{"1"}})
	w.user("u1", "Ann@contoso.com", true)
	w.assign("ann", "ann@contoso.com", []string{"Developer"}, "ledger/1")
	up, _ := echoUpstream(t)
	sess := cookieSessions{"tok-ann": "ann@contoso.com"}
	g, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL, VersionsHeader: "X-Versions"},
		gateway.Deps{Sessions: sess, Decider: gateway.StoreDecider{Store: w.st}})

	check := func(step string, wantStatus int) {
		t.Helper()
		resp := do(t, "GET", srv.URL+"/x", "tok-ann", nil)
		if resp.StatusCode != wantStatus {
			t.Errorf("%s: proxy status %d, want %d", step, resp.StatusCode, wantStatus)
		} else if wantStatus == http.StatusOK {
			got := decodeSeen(t, resp)
			if u, v := got.Header.Get("Username"), got.Header.Get("X-Versions"); u != "Ann@contoso.com" || v != "ledger/1" {
				t.Errorf("%s: upstream saw username %q versions %q", step, u, v)
			}
		}
		if resp := do(t, "GET", srv.URL+gateway.VerifyPath, "tok-ann", nil); resp.StatusCode != wantStatus {
			t.Errorf("%s: verify status %d, want %d", step, resp.StatusCode, wantStatus)
		}
	}
	check("entitled", http.StatusOK)
	w.user("u1", "Ann@contoso.com", false)
	check("disabled by Entra", http.StatusForbidden)
	w.user("u1", "Ann@contoso.com", true)
	check("enabled again", http.StatusOK)
	w.unassign("ann")
	check("last role removed", http.StatusForbidden)
	w.assign("ann", "ann@contoso.com", []string{"Developer"}, "ledger/1")
	check("role back", http.StatusOK)
	w.deleteUser("u1")
	check("deleted by Entra", http.StatusForbidden)

	want := map[string]uint64{gateway.ReasonDisabled: 2, gateway.ReasonNoRole: 2, gateway.ReasonUnknownUser: 2}
	got := g.Stats().Refusals
	for r, n := range want {
		if got[r] != n {
			t.Errorf("refusals %v, want %v", got, want)
			break
		}
	}
}

func TestRequiredRole(t *testing.T) {
	w := newWorld(t)
	w.user("u1", "ann", true)
	w.user("u2", "bob", true)
	w.assign("ann", "ann", []string{"Developer"})
	w.assign("bob", "bob", []string{"Developer", "Security Lead"})
	sess := cookieSessions{"tok-ann": "ann", "tok-bob": "bob"}
	_, srv := newFrontDoor(t, gateway.Config{RequiredRole: "Security Lead", RolesHeader: "X-Roles"},
		gateway.Deps{Sessions: sess, Decider: gateway.StoreDecider{Store: w.st}})
	if resp := do(t, "GET", srv.URL+gateway.VerifyPath, "tok-ann", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("ann without the role: status %d, want 403", resp.StatusCode)
	}
	resp := do(t, "GET", srv.URL+gateway.VerifyPath, "tok-bob", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Roles") != "Developer, Security Lead" {
		t.Errorf("bob: status %d roles %q", resp.StatusCode, resp.Header.Get("X-Roles"))
	}
}
