package console

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// cookieNamed returns the cookie name set by resp, or nil.
func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for _, k := range resp.Cookies() {
		if k.Name == name {
			return k
		}
	}
	return nil
}

// Behind a TLS proxy (serve --console-url https://…) the daemon's admin
// listener speaks plain HTTP, yet browsers reach the console over https:
// its cookies must be Secure, or a network attacker who makes the browser
// open http://<the same host>/console/ reads the session in clear.
func TestCookiesSecureBehindTLSProxy(t *testing.T) {
	e := newEnv(t, consoleRole)
	proxied := httptest.NewUnstartedServer(nil)
	host := proxied.Listener.Addr().String()
	con, err := New(Config{Store: e.st, Reconciler: e.rec, Status: e.con.cfg.Status,
		SAMLUser: func(*http.Request) (string, string, bool) { return "alice@contoso.example", "s1", true },
		URL:      "https://" + host + Path, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	proxied.Config.Handler = con
	proxied.Start()
	t.Cleanup(proxied.Close)
	handoff := httptest.NewServer(con.Handoff())
	t.Cleanup(handoff.Close)

	c := noFollow(browser(t))
	// The proxy forwards https://host/console/ as http://host/console/.
	resp, _ := get(t, c, proxied.URL+Path)
	st := cookieNamed(resp, con.stateName)
	if resp.StatusCode != http.StatusSeeOther || st == nil {
		t.Fatalf("sign-in start: %d, state cookie %+v", resp.StatusCode, st)
	}
	if !st.Secure {
		t.Errorf("state cookie %+v is not Secure under an https console URL", st)
	}
	resp, _ = get(t, c, handoff.URL+"?state="+url.QueryEscape(st.Value))
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("hand-off: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	req, _ := http.NewRequest("GET", proxied.URL+Path+"auth?code="+url.QueryEscape(loc.Query().Get("code")), nil)
	req.AddCookie(&http.Cookie{Name: con.stateName, Value: st.Value})
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ck := cookieNamed(resp, con.sessionName)
	if resp.StatusCode != http.StatusOK || ck == nil {
		t.Fatalf("code exchange: %d, session cookie %+v", resp.StatusCode, ck)
	}
	if !ck.Secure {
		t.Errorf("session cookie %+v is not Secure under an https console URL", ck)
	}
}

// TestConsoleURLSpelling: browsers send the Host of a URL in lower case and
// without the scheme's default port. A console URL spelled otherwise
// (serve --console-url https://Console.Example:443/console/) names the
// same place, and the sign-in must start there, not send the browser to
// the console URL again and again.
func TestConsoleURLSpelling(t *testing.T) {
	e := newEnv(t, consoleRole)
	tests := []struct {
		url, host string // the console URL; the Host a browser sends for it
	}{
		{"http://localhost:9090/console/", "localhost:9090"},
		{"http://LocalHost:9090/console/", "localhost:9090"},
		{"http://localhost:80/console/", "localhost"},
		{"https://Console.Example:443/console/", "console.example"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			con, err := New(Config{Store: e.st, Reconciler: e.rec, Status: e.con.cfg.Status,
				SAMLUser: func(*http.Request) (string, string, bool) { return "", "", false }, URL: tt.url, Now: e.clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			scheme := con.url.Scheme
			req := httptest.NewRequest("GET", scheme+"://"+tt.host+Path+"users", nil)
			rec := httptest.NewRecorder()
			con.ServeHTTP(rec, req)
			loc := rec.Header().Get("Location")
			if rec.Code != http.StatusSeeOther || !strings.HasPrefix(loc, e.mainURL+HandoffPath+"?state=") || cookieNamed(rec.Result(), con.stateName) == nil {
				t.Errorf("GET %s://%s%susers: %d to %q, want the hand-off with a state cookie", scheme, tt.host, Path, rec.Code, loc)
			}
		})
	}
}
