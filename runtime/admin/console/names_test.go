package console

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestOddNamesLinkToTheirPage: every user and group in a listing links to
// its own page, whatever its name: SCIM names may hold a slash, a
// question mark, non-ASCII letters, or be a dot segment ("." or ".."),
// which a browser and the server's path cleaning would otherwise resolve
// to another page.
func TestOddNamesLinkToTheirPage(t *testing.T) {
	e := newEnv(t, consoleRole)
	names := []string{".", "..", "...", "a/b", "a/../b", "x?y#z", "50%", "İstanbul", "<b>bold</b>"}
	for _, n := range names {
		e.user(t, n, true)
		e.group(t, n)
	}
	c := e.signedIn(t, "alice@contoso.example")
	for _, kind := range []struct{ list, id string }{{"users", "username"}, {"groups", "displayname"}} {
		for _, n := range names {
			t.Run(kind.list+"/"+n, func(t *testing.T) {
				_, body := get(t, c, e.adminURL+Path+kind.list+"?q="+url.QueryEscape(n))
				link := regexp.MustCompile(`<a href="([^"]*)">` + regexp.QuoteMeta(html.EscapeString(n)) + `</a>`).FindStringSubmatch(body)
				if link == nil {
					t.Fatalf("the listing has no link for %q:\n%s", n, body)
				}
				target, err := url.Parse(e.adminURL + Path)
				if err == nil {
					target, err = target.Parse(html.UnescapeString(link[1])) // as a browser resolves it
				}
				if err != nil {
					t.Fatal(err)
				}
				resp, page := get(t, noFollow(c), target.String())
				if want := `id="` + kind.id + `">` + html.EscapeString(n) + `</td>`; resp.StatusCode != http.StatusOK || !strings.Contains(page, want) {
					t.Errorf("link %s (%s): %d %s, want the page of %q", link[1], target, resp.StatusCode, resp.Header.Get("Location"), n)
				}
			})
		}
	}
}

var hrefs = regexp.MustCompile(`(?:href|action)="([^"]*)"`)

// TestHandoffPagesLinkToTheConsole: the hand-off answers on the main
// listener, another origin, where /console/ is not the console (with a
// Gateway at / it is the application). Its refusal pages must link back to
// the console's URL and load its style sheet from there.
func TestHandoffPagesLinkToTheConsole(t *testing.T) {
	e := newEnv(t, consoleRole)
	tests := []struct {
		name   string
		open   func(t *testing.T) (*http.Response, string)
		status int
	}{
		{"role missing", func(t *testing.T) (*http.Response, string) {
			return e.signIn(t, browser(t), "bob@contoso.example")
		}, http.StatusForbidden},
		{"bad state", func(t *testing.T) (*http.Response, string) {
			return get(t, browser(t), e.mainURL+HandoffPath+"?state=short")
		}, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := tt.open(t)
			if resp.StatusCode != tt.status || !strings.HasPrefix(resp.Request.URL.String(), e.mainURL+HandoffPath) {
				t.Fatalf("%d at %s, want %d from the hand-off", resp.StatusCode, resp.Request.URL, tt.status)
			}
			links := hrefs.FindAllStringSubmatch(body, -1)
			if len(links) == 0 {
				t.Fatalf("no link:\n%s", body)
			}
			for _, m := range links {
				u, err := resp.Request.URL.Parse(html.UnescapeString(m[1]))
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(u.String(), e.adminURL+Path) {
					t.Errorf("link %q goes to %s, not the console %s", m[1], u, e.adminURL+Path)
				}
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "style-src "+e.adminURL) {
				t.Errorf("CSP %q does not let the page load the console's style sheet", csp)
			}
		})
	}
}
