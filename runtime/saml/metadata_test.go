package saml

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/idrecon/idrecon/runtime/internal/testidp"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
	"github.com/idrecon/idrecon/spec/golden"
	"github.com/idrecon/idrecon/spec/samlmeta"
)

func metadataBytes(t testing.TB, o testidp.MetadataOptions, edit func(*etree.Document)) []byte {
	t.Helper()
	if o.Tenant == "" {
		o.Tenant = tenant
	}
	doc, err := testidp.Metadata(o)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(doc)
	}
	b, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSPMetadataGolden(t *testing.T) {
	tests := []struct {
		name string
		mods []func(*spec.SamlServiceProvider)
	}{
		{"signing-and-encryption", []func(*spec.SamlServiceProvider){func(sp *spec.SamlServiceProvider) { sp.SignAuthnRequests = true }}},
		{"minimal", []func(*spec.SamlServiceProvider){func(sp *spec.SamlServiceProvider) {
			sp.SPSigningCertificate, sp.SPEncryptionCertificate = "", ""
		}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, append(tc.mods, func(sp *spec.SamlServiceProvider) { sp.BaseURL = "https://ssc.example.com/ssc" })...)
			req := httptest.NewRequest(http.MethodGet, "https://ssc.example.com/ssc/saml/metadata", nil)
			w := httptest.NewRecorder()
			e.srv.ServeHTTP(w, req)
			if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/samlmetadata+xml" {
				t.Fatalf("status %d, type %q: %s", w.Code, w.Header().Get("Content-Type"), w.Body)
			}
			got := w.Body.Bytes()
			// Certificates are generated per run; pin the rest.
			certRE := regexp.MustCompile(`<X509Certificate>[^<]+</X509Certificate>`)
			for _, m := range certRE.FindAll(got, -1) {
				inner := strings.TrimSuffix(strings.TrimPrefix(string(m), "<X509Certificate>"), "</X509Certificate>")
				if der, err := base64.StdEncoding.DecodeString(inner); err != nil || !bytes.Equal(der, keySP.Cert.Raw) {
					t.Fatalf("metadata carries a certificate that is not the SP's")
				}
			}
			got = certRE.ReplaceAll(got, []byte("<X509Certificate>SP-CERTIFICATE</X509Certificate>"))
			// validUntil follows the test's clock, whose certificates are
			// made from it; check it, then pin it.
			validUntil := `validUntil="` + e.clock.Now().UTC().Add(7*24*time.Hour).Format(time.RFC3339) + `"`
			if !bytes.Contains(got, []byte(validUntil)) {
				t.Fatalf("metadata lacks %s:\n%s", validUntil, got)
			}
			got = bytes.Replace(got, []byte(validUntil), []byte(`validUntil="VALID-UNTIL"`), 1)
			golden.Check(t, filepath.Join("testdata", "sp-metadata-"+tc.name+".golden.xml"), got)
		})
	}
}

func TestUnavailable(t *testing.T) {
	tests := []struct {
		name   string
		change func(e *env)
		reason string
	}{
		{"not configured", func(e *env) {
			e.update(func(tx *store.Txn) error {
				_, err := tx.DeleteAll(store.TableResources, store.IndexID, spec.KindSamlServiceProvider, "sso")
				return err
			})
		}, "not configured"},
		{"disabled", func(e *env) { e.setSpec(func(sp *spec.SamlServiceProvider) { sp.Enabled = false }) }, "disabled"},
		{"tampered metadata", func(e *env) {
			raw := metadataBytes(e.t, testidp.MetadataOptions{Keys: []*testidp.Key{keyA}, SignWith: keyA}, func(d *etree.Document) {
				d.Root().CreateAttr("entityID", "https://sts.windows.net/evil/")
			})
			e.setSpec(func(sp *spec.SamlServiceProvider) { sp.IDP.MetadataXML = raw })
		}, "signature does not verify"},
		{"missing keystore certificate", func(e *env) {
			e.setSpec(func(sp *spec.SamlServiceProvider) { sp.IDP.SigningCertificates = []string{"nope"} })
		}, `certificate "nope" not found`},
		{"certificate of the wrong usage", func(e *env) {
			e.setSpec(func(sp *spec.SamlServiceProvider) { sp.IDP.SigningCertificates = []string{"sp-sign"} })
		}, "usage"},
		{"metadataURL fetch fails", func(e *env) {
			hs := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "internal detail", http.StatusInternalServerError)
			}))
			e.t.Cleanup(hs.Close)
			e.srv.metadataRoots = x509.NewCertPool()
			e.srv.metadataRoots.AddCert(hs.Certificate())
			e.setSpec(func(sp *spec.SamlServiceProvider) {
				sp.IDP.MetadataXML = nil
				sp.IDP.MetadataURL = hs.URL + "/federationmetadata.xml"
				sp.IDP.AllowPrivateMetadataHost = true
			})
		}, "HTTP 500"},
		{"skew too large", func(e *env) {
			e.setSpec(func(sp *spec.SamlServiceProvider) { sp.AllowedClockSkew = spec.Duration(10 * time.Minute) })
		}, "allowedClockSkew"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if ok, why := e.srv.Ready(); !ok {
				t.Fatalf("not ready before the change: %s", why)
			}
			tc.change(e)
			ok, why := e.srv.Ready()
			if ok || !strings.Contains(why, tc.reason) {
				t.Fatalf("Ready() = %v, %q; want false mentioning %q", ok, why, tc.reason)
			}
			checkPublicPagesHide(t, e, why, tc.reason)
		})
	}
}

// metadataHost serves IdP metadata that a test can swap, break or stall.
type metadataHost struct {
	mu     sync.Mutex
	body   []byte
	status int
	hits   int
	// stall, when set, receives each request and holds it until closed.
	stall chan chan struct{}
}

func (m *metadataHost) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	m.mu.Lock()
	stall := m.stall
	m.mu.Unlock()
	if stall != nil {
		release := make(chan struct{})
		stall <- release
		<-release
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hits++
	if m.status != 0 {
		w.WriteHeader(m.status)
		return
	}
	w.Write(m.body)
}

func (m *metadataHost) set(body []byte, status int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.body, m.status = body, status
}

// fetchFrom points idp.metadataURL at path on hs, a TLS server on
// loopback: allowed by allowPrivateMetadataHost, trusted by its test root.
func fetchFrom(t testing.TB, hs *httptest.Server, path string, mods ...func(*spec.SamlServiceProvider)) *env {
	t.Helper()
	e := newEnv(t, append([]func(*spec.SamlServiceProvider){func(sp *spec.SamlServiceProvider) {
		sp.IDP.MetadataXML = nil
		sp.IDP.MetadataURL = hs.URL + path
		sp.IDP.AllowPrivateMetadataHost = true
	}}, mods...)...)
	e.srv.metadataRoots = x509.NewCertPool()
	e.srv.metadataRoots.AddCert(hs.Certificate())
	return e
}

func TestMetadataURLRefresh(t *testing.T) {
	keys(t)
	host := &metadataHost{body: defaultMetadata(t)}
	hs := httptest.NewTLSServer(host)
	defer hs.Close()
	e := fetchFrom(t, hs, "/federationmetadata.xml", func(sp *spec.SamlServiceProvider) {
		sp.IDP.MetadataRefresh = spec.Duration(time.Hour)
		sp.IDP.SigningCertificates = []string{"entra-a", "entra-b"}
	})
	ready := func(wantOK bool, want string) {
		t.Helper()
		ok, why := e.srv.Ready()
		if ok != wantOK || !strings.Contains(why, want) {
			t.Fatalf("Ready() = %v, %q; want %v mentioning %q", ok, why, wantOK, want)
		}
	}
	ready(true, "initialised")
	ready(true, "initialised") // cached: no second fetch
	if host.hits != 1 {
		t.Fatalf("%d fetches, want 1", host.hits)
	}

	// The IdP serves a broken document: the last good one stays in service.
	host.set(nil, http.StatusInternalServerError)
	e.clock.Add(time.Hour + time.Second)
	ready(true, "HTTP 500")
	tampered := metadataBytes(t, testidp.MetadataOptions{Keys: []*testidp.Key{keyA}, SignWith: keyA}, func(d *etree.Document) {
		d.Root().FindElement("//SingleSignOnService").CreateAttr("Location", "https://evil.example/saml2")
	})
	host.set(tampered, 0)
	e.clock.Add(metadataRetry + time.Second)
	ready(true, "signature does not verify")
	if r, _ := e.get("/saml/metadata"); r.StatusCode != http.StatusOK {
		t.Fatalf("last good configuration not served: %d", r.StatusCode)
	}
	if _, relay := e.login("/"); relay == "" {
		t.Fatal("login broken while degraded")
	}

	// Rollover announced and signed with the new key: picked up.
	host.set(metadataBytes(t, testidp.MetadataOptions{Keys: []*testidp.Key{keyA, keyB}, SignWith: keyB}, nil), 0)
	e.clock.Add(metadataRetry + time.Second)
	ready(true, "initialised")
}

// A slow metadata refresh holds up only the request that triggered it.
func TestMetadataRefreshDoesNotBlock(t *testing.T) {
	keys(t)
	host := &metadataHost{body: defaultMetadata(t)}
	hs := httptest.NewTLSServer(host)
	defer hs.Close()
	e := fetchFrom(t, hs, "", func(sp *spec.SamlServiceProvider) {
		sp.IDP.MetadataRefresh = spec.Duration(time.Hour)
	})
	if ok, why := e.srv.Ready(); !ok {
		t.Fatal(why)
	}
	stall := make(chan chan struct{})
	host.mu.Lock()
	host.stall = stall
	host.mu.Unlock()
	e.clock.Add(time.Hour + time.Second)

	done := make(chan bool)
	go func() { ok, _ := e.srv.Ready(); done <- ok }()
	release := <-stall // the refresh is in flight and stuck
	if r, _ := e.get("/saml/metadata"); r.StatusCode != http.StatusOK {
		t.Errorf("request during a stalled refresh: %d", r.StatusCode)
	}
	close(release)
	if !<-done {
		t.Fatal("not ready after the refresh")
	}
}

func TestFetchMetadataLimits(t *testing.T) {
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write(bytes.Repeat([]byte("x"), samlmeta.MaxSize+10))
	}))
	defer big.Close()
	s := NewServer(nil, Options{Authorizer: AccessAuthorizer{}})
	open := spec.SamlIDP{MetadataURL: big.URL, AllowInsecureMetadataURL: true, AllowPrivateMetadataHost: true}
	if _, err := s.fetchMetadata(context.Background(), open); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v", err)
	}
	open.MetadataURL = "file:///etc/passwd"
	if _, err := s.fetchMetadata(context.Background(), open); !errors.Is(err, ErrMetadataURLRefused) {
		t.Fatalf("file URL: err = %v, want ErrMetadataURLRefused", err)
	}
}

// TestMetadataInitialiseOutlivesClient: the first fetch of metadataURL is
// made for whichever request comes first, often an anonymous one. A client
// that hangs up at once must not fail it: the failure is kept for
// metadataRetry, so a client doing that once a minute would keep sign-in
// out of service for everyone.
func TestMetadataInitialiseOutlivesClient(t *testing.T) {
	keys(t)
	host := &metadataHost{body: defaultMetadata(t)}
	hs := httptest.NewTLSServer(host)
	defer hs.Close()
	e := fetchFrom(t, hs, "/federationmetadata.xml")
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the client is gone before the SP fetches
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, e.ts.URL+"/saml/metadata", nil)
	e.srv.ServeHTTP(httptest.NewRecorder(), req)
	if ok, why := e.srv.Ready(); !ok {
		t.Fatalf("a client that hung up took sign-in out of service: %s", why)
	}
}
