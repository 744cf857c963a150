package saml

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/idrecon/idrecon/runtime/internal/testidp"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// signOutAt posts the sign-out form and returns the ID of the LogoutRequest
// the SP sent the browser to the IdP with.
func (e *env) signOutAt() string {
	e.t.Helper()
	resp := e.postLogout(nil)
	if resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("sign-out: status %d", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		e.t.Fatal(err)
	}
	raw, err := testidp.Inflate(loc.Query().Get("SAMLRequest"))
	if err != nil {
		e.t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		e.t.Fatal(err)
	}
	return doc.Root().SelectAttrValue("ID", "")
}

// signInAs signs in to e as nameID, from the start.
func (e *env) signInAs(nameID string) {
	e.t.Helper()
	irt, relay := e.login("/")
	o := e.good(irt)
	o.NameID = nameID
	if resp := e.post(encode(e.t, o), relay); resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("sign-in as %s: %d %q", nameID, resp.StatusCode, e.lastResult())
	}
}

// signedInAs says who the browser is signed in as on e's pages ("" for
// nobody), and checks that SessionUser, which the Gateway and the console
// read, agrees.
func (e *env) signedInAs() string {
	e.t.Helper()
	r, page := e.get("/me")
	who := ""
	if r.StatusCode == http.StatusOK {
		for _, u := range []string{"alice@contoso.example", "dave@contoso.example"} {
			if strings.Contains(page, u) {
				who = u
			}
		}
	}
	if u, _ := e.srv.SessionUser(e.cookieRequest()); u != who {
		e.t.Errorf("SessionUser says %q, the page %q", u, who)
	}
	return who
}

// Two daemons on one host, on two ports, and one browser: browsers keep
// cookies per host, not per port, so the SP's cookies must be named apart
// or each daemon's sign-in, sign-out and pending messages clobber the
// other's.
func TestTwoDaemonsOnOneHost(t *testing.T) {
	a, b := newEnv(t), newEnv(t)
	// Configured apart, as two daemons are: their own SP keys, so neither
	// opens the other's sealed cookies.
	b.update(func(tx *store.Txn) error {
		return tx.Insert(store.TableResources, certRes("sp-sign-b", spec.UsageSamlSPSigning, keyEvil, true))
	})
	b.setSpec(func(sp *spec.SamlServiceProvider) { sp.SPSigningCertificate = "sp-sign-b" })
	b.client = a.client // one browser
	ua, _ := url.Parse(a.ts.URL)
	ub, _ := url.Parse(b.ts.URL)
	if ua.Hostname() != ub.Hostname() || ua.Port() == ub.Port() {
		t.Fatalf("want one host on two ports: %s %s", a.ts.URL, b.ts.URL)
	}

	// Sign-ins started on both before either returns from the IdP.
	irtA, relayA := a.login("/")
	irtB, relayB := b.login("/")
	if resp := a.post(encode(t, a.good(irtA)), relayA); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-in on A after one started on B: %d %q", resp.StatusCode, a.lastResult())
	}
	if resp := b.post(encode(t, b.good(irtB)), relayB); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-in on B after one started on A: %d %q", resp.StatusCode, b.lastResult())
	}

	// Signed in to A, then to B as someone else.
	a.signInAs("alice@contoso.example")
	b.signInAs("dave@contoso.example")
	if got := a.signedInAs(); got != "alice@contoso.example" {
		t.Errorf("after signing in to B, A has %q, want alice", got)
	}
	if got := b.signedInAs(); got != "dave@contoso.example" {
		t.Errorf("B has %q, want dave", got)
	}

	// Signing out of both, B first: each IdP answer is taken by its own
	// daemon, and B's sign-out leaves A's session alone.
	reqB := b.signOutAt()
	if got := a.signedInAs(); got != "alice@contoso.example" {
		t.Errorf("after signing out of B, A has %q, want alice", got)
		a.signInAs("alice@contoso.example")
	}
	reqA := a.signOutAt()
	if r, page := b.get("/saml/slo?" + b.logoutResponse(reqB, "", keyA)); r.StatusCode != http.StatusOK {
		t.Errorf("B's LogoutResponse after A's sign-out: %d %q %s", r.StatusCode, b.lastResult(), page)
	}
	if r, page := a.get("/saml/slo?" + a.logoutResponse(reqA, "", keyA)); r.StatusCode != http.StatusOK {
		t.Errorf("A's LogoutResponse: %d %q %s", r.StatusCode, a.lastResult(), page)
	}
}

func TestCookieNamesOf(t *testing.T) {
	for raw, want := range map[string]cookieNames{
		// The scheme's own port keeps the names daemons always had.
		"https://sso.example.com/idrecon": {"idrecon_session", "idrecon_saml_pending", "idrecon_saml_logout"},
		"http://sso.example.com":          {"idrecon_session", "idrecon_saml_pending", "idrecon_saml_logout"},
		"https://sso.example.com:443/":    {"idrecon_session", "idrecon_saml_pending", "idrecon_saml_logout"},
		"http://sso.example.com:443/":     {"idrecon_session_443", "idrecon_saml_pending_443", "idrecon_saml_logout_443"},
		"https://sso.example.com:8443/":   {"idrecon_session_8443", "idrecon_saml_pending_8443", "idrecon_saml_logout_8443"},
		"http://[::1]:8080":               {"idrecon_session_8080", "idrecon_saml_pending_8080", "idrecon_saml_logout_8080"},
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := cookieNamesOf(u); got != want {
			t.Errorf("%s: %+v, want %+v", raw, got, want)
		}
	}
}
