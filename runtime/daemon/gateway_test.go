package daemon

import (
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/idrecon/idrecon/runtime/internal/testidp"
)

const gwTenant = "5e0c1f2a-3b4d-4c6e-8f90-a1b2c3d4e5f6"

// TestGatewayInFrontOfAnApp: with a Gateway document, the daemon is the
// front door of an application: a visitor is sent to sign in and back, a
// signed-in user reaches the app with the user header set by idrecon (the
// client's own copies never arrive), and a user disabled over SCIM is
// refused on the next request.
func TestGatewayInFrontOfAnApp(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "headers": r.Header})
	}))
	defer app.Close()

	dataDir := t.TempDir()
	d, key := gatewayDaemon(t, dataDir, map[string]string{"gateway.yaml": "apiVersion: idrecon.io/v1alpha1\nkind: Gateway\nmetadata:\n  name: app\nspec:\n" +
		"  upstream: " + app.URL + "\n  pathPrefix: /app\n  userHeader: username\n  rolesHeader: X-Idrecon-Roles\n"})

	aliceID := provision(t, d, "alice@contoso.com")

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", d.base+path, nil)
		// What a client might send to pass as someone else: the user header
		// in another case, the roles header with _ for - (CGI, WSGI and
		// PHP read both as one).
		req.Header["USERNAME"] = []string{"admin"}
		req.Header["X_Idrecon_Roles"] = []string{"Administrator"}
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	// Not signed in: to the sign-in, which returns here.
	resp := get("/app/page?x=1")
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "/saml/login?returnTo=") {
		t.Fatalf("signed out: %d Location %q, want a redirect to /saml/login", resp.StatusCode, loc)
	}
	signIn(t, d, browser, key, loc, "alice@contoso.com", "/app/page?x=1")

	// Signed in: the app sees alice, from idrecon only.
	resp = get("/app/page?x=1")
	var seen struct {
		Path    string
		Headers http.Header
	}
	json.NewDecoder(resp.Body).Decode(&seen)
	resp.Body.Close()
	if resp.StatusCode != 200 || seen.Path != "/app/page" {
		t.Fatalf("signed in: %d, app saw %+v", resp.StatusCode, seen)
	}
	if got := seen.Headers.Values("Username"); len(got) != 1 || got[0] != "alice@contoso.com" {
		t.Errorf("app saw username %q, want only alice@contoso.com", got)
	}
	if got := seen.Headers.Values("X_idrecon_roles"); len(got) != 0 {
		t.Errorf("the client's X_Idrecon_Roles reached the app: %q", got)
	}
	if got := seen.Headers.Values("X-Idrecon-Roles"); len(got) != 1 || got[0] != "View Only" {
		t.Errorf("app saw roles %q, want only View Only", got)
	}

	// Disabled in Entra: refused on the next request.
	code, body := d.call(t, "PATCH", d.base+"/api/scim/v2/Users/"+aliceID, scimTok, map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []map[string]any{{"op": "replace", "path": "active", "value": false}},
	})
	if code/100 != 2 {
		t.Fatalf("disable: %d %s", code, body)
	}
	if resp = get("/app/page"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("disabled user: %d, want 403", resp.StatusCode)
	}

	// The refusal of a signed-in user is audited.
	eventually(t, "the refusal audited", func() bool {
		b, _ := os.ReadFile(filepath.Join(dataDir, "audit.log"))
		return strings.Contains(string(b), `"msg":"gateway refusal","gateway":"app","user":"alice@contoso.com","reason":"disabled"`)
	})

	// status tells the same.
	st := d.status(t)
	if len(st.Gateways) != 1 || !st.Gateways[0].Serving || st.Gateways[0].PathPrefix != "/app" ||
		st.Gateways[0].Requests["proxy"] != 3 || st.Gateways[0].Refusals["disabled"] != 1 {
		t.Errorf("status gateways %+v", st.Gateways)
	}

	// /metrics counts what the Gateway did, by its name.
	_, metrics := d.call(t, "GET", d.admin+"/metrics", "", nil)
	for _, want := range []string{
		`idrecon_gateway_requests_total{gateway="app",mode="proxy"} 3`,
		`idrecon_gateway_refusals_total{gateway="app",reason="no_session"} 1`,
		`idrecon_gateway_refusals_total{gateway="app",reason="disabled"} 1`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// gatewayDaemon starts a daemon on the example spec plus files (name →
// content), with a test IdP whose key it returns and the SP's baseURL the
// daemon's own address, so real sign-ins work.
func gatewayDaemon(t *testing.T, dataDir string, files map[string]string) (*running, *testidp.Key) {
	t.Helper()
	specDir, key := gatewaySpec(t, files)
	d := start(t, Config{SpecDir: specDir, DataDir: dataDir})
	setBaseURL(t, d, specDir, d.base)
	return d, key
}

// gatewaySpec copies the example spec, adds files (name → content) and
// puts a test IdP in it, whose key it returns.
func gatewaySpec(t testing.TB, files map[string]string) (string, *testidp.Key) {
	t.Helper()
	specDir := copyDir(t, "../../examples/entra")
	key, err := testidp.NewKey(time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	md, err := testidp.Metadata(testidp.MetadataOptions{Tenant: gwTenant, Keys: []*testidp.Key{key}, SignWith: key})
	if err != nil {
		t.Fatal(err)
	}
	mdXML, _ := md.WriteToBytes()
	write(t, filepath.Join(specDir, "idp", "federationmetadata.xml"), string(mdXML))
	write(t, filepath.Join(specDir, "idp", "entra-signing.cer"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: key.Cert.Raw})))
	for name, content := range files {
		write(t, filepath.Join(specDir, name), content)
	}
	return specDir, key
}

// setBaseURL makes base (the daemon's address, or a proxy's in front of
// it) the SP's baseURL, and waits until d serves it.
func setBaseURL(t testing.TB, d *running, specDir, base string) {
	t.Helper()
	saml := filepath.Join(specDir, "saml.yaml")
	b, _ := os.ReadFile(saml)
	write(t, saml, strings.NewReplacer("http://localhost:8080", base).Replace(string(b)))
	d.call(t, "POST", d.admin+"/v1/reconcile", adminTok, nil)
	eventually(t, "the new baseURL applied", func() bool {
		r, err := http.Get(d.base + "/saml/metadata")
		if err != nil {
			return false
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return strings.Contains(string(b), base+"/saml/acs")
	})
}

// provision creates an active user over SCIM, as Entra does, and returns
// its id.
func provision(t testing.TB, d *running, userName string) string {
	t.Helper()
	code, body := d.call(t, "POST", d.base+"/api/scim/v2/Users", scimTok, map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": userName, "active": true})
	if code != 201 {
		t.Fatalf("create user %s: %d %s", userName, code, body)
	}
	var u struct{ ID string }
	if err := json.Unmarshal(body, &u); err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// signIn follows login (a /saml/login URL) with browser, answers as the test
// IdP signing with key for user, and checks the ACS sends the browser back
// to want.
func signIn(t testing.TB, d *running, browser *http.Client, key *testidp.Key, login, user, want string) {
	t.Helper()
	resp, err := browser.Get(d.base + login)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	idpURL, _ := url.Parse(resp.Header.Get("Location"))
	raw, err := testidp.Inflate(idpURL.Query().Get("SAMLRequest"))
	if err != nil {
		t.Fatalf("login: %d %s: %v", resp.StatusCode, resp.Header.Get("Location"), err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	samlResp, err := testidp.Response(testidp.ResponseOptions{
		Now: time.Now(), Tenant: gwTenant, Recipient: d.base + "/saml/acs", Audiences: []string{d.base + "/saml/metadata"},
		InResponseTo: doc.Root().SelectAttrValue("ID", ""), NameID: user, Key: key, SignAssertion: true,
		Attributes: []testidp.Attr{{Name: testidp.ClaimName, Values: []string{user}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	encoded, _ := testidp.Encode(samlResp)
	resp, err = browser.PostForm(d.base+"/saml/acs", url.Values{"SAMLResponse": {encoded}, "RelayState": {idpURL.Query().Get("RelayState")}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("ACS: %d Location %q, want 303 back to %s\n%s\nlogs:\n%s", resp.StatusCode, resp.Header.Get("Location"), want, b, d.logs)
	}
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
