package scim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/runtime/audit"
	"github.com/idrecon/idrecon/runtime/scim/internal/schema"
	"github.com/idrecon/idrecon/spec"
)

const patchSchema = `"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"]`

func TestTestConnection(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			e := newEnv(t, m.flag, defaultConfig())
			e.createUser("someone@contoso.com", "someone", "someone@contoso.com")
			for _, path := range []string{
				"/Users?filter=userName+eq+%22e0c5ad1f-6f0c-4d1e-9a61-3c0f2b6f1a77%22",
				"/Groups?excludedAttributes=members&filter=displayName+eq+%22e0c5ad1f-6f0c-4d1e-9a61-3c0f2b6f1a77%22",
			} {
				got := e.must(http.StatusOK, "GET", path, "").json(t)
				if got["totalResults"] != 0.0 || len(got["Resources"].([]any)) != 0 || dig(got, "schemas", 0) != uriListResponse {
					t.Errorf("%s: %v, want an empty ListResponse", path, got)
				}
			}
		})
	}
}

func TestAuthAndConfig(t *testing.T) {
	tests := []struct {
		name   string
		cfg    *spec.ScimProvisioning
		token  string
		path   string
		status int
		detail string
	}{
		{"no token", defaultConfig(), "", "/Users", 401, "bearer token"},
		{"wrong token", defaultConfig(), "not-the-token-0000000000000000000000", "/Users", 401, "bearer token"},
		{"first token", defaultConfig(), testToken, "/Users", 200, ""},
		{"rotated token", defaultConfig(), testToken2, "/Users", 200, ""},
		{"disabled", &spec.ScimProvisioning{Enabled: false, Tokens: defaultConfig().Tokens}, testToken, "/Users", 403, "disabled"},
		{"no config", nil, testToken, "/Users", 403, "disabled"},
		{"discovery needs auth", defaultConfig(), "", "/Schemas", 401, ""},
		{"bulk", defaultConfig(), testToken, "/Bulk", 501, ""},
		{"search below a resource type", defaultConfig(), testToken, "/Groups/.search", 501, "not supported"},
		{"unknown endpoint", defaultConfig(), testToken, "/Nope", 404, ""},
		{"too deep", defaultConfig(), testToken, "/Users/a/b", 404, ""},
	}
	for _, m := range modes {
		for _, tt := range tests {
			t.Run(m.name+"/"+tt.name, func(t *testing.T) {
				e := newEnv(t, m.flag, tt.cfg)
				r := e.doAs(tt.token, "GET", tt.path, "")
				if r.status != tt.status {
					t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
				}
				if r.header.Get("Content-Type") != ContentType {
					t.Errorf("content type %q", r.header.Get("Content-Type"))
				}
				body := r.json(t)
				if tt.status >= 400 {
					if dig(body, "schemas", 0) != uriError || body["status"] != fmt.Sprint(tt.status) {
						t.Errorf("not a SCIM error: %s", r.body)
					}
					if !strings.Contains(fmt.Sprint(body["detail"]), tt.detail) {
						t.Errorf("detail %q does not mention %q", body["detail"], tt.detail)
					}
				}
				if tt.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
				}
			})
		}
	}
}

// A 405 names the methods the resource does take: RFC 9110 §15.5.6 (the
// origin server MUST send Allow in a 405), so a client that used the wrong
// method learns the right one.
func TestMethodNotAllowedNamesAllowed(t *testing.T) {
	e := newEnv(t, false, defaultConfig())
	id := e.createUser("alice@contoso.com", "alice", "alice@contoso.com")
	for _, tt := range []struct {
		method, path, allow string
	}{
		{"DELETE", "/Users", "GET, HEAD, POST"},
		{"PATCH", "/Groups", "GET, HEAD, POST"},
		{"POST", "/Users/" + id, "GET, HEAD, PUT, PATCH, DELETE"},
		{"PUT", "/ServiceProviderConfig", "GET, HEAD"},
		{"POST", "/Schemas", "GET, HEAD"},
		{"DELETE", "/ResourceTypes/User", "GET, HEAD"},
	} {
		r := e.do(tt.method, tt.path, "")
		if r.status != 405 {
			t.Errorf("%s %s: status %d, want 405", tt.method, tt.path, r.status)
			continue
		}
		if got := r.header.Get("Allow"); got != tt.allow {
			t.Errorf("%s %s: Allow %q, want %q", tt.method, tt.path, got, tt.allow)
		}
	}
}

func TestBasePath(t *testing.T) {
	cfg := defaultConfig()
	cfg.BasePath = "/ssc/api/scim/v2"
	e := newEnv(t, false, cfg)
	e.must(http.StatusOK, "GET", "/Users", "")
	if got := NewServer(e.st, Options{}).BasePath(); got != "/ssc/api/scim/v2" {
		t.Errorf("BasePath() = %q", got)
	}
	e.base = "/api/scim/v2"
	e.must(http.StatusNotFound, "GET", "/Users", "")
	e.base = "/ssc/api/scim/v2x"
	e.must(http.StatusNotFound, "GET", "/Users", "")
}

func TestConfigChangeAppliesWithoutRestart(t *testing.T) {
	forModes(t, testConfigChangeAppliesWithoutRestart)
}

func testConfigChangeAppliesWithoutRestart(t *testing.T, flag bool) {
	e := newEnv(t, flag, defaultConfig())
	e.must(http.StatusOK, "GET", "/Users", "")
	e.setConfig(&spec.ScimProvisioning{Enabled: false})
	e.must(http.StatusForbidden, "GET", "/Users", "")
}

func TestCreateUser(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		status   int
		scimType string
		check    func(t *testing.T, got map[string]any)
	}{
		{
			name:   "entra shape",
			body:   `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"externalId":"alice","userName":"Alice@Contoso.com","active":true,"displayName":"Alice Smith","emails":[{"primary":true,"type":"work","value":"Alice@Contoso.com"}],"meta":{"resourceType":"User"},"name":{"formatted":"Alice Smith","familyName":"Smith","givenName":"Alice"},"roles":[]}`,
			status: 201,
			check: func(t *testing.T, got map[string]any) {
				want := map[string]any{"userName": "Alice@Contoso.com", "externalId": "alice", "active": true}
				for k, v := range want {
					if got[k] != v {
						t.Errorf("%s = %v, want %v (stored exactly as sent)", k, got[k], v)
					}
				}
				if dig(got, "emails", 0, "value") != "Alice@Contoso.com" || dig(got, "emails", 0, "primary") != true ||
					dig(got, "name", "givenName") != "Alice" || dig(got, "name", "familyName") != "Smith" {
					t.Errorf("kept attributes wrong: %v", got)
				}
				for _, k := range []string{"displayName", "roles"} {
					if _, ok := got[k]; ok {
						t.Errorf("%s returned although userAttributes does not keep it", k)
					}
				}
				if dig(got, "name", "formatted") != nil {
					t.Error("name.formatted kept although not configured")
				}
				if dig(got, "meta", "resourceType") != "User" || dig(got, "meta", "version") != `W/"1"` || dig(got, "meta", "created") == nil || dig(got, "meta", "lastModified") == nil || !strings.HasSuffix(fmt.Sprint(dig(got, "meta", "location")), "/Users/"+got["id"].(string)) {
					t.Errorf("meta = %v", got["meta"])
				}
			},
		},
		{
			name:   "old doc shape: nulls, string active, malformed enterprise urn",
			body:   `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0User"],"userName":"bob@contoso.com","active":"True","addresses":null,"phoneNumbers":null,"preferredLanguage":null,"title":null,"department":null,"manager":null,"externalId":"bob","name":{"givenName":"Bob","familyName":null}}`,
			status: 201,
			check: func(t *testing.T, got map[string]any) {
				if got["active"] != true {
					t.Errorf(`active = %#v, want boolean true from "True"`, got["active"])
				}
				if dig(got, "name", "familyName") != nil {
					t.Error("null familyName stored")
				}
			},
		},
		{name: "no schemas", body: `{"userName":"carol@contoso.com"}`, status: 400, scimType: "invalidSyntax"},
		{name: "null schemas", body: `{"schemas":null,"userName":"carol@contoso.com"}`, status: 400, scimType: "invalidSyntax"},
		{name: "missing userName", body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"externalId":"x"}`, status: 400, scimType: "invalidValue"},
		{name: "empty userName", body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"  "}`, status: 400, scimType: "invalidValue"},
		{name: "userName wrong type", body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":12}`, status: 400, scimType: "invalidValue"},
		{name: "active wrong type", body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"d@contoso.com","active":"maybe"}`, status: 400, scimType: "invalidValue"},
		{name: "emails wrong type", body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"d@contoso.com","emails":[7]}`, status: 400, scimType: "invalidValue"},
		{name: "only unknown schema", body: `{"schemas":["urn:example:Thing"],"userName":"e@contoso.com"}`, status: 400, scimType: "invalidValue"},
		{name: "schemas not a list", body: `{"schemas":"urn:ietf:params:scim:schemas:core:2.0:User","userName":"e@contoso.com"}`, status: 400, scimType: "invalidSyntax"},
		{name: "client id and meta ignored", body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"chosen-by-client","userName":"f@contoso.com","meta":{"version":"W/\"9\"","created":"2001-01-01T00:00:00Z"}}`, status: 201,
			check: func(t *testing.T, got map[string]any) {
				if got["id"] == "chosen-by-client" || dig(got, "meta", "version") != `W/"1"` {
					t.Errorf("client id/meta used: %v", got)
				}
			}},
	}
	for _, m := range modes {
		for _, tt := range tests {
			t.Run(m.name+"/"+tt.name, func(t *testing.T) {
				e := newEnv(t, m.flag, defaultConfig())
				r := e.do("POST", "/Users", tt.body)
				if r.status != tt.status {
					t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
				}
				got := r.json(t)
				if tt.scimType != "" && got["scimType"] != tt.scimType {
					t.Errorf("scimType %v, want %s (%s)", got["scimType"], tt.scimType, got["detail"])
				}
				if tt.status == 201 {
					if loc := r.header.Get("Location"); loc != dig(got, "meta", "location") || loc == "" {
						t.Errorf("Location %q, meta.location %v", loc, dig(got, "meta", "location"))
					}
					again := e.must(200, "GET", "/Users/"+got["id"].(string), "").json(t)
					if fmt.Sprint(again) != fmt.Sprint(got) {
						t.Errorf("GET differs from POST response:\n%v\n%v", again, got)
					}
				}
				if tt.check != nil {
					tt.check(t, got)
				}
			})
		}
	}
}

func TestDuplicateUserName(t *testing.T) { forModes(t, testDuplicateUserName) }

func testDuplicateUserName(t *testing.T, flag bool) {
	e := newEnv(t, flag, defaultConfig())
	id := e.createUser("alice@contoso.com", "a", "a@contoso.com")
	r := e.do("POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ALICE@contoso.COM"}`)
	got := r.json(t)
	if r.status != 409 || got["scimType"] != "uniqueness" || !strings.Contains(got["detail"].(string), id) {
		t.Fatalf("status %d %v, want 409 uniqueness naming %s", r.status, got, id)
	}
	other := e.createUser("bob@contoso.com", "b", "b@contoso.com")
	r = e.do("PUT", "/Users/"+other, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"Alice@Contoso.com"}`)
	if r.status != 409 {
		t.Fatalf("PUT to a taken userName: %d", r.status)
	}
	r = e.do("PATCH", "/Users/"+other, `{`+patchSchema+`,"Operations":[{"op":"Replace","path":"userName","value":"alice@CONTOSO.com"}]}`)
	if r.status != 409 {
		t.Fatalf("PATCH to a taken userName: %d", r.status)
	}
	// Changing only the case of one's own userName is fine.
	e.must(200, "PATCH", "/Users/"+id, `{`+patchSchema+`,"Operations":[{"op":"Replace","path":"userName","value":"Alice@Contoso.com"}]}`)
}

func TestUserFilters(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			e := newEnv(t, m.flag, defaultConfig())
			alice := e.createUser("alice@contoso.com", "alice", "alice@contoso.com")
			bob := e.createUser("bob@contoso.com", "Bob", "bob@fabrikam.com")
			carol := e.createUser("carol@contoso.com", "alice", "carol@contoso.com")
			mgr := e.createUser("boss@contoso.com", "boss", "boss@contoso.com")
			e.must(200, "PATCH", "/Users/"+carol, `{`+patchSchema+`,"Operations":[{"op":"Replace","path":"active","value":false}]}`)
			tests := []struct {
				filter string
				want   []string
			}{
				{`userName eq "ALICE@contoso.com"`, []string{alice}},
				{`userName+eq+%22bob%40contoso.com%22`, []string{bob}},
				{`externalId eq "alice"`, []string{alice, carol}},
				{`externalId eq "bob"`, nil}, // case-exact
				{`externalId eq Bob`, []string{bob}},
				{`externalId eq jyoung`, nil},
				{`emails[type eq "work"].value eq "BOB@fabrikam.com"`, []string{bob}},
				{`emails[type eq "work" and value co "fabrikam"]`, []string{bob}},
				{`emails.value ew "@contoso.com"`, []string{alice, carol, mgr}},
				{`id eq "` + alice + `"`, []string{alice}},
				{`id eq ` + alice + ``, []string{alice}},
				{`userName sw "b"`, []string{bob, mgr}},
				{`userName co "OSS"`, []string{mgr}},
				{`externalId pr`, []string{alice, bob, carol, mgr}},
				{`active eq false`, []string{carol}},
				{`active eq true and not (userName eq "bob@contoso.com")`, []string{alice, mgr}},
				{`(userName eq "alice@contoso.com" or userName eq "bob@contoso.com") and active eq true`, []string{alice, bob}},
				{`meta.created gt "2000-01-01T00:00:00Z"`, []string{alice, bob, carol, mgr}},
				{`meta.lastModified lt "2000-01-01T00:00:00Z"`, nil},
				{`name.givenName eq "some"`, []string{alice, bob, carol, mgr}},
				{`USERNAME EQ "alice@contoso.com"`, []string{alice}},
				{`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "alice@contoso.com"`, []string{alice}},
				{`id eq "` + alice + `" and manager eq "` + mgr + `"`, nil},
			}
			for _, tt := range tests {
				path := "/Users?filter=" + tt.filter
				if !strings.Contains(tt.filter, "%") {
					path = "/Users?filter=" + url.QueryEscape(tt.filter)
				}
				got := e.must(200, "GET", path, "").json(t)
				ids := resourceIDs(got)
				if !sameIDs(ids, tt.want) {
					t.Errorf("filter %s: got %v, want %v", tt.filter, ids, tt.want)
				}
				if got["totalResults"] != float64(len(tt.want)) {
					t.Errorf("filter %s: totalResults %v", tt.filter, got["totalResults"])
				}
			}
		})
	}
}

func TestBadFilters(t *testing.T) { forModes(t, testBadFilters) }

func testBadFilters(t *testing.T, flag bool) {
	e := newEnv(t, flag, defaultConfig())
	for _, f := range []string{
		`userName eq`, `userName xx "a"`, `(userName eq "a"`, `nosuch eq "a"`, `emails[nosuch eq "a"]`,
		`active gt true`, `meta.created gt "yesterday"`, `userName co 3`, `name eq "x"`, strings.Repeat("(", 5000),
		`userName eq 'alice@contoso.com'`, `emails[type eq 'work'].value eq "alice@contoso.com"`,
		`active eq "true"`, `userName eq true`, `emails[primary eq "True"]`, `emails[type eq true]`,
	} {
		r := e.do("GET", "/Users?filter="+url.QueryEscape(f), "")
		if r.status != 400 || r.json(t)["scimType"] != "invalidFilter" {
			t.Errorf("filter %q: status %d %s, want 400 invalidFilter", f, r.status, r.body)
		}
	}
}

// A value filter is a whole filter (RFC 7644 §3.4.2.2: valFilter = attrExp
// / logExp / "not" "(" valFilter ")", and logExp joins FILTERs): three terms
// and parentheses inside the brackets are as valid in a GET filter and a
// PATCH path as outside them. The lenient rewrite of
// `emails[type eq "work" or …].value eq "x"` makes such filters itself.
func TestValueFiltersOfAnyShape(t *testing.T) { forModes(t, testValueFiltersOfAnyShape) }

func testValueFiltersOfAnyShape(t *testing.T, flag bool) {
	e := newEnv(t, flag, defaultConfig())
	alice := e.createUser("alice@contoso.com", "alice", "alice@contoso.com")
	bob := e.createUser("bob@contoso.com", "bob", "bob@fabrikam.com")
	for _, tt := range []struct {
		filter string
		want   []string
	}{
		{`emails[type eq "work" and value eq "alice@contoso.com" and primary eq true]`, []string{alice}},
		{`emails[value co "alice" or value co "bob" or value co "carol"]`, []string{alice, bob}},
		{`emails[type eq "work" and (value co "fabrikam" or value co "nowhere")]`, []string{bob}},
		{`emails[(type eq "work") and (value co "fabrikam")]`, []string{bob}},
		{`emails[type eq "work" or type eq "home"].value eq "bob@fabrikam.com"`, []string{bob}},
		{`emails[type eq "work" and primary eq true].value eq "alice@contoso.com"`, []string{alice}},
		{`userName pr and emails[not (type eq "home") and value ew "contoso.com"]`, []string{alice}},
	} {
		r := e.do("GET", "/Users?filter="+url.QueryEscape(tt.filter), "")
		if r.status != 200 {
			t.Errorf("filter %s: status %d %s, want 200", tt.filter, r.status, r.body)
			continue
		}
		if ids := resourceIDs(r.json(t)); !sameIDs(ids, tt.want) {
			t.Errorf("filter %s: got %v, want %v", tt.filter, ids, tt.want)
		}
	}

	gid := e.createGroup("Three", "g3")
	carol := e.createUser("carol@contoso.com", "carol", "carol@contoso.com")
	e.must(204, "PATCH", "/Groups/"+gid, ops(`{"op":"add","path":"members","value":`+memberList(alice, bob, carol)+`}`))
	for _, tt := range []struct {
		name, method, path, body string
		check                    func(t *testing.T)
	}{
		{"remove three members by one filter", "PATCH", "/Groups/" + gid,
			ops(`{"op":"remove","path":` + q(`members[value eq "`+alice+`" or value eq "`+bob+`" or value eq "`+carol+`"]`) + `}`),
			func(t *testing.T) {
				if m := dig(e.must(200, "GET", "/Groups/"+gid, "").json(t), "members"); fmt.Sprint(m) != "[]" {
					t.Errorf("members left: %v", m)
				}
			}},
		{"replace through a three-term filter", "PATCH", "/Users/" + alice,
			ops(`{"op":"replace","path":"emails[type eq \"work\" and primary eq true and value co \"alice\"].value","value":"alice.new@contoso.com"}`),
			func(t *testing.T) {
				if v := dig(getUser(t, e, alice), "emails", 0, "value"); v != "alice.new@contoso.com" {
					t.Errorf("work email = %v", v)
				}
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.method, tt.path, tt.body)
			if r.status/100 != 2 {
				t.Fatalf("status %d %s", r.status, r.body)
			}
			tt.check(t)
		})
	}
}

func resourceIDs(list map[string]any) []string {
	var ids []string
	res, _ := list["Resources"].([]any)
	for _, r := range res {
		ids = append(ids, fmt.Sprint(dig(r, "id")))
	}
	return ids
}

func sameIDs(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	seen := map[string]int{}
	for _, g := range got {
		seen[g]++
	}
	for _, w := range want {
		seen[w]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

func getUser(t *testing.T, e *env, id string) map[string]any {
	t.Helper()
	return e.must(200, "GET", "/Users/"+id, "").json(t)
}

func TestPagination(t *testing.T) { forModes(t, testPagination) }

func testPagination(t *testing.T, flag bool) {
	e := newEnv(t, flag, defaultConfig())
	var all []string
	for i := range 11 {
		all = append(all, e.createUser(fmt.Sprintf("u%02d@contoso.com", i), "x", "x@contoso.com"))
	}
	var walked []string
	for start := 1; start <= 11; start += 5 {
		got := e.must(200, "GET", fmt.Sprintf("/Users?startIndex=%d&count=5", start), "").json(t)
		if got["startIndex"] != float64(start) || got["totalResults"] != 11.0 {
			t.Fatalf("page %d: %v", start, got)
		}
		walked = append(walked, resourceIDs(got)...)
	}
	if !sameIDs(walked, all) {
		t.Fatalf("pages walked %d users, want each of 11 once: %v", len(walked), walked)
	}
	got := e.must(200, "GET", "/Users?count=0", "").json(t)
	if got["totalResults"] != 11.0 || len(got["Resources"].([]any)) != 0 {
		t.Fatalf("count=0: %v", got)
	}
	got = e.must(200, "GET", "/Users?startIndex=0&count=100000", "").json(t)
	if got["itemsPerPage"] != 11.0 || got["startIndex"] != 1.0 {
		t.Fatalf("clamped page: %v", got)
	}
	if r := e.do("GET", "/Users?count=many", ""); r.status != 400 {
		t.Fatalf("bad count: %d", r.status)
	}
	// Out of an int's range is out of range still, not malformed: RFC 7644
	// §3.4.2.4 reads a startIndex below 1 as 1, a count above the maximum as
	// the maximum and a negative count as 0.
	const huge = "99999999999999999999999"
	for _, tt := range []struct {
		query                 string
		start, items, perPage float64
	}{
		{"startIndex=-" + huge + "&count=" + huge, 1, 11, 11},
		{"startIndex=1&count=-" + huge, 1, 0, 0},
		{"startIndex=" + huge + "&count=5", -1, 0, 0},
		{"startIndex=" + huge, -1, 0, 0},
	} {
		r := e.do("GET", "/Users?"+tt.query, "")
		if r.status != 200 {
			t.Fatalf("%s: status %d %s, want 200", tt.query, r.status, r.body)
		}
		got := r.json(t)
		if got["totalResults"] != 11.0 || got["itemsPerPage"] != tt.perPage || len(got["Resources"].([]any)) != int(tt.items) ||
			(tt.start > 0 && got["startIndex"] != tt.start) || got["startIndex"].(float64) < 1 {
			t.Errorf("%s: %v", tt.query, got)
		}
	}
	// The same on a filtered list, which pages without a cursor.
	for _, query := range []string{"startIndex=" + huge + "&count=" + huge, "startIndex=-" + huge + "&count=-" + huge} {
		e.must(200, "GET", "/Users?filter="+url.QueryEscape(`userName sw "u"`)+"&"+query, "")
	}
}

// A page that follows another starts after the last resource that page
// showed, not at a position counted again: a resource deleted from an
// earlier page does not push one out of the next, and the totals are
// current. Users and groups alike.
func TestPagesFollowTheirCursor(t *testing.T) {
	for _, rt := range []struct {
		path, name string
		create     func(e *env, i int) string
	}{
		{"/Users", "userName", func(e *env, i int) string {
			return e.createUser(fmt.Sprintf("u%d@contoso.com", i), "x", "x@contoso.com")
		}},
		{"/Groups", "displayName", func(e *env, i int) string {
			return e.createGroup(fmt.Sprintf("group %d", i), fmt.Sprintf("g%d", i))
		}},
	} {
		t.Run(rt.path[1:], func(t *testing.T) {
			e := newEnv(t, true, defaultConfig())
			var all []string
			for i := range 9 {
				all = append(all, rt.create(e, i))
			}
			page := func(start, count int, extra string) (got []string, total float64) {
				t.Helper()
				r := e.must(200, "GET", fmt.Sprintf("%s?startIndex=%d&count=%d%s", rt.path, start, count, extra), "").json(t)
				return resourceIDs(r), r["totalResults"].(float64)
			}
			first, _ := page(1, 3, "")
			second, _ := page(4, 3, "")
			// Delete the first of the first page: counting again would
			// start the third page one later and skip one.
			e.must(204, "DELETE", rt.path+"/"+first[0], "")
			third, total := page(7, 3, "")
			if total != 8 {
				t.Errorf("totalResults after a delete: %v, want 8", total)
			}
			walked := slices.Concat(first, second, third)
			if !sameIDs(walked, all) {
				t.Fatalf("pages walked %v, want each of the 9 once", walked)
			}
			if !slices.IsSorted(walked) {
				t.Errorf("pages not in id order: %v", walked)
			}
			// A page no other page ended at is counted: the 8th of those left.
			left := slices.DeleteFunc(slices.Clone(walked), func(id string) bool { return id == first[0] })
			if rest, _ := page(8, 5, "&attributes="+rt.name); !slices.Equal(rest, left[7:]) {
				t.Errorf("counted page: %v, want %v", rest, left[7:])
			}
			// A projected page follows its cursor too and keeps the projection.
			r := e.must(200, "GET", rt.path+"?startIndex=4&count=3&attributes="+rt.name, "").json(t)
			if got := resourceIDs(r); !slices.Equal(got, second) {
				t.Errorf("projected page: %v, want %v", got, second)
			}
			if res := dig(r, "Resources", 0).(map[string]any); res[rt.name] == nil || len(res) != 3 {
				t.Errorf("projected resource: %v, want id, schemas and %s", res, rt.name)
			}
		})
	}
}

func TestCursorsAreBounded(t *testing.T) {
	var c cursors
	for i := range maxCursors + 10 {
		c.remember(cursorKey{"User", i}, fmt.Sprint(i))
	}
	if len(c.last) != maxCursors {
		t.Fatalf("%d cursors kept, want at most %d", len(c.last), maxCursors)
	}
	if _, ok := c.after(cursorKey{"User", 0}); ok {
		t.Error("the oldest cursor was kept")
	}
	if id, ok := c.after(cursorKey{"User", maxCursors + 9}); !ok || id != fmt.Sprint(maxCursors+9) {
		t.Errorf("newest cursor: %q %v", id, ok)
	}
	c.remember(cursorKey{"User", maxCursors + 9}, "again")
	if len(c.ring) != maxCursors {
		t.Errorf("a cursor remembered twice took two places")
	}
}

func TestAttributeProjection(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			e := newEnv(t, m.flag, defaultConfig())
			id := e.createUser("alice@contoso.com", "alice", "alice@contoso.com")
			got := e.must(200, "GET", "/Users/"+id+"?attributes=userName,name.givenName", "").json(t)
			if got["id"] != id || got["userName"] != "alice@contoso.com" || dig(got, "name", "givenName") != "Some" || dig(got, "name", "familyName") != nil || got["emails"] != nil || got["meta"] != nil {
				t.Errorf("attributes=: %v", got)
			}
			got = e.must(200, "GET", "/Users/"+id+"?excludedAttributes=emails,name.familyName", "").json(t)
			if got["emails"] != nil || dig(got, "name", "familyName") != nil || dig(got, "name", "givenName") != "Some" || got["userName"] == nil {
				t.Errorf("excludedAttributes=: %v", got)
			}
			list := e.must(200, "GET", "/Users?filter="+url.QueryEscape(`id eq "`+id+`"`)+"&attributes=id", "").json(t)
			if r := dig(list, "Resources", 0).(map[string]any); len(r) != 2 || r["id"] != id {
				t.Errorf("attributes=id: %v", r)
			}
			r := e.must(200, "PATCH", "/Users/"+id+"?attributes=active", `{`+patchSchema+`,"Operations":[{"op":"replace","path":"active","value":false}]}`).json(t)
			if r["active"] != false || r["userName"] != nil {
				t.Errorf("PATCH with attributes=: %v", r)
			}
			// A PATCH that names attributes is answered 200 with them (RFC
			// 7644 §3.5.2), for a group as for a user, on the member path too.
			gid := e.createGroup("Developers", "d")
			for _, body := range []string{
				ops(`{"op":"replace","path":"displayName","value":"Devs"}`),
				ops(`{"op":"add","path":"members","value":` + memberList(id) + `}`),
			} {
				g := e.must(200, "PATCH", "/Groups/"+gid+"?attributes=displayName", body).json(t)
				if g["id"] != gid || g["displayName"] != "Devs" || g["members"] != nil || g["meta"] != nil {
					t.Errorf("group PATCH with attributes=: %v", g)
				}
			}
			g := e.must(200, "PATCH", "/Groups/"+gid+"?attributes=members", ops(`{"op":"remove","path":"members","value":`+memberList(id)+`}`)).json(t)
			if m, ok := g["members"].([]any); !ok || len(m) != 0 {
				t.Errorf("group PATCH with attributes=members: %v", g)
			}
		})
	}
}

// The names in attributes= and excludedAttributes= are a comma-separated
// list (RFC 7644 §3.4.2.5), and a space after the comma (as a client that
// joins with ", " writes it) does not change which attribute a name names:
// a whole extension's URI included. schemas lists the extension only when
// the projected resource holds its attributes (RFC 7643 §3).
func TestProjectionNamesAreTrimmed(t *testing.T) { forModes(t, testProjectionNamesAreTrimmed) }

func testProjectionNamesAreTrimmed(t *testing.T, flag bool) {
	cfg := defaultConfig()
	cfg.UserAttributes = patchAttributes
	e := newEnv(t, flag, cfg)
	r := e.must(201, "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","`+schemaEnterprise+`"],"userName":"a@contoso.com","displayName":"A","title":"Boss",
		"`+schemaEnterprise+`":{"department":"Retail","employeeNumber":"7"}}`)
	id := r.json(t)["id"].(string)
	for _, tt := range []struct {
		name, query string
		want        map[string]any // dotted path → value; nil = absent
	}{
		{"attributes, extension after a space", "attributes=" + url.QueryEscape("userName, "+schemaEnterprise),
			map[string]any{"userName": "a@contoso.com", schemaEnterprise + ".department": "Retail", "title": nil}},
		{"attributes, spaces around names", "attributes=" + url.QueryEscape(" title ,  displayName "),
			map[string]any{"title": "Boss", "displayName": "A", "userName": nil, schemaEnterprise: nil, "schemas.1": nil}},
		{"excludedAttributes, extension after a space", "excludedAttributes=" + url.QueryEscape("title, "+schemaEnterprise),
			map[string]any{"userName": "a@contoso.com", "displayName": "A", "title": nil, schemaEnterprise: nil, "schemas.1": nil}},
		{"excludedAttributes, qualified attribute after a space", "excludedAttributes=" + url.QueryEscape("displayName, "+schemaEnterprise+":department"),
			map[string]any{"title": "Boss", "displayName": nil, schemaEnterprise + ".department": nil, schemaEnterprise + ".employeeNumber": "7"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := e.must(200, "GET", "/Users/"+id+"?"+tt.query, "").json(t)
			for path, want := range tt.want {
				if v := lookup(got, path); fmt.Sprint(v) != fmt.Sprint(want) {
					t.Errorf("%s = %v, want %v (resource %v)", path, v, want, got)
				}
			}
		})
	}
}

func TestUnconfiguredAttributesAreDropped(t *testing.T) {
	cfg := defaultConfig()
	cfg.UserAttributes = []string{"displayName", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", `phoneNumbers[type eq "mobile"].value`}
	e := newEnv(t, false, cfg)
	r := e.must(201, "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a@contoso.com","displayName":" Ａlice  ","title":"Boss","phoneNumbers":[{"type":"work","value":"1"},{"type":"mobile","value":"+1 555"}],
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Retail","manager":{"value":"m1"}}}`).json(t)
	if r["displayName"] != " Ａlice  " {
		t.Errorf("displayName not stored exactly as sent: %q", r["displayName"])
	}
	if r["title"] != nil || r["active"] != nil || r["externalId"] != nil {
		t.Errorf("unconfigured attributes stored: %v", r)
	}
	ext := r[schemaEnterprise].(map[string]any)
	if ext["department"] != nil || dig(ext, "manager", "value") != "m1" {
		t.Errorf("enterprise: %v", ext)
	}
	if phones := r["phoneNumbers"].([]any); len(phones) != 1 || dig(phones, 0, "value") != "+1 555" {
		t.Errorf("phones: %v", phones)
	}
	if dig(r, "schemas", 1) != schemaEnterprise {
		t.Errorf("schemas: %v", r["schemas"])
	}
}

const schemaEnterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

func TestETags(t *testing.T) { forModes(t, testETags) }

func testETags(t *testing.T, flag bool) {
	e := newEnv(t, flag, defaultConfig())
	id := e.createUser("a@contoso.com", "a", "a@contoso.com")
	r := e.must(200, "GET", "/Users/"+id, "")
	if r.header.Get("ETag") != `W/"1"` {
		t.Fatalf("ETag %q", r.header.Get("ETag"))
	}
	body := `{` + patchSchema + `,"Operations":[{"op":"replace","path":"name.givenName","value":"Z"}]}`
	e.must(200, "PATCH", "/Users/"+id, body, "If-Match", `W/"1"`)
	r = e.do("PATCH", "/Users/"+id, body, "If-Match", `W/"1"`)
	if r.status != 412 {
		t.Fatalf("stale If-Match: %d %s", r.status, r.body)
	}
	e.must(204, "DELETE", "/Users/"+id, "", "If-Match", `W/"2"`)
	r = e.must(200, "GET", "/ServiceProviderConfig", "")
	if dig(r.json(t), "etag", "supported") != true {
		t.Fatal("etag not advertised")
	}
}

// etag.supported is advertised, so a conditional GET works as RFC 7644
// §3.14 describes: If-None-Match with the current version is answered 304
// without a body; any other version (or none) gets the resource.
func TestConditionalGet(t *testing.T) {
	e := newEnv(t, false, defaultConfig())
	uid := e.createUser("a@contoso.com", "a", "a@contoso.com")
	gid := e.createGroup("Developers", "g1")
	for _, tt := range []struct {
		name, path, ifNoneMatch string
		status                  int
	}{
		{"user unchanged", "/Users/" + uid, `W/"1"`, 304},
		{"user unchanged, one of a list", "/Users/" + uid, `W/"7", W/"1"`, 304},
		{"user any", "/Users/" + uid, `*`, 304},
		{"user changed since", "/Users/" + uid, `W/"0"`, 200},
		{"group unchanged", "/Groups/" + gid + "?excludedAttributes=members", `W/"1"`, 304},
		{"group changed since", "/Groups/" + gid, `W/"9"`, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("GET", tt.path, "", "If-None-Match", tt.ifNoneMatch)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status == 304 && (len(r.body) != 0 || r.header.Get("ETag") == "") {
				t.Fatalf("304 with body %q, ETag %q", r.body, r.header.Get("ETag"))
			}
		})
	}
}

func TestPutReplacesUser(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			e := newEnv(t, m.flag, defaultConfig())
			id := e.createUser("a@contoso.com", "a", "a@contoso.com")
			got := e.must(200, "PUT", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a2@contoso.com","active":"False"}`).json(t)
			if got["userName"] != "a2@contoso.com" || got["active"] != false || got["emails"] != nil || got["externalId"] != nil || dig(got, "meta", "version") != `W/"2"` {
				t.Fatalf("PUT result %v", got)
			}
			e.must(404, "PUT", "/Users/nope", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"x"}`)
		})
	}
}

// A user without an active attribute counts as active, so a write that
// drops it (a PATCH removing it, a PUT without it) must not let back in a
// user Entra disabled: only active true does. (A replace without a value is
// refused: see TestPatchIsAtomic.)
func TestDisabledStaysDisabledWithoutActive(t *testing.T) {
	disable := ops(`{"op":"replace","path":"active","value":false}`)
	for _, tt := range []struct{ name, method, body string }{
		{"remove active", "PATCH", ops(`{"op":"remove","path":"active"}`)},
		{"remove active by its qualified name", "PATCH", ops(`{"op":"Remove","path":"urn:ietf:params:scim:schemas:core:2.0:User:active"}`)},
		{"PUT without active", "PUT", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a@contoso.com"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, true, defaultConfig())
			id := e.createUser("a@contoso.com", "a", "a@contoso.com")
			e.must(200, "PATCH", "/Users/"+id, disable)
			r := e.do(tt.method, "/Users/"+id, tt.body)
			if r.status/100 != 2 {
				t.Fatalf("status %d %s", r.status, r.body)
			}
			if got := getUser(t, e, id)["active"]; got != false {
				t.Errorf("active %v after the write, want false", got)
			}
			u, _ := e.st.Read().UserByID(id)
			if u == nil || u.Active {
				t.Error("the stored user is active")
			}
			e.must(200, "PATCH", "/Users/"+id, ops(`{"op":"replace","path":"active","value":true}`))
			if got := getUser(t, e, id)["active"]; got != true {
				t.Errorf("active %v after active true, want true", got)
			}
		})
	}
}

// Whether a user may sign in follows what Entra sends for active even when
// userAttributes does not keep active in the stored document: leaving an
// attribute out of the resource must not leave a disabled user enabled.
func TestActiveAppliesWhenNotKept(t *testing.T) { forModes(t, testActiveAppliesWhenNotKept) }

func testActiveAppliesWhenNotKept(t *testing.T, flag bool) {
	cfg := defaultConfig()
	cfg.UserAttributes = []string{"userName", "displayName"}
	e := newEnv(t, flag, cfg)
	stored := func(id string) bool {
		t.Helper()
		u, err := e.st.Read().UserByID(id)
		if err != nil || u == nil {
			t.Fatalf("user %s: %v", id, err)
		}
		return u.Active
	}
	id := e.createUser("a@contoso.com", "a", "a@contoso.com")
	for _, tt := range []struct {
		name, method, body string
		active             bool
	}{
		{"PATCH disables", "PATCH", ops(`{"op":"replace","path":"active","value":false}`), false},
		{"PATCH of another attribute keeps it disabled", "PATCH", ops(`{"op":"replace","path":"displayName","value":"A"}`), false},
		{"PATCH enables", "PATCH", ops(`{"op":"replace","path":"active","value":"True"}`), true},
		{"PUT disables", "PUT", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a@contoso.com","active":false}`, false},
		{"PUT without active keeps it disabled", "PUT", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a@contoso.com"}`, false},
		{"path-less PATCH enables", "PATCH", ops(`{"op":"replace","value":{"active":true}}`), true},
	} {
		r := e.do(tt.method, "/Users/"+id, tt.body)
		if r.status != 200 {
			t.Fatalf("%s: status %d %s", tt.name, r.status, r.body)
		}
		if got := stored(id); got != tt.active {
			t.Fatalf("%s: stored active %v, want %v", tt.name, got, tt.active)
		}
	}
	r := e.must(201, "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"b@contoso.com","active":false}`)
	if id := r.json(t)["id"].(string); stored(id) {
		t.Fatal("a user created disabled is stored active")
	}
}

func TestDisableThenDelete(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			e := newEnv(t, m.flag, defaultConfig())
			id := e.createUser("a@contoso.com", "a", "a@contoso.com")
			other := e.createUser("b@contoso.com", "b", "b@contoso.com")
			gid := e.createGroup("G", "g")
			e.must(204, "PATCH", "/Groups/"+gid, `{`+patchSchema+`,"Operations":[{"op":"Add","path":"members","value":[{"value":"`+id+`"},{"value":"`+other+`"}]}]}`)
			disable := `{` + patchSchema + `,"Operations":[{"op":"Replace","path":"active","value":"False"}]}`
			if m.flag {
				disable = `{` + patchSchema + `,"Operations":[{"op":"replace","path":"active","value":false}]}`
			}
			if got := e.must(200, "PATCH", "/Users/"+id, disable).json(t); got["active"] != false {
				t.Fatalf("after disable: %v", got)
			}
			if getUser(t, e, id)["active"] != false {
				t.Fatal("disabled user not readable as inactive")
			}
			list := e.must(200, "GET", "/Users?filter="+url.QueryEscape(`userName eq "a@contoso.com"`), "").json(t)
			if list["totalResults"] != 1.0 {
				t.Fatal("disabled user not found by filter")
			}
			e.must(204, "DELETE", "/Users/"+id, "")
			e.must(404, "GET", "/Users/"+id, "")
			e.must(404, "DELETE", "/Users/"+id, "")
			g := e.must(200, "GET", "/Groups/"+gid, "").json(t)
			if members := g["members"].([]any); len(members) != 1 || dig(members, 0, "value") != other {
				t.Fatalf("members after delete: %v", members)
			}
			groups := e.must(200, "GET", "/Groups?filter="+url.QueryEscape(`members eq "`+id+`"`), "").json(t)
			if groups["totalResults"] != 0.0 {
				t.Fatalf("deleted user still a member: %v", groups)
			}
		})
	}
}

func TestBadInput(t *testing.T) { forModes(t, testBadInput) }

func testBadInput(t *testing.T, flag bool) {
	e := newEnv(t, flag, defaultConfig())
	id := e.createUser("a@contoso.com", "a", "a@contoso.com")
	deep := strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100)
	tests := []struct {
		name, method, path, body, ct string
		status                       int
	}{
		{"malformed json", "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":`, "", 400},
		{"not an object", "POST", "/Users", `["userName"]`, "", 400},
		{"trailing data", "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"x@y"} {}`, "", 400},
		{"deep nesting", "POST", "/Users", deep, "", 400},
		{"invalid utf8", "POST", "/Users", "{\"userName\":\"\xff\xfe\"}", "", 400},
		{"huge body", "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"` + strings.Repeat("x", 100<<10) + `"}`, "", 413},
		{"xml", "POST", "/Users", `<user/>`, "application/xml", 415},
		{"json with charset", "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"c@contoso.com"}`, "application/scim+json; charset=utf-8", 201},
		{"plain json", "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"d@contoso.com"}`, "application/json", 201},
		{"patch not patchop", "PATCH", "/Users/" + id, `{"schemas":["urn:x"],"Operations":[{"op":"add","path":"title","value":"x"}]}`, "", 400},
		{"patch no ops", "PATCH", "/Users/" + id, `{` + patchSchema + `}`, "", 400},
		{"patch op not object", "PATCH", "/Users/" + id, `{` + patchSchema + `,"Operations":[1]}`, "", 400},
		{"method", "DELETE", "/Users", "", "", 405},
		{"unknown user", "GET", "/Users/nope", "", "", 404},
		{"patch unknown user", "PATCH", "/Users/nope", `{` + patchSchema + `,"Operations":[{"op":"add","path":"title","value":"x"}]}`, "", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := []string{}
			if tt.ct != "" {
				hdr = []string{"Content-Type", tt.ct}
			}
			r := e.do(tt.method, tt.path, tt.body, hdr...)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			var body map[string]any
			if err := json.Unmarshal(r.body, &body); err != nil {
				t.Fatalf("body not JSON: %q", r.body)
			}
			if tt.status >= 400 && dig(body, "schemas", 0) != uriError {
				t.Fatalf("not a SCIM error: %s", r.body)
			}
		})
	}
}

// Attribute names are case-insensitive (RFC 7643 §2.1), so an object
// with "userName" and "USERNAME" names one attribute twice: which value
// won followed the random order of a Go map. Such a body is 400
// invalidSyntax naming the attribute, wherever the object is (a resource,
// a sub-attribute's value, a PATCH value or the PatchOp itself), on the
// member fast path too, and changes nothing. So is a body naming one
// attribute by two spellings (plain and schema-qualified, dotted and
// nested) with values that differ.
func TestAttributeNamedTwiceIsRefused(t *testing.T) {
	forModes(t, testAttributeNamedTwiceIsRefused)
}

func testAttributeNamedTwiceIsRefused(t *testing.T, flag bool) {
	e := newEnv(t, flag, defaultConfig())
	u := e.createUser("a@contoso.com", "a", "a@contoso.com")
	other := e.createUser("b@contoso.com", "b", "b@contoso.com")
	g := e.createGroup("Developers", "d")
	const user, group = `"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]`, `"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"]`
	for _, tt := range []struct {
		name, method, path, body, attr string
	}{
		{"POST user", "POST", "/Users", `{` + user + `,"userName":"c@contoso.com","USERNAME":"d@contoso.com"}`, "userName"},
		{"POST user, one null", "POST", "/Users", `{` + user + `,"userName":"c@contoso.com","title":"x","Title":null}`, "title"},
		{"POST user, sub-attribute", "POST", "/Users", `{` + user + `,"userName":"c@contoso.com","name":{"givenName":"C","GIVENNAME":"D"}}`, "givenName"},
		{"POST user, element of a multi-valued attribute", "POST", "/Users", `{` + user + `,"userName":"c@contoso.com","emails":[{"type":"work","value":"c@contoso.com","Value":"d@contoso.com"}]}`, "value"},
		{"POST user, extension attribute", "POST", "/Users", `{` + user + `,"userName":"c@contoso.com","` + schemaEnterprise + `":{"department":"A","Department":"B"}}`, "department"},
		{"POST user, extension", "POST", "/Users", `{` + user + `,"userName":"c@contoso.com","` + schemaEnterprise + `":{"department":"A"},"` + strings.ToUpper(schemaEnterprise) + `":{"department":"B"}}`, schemaEnterprise},
		{"PUT user", "PUT", "/Users/" + u, `{` + user + `,"userName":"a@contoso.com","active":false,"Active":true}`, "active"},
		{"PATCH user, path-less value", "PATCH", "/Users/" + u, ops(`{"op":"replace","value":{"active":false,"ACTIVE":true}}`), "active"},
		{"PATCH user, path-less value with a null", "PATCH", "/Users/" + u, ops(`{"op":"replace","value":{"name.givenName":"X","name.GivenName":null}}`), "name.givenName"},
		{"PATCH user, sub-attributes of a value", "PATCH", "/Users/" + u, ops(`{"op":"replace","path":"name","value":{"givenName":"X","givenname":"Y"}}`), "givenName"},
		{"PATCH user, operation", "PATCH", "/Users/" + u, ops(`{"op":"add","OP":"remove","path":"name.givenName","value":"X"}`), "op"},
		{"PATCH user, PatchOp", "PATCH", "/Users/" + u, `{` + patchSchema + `,"Operations":[{"op":"replace","path":"userName","value":"x@contoso.com"}],"operations":[]}`, "Operations"},
		{"POST group", "POST", "/Groups", `{` + group + `,"displayName":"Ops","DisplayName":"Other"}`, "displayName"},
		{"PUT group", "PUT", "/Groups/" + g, `{` + group + `,"displayName":"Developers","members":[{"value":"` + u + `","VALUE":"` + other + `"}]}`, "value"},
		{"PATCH members as Entra sends them", "PATCH", "/Groups/" + g, ops(`{"op":"Add","path":"members","value":[{"$ref":null,"value":"` + u + `","Value":"` + other + `"}]}`), "value"},
		{"PATCH members, operation", "PATCH", "/Groups/" + g, ops(`{"op":"Add","path":"members","Path":"displayName","value":[{"value":"` + u + `"}]}`), "path"},
		// Spellings that differ in more than case can name one attribute
		// too: plain and schema-qualified, in an extension's object and
		// qualified by it, dotted and nested.
		{"POST user, plain and qualified", "POST", "/Users", `{` + user + `,"userName":"c@contoso.com","urn:ietf:params:scim:schemas:core:2.0:User:userName":"d@contoso.com"}`, "userName"},
		{"POST user, extension object and qualified attribute", "POST", "/Users", `{` + user + `,"userName":"c@contoso.com","` + schemaEnterprise + `":{"department":"A"},"` + schemaEnterprise + `:department":"B"}`, "department"},
		{"PUT user, inside and outside the core schema's object", "PUT", "/Users/" + u, `{` + user + `,"userName":"a@contoso.com","urn:ietf:params:scim:schemas:core:2.0:User":{"active":false},"active":true}`, "active"},
		{"PATCH user, path-less dotted and nested", "PATCH", "/Users/" + u, ops(`{"op":"replace","value":{"name.givenName":"X","name":{"givenName":"Y"}}}`), "name"},
		{"PATCH user, path-less plain and qualified", "PATCH", "/Users/" + u, ops(`{"op":"replace","value":{"active":false,"urn:ietf:params:scim:schemas:core:2.0:User:active":true}}`), "active"},
		{"PATCH user, path-less extension object and qualified attribute", "PATCH", "/Users/" + u, ops(`{"op":"add","value":{"` + schemaEnterprise + `":{"department":"A"},"` + schemaEnterprise + `:department":"B"}}`), "department"},
		{"PATCH user, path-less whole and filtered", "PATCH", "/Users/" + u, ops(`{"op":"replace","value":{"emails":[{"type":"work","value":"x@contoso.com"}],"emails[type eq \"work\"].value":"y@contoso.com"}}`), "emails"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.method, tt.path, tt.body)
			got := r.json(t)
			if r.status != 400 || got["scimType"] != "invalidSyntax" || !strings.Contains(fmt.Sprint(got["detail"]), q(tt.attr)) {
				t.Fatalf("status %d %s, want 400 invalidSyntax naming %q", r.status, r.body, tt.attr)
			}
		})
	}
	if got := members(t, e, g); len(got) != 0 {
		t.Errorf("members %v after refused writes", got)
	}
	if got := getUser(t, e, u); got["active"] != true || dig(got, "meta", "version") != `W/"1"` {
		t.Errorf("refused writes changed the user: %v", got)
	}
	list := e.must(200, "GET", "/Users", "").json(t)
	if list["totalResults"] != 2.0 {
		t.Errorf("refused creates made users: %v", list["totalResults"])
	}
	// Different attributes, or different parts of one, are fine; so is one
	// attribute given twice with the same value in a resource.
	e.must(200, "PATCH", "/Users/"+u, ops(`{"op":"replace","value":{"name.givenName":"X","name.familyName":"Y","displayName":"Z","emails[type eq \"work\"].value":"a@contoso.com","emails[type eq \"home\"].value":"h@contoso.com"}}`))
	e.must(201, "POST", "/Users", `{`+user+`,"userName":"e@contoso.com","urn:ietf:params:scim:schemas:core:2.0:User:userName":"e@contoso.com","`+schemaEnterprise+`":{"department":"A"},"department":"A"}`)
}

func TestAuditLog(t *testing.T) { forModes(t, testAuditLog) }

func testAuditLog(t *testing.T, flag bool) {
	e := newEnv(t, flag, defaultConfig())
	id := e.createUser("secret.person@contoso.com", "sp", "secret.person@contoso.com")
	e.doAs(testToken2, "DELETE", "/Users/"+id, "")
	want := []audit.Event{
		audit.SCIMWrite{Actor: "entra", Op: "create", ResourceType: "User", ID: id},
		audit.SCIMWrite{Actor: "entra-next", Op: "delete", ResourceType: "User", ID: id},
	}
	if got := e.audit.Events(); !slices.Equal(got, want) {
		t.Fatalf("audit events %v, want %v", got, want)
	}
	logs := e.logs.String()
	for _, secret := range []string{"secret.person", testToken, testToken2} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %q", secret)
		}
	}
}

// TestSchemasRequired: RFC 7643 §3 and RFC 7644 §3.5.2 make schemas
// required on every write; Entra always sends it. A body without it is 400
// invalidSyntax on every write path, the member fast path included, and
// changes nothing.
func TestSchemasRequired(t *testing.T) { forModes(t, testSchemasRequired) }

func testSchemasRequired(t *testing.T, flag bool) {
	e := newEnv(t, flag, defaultConfig())
	u := e.createUser("a@contoso.com", "a", "a@contoso.com")
	g := e.createGroup("Developers", "d")
	for _, tt := range []struct{ name, method, path, body string }{
		{"create user", "POST", "/Users", `{"userName":"b@contoso.com"}`},
		{"replace user", "PUT", "/Users/" + u, `{"userName":"a@contoso.com","title":"x"}`},
		{"patch user", "PATCH", "/Users/" + u, `{"Operations":[{"op":"replace","path":"title","value":"x"}]}`},
		{"create group", "POST", "/Groups", `{"displayName":"Ops"}`},
		{"replace group", "PUT", "/Groups/" + g, `{"displayName":"Developers","externalId":"x"}`},
		{"patch group", "PATCH", "/Groups/" + g, `{"Operations":[{"op":"replace","path":"externalId","value":"x"}]}`},
		{"patch members as Entra does", "PATCH", "/Groups/" + g, `{"Operations":[{"op":"Add","path":"members","value":[{"value":"` + u + `"}]}]}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.method, tt.path, tt.body)
			if got := r.json(t); r.status != 400 || got["scimType"] != "invalidSyntax" || !strings.Contains(fmt.Sprint(got["detail"]), "schemas") {
				t.Fatalf("status %d %s, want 400 invalidSyntax about schemas", r.status, r.body)
			}
		})
	}
	if got := members(t, e, g); len(got) != 0 {
		t.Fatalf("members %v after refused writes", got)
	}
	if got := e.must(200, "GET", "/Users/"+u, "").json(t); got["title"] != nil {
		t.Fatalf("title %v after refused writes", got["title"])
	}
}

// TestStringsAreBounded: control characters and over-long values are 400
// invalidValue naming the attribute, on POST, PUT and PATCH alike; what
// Entra sends (a multi-line street address, a name of exactly the limit)
// is kept.
func TestStringsAreBounded(t *testing.T) { forModes(t, testStringsAreBounded) }

func testStringsAreBounded(t *testing.T, flag bool) {
	e := newEnv(t, flag, defaultConfig())
	u := e.createUser("a@contoso.com", "a", "a@contoso.com")
	g := e.createGroup("Developers", "d")
	const userURN, groupURN = `"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]`, `"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"]`
	long := func(n int) string { return strings.Repeat("é", n) }
	type write struct{ method, path, body string }
	userWrites := func(attr, value string) []write {
		v := q(value)
		obj := map[string]string{
			"userName":    `"userName":` + v,
			"displayName": `"userName":"b@contoso.com","displayName":` + v,
			"givenName":   `"userName":"b@contoso.com","name":{"givenName":` + v + `}`,
			"emails":      `"userName":"b@contoso.com","emails":[{"type":"work","value":` + v + `}]`,
			"externalId":  `"userName":"b@contoso.com","externalId":` + v,
			"title":       `"userName":"b@contoso.com","title":` + v,
		}[attr]
		path := map[string]string{"givenName": "name.givenName", "emails": `emails[type eq "work"].value`}[attr]
		if path == "" {
			path = attr
		}
		return []write{
			{"POST", "/Users", `{` + userURN + `,` + obj + `}`},
			{"PUT", "/Users/" + u, `{` + userURN + `,` + strings.Replace(obj, "b@contoso.com", "a@contoso.com", 1) + `}`},
			{"PATCH", "/Users/" + u, ops(`{"op":"replace","path":` + q(path) + `,"value":` + v + `}`)},
		}
	}
	groupWrites := func(value string) []write {
		v := q(value)
		return []write{
			{"POST", "/Groups", `{` + groupURN + `,"displayName":` + v + `}`},
			{"PUT", "/Groups/" + g, `{` + groupURN + `,"displayName":` + v + `}`},
			{"PATCH", "/Groups/" + g, ops(`{"op":"replace","path":"displayName","value":` + v + `}`)},
		}
	}
	bad := map[string]string{
		"ESC": "evil\x1b[2Jname", "CR": "a\rb", "LF": "a\nfake row", "NUL": "a\x00b",
		"DEL": "a\x7fb", "C1": "a\u0085b", "tab": "a\tb",
	}
	for name, value := range bad {
		for _, attr := range []string{"userName", "displayName", "givenName", "emails", "externalId", "title"} {
			for _, w := range userWrites(attr, value) {
				t.Run(name+"/"+attr+"/"+w.method, func(t *testing.T) { wantInvalid(t, e, w.method, w.path, w.body, attr) })
			}
		}
		for _, w := range groupWrites(value) {
			t.Run(name+"/group/"+w.method, func(t *testing.T) { wantInvalid(t, e, w.method, w.path, w.body, "displayName") })
		}
	}
	for _, attr := range []string{"userName", "displayName", "emails", "externalId"} {
		for _, w := range userWrites(attr, long(schema.MaxNameLength+1)) {
			t.Run("long/"+attr+"/"+w.method, func(t *testing.T) { wantInvalid(t, e, w.method, w.path, w.body, "256") })
		}
	}
	for _, w := range userWrites("title", long(schema.MaxTextLength+1)) {
		t.Run("long/title/"+w.method, func(t *testing.T) { wantInvalid(t, e, w.method, w.path, w.body, "1024") })
	}
	for _, w := range groupWrites(long(schema.MaxNameLength + 1)) {
		t.Run("long/group/"+w.method, func(t *testing.T) { wantInvalid(t, e, w.method, w.path, w.body, "256") })
	}

	// At the limits, and a street address over two lines, are kept.
	e.must(201, "POST", "/Users", `{`+userURN+`,"userName":`+q(long(schema.MaxNameLength))+`,"title":`+q(long(schema.MaxTextLength))+`,
		"addresses":[{"type":"work","streetAddress":"1 Main St\r\nFloor 2","formatted":"1 Main St\nFloor 2\nSpringfield"}]}`)
	e.must(201, "POST", "/Groups", `{`+groupURN+`,"displayName":`+q(long(schema.MaxNameLength))+`}`)
	got := e.must(200, "GET", "/Users/"+u, "").json(t)
	if got["userName"] != "a@contoso.com" || dig(got, "meta", "version") != `W/"1"` {
		t.Fatalf("refused writes changed the user: %v", got)
	}
}

func wantInvalid(t *testing.T, e *env, method, path, body, mention string) {
	t.Helper()
	r := e.do(method, path, body)
	if got := r.json(t); r.status != 400 || got["scimType"] != "invalidValue" || !strings.Contains(fmt.Sprint(got["detail"]), mention) {
		t.Fatalf("status %d %s, want 400 invalidValue mentioning %q", r.status, r.body, mention)
	}
}

// HEAD is GET without a body (RFC 9110 §9.3.2, which every
// general-purpose server MUST support): same status and headers.
func TestHeadIsGetWithoutBody(t *testing.T) {
	e := newEnv(t, false, defaultConfig())
	id := e.createUser("alice@contoso.com", "alice", "alice@contoso.com")
	gid := e.createGroup("Developers", "g-dev")
	for _, tt := range []struct {
		path   string
		status int
		etag   string
	}{
		{"/Users", http.StatusOK, ""},
		{"/Users/" + id, http.StatusOK, `W/"1"`},
		{"/Groups/" + gid, http.StatusOK, `W/"1"`},
		{"/Users/nope", http.StatusNotFound, ""},
		{"/ServiceProviderConfig", http.StatusOK, ""},
		{"/Schemas", http.StatusOK, ""},
		{"/ResourceTypes/User", http.StatusOK, ""},
	} {
		r := e.do("HEAD", tt.path, "")
		if r.status != tt.status || len(r.body) != 0 {
			t.Errorf("HEAD %s: status %d with %d body bytes, want %d without a body", tt.path, r.status, len(r.body), tt.status)
		}
		if ct := r.header.Get("Content-Type"); ct != ContentType {
			t.Errorf("HEAD %s: content type %q", tt.path, ct)
		}
		if got := r.header.Get("ETag"); got != tt.etag {
			t.Errorf("HEAD %s: ETag %q, want %q", tt.path, got, tt.etag)
		}
	}
	if r := e.do("HEAD", "/Users/"+id, "", "If-None-Match", `W/"1"`); r.status != http.StatusNotModified {
		t.Errorf("conditional HEAD: status %d, want 304", r.status)
	}
}
