package scim

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// foldVariants are names that are equal under Unicode case folding (the
// store's store.Fold) but that strings.ToLower keeps apart: the final sigma,
// the long s, the Kelvin sign, the micro sign, the theta symbol.
var foldVariants = []struct{ name, taken, variant string }{
	{"final sigma", "Team σ", "TEAM ς"},
	{"long s", "sam", "ſam"},
	{"kelvin sign", "kate", "\u212Aate"},
	{"micro sign", "μ-ops", "µ-ops"},
	{"theta symbol", "θ-ops", "ϑ-ops"},
}

// TestGroupRenameOntoFoldVariant: a displayName that folds equal to another
// group's is taken, on create, PATCH and PUT; the failed writes leave both
// groups findable by their own names.
func TestGroupRenameOntoFoldVariant(t *testing.T) {
	for _, tt := range foldVariants {
		t.Run(tt.name, func(t *testing.T) {
			requests := []struct{ name, method, path, body string }{
				{"create", "POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":` + q(tt.variant) + `}`},
				{"patch value", "PATCH", "/Groups/{b}", ops(`{"op":"replace","value":{"displayName":` + q(tt.variant) + `}}`)},
				{"patch path", "PATCH", "/Groups/{b}", ops(`{"op":"Replace","path":"displayName","value":` + q(tt.variant) + `}`)},
				{"put", "PUT", "/Groups/{b}", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":` + q(tt.variant) + `}`},
			}
			for _, r := range requests {
				t.Run(r.name, func(t *testing.T) {
					e := newEnv(t, false, defaultConfig())
					a := e.createGroup(tt.taken, "ext-a")
					b := e.createGroup("Operators", "ext-b")
					expectUniqueness(t, e, r.method, strings.Replace(r.path, "{b}", b, 1), r.body, a)
					expectOneByName(t, e, "/Groups", "displayName", tt.taken, a)
					expectOneByName(t, e, "/Groups", "displayName", "Operators", b)
				})
			}
		})
	}
}

// TestUserRenameOntoFoldVariant is TestGroupRenameOntoFoldVariant for
// userName: 409 uniqueness, never a 500 or a second user of the name.
func TestUserRenameOntoFoldVariant(t *testing.T) {
	for _, tt := range foldVariants {
		t.Run(tt.name, func(t *testing.T) {
			taken, variant := tt.taken+"@contoso.com", tt.variant+"@contoso.com"
			requests := []struct{ name, method, path, body string }{
				{"create", "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":` + q(variant) + `}`},
				{"patch path", "PATCH", "/Users/{b}", ops(`{"op":"Replace","path":"userName","value":` + q(variant) + `}`)},
				{"patch value", "PATCH", "/Users/{b}", ops(`{"op":"replace","value":{"userName":` + q(variant) + `}}`)},
				{"put", "PUT", "/Users/{b}", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":` + q(variant) + `}`},
			}
			for _, r := range requests {
				t.Run(r.name, func(t *testing.T) {
					e := newEnv(t, false, defaultConfig())
					a := e.createUser(taken, "ext-a", "a@contoso.com")
					b := e.createUser("bob@contoso.com", "ext-b", "b@contoso.com")
					expectUniqueness(t, e, r.method, strings.Replace(r.path, "{b}", b, 1), r.body, a)
					expectOneByName(t, e, "/Users", "userName", taken, a)
					expectOneByName(t, e, "/Users", "userName", "bob@contoso.com", b)
				})
			}
		})
	}
}

// expectUniqueness sends a request and wants 409 uniqueness naming the
// holder of the name.
func expectUniqueness(t *testing.T, e *env, method, path, body, holder string) {
	t.Helper()
	r := e.do(method, path, body)
	if r.status != 409 {
		t.Errorf("%s %s: status %d %s, want 409 uniqueness naming %s", method, path, r.status, r.body, holder)
		return
	}
	if got := r.json(t); got["scimType"] != "uniqueness" || !strings.Contains(fmt.Sprint(got["detail"]), holder) {
		t.Errorf("%s %s: %s, want uniqueness naming %s", method, path, r.body, holder)
	}
}

// expectOneByName wants the filter attr eq name to find exactly id.
func expectOneByName(t *testing.T, e *env, endpoint, attr, name, id string) {
	t.Helper()
	list := e.must(200, "GET", endpoint+"?filter="+url.QueryEscape(attr+` eq `+q(name)), "").json(t)
	if list["totalResults"] != 1.0 || dig(list, "Resources", 0, "id") != id {
		t.Errorf("%s eq %q: %v, want only %s", attr, name, list, id)
	}
}
