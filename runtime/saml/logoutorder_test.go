package saml

import (
	"net/http"
	"testing"
	"time"

	"github.com/beevik/etree"
)

// TestAssertionIssuedBeforeIDPLogout: an assertion the IdP issued before
// its LogoutRequest for the same user, delivered after it, does not sign
// the user in (SAML core §3.7.3.2 applies the logout to it too); the
// user's next assertion does, and other users' are not touched.
func TestAssertionIssuedBeforeIDPLogout(t *testing.T) {
	e := newEnv(t)
	irt, relay := e.login("/")
	early := encode(t, e.good(irt))
	irtDave, relayDave := e.login("/")
	dave := e.good(irtDave)
	dave.NameID = "dave@contoso.example"
	earlyDave := encode(t, dave)
	e.clock.Add(time.Second)
	// The NameID as the IdP spells it in the logout, in another case.
	r, page := e.get("/saml/slo?" + e.idpLogoutQuery(func(r *etree.Element) {
		r.FindElement("./NameID").SetText("ALICE@contoso.example")
	}))
	if r.StatusCode != http.StatusFound {
		t.Fatalf("LogoutRequest: %d %q %s", r.StatusCode, e.lastResult(), page)
	}
	expectRejected(t, e, e.post(early, relay), CodeLoggedOut)

	if resp := e.post(earlyDave, relayDave); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("another user's assertion after alice's logout: %d %q", resp.StatusCode, e.lastResult())
	}
	e.clock.Add(time.Second)
	e.signIn()
	if r, _ := e.get("/me"); r.StatusCode != http.StatusOK {
		t.Fatalf("alice's assertion issued after the logout: /me %d", r.StatusCode)
	}
}
