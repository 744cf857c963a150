package saml

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/idrecon/idrecon/runtime/internal/testidp"
)

// FuzzSLOQuery: /saml/slo is open to anyone. Its query (a signed
// LogoutRequest or LogoutResponse) must never panic the server nor
// sign anyone out unless the IdP signed it.
func FuzzSLOQuery(f *testing.F) {
	e := newEnv(f)
	q, err := testidp.RedirectQuery("SAMLRequest", testidp.LogoutRequest(tenant, e.ts.URL+"/saml/slo", "alice@contoso.example", e.clock.Now()), "r", keyA, false)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(q)
	f.Add("SAMLRequest=x&SigAlg=y&Signature=z")
	f.Add("SAMLResponse=%zz&Signature=&SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256")
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest(http.MethodGet, "/saml/slo", nil)
		r.URL.RawQuery = raw
		w := httptest.NewRecorder()
		e.srv.ServeHTTP(w, r)
		if w.Code >= 500 && w.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d for %q", w.Code, raw)
		}
	})
}

// FuzzSignedLogoutXML: once the redirect signature holds, the IdP's XML
// is inflated and parsed; whatever it holds, a clear refusal, never a panic.
func FuzzSignedLogoutXML(f *testing.F) {
	e := newEnv(f)
	doc := testidp.LogoutRequest(tenant, e.ts.URL+"/saml/slo", "alice@contoso.example", e.clock.Now())
	b, _ := doc.WriteToBytes()
	f.Add(b, true)
	f.Add([]byte(`<LogoutResponse xmlns="urn:oasis:names:tc:SAML:2.0:protocol"/>`), false)
	f.Fuzz(func(t *testing.T, xmlText []byte, request bool) {
		d := etree.NewDocument()
		if d.ReadFromBytes(xmlText) != nil || d.Root() == nil {
			return
		}
		param := "SAMLResponse"
		if request {
			param = "SAMLRequest"
		}
		q, err := testidp.RedirectQuery(param, d, "", keyA, false)
		if err != nil {
			return
		}
		r := httptest.NewRequest(http.MethodGet, "/saml/slo", nil)
		r.URL.RawQuery = q
		w := httptest.NewRecorder()
		e.srv.ServeHTTP(w, r)
		if w.Code >= 500 && w.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d", w.Code)
		}
	})
}

// FuzzReturnTo: wherever a sign-in returns (returnTo on /saml/login, a
// RelayState naming this site), it is a path on this site.
func FuzzReturnTo(f *testing.F) {
	for _, s := range []string{"/x", "//evil", "/\\evil", "https://sp.example/a?b", "https://sp.example//evil", "/%2F/evil", "https://sp.example/\\evil", "https://SP.example:443/x"} {
		f.Add(s)
	}
	const origin = "https://sp.example"
	f.Fuzz(func(t *testing.T, raw string) {
		for _, in := range []string{raw, onThisSite(raw, origin)} {
			got := localReturnTo(in, "/base")
			if got == "/base/" {
				continue
			}
			if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.HasPrefix(got, "/\\") || strings.ContainsAny(got, "\\\r\n\t\x00") {
				t.Fatalf("localReturnTo(%q) = %q leaves the site", in, got)
			}
			// What a browser does with it: resolved against the origin.
			req, err := http.NewRequest(http.MethodGet, origin+"/base/", nil)
			if err != nil {
				t.Fatal(err)
			}
			u, err := req.URL.Parse(got)
			if err != nil || u.Host != "sp.example" {
				t.Fatalf("localReturnTo(%q) = %q resolves to %v (%v)", in, got, u, err)
			}
		}
	})
}
