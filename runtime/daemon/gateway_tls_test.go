package daemon

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/admin"
)

// testCA issues certificates for a test, valid around the test's clock.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	ca := &testCA{}
	ca.cert, ca.key = ca.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "test upstream CA"},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign})
	return ca
}

// issue signs tmpl with the CA (self-signed when the CA has no key yet).
func (ca *testCA) issue(t *testing.T, tmpl *x509.Certificate) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	parent, signer := tmpl, key
	if ca.key != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func certPEM(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

func keyPEM(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// TestGatewayMutualTLS: a Gateway reaches an https upstream that trusts
// only clients its CA signed, verifying the upstream with a tls-ca
// Certificate and presenting a tls-client one, both from the keystore. A
// Gateway without the client certificate, or trusting only the system's
// roots, gets a 502 page: the upstream is never reached around them.
func TestGatewayMutualTLS(t *testing.T) {
	ca := newTestCA(t)
	serverCert, serverKey := ca.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "upstream"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	clientCert, clientKey := ca.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "idrecon"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})

	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	app := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "client="+r.TLS.PeerCertificates[0].Subject.CommonName+" user="+r.Header.Get("username"))
	}))
	app.TLS = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{serverCert.Raw}, PrivateKey: serverKey}},
		ClientAuth:   tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12,
	}
	app.StartTLS()
	defer app.Close()

	keyFile := filepath.Join(t.TempDir(), "client.key")
	if err := os.WriteFile(keyFile, keyPEM(t, clientKey), 0o600); err != nil {
		t.Fatal(err)
	}
	gateway := func(name, prefix, tlsFields string) string {
		return "---\napiVersion: idrecon.io/v1alpha1\nkind: Gateway\nmetadata:\n  name: " + name + "\nspec:\n" +
			"  upstream: " + app.URL + "\n  pathPrefix: " + prefix + "\n" + tlsFields
	}
	files := map[string]string{
		"upstream-ca.pem": certPEM(ca.cert),
		"client.pem":      certPEM(clientCert),
		"upstream-tls.yaml": "apiVersion: idrecon.io/v1alpha1\nkind: Certificate\nmetadata:\n  name: upstream-ca\nspec:\n  usage: tls-ca\n  file: upstream-ca.pem\n" +
			"---\napiVersion: idrecon.io/v1alpha1\nkind: Certificate\nmetadata:\n  name: gateway-client\nspec:\n  usage: tls-client\n  file: client.pem\n  privateKeyFrom:\n    file: " + keyFile + "\n" +
			gateway("mtls", "/mtls", "  upstreamCAs: [upstream-ca]\n  clientCertificate: gateway-client\n") +
			gateway("nocert", "/nocert", "  upstreamCAs: [upstream-ca]\n") +
			gateway("noca", "/noca", "  clientCertificate: gateway-client\n"),
	}
	d, key := gatewayDaemon(t, t.TempDir(), files)

	provision(t, d, "alice@contoso.com")
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	signIn(t, d, browser, key, "/saml/login?returnTo=/mtls/", "alice@contoso.com", "/mtls/")

	for _, c := range []struct {
		path string
		code int
		body string
	}{
		{"/mtls/", 200, "client=idrecon user=alice@contoso.com"},
		{"/nocert/", http.StatusBadGateway, ""},
		{"/noca/", http.StatusBadGateway, ""},
	} {
		resp, err := browser.Get(d.base + c.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code || (c.body != "" && string(b) != c.body) {
			t.Errorf("GET %s: %d %q, want %d %q", c.path, resp.StatusCode, b, c.code, c.body)
		}
		if c.code == http.StatusBadGateway && strings.Contains(string(b), "client=") {
			t.Errorf("GET %s reached the upstream: %q", c.path, b)
		}
	}
	for _, st := range d.status(t).Gateways {
		if !st.Serving {
			t.Errorf("Gateway %s not serving: %s", st.Name, st.Error)
		}
	}
}

// TestGatewayUnbuiltFailsClosed: after a restart the shared secret is read
// again from valueFrom; while it cannot be (here the env var is gone, so the
// spec does not load) the Gateway's paths answer 503, the upstream is never
// reached without it, and status says why.
func TestGatewayUnbuiltFailsClosed(t *testing.T) {
	hits := 0
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer app.Close()
	specDir, _ := gatewaySpec(t, map[string]string{"gw.yaml": "apiVersion: idrecon.io/v1alpha1\nkind: Gateway\nmetadata:\n  name: app\nspec:\n" +
		"  upstream: " + app.URL + "\n  pathPrefix: /app\n  sharedSecret:\n    header: X-Gateway-Secret\n    valueFrom: {env: GW_SECRET}\n"})
	dataDir := t.TempDir()
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "GW_SECRET" {
				return v
			}
			return os.Getenv(k)
		}
	}
	d := start(t, Config{SpecDir: specDir, DataDir: dataDir, Getenv: env("s3cret")})
	if st := d.status(t); len(st.Gateways) == 0 || !st.Gateways[len(st.Gateways)-1].Serving {
		t.Fatalf("gateways before the restart: %+v", st.Gateways)
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}

	d = start(t, Config{SpecDir: specDir, DataDir: dataDir, Getenv: env("")})
	resp, err := http.Get(d.base + "/app/page")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("GET /app/page: %d, want 503 with Retry-After", resp.StatusCode)
	}
	if hits != 0 {
		t.Errorf("the upstream was reached %d times without the shared secret", hits)
	}
	var app1 *admin.GatewayStatus
	for _, g := range d.status(t).Gateways {
		if g.Name == "app" {
			app1 = &g
		}
	}
	if app1 == nil || app1.Serving || !strings.Contains(app1.Error, "shared secret is not resolved") {
		t.Errorf("status of Gateway app: %+v", app1)
	}
}
