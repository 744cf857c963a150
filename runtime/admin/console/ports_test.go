package console

import (
	"net/http"
	"strings"
	"testing"
)

// Cookies ignore ports: a browser sends the cookies of localhost:A to
// localhost:B too, and a cookie set by B replaces A's of the same name and
// path. Two daemons on one host, their consoles on two ports, shared one
// session cookie: signing in to one signed the browser out of the other,
// and signing out of one signed it out of both.
func TestTwoConsolesOnOneHost(t *testing.T) {
	a, b := newEnv(t, consoleRole), newEnv(t, consoleRole)
	if a.con.url.Hostname() != b.con.url.Hostname() || a.con.url.Port() == b.con.url.Port() {
		t.Fatalf("consoles at %s and %s: want one host, two ports", a.con.url, b.con.url)
	}
	c := a.signedIn(t, "alice@contoso.example")
	if resp, body := b.signIn(t, c, "alice@contoso.example"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Signed in as") {
		t.Fatalf("sign-in to the second console: %d %s", resp.StatusCode, body)
	}
	stillIn := func(e *env, which string) {
		t.Helper()
		resp, body := get(t, noFollow(c), e.adminURL+Path)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "alice@contoso.example") {
			t.Errorf("%s console after the other's sign-in or sign-out: %d to %q, want its page", which, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	stillIn(a, "first")
	stillIn(b, "second")
	resp, err := c.Post(b.adminURL+Path+"signout", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	stillIn(a, "first")
}

// A URL without a port is at the scheme's default one: its cookies are
// that port's, as the console at the same URL with the port spelled out.
func TestCookieNamesByPort(t *testing.T) {
	for raw, want := range map[string]string{
		"http://localhost:9090/console/":       "idrecon_console_9090",
		"http://localhost/console/":            "idrecon_console_80",
		"https://console.example/console/":     "idrecon_console_443",
		"https://console.example:443/console/": "idrecon_console_443",
		"https://[::1]:8443/console/":          "idrecon_console_8443",
	} {
		u, err := parseURL(raw)
		if err != nil {
			t.Fatal(err)
		}
		session, state := cookieNames(u)
		if session != want || state != strings.Replace(want, "console", "console_state", 1) {
			t.Errorf("%s: cookies %s and %s, want %s and its state", raw, session, state, want)
		}
	}
}
