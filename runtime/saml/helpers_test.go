package saml

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/idrecon/idrecon/runtime/internal/logsink"
	"github.com/idrecon/idrecon/runtime/internal/testclock"
	"github.com/idrecon/idrecon/runtime/internal/testidp"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

const (
	tenant   = "5e0c1f2a-3b4d-4c6e-8f90-a1b2c3d4e5f6"
	entityID = "https://ssc.example.com/saml"
)

// Keys are made once per test binary: RSA key generation dominates
// otherwise.
var (
	keysOnce sync.Once
	keyA     *testidp.Key // Entra's current signing key
	keyB     *testidp.Key // the rollover key
	keyEvil  *testidp.Key // an attacker's key
	keySP    *testidp.Key // the SP's signing and encryption key
	keyOld   *testidp.Key // expired
)

func keys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		now := time.Now()
		mk := func(nb, na time.Time) *testidp.Key {
			k, err := testidp.NewKey(nb, na)
			if err != nil {
				panic(err)
			}
			return k
		}
		keyA = mk(now.Add(-24*time.Hour), now.Add(3*365*24*time.Hour))
		keyB = mk(now.Add(-time.Hour), now.Add(3*365*24*time.Hour))
		keyEvil = mk(now.Add(-24*time.Hour), now.Add(365*24*time.Hour))
		keySP = mk(now.Add(-24*time.Hour), now.Add(365*24*time.Hour))
		keyOld = mk(now.Add(-400*24*time.Hour), now.Add(-24*time.Hour))
	})
}

// env is an SP on a real listener with a store holding users, groups,
// assignments and the SAML configuration.
type env struct {
	t      testing.TB
	st     *store.Store
	srv    *Server
	ts     *httptest.Server
	clock  *testclock.Clock
	client *http.Client

	mu      sync.Mutex
	results []string
	logs    logsink.Buffer // what the server logged
}

func certRes(name, usage string, k *testidp.Key, withKey bool) *store.Resource {
	c := &spec.Certificate{Usage: usage, DER: k.Cert.Raw, Subject: k.Cert.Subject.String(), NotBefore: k.Cert.NotBefore, NotAfter: k.Cert.NotAfter}
	if withKey {
		c.PrivateKey = k.Private
	}
	return &store.Resource{Kind: spec.KindCertificate, Name: name, Spec: c}
}

// defaultMetadata is Entra's app metadata announcing and signed by keyA.
func defaultMetadata(t testing.TB) []byte {
	t.Helper()
	doc, err := testidp.Metadata(testidp.MetadataOptions{Tenant: tenant, Keys: []*testidp.Key{keyA}, SignWith: keyA})
	if err != nil {
		t.Fatal(err)
	}
	b, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newEnv(t testing.TB, mods ...func(*spec.SamlServiceProvider)) *env {
	t.Helper()
	keys(t)
	st, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, st: st, clock: testclock.New(time.Now().Truncate(time.Second))}
	e.srv = NewServer(st, Options{
		Authorizer: AccessAuthorizer{Store: st},
		Logger:     slog.New(slog.NewTextHandler(&e.logs, nil)),
		Now:        e.clock.Now,
		Observer:   func(r string) { e.mu.Lock(); e.results = append(e.results, r); e.mu.Unlock() },
	})
	e.ts = httptest.NewServer(e.srv)
	t.Cleanup(e.ts.Close)
	jar, _ := cookiejar.New(nil)
	e.client = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	e.update(func(tx *store.Txn) error {
		for _, r := range []*store.Resource{
			certRes("entra-a", spec.UsageSamlIDPSigning, keyA, false),
			certRes("entra-b", spec.UsageSamlIDPSigning, keyB, false),
			certRes("entra-old", spec.UsageSamlIDPSigning, keyOld, false),
			certRes("sp-sign", spec.UsageSamlSPSigning, keySP, true),
			certRes("sp-enc", spec.UsageSamlSPEncryption, keySP, true),
			{Kind: spec.KindRole, Name: "Developer", Spec: &spec.Role{}},
			{Kind: spec.KindRole, Name: "Security Lead", Spec: &spec.Role{}},
			{Kind: spec.KindRole, Name: "View Only", Spec: &spec.Role{}},
			{Kind: spec.KindApplication, Name: "WebGoat", Spec: &spec.Application{Versions: []string{"2026.1", "2026.2"}}},
			{Kind: spec.KindAccessAssignment, Name: "alice", Spec: &spec.AccessAssignment{Subject: spec.Subject{User: "Alice@Contoso.example"}, Roles: []string{"Developer"}, ApplicationVersions: []string{"WebGoat/2026.1"}}},
			{Kind: spec.KindAccessAssignment, Name: "security", Spec: &spec.AccessAssignment{Subject: spec.Subject{Group: "AppSec Leads"}, Roles: []string{"Security Lead"}, ApplicationVersions: []string{"WebGoat/2026.2"}}},
		} {
			if err := tx.Insert(store.TableResources, r); err != nil {
				return err
			}
		}
		for _, u := range []*store.User{
			{ID: "u1", UserName: "alice@contoso.example", Active: true},
			{ID: "u2", UserName: "bob@contoso.example", Active: false},
			{ID: "u3", UserName: "carol@contoso.example", Active: true},
			{ID: "u4", UserName: "dave@contoso.example", Active: true},
		} {
			if err := tx.Insert(store.TableUsers, u); err != nil {
				return err
			}
		}
		if err := tx.Insert(store.TableGroups, &store.Group{ID: "g1", DisplayName: "AppSec Leads"}); err != nil {
			return err
		}
		return tx.ChangeMembers("g1", []string{"u1", "u4"}, nil, time.Time{})
	})
	e.setSpec(mods...)
	return e
}

func (e *env) update(fn func(*store.Txn) error) {
	e.t.Helper()
	if err := e.st.Update(context.Background(), fn); err != nil {
		e.t.Fatal(err)
	}
}

// setSpec stores a fresh SamlServiceProvider: the defaults below with mods applied.
func (e *env) setSpec(mods ...func(*spec.SamlServiceProvider)) {
	e.t.Helper()
	sp := &spec.SamlServiceProvider{
		Enabled:                 true,
		EntityID:                entityID,
		BaseURL:                 e.ts.URL,
		IDP:                     spec.SamlIDP{MetadataXML: defaultMetadata(e.t), SigningCertificates: []string{"entra-a"}},
		SPSigningCertificate:    "sp-sign",
		SPEncryptionCertificate: "sp-enc",
	}
	for _, m := range mods {
		m(sp)
	}
	e.update(func(tx *store.Txn) error {
		return tx.Insert(store.TableResources, &store.Resource{Kind: spec.KindSamlServiceProvider, Name: "sso", Spec: sp})
	})
}

func (e *env) acsURL() string { return e.ts.URL + "/saml/acs" }

// login starts SP-initiated sign-in and returns the AuthnRequest ID and
// RelayState the SP sent to the IdP.
func (e *env) login(returnTo string) (id, relay string) {
	e.t.Helper()
	resp, err := e.client.Get(e.ts.URL + "/saml/login?returnTo=" + url.QueryEscape(returnTo))
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		e.t.Fatalf("login: status %d", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		e.t.Fatal(err)
	}
	if !strings.HasPrefix(loc.String(), testidp.SSOURL(tenant)+"?") {
		e.t.Fatalf("login redirects to %s, want the IdP", loc)
	}
	doc, _ := redirected(e.t, loc, "SAMLRequest")
	return doc.Root().SelectAttrValue("ID", ""), loc.Query().Get("RelayState")
}

// redirected returns the SAML message a redirect to loc carries in its
// query parameter param (HTTP-Redirect binding), parsed and raw.
func redirected(t testing.TB, loc *url.URL, param string) (*etree.Document, []byte) {
	t.Helper()
	raw, err := testidp.Inflate(loc.Query().Get(param))
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	return doc, raw
}

// good returns the options of a valid response to request irt for alice.
func (e *env) good(irt string) testidp.ResponseOptions {
	return testidp.ResponseOptions{
		Now:           e.clock.Now(),
		Tenant:        tenant,
		Recipient:     e.acsURL(),
		Audiences:     []string{entityID},
		InResponseTo:  irt,
		NameID:        "alice@contoso.example",
		Key:           keyA,
		SignAssertion: true,
		Attributes: []testidp.Attr{
			{Name: testidp.ClaimName, Values: []string{"alice@contoso.example"}},
			{Name: testidp.ClaimObjectID, Values: []string{"0b6f7a9e-1111-2222-3333-444455556666"}},
			{Name: testidp.ClaimTenantID, Values: []string{tenant}},
			{Name: testidp.ClaimGroups, Values: []string{"9d1e0a2b-aaaa-bbbb-cccc-ddddeeeeffff"}},
		},
	}
}

func encode(t testing.TB, o testidp.ResponseOptions) string {
	t.Helper()
	doc, err := testidp.Response(o)
	if err != nil {
		t.Fatal(err)
	}
	s, err := testidp.Encode(doc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) post(samlResponse, relay string) *http.Response {
	e.t.Helper()
	resp, err := e.client.PostForm(e.acsURL(), url.Values{"SAMLResponse": {samlResponse}, "RelayState": {relay}})
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

func (e *env) get(path string) (*http.Response, string) {
	e.t.Helper()
	resp, err := e.client.Get(e.ts.URL + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (e *env) lastResult() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.results) == 0 {
		return ""
	}
	return e.results[len(e.results)-1]
}

func body(t testing.TB, r *http.Response) string {
	t.Helper()
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sessionTable and replayTable are the server's in-process tables.
func (e *env) sessionTable() *ttlMap[Session] { return e.srv.sessions.(*memSessions).m }
func (e *env) replayTable() *ttlMap[string]   { return e.srv.replay.(*memReplay).m }

// cookies are the names of e's cookies under its current baseURL.
func (e *env) cookies() cookieNames {
	e.t.Helper()
	names, ok := e.srv.cookieNames()
	if !ok {
		e.t.Fatal("no cookie names without a baseURL")
	}
	return names
}

// loginRedirect starts an SP-initiated sign-in returning to returnTo and
// returns where it sends the browser: the IdP, with the AuthnRequest.
func (e *env) loginRedirect(t *testing.T, returnTo string) *url.URL {
	t.Helper()
	resp, err := e.client.Get(e.ts.URL + "/saml/login?returnTo=" + url.QueryEscape(returnTo))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return loc
}
