package saml

import (
	"context"
	"crypto/x509"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/idrecon/idrecon/runtime/internal/testidp"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
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
	doc, raw := redirected(t, loc, "SAMLRequest")
	if doc.Root().Tag != "LogoutRequest" || doc.Root().FindElement("./NameID").Text() != "alice@contoso.example" {
		t.Fatalf("not a LogoutRequest for alice: %s", raw)
	}
	if r, _ := e.get("/"); r.StatusCode != http.StatusFound {
		t.Fatalf("session survived logout: %d", r.StatusCode)
	}
	// Entra's signed answer to that LogoutRequest lands on the signed-out
	// page, once.
	q := e.logoutResponse(doc.Root().SelectAttrValue("ID", ""), "", keyA)
	if r, page := e.get("/saml/slo?" + q); r.StatusCode != http.StatusOK || !strings.Contains(page, "Signed out") {
		t.Fatalf("LogoutResponse: %d %s", r.StatusCode, page)
	}
	if r, page := e.get("/saml/slo?" + q); r.StatusCode != http.StatusForbidden || e.lastResult() != CodeInResponseTo {
		t.Fatalf("replayed LogoutResponse: %d %q %s", r.StatusCode, e.lastResult(), page)
	}
}

// logoutResponse is Entra's LogoutResponse to irt over HTTP-Redirect,
// signed with key (unsigned when nil), with status ("" = success).
func (e *env) logoutResponse(irt, status string, key *testidp.Key) string {
	e.t.Helper()
	q, err := testidp.RedirectQuery("SAMLResponse", testidp.LogoutResponse(tenant, e.ts.URL+"/saml/slo", irt, status, e.clock.Now()), "", key, false)
	if err != nil {
		e.t.Fatal(err)
	}
	return q
}

// signOutAndIn signs in, signs out through the IdP (whose answer is left
// pending) and signs in again, so the browser has both a session and a
// LogoutRequest awaiting its answer. It returns that LogoutRequest's ID.
func (e *env) signOutAndIn() string {
	e.t.Helper()
	e.signIn()
	id := e.signOutAt()
	e.signIn()
	return id
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
		{"no destination", func(e *env) string {
			// A message signed for another SP of the tenant would
			// otherwise do here: the redirect signature does not cover
			// the URL it was sent to.
			d := msg(e, "alice@contoso.example")
			d.Root().RemoveAttr("Destination")
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

// TestRefusedLogoutLogIsBounded: a refused cross-site sign-out is logged
// with the client's headers clipped: anyone can post it, with headers up to
// the listener's bound, as often as they like.
func TestRefusedLogoutLogIsBounded(t *testing.T) {
	e := newEnv(t)
	before := len(e.logs.String())
	resp := e.postLogout(map[string]string{"Origin": "https://evil.example/" + strings.Repeat("a", 50000), "Sec-Fetch-Site": strings.Repeat("b", 50000)})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status %d, want 403", resp.StatusCode)
	}
	logged := e.logs.String()[before:]
	if !strings.Contains(logged, "cross-site sign-out refused") || !strings.Contains(logged, "evil.example") {
		t.Fatalf("the refusal is not logged: %q", logged)
	}
	if len(logged) > 1000 {
		t.Errorf("one refusal logged %d bytes", len(logged))
	}
}

// TestLogoutResponse: only the IdP's signed, successful answer to this
// browser's own LogoutRequest ends a session at /saml/slo; anything else
// (forged, garbage, or another flow's genuine answer) ends nothing.
func TestLogoutResponse(t *testing.T) {
	tests := []struct {
		name  string
		query func(e *env, pending string) string
		want  string // rejection code; "" = accepted
	}{
		{"genuine", func(e *env, pending string) string { return e.logoutResponse(pending, "", keyA) }, ""},
		{"garbage", func(*env, string) string { return "SAMLResponse=anything" }, CodeLogoutSignature},
		{"empty", func(*env, string) string { return "SAMLResponse=" }, CodeLogoutSignature},
		{"unsigned", func(e *env, pending string) string { return e.logoutResponse(pending, "", nil) }, CodeLogoutSignature},
		{"signed by another key", func(e *env, pending string) string { return e.logoutResponse(pending, "", keyEvil) }, CodeLogoutSignature},
		{"SHA-1", func(e *env, pending string) string {
			q, err := testidp.RedirectQuery("SAMLResponse", testidp.LogoutResponse(tenant, e.ts.URL+"/saml/slo", pending, "", e.clock.Now()), "", keyA, true)
			if err != nil {
				e.t.Fatal(err)
			}
			return q
		}, CodeLogoutSignature},
		{"unsigned LogoutRequest as response", func(e *env, _ string) string {
			q, err := testidp.RedirectQuery("SAMLResponse", testidp.LogoutRequest(tenant, e.ts.URL+"/saml/slo", "x", e.clock.Now()), "", nil, false)
			if err != nil {
				e.t.Fatal(err)
			}
			return q
		}, CodeLogoutSignature},
		{"signed LogoutRequest as response", func(e *env, _ string) string {
			q, err := testidp.RedirectQuery("SAMLResponse", testidp.LogoutRequest(tenant, e.ts.URL+"/saml/slo", "x", e.clock.Now()), "", keyA, false)
			if err != nil {
				e.t.Fatal(err)
			}
			return q
		}, CodeLogoutMalformed},
		{"answers another LogoutRequest", func(e *env, _ string) string { return e.logoutResponse("_other", "", keyA) }, CodeInResponseTo},
		{"answers nothing", func(e *env, _ string) string { return e.logoutResponse("", "", keyA) }, CodeInResponseTo},
		{"IdP reports failure", func(e *env, pending string) string {
			return e.logoutResponse(pending, testidp.StatusRequester, keyA)
		}, CodeStatus},
		{"wrong destination", func(e *env, pending string) string {
			d := testidp.LogoutResponse(tenant, "https://other-sp.example/saml/slo", pending, "", e.clock.Now())
			q, err := testidp.RedirectQuery("SAMLResponse", d, "", keyA, false)
			if err != nil {
				e.t.Fatal(err)
			}
			return q
		}, CodeDestination},
		// As Microsoft documents Entra's LogoutResponse: it answers this
		// browser's LogoutRequest, which no other SP's response can.
		{"no destination", func(e *env, pending string) string {
			d := testidp.LogoutResponse(tenant, e.ts.URL+"/saml/slo", pending, "", e.clock.Now())
			d.Root().RemoveAttr("Destination")
			q, err := testidp.RedirectQuery("SAMLResponse", d, "", keyA, false)
			if err != nil {
				e.t.Fatal(err)
			}
			return q
		}, ""},
		{"wrong issuer", func(e *env, pending string) string {
			d := testidp.LogoutResponse(tenant, e.ts.URL+"/saml/slo", pending, "", e.clock.Now())
			d.Root().FindElement("./Issuer").SetText("https://evil.example/")
			q, err := testidp.RedirectQuery("SAMLResponse", d, "", keyA, false)
			if err != nil {
				e.t.Fatal(err)
			}
			return q
		}, CodeIssuer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			pending := e.signOutAndIn()
			r, page := e.get("/saml/slo?" + tc.query(e, pending))
			if tc.want == "" {
				if r.StatusCode != http.StatusOK || !strings.Contains(page, "Signed out") {
					t.Fatalf("status %d: %s", r.StatusCode, page)
				}
				if r, _ := e.get("/"); r.StatusCode != http.StatusFound {
					t.Fatal("session survived the IdP's confirmed sign-out")
				}
				return
			}
			if r.StatusCode != http.StatusForbidden || e.lastResult() != tc.want {
				t.Errorf("status %d result %q, want 403 %q: %s", r.StatusCode, e.lastResult(), tc.want, page)
			}
			if r, _ := e.get("/"); r.StatusCode != http.StatusOK {
				t.Fatal("a rejected LogoutResponse ended the session")
			}
		})
	}
}

// TestLogoutLink: Application Security's "SSO Logout page" is a link, so
// GET /saml/logout must answer; it shows a button that signs out, and by
// itself ends nothing (any page could make a browser GET it).
func TestLogoutLink(t *testing.T) {
	e := newEnv(t)
	if r, page := e.get("/saml/logout"); r.StatusCode != http.StatusOK || !strings.Contains(page, "Signed out") {
		t.Fatalf("GET /saml/logout signed out: %d %s", r.StatusCode, page)
	}
	e.signIn()
	r, page := e.get("/saml/logout")
	if r.StatusCode != http.StatusOK || !strings.Contains(page, `<span id="user">alice@contoso.example</span>`) ||
		!strings.Contains(page, `<form method="post" action="/saml/logout">`) {
		t.Fatalf("GET /saml/logout signed in: %d %s", r.StatusCode, page)
	}
	if r, _ := e.get("/"); r.StatusCode != http.StatusOK {
		t.Fatalf("GET /saml/logout ended the session: / answers %d", r.StatusCode)
	}
	if resp := e.postLogout(nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the page's button: %d", resp.StatusCode)
	}
	if r, _ := e.get("/"); r.StatusCode != http.StatusFound {
		t.Fatalf("session survived the button: %d", r.StatusCode)
	}
}

// idpLogoutQuery is Entra's LogoutRequest for alice over HTTP-Redirect,
// issued at the test clock's now and signed with keyA, after mod (when not
// nil) changed it.
func (e *env) idpLogoutQuery(mod func(r *etree.Element)) string {
	e.t.Helper()
	d := testidp.LogoutRequest(tenant, e.ts.URL+"/saml/slo", "alice@contoso.example", e.clock.Now())
	if mod != nil {
		mod(d.Root())
	}
	q, err := testidp.RedirectQuery("SAMLRequest", d, "", keyA, false)
	if err != nil {
		e.t.Fatal(err)
	}
	return q
}

// xsTime writes t as Entra writes an xs:dateTime.
func xsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// expectLogout checks the answer to an IdP LogoutRequest: obeyed (want ""),
// ending the browser's session, or refused with code want, ending nothing.
func (e *env) expectLogout(r *http.Response, page, want string) {
	e.t.Helper()
	if want == "" {
		if r.StatusCode != http.StatusFound {
			e.t.Fatalf("status %d result %q, want the LogoutRequest obeyed: %s", r.StatusCode, e.lastResult(), page)
		}
		if r, _ := e.get("/"); r.StatusCode != http.StatusFound {
			e.t.Fatal("session survived an obeyed LogoutRequest")
		}
		return
	}
	if r.StatusCode != http.StatusForbidden || e.lastResult() != want {
		e.t.Fatalf("status %d result %q, want 403 %q: %s", r.StatusCode, e.lastResult(), want, page)
	}
	if r, _ := e.get("/"); r.StatusCode != http.StatusOK {
		e.t.Fatal("a refused LogoutRequest ended the session")
	}
}

// recordingReplay records what the server asks its replay cache.
type recordingReplay struct {
	ReplayCache
	mu   sync.Mutex
	keys []string
	exps []time.Time
}

func (r *recordingReplay) FirstUse(ctx context.Context, user, key string, expires time.Time) (bool, error) {
	r.mu.Lock()
	r.keys, r.exps = append(r.keys, key), append(r.exps, expires)
	r.mu.Unlock()
	return r.ReplayCache.FirstUse(ctx, user, key, expires)
}

func (r *recordingReplay) recorded() ([]string, []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.keys), slices.Clone(r.exps)
}

// recordReplay makes e's server record its replay-cache use; call it
// before the first request.
func (e *env) recordReplay() *recordingReplay {
	rec := &recordingReplay{ReplayCache: e.srv.replay}
	e.srv.replay = rec
	return rec
}

// TestLogoutRequestReplay: a captured signed LogoutRequest signs its user
// out once. Presented again, soon after or once the user has signed in
// again days later, it is refused and ends nothing.
func TestLogoutRequestReplay(t *testing.T) {
	for _, tc := range []struct {
		name  string
		later time.Duration
		want  string
	}{
		{"at once", 0, CodeReplay},
		{"a minute later", time.Minute, CodeReplay},
		{"days later", 3 * 24 * time.Hour, CodeExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.signIn()
			q := e.idpLogoutQuery(nil)
			r, page := e.get("/saml/slo?" + q)
			e.expectLogout(r, page, "")
			e.clock.Add(tc.later)
			e.signIn()
			r, page = e.get("/saml/slo?" + q)
			e.expectLogout(r, page, tc.want)
		})
	}
}

// TestLogoutRequestFreshness: a LogoutRequest is obeyed only while fresh,
// with the clock skew allowed for assertions: issued neither long ago nor
// beyond the skew in the future, and before its NotOnOrAfter, if any.
func TestLogoutRequestFreshness(t *testing.T) {
	skew := spec.DefaultClockSkew
	at := func(attr string, d time.Duration) func(e *env, r *etree.Element) {
		return func(e *env, r *etree.Element) { r.CreateAttr(attr, xsTime(e.clock.Now().Add(d))) }
	}
	for _, tc := range []struct {
		name string
		mod  func(e *env, r *etree.Element)
		want string // "" = obeyed
	}{
		{"issued now", nil, ""},
		{"issued a minute ago", at("IssueInstant", -time.Minute), ""},
		{"issued in the future within the skew", at("IssueInstant", skew-30*time.Second), ""},
		{"issued in the future beyond the skew", at("IssueInstant", skew+time.Minute), CodeNotYetValid},
		{"issued an hour ago", at("IssueInstant", -time.Hour), CodeExpired},
		{"issued days ago", at("IssueInstant", -3*24*time.Hour), CodeExpired},
		{"NotOnOrAfter ahead", at("NotOnOrAfter", time.Minute), ""},
		{"NotOnOrAfter passed within the skew", at("NotOnOrAfter", -skew/2), ""},
		{"NotOnOrAfter passed beyond the skew", at("NotOnOrAfter", -skew-time.Second), CodeExpired},
		{"NotOnOrAfter far ahead of an old IssueInstant", func(e *env, r *etree.Element) {
			at("IssueInstant", -3*24*time.Hour)(e, r)
			at("NotOnOrAfter", 365*24*time.Hour)(e, r)
		}, CodeExpired},
		{"no IssueInstant", func(_ *env, r *etree.Element) { r.RemoveAttr("IssueInstant") }, CodeLogoutMalformed},
		{"IssueInstant not a dateTime", func(_ *env, r *etree.Element) { r.CreateAttr("IssueInstant", "yesterday") }, CodeLogoutMalformed},
		{"NotOnOrAfter not a dateTime", func(_ *env, r *etree.Element) { r.CreateAttr("NotOnOrAfter", "later") }, CodeLogoutMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.signIn()
			var mod func(*etree.Element)
			if tc.mod != nil {
				mod = func(r *etree.Element) { tc.mod(e, r) }
			}
			r, page := e.get("/saml/slo?" + e.idpLogoutQuery(mod))
			e.expectLogout(r, page, tc.want)
		})
	}
}

// TestLogoutRequestReplayEntryLifetime: the replay cache keeps a
// LogoutRequest's ID exactly as long as the message could be obeyed: one
// second before the entry expires a replay is refused as a replay, and from
// its expiry on as stale. A NotOnOrAfter sooner than the request's own
// lifetime shortens the entry with it.
func TestLogoutRequestReplayEntryLifetime(t *testing.T) {
	for _, tc := range []struct {
		name         string
		notOnOrAfter time.Duration // 0: none
	}{
		{"IssueInstant only", 0},
		{"NotOnOrAfter soon", 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			rec := e.recordReplay()
			e.signIn()
			start := e.clock.Now()
			q := e.idpLogoutQuery(func(r *etree.Element) {
				if tc.notOnOrAfter != 0 {
					r.CreateAttr("NotOnOrAfter", xsTime(start.Add(tc.notOnOrAfter)))
				}
			})
			before, _ := rec.recorded()
			r, page := e.get("/saml/slo?" + q)
			e.expectLogout(r, page, "")
			keys, exps := rec.recorded()
			if len(keys) != len(before)+1 {
				t.Fatalf("the obeyed LogoutRequest made %d replay-cache entries, want 1", len(keys)-len(before))
			}
			exp := exps[len(exps)-1]
			if slices.Contains(before, keys[len(keys)-1]) {
				t.Fatalf("the LogoutRequest's replay key %q is an assertion's", keys[len(keys)-1])
			}
			if tc.notOnOrAfter != 0 {
				if want := start.Add(tc.notOnOrAfter + spec.DefaultClockSkew); !exp.Equal(want) {
					t.Fatalf("replay entry expires %s, want NotOnOrAfter plus the skew, %s", exp, want)
				}
			}
			if !exp.After(start.Add(spec.DefaultClockSkew)) || exp.After(start.Add(time.Hour)) {
				t.Fatalf("replay entry expires %s after the request was issued", exp.Sub(start))
			}
			e.clock.Add(exp.Sub(start) - time.Second)
			e.signIn()
			r, page = e.get("/saml/slo?" + q)
			e.expectLogout(r, page, CodeReplay)
			e.clock.Add(time.Second)
			r, page = e.get("/saml/slo?" + q)
			e.expectLogout(r, page, CodeExpired)
		})
	}
}

// TestLogoutRequestKeyedApartFromAssertions: a LogoutRequest's ID is
// recorded apart from assertion IDs, so an assertion consumed under the
// same ID and issuer does not make the LogoutRequest look replayed, nor
// the other way round.
func TestLogoutRequestKeyedApartFromAssertions(t *testing.T) {
	const shared = "_shared-id"
	e := newEnv(t)
	rec := e.recordReplay()
	irt, relay := e.login("/")
	o := e.good(irt)
	o.AssertionID = shared
	if resp := e.post(encode(t, o), relay); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, body(t, resp))
	}
	q := e.idpLogoutQuery(func(r *etree.Element) {
		r.CreateAttr("ID", shared)
		// The assertion's issuer, which logout messages may also carry.
		r.FindElement("./Issuer").SetText(testidp.EntityID(tenant))
	})
	r, page := e.get("/saml/slo?" + q)
	e.expectLogout(r, page, "")
	keys, _ := rec.recorded()
	if len(keys) != 2 || keys[0] == keys[1] {
		t.Fatalf("replay keys %q: want the assertion's and the LogoutRequest's, apart", keys)
	}
	// Keyed apart: the same assertion is still refused as a replay.
	e.clock.Add(time.Minute)
	irt, relay = e.login("/")
	o.InResponseTo = irt
	expectRejected(t, e, e.post(encode(t, o), relay), CodeReplay)
}

// downReplay is a replay cache that cannot be reached (etcd lost quorum).
type downReplay struct{}

func (downReplay) FirstUse(context.Context, string, string, time.Time) (bool, error) {
	return false, store.ErrUnavailable
}

// TestLogoutRequestReplayCacheDown: while the replay cache cannot say
// whether a LogoutRequest is new, it is not obeyed: the IdP's browser gets
// a 503 to try again, and nothing ends.
func TestLogoutRequestReplayCacheDown(t *testing.T) {
	e := newEnv(t)
	e.signIn()
	e.srv.replay = downReplay{}
	r, page := e.get("/saml/slo?" + e.idpLogoutQuery(nil))
	if r.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503: %s", r.StatusCode, page)
	}
	if got, _ := e.get("/"); got.StatusCode != http.StatusOK {
		t.Fatal("a LogoutRequest not checked against the replay cache ended the session")
	}
}

// TestLogoutRequestForAnotherUser: an IdP LogoutRequest ends the sessions
// of the user it names, not whatever session the browser bringing it has.
// Entra sends it through the browser of the user signing out, so that user
// can hold it back and lead someone else's browser to it (a link is enough:
// the session cookie is Lax): it would end their session too.
func TestLogoutRequestForAnotherUser(t *testing.T) {
	e := newEnv(t)
	e.signIn() // alice, in e.client's browser
	carols := e.idpLogoutQuery(func(r *etree.Element) { r.FindElement("./NameID").SetText("carol@contoso.example") })
	r, page := e.get("/saml/slo?" + carols)
	if r.StatusCode != http.StatusFound || e.lastResult() != "logout" {
		t.Fatalf("carol's LogoutRequest: status %d result %q, want it obeyed: %s", r.StatusCode, e.lastResult(), page)
	}
	if r, _ := e.get("/"); r.StatusCode != http.StatusOK {
		t.Fatal("a LogoutRequest for carol ended alice's session")
	}
	// Alice's own ends it.
	r, page = e.get("/saml/slo?" + e.idpLogoutQuery(nil))
	e.expectLogout(r, page, "")
}

// noDeleteNameID is a session store that cannot end a user's sessions by
// NameID (etcd lost quorum after the replay check).
type noDeleteNameID struct{ SessionStore }

func (noDeleteNameID) DeleteNameID(context.Context, string) (int, error) {
	return 0, store.ErrUnavailable
}

// unavailableLogouts is a LogoutLog on a backend that does not answer
// (etcd lost quorum after the replay check).
type unavailableLogouts struct{}

func (unavailableLogouts) RecordLogout(context.Context, string, time.Time, time.Time) error {
	return store.ErrUnavailable
}

func (unavailableLogouts) LoggedOut(context.Context, string) (time.Time, bool, error) {
	return time.Time{}, false, store.ErrUnavailable
}

// TestLogoutRequestPartial: when the user's sessions could not all be
// ended, or the logout not recorded for the assertions issued before it
// (which another daemon would then take), the LogoutResponse must not
// tell the IdP the user is signed out: Entra would report it while the
// user's other browsers stay signed in, or can sign in again.
func TestLogoutRequestPartial(t *testing.T) {
	for name, fail := range map[string]func(*Server){
		"sessions not ended":  func(s *Server) { s.sessions = noDeleteNameID{s.sessions} },
		"logout not recorded": func(s *Server) { s.logouts = unavailableLogouts{} },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.signIn()
			fail(e.srv)
			r, page := e.get("/saml/slo?" + e.idpLogoutQuery(nil))
			if r.StatusCode != http.StatusFound {
				t.Fatalf("status %d: %s", r.StatusCode, page)
			}
			loc, err := url.Parse(r.Header.Get("Location"))
			if err != nil {
				t.Fatal(err)
			}
			doc, raw := redirected(t, loc, "SAMLResponse")
			code := doc.Root().FindElement("./Status/StatusCode")
			if code == nil || code.SelectAttrValue("Value", "") == statusSuccess {
				t.Fatalf("LogoutResponse reports success: %s", raw)
			}
			if sub := code.FindElement("./StatusCode"); sub == nil || sub.SelectAttrValue("Value", "") != statusPartialLogout {
				t.Fatalf("LogoutResponse has no PartialLogout second-level status: %s", raw)
			}
		})
	}
}

// TestSignInWhileLogoutsUnreadable: an assertion whose user's logouts
// cannot be read may have been issued before one: it does not sign in, and
// the answer says to try again (503) rather than that it was refused.
func TestSignInWhileLogoutsUnreadable(t *testing.T) {
	e := newEnv(t)
	e.srv.logouts = unavailableLogouts{}
	irt, relay := e.login("/")
	resp := e.post(encode(t, e.good(irt)), relay)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d result %q, want 503", resp.StatusCode, e.lastResult())
	}
	if r, _ := e.get("/me"); r.StatusCode == http.StatusOK {
		t.Fatal("signed in though the logouts could not be read")
	}
}

// TestLogoutRequestAfterReplayOverflow: a replay cache that overflowed
// with assertions refuses what expires no later than the entries it
// dropped (see ttlMap.refuseDropped). A LogoutRequest's entry lasts minutes
// and an assertion's an hour, so sign-ins enough to overflow it (anyone's
// own, a scripted loop) must not make every IdP logout for the next hour
// look like a replay, leaving users signed in here. The bound is lowered
// to 2, as in TestReplayAfterEviction.
func TestLogoutRequestAfterReplayOverflow(t *testing.T) {
	e := newEnv(t)
	m := e.replayTable()
	m.mu.Lock()
	m.max = 2
	m.mu.Unlock()
	for range 3 {
		e.signIn()
		e.clock.Add(time.Second)
	}
	q := e.idpLogoutQuery(nil)
	r, page := e.get("/saml/slo?" + q)
	e.expectLogout(r, page, "")
	// Its replay is still refused.
	e.signIn()
	r, page = e.get("/saml/slo?" + q)
	e.expectLogout(r, page, CodeReplay)
}

// signInBrowser signs user in on a browser of its own, in an assertion
// whose AuthnStatement has sessionIndex, and returns that browser.
func (e *env) signInBrowser(user, sessionIndex string) *http.Client {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &http.Client{Jar: jar, CheckRedirect: e.client.CheckRedirect}
	own := e.client
	e.client = b
	defer func() { e.client = own }()
	irt, relay := e.login("/")
	o := e.good(irt)
	o.AssertionID, o.NameID = sessionIndex, user
	o.Attributes[0].Values = []string{user}
	if resp := e.post(encode(e.t, o), relay); resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("sign-in: status %d %s", resp.StatusCode, body(e.t, resp))
	}
	return b
}

// TestLogoutRequestSessionIndex pins what a LogoutRequest naming some of
// its user's sessions by SessionIndex does: every session of that NameID
// here ends, the ones named and the others, and no one else's.
//
// SAML core §3.7.3.2 asks for the sessions named to be invalidated; ending
// the user's others too is the safe side of that rule. Matching on the
// index would leave a session signed in whenever the index Entra sends is
// not the one this SP stored (the IdP's session rather than the assertion's,
// a session stored without one), with Entra told the user was signed out.
// What it costs is the user's own other browsers here signing out too; it
// never reaches another user, and takes a fresh, once-only request signed
// by the IdP.
func TestLogoutRequestSessionIndex(t *testing.T) {
	for _, tc := range []struct {
		name    string
		indexes []string
	}{
		{"the first browser's", []string{"_idx-one"}},
		{"an index this SP never saw", []string{"_idx-elsewhere"}},
		{"none", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			alice := "alice@contoso.example"
			browsers := []*http.Client{e.signInBrowser(alice, "_idx-one"), e.signInBrowser(alice, "_idx-two")}
			dave := e.signInBrowser("dave@contoso.example", "_idx-dave")
			if n := e.sessionTable().len(); n != 3 {
				t.Fatalf("%d sessions before the LogoutRequest, want 3", n)
			}
			q := e.idpLogoutQuery(func(r *etree.Element) {
				for _, ix := range tc.indexes {
					si := r.CreateElement("samlp:SessionIndex")
					si.SetText(ix)
				}
			})
			// Brought by a browser with no session, as from another device.
			e.client = &http.Client{CheckRedirect: e.client.CheckRedirect}
			r, page := e.get("/saml/slo?" + q)
			if r.StatusCode != http.StatusFound || e.lastResult() != "logout" {
				t.Fatalf("status %d result %q: %s", r.StatusCode, e.lastResult(), page)
			}
			for i, b := range browsers {
				e.client = b
				if r, _ := e.get("/"); r.StatusCode != http.StatusFound {
					t.Errorf("alice's session in browser %d survived her LogoutRequest", i)
				}
			}
			e.client = dave
			if r, _ := e.get("/"); r.StatusCode != http.StatusOK {
				t.Errorf("alice's LogoutRequest ended dave's session: / answers %d", r.StatusCode)
			}
		})
	}
}
