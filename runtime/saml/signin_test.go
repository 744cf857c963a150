package saml

import (
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/internal/testidp"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

func TestSignIn(t *testing.T) {
	rollover := func(sp *spec.SamlServiceProvider) { sp.IDP.SigningCertificates = []string{"entra-a", "entra-b"} }
	idpInit := func(sp *spec.SamlServiceProvider) { sp.AllowIDPInitiated = true }
	tests := []struct {
		name      string
		mods      []func(*spec.SamlServiceProvider)
		unsolicit bool
		relay     string // IdP-initiated RelayState
		onBase    bool   // relay follows the SP's baseURL
		opts      func(*testidp.ResponseOptions)
		landing   string
	}{
		{name: "assertion signed (Entra default)", opts: func(o *testidp.ResponseOptions) {}},
		{name: "response signed", opts: func(o *testidp.ResponseOptions) { o.SignAssertion, o.SignResponse = false, true }},
		{name: "response and assertion signed", opts: func(o *testidp.ResponseOptions) { o.SignResponse = true }},
		{name: "encrypted assertion", opts: func(o *testidp.ResponseOptions) { o.EncryptTo = keySP.Cert }},
		{name: "encrypted assertion, response signed", opts: func(o *testidp.ResponseOptions) {
			o.EncryptTo, o.SignResponse = keySP.Cert, true
		}},
		{name: "encrypted unsigned assertion, response signed", opts: func(o *testidp.ResponseOptions) {
			o.EncryptTo, o.SignResponse, o.SignAssertion = keySP.Cert, true, false
		}},
		{name: "rollover: new key signs", mods: []func(*spec.SamlServiceProvider){rollover}, opts: func(o *testidp.ResponseOptions) { o.Key = keyB }},
		{name: "rollover: old key still signs", mods: []func(*spec.SamlServiceProvider){rollover}, opts: func(o *testidp.ResponseOptions) {}},
		{name: "IdP-initiated", mods: []func(*spec.SamlServiceProvider){idpInit}, unsolicit: true, relay: "/me?tab=roles", landing: "/me?tab=roles", opts: func(o *testidp.ResponseOptions) {}},
		{name: "IdP-initiated, foreign RelayState lands home", mods: []func(*spec.SamlServiceProvider){idpInit}, unsolicit: true, relay: "https://evil.example/", landing: "/", opts: func(o *testidp.ResponseOptions) {}},
		{name: "IdP-initiated, RelayState an absolute URL of this SP", mods: []func(*spec.SamlServiceProvider){idpInit}, unsolicit: true, onBase: true, relay: "/me?tab=roles#top", landing: "/me?tab=roles", opts: func(o *testidp.ResponseOptions) {}},
		{name: "IdP-initiated, RelayState of this host with a password lands home", mods: []func(*spec.SamlServiceProvider){idpInit}, unsolicit: true, relay: "http://x:y@127.0.0.1/me", landing: "/", opts: func(o *testidp.ResponseOptions) {}},
		{name: "NotBefore 30s ahead is within skew", opts: func(o *testidp.ResponseOptions) { o.NotBefore = o.Now.Add(30e9) }},
		{name: "username from a claim", mods: []func(*spec.SamlServiceProvider){func(sp *spec.SamlServiceProvider) { sp.Attributes.Username = testidp.ClaimName }}, opts: func(o *testidp.ResponseOptions) { o.NameID = "0b6f7a9e-opaque-pairwise" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.mods...)
			irt, relay, landing := "", tc.relay, tc.landing
			if tc.onBase {
				relay = strings.ToUpper(e.ts.URL[:4]) + e.ts.URL[4:] + relay // the scheme in any case
			}
			if !tc.unsolicit {
				irt, relay = e.login("/me")
				landing = "/me"
			}
			o := e.good(irt)
			tc.opts(&o)
			resp := e.post(encode(t, o), relay)
			if b := body(t, resp); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("ACS status %d (%s), want 303; page: %s", resp.StatusCode, e.lastResult(), b)
			}
			if got := resp.Header.Get("Location"); got != landing {
				t.Fatalf("landed on %q, want %q", got, landing)
			}
			if e.lastResult() != "success" {
				t.Fatalf("observer got %q", e.lastResult())
			}
			r, page := e.get("/me")
			if r.StatusCode != http.StatusOK {
				t.Fatalf("/me status %d: %s", r.StatusCode, page)
			}
			for _, want := range []string{"alice@contoso.example", "Developer", "direct", "Security Lead", "group AppSec Leads", "WebGoat/2026.1", "WebGoat/2026.2"} {
				if !strings.Contains(page, want) {
					t.Errorf("page lacks %q:\n%s", want, page)
				}
			}
		})
	}
}

func TestSignInDenied(t *testing.T) {
	tests := []struct{ nameID, reason string }{
		{"mallory@contoso.example", "unknown user"},
		{"bob@contoso.example", "user disabled"},
		{"carol@contoso.example", "no role"},
	}
	for _, tc := range tests {
		t.Run(tc.reason, func(t *testing.T) {
			e := newEnv(t)
			irt, relay := e.login("/")
			o := e.good(irt)
			o.NameID = tc.nameID
			resp := e.post(encode(t, o), relay)
			page := body(t, resp)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "("+tc.reason+")") {
				t.Fatalf("status %d, page %s; want 403 saying %q", resp.StatusCode, page, tc.reason)
			}
			if strings.Contains(page, "goroutine") || strings.Contains(page, ".go:") {
				t.Fatal("page leaks internals")
			}
			if r, _ := e.get("/me"); r.StatusCode != http.StatusFound {
				t.Fatalf("denied user got a session: /me status %d", r.StatusCode)
			}
		})
	}
}

func TestUserNameMatchesCaseInsensitively(t *testing.T) {
	e := newEnv(t)
	irt, relay := e.login("/")
	o := e.good(irt)
	o.NameID = "ALICE@Contoso.Example"
	if resp := e.post(encode(t, o), relay); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("status %d: %s", resp.StatusCode, body(t, resp))
	}
}

// A user disabled or deleted over SCIM, or left without a role, loses the
// session on the next request.
func TestSessionEndsWhenUserChanges(t *testing.T) {
	tests := []struct {
		name   string
		change func(tx *store.Txn) error
		reason string
	}{
		{"disabled", func(tx *store.Txn) error {
			return tx.Insert(store.TableUsers, &store.User{ID: "u1", UserName: "alice@contoso.example", Active: false})
		}, "user disabled"},
		{"deleted", func(tx *store.Txn) error {
			_, err := tx.DeleteAll(store.TableUsers, store.IndexID, "u1")
			return err
		}, "unknown user"},
		{"roles withdrawn", func(tx *store.Txn) error {
			for _, n := range []string{"alice", "security"} {
				if _, err := tx.DeleteAll(store.TableResources, store.IndexID, spec.KindAccessAssignment, n); err != nil {
					return err
				}
			}
			return nil
		}, "no role"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			irt, relay := e.login("/")
			if resp := e.post(encode(t, e.good(irt)), relay); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("sign-in failed: %d", resp.StatusCode)
			}
			if r, _ := e.get("/"); r.StatusCode != http.StatusOK {
				t.Fatalf("/ status %d", r.StatusCode)
			}
			e.update(tc.change)
			r, page := e.get("/")
			if r.StatusCode != http.StatusForbidden || !strings.Contains(page, tc.reason) {
				t.Fatalf("after change: status %d page %s", r.StatusCode, page)
			}
			// The session is gone, not just refused once.
			if r, _ := e.get("/"); r.StatusCode != http.StatusFound {
				t.Fatalf("session survived: status %d", r.StatusCode)
			}
		})
	}
}

func TestLoginRequest(t *testing.T) {
	tests := []struct {
		name   string
		signed bool
		format string // the spec's nameIDFormat; "" as stored before resolving
		claim  string // the spec's attributes.username
		// want is the Format the request asks of Entra's NameIDPolicy;
		// "" for no NameIDPolicy (see TestNameIDPolicyForEntra).
		want string
	}{
		{"unsigned", false, spec.DefaultNameIDFormat, "", spec.DefaultNameIDFormat},
		{"signed", true, spec.DefaultNameIDFormat, "", spec.DefaultNameIDFormat},
		{"persistent", false, formatPersistent, "", ""},
		{"persistent, username from a claim", false, formatPersistent, testidp.ClaimName, formatPersistent},
		{"unresolved", false, "", "", spec.DefaultNameIDFormat},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(sp *spec.SamlServiceProvider) {
				sp.SignAuthnRequests, sp.NameIDFormat, sp.Attributes.Username = tc.signed, tc.format, tc.claim
			})
			loc := e.loginRedirect(t, "/me")
			err := verifyRedirectSignature(loc.RawQuery, "SAMLRequest", []*x509.Certificate{keySP.Cert}, false, time.Now(), 0)
			if tc.signed != (err == nil) {
				t.Fatalf("signed=%v but signature check: %v", tc.signed, err)
			}
			doc, raw := redirected(t, loc, "SAMLRequest")
			req := doc.Root()
			if req.Tag != "AuthnRequest" || req.FindElement("./Issuer").Text() != entityID ||
				req.SelectAttrValue("AssertionConsumerServiceURL", "") != e.acsURL() ||
				req.SelectAttrValue("ProtocolBinding", "") != bindingPOST {
				t.Fatalf("AuthnRequest: %s", raw)
			}
			if req.FindElement("./Subject") != nil {
				t.Fatal("AuthnRequest carries a Subject, which Entra refuses")
			}
			// Entra issues the format an AuthnRequest asks for, whatever
			// its application's claim settings say.
			switch p := req.FindElement("./NameIDPolicy"); {
			case tc.want == "" && p != nil:
				t.Fatalf("NameIDPolicy sent, want none: %s", raw)
			case tc.want != "" && (p == nil || p.SelectAttrValue("Format", "") != tc.want):
				t.Fatalf("NameIDPolicy asks for another format than %s: %s", tc.want, raw)
			}
			// RelayState is opaque: it does not carry returnTo.
			if rs := loc.Query().Get("RelayState"); rs == "" || strings.Contains(rs, "/me") {
				t.Fatalf("RelayState %q", rs)
			}
		})
	}
}

func TestCookies(t *testing.T) {
	e := newEnv(t, func(sp *spec.SamlServiceProvider) {
		sp.BaseURL = "https://ssc.example.com"
		sp.AllowIDPInitiated = true
		sp.SessionLifetime = spec.Duration(time.Hour)
	})
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "https://ssc.example.com/saml/login", nil))
	ck := w.Result().Cookies()
	if len(ck) != 1 || ck[0].Name != "idrecon_saml_pending" || ck[0].SameSite != http.SameSiteNoneMode || !ck[0].Secure || !ck[0].HttpOnly {
		t.Fatalf("pending cookie %+v: want SameSite=None; Secure; HttpOnly so it survives the IdP's cross-site POST", ck)
	}

	o := e.good("")
	o.Recipient = "https://ssc.example.com/saml/acs"
	req := httptest.NewRequest(http.MethodPost, "https://ssc.example.com/saml/acs", strings.NewReader(url.Values{"SAMLResponse": {encode(t, o)}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w = httptest.NewRecorder()
	e.srv.ServeHTTP(w, req)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("ACS: %d %s", w.Code, w.Body)
	}
	ck = w.Result().Cookies()
	if len(ck) != 1 || ck[0].Name != "idrecon_session" || ck[0].SameSite != http.SameSiteLaxMode || !ck[0].Secure || !ck[0].HttpOnly || ck[0].MaxAge != 3600 || len(ck[0].Value) < 40 {
		t.Fatalf("session cookie %+v", ck)
	}

	home := func() int {
		r := httptest.NewRequest(http.MethodGet, "https://ssc.example.com/me", nil)
		r.AddCookie(&http.Cookie{Name: ck[0].Name, Value: ck[0].Value})
		w := httptest.NewRecorder()
		e.srv.ServeHTTP(w, r)
		return w.Code
	}
	if got := home(); got != http.StatusOK {
		t.Fatalf("with session: %d", got)
	}
	e.clock.Add(time.Hour + time.Second)
	if got := home(); got != http.StatusFound {
		t.Fatalf("session outlived its lifetime: %d", got)
	}
}

// TestRequestsCarryTheRealIssueInstant: the AuthnRequest and LogoutRequest
// the SP sends are stamped with the time they are made. gosaml2's clock
// runs the allowed skew behind now so that its response checks tolerate
// it; requests built with that clock claimed to be as old as the skew,
// which an IdP checking freshness with a skew of its own may refuse.
func TestRequestsCarryTheRealIssueInstant(t *testing.T) {
	login := func(e *env) *http.Response {
		e.t.Helper()
		resp, err := e.client.Get(e.ts.URL + "/saml/login")
		if err != nil {
			e.t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	logout := func(e *env) *http.Response {
		e.t.Helper()
		e.signIn()
		return e.postLogout(nil)
	}
	for _, tc := range []struct {
		name string
		skew time.Duration
		// send returns the redirect to the IdP carrying the request.
		send func(e *env) *http.Response
		tag  string
	}{
		{"AuthnRequest", 0, login, "AuthnRequest"},
		{"AuthnRequest, the maximum skew", spec.MaxClockSkew, login, "AuthnRequest"},
		{"LogoutRequest", 0, logout, "LogoutRequest"},
		{"LogoutRequest, the maximum skew", spec.MaxClockSkew, logout, "LogoutRequest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(sp *spec.SamlServiceProvider) { sp.AllowedClockSkew = spec.Duration(tc.skew) })
			resp := tc.send(e)
			loc, err := url.Parse(resp.Header.Get("Location"))
			if err != nil || resp.StatusCode/100 != 3 {
				t.Fatalf("status %d, Location %q: %v", resp.StatusCode, resp.Header.Get("Location"), err)
			}
			doc, _ := redirected(t, loc, "SAMLRequest")
			if doc.Root().Tag != tc.tag {
				t.Fatalf("got %s, want %s", doc.Root().Tag, tc.tag)
			}
			issued, err := time.Parse(time.RFC3339, doc.Root().SelectAttrValue("IssueInstant", ""))
			if err != nil {
				t.Fatal(err)
			}
			if now := e.clock.Now(); !issued.Equal(now) {
				t.Fatalf("IssueInstant %s, want now %s (%s off)", issued.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), now.Sub(issued))
			}
		})
	}
}

// TestSignInKeepsTheQuery: a page opened without a session sends the
// browser to sign in, and back to the page as it was asked for, query
// and all.
func TestSignInKeepsTheQuery(t *testing.T) {
	e := newEnv(t)
	r, _ := e.get("/me?tab=roles")
	loc, err := url.Parse(r.Header.Get("Location"))
	if r.StatusCode != http.StatusFound || err != nil || loc.Query().Get("returnTo") != "/me?tab=roles" {
		t.Fatalf("%d to %q, want a sign-in returning to /me?tab=roles", r.StatusCode, r.Header.Get("Location"))
	}
}
