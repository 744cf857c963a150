package saml

import (
	"html"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/idrecon/idrecon/runtime/gateway"
	"github.com/idrecon/idrecon/runtime/internal/browsertest"
	"github.com/idrecon/idrecon/runtime/internal/testidp"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// TestBrowserThroughTheGateway: a real Chromium asks for an application page
// behind the front door, signs in through the test IdP, lands on the page it
// asked for, and the application read the user from the header idrecon set;
// once Entra disables the user, the next page is refused.
func TestBrowserThroughTheGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	exe := browsertest.Chromium(t)
	keys(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<!DOCTYPE html><title>App</title><p id="user">` + html.EscapeString(strings.Join(r.Header.Values("Username"), ",")) + `</p>`))
	}))
	defer app.Close()
	idp := &testidp.Server{Tenant: tenant, Key: keyA, Now: time.Now, NameID: "alice@contoso.example"}
	idpSrv := httptest.NewServer(idp)
	defer idpSrv.Close()
	if !strings.HasPrefix(idpSrv.URL, "http://127.0.0.1:") {
		t.Skipf("IdP not on 127.0.0.1: %s", idpSrv.URL)
	}
	md := metadataBytes(t, testidp.MetadataOptions{Keys: []*testidp.Key{keyA}, SignWith: keyA, SSOURL: idpSrv.URL + "/saml2"}, nil)
	e := newEnv(t)
	g, err := gateway.New(gateway.Config{Upstream: app.URL, PathPrefix: "/app"},
		gateway.Deps{Sessions: gateway.SessionsFunc(e.srv.SessionUser), Decider: gateway.StoreDecider{Store: e.st}})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/app/") {
			g.ServeHTTP(w, r)
			return
		}
		e.srv.ServeHTTP(w, r)
	}))
	defer front.Close()
	frontURL := strings.Replace(front.URL, "127.0.0.1", "localhost", 1)
	e.setSpec(func(sp *spec.SamlServiceProvider) {
		sp.BaseURL = frontURL
		sp.IDP.MetadataXML = md
	})
	e.clock.Set(time.Now())
	idp.Now = e.clock.Now

	bctx := browser(t, exe)

	if err := chromedp.Do(bctx,
		chromedp.Navigate(frontURL+"/app/reports?id=7"),
		chromedp.WaitVisible(chromedp.ID("user")),
	); err != nil {
		t.Fatalf("browser through the gateway: %v (observer: %v)", err, e.results)
	}
	user, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("user")))
	if err != nil {
		t.Fatal(err)
	}
	location, err := chromedp.Run(bctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if location != frontURL+"/app/reports?id=7" || user != "alice@contoso.example" {
		t.Fatalf("landed on %s, the app read %q; want %s/app/reports?id=7 and alice@contoso.example", location, user, frontURL)
	}

	// Entra disables alice: the very next page is refused.
	e.update(func(tx *store.Txn) error {
		u, err := tx.UserByName("alice@contoso.example")
		if err != nil {
			return err
		}
		off := *u
		off.Active = false
		return tx.Insert(store.TableUsers, &off)
	})
	if err := chromedp.Do(bctx,
		chromedp.Navigate(frontURL+"/app/reports?id=8"),
		chromedp.WaitVisible(chromedp.ID("reason")),
	); err != nil {
		t.Fatalf("after disabling: %v", err)
	}
	title, err := chromedp.Run(bctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(title, "App") {
		t.Fatalf("a disabled user reached the app (title %q)", title)
	}
}
