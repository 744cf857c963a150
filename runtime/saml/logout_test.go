package saml

import (
	"crypto/x509"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/idrecon/idrecon/runtime/saml/internal/testidp"
)

func (e *env) signIn() {
	e.t.Helper()
	irt, relay := e.login("/")
	if resp := e.post(encode(e.t, e.good(irt)), relay); resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("sign-in failed: %d %s", resp.StatusCode, body(e.t, resp))
	}
}

func TestSPInitiatedLogout(t *testing.T) {
	e := newEnv(t)
	e.signIn()
	resp, err := e.client.PostForm(e.ts.URL+"/saml/logout", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("status %d", resp.StatusCode)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if !strings.HasPrefix(loc.String(), testidp.SSOURL(tenant)+"?SAMLRequest=") {
		t.Fatalf("redirects to %s, want Entra's SLO endpoint", loc)
	}
	// The redirect is signed with the SP key, verifiable as Entra would.
	if err := verifyRedirectSignature(loc.RawQuery, "SAMLRequest", []*x509.Certificate{keySP.Cert}, false, time.Now(), 0); err != nil {
		t.Fatalf("LogoutRequest redirect signature: %v", err)
	}
	raw, err := testidp.Inflate(loc.Query().Get("SAMLRequest"))
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	if doc.Root().Tag != "LogoutRequest" || doc.Root().FindElement("./NameID").Text() != "alice@contoso.example" {
		t.Fatalf("not a LogoutRequest for alice: %s", raw)
	}
	if r, _ := e.get("/"); r.StatusCode != http.StatusFound {
		t.Fatalf("session survived logout: %d", r.StatusCode)
	}
	// Entra's LogoutResponse lands on the signed-out page.
	q, err := testidp.RedirectQuery("SAMLResponse", testidp.LogoutRequest(tenant, e.ts.URL+"/saml/slo", "x", e.clock.Now()), "", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if r, page := e.get("/saml/slo?" + q); r.StatusCode != http.StatusOK || !strings.Contains(page, "Signed out") {
		t.Fatalf("LogoutResponse: %d %s", r.StatusCode, page)
	}
}

func TestIDPInitiatedLogout(t *testing.T) {
	type c struct {
		name  string
		query func(e *env) string
		want  string // "" = accepted
	}
	msg := func(e *env, nameID string) *etree.Document {
		return testidp.LogoutRequest(tenant, e.ts.URL+"/saml/slo", nameID, e.clock.Now())
	}
	q := func(t testing.TB, doc *etree.Document, relay string, key *testidp.Key, sha1 bool) string {
		s, err := testidp.RedirectQuery("SAMLRequest", doc, relay, key, sha1)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cases := []c{
		{"signed by Entra", func(e *env) string { return q(e.t, msg(e, "ALICE@contoso.example"), "r1", keyA, false) }, ""},
		{"42 unsigned", func(e *env) string { return q(e.t, msg(e, "alice@contoso.example"), "", nil, false) }, CodeLogoutSignature},
		{"42 signed by another key", func(e *env) string { return q(e.t, msg(e, "alice@contoso.example"), "", keyEvil, false) }, CodeLogoutSignature},
		{"42 SHA-1 SigAlg", func(e *env) string { return q(e.t, msg(e, "alice@contoso.example"), "", keyA, true) }, CodeLogoutSignature},
		{"42 message swapped after signing", func(e *env) string {
			signed := q(e.t, msg(e, "dave@contoso.example"), "", keyA, false)
			other := q(e.t, msg(e, "alice@contoso.example"), "", nil, false)
			v, _ := url.ParseQuery(other)
			i := strings.Index(signed, "&SigAlg=")
			return "SAMLRequest=" + url.QueryEscape(v.Get("SAMLRequest")) + signed[i:]
		}, CodeLogoutSignature},
		{"42 RelayState added after signing", func(e *env) string {
			return q(e.t, msg(e, "alice@contoso.example"), "", keyA, false) + "&RelayState=x"
		}, CodeLogoutSignature},
		{"42 Signature parameter repeated", func(e *env) string {
			s := q(e.t, msg(e, "alice@contoso.example"), "", keyA, false)
			return s + "&Signature=AAAA"
		}, CodeLogoutSignature},
		{"wrong issuer", func(e *env) string {
			d := msg(e, "alice@contoso.example")
			d.Root().FindElement("./Issuer").SetText("https://evil.example/")
			return q(e.t, d, "", keyA, false)
		}, CodeIssuer},
		{"wrong destination", func(e *env) string {
			d := msg(e, "alice@contoso.example")
			d.Root().CreateAttr("Destination", "https://evil.example/slo")
			return q(e.t, d, "", keyA, false)
		}, CodeDestination},
		{"deflate bomb", func(e *env) string {
			d := msg(e, strings.Repeat("a", 1<<20))
			return q(e.t, d, "", keyA, false)
		}, CodeLogoutMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.signIn()
			r, page := e.get("/saml/slo?" + tc.query(e))
			if tc.want == "" {
				if r.StatusCode != http.StatusFound {
					t.Fatalf("status %d: %s", r.StatusCode, page)
				}
				loc, _ := url.Parse(r.Header.Get("Location"))
				if !strings.HasPrefix(loc.String(), testidp.SSOURL(tenant)+"?SAMLResponse=") || loc.Query().Get("RelayState") != "r1" {
					t.Fatalf("answer goes to %s", loc)
				}
				if err := verifyRedirectSignature(loc.RawQuery, "SAMLResponse", []*x509.Certificate{keySP.Cert}, false, time.Now(), 0); err != nil {
					t.Fatalf("LogoutResponse signature: %v", err)
				}
				if r, _ := e.get("/"); r.StatusCode != http.StatusFound {
					t.Fatal("session survived IdP logout")
				}
				return
			}
			if r.StatusCode != http.StatusForbidden || e.lastResult() != tc.want {
				t.Fatalf("status %d result %q, want 403 %q: %s", r.StatusCode, e.lastResult(), tc.want, page)
			}
			if r, _ := e.get("/"); r.StatusCode != http.StatusOK {
				t.Fatal("a rejected logout request ended the session")
			}
		})
	}
}

// postLogout posts the sign-out form with the given request headers.
func (e *env) postLogout(header map[string]string) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.ts.URL+"/saml/logout", strings.NewReader(""))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestLogoutCrossSite: another site cannot sign a user out by posting the
// sign-out form; the SP's own page can.
func TestLogoutCrossSite(t *testing.T) {
	tests := []struct {
		name   string
		header func(e *env) map[string]string
		ends   bool
	}{
		{"cross-site Origin", func(*env) map[string]string { return map[string]string{"Origin": "https://evil.example"} }, false},
		{"cross-site fetch metadata", func(*env) map[string]string {
			return map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
		}, false},
		{"same-site sibling", func(*env) map[string]string { return map[string]string{"Sec-Fetch-Site": "same-site"} }, false},
		{"null Origin", func(*env) map[string]string { return map[string]string{"Origin": "null"} }, false},
		{"same-origin", func(e *env) map[string]string {
			return map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": e.ts.URL}
		}, true},
		{"same Origin, older browser", func(e *env) map[string]string { return map[string]string{"Origin": e.ts.URL} }, true},
		{"no browser headers", func(*env) map[string]string { return nil }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.signIn()
			resp := e.postLogout(tc.header(e))
			r, _ := e.get("/")
			ended := r.StatusCode == http.StatusFound
			if ended != tc.ends {
				t.Fatalf("logout status %d; session ended = %v, want %v", resp.StatusCode, ended, tc.ends)
			}
			if !tc.ends && resp.StatusCode != http.StatusForbidden {
				t.Fatalf("refused logout answered %d, want 403", resp.StatusCode)
			}
		})
	}
}

// TestLogoutResponseForged: a LogoutResponse that is not the IdP's signed
// answer to this browser's own LogoutRequest ends nothing.
func TestLogoutResponseForged(t *testing.T) {
	tests := []struct {
		name  string
		query func(e *env) string
	}{
		{"garbage", func(*env) string { return "SAMLResponse=anything" }},
		{"empty", func(*env) string { return "SAMLResponse=" }},
		{"unsigned, from a LogoutRequest", func(e *env) string {
			q, err := testidp.RedirectQuery("SAMLResponse", testidp.LogoutRequest(tenant, e.ts.URL+"/saml/slo", "x", e.clock.Now()), "", nil, false)
			if err != nil {
				e.t.Fatal(err)
			}
			return q
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.signIn()
			r, page := e.get("/saml/slo?" + tc.query(e))
			if r.StatusCode != http.StatusForbidden {
				t.Errorf("status %d, want 403: %s", r.StatusCode, page)
			}
			if r, _ := e.get("/"); r.StatusCode != http.StatusOK {
				t.Fatal("a forged LogoutResponse ended the session")
			}
		})
	}
}
