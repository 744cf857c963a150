package console

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/idrecon/idrecon/runtime/internal/browsertest"
)

var update = flag.Bool("update", false, "rewrite testdata/screenshots/*.png")

// headless starts a headless Chromium with a 1280×800 window and
// JavaScript off in every page, and returns its context.
func headless(t *testing.T, exe string) context.Context {
	t.Helper()
	bctx := browsertest.Start(t, exe, 90*time.Second,
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("font-render-hinting", "none"),
		chromedp.WindowSize(1280, 800))
	noScript := chromedp.Action[chromedp.Void](func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return chromedp.Void{}, err
	})
	if err := chromedp.Do(bctx, noScript); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}

// TestBrowser signs in to the console in a real Chromium with JavaScript
// off, through the SAML SP and the test IdP (whose auto-posting form it
// submits with the button a browser without JavaScript shows), opens every
// page, checks what it shows and takes a screenshot of each; -update writes
// them to testdata/screenshots for reviewers.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	exe := browsertest.Chromium(t)
	e := newEnv(t, consoleRole)
	// Some drift to show: an edit made outside git, which the next
	// reconcile corrects.
	e.write(t, "apps.yaml", doc("Application", "webgoat", "  versions: [\"1.0\", \"2.0\", \"2026.1\"]\n")+"---\n"+
		doc("Application", "juice-shop", "  versions: [\"17\"]\n"))
	e.reconcile(t)
	e.idpMu.Lock()
	e.idpUser = "alice@contoso.example"
	e.idpMu.Unlock()

	b := headless(t, exe)
	shots := map[string][]byte{}
	// open navigates to path (or clicks sel when path is ""), waits for
	// the element wait and returns its text; shot names the screenshot.
	open := func(shot, path, click, wait string) string {
		t.Helper()
		start := time.Now()
		var err error
		if path != "" {
			err = chromedp.Do(b, chromedp.Navigate(e.adminURL+path))
		} else {
			// A click starts a navigation that Click does not wait for:
			// until the location changes, the old page (which may hold
			// wait too, as the users page does for its search) is read.
			before, _ := chromedp.Run(b, chromedp.Location())
			if err = chromedp.Do(b, chromedp.Click(chromedp.CSS(click))); err == nil {
				err = awaitLocationChange(b, before)
			}
		}
		if err == nil {
			err = chromedp.Do(b, chromedp.WaitVisible(chromedp.CSS(wait)))
		}
		if err != nil {
			loc, _ := chromedp.Run(b, chromedp.Location())
			html, _ := chromedp.Run(b, chromedp.OuterHTML(chromedp.CSS("html")))
			t.Fatalf("%s: %v (at %s)\n%s", shot, err, loc, html)
		}
		text, err := chromedp.Run(b, chromedp.Text(chromedp.CSS("main")))
		if err != nil {
			t.Fatalf("%s: read the page: %v", shot, err)
		}
		t.Logf("%s: %s", shot, time.Since(start))
		png, err := chromedp.Run(b, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("%s: screenshot: %v", shot, err)
		}
		shots[shot] = png
		return text
	}
	contains := func(page, text string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("%s lacks %q:\n%s", page, w, text)
			}
		}
	}

	// Sign-in: the console sends the browser to the SP, the SP to the IdP,
	// whose form (no JavaScript: its Continue button) posts back; the
	// hand-off's page continues to the console by itself (meta refresh).
	// The IdP, the SP and the console are three sites: along the redirects
	// that follow the IdP's cross-site POST the browser sends no
	// SameSite=Strict cookie, which is why the console's /auth answers a page.
	signIn, cancel := context.WithTimeout(b, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(signIn,
		chromedp.Navigate(e.adminURL+Path),
		chromedp.WaitVisible(chromedp.CSS("noscript button, button[type=submit]")),
		chromedp.Click(chromedp.CSS("button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#sync")),
	); err != nil {
		loc, _ := chromedp.Run(b, chromedp.Location())
		html, _ := chromedp.Run(b, chromedp.OuterHTML(chromedp.CSS("html")))
		t.Fatalf("sign-in: %v (at %s)\n%s", err, loc, html)
	}
	loc, _ := chromedp.Run(b, chromedp.Location())
	if loc != e.adminURL+Path {
		t.Errorf("landed on %s, want %s", loc, e.adminURL+Path)
	}

	// The drift: an edit outside git, corrected by the next reconcile.
	e.update(t, adminEdit("webgoat", "9.9"))
	e.reconcile(t)

	st := e.rec.Status()
	contains("overview", open("overview", Path, "", "#sync"), "READY", st.AppliedRevision, "1 change at")
	if user, err := chromedp.Run(b, chromedp.Text(chromedp.ID("signed-in"))); err != nil || user != "alice@contoso.example" {
		t.Errorf("signed in as %q (%v)", user, err)
	}
	contains("history", open("history", Path+"history", "", "#history"), "ok", "~1 -0", "1 drift corrected")
	contains("plan", open("plan", Path+"plan", "", "#plan"), "No changes. The runtime matches the spec.")
	contains("drift", open("drift", Path+"drift", "", "#drift-corrected"), "Application/webgoat", "spec.versions", `["9.9"]`)
	contains("users", open("users", Path+"users", "", "#users"), "alice@contoso.example", "carol@contoso.example", "disabled", "Next page")

	// Search with the form, as a user without JavaScript does.
	if err := chromedp.Do(b, chromedp.SendKeys(chromedp.CSS("input[name=q]"), "contoso.example")); err != nil {
		t.Fatal(err)
	}
	contains("users search", open("users-search", "", "form.search button", "#users"), "alice@contoso.example")
	contains("user", open("user", "", `a[href="/console/users/alice@contoso.example"]`, "#roles"),
		"Administrator", "direct (assignment admins)", "group AppSec Leads (assignment appsec-leads)", "webgoat/2026.1")
	contains("group", open("group", "", `#groups a[href="/console/groups/AppSec%20Leads"]`, "#group"), "AppSec Leads", "Security Lead")
	contains("groups", open("groups", Path+"groups", "", "#groups"), "AppSec Leads", "Auditors")
	open("reach-choose", Path+"reach", "", "#applications")
	contains("reach", open("reach", "", `a[href="/console/reach?app=webgoat&version=1.0"]`, "#reach"),
		"webgoat/1.0: 2 users", "alice@contoso.example", "bob@contoso.example", "webgoat/*", "direct")

	// A user who loses the role is refused on the next page.
	e.writeSAML(t, "  consoleRole: Developer\n")
	e.reconcile(t)
	contains("refused", open("refused", Path+"users", "", "#reason"), "alice@contoso.example does not hold the role Developer")

	dir := filepath.Join("testdata", "screenshots")
	if !*update {
		for name := range shots {
			if _, err := os.Stat(filepath.Join(dir, name+".png")); err != nil {
				t.Errorf("no screenshot %s.png (run go test -run TestBrowser -update)", name)
			}
		}
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, png := range shots {
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// awaitLocationChange returns once the page's location is no longer
// before, or fails after 10 s. Errors while the old document goes are
// expected and retried.
func awaitLocationChange(b context.Context, before string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if loc, err := chromedp.Run(b, chromedp.Location()); err == nil && loc != before {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still at %s 10 s after the click", before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
