package daemon

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
)

// TestConsoleSignIn: the daemon serves the console on the admin listener,
// turned on by the example's consoleRole, and hands the sign-in over from
// the SAML SP on the main listener to the console URL it derives from the
// admin listener's address.
func TestConsoleSignIn(t *testing.T) {
	d, key := gatewayDaemon(t, t.TempDir(), map[string]string{"console-admins.yaml": "apiVersion: idrecon.io/v1alpha1\nkind: AccessAssignment\n" +
		"metadata:\n  name: console-admin\nspec:\n  subject:\n    user: root@contoso.com\n  roles: [Administrator]\n"})
	provision(t, d, "root@contoso.com")
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u string) (*http.Response, string) {
		t.Helper()
		resp, err := browser.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	resp, _ := get(d.admin + "/console/")
	handoff, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || handoff == nil || !strings.HasPrefix(handoff.String(), d.base+"/saml/console?state=") {
		t.Fatalf("console without a session: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = get(handoff.String())
	login := resp.Header.Get("Location")
	if !strings.HasPrefix(login, "/saml/login?returnTo=") {
		t.Fatalf("hand-off without a SAML session: %d %q", resp.StatusCode, login)
	}
	signIn(t, d, browser, key, login, "root@contoso.com", handoff.RequestURI())
	resp, _ = get(d.base + handoff.RequestURI())
	if auth := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(auth, d.admin+"/console/auth?code=") {
		t.Fatalf("hand-off after sign-in: %d %q, want the code sent to %s/console/auth", resp.StatusCode, auth, d.admin)
	}
	if resp, body := get(resp.Header.Get("Location")); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Signed in as root@contoso.com") {
		t.Fatalf("code exchange: %d\n%s", resp.StatusCode, body)
	}
	resp, body := get(d.admin + "/console/")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "READY") || !strings.Contains(body, "saml") {
		t.Fatalf("overview: %d\n%s", resp.StatusCode, body)
	}
}
