package gateway_test

import (
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/idrecon/idrecon/runtime/gateway"
)

// TestVerifyContract: only 200, 401 and 403 (500 when access cannot be
// checked), never a redirect, never cacheable, for any method and for
// paths below /auth/verify (Envoy).
func TestVerifyContract(t *testing.T) {
	_, srv := newFrontDoor(t, gateway.Config{RolesHeader: "Remote-Groups", VersionsHeader: "Remote-Versions"}, gateway.Deps{})
	signin := func(returnTo string) string { return "/saml/login?returnTo=" + url.QueryEscape(returnTo) }
	tests := []struct {
		name       string
		method     string
		path       string
		token      string
		raw        [][2]string
		wantStatus int
		wantSignin string
		wantUser   string
	}{
		{"signed in", "GET", "/auth/verify", "tok-ann", nil, 200, "", "ann"},
		{"signed in HEAD", "HEAD", "/auth/verify", "tok-ann", nil, 200, "", "ann"},
		{"envoy POST", "POST", "/auth/verify/app/form", "tok-ann", nil, 200, "", "ann"},
		{"envoy DELETE", "DELETE", "/auth/verify/app/x", "tok-ann", nil, 200, "", "ann"},
		{"no role", "GET", "/auth/verify", "tok-bob", nil, 403, "", ""},
		{"unsafe name", "GET", "/auth/verify", "tok-eve", nil, 403, "", ""},
		{"unknown user", "GET", "/auth/verify", "tok-unknown", nil, 401, signin("/"), ""},
		{"decider error", "GET", "/auth/verify", "tok-err", nil, 500, "", ""},
		{"no session", "GET", "/auth/verify", "", nil, 401, signin("/"), ""},
		{"nginx original URI", "GET", "/auth/verify", "", [][2]string{{"X-Original-URI", "/ssc/x?a=1&b=2"}}, 401, signin("/ssc/x?a=1&b=2"), ""},
		{"traefik forwarded URI", "GET", "/auth/verify", "", [][2]string{{"X-Forwarded-Uri", "/ssc/y"}}, 401, signin("/ssc/y"), ""},
		{"two original URIs", "GET", "/auth/verify", "", [][2]string{{"X-Forwarded-Uri", "/b"}, {"X-Original-URI", "/a"}}, 403, "", ""},
		{"envoy path", "POST", "/auth/verify/ssc/z?q=1", "", nil, 401, signin("/ssc/z?q=1"), ""},
		{"absolute URL", "GET", "/auth/verify", "", [][2]string{{"X-Original-URI", "https://evil.example/"}}, 401, signin("/"), ""},
		{"scheme-relative", "GET", "/auth/verify", "", [][2]string{{"X-Original-URI", "//evil.example/"}}, 401, signin("/"), ""},
		{"backslash", "GET", "/auth/verify", "", [][2]string{{"X-Original-URI", "/\\evil.example/"}}, 401, signin("/"), ""},
		{"relative", "GET", "/auth/verify", "", [][2]string{{"X-Original-URI", "evil.example"}}, 401, signin("/"), ""},
		{"tab", "GET", "/auth/verify", "", [][2]string{{"X-Original-URI", "/\t/evil.example"}}, 401, signin("/"), ""},
		{"repeated", "GET", "/auth/verify", "", [][2]string{{"X-Original-URI", "/a"}, {"X-Original-URI", "/b"}}, 403, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := do(t, tc.method, srv.URL+tc.path, tc.token, tc.raw)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", got)
			}
			if got := resp.Header.Get(gateway.SigninHeader); got != tc.wantSignin {
				t.Errorf("%s %q, want %q", gateway.SigninHeader, got, tc.wantSignin)
			}
			if got := resp.Header.Get("Username"); got != tc.wantUser {
				t.Errorf("username %q, want %q", got, tc.wantUser)
			}
			if resp.Header.Get("Location") != "" {
				t.Errorf("Location %q: a forward-auth answer never redirects", resp.Header.Get("Location"))
			}
			if tc.wantUser != "" {
				if g, v := resp.Header.Get("Remote-Groups"), resp.Header.Get("Remote-Versions"); g != "Developer, Manager" || v != "ledger/1, payments/2.0" {
					t.Errorf("roles %q versions %q", g, v)
				}
			}
			body, _ := io.ReadAll(resp.Body)
			if tc.method == "HEAD" && len(body) > 0 {
				t.Errorf("HEAD answered with a body")
			}
		})
	}
}

func TestVerifyWithoutUpstreamProxiesNothing(t *testing.T) {
	_, srv := newFrontDoor(t, gateway.Config{}, gateway.Deps{})
	if resp := do(t, "GET", srv.URL+"/app", "tok-ann", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("status %d, want 404", resp.StatusCode)
	}
}
