package scim

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"
	"github.com/idrecon/idrecon/runtime/audit"
	"github.com/idrecon/idrecon/runtime/store"
)

// TestNoOpWrite: a write that leaves the stored record as it was is
// answered as SCIM asks but neither reaches the store (no commit, so the
// version, ETag and lastModified stay) nor the audit log, which a token
// holder could otherwise flood with writes that change nothing.
func TestNoOpWrite(t *testing.T) {
	userBody := func(given string) string {
		return `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
	"externalId":"alice","userName":"alice@contoso.com","active":true,"displayName":"Someone",
	"emails":[{"primary":true,"type":"work","value":"alice@contoso.com"}],
	"meta":{"resourceType":"User"},"name":{"formatted":"Some One","familyName":"One","givenName":` + q(given) + `},"roles":[]}`
	}
	groupBody := func(name, member string) string {
		return `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"externalId":"eng","displayName":` + q(name) +
			`,"members":[{"value":` + q(member) + `}]}`
	}
	ops := func(list string) string { return `{` + patchSchema + `,"Operations":[` + list + `]}` }
	type ids struct{ user, other, group string }
	tests := []struct {
		name    string
		method  string
		kind    string // Users or Groups: the resource written
		body    func(ids) string
		status  int
		changes bool
	}{
		{"user patch replace same value", "PATCH", "Users", func(ids) string {
			return ops(`{"op":"replace","path":"name.givenName","value":"Some"}`)
		}, http.StatusOK, false},
		{"user patch replace active as it is", "PATCH", "Users", func(ids) string {
			return ops(`{"op":"Replace","value":{"active":true}}`)
		}, http.StatusOK, false},
		{"user patch of an attribute not kept", "PATCH", "Users", func(ids) string {
			return ops(`{"op":"replace","path":"displayName","value":"Someone Else"}`)
		}, http.StatusOK, false},
		{"user put same", "PUT", "Users", func(ids) string { return userBody("Some") }, http.StatusOK, false},
		{"group patch replace same name", "PATCH", "Groups", func(ids) string {
			return ops(`{"op":"replace","path":"displayName","value":"Engineering"}`)
		}, http.StatusNoContent, false},
		{"group put same", "PUT", "Groups", func(i ids) string { return groupBody("Engineering", i.user) }, http.StatusOK, false},
		{"member add of a present member", "PATCH", "Groups", func(i ids) string {
			return ops(`{"op":"Add","path":"members","value":[{"$ref":null,"value":` + q(i.user) + `}]}`)
		}, http.StatusNoContent, false},
		{"member add of a present member, not Entra's shape", "PATCH", "Groups", func(i ids) string {
			return ops(`{"op":"add","path":"members","value":{"value":` + q(i.user) + `}}`)
		}, http.StatusNoContent, false},
		{"member remove of an absent member", "PATCH", "Groups", func(i ids) string {
			return ops(`{"op":"Remove","path":"members","value":[{"value":` + q(i.other) + `}]}`)
		}, http.StatusNoContent, false},
		{"member remove by filter of an absent member", "PATCH", "Groups", func(i ids) string {
			return ops(`{"op":"remove","path":"members[value eq \"` + i.other + `\"]"}`)
		}, http.StatusNoContent, false},

		{"user patch that changes", "PATCH", "Users", func(ids) string {
			return ops(`{"op":"replace","path":"name.givenName","value":"Other"}`)
		}, http.StatusOK, true},
		{"user put that changes", "PUT", "Users", func(ids) string { return userBody("Other") }, http.StatusOK, true},
		{"group put that changes", "PUT", "Groups", func(i ids) string { return groupBody("Engineering 2", i.user) }, http.StatusOK, true},
		{"member add that changes", "PATCH", "Groups", func(i ids) string {
			return ops(`{"op":"Add","path":"members","value":[{"value":` + q(i.other) + `}]}`)
		}, http.StatusNoContent, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var commits atomic.Int64
			var ticks atomic.Int64
			start := time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)
			e := newEnvWith(t, false, defaultConfig(),
				store.Options{OnCommit: func(memdb.Changes) { commits.Add(1) }},
				// Every write stamps a later time: an unchanged
				// lastModified then says no write was made.
				Options{Now: func() time.Time { return start.Add(time.Duration(ticks.Add(1)) * time.Second) }})
			var i ids
			i.user = e.createUser("alice@contoso.com", "alice", "alice@contoso.com")
			i.other = e.createUser("bob@contoso.com", "bob", "bob@contoso.com")
			i.group = e.createGroup("Engineering", "eng")
			e.must(http.StatusNoContent, "PATCH", "/Groups/"+i.group, ops(`{"op":"add","path":"members","value":[{"value":`+q(i.user)+`}]}`))
			path := "/Users/" + i.user
			if tc.kind == "Groups" {
				path = "/Groups/" + i.group
			}

			before := e.must(http.StatusOK, "GET", path, "")
			commitsBefore, eventsBefore := commits.Load(), len(e.audit.Events())
			r := e.must(tc.status, tc.method, path, tc.body(i))
			after := e.must(http.StatusOK, "GET", path, "")

			if tc.status == http.StatusOK && r.header.Get("ETag") != after.header.Get("ETag") {
				t.Errorf("answered ETag %s, the resource's is %s", r.header.Get("ETag"), after.header.Get("ETag"))
			}
			version := func(r resp) any { return dig(r.json(t), "meta", "version") }
			modified := func(r resp) any { return dig(r.json(t), "meta", "lastModified") }
			gotCommits := commits.Load() - commitsBefore
			events := e.audit.Events()[eventsBefore:]
			if !tc.changes {
				if b, a := before.header.Get("ETag"), after.header.Get("ETag"); a != b || version(after) != version(before) {
					t.Errorf("ETag %s → %s, version %v → %v: a write that changes nothing made a new version", b, a, version(before), version(after))
				}
				if b, a := modified(before), modified(after); a != b {
					t.Errorf("lastModified %v → %v: a write that changes nothing stamped the resource", b, a)
				}
				if gotCommits != 0 {
					t.Errorf("%d store commits for a write that changes nothing, want none", gotCommits)
				}
				if len(events) != 0 {
					t.Errorf("audited a write that changes nothing: %+v", events)
				}
				if tc.status == http.StatusOK && string(r.body) != string(after.body) {
					t.Errorf("answered\n%s\nthe resource is\n%s", r.body, after.body)
				}
				return
			}
			if before.header.Get("ETag") == after.header.Get("ETag") || modified(before) == modified(after) {
				t.Errorf("ETag %s → %s, lastModified %v → %v: a change left them", before.header.Get("ETag"), after.header.Get("ETag"), modified(before), modified(after))
			}
			if gotCommits != 1 {
				t.Errorf("%d store commits for a change, want 1", gotCommits)
			}
			id := i.user
			if tc.kind == "Groups" {
				id = i.group
			}
			op := map[string]string{"PUT": "replace", "PATCH": "patch"}[tc.method]
			rt := map[string]string{"Users": "User", "Groups": "Group"}[tc.kind]
			want := audit.SCIMWrite{Actor: "entra", Op: op, ResourceType: rt, ID: id}
			if len(events) != 1 || events[0] != audit.Event(want) {
				t.Errorf("audit records %+v, want one %+v", events, want)
			}
		})
	}
}
