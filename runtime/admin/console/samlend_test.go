package console

import (
	"net/http"
	"strings"
	"testing"
)

// TestConsoleSessionEndsWithTheSAMLSession: a console session comes from
// a SAML session (the hand-off) and must not outlive it: signed out of
// the SP (or at the IdP, which ends the same session), the browser is
// sent to sign in again rather than shown the console.
func TestConsoleSessionEndsWithTheSAMLSession(t *testing.T) {
	e := newEnv(t, consoleRole)
	c := e.signedIn(t, "alice@contoso.example")
	if resp, body := get(t, c, e.adminURL+Path); resp.StatusCode != http.StatusOK || strings.HasPrefix(resp.Request.URL.String(), e.idp.URL) {
		t.Fatalf("console before the sign-out: %d at %s\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	req, err := http.NewRequest(http.MethodPost, e.mainURL+"/saml/logout", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := noFollow(c).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 && resp.StatusCode/100 != 3 {
		t.Fatalf("SAML sign-out: %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, e.adminURL+Path); !strings.HasPrefix(resp.Request.URL.String(), e.idp.URL) {
		t.Errorf("console after the SAML session ended: %d at %s, want sent to sign in at the IdP", resp.StatusCode, resp.Request.URL)
	}
}
