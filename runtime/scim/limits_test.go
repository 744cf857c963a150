package scim

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/runtime/store"
)

// TestLimits fills a server to its bounds through every write that adds a
// user, a group or a membership, and checks that past a bound the write is
// refused whole (507, with the bound and the flag that raises it, logged
// once), that writes which do not grow a count still pass, and that a
// client may always shrink the state, even past bounds lowered since.
func TestLimits(t *testing.T) {
	e := newEnvWith(t, false, defaultConfig(), store.Options{}, Options{Limits: Limits{Users: 2, Groups: 2, Memberships: 3}})
	u1 := e.createUser("u1@contoso.com", "u1", "u1@contoso.com")
	u2 := e.createUser("u2@contoso.com", "u2", "u2@contoso.com")
	userBody := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"u3@contoso.com","active":true}`
	group := func(name string, members ...string) string {
		var list []string
		for _, m := range members {
			list = append(list, `{"value":`+q(m)+`}`)
		}
		return `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":` + q(name) + `,"members":[` + strings.Join(list, ",") + `]}`
	}
	ops := func(list string) string { return `{` + patchSchema + `,"Operations":[` + list + `]}` }
	add := func(id string) string {
		return `{"op":"Add","path":"members","value":[{"value":` + q(id) + `}]}`
	}
	remove := func(id string) string {
		return `{"op":"Remove","path":"members","value":[{"value":` + q(id) + `}]}`
	}
	refused := func(name string, r resp, flag string) {
		t.Helper()
		body := r.json(t)
		if r.status != http.StatusInsufficientStorage || body["status"] != "507" || body["scimType"] != nil ||
			!strings.Contains(body["detail"].(string), flag) {
			t.Fatalf("%s: status %d, body %s; want 507 naming %s", name, r.status, r.body, flag)
		}
	}

	refused("a third user", e.do("POST", "/Users", userBody), "--max-users")
	refused("a third user again", e.do("POST", "/Users", userBody), "--max-users")
	if n := strings.Count(e.logs.String(), "scim write refused"); n != 1 {
		t.Errorf("%d log lines for two refusals within a minute, want 1:\n%s", n, e.logs.String())
	}
	e.must(http.StatusNoContent, "DELETE", "/Users/"+u2, "")
	u3 := e.must(http.StatusCreated, "POST", "/Users", userBody).json(t)["id"].(string)

	g1 := e.must(http.StatusCreated, "POST", "/Groups", group("g1", u1, u3)).json(t)["id"].(string)
	refused("a group whose members pass the bound", e.do("POST", "/Groups", group("g2", u1, u3)), "--max-memberships")
	if r := e.must(http.StatusOK, "GET", "/Groups?filter=displayName%20eq%20%22g2%22", ""); r.json(t)["totalResults"] != float64(0) {
		t.Fatalf("the refused group was made: %s", r.body)
	}
	g2 := e.must(http.StatusCreated, "POST", "/Groups", group("g2", u1)).json(t)["id"].(string)
	refused("a third group", e.do("POST", "/Groups", group("g3")), "--max-groups")

	// At three memberships of three.
	refused("a member added by PATCH", e.do("PATCH", "/Groups/"+g2, ops(add(u3))), "--max-memberships")
	refused("a member added by PUT", e.do("PUT", "/Groups/"+g2, group("g2", u1, u3)), "--max-memberships")
	refused("a member added by a PATCH replace", e.do("PATCH", "/Groups/"+g2,
		ops(`{"op":"replace","path":"members","value":[{"value":`+q(u1)+`},{"value":`+q(u3)+`}]}`)), "--max-memberships")
	e.must(http.StatusNoContent, "PATCH", "/Groups/"+g2, ops(add(u3)+","+remove(u1)))
	e.must(http.StatusOK, "PUT", "/Groups/"+g2, group("g2 renamed", u1))
	if r := e.must(http.StatusOK, "GET", "/Groups/"+g1, ""); len(r.json(t)["members"].([]any)) != 2 {
		t.Fatalf("g1 changed: %s", r.body)
	}

	// A server whose bounds were lowered below what the state holds
	// still removes, and refuses to add.
	lowered := httptest.NewServer(NewServer(e.st, Options{Limits: Limits{Users: 1, Groups: 1, Memberships: 1}}))
	t.Cleanup(lowered.Close)
	e.srv = lowered
	refused("a member past a lowered bound", e.do("PATCH", "/Groups/"+g1, ops(add(g2))), "--max-memberships")
	e.must(http.StatusNoContent, "PATCH", "/Groups/"+g1, ops(remove(u3)))
	e.must(http.StatusNoContent, "DELETE", "/Groups/"+g2, "")
	e.must(http.StatusNoContent, "DELETE", "/Users/"+u3, "")
	refused("a user past a lowered bound", e.do("POST", "/Users", userBody), "--max-users")
}
