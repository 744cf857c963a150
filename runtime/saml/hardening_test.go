package saml

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/internal/testidp"
	"github.com/idrecon/idrecon/spec"
)

// TestSLOEncodedParameterName: the redirect signature covers the raw
// "SAMLRequest=…" pair, but url.Query() also decodes parameter names, so a
// forged "SAML%52equest=…" placed first would be the message acted on
// while a genuine, Entra-signed LogoutRequest (here the attacker's own)
// supplies the signature. The forged request must not end alice's session.
func TestSLOEncodedParameterName(t *testing.T) {
	e := newEnv(t)
	e.signIn() // alice, in e.client's browser

	// Entra's signed LogoutRequest for the attacker's own account.
	signed, err := testidp.RedirectQuery("SAMLRequest",
		testidp.LogoutRequest(tenant, e.ts.URL+"/saml/slo", "carol@contoso.example", e.clock.Now()), "", keyA, false)
	if err != nil {
		t.Fatal(err)
	}
	// An unsigned LogoutRequest naming the victim.
	forged, err := testidp.RedirectQuery("SAMLRequest",
		testidp.LogoutRequest(tenant, e.ts.URL+"/saml/slo", "alice@contoso.example", e.clock.Now()), "", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	fv, _ := url.ParseQuery(forged)
	query := "SAML%52equest=" + url.QueryEscape(fv.Get("SAMLRequest")) + "&" + signed

	attacker := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := attacker.Get(e.ts.URL + "/saml/slo?" + query)
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, resp)
	if resp.StatusCode != http.StatusForbidden || e.lastResult() != CodeLogoutSignature {
		t.Errorf("forged LogoutRequest: status %d result %q, want 403 %q: %s", resp.StatusCode, e.lastResult(), CodeLogoutSignature, page)
	}
	if r, _ := e.get("/"); r.StatusCode != http.StatusOK {
		t.Fatal("a LogoutRequest nobody signed ended alice's session")
	}
}

// TestReplayAfterEviction: the replay cache is bounded and, when full,
// drops the entry that expires soonest. An assertion whose entry was
// dropped that way must still be refused, or whoever can make the table
// overflow (valid sign-ins of their own) can then replay a captured one.
// The bound is lowered to 2 so the test needs three sign-ins, not 200001.
func TestReplayAfterEviction(t *testing.T) {
	e := newEnv(t, func(sp *spec.SamlServiceProvider) { sp.AllowIDPInitiated = true })
	m := e.replayTable()
	m.mu.Lock()
	m.max = 2
	m.mu.Unlock()

	victim := encode(t, e.good(""))
	if resp := e.post(victim, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("victim sign-in: %d (%s)", resp.StatusCode, e.lastResult())
	}
	resp := e.post(victim, "")
	expectRejected(t, e, resp, CodeReplay)

	// The attacker's own sign-ins, issued a little later, fill the table.
	e.clock.Add(time.Second)
	for range 2 {
		if resp := e.post(encode(t, e.good("")), ""); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("flood sign-in: %d (%s)", resp.StatusCode, e.lastResult())
		}
	}
	expectRejected(t, e, e.post(victim, ""), CodeReplay)

	// A fresh sign-in still works.
	e.clock.Add(time.Second)
	if resp := e.post(encode(t, e.good("")), ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("fresh sign-in after the flood: %d (%s)", resp.StatusCode, e.lastResult())
	}
}

// TestEncryptedKeyRSA15Refused: an EncryptedAssertion whose key is
// transported with RSA PKCS#1 v1.5 (xmlenc#rsa-1_5) makes the SP run
// PKCS#1 v1.5 decryption with its private key on anyone's ciphertext,
// before any signature is checked: Bleichenbacher's oracle (Jager et al.,
// "Bleichenbacher's Attack Strikes Again: Breaking PKCS#1 v1.5 in XML
// Encryption", 2012). Entra only uses RSA-OAEP, so rsa-1_5 is refused.
func TestEncryptedKeyRSA15Refused(t *testing.T) {
	e := newEnv(t)
	irt, relay := e.login("/")
	o := e.good(irt)
	o.EncryptTo = keySP.Cert
	doc, err := testidp.Response(o)
	if err != nil {
		t.Fatal(err)
	}
	ek := doc.Root().FindElement("//EncryptedKey")
	if ek == nil {
		t.Fatal("no EncryptedKey")
	}
	em := ek.FindElement("./EncryptionMethod")
	cv := ek.FindElement("./CipherData/CipherValue")
	wrapped, err := base64.StdEncoding.DecodeString(cv.Text())
	if err != nil {
		t.Fatal(err)
	}
	key, err := rsa.DecryptOAEP(sha1.New(), nil, keySP.Private, wrapped, nil)
	if err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 the attack under test uses the deprecated key transport
	rewrapped, err := rsa.EncryptPKCS1v15(rand.Reader, &keySP.Private.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cv.SetText(base64.StdEncoding.EncodeToString(rewrapped))
	em.CreateAttr("Algorithm", "http://www.w3.org/2001/04/xmlenc#rsa-1_5")
	for _, c := range em.ChildElements() {
		em.RemoveChild(c)
	}
	s, err := testidp.Encode(doc)
	if err != nil {
		t.Fatal(err)
	}
	expectRejected(t, e, e.post(s, relay), CodeAlgorithm)
}

// TestPostBindingNeverInflated: gosaml2 inflates a SAMLResponse that does
// not parse as XML. The package's pre-checks (DOCTYPE, SHA-1, assertion
// count, the key transport of an EncryptedAssertion) read the posted bytes
// only, so a body that is not XML yet inflates to a response would reach
// gosaml2 unchecked. The ACS's gosaml2 must never inflate (Entra never
// deflates the POST binding).
func TestPostBindingNeverInflated(t *testing.T) {
	e := newEnv(t)
	c, err := e.srv.current(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	o := e.good("")
	o.EncryptTo = keySP.Cert
	doc, err := testidp.Response(o)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.saml.ValidateEncodedResponse(base64.StdEncoding.EncodeToString(deflate(raw))); err == nil {
		t.Fatal("a deflated POST-binding response was inflated and accepted")
	}
	// The plain response is still accepted.
	if _, err := c.saml.ValidateEncodedResponse(base64.StdEncoding.EncodeToString(raw)); err != nil {
		t.Fatalf("plain response: %v", err)
	}
}

// TestReplayAcrossRestart: the replay cache in this process starts empty,
// so it cannot know what the process before it accepted. A response
// captured with the victim's pending cookie (sealed with a key derived from
// the SP signing key, so it opens after a restart too), or an IdP-initiated
// one alone, must not sign in again once the daemon has restarted within
// the assertion's lifetime; a response issued after the restart must.
func TestReplayAcrossRestart(t *testing.T) {
	for _, tc := range []struct {
		name      string
		solicited bool
	}{
		{"SP-initiated with the captured cookie", true},
		{"IdP-initiated", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(sp *spec.SamlServiceProvider) { sp.AllowIDPInitiated = true })
			irt, relay := "", ""
			if tc.solicited {
				irt, relay = e.login("/")
			}
			captured := encode(t, e.good(irt))
			acs, _ := url.Parse(e.acsURL())
			cookies := e.client.Jar.Cookies(acs)
			if resp := e.post(captured, relay); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("sign-in: %d (%s)", resp.StatusCode, e.lastResult())
			}

			// The daemon restarts a minute later, on the same store.
			e.clock.Add(time.Minute)
			var result string
			restarted := NewServer(e.st, Options{Authorizer: AccessAuthorizer{Store: e.st}, Now: e.clock.Now, Observer: func(r string) { result = r }})
			post := func(samlResponse, relay string, cookies []*http.Cookie) int {
				t.Helper()
				req := httptest.NewRequest(http.MethodPost, e.acsURL(), strings.NewReader(url.Values{"SAMLResponse": {samlResponse}, "RelayState": {relay}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				for _, c := range cookies {
					req.AddCookie(c)
				}
				rec := httptest.NewRecorder()
				restarted.ServeHTTP(rec, req)
				return rec.Code
			}
			if code := post(captured, relay, cookies); code != http.StatusForbidden || result != CodeReplay {
				t.Fatalf("replay after the restart: status %d result %q, want 403 %q", code, result, CodeReplay)
			}
			if code := post(encode(t, e.good("")), "", nil); code != http.StatusSeeOther {
				t.Fatalf("sign-in issued after the restart: status %d result %q, want 303", code, result)
			}
		})
	}
}
