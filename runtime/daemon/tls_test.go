package daemon

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeTLSCert writes a self-signed certificate into the spec and its key
// outside it, and a Certificate document of usage tls referencing both.
func writeTLSCert(t *testing.T, specDir, cn string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "tls.key")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	os.WriteFile(filepath.Join(specDir, "tls.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	doc := "apiVersion: idrecon.io/v1alpha1\nkind: Certificate\nmetadata:\n  name: web\nspec:\n  usage: tls\n  file: tls.pem\n  privateKeyFrom:\n    file: " + keyFile + "\n"
	os.WriteFile(filepath.Join(specDir, "tls.yaml"), []byte(doc), 0o644)
}

// TestServesTLSFromTheKeystore: the daemon terminates TLS with the spec's
// tls certificate, refuses TLS 1.1, and serves a rotated certificate after
// the spec changes, without a restart.
func TestServesTLSFromTheKeystore(t *testing.T) {
	specDir, _, addr, peer := tlsDaemon(t)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get("https://" + addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("https healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Fatal("TLS 1.1 accepted")
	}

	writeTLSCert(t, specDir, "second")
	eventually(t, "rotated certificate served", func() bool { return peer() == "second" })
}

// TestContextRoot: Application Security usually lives under /ssc; SCIM and
// SAML both follow the paths the spec gives them.
func TestContextRoot(t *testing.T) {
	specDir := copyDir(t, "../../examples/entra")
	// The example's Gateway forwards /ssc to the application itself; with
	// idrecon's own paths under /ssc there is no application behind it.
	if err := os.Remove(filepath.Join(specDir, "gateway.yaml")); err != nil {
		t.Fatal(err)
	}
	for name, from := range map[string][2]string{
		"scim.yaml": {"basePath: /api/scim/v2", "basePath: /ssc/api/scim/v2"},
		"saml.yaml": {"baseURL: http://localhost:8080", "baseURL: http://localhost:8080/ssc"},
	} {
		b, err := os.ReadFile(filepath.Join(specDir, name))
		if err != nil || !strings.Contains(string(b), from[0]) {
			t.Fatalf("%s lacks %q", name, from[0])
		}
		os.WriteFile(filepath.Join(specDir, name), []byte(strings.ReplaceAll(string(b), from[0], from[1])), 0o644)
	}
	d := start(t, Config{SpecDir: specDir, DataDir: t.TempDir()})
	tests := []struct {
		path string
		want int
	}{
		{"/ssc/api/scim/v2/Users", 200},
		{"/api/scim/v2/Users", 404},
		{"/ssc/saml/metadata", 200},
		{"/saml/metadata", 404},
	}
	for _, tt := range tests {
		if code, b := d.call(t, "GET", d.base+tt.path, scimTok, nil); code != tt.want {
			t.Errorf("GET %s: %d, want %d (%.200s)", tt.path, code, tt.want, b)
		}
	}
	if code, b := d.call(t, "GET", d.admin+"/v1/saml/metadata", adminTok, nil); code != 200 || !strings.Contains(string(b), "http://localhost:8080/ssc/saml/acs") {
		t.Errorf("admin SP metadata: %d %.300s", code, b)
	}
}

// TestRevisionWithoutTheTLSCertificateIsRefused: a commit that deletes the
// Certificate the daemon serves HTTPS with (moved away, renamed) would
// fail every TLS handshake, Entra's and sign-ins' alike: it is refused,
// and the certificate goes on being served; the next commit with it
// applies.
func TestRevisionWithoutTheTLSCertificateIsRefused(t *testing.T) {
	specDir, d, _, peer := tlsDaemon(t)
	good := d.status(t).AppliedRevision
	doc, err := os.ReadFile(filepath.Join(specDir, "tls.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(specDir, "tls.yaml")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the revision refused", func() bool {
		st := d.status(t)
		return st.LastResult == "refused" && strings.Contains(st.LastError, `"web" of usage tls (--tls-certificate)`)
	})
	if st := d.status(t); st.AppliedRevision != good {
		t.Errorf("applied %s, want the last good %s kept", st.AppliedRevision, good)
	}
	if got := peer(); got != "first" {
		t.Errorf("after the refused revision: %s, want first served", got)
	}
	if err := os.WriteFile(filepath.Join(specDir, "tls.yaml"), doc, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the revision with it applied", func() bool { return d.status(t).LastResult == "ok" })
}

// servedSubject returns the subject of the certificate served at addr, or
// why the handshake failed.
func servedSubject(addr string) string {
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return "handshake failed: " + err.Error()
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// tlsDaemon starts a daemon serving HTTPS with the Certificate "web"
// (subject first) of its spec folder, and returns the folder, the daemon,
// its address, and a function that tells the subject it serves.
func tlsDaemon(t *testing.T) (specDir string, d *running, addr string, peer func() string) {
	t.Helper()
	specDir = copyDir(t, "../../examples/entra")
	writeTLSCert(t, specDir, "first")
	d = start(t, Config{SpecDir: specDir, DataDir: t.TempDir(), TLSCertificate: "web"})
	addr = strings.TrimPrefix(d.base, "http://")
	peer = func() string { return servedSubject(addr) }
	if got := peer(); got != "first" {
		t.Fatalf("served %q, want first", got)
	}
	return specDir, d, addr, peer
}
