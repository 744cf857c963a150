package console

import (
	"net/http"
	"net/url"
	"testing"
)

// TestSignInEndsTheBrowsersOldSession: a sign-in that completes in a
// browser still holding a console session (one started in another tab)
// replaces that session: the old id no longer opens the console, wherever
// it is presented.
func TestSignInEndsTheBrowsersOldSession(t *testing.T) {
	e := newEnv(t, consoleRole)
	c := e.signedIn(t, "alice@contoso.example")
	u, _ := url.Parse(e.adminURL + Path)
	sessionIn := func() string {
		t.Helper()
		for _, k := range c.Jar.Cookies(u) {
			if k.Name == e.con.sessionName {
				return k.Value
			}
		}
		t.Fatal("no session cookie")
		return ""
	}
	old := sessionIn()

	// Another sign-in, as from a tab that started before the first ended:
	// stop at /auth, and complete it with the old session's cookie sent.
	c.Jar.SetCookies(u, []*http.Cookie{{Name: e.con.sessionName, Value: "", MaxAge: -1, Path: Path}})
	auth := e.authURL(t, c)
	c.Jar.SetCookies(u, []*http.Cookie{{Name: e.con.sessionName, Value: old, Path: Path}})
	if resp, body := get(t, c, auth); resp.StatusCode != http.StatusOK {
		t.Fatalf("second sign-in: %d\n%s", resp.StatusCode, body)
	}
	if sessionIn() == old {
		t.Fatal("session id not replaced")
	}

	other := browser(t)
	other.Jar.SetCookies(u, []*http.Cookie{{Name: e.con.sessionName, Value: old, Path: Path}})
	if resp, _ := get(t, noFollow(other), e.adminURL+Path); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the replaced session still opens the console: %d", resp.StatusCode)
	}
}
