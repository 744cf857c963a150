package console

import (
	"context"
	"encoding/pem"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idrecon/idrecon/reconcile"
	"github.com/idrecon/idrecon/reconcile/source"
	"github.com/idrecon/idrecon/runtime/admin"
	"github.com/idrecon/idrecon/runtime/internal/testidp"
	"github.com/idrecon/idrecon/runtime/saml"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

const tenant = "7e1f0c55-0000-4000-8000-00000000c0de"

// idpKey is made once: RSA key generation is the slowest part of a test.
var idpKey = sync.OnceValue(func() *testidp.Key {
	k, err := testidp.NewKey(time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	if err != nil {
		panic(err)
	}
	return k
})

// clock is the console's clock: the real one, moved forward by the test.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// env is a console on a real store, reconciler, admin API and SAML SP, with
// a test IdP, each on its own site (see newEnv).
type env struct {
	st       *store.Store
	rec      *reconcile.Reconciler
	con      *Server
	clock    *clock
	specDir  string
	main     *httptest.Server
	mainURL  string
	admin    *httptest.Server
	adminURL string // on localhost
	idp      *httptest.Server
	idpMu    sync.Mutex
	idpUser  string // who the IdP signs in next; guarded by idpMu
	nextUser int
}

// newEnv starts everything on a spec whose SamlServiceProvider has the
// extra lines samlExtra (e.g. "  consoleRole: Administrator\n").
func newEnv(t *testing.T, samlExtra string) *env {
	t.Helper()
	e := &env{clock: &clock{}, specDir: t.TempDir()}
	st, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.st = st

	key := idpKey()
	e.idp = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.idpMu.Lock()
		idp := &testidp.Server{Tenant: tenant, Key: key, Now: time.Now, NameID: e.idpUser}
		e.idpMu.Unlock()
		idp.ServeHTTP(w, r)
	}))
	t.Cleanup(e.idp.Close)

	// The SP on 127.0.0.2 when the loopback network has it (Linux), so
	// that the IdP (127.0.0.1), the SP and the console (localhost) are three
	// sites, as Entra, idrecon and an SSH tunnel to the admin listener are.
	var mainHandler http.Handler = http.NotFoundHandler()
	e.main = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { mainHandler.ServeHTTP(w, r) }))
	if ln, err := net.Listen("tcp", "127.0.0.2:0"); err == nil {
		e.main.Listener.Close()
		e.main.Listener = ln
	}
	e.main.Start()
	t.Cleanup(e.main.Close)
	e.mainURL = e.main.URL

	md, err := testidp.Metadata(testidp.MetadataOptions{Tenant: tenant, Keys: []*testidp.Key{key}, SignWith: key, SSOURL: e.idp.URL + "/saml2"})
	if err != nil {
		t.Fatal(err)
	}
	mdXML, _ := md.WriteToBytes()
	e.write(t, "idp/metadata.xml", string(mdXML))
	e.write(t, "idp/entra.cer", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: key.Cert.Raw})))
	e.write(t, "keystore.yaml", doc("Certificate", "entra-signing", "  usage: saml-idp-signing\n  file: idp/entra.cer\n"))
	e.writeSAML(t, samlExtra)
	e.write(t, "apps.yaml", doc("Application", "webgoat", "  versions: [\"1.0\", \"2.0\"]\n")+"---\n"+
		doc("Application", "juice-shop", "  versions: [\"17\"]\n"))
	e.write(t, "assignments.yaml", doc("AccessAssignment", "admins", "  subject: {user: alice@contoso.example}\n  roles: [Administrator]\n")+"---\n"+
		doc("AccessAssignment", "appsec-leads", "  subject: {group: AppSec Leads}\n  roles: [Security Lead]\n  applicationVersions: [webgoat/*]\n")+"---\n"+
		doc("AccessAssignment", "developers", "  subject: {user: bob@contoso.example}\n  roles: [Developer]\n  applicationVersions: [webgoat/1.0]\n")+"---\n"+
		doc("AccessAssignment", "former-admin", "  subject: {user: carol@contoso.example}\n  roles: [Administrator]\n"))

	e.rec, err = reconcile.New(reconcile.Config{Store: st, Source: source.Dir{Path: e.specDir}})
	if err != nil {
		t.Fatal(err)
	}
	e.reconcile(t)

	// Users and groups as Entra provisions them.
	alice := e.user(t, "alice@contoso.example", true)
	e.user(t, "bob@contoso.example", true)
	carol := e.user(t, "carol@contoso.example", false)
	leads := e.group(t, "AppSec Leads")
	e.group(t, "Auditors")
	e.update(t, func(tx *store.Txn) error { return tx.ChangeMembers(leads, []string{alice, carol}, nil, time.Time{}) })
	for i := range PageSize + 5 {
		e.user(t, fmt.Sprintf("user%03d@contoso.example", i), true)
	}

	adm, err := admin.New(admin.Config{Store: st, Reconciler: e.rec, Token: "test-admin-token-0123456789abcdef", Source: "dir:" + e.specDir})
	if err != nil {
		t.Fatal(err)
	}
	var adminHandler http.Handler = adm
	e.admin = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { adminHandler.ServeHTTP(w, r) }))
	t.Cleanup(e.admin.Close)
	e.adminURL = strings.Replace(e.admin.URL, "127.0.0.1", "localhost", 1)

	sp := saml.NewServer(st, saml.Options{Authorizer: saml.AccessAuthorizer{Store: st}})
	e.con, err = New(Config{Store: st, Reconciler: e.rec, Status: adm.Status, SAMLUser: sp.SessionUserAndID, SAMLSessionLive: sp.SessionLive,
		URL: e.adminURL + Path, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	adm.Handle(Path, e.con)
	mux := http.NewServeMux()
	mux.Handle(HandoffPath, e.con.Handoff())
	mux.Handle("/", sp)
	mainHandler = mux
	return e
}

func doc(kind, name, spec string) string {
	return "apiVersion: idrecon.io/v1alpha1\nkind: " + kind + "\nmetadata:\n  name: " + name + "\nspec:\n" + spec
}

func (e *env) write(t *testing.T, name, content string) {
	t.Helper()
	p := filepath.Join(e.specDir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (e *env) writeSAML(t *testing.T, extra string) {
	t.Helper()
	e.write(t, "saml.yaml", doc("SamlServiceProvider", "entra", "  enabled: true\n  entityID: "+e.mainURL+"/saml/metadata\n  baseURL: "+e.mainURL+
		"\n  idp:\n    metadataFile: idp/metadata.xml\n    signingCertificates: [entra-signing]\n"+extra))
}

func (e *env) reconcile(t *testing.T) {
	t.Helper()
	if _, err := e.rec.ReconcileOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (e *env) update(t *testing.T, fn func(*store.Txn) error) {
	t.Helper()
	if err := e.st.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func (e *env) user(t *testing.T, name string, active bool) string {
	t.Helper()
	e.nextUser++
	id := fmt.Sprintf("u-%04d", e.nextUser)
	e.update(t, func(tx *store.Txn) error {
		return tx.Insert(store.TableUsers, &store.User{ID: id, UserName: name, Active: active, ExternalID: "ext-" + id})
	})
	return id
}

func (e *env) group(t *testing.T, name string) string {
	t.Helper()
	e.nextUser++
	id := fmt.Sprintf("g-%04d", e.nextUser)
	e.update(t, func(tx *store.Txn) error {
		return tx.Insert(store.TableGroups, &store.Group{ID: id, DisplayName: name, ExternalID: "ext-" + id})
	})
	return id
}

func (e *env) setActive(t *testing.T, name string, active bool) {
	t.Helper()
	e.update(t, func(tx *store.Txn) error {
		u, err := tx.UserByName(name)
		if err != nil || u == nil {
			return fmt.Errorf("user %s: %v", name, err)
		}
		c := *u
		c.Active = active
		return tx.Insert(store.TableUsers, &c)
	})
}

// adminEdit changes an Application's versions in the store, as an edit
// through the admin API (drift) does.
func adminEdit(app string, versions ...string) func(*store.Txn) error {
	return func(tx *store.Txn) error {
		return tx.Insert(store.TableResources, &store.Resource{Kind: spec.KindApplication, Name: app,
			Spec: &spec.Application{Versions: versions}, ModifiedBy: "admin", Modified: time.Now()})
	}
}

// browser is an HTTP client with its own cookies, as one browser.
func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}

// noFollow is c answering redirects instead of following them.
func noFollow(c *http.Client) *http.Client {
	cp := *c
	cp.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cp
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

var (
	formAction = regexp.MustCompile(`action="([^"]+)"`)
	formField  = regexp.MustCompile(`name="(SAMLResponse|RelayState)" value="([^"]*)"`)
)

// signIn opens the console in c as user: through the hand-off, the SP's
// sign-in and the test IdP, whose auto-posting form it submits as a
// browser without JavaScript would (its button). It returns the last
// answer: the hand-off's page on success.
func (e *env) signIn(t *testing.T, c *http.Client, user string) (*http.Response, string) {
	t.Helper()
	e.idpMu.Lock()
	e.idpUser = user
	e.idpMu.Unlock()
	resp, body := get(t, c, e.adminURL+Path)
	if !strings.HasPrefix(resp.Request.URL.String(), e.idp.URL) {
		return resp, body
	}
	action := formAction.FindStringSubmatch(body)
	if action == nil {
		t.Fatalf("IdP page has no form: %s", body)
	}
	form := url.Values{}
	for _, m := range formField.FindAllStringSubmatch(body, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	resp, err := c.PostForm(html.UnescapeString(action[1]), form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// signedIn signs user in and fails the test unless the console let them in.
func (e *env) signedIn(t *testing.T, user string) *http.Client {
	t.Helper()
	c := browser(t)
	resp, body := e.signIn(t, c, user)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Signed in as "+user) {
		t.Fatalf("sign-in of %s: %d at %s\n%s", user, resp.StatusCode, resp.Request.URL, body)
	}
	return c
}
