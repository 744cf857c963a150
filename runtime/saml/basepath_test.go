package saml

import (
	"crypto/x509"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/internal/testidp"
	"github.com/idrecon/idrecon/spec"
)

// TestSignInAtTheBaseURLItself: with a baseURL below the host's root, a
// browser that opens the baseURL as configured (no trailing slash: a
// bookmark, Entra's Sign on URL or My Apps link) signs in and lands signed
// in. The cookies' path is the base path with its slash, which a browser
// does not send to the base path without it: the home page there saw no
// session after every sign-in and sent the browser back to sign in, for
// ever.
func TestSignInAtTheBaseURLItself(t *testing.T) {
	e := newEnv(t)
	base := e.ts.URL + "/sso"
	e.setSpec(func(sp *spec.SamlServiceProvider) { sp.BaseURL = base })

	// Follows the SP's own redirects from path; stops at the IdP.
	visit := func(path string) (*http.Response, []string) {
		t.Helper()
		var hops []string
		target := e.ts.URL + path
		for range 10 {
			resp, err := e.client.Get(target)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			hops = append(hops, strings.TrimPrefix(target, e.ts.URL))
			loc := resp.Header.Get("Location")
			if resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, "/") {
				return resp, hops
			}
			target = e.ts.URL + loc
		}
		t.Fatalf("redirect loop: %v", hops)
		return nil, nil
	}

	resp, hops := visit("/sso")
	idp, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(idp.String(), testidp.SSOURL(tenant)+"?") {
		t.Fatalf("opening the baseURL did not lead to the IdP: status %d, Location %q, hops %v", resp.StatusCode, resp.Header.Get("Location"), hops)
	}
	doc, _ := redirected(t, idp, "SAMLRequest")
	o := e.good(doc.Root().SelectAttrValue("ID", ""))
	o.Recipient = base + "/saml/acs"
	resp, err = e.client.PostForm(base+"/saml/acs", url.Values{"SAMLResponse": {encode(t, o)}, "RelayState": {idp.Query().Get("RelayState")}})
	if err != nil {
		t.Fatal(err)
	}
	if b := body(t, resp); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("ACS status %d (%s): %s", resp.StatusCode, e.lastResult(), b)
	}
	landing := resp.Header.Get("Location")
	if !strings.HasPrefix(landing, "/sso") {
		t.Fatalf("landed on %q, outside the base path", landing)
	}
	resp, hops = visit(landing)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after sign-in, %s ends with status %d at %s (hops %v): the browser is sent to sign in again", landing, resp.StatusCode, resp.Header.Get("Location"), hops)
	}
	// The query survives the way to the slash.
	if resp, hops = visit("/sso?x=1"); resp.StatusCode != http.StatusOK || hops[len(hops)-1] != "/sso/?x=1" {
		t.Fatalf("/sso?x=1: status %d, hops %v", resp.StatusCode, hops)
	}
}

// TestLogoutRequestNameIDFormat: the LogoutRequest the SP sends names the
// user by a NameID of the format its AuthnRequests ask for, which is the
// one Entra issued. (gosaml2 writes Format="" when it was given no format,
// which names no format at all, and an IdP matching the NameID of its
// session against the request's may refuse the logout.)
func TestLogoutRequestNameIDFormat(t *testing.T) {
	const persistent = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
	e := newEnv(t, func(sp *spec.SamlServiceProvider) { sp.NameIDFormat = persistent })
	e.signIn()
	resp := e.postLogout(nil)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("status %d, Location %q: %v", resp.StatusCode, resp.Header.Get("Location"), err)
	}
	doc, raw := redirected(t, loc, "SAMLRequest")
	nid := doc.Root().FindElement("./NameID")
	if nid == nil || nid.Text() != "alice@contoso.example" {
		t.Fatalf("LogoutRequest names no alice: %s", raw)
	}
	if f := nid.SelectAttrValue("Format", ""); f != persistent {
		t.Fatalf("NameID Format %q, want %s: %s", f, persistent, raw)
	}
	// The redirect signature covers what was changed.
	if err := verifyRedirectSignature(loc.RawQuery, "SAMLRequest", []*x509.Certificate{keySP.Cert}, false, time.Now(), 0); err != nil {
		t.Fatalf("LogoutRequest redirect signature: %v", err)
	}
}
