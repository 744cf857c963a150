package admin

import (
	"net/http"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/spec"
)

// The loader accepts "." and ".." as names (of an Application, say). A
// path segment of either is resolved away by browsers, clients and the
// router, so such a resource is reached with the dots escaped, and the
// unescaped path, which named another resource or the list, is refused
// with how to write it rather than redirected to something else.
func TestDotNamesReachable(t *testing.T) {
	f := newFixtureEnv(t, nil)
	f.srv.Client().CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, tt := range []struct{ name, segment string }{{".", "%2E"}, {"..", "%2e%2E"}, {"a b", "a%20b"}} {
		p := "/v1/resources/Application/" + tt.segment
		if code, resp := f.do(t, "PUT", p, token, strings.NewReader(`{"versions":["1.0"]}`)); code != http.StatusOK {
			t.Fatalf("PUT %s: %d %s", p, code, resp)
		}
		if r, _ := f.st.Read().Resource(spec.KindApplication, tt.name); r == nil {
			t.Fatalf("PUT %s did not store Application %q", p, tt.name)
		}
		if code, resp := f.do(t, "GET", p, token, nil); code != http.StatusOK || !strings.Contains(resp, `"name": "`+tt.name+`"`) {
			t.Errorf("GET %s: %d %s", p, code, resp)
		}
		if code, resp := f.do(t, "DELETE", p, token, nil); code != http.StatusNoContent {
			t.Errorf("DELETE %s: %d %s", p, code, resp)
		}
	}
	for _, method := range []string{"GET", "PUT", "DELETE"} {
		for _, p := range []string{"/v1/resources/Application/.", "/v1/resources/Application/..", "/v1/resources/./Application", "/v1/resources/Application/x/.."} {
			code, resp := f.do(t, method, p, token, strings.NewReader(`{"versions":["1.0"]}`))
			if code != http.StatusBadRequest || !strings.Contains(resp, "%2E") {
				t.Errorf("%s %s: %d %s, want 400 saying how to write the name", method, p, code, resp)
			}
		}
		// Behind the token, as every path below /v1.
		if code, resp := f.do(t, method, "/v1/resources/Application/..", "", nil); code != http.StatusUnauthorized {
			t.Errorf("%s of a dot segment without the token: %d %s, want 401", method, code, resp)
		}
	}
}
