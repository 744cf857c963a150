package console

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestEveryAnswerIsHardened requests every console route, signed in and
// not, and checks that each answer (page, error, redirect, refusal, static
// file, the hand-off's on the main listener) carries the headers that keep
// pages of personal data out of caches and frames, and that each cookie
// set is HttpOnly, limited to the console and SameSite as documented.
func TestEveryAnswerIsHardened(t *testing.T) {
	e := newEnv(t, consoleRole)
	anon := noFollow(browser(t))
	alice := noFollow(e.signedIn(t, "alice@contoso.example"))
	const state = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" // well formed, never minted
	tests := []struct {
		name, method, url string
		crossSite         bool
		// The status signed out and signed in.
		out, in int
	}{
		{"overview", "GET", e.adminURL + Path, false, 303, 200},
		{"history", "GET", e.adminURL + Path + "history", false, 303, 200},
		{"plan", "GET", e.adminURL + Path + "plan", false, 303, 200},
		{"drift", "GET", e.adminURL + Path + "drift", false, 303, 200},
		{"users", "GET", e.adminURL + Path + "users?q=ali", false, 303, 200},
		{"users bad query", "GET", e.adminURL + Path + "users?active=maybe", false, 303, 400},
		{"user", "GET", e.adminURL + Path + "users/alice@contoso.example", false, 303, 200},
		{"user unknown", "GET", e.adminURL + Path + "users/%3Cb%3Enobody", false, 303, 404},
		{"groups", "GET", e.adminURL + Path + "groups", false, 303, 200},
		{"group", "GET", e.adminURL + Path + "groups/AppSec%20Leads", false, 303, 200},
		{"group unknown", "GET", e.adminURL + Path + "groups/Nobody", false, 303, 404},
		{"reach", "GET", e.adminURL + Path + "reach?app=webgoat&version=1.0", false, 303, 200},
		{"reach unknown", "GET", e.adminURL + Path + "reach?app=nope&version=1", false, 303, 404},
		{"HEAD page", "HEAD", e.adminURL + Path + "users", false, 303, 200},
		{"POST page", "POST", e.adminURL + Path + "users", false, 405, 405},
		{"no route", "GET", e.adminURL + Path + "nope", false, 404, 404},
		{"style sheet", "GET", e.adminURL + Path + "static/console.css", false, 200, 200},
		{"static listing", "GET", e.adminURL + Path + "static/", false, 200, 200},
		{"static missing", "GET", e.adminURL + Path + "static/nope.css", false, 404, 404},
		{"auth without code", "GET", e.adminURL + Path + "auth", false, 400, 400},
		{"auth bad code", "GET", e.adminURL + Path + "auth?code=" + state, false, 400, 400},
		{"sign-out by GET", "GET", e.adminURL + Path + "signout", false, 405, 405},
		{"sign-out cross-site", "POST", e.adminURL + Path + "signout", true, 403, 403},
		{"hand-off without state", "GET", e.mainURL + HandoffPath, false, 400, 400},
		{"hand-off", "GET", e.mainURL + HandoffPath + "?state=" + state, false, 303, 303},
		{"hand-off by POST", "POST", e.mainURL + HandoffPath + "?state=" + state, false, 405, 405},
		// Last: it ends alice's session.
		{"sign-out", "POST", e.adminURL + Path + "signout", false, 200, 200},
	}
	for _, signedIn := range []bool{false, true} {
		c, want := anon, func(i int) int { return tests[i].out }
		if signedIn {
			c, want = alice, func(i int) int { return tests[i].in }
		}
		for i, tt := range tests {
			t.Run(map[bool]string{false: "signed out", true: "signed in"}[signedIn]+"/"+tt.name, func(t *testing.T) {
				req, err := http.NewRequest(tt.method, tt.url, nil)
				if err != nil {
					t.Fatal(err)
				}
				if tt.crossSite {
					req.Header.Set("Sec-Fetch-Site", "cross-site")
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want(i) {
					t.Fatalf("%s %s: %d, want %d\n%s", tt.method, tt.url, resp.StatusCode, want(i), body)
				}
				checkHardened(t, resp)
				if strings.Contains(string(body), "<b>nobody") {
					t.Errorf("echoes the request unescaped:\n%s", body)
				}
			})
		}
	}
}

// checkHardened checks the headers and cookies of one console answer.
func checkHardened(t *testing.T, resp *http.Response) {
	t.Helper()
	h := resp.Header
	for k, want := range map[string]string{
		"Cache-Control":          "no-store",
		"X-Frame-Options":        "DENY",
		"X-Content-Type-Options": "nosniff",
	} {
		if got := h.Values(k); len(got) != 1 || got[0] != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if rp := h.Get("Referrer-Policy"); rp != "no-referrer" && rp != "same-origin" {
		t.Errorf("Referrer-Policy: %q", rp)
	}
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") || strings.Contains(csp, "script-src") {
		t.Errorf("Content-Security-Policy %q allows more than the pages use", csp)
	}
	session, state := cookieNames(resp.Request.URL)
	for _, ck := range resp.Cookies() {
		wantSameSite := map[string]http.SameSite{session: http.SameSiteStrictMode, state: http.SameSiteLaxMode}[ck.Name]
		wantSecure := resp.Request.URL.Scheme == "https"
		if !ck.HttpOnly || ck.Path != Path || ck.SameSite != wantSameSite || wantSameSite == 0 || ck.Secure != wantSecure {
			t.Errorf("cookie %s: HttpOnly %v, Path %q, SameSite %v, Secure %v", ck.Name, ck.HttpOnly, ck.Path, ck.SameSite, ck.Secure)
		}
	}
}
