package saml

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/idrecon/idrecon/runtime/internal/browsertest"
	"github.com/idrecon/idrecon/runtime/internal/testidp"
	"github.com/idrecon/idrecon/spec"
)

// browser starts a headless Chromium for the test.
func browser(t *testing.T, exe string) context.Context {
	return browsertest.Start(t, exe, 45*time.Second)
}

// TestBrowserSignIn drives a real headless Chromium through SP-initiated
// sign-in: SP on localhost, IdP on 127.0.0.1, so Entra's POST back to the
// ACS is a cross-site navigation, as it is in production.
func TestBrowserSignIn(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	exe := browsertest.Chromium(t)
	keys(t)
	idp := &testidp.Server{Tenant: tenant, Key: keyA, Now: time.Now, NameID: "alice@contoso.example"}
	idpSrv := httptest.NewServer(idp)
	defer idpSrv.Close()
	if !strings.HasPrefix(idpSrv.URL, "http://127.0.0.1:") {
		t.Skipf("IdP not on 127.0.0.1: %s", idpSrv.URL)
	}
	md := metadataBytes(t, testidp.MetadataOptions{Keys: []*testidp.Key{keyA}, SignWith: keyA, SSOURL: idpSrv.URL + "/saml2"}, nil)
	e := newEnv(t)
	spURL := strings.Replace(e.ts.URL, "127.0.0.1", "localhost", 1)
	e.setSpec(func(sp *spec.SamlServiceProvider) {
		sp.BaseURL = spURL
		sp.IDP.MetadataXML = md
	})
	e.clock.Set(time.Now())
	idp.Now = e.clock.Now
	idp.SPLogoutURL = spURL + "/saml/slo"

	bctx := browser(t, exe)

	if err := chromedp.Do(bctx,
		chromedp.Navigate(spURL+"/me"),
		chromedp.WaitVisible(chromedp.CSS("#roles, #reason")),
	); err != nil {
		t.Fatalf("browser sign-in: %v (observer: %v)", err, e.results)
	}
	text := func(id string) string {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID(id)))
		if err != nil {
			t.Fatalf("read #%s: %v", id, err)
		}
		return v
	}
	if e.lastResult() != "success" {
		t.Fatalf("sign-in refused: %v", e.results)
	}
	location, err := chromedp.Run(bctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	user, roles, versions := text("user"), text("roles"), text("versions")
	if location != spURL+"/me" {
		t.Errorf("landed on %s, want %s/me", location, spURL)
	}
	if user != "alice@contoso.example" {
		t.Errorf("signed in as %q", user)
	}
	for _, want := range []string{"Developer", "direct", "Security Lead", "group AppSec Leads"} {
		if !strings.Contains(roles, want) {
			t.Errorf("roles table lacks %q: %q", want, roles)
		}
	}
	for _, want := range []string{"WebGoat/2026.1", "WebGoat/2026.2"} {
		if !strings.Contains(versions, want) {
			t.Errorf("versions lack %q: %q", want, versions)
		}
	}

	// Sign out: the SP ends the session, sends the browser to the IdP's SLO
	// endpoint, and the IdP's LogoutResponse lands on the signed-out page.
	if err := chromedp.Do(bctx,
		chromedp.Click(chromedp.CSS("button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("h1")),
	); err != nil {
		t.Fatalf("sign out: %v", err)
	}
	// The sign-out goes through the IdP and back, and reading a page that is
	// being navigated away from fails: ask again until the deadline.
	deadline := time.Now().Add(15 * time.Second)
	for {
		title, err := chromedp.Run(bctx, chromedp.Title())
		if err == nil && title == "Signed out" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("did not land on the signed-out page: title %q, %v", title, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.sessionTable().mu.Lock()
	left := len(e.sessionTable().m)
	e.sessionTable().mu.Unlock()
	if left != 0 {
		t.Fatalf("%d sessions left after sign-out", left)
	}
}
