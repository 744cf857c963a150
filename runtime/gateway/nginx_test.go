package gateway_test

import (
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/runtime/gateway"
	"github.com/idrecon/idrecon/runtime/internal/proxytest"
)

// TestNginxAuthRequest runs the documented nginx configuration against
// idrecon's /auth/verify and an application that echoes what it receives.
func TestNginxAuthRequest(t *testing.T) {
	// The header names of examples/entra's Gateway, which the nginx file
	// copies.
	g, err := gateway.New(gateway.Config{RolesHeader: "X-Idrecon-Roles", VersionsHeader: "X-Idrecon-Versions"},
		gateway.Deps{Sessions: sessions, Decider: deciders, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	idrecon := verifyServer(t, g)
	app, hits := echoUpstream(t)
	base := proxytest.Nginx(t, filepath.Join("testdata", "nginx-idrecon.conf"), idrecon.URL, app.URL)

	spoofs := [][2]string{
		{"username", forged}, {"USERNAME", forged}, {"Username", forged + "2"}, {"user_name", forged},
		{"User_Name", forged}, {"USER_NAME", forged}, {"Connection", "username"},
		{"X-Original-URI", "/" + forged}, {"X-Original-URL", "http://evil.example/" + forged},
		{"X-Forwarded-Uri", "/" + forged}, {"X-Forwarded-For", forged}, {"X-Forwarded-Host", forged},
		{"X-Real-IP", forged}, {"Forwarded", "for=" + forged}, {"x_original_uri", "//evil.example"},
		// The rest of spec.ForwardingHeaders, which the built-in proxy
		// strips too: Spring's ForwardedHeaderFilter reads X-Forwarded-Ssl.
		{"X-Forwarded-Ssl", forged}, {"X-Forwarded-Server", forged}, {"X-Forwarded-Port", forged},
		{"X-Forwarded-Prefix", forged}, {"X-Forwarded-Method", forged},
		// The roles and versions, which an application takes as idrecon's.
		{"X-Idrecon-Roles", "Administrator," + forged}, {"x-idrecon-versions", "*/*," + forged},
	}
	t.Run("signed in", func(t *testing.T) {
		for _, raw := range [][][2]string{nil, spoofs} {
			got := decodeSeen(t, do(t, "GET", base+"/ssc/html/index.jsp?a=1&b=2", "tok-ann", append(raw, [2]string{"Cookie", "JSESSIONID=j1"})))
			checkAnn(t, got)
			if v := valuesFolded(got.Header, "user-name"); v != nil {
				t.Errorf("app saw user_name %q", v)
			}
			for k, vs := range got.Header {
				if strings.Contains(strings.Join(vs, ","), forged) || strings.Contains(strings.Join(vs, ","), "evil") {
					t.Errorf("forged value arrived in %s: %q", k, vs)
				}
				f := fold(k)
				if strings.HasPrefix(f, "x-original-") || f == "forwarded" || f == "x-real-ip" || f == "x-forwarded-uri" {
					t.Errorf("app saw %s: %q", k, vs)
				}
			}
			if c := got.Header.Get("Cookie"); strings.Contains(c, "idrecon_session") || !strings.Contains(c, "JSESSIONID=j1") {
				t.Errorf("app saw Cookie %q", c)
			}
			if got.URI != "/ssc/html/index.jsp?a=1&b=2" {
				t.Errorf("app saw URI %q", got.URI)
			}
		}
		// A browser may hold two idrecon_session cookies (another path or
		// a parent domain's): neither reaches the application.
		got := decodeSeen(t, do(t, "GET", base+"/ssc/", "", [][2]string{{"Cookie", "idrecon_session=tok-ann; JSESSIONID=j1; idrecon_session=tok-other"}}))
		if c := got.Header.Get("Cookie"); strings.Contains(c, "idrecon_session") || !strings.Contains(c, "JSESSIONID=j1") {
			t.Errorf("with two session cookies the app saw Cookie %q", c)
		}
		// A daemon whose SAML baseURL names a port other than its
		// scheme's names its cookie after the port.
		got = decodeSeen(t, do(t, "GET", base+"/ssc/", "", [][2]string{{"Cookie", "idrecon_session=tok-ann; JSESSIONID=j1; idrecon_session_8443=tok-other"}}))
		if c := got.Header.Get("Cookie"); strings.Contains(c, "idrecon_session") || !strings.Contains(c, "JSESSIONID=j1") {
			t.Errorf("with a port's session cookie the app saw Cookie %q", c)
		}
	})
	t.Run("signed out goes to the sign-in and back", func(t *testing.T) {
		unreached(t, hits, "without a session", func() {
			for _, raw := range [][][2]string{nil, spoofs} {
				resp := do(t, "GET", base+"/ssc/html/index.jsp?a=1&b=2", "", raw)
				if resp.StatusCode != http.StatusFound {
					t.Fatalf("status %d, want 302", resp.StatusCode)
				}
				loc, err := url.Parse(resp.Header.Get("Location"))
				if err != nil || loc.Path != "/saml/login" || loc.Query().Get("returnTo") != "/ssc/html/index.jsp?a=1&b=2" {
					t.Errorf("Location %q, want the sign-in returning to the page", resp.Header.Get("Location"))
				}
				// Following it reaches idrecon's sign-in through nginx.
				next := do(t, "GET", base+loc.RequestURI(), "", nil)
				body, _ := io.ReadAll(next.Body)
				if string(body) != "sign in, then back to /ssc/html/index.jsp?a=1&b=2" {
					t.Errorf("sign-in page said %q", body)
				}
			}
		})
	})
	t.Run("signed in without access", func(t *testing.T) {
		unreached(t, hits, "without access", func() {
			for _, tok := range []string{"tok-bob", "tok-eve"} {
				if resp := do(t, "GET", base+"/ssc/", tok, spoofs); resp.StatusCode != http.StatusForbidden {
					t.Errorf("%s: status %d, want 403", tok, resp.StatusCode)
				}
			}
		})
	})
	checkOrigins(t, g, hits, base, spoofs, func(t *testing.T, method string, raw [][2]string) *http.Response {
		return do(t, method, base+"/ssc/form", "tok-ann", raw)
	})
	t.Run("verify is internal", func(t *testing.T) {
		if resp := do(t, "GET", base+gateway.VerifyPath, "tok-ann", nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("status %d, want 404", resp.StatusCode)
		}
	})
}
