package scim

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func ops(list ...string) string {
	return `{` + patchSchema + `,"Operations":[` + strings.Join(list, ",") + `]}`
}

// patchConfig keeps what the Entra PATCH examples touch.
var patchAttributes = []string{
	"userName", "active", "displayName", "title", "nickName", "externalId",
	`emails[type eq "work"].value`, "name.givenName", "name.familyName",
	`addresses[type eq "work"].formatted`,
	"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
	"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
	"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
}

func TestPatchUser(t *testing.T) {
	ent := func(k string) string { return schemaEnterprise + ":" + k }
	tests := []struct {
		name string
		// noflag and flag are the request bodies in each mode ("" = same as noflag).
		noflag, flag string
		want         map[string]any // dotted path → value; nil value = absent
	}{
		{
			name:   "disable",
			noflag: ops(`{"op":"Replace","path":"active","value":"False"}`),
			flag:   ops(`{"op":"replace","path":"active","value":false}`),
			want:   map[string]any{"active": false},
		},
		{
			name:   "add single-valued",
			noflag: ops(`{"op":"Add","path":"nickName","value":"Babs"}`),
			flag:   ops(`{"op":"add","path":"nickName","value":"Babs"}`),
			want:   map[string]any{"nickName": "Babs"},
		},
		{
			name: "replace several attributes",
			noflag: ops(`{"op":"Replace","path":"displayName","value":"Alice Smyth"}`,
				`{"op":"Replace","path":"emails[type eq \"work\"].value","value":"alice.smyth@contoso.com"}`,
				`{"op":"Replace","path":"name.givenName","value":"Alicia"}`,
				`{"op":"Replace","path":"name.familyName","value":"Smyth"}`,
				`{"op":"Replace","path":"externalId","value":"asmyth"}`,
				`{"op":"Replace","path":"`+ent("employeeNumber")+`","value":"42"}`),
			flag: ops(`{"op":"replace","path":"emails[type eq \"work\"].value","value":"alice.smyth@contoso.com"}`,
				`{"op":"replace","value":{"displayName":"Alice Smyth","name.givenName":"Alicia","name.familyName":"Smyth","externalId":"asmyth","`+ent("employeeNumber")+`":"42"}}`),
			want: map[string]any{"displayName": "Alice Smyth", "emails.0.value": "alice.smyth@contoso.com", "emails.0.type": "work",
				"name.givenName": "Alicia", "name.familyName": "Smyth", "externalId": "asmyth", schemaEnterprise + ".employeeNumber": "42",
				"emails.1": nil},
		},
		{
			name:   "add work email to a user without one creates it",
			noflag: ops(`{"op":"Remove","path":"emails[type eq \"work\"]"}`, `{"op":"Add","path":"emails[type eq \"work\"].value","value":"x@y.com"}`),
			want:   map[string]any{"emails.0.type": "work", "emails.0.value": "x@y.com", "emails.1": nil},
		},
		{
			name:   "title, department, address in one request",
			noflag: ops(`{"op":"Add","path":"title","value":"Engineer"}`, `{"op":"Add","path":"`+ent("department")+`","value":"Retail"}`, `{"op":"Replace","path":"addresses[type eq \"work\"].formatted","value":"18/2111"}`),
			want:   map[string]any{"title": "Engineer", schemaEnterprise + ".department": "Retail", "addresses.0.formatted": "18/2111", "addresses.0.type": "work"},
		},
		{
			name:   "manager as a complex list (doc example 5)",
			noflag: ops(`{"op":"Add","path":"manager","value":[{"$ref":"http://x/Users/MGR","value":"MGR"}]}`),
			flag:   ops(`{"op":"add","path":"` + ent("manager") + `","value":"MGR"}`),
			want:   map[string]any{schemaEnterprise + ".manager.value": "MGR"},
		},
		{
			name:   "manager removed by filter",
			noflag: ops(`{"op":"Add","path":"`+ent("manager")+`","value":"MGR"}`, `{"op":"Remove","path":"manager[value eq \"MGR\"]"}`),
			flag:   ops(`{"op":"add","path":"`+ent("manager")+`","value":"MGR"}`, `{"op":"remove","path":"`+ent("manager")+`[value eq \"MGR\"]"}`),
			want:   map[string]any{schemaEnterprise: nil},
		},
		{
			name:   "manager removed without filter and replaced with empty",
			noflag: ops(`{"op":"Add","path":"`+ent("manager")+`","value":"MGR"}`, `{"op":"Remove","path":"`+ent("manager")+`"}`),
			flag:   ops(`{"op":"add","path":"`+ent("manager")+`","value":"MGR"}`, `{"op":"replace","path":"`+ent("manager")+`","value":""}`),
			want:   map[string]any{schemaEnterprise + ".manager": nil},
		},
		{
			name:   "userName, op and key case",
			noflag: `{"Operations":[{"OP":"REPLACE","Path":"userName","Value":"new-upn@contoso.com"}],` + patchSchema + `}`,
			want:   map[string]any{"userName": "new-upn@contoso.com"},
		},
		{
			name:   "enable with string",
			noflag: ops(`{"op":"Replace","path":"active","value":"False"}`, `{"op":"Replace","path":"active","value":"True"}`),
			flag:   ops(`{"op":"replace","path":"active","value":false}`, `{"op":"replace","path":"active","value":true}`),
			want:   map[string]any{"active": true},
		},
		{
			name:   "path-less extension object and core-qualified path",
			noflag: ops(`{"op":"add","value":{"` + schemaEnterprise + `":{"department":"Ops"},"urn:ietf:params:scim:schemas:core:2.0:User:title":"CTO"}}`),
			want:   map[string]any{schemaEnterprise + ".department": "Ops", "title": "CTO", "urn:ietf:params:scim:schemas:core:2.0:User:title": nil, "name.givenName": "Alice"},
		},
		{
			name:   "unconfigured attribute accepted, not stored",
			noflag: ops(`{"op":"Add","path":"preferredLanguage","value":"en"}`, `{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:Custom:2.0:User:badge","value":"1"}`),
			flag:   ops(`{"op":"add","value":{"preferredLanguage":"en","urn:ietf:params:scim:schemas:extension:Custom:2.0:User:badge":"1"}}`),
			want:   map[string]any{"preferredLanguage": nil},
		},
		{
			// Okta echoes the id in a path-less replace (its group rename
			// does): what a GET returned, not a change of the id.
			name:   "path-less value carrying the id",
			noflag: ops(`{"op":"replace","value":{"id":"whatever","displayName":"Al","meta":{"resourceType":"User"}}}`),
			want:   map[string]any{"displayName": "Al"},
		},
		{
			name:   "remove name sub-attribute",
			noflag: ops(`{"op":"Remove","path":"name.familyName"}`),
			want:   map[string]any{"name.familyName": nil, "name.givenName": "Alice"},
		},
	}
	for _, m := range modes {
		for _, tt := range tests {
			t.Run(m.name+"/"+tt.name, func(t *testing.T) {
				cfg := defaultConfig()
				cfg.UserAttributes = patchAttributes
				e := newEnv(t, m.flag, cfg)
				r := e.must(201, "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice@contoso.com","externalId":"alice","active":true,"displayName":"Alice Smith","emails":[{"primary":true,"type":"work","value":"alice@contoso.com"}],"name":{"givenName":"Alice","familyName":"Smith"}}`)
				id := r.json(t)["id"].(string)
				body := tt.noflag
				if m.flag && tt.flag != "" {
					body = tt.flag
				}
				got := e.must(200, "PATCH", "/Users/"+id, body).json(t)
				if again := getUser(t, e, id); fmt.Sprint(again) != fmt.Sprint(got) {
					t.Errorf("GET after PATCH differs from the PATCH response:\n%v\n%v", again, got)
				}
				for path, want := range tt.want {
					if v := lookup(got, strings.TrimSpace(path)); fmt.Sprint(v) != fmt.Sprint(want) {
						t.Errorf("%s = %v, want %v (resource %v)", path, v, want, got)
					}
				}
				if _, ok := got["name.givenName"]; ok {
					t.Error("dotted key stored literally")
				}
			})
		}
	}
}

// lookup walks a dotted path; the enterprise URN is one segment.
func lookup(doc map[string]any, path string) any {
	var v any = doc
	if strings.HasPrefix(path, schemaEnterprise) {
		v = doc[schemaEnterprise]
		path = strings.TrimPrefix(strings.TrimPrefix(path, schemaEnterprise), ".")
		if path == "" {
			return v
		}
	}
	for _, p := range strings.Split(path, ".") {
		var i int
		if _, err := fmt.Sscanf(p, "%d", &i); err == nil {
			v = dig(v, i)
		} else {
			v = dig(v, p)
		}
	}
	return v
}

func TestPatchIsAtomic(t *testing.T) {
	tests := []struct {
		name     string
		bad      string
		scimType string
	}{
		{"unknown attribute", `{"op":"add","path":"noSuchThing","value":"x"}`, "invalidPath"},
		{"unparsable path", `{"op":"add","path":"emails[type eq","value":"x"}`, "invalidPath"},
		{"wrong type", `{"op":"replace","path":"active","value":"perhaps"}`, "invalidValue"},
		{"read-only", `{"op":"replace","path":"id","value":"other"}`, "mutability"},
		{"read-only meta", `{"op":"replace","path":"meta.created","value":"2001-01-01T00:00:00Z"}`, "mutability"},
		{"unknown op", `{"op":"merge","path":"title","value":"x"}`, "invalidSyntax"},
		{"remove without path", `{"op":"remove"}`, "noTarget"},
		{"filter matches nothing, cannot create", `{"op":"replace","path":"emails[value co \"nobody\"].display","value":"x"}`, "noTarget"},
		{"remove userName", `{"op":"remove","path":"userName"}`, "invalidValue"},
		{"path-less value not an object", `{"op":"replace","value":"x"}`, "invalidValue"},
		{"add without value", `{"op":"add","path":"title"}`, "invalidValue"},
		{"replace without value", `{"op":"replace","path":"title"}`, "invalidValue"},
		{"replace with null", `{"op":"Replace","path":"active","value":null}`, "invalidValue"},
		{"path-less replace without value", `{"op":"replace"}`, "invalidValue"},
		{"add of null", `{"op":"add","path":"emails","value":null}`, "invalidValue"},
		{"filter literal not the boolean the schema says", `{"op":"add","path":"emails[primary eq \"True\"].value","value":"x@contoso.com"}`, "invalidFilter"},
		{"filter literal not the string the schema says", `{"op":"add","path":"emails[type eq true].value","value":"x@contoso.com"}`, "invalidFilter"},
		{"single-quoted filter value", `{"op":"add","path":"emails[type eq 'home'].value","value":"x@contoso.com"}`, "invalidFilter"},
		{"filtered add changing what its filter selects", `{"op":"add","path":"emails[type eq \"work\"]","value":{"type":"home","value":"h@contoso.com"}}`, "invalidValue"},
		{"filtered add creating what its filter excludes", `{"op":"add","path":"emails[type eq \"home\"]","value":{"type":"work","value":"w2@contoso.com"}}`, "invalidValue"},
		{"filtered add of the sub-attribute its filter pins", `{"op":"add","path":"emails[type eq \"work\"].type","value":"home"}`, "invalidValue"},
		{"filtered add contradicting a filter that is no equality", `{"op":"add","path":"emails[value ew \"@contoso.com\"]","value":{"value":"a@fabrikam.com"}}`, "invalidValue"},
		{"filtered replace creating what its filter excludes", `{"op":"replace","path":"emails[type eq \"home\"]","value":{"type":"work","value":"w2@contoso.com"}}`, "invalidValue"},
		{"filtered replace creating with the sub-attribute its filter pins", `{"op":"replace","path":"emails[type eq \"home\"].type","value":"work"}`, "invalidValue"},
	}
	for _, m := range modes {
		for _, tt := range tests {
			t.Run(m.name+"/"+tt.name, func(t *testing.T) {
				e := newEnv(t, m.flag, defaultConfig())
				id := e.createUser("alice@contoso.com", "alice", "alice@contoso.com")
				before := getUser(t, e, id)
				r := e.do("PATCH", "/Users/"+id, ops(`{"op":"replace","path":"name.givenName","value":"Changed"}`, tt.bad))
				got := r.json(t)
				if r.status != 400 || got["scimType"] != tt.scimType {
					t.Fatalf("status %d scimType %v (%v), want 400 %s", r.status, got["scimType"], got["detail"], tt.scimType)
				}
				if after := getUser(t, e, id); fmt.Sprint(after) != fmt.Sprint(before) {
					t.Fatalf("failed PATCH changed the user:\n%v\n%v", before, after)
				}
			})
		}
	}
}

func TestManagerFilter(t *testing.T) {
	cfg := defaultConfig()
	cfg.UserAttributes = patchAttributes
	e := newEnv(t, true, cfg)
	mgr := e.createUser("boss@contoso.com", "boss", "boss@contoso.com")
	id := e.createUser("a@contoso.com", "a", "a@contoso.com")
	e.must(200, "PATCH", "/Users/"+id, ops(`{"op":"add","path":"`+schemaEnterprise+`:manager","value":"`+mgr+`"}`))
	for f, want := range map[string]float64{
		`id eq "` + id + `" and manager eq "` + mgr + `"`:  1,
		`id eq "` + id + `" and manager eq "someone"`:      0,
		`id eq "` + mgr + `" and manager eq "` + mgr + `"`: 0,
	} {
		got := e.must(200, "GET", "/Users?filter="+url.QueryEscape(f)+"&attributes=id", "").json(t)
		if got["totalResults"] != want {
			t.Errorf("%s: %v, want %v", f, got["totalResults"], want)
		}
	}
}
