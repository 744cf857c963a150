package scim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/idrecon/idrecon/spec/golden"
)

func TestDiscoveryGolden(t *testing.T) {
	tests := []struct{ name, path string }{
		{"service_provider_config", "/ServiceProviderConfig"},
		{"resource_types", "/ResourceTypes"},
		{"resource_type_user", "/ResourceTypes/User"},
		{"schemas", "/Schemas"},
		{"schema_group", "/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group"},
	}
	e := newEnv(t, true, defaultConfig())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest("GET", e.url(tt.path), nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = "ssc.example.test"
			req.Header.Set("Authorization", "Bearer "+testToken)
			res, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != 200 || res.Header.Get("Content-Type") != ContentType {
				t.Fatalf("status %d %q: %s", res.StatusCode, res.Header.Get("Content-Type"), body)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, body, "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			golden.Check(t, filepath.Join("testdata", tt.name+".golden.json"), pretty.Bytes())
		})
	}
}

func TestServiceProviderConfigTellsTheTruth(t *testing.T) {
	forModes(t, testServiceProviderConfigTellsTheTruth)
}

func testServiceProviderConfigTellsTheTruth(t *testing.T, flag bool) {
	e := newEnv(t, flag, defaultConfig())
	got := e.must(200, "GET", "/ServiceProviderConfig", "").json(t)
	want := map[string]any{"patch": true, "bulk": false, "filter": true, "changePassword": false, "sort": false, "etag": true}
	for k, v := range want {
		if dig(got, k, "supported") != v {
			t.Errorf("%s.supported = %v, want %v", k, dig(got, k, "supported"), v)
		}
	}
	if dig(got, "filter", "maxResults") != float64(MaxResults) {
		t.Errorf("maxResults %v", dig(got, "filter", "maxResults"))
	}
	e.must(404, "GET", "/Schemas/urn:nope", "")
}

// The discovery endpoints ignore list parameters, but a filter SHOULD be
// answered 403 (RFC 7644 §4): a 200 would let a client believe that
// everything returned matched its filter.
func TestDiscoveryRefusesFilter(t *testing.T) {
	e := newEnv(t, false, defaultConfig())
	for _, path := range []string{
		"/ServiceProviderConfig?filter=patch.supported+eq+false",
		"/Schemas?filter=name+eq+%22Group%22",
		"/Schemas/urn:ietf:params:scim:schemas:core:2.0:User?filter=name+eq+%22Group%22",
		"/ResourceTypes?FILTER=name+eq+%22Group%22",
		"/ResourceTypes/User?filter=name+eq+%22Group%22",
	} {
		r := e.must(http.StatusForbidden, "GET", path, "")
		if got := r.json(t)["schemas"]; len(got.([]any)) != 1 || got.([]any)[0] != uriError {
			t.Errorf("GET %s: schemas %v, want the error schema", path, got)
		}
	}
	// Other list parameters are ignored (RFC 7644 §4).
	got := e.must(http.StatusOK, "GET", "/Schemas?startIndex=2&count=1&sortBy=name", "").json(t)
	if got["totalResults"] != float64(3) || len(got["Resources"].([]any)) != 3 {
		t.Errorf("paging parameters were not ignored: %v", got["totalResults"])
	}
}
