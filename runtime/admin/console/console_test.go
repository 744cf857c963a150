package console

import (
	"context"
	"regexp"

	"github.com/idrecon/idrecon/reconcile"
	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/runtime/admin"
	"github.com/idrecon/idrecon/runtime/scim"
	"github.com/idrecon/idrecon/runtime/store"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const consoleRole = "  consoleRole: Administrator\n"

// TestPages signs in as a user with the console role and checks what each
// page shows.
func TestPages(t *testing.T) {
	e := newEnv(t, consoleRole)
	c := e.signedIn(t, "alice@contoso.example")
	st := e.rec.Status()
	tests := []struct {
		path    string
		want    []string
		notWant []string
	}{
		{Path, []string{"READY", st.AppliedRevision, "Drift present", "none (correct mode)", `id="signed-in">alice@contoso.example`, `aria-current="page">Overview`}, nil},
		{Path + "history", []string{`<table id="history">`, ">ok<", " ~0 -0</td>"}, nil},
		{Path + "plan", []string{"No changes. The runtime matches the spec."}, nil},
		{Path + "drift", []string{"<b>correct</b> mode", "None."}, nil},
		{Path + "users", []string{"alice@contoso.example", "bob@contoso.example", ">disabled<", `id="next"`}, []string{"user054@"}},
		{Path + "users?q=ALI", []string{"alice@contoso.example"}, []string{"users/bob@", `id="next"`}},
		{Path + "users?active=false", []string{"carol@contoso.example"}, []string{"users/alice@", "users/bob@"}},
		{Path + "users/alice@contoso.example", []string{"Administrator", "direct (assignment admins)", "Security Lead",
			`group <a href="/console/groups/AppSec%20Leads">AppSec Leads</a> (assignment appsec-leads)`, "webgoat/2.0", "<code>webgoat/*</code>", "active, has access"}, nil},
		{Path + "users/carol@contoso.example", []string{"disabled in Entra"}, nil},
		{Path + "groups", []string{"AppSec Leads", "Auditors", "appsec-leads"}, nil},
		{Path + "groups?q=audit", []string{"Auditors"}, []string{"groups/AppSec"}},
		{Path + "groups/AppSec%20Leads", []string{`id="members">2<`, "Security Lead", "webgoat/1.0, webgoat/2.0"}, nil},
		{Path + "reach", []string{"juice-shop", "webgoat", `href="/console/reach?app=webgoat&amp;version=1.0"`}, []string{`id="reach"`}},
		{Path + "reach?app=webgoat&version=1.0", []string{"webgoat/1.0: 2 users", "alice@contoso.example", "bob@contoso.example", "direct", "<code>webgoat/*</code>"}, []string{"carol@"}},
		{Path + "reach?app=webgoat&version=2.0", []string{"webgoat/2.0: 1 user", "alice@contoso.example"}, []string{"bob@"}},
	}
	for _, tt := range tests {
		t.Run(strings.TrimPrefix(tt.path, Path), func(t *testing.T) {
			resp, body := get(t, c, e.adminURL+tt.path)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%d\n%s", resp.StatusCode, body)
			}
			checkHeaders(t, resp)
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("lacks %q", w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(body, w) {
					t.Errorf("shows %q", w)
				}
			}
			if strings.Contains(body, "<script") {
				t.Error("a page has a script")
			}
		})
	}
}

func checkHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q", csp)
	}
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("headers %v", resp.Header)
	}
}

// TestPaging follows the users listing's next links to the end.
func TestPaging(t *testing.T) {
	e := newEnv(t, consoleRole)
	c := e.signedIn(t, "alice@contoso.example")
	seen := map[string]bool{}
	next := e.adminURL + Path + "users?q=user"
	for pages := 0; next != ""; pages++ {
		if pages > 3 {
			t.Fatal("more pages than users")
		}
		_, body := get(t, c, next)
		n := strings.Count(body, `<a href="/console/users/user`)
		if n > PageSize {
			t.Fatalf("%d users on a page", n)
		}
		for i := range PageSize + 5 {
			name := "user" + pad(i) + "@"
			if strings.Contains(body, ">"+name) {
				if seen[name] {
					t.Errorf("%s on two pages", name)
				}
				seen[name] = true
			}
		}
		next = ""
		if m := nextLink.FindStringSubmatch(body); m != nil {
			next = e.adminURL + strings.ReplaceAll(m[1], "&amp;", "&")
			if !strings.Contains(next, "q=user") {
				t.Errorf("next link %s drops the search", next)
			}
		}
	}
	if len(seen) != PageSize+5 {
		t.Errorf("saw %d users over the pages, want %d", len(seen), PageSize+5)
	}
}

func pad(i int) string { s := "00" + itoa(i); return s[len(s)-3:] }

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// TestNoSessionStartsSignIn: without a session the console sends the
// browser to the hand-off with a state cookie, and the hand-off without a
// SAML session to the SP's sign-in, coming back to itself.
func TestNoSessionStartsSignIn(t *testing.T) {
	e := newEnv(t, consoleRole)
	c := noFollow(browser(t))
	resp, _ := get(t, c, e.adminURL+Path+"users")
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc == nil || loc.Scheme+"://"+loc.Host+loc.Path != e.mainURL+HandoffPath {
		t.Fatalf("%d Location %q, want 303 to %s", resp.StatusCode, resp.Header.Get("Location"), e.mainURL+HandoffPath)
	}
	state := loc.Query().Get("state")
	var ck *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == e.con.stateName {
			ck = k
		}
	}
	if ck == nil || ck.Value != state || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != Path {
		t.Fatalf("state cookie %+v, state %q", ck, state)
	}
	resp, _ = get(t, c, loc.String())
	want := "/saml/login?returnTo=" + url.QueryEscape(HandoffPath+"?state="+state)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
		t.Fatalf("hand-off without SAML session: %d %q, want %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	// Reached by another name than the console URL (127.0.0.1 for
	// localhost): to the URL first, where the code will come back.
	resp, _ = get(t, c, e.admin.URL+Path+"users?q=a")
	if want := e.adminURL + Path + "users?q=a"; resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
		t.Errorf("by another name: %d %q, want %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	// The admin token is not a way in.
	req, _ := http.NewRequest("GET", e.adminURL+Path, nil)
	req.Header.Set("Authorization", "Bearer test-admin-token-0123456789abcdef")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("with the admin token: %d, want the sign-in", resp.StatusCode)
	}
}

// TestRefusals: a user without the console role never gets a session; a
// signed-in user who is disabled, deleted or loses the role is refused on
// the next request and the session ends.
func TestRefusals(t *testing.T) {
	e := newEnv(t, consoleRole)

	resp, body := e.signIn(t, browser(t), "bob@contoso.example")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "bob@contoso.example does not hold the role Administrator") {
		t.Errorf("bob (Developer): %d\n%s", resp.StatusCode, body)
	}

	tests := []struct {
		name   string
		change func(t *testing.T)
		undo   func(t *testing.T)
		reason string
	}{
		{"disabled", func(t *testing.T) { e.setActive(t, "alice@contoso.example", false) },
			func(t *testing.T) { e.setActive(t, "alice@contoso.example", true) }, "is disabled"},
		{"role removed", func(t *testing.T) {
			e.writeSAML(t, "  consoleRole: Developer\n")
			e.reconcile(t)
		}, func(t *testing.T) {
			e.writeSAML(t, consoleRole)
			e.reconcile(t)
		}, "does not hold the role Developer"},
		{"deleted", func(t *testing.T) {
			e.update(t, func(tx *store.Txn) error {
				u, err := tx.UserByName("alice@contoso.example")
				if err != nil {
					return err
				}
				return tx.Delete(store.TableUsers, u)
			})
		}, nil, "is not provisioned"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.signedIn(t, "alice@contoso.example")
			tt.change(t)
			resp, body := get(t, noFollow(c), e.adminURL+Path)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, tt.reason) {
				t.Fatalf("%d\n%s", resp.StatusCode, body)
			}
			if tt.undo == nil {
				return
			}
			tt.undo(t)
			// The session ended: access back does not bring it back.
			resp, _ = get(t, noFollow(c), e.adminURL+Path)
			if resp.StatusCode != http.StatusSeeOther {
				t.Errorf("after the refusal: %d, want the sign-in again", resp.StatusCode)
			}
		})
	}
}

// TestCodes: a hand-off code works once, only in the browser that started
// the sign-in, and only for a minute.
func TestCodes(t *testing.T) {
	e := newEnv(t, consoleRole)

	// Another browser that started a sign-in of its own (an attacker
	// sent the victim's code, say) has a state, but not the code's.
	c := browser(t)
	u := e.authURL(t, c)
	other := browser(t)
	if resp, _ := get(t, noFollow(other), e.adminURL+Path); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("other browser's sign-in: %d", resp.StatusCode)
	}
	if resp, body := get(t, other, u); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "another browser") {
		t.Errorf("code in another browser: %d", resp.StatusCode)
	}
	// That attempt used the code up.
	if resp, _ := get(t, c, u); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("code used twice: %d", resp.StatusCode)
	}

	c = browser(t)
	u = e.authURL(t, c)
	if resp, body := get(t, c, u); resp.StatusCode != http.StatusOK || !strings.Contains(body, `http-equiv="refresh"`) {
		t.Fatalf("fresh code: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := get(t, c, u); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("code used twice: %d", resp.StatusCode)
	}

	c = browser(t)
	u = e.authURL(t, c)
	e.clock.advance(codeTTL + time.Second)
	if resp, _ := get(t, c, u); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("expired code: %d", resp.StatusCode)
	}
}

func TestSessionCookieAndSignOut(t *testing.T) {
	e := newEnv(t, consoleRole)
	c := browser(t)
	resp, _ := e.signIn(t, c, "alice@contoso.example")
	var ck *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == e.con.sessionName {
			ck = k
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != Path || len(ck.Value) != 43 {
		t.Fatalf("session cookie %+v", ck)
	}
	// A cross-site form cannot sign the user out.
	req, _ := http.NewRequest("POST", e.adminURL+Path+"signout", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	r, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site sign-out: %d", r.StatusCode)
	}
	if resp, _ := get(t, noFollow(c), e.adminURL+Path); resp.StatusCode != http.StatusOK {
		t.Fatalf("still signed in: %d", resp.StatusCode)
	}
	r, err = c.Post(e.adminURL+Path+"signout", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if resp, _ := get(t, noFollow(c), e.adminURL+Path); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after sign-out: %d, want the sign-in", resp.StatusCode)
	}
	// Pages are GET only.
	r, err = c.Post(e.adminURL+Path+"users", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST to a page: %d", r.StatusCode)
	}
}

func TestConsoleOff(t *testing.T) {
	e := newEnv(t, "")
	for _, u := range []string{e.adminURL + Path, e.mainURL + HandoffPath + "?state=x"} {
		resp, body := get(t, browser(t), u)
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "consoleRole") {
			t.Errorf("%s: %d\n%s", u, resp.StatusCode, body)
		}
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, consoleRole)
	c := e.signedIn(t, "alice@contoso.example")
	for path, want := range map[string]int{
		Path + "users?active=maybe":           http.StatusBadRequest,
		Path + "users/nobody@contoso.example": http.StatusNotFound,
		Path + "groups/Nobody":                http.StatusNotFound,
		Path + "reach?app=nope&version=1":     http.StatusNotFound,
		Path + "reach?app=webgoat&version=9":  http.StatusNotFound,
		Path + "nope":                         http.StatusNotFound,
	} {
		if resp, body := get(t, c, e.adminURL+path); resp.StatusCode != want {
			t.Errorf("%s: %d, want %d\n%s", path, resp.StatusCode, want, body)
		}
	}
	if resp, _ := get(t, browser(t), e.mainURL+HandoffPath+"?state=short"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad state: %d", resp.StatusCode)
	}
}

var nextLink = regexp.MustCompile(`id="next" href="([^"]+)"`)

// TestOverviewStates renders the overview and drift pages for a daemon
// in trouble: refused revision, suspended, drift present, a renamed group,
// a Gateway down, shared state with another leader, users near their bound.
func TestOverviewStates(t *testing.T) {
	e := newEnv(t, consoleRole)
	c := e.signedIn(t, "alice@contoso.example")
	now := time.Now()
	e.con.cfg.Status = func() (admin.StatusResponse, error) {
		st := admin.StatusResponse{Status: e.rec.Status(), Ready: false, Mode: "pull",
			Components: map[string]string{"reconcile": "ready", "saml": "not ready: metadata expired"}}
		st.SeenRevision = "main@sha1:bad0"
		st.LastError = "load revision: apps.yaml:7:3: spec.verions: unknown field"
		st.Stalled = "InvalidRevision"
		st.Suspended = true
		st.Drift = []reconcile.Change{{Kind: "Application", Name: "webgoat", Fields: []reconcile.FieldChange{{Path: "spec.versions", Before: `["9.9"]`, After: `["1.0"]`}}, Drift: true, Kept: true}}
		st.DriftCount, st.DriftSince = 1, now.Add(-5*time.Minute)
		st.Renames = []access.GroupRename{{Assignment: "appsec-leads", From: "AppSec Leads", To: "AppSec Leaders", Suggestion: "subject.group: AppSec Leaders"}}
		st.Gateways = []admin.GatewayStatus{{Name: "app", PathPrefix: "/", Upstream: "http://127.0.0.1:8081", Error: "upstream unreachable"}}
		st.Replication = &admin.ReplicationStatus{Backend: "etcd", Endpoints: []string{"a", "b", "c"}, Revision: 42, Replica: "host-2", Leader: "host-1"}
		st.Provisioned = &scim.Provisioned{Users: 95, Groups: 3, Memberships: 12, Limits: scim.Limits{Users: 100, Groups: 10}}
		return st, nil
	}
	_, body := get(t, c, e.adminURL+Path)
	for _, w := range []string{"NOT READY", "main@sha1:bad0", "not applied", "spec.verions: unknown field", "InvalidRevision",
		`<span class="warn">yes</span>`, "1 change</a> since", "(5m00s ago)", "not ready: metadata expired",
		`id="leader">host-1</td>`, "etcd, 3 endpoints, revision 42", "no: upstream unreachable",
		`<th>users</th><td>95 of 100 <span class="warn">near the bound: raise <code>--max-users</code>`, `<th>groups</th><td>3 of 10</td>`,
		`<th>memberships</th><td>12</td>`} {
		if !strings.Contains(body, w) {
			t.Errorf("overview lacks %q", w)
		}
	}
	_, body = get(t, c, e.adminURL+Path+"drift")
	for _, w := range []string{"Application/webgoat <small>(kept)</small>", "<code>[&#34;9.9&#34;]</code>", "AppSec Leaders", "subject.group: AppSec Leaders"} {
		if !strings.Contains(body, w) {
			t.Errorf("drift lacks %q", w)
		}
	}
}

// fixedPlan is a Reconciler whose current plan is p.
type fixedPlan struct {
	Reconciler
	p *reconcile.Plan
}

func (f fixedPlan) CurrentPlan(context.Context) (*reconcile.Plan, error) { return f.p, nil }

// TestPlanSummaryCountsKept: the plan page counts the drift that drift mode
// report keeps apart from the changes, as idrecon plan does ("0 to update,
// 2 kept"), so kept drift is not read as changes nor missed.
func TestPlanSummaryCountsKept(t *testing.T) {
	e := newEnv(t, consoleRole)
	c := e.signedIn(t, "alice@contoso.example")
	kept := func(name string) reconcile.Change {
		return reconcile.Change{Kind: "Application", Name: name, Drift: true, Kept: true,
			Fields: []reconcile.FieldChange{{Path: "spec.versions", Before: `["9.9"]`, After: `["1.0"]`}}}
	}
	p := &reconcile.Plan{Revision: "main@sha1:abc", Updates: []reconcile.Change{kept("webgoat"), kept("juice")}}
	p.Summary = reconcile.PlanSummary{Kept: 2, Drift: 2}
	e.con.cfg.Reconciler = fixedPlan{Reconciler: e.rec, p: p}
	_, body := get(t, c, e.adminURL+Path+"plan")
	if w := "0 to create, 0 to update, 0 to delete, 2 kept, 2 drift"; !strings.Contains(body, w) {
		t.Errorf("plan page lacks %q", w)
	}
}

// authURL signs alice in with c, stopping at the console's /auth, and
// returns that URL.
func (e *env) authURL(t *testing.T, c *http.Client) string {
	t.Helper()
	var auth string
	c.CheckRedirect = func(r *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), e.adminURL+Path+"auth") {
			auth = r.URL.String()
			return http.ErrUseLastResponse
		}
		return nil
	}
	e.signIn(t, c, "alice@contoso.example")
	c.CheckRedirect = nil
	if auth == "" {
		t.Fatal("no hand-off to /auth")
	}
	return auth
}
