package peer

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/scim/scimload"
)

const token = "peer-test-token"

func start(t *testing.T) string {
	t.Helper()
	h, err := New(token)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + BasePath
}

// do sends a request and returns the status and the decoded JSON body.
func do(t *testing.T, method, url, tok, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/scim+json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s %s: %d %q: %v", method, url, res.StatusCode, b, err)
		}
	}
	return res.StatusCode, v
}

// TestCycle: the peer passes a small Entra cycle, in both request shapes.
func TestCycle(t *testing.T) {
	for _, flag := range []bool{true, false} {
		t.Run(map[bool]string{true: "aadOptscim062020", false: "legacy"}[flag], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := scimload.Run(ctx, scimload.Config{
				URL: start(t), Token: token, Users: 60, Groups: 3, MembersPerGroup: 20, Concurrency: 4,
				UpdateEvery: 10, DisableEvery: 20, DeleteEvery: 50, Flag: flag,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Errors > 0 || len(res.Problems) > 0 {
				var b strings.Builder
				res.Print(&b)
				t.Fatalf("errors %d:\n%s", res.Errors, b.String())
			}
		})
	}
}

const userBody = `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"Alice@Example.com","externalId":"a1","active":true,"emails":[{"type":"work","value":"alice@example.com"}]}`

func TestRequests(t *testing.T) {
	base := start(t)
	code, u := do(t, "POST", base+"/Users", token, userBody)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, u)
	}
	id, _ := u["id"].(string)
	code, g := do(t, "POST", base+"/Groups", token, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Staff"}`)
	if code != http.StatusCreated {
		t.Fatalf("create group: %d %v", code, g)
	}
	gid, _ := g["id"].(string)
	patch := func(ops string) string {
		return `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[` + ops + `]}`
	}
	for _, c := range []struct {
		name, method, path, tok, body string
		code                          int
		scimType                      string
		total                         float64 // of a list, when not 0
	}{
		{"no token", "GET", "/Users", "wrong", "", 401, "", 0},
		{"duplicate userName", "POST", "/Users", token, strings.Replace(userBody, "Alice@", "alice@", 1), 409, "uniqueness", 0},
		{"userName is not case exact", "GET", `/Users?filter=userName+eq+"ALICE@example.com"`, token, "", 200, "", 1},
		{"externalId is case exact", "GET", `/Users?filter=externalId+eq+"A1"`, token, "", 200, "", -1},
		{"externalId", "GET", `/Users?filter=externalId+eq+"a1"`, token, "", 200, "", 1},
		{"a scan", "GET", `/Users?filter=userName+sw+"alice"`, token, "", 200, "", 1},
		{"group displayName", "GET", `/Groups?excludedAttributes=members&filter=displayName+eq+"staff"`, token, "", 200, "", 1},
		{"unsupported attribute", "PATCH", "/Users/" + id, token, patch(`{"op":"replace","path":"title","value":"boss"}`), 400, "invalidPath", 0},
		{"unknown attribute", "PATCH", "/Users/" + id, token, patch(`{"op":"replace","path":"nosuch","value":"x"}`), 400, "invalidPath", 0},
		{"remove on a user", "PATCH", "/Users/" + id, token, patch(`{"op":"remove","path":"displayName"}`), 400, "invalidPath", 0},
		{"unsupported value map", "PATCH", "/Users/" + id, token, patch(`{"op":"replace","value":{"nickName":"Al"}}`), 400, "invalidPath", 0},
		{"no such email", "PATCH", "/Users/" + id, token, patch(`{"op":"replace","path":"emails[type eq \"home\"].value","value":"x"}`), 400, "noTarget", 0},
		{"group title", "PATCH", "/Groups/" + gid, token, patch(`{"op":"replace","path":"title","value":"x"}`), 400, "invalidPath", 0},
		{"unknown member", "PATCH", "/Groups/" + gid, token, patch(`{"op":"add","path":"members","value":[{"value":"nobody"}]}`), 400, "invalidValue", 0},
		{"add member", "PATCH", "/Groups/" + gid, token, patch(`{"op":"add","path":"members","value":[{"value":"` + id + `"}]}`), 204, "", 0},
		{"replace", "PATCH", "/Users/" + id, token, patch(`{"op":"replace","path":"active","value":false},{"op":"replace","value":{"name.givenName":"Al","displayName":"Al"}}`), 200, "", 0},
		{"remove member by filter", "PATCH", "/Groups/" + gid, token, patch(`{"op":"remove","path":"members[value eq \"` + id + `\"]"}`), 204, "", 0},
		{"not found", "GET", "/Users/nobody", token, "", 404, "", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, v := do(t, c.method, base+c.path, c.tok, c.body)
			if code != c.code {
				t.Fatalf("status %d, want %d: %v", code, c.code, v)
			}
			if code >= 400 {
				if s, _ := v["schemas"].([]any); len(s) != 1 || s[0] != "urn:ietf:params:scim:api:messages:2.0:Error" {
					t.Errorf("not a SCIM error: %v", v)
				}
			}
			if got, _ := v["scimType"].(string); got != c.scimType {
				t.Errorf("scimType %q, want %q", got, c.scimType)
			}
			if c.total != 0 && v["totalResults"] != max(c.total, 0) {
				t.Errorf("totalResults %v, want %v", v["totalResults"], max(c.total, 0))
			}
		})
	}
	_, u = do(t, "GET", base+"/Users/"+id, token, "")
	if u["active"] != false || u["displayName"] != "Al" || u["name"].(map[string]any)["givenName"] != "Al" {
		t.Errorf("after the patches: %v", u)
	}
	if _, g = do(t, "GET", base+"/Groups/"+gid, token, ""); len(g["members"].([]any)) != 0 {
		t.Errorf("member not removed: %v", g)
	}
	// A user's deletion takes it out of its groups.
	do(t, "PATCH", base+"/Groups/"+gid, token, patch(`{"op":"add","path":"members","value":[{"value":"`+id+`"}]}`))
	if code, _ := do(t, "DELETE", base+"/Users/"+id, token, ""); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	if _, g = do(t, "GET", base+"/Groups/"+gid, token, ""); len(g["members"].([]any)) != 0 {
		t.Errorf("deleted user still a member: %v", g)
	}
}

func TestPaging(t *testing.T) {
	base := start(t)
	for i := range 5 {
		body := strings.Replace(userBody, "Alice", "Alice"+string(rune('a'+i)), 1)
		if code, v := do(t, "POST", base+"/Users", token, body); code != 201 {
			t.Fatalf("create: %d %v", code, v)
		}
	}
	_, v := do(t, "GET", base+"/Users?startIndex=2&count=2", token, "")
	l, _ := v["Resources"].([]any)
	if v["totalResults"] != 5.0 || len(l) != 2 || l[0].(map[string]any)["userName"] != "Aliceb@Example.com" {
		t.Errorf("page: %v", v)
	}
}
