package scim

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/idrecon/idrecon/runtime/internal/logsink"
	"github.com/idrecon/idrecon/runtime/store"
)

// TestBarrierOrder: a request passes the store barrier before it reads,
// except a create, which passes it only when its answer could come from a
// mirror behind the cluster (a refusal), and then tries again. The barrier
// here plays a mirror catching up: it applies the writes "another daemon"
// made, which the store does not hold until it is called.
func TestBarrierOrder(t *testing.T) {
	for _, tc := range []struct {
		name       string
		seed       func(*env) // what the mirror holds before the request
		catchUp    func(*store.Txn) error
		method     string
		path, body string
		want       int
		barriers   int32
	}{
		{name: "a create of a free name needs no barrier", method: "POST", path: "/Users",
			body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ann@contoso.com"}`, want: 201, barriers: 0},
		{name: "a name another daemon freed is created after the barrier",
			seed: func(e *env) { e.createUser("ann@contoso.com", "", "") },
			catchUp: func(tx *store.Txn) error {
				u, _ := tx.UserByName("ann@contoso.com")
				return tx.Delete(store.TableUsers, u)
			},
			method: "POST", path: "/Users",
			body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ann@contoso.com"}`, want: 201, barriers: 1},
		{name: "a name taken after the barrier too is refused", seed: func(e *env) { e.createUser("ann@contoso.com", "", "") },
			method: "POST", path: "/Users",
			body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ann@contoso.com"}`, want: 409, barriers: 1},
		{name: "a group without members needs no barrier", method: "POST", path: "/Groups",
			body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Developers"}`, want: 201, barriers: 0},
		{name: "a group with members passes the barrier first (its member was deleted elsewhere)",
			seed: func(e *env) {
				e.st.Update(context.Background(), func(tx *store.Txn) error {
					return tx.Insert(store.TableUsers, &store.User{ID: "u-gone", UserName: "bob@contoso.com", Active: true})
				})
			},
			catchUp: func(tx *store.Txn) error { u, _ := tx.UserByID("u-gone"); return tx.Delete(store.TableUsers, u) },
			method:  "POST", path: "/Groups",
			body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Developers","members":[{"value":"u-gone"}]}`, want: 400, barriers: 1},
		{name: "a lookup passes the barrier first",
			catchUp: func(tx *store.Txn) error {
				return tx.Insert(store.TableUsers, &store.User{ID: "u-elsewhere", UserName: "bob@contoso.com", Active: true})
			},
			method: "GET", path: "/Users/u-elsewhere", want: 200, barriers: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, false, defaultConfig())
			if tc.seed != nil {
				tc.seed(e)
			}
			var calls atomic.Int32
			barrier := func(ctx context.Context) error {
				calls.Add(1)
				if tc.catchUp == nil {
					return nil
				}
				return e.st.Update(ctx, tc.catchUp)
			}
			e.srv.Close()
			e.srv = httptest.NewServer(NewServer(e.st, Options{Logger: slog.New(slog.NewJSONHandler(&logsink.Buffer{}, nil)), Audit: &e.audit, Barrier: barrier}))
			r := e.do(tc.method, tc.path, tc.body)
			if r.status != tc.want {
				t.Errorf("status %d, want %d: %s", r.status, tc.want, r.body)
			}
			if got := calls.Load(); got != tc.barriers {
				t.Errorf("%d barriers, want %d", got, tc.barriers)
			}
		})
	}
}
