package scim

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func members(t *testing.T, e *env, gid string) []string {
	t.Helper()
	g := e.must(200, "GET", "/Groups/"+gid, "").json(t)
	var ids []string
	for _, m := range g["members"].([]any) {
		ids = append(ids, dig(m, "value").(string))
	}
	return ids
}

func memberList(ids ...string) string {
	var parts []string
	for _, id := range ids {
		parts = append(parts, `{"$ref":null,"value":"`+id+`"}`)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func TestGroupLifecycle(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			e := newEnv(t, m.flag, defaultConfig())
			var users []string
			for i := range 5 {
				users = append(users, e.createUser(fmt.Sprintf("u%d@contoso.com", i), "x", "x@contoso.com"))
			}
			gid := e.createGroup("Developers", "8aa1a0c0-1")
			g := e.must(200, "GET", "/Groups/"+gid+"?excludedAttributes=members", "").json(t)
			if _, ok := g["members"]; ok || g["displayName"] != "Developers" || g["externalId"] != "8aa1a0c0-1" {
				t.Fatalf("group without members: %v", g)
			}
			list := e.must(200, "GET", "/Groups?excludedAttributes=members&filter="+url.QueryEscape(`displayName eq "developers"`), "").json(t)
			if list["totalResults"] != 1.0 || dig(list, "Resources", 0, "members") != nil {
				t.Fatalf("group query: %v", list)
			}

			add := `{"op":"Add","path":"members","value":` + memberList(users...) + `}`
			if m.flag {
				add = strings.Replace(add, `"Add"`, `"add"`, 1)
			}
			e.must(204, "PATCH", "/Groups/"+gid, ops(add))
			if got := members(t, e, gid); !sameIDs(got, users) {
				t.Fatalf("after add: %v", got)
			}
			// Adding again changes nothing.
			e.must(204, "PATCH", "/Groups/"+gid, ops(add))
			if got := members(t, e, gid); len(got) != 5 {
				t.Fatalf("duplicate add: %v", got)
			}

			remove := ops(`{"op":"Remove","path":"members","value":` + memberList(users[0]) + `}`)
			if m.flag {
				remove = ops(`{"op":"remove","path":"members[value eq \"` + users[0] + `\"]"}`)
			}
			e.must(204, "PATCH", "/Groups/"+gid, remove)
			if got := members(t, e, gid); !sameIDs(got, users[1:]) {
				t.Fatalf("remove one removed %v, left %v", users[0], got)
			}
			// Both shapes are accepted in both modes (provision on demand ignores the flag).
			e.must(204, "PATCH", "/Groups/"+gid, ops(`{"op":"Remove","path":"members","value":`+memberList(users[1], users[2])+`}`))
			e.must(204, "PATCH", "/Groups/"+gid, ops(`{"op":"remove","path":"members[value eq \"`+users[3]+`\"]"}`))
			if got := members(t, e, gid); !sameIDs(got, users[4:]) {
				t.Fatalf("left %v, want %v", got, users[4:])
			}
			// Removing a member that is not there is not an error.
			e.must(204, "PATCH", "/Groups/"+gid, ops(`{"op":"remove","path":"members[value eq \"`+users[0]+`\"]"}`))

			check := e.must(200, "GET", "/Groups?filter="+url.QueryEscape(`id eq "`+gid+`" and members eq "`+users[4]+`"`)+"&attributes=id", "").json(t)
			if check["totalResults"] != 1.0 {
				t.Fatalf("membership check: %v", check)
			}
			check = e.must(200, "GET", "/Groups?filter="+url.QueryEscape(`id eq "`+gid+`" and members eq "`+users[0]+`"`)+"&attributes=id", "").json(t)
			if check["totalResults"] != 0.0 {
				t.Fatalf("membership check for a non-member: %v", check)
			}

			rename := ops(`{"op":"Replace","path":"displayName","value":"Dev Team"}`)
			if m.flag {
				rename = ops(`{"op":"replace","value":{"displayName":"Dev Team"}}`)
			}
			e.must(204, "PATCH", "/Groups/"+gid, rename)
			if g := e.must(200, "GET", "/Groups/"+gid, "").json(t); g["displayName"] != "Dev Team" {
				t.Fatalf("rename: %v", g)
			}

			e.must(204, "PATCH", "/Groups/"+gid, ops(`{"op":"Add","path":"members","value":`+memberList(users[0])+`}`, `{"op":"Remove","path":"members"}`))
			if got := members(t, e, gid); len(got) != 0 {
				t.Fatalf("remove all left %v", got)
			}

			e.must(204, "DELETE", "/Groups/"+gid, "")
			e.must(404, "GET", "/Groups/"+gid, "")
			if got := e.must(200, "GET", "/Groups?filter="+url.QueryEscape(`members eq "`+users[0]+`"`), "").json(t); got["totalResults"] != 0.0 {
				t.Fatalf("memberships survive group delete: %v", got)
			}
			e.must(200, "GET", "/Users/"+users[0], "")
		})
	}
}

func TestGroupErrors(t *testing.T) { forModes(t, testGroupErrors) }

func testGroupErrors(t *testing.T, flag bool) {
	e := newEnv(t, flag, defaultConfig())
	u := e.createUser("a@contoso.com", "a", "a@contoso.com")
	gid := e.createGroup("Developers", "x")
	other := e.createGroup("Operators", "y")
	tests := []struct {
		name, method, path, body string
		status                   int
		scimType, detail         string
	}{
		{"duplicate name", "POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"DEVELOPERS"}`, 409, "uniqueness", gid},
		{"missing name", "POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"externalId":"x"}`, 400, "invalidValue", "displayName"},
		{"unknown members on create", "POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Ops","members":[{"value":"ghost-1"},{"value":"` + u + `"},{"value":"ghost-2"}]}`, 400, "invalidValue", "ghost-1, ghost-2"},
		{"unknown members on patch", "PATCH", "/Groups/" + gid, ops(`{"op":"Add","path":"members","value":` + memberList(u, "ghost-3") + `}`), 400, "invalidValue", "ghost-3"},
		{"member without value", "PATCH", "/Groups/" + gid, ops(`{"op":"Add","path":"members","value":[{"display":"x"}]}`), 400, "invalidValue", "value"},
		{"remove members naming none", "PATCH", "/Groups/" + gid, ops(`{"op":"Remove","path":"members","value":""}`), 400, "invalidValue", "members"},
		{"remove members of an empty list", "PATCH", "/Groups/" + gid, ops(`{"op":"remove","path":"members","value":[]}`), 400, "invalidValue", "members"},
		{"remove members of a null", "PATCH", "/Groups/" + gid, ops(`{"op":"remove","path":"members","value":[null]}`), 400, "invalidValue", "members"},
		{"filtered add contradicting its filter", "PATCH", "/Groups/" + gid, ops(`{"op":"add","path":` + q(`members[value eq "ghost-4"]`) + `,"value":{"value":"` + u + `"}}`), 400, "invalidValue", "filter"},
		{"filtered replace creating what its filter excludes", "PATCH", "/Groups/" + gid, ops(`{"op":"replace","path":` + q(`members[value eq "ghost-5"]`) + `,"value":[{"value":"` + u + `"}]}`), 400, "invalidValue", "filter"},
		{"self member", "PATCH", "/Groups/" + gid, ops(`{"op":"Add","path":"members","value":` + memberList(gid) + `}`), 400, "invalidValue", "itself"},
		{"unknown group", "PATCH", "/Groups/nope", ops(`{"op":"Add","path":"members","value":` + memberList(u) + `}`), 404, "", ""},
		{"bad path", "PATCH", "/Groups/" + gid, ops(`{"op":"Add","path":"owners","value":"x"}`), 400, "invalidPath", ""},
		{"rename to a taken name", "PATCH", "/Groups/" + other, ops(`{"op":"replace","value":{"displayName":"developers"}}`), 409, "uniqueness", gid},
		{"put with a taken name", "PUT", "/Groups/" + other, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"DEVELOPERS"}`, 409, "uniqueness", gid},
		{"stale etag", "PATCH", "/Groups/" + gid, ops(`{"op":"Add","path":"members","value":` + memberList(u) + `}`), 412, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.status == 412 {
				hdr = []string{"If-Match", `W/"7"`}
			}
			r := e.do(tt.method, tt.path, tt.body, hdr...)
			got := r.json(t)
			if r.status != tt.status || (tt.scimType != "" && got["scimType"] != tt.scimType) || !strings.Contains(fmt.Sprint(got["detail"]), tt.detail) {
				t.Fatalf("status %d %s, want %d %s mentioning %q", r.status, r.body, tt.status, tt.scimType, tt.detail)
			}
		})
	}
	if got := members(t, e, gid); len(got) != 0 {
		t.Fatalf("failed requests changed members: %v", got)
	}
	if g := e.must(200, "GET", "/Groups/"+other, "").json(t); g["displayName"] != "Operators" {
		t.Fatalf("failed rename changed the group: %v", g)
	}
	// Changing only the case of its own name is a rename, not a conflict.
	e.must(204, "PATCH", "/Groups/"+gid, ops(`{"op":"Replace","path":"displayName","value":"developers"}`))
	list := e.must(200, "GET", "/Groups?filter="+url.QueryEscape(`displayName eq "OPERATORS"`), "").json(t)
	if list["totalResults"] != 1.0 {
		t.Fatalf("Operators no longer found by name: %v", list)
	}
}

func TestGroupPutAndPostWithMembers(t *testing.T) { forModes(t, testGroupPutAndPostWithMembers) }

func testGroupPutAndPostWithMembers(t *testing.T, flag bool) {
	e := newEnv(t, flag, defaultConfig())
	a := e.createUser("a@contoso.com", "a", "a@contoso.com")
	b := e.createUser("b@contoso.com", "b", "b@contoso.com")
	r := e.must(201, "POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Ops","members":[{"value":"`+a+`"}]}`).json(t)
	gid := r["id"].(string)
	if len(r["members"].([]any)) != 1 {
		t.Fatalf("create: %v", r)
	}
	r = e.must(200, "PUT", "/Groups/"+gid, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Ops2","members":[{"value":"`+b+`"}]}`).json(t)
	if r["displayName"] != "Ops2" || dig(r, "members", 0, "value") != b || len(r["members"].([]any)) != 1 {
		t.Fatalf("put: %v", r)
	}
	if got := members(t, e, gid); !sameIDs(got, []string{b}) {
		t.Fatalf("members after PUT: %v", got)
	}
	// A nested group is a member too.
	inner := e.createGroup("Inner", "i")
	e.must(204, "PATCH", "/Groups/"+gid, ops(`{"op":"add","path":"members","value":`+memberList(inner)+`}`))
	e.must(204, "DELETE", "/Groups/"+inner, "")
	if got := members(t, e, gid); !sameIDs(got, []string{b}) {
		t.Fatalf("deleted nested group still a member: %v", got)
	}
}

func TestDeletedMemberCannotBeAdded(t *testing.T) { forModes(t, testDeletedMemberCannotBeAdded) }

// testDeletedMemberCannotBeAdded covers the shortcut of store.Txn.Members: an id
// that is a member somewhere is taken to exist, which holds only because a
// delete removes every membership of what it deletes.
func testDeletedMemberCannotBeAdded(t *testing.T, flag bool) {
	e := newEnv(t, flag, defaultConfig())
	u := e.createUser("u@contoso.com", "u", "u@contoso.com")
	inner := e.createGroup("Inner", "i")
	first, second := e.createGroup("First", "f"), e.createGroup("Second", "s")
	add := func(gid string, want int, ids ...string) resp {
		return e.must(want, "PATCH", "/Groups/"+gid, ops(`{"op":"add","path":"members","value":`+memberList(ids...)+`}`))
	}
	add(first, 204, u, inner)
	add(second, 204, u) // a member elsewhere: the shortcut passes it
	e.must(204, "DELETE", "/Users/"+u, "")
	e.must(204, "DELETE", "/Groups/"+inner, "")
	for _, id := range []string{u, inner} {
		r := add(second, 400, id).json(t)
		if r["scimType"] != "invalidValue" || !strings.Contains(r["detail"].(string), id) {
			t.Fatalf("adding deleted %s: %v", id, r)
		}
	}
}

// A membership is identified by its member's id: members.value is
// immutable (RFC 7643 §2.2, as the Group schema advertises), so a write
// that would change the id of an existing membership through a
// sub-attribute path is 400 mutability and changes nothing, while the
// shapes Entra sends (add and replace of "members", remove by filter)
// keep working.
func TestMemberValueIsImmutable(t *testing.T) { forModes(t, testMemberValueIsImmutable) }

func testMemberValueIsImmutable(t *testing.T, flag bool) {
	e := newEnv(t, flag, defaultConfig())
	a := e.createUser("a@contoso.com", "a", "a@contoso.com")
	b := e.createUser("b@contoso.com", "b", "b@contoso.com")
	gid := e.createGroup("Developers", "d")
	e.must(204, "PATCH", "/Groups/"+gid, ops(`{"op":"add","path":"members","value":`+memberList(a)+`}`))
	for _, op := range []string{
		`{"op":"replace","path":` + q(`members[value eq "`+a+`"].value`) + `,"value":"` + b + `"}`,
		`{"op":"add","path":` + q(`members[value eq "`+a+`"].value`) + `,"value":"` + b + `"}`,
		`{"op":"add","path":` + q(`members[value eq "ghost"].value`) + `,"value":"` + b + `"}`,
		`{"op":"replace","path":"members.value","value":"` + b + `"}`,
		`{"op":"replace","path":"MEMBERS.VALUE","value":"` + b + `"}`,
		`{"op":"replace","path":` + q(`members[value eq "`+a+`"]`) + `,"value":{"value":"` + b + `"}}`,
		`{"op":"replace","value":{"members.value":"` + b + `"}}`,
	} {
		t.Run(op, func(t *testing.T) {
			r := e.do("PATCH", "/Groups/"+gid, ops(op))
			if got := r.json(t); r.status != 400 || got["scimType"] != "mutability" {
				t.Fatalf("status %d %s, want 400 mutability", r.status, r.body)
			}
			if got := members(t, e, gid); !sameIDs(got, []string{a}) {
				t.Fatalf("members %v after a refused write, want only %s", got, a)
			}
		})
	}
	e.must(204, "PATCH", "/Groups/"+gid, ops(`{"op":"add","path":"members","value":[{"value":"`+b+`"}]}`))
	e.must(204, "PATCH", "/Groups/"+gid, ops(`{"op":"remove","path":`+q(`members[value eq "`+a+`"]`)+`}`))
	if got := members(t, e, gid); !sameIDs(got, []string{b}) {
		t.Fatalf("members %v after add and remove, want only %s", got, b)
	}
	e.must(204, "PATCH", "/Groups/"+gid, ops(`{"op":"replace","path":"members","value":`+memberList(a, b)+`}`))
	if got := members(t, e, gid); !sameIDs(got, []string{a, b}) {
		t.Fatalf("members %v after replace, want %s and %s", got, a, b)
	}
}
