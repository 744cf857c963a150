package daemon

import (
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/runtime/internal/proxytest"
)

// TestNginxInFrontOfTheDaemon runs the README's nginx configuration (the
// Debian package's nginx) in front of a real daemon and an application that
// echoes what it receives: a visitor is sent to idrecon's sign-in and back
// through nginx after a real SAML sign-in, the application then sees the
// user from idrecon and never the client's own headers, and a user disabled
// over SCIM is refused on the next request.
func TestNginxInFrontOfTheDaemon(t *testing.T) {
	var seen struct {
		URI    string
		Header http.Header
	}
	hits := 0
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		json.NewEncoder(w).Encode(map[string]any{"uri": r.RequestURI, "header": r.Header})
	}))
	defer app.Close()

	// The example's Gateway "appsec" guards /ssc and names the headers.
	specDir, key := gatewaySpec(t, nil)
	d := start(t, Config{SpecDir: specDir, DataDir: t.TempDir()})
	base := proxytest.Nginx(t, "../gateway/testdata/nginx-idrecon.conf", d.base, app.URL)
	// Browsers see idrecon at nginx's address: that is the SP's baseURL.
	setBaseURL(t, d, specDir, base)

	aliceID := provision(t, d, "alice@contoso.com")

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	const page = "/ssc/html/index.jsp?a=1&b=2"
	get := func() *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", base+page, nil)
		for k, v := range map[string]string{"username": "admin", "USER_NAME": "admin", "X-Original-URI": "/evil", "X-Forwarded-User": "admin", "Remote-User": "admin"} {
			req.Header[k] = []string{v}
		}
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	resp := get()
	resp.Body.Close()
	// nginx makes the redirect absolute, with its own address.
	loc := strings.TrimPrefix(resp.Header.Get("Location"), base)
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "/saml/login?returnTo=") {
		t.Fatalf("signed out: %d Location %q, want nginx's redirect to /saml/login", resp.StatusCode, loc)
	}
	if hits != 0 {
		t.Fatalf("the application was reached %d times without a session", hits)
	}
	signIn(t, &running{base: base, logs: d.logs}, browser, key, loc, "alice@contoso.com", page)

	resp = get()
	if err := json.NewDecoder(resp.Body).Decode(&seen); err != nil || resp.StatusCode != 200 {
		t.Fatalf("signed in: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	if seen.URI != page {
		t.Errorf("the application saw %q, want %q", seen.URI, page)
	}
	if got := seen.Header.Values("Username"); len(got) != 1 || got[0] != "alice@contoso.com" {
		t.Errorf("the application saw username %q, want only alice@contoso.com", got)
	}
	for k, vs := range seen.Header {
		if strings.Contains(strings.Join(vs, ","), "admin") || strings.Contains(strings.Join(vs, ","), "evil") {
			t.Errorf("a client's header arrived: %s: %q", k, vs)
		}
	}

	code, body := d.call(t, "PATCH", d.base+"/api/scim/v2/Users/"+aliceID, scimTok, map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []map[string]any{{"op": "replace", "path": "active", "value": false}},
	})
	if code/100 != 2 {
		t.Fatalf("disable: %d %s", code, body)
	}
	before := hits
	if resp = get(); resp.StatusCode != http.StatusForbidden {
		t.Errorf("disabled user: %d, want 403", resp.StatusCode)
	}
	resp.Body.Close()
	if hits != before {
		t.Errorf("the application was reached by a disabled user")
	}
}
