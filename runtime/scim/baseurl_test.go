package scim

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// locations collects every URL a document names as a location: meta.location
// at any depth (list items, discovery documents and their resources).
func locations(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if k == "location" {
				out = append(out, fmt.Sprint(x))
				continue
			}
			out = append(out, locations(x)...)
		}
	case []any:
		for _, x := range v {
			out = append(out, locations(x)...)
		}
	}
	return out
}

// TestBaseURLNamesEveryLocation: behind a TLS-terminating proxy the request
// says http and maybe an internal host, so with baseURL set every URL the
// server emits is built from it instead, and spoofed X-Forwarded-* headers
// change nothing.
func TestBaseURLNamesEveryLocation(t *testing.T) {
	const public = "https://scim.contoso.example/api/scim/v2"
	forwarded := []string{"X-Forwarded-Proto", "http", "X-Forwarded-Host", "evil.example", "Forwarded", "proto=http;host=evil.example"}
	for _, tc := range []struct {
		name, baseURL, want string
	}{
		{"configured", public, public},
		{"configured with a trailing slash", public + "/", public},
		{"unset", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.BaseURL = tc.baseURL
			e := newEnv(t, false, cfg)
			want := tc.want
			if want == "" {
				want = e.srv.URL + e.base
			}
			check := func(what string, locs ...string) {
				t.Helper()
				if len(locs) == 0 {
					t.Fatalf("%s: no location", what)
				}
				for _, l := range locs {
					if !strings.HasPrefix(l, want+"/") {
						t.Errorf("%s: location %q, want it below %s", what, l, want)
					}
				}
			}

			body := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice@contoso.com","active":true}`
			r := e.must(http.StatusCreated, "POST", "/Users", body, forwarded...)
			u := r.json(t)
			id := u["id"].(string)
			if loc := r.header.Get("Location"); loc != want+"/Users/"+id {
				t.Errorf("user create: Location %q, want %q", loc, want+"/Users/"+id)
			}
			if loc := dig(u, "meta", "location"); loc != want+"/Users/"+id {
				t.Errorf("user create: meta.location %v, want %q", loc, want+"/Users/"+id)
			}

			r = e.must(http.StatusCreated, "POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Ops","members":[{"value":`+q(id)+`}]}`, forwarded...)
			g := r.json(t)
			if loc := r.header.Get("Location"); loc != want+"/Groups/"+g["id"].(string) {
				t.Errorf("group create: Location %q, want %q", loc, want+"/Groups/"+g["id"].(string))
			}
			check("group create", locations(g)...)

			for _, path := range []string{"/Users/" + id, "/Users", "/Users?attributes=meta", "/Groups", "/Groups?excludedAttributes=members"} {
				check("GET "+path, locations(e.must(http.StatusOK, "GET", path, "", forwarded...).json(t))...)
			}
			for _, path := range []string{"/ServiceProviderConfig", "/ResourceTypes", "/ResourceTypes/User", "/Schemas", "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User"} {
				check("GET "+path, locations(e.must(http.StatusOK, "GET", path, "", forwarded...).json(t))...)
			}
			r = e.must(http.StatusOK, "PUT", "/Users/"+id, body, forwarded...)
			check("PUT", locations(r.json(t))...)
			r = e.must(http.StatusOK, "PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`, forwarded...)
			if len(r.body) > 0 {
				check("PATCH", locations(r.json(t))...)
			}
		})
	}
}
