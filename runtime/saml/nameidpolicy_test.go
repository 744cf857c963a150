package saml

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"testing"

	"github.com/idrecon/idrecon/runtime/internal/testidp"
	"github.com/idrecon/idrecon/spec"
)

const (
	formatPersistent  = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
	formatUnspecified = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
	formatTransient   = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
)

// entraNameID is the NameID Entra issues for an AuthnRequest, as its SAML
// protocol documentation describes: without a NameIDPolicy Format, the
// application's claim settings (here the UPN); for emailAddress, the user
// in e-mail address format; for persistent and unspecified, a pairwise
// identifier; for transient, a value new at every sign-in. ok is false for
// any other Format, which Entra refuses.
func entraNameID(t *testing.T, loc *url.URL, upn string) (nameID string, ok bool) {
	t.Helper()
	doc, _ := redirected(t, loc, "SAMLRequest")
	format := ""
	if p := doc.Root().FindElement("./NameIDPolicy"); p != nil {
		format = p.SelectAttrValue("Format", "")
	}
	pairwise := sha256.Sum256([]byte("pairwise " + upn))
	switch format {
	case "", spec.DefaultNameIDFormat:
		return upn, true
	case formatPersistent, formatUnspecified:
		return hex.EncodeToString(pairwise[:16]), true
	case formatTransient:
		return "_" + randomToken(), true
	}
	return "", false
}

// TestNameIDPolicyForEntra: SP-initiated sign-in works with every
// nameIDFormat the spec accepts. Entra answers a request for a persistent,
// unspecified or transient NameID with an opaque identifier, never a
// userName: the request asks for such a format only when the user is
// found by a claim, and leaves the choice to the application's claim
// settings when the user is found by the NameID.
func TestNameIDPolicyForEntra(t *testing.T) {
	for _, format := range []string{spec.DefaultNameIDFormat, formatPersistent, formatUnspecified, formatTransient} {
		for _, byClaim := range []bool{false, true} {
			name := format[len("urn:oasis:names:tc:SAML:x.x:nameid-format:"):]
			if byClaim {
				name += ", username from a claim"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, func(sp *spec.SamlServiceProvider) {
					sp.NameIDFormat = format
					if byClaim {
						sp.Attributes.Username = testidp.ClaimName
					}
				})
				loc := e.loginRedirect(t, "/me")
				nameID, ok := entraNameID(t, loc, "alice@contoso.example")
				if !ok {
					t.Fatal("Entra refuses the AuthnRequest's NameIDPolicy")
				}
				doc, raw := redirected(t, loc, "SAMLRequest")
				if byClaim || format == spec.DefaultNameIDFormat {
					// The format is asked for where it is harmless.
					if p := doc.Root().FindElement("./NameIDPolicy"); p == nil || p.SelectAttrValue("Format", "") != format {
						t.Fatalf("NameIDPolicy does not ask for %s: %s", format, raw)
					}
				}
				o := e.good(doc.Root().SelectAttrValue("ID", ""))
				o.NameID = nameID
				r := e.post(encode(t, o), loc.Query().Get("RelayState"))
				if b := body(t, r); r.StatusCode != http.StatusSeeOther {
					t.Fatalf("sign-in with the NameID %q Entra issued: status %d (%s): %s", nameID, r.StatusCode, e.lastResult(), b)
				}
			})
		}
	}
}
