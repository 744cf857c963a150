package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// testPKCS12 writes a PKCS#12 keystore, protected by password, holding a
// fresh key and a certificate valid around now.
func testPKCS12(t *testing.T, password string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sp"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p12, err := pkcs12.Modern.Encode(key, cert, nil, password)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sp.p12")
	if err := os.WriteFile(path, p12, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestKeystoreImportKeyPath: the document names the path the daemon reads
// the key from, which need not be where this machine wrote it, and never a
// relative path (that would be read inside the spec repo).
func TestKeystoreImportKeyPath(t *testing.T) {
	p12 := testPKCS12(t, "secret")
	env := map[string]string{"IDRECON_KEYSTORE_PASSWORD": "secret"}
	tests := []struct {
		name    string
		keyPath string
		want    string // the document's privateKeyFrom.file; "" = refused
	}{
		{"default: where it was written", "", "ABS"},
		{"the daemon's path", "/etc/idrecon/sp-signing.key", "/etc/idrecon/sp-signing.key"},
		{"relative", "keys/sp.key", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			specDir, keyDir := t.TempDir(), t.TempDir()
			keyOut := filepath.Join(keyDir, "sp.key")
			args := []string{"keystore", "import", p12, "--spec", specDir, "--key-out", keyOut}
			if tt.keyPath != "" {
				args = append(args, "--key-path", tt.keyPath)
			}
			code, stdout, stderr := run(t, env, args...)
			if tt.want == "" {
				if code != 1 || !strings.Contains(stderr, "must be absolute") {
					t.Fatalf("code %d, stderr %q: want a refusal", code, stderr)
				}
				if _, err := os.Stat(keyOut); err == nil {
					t.Error("a refused import wrote the key")
				}
				return
			}
			if code != 0 {
				t.Fatalf("code %d: %s", code, stderr)
			}
			want := tt.want
			if want == "ABS" {
				want = keyOut
			}
			doc, err := os.ReadFile(filepath.Join(specDir, "keystore-sp-signing.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(doc), "file: "+want+"\n") {
				t.Errorf("document does not read the key from %s:\n%s", want, doc)
			}
			if fi, err := os.Stat(keyOut); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("key file: %v, %v", fi, err)
			}
			if !strings.Contains(stdout, keyOut) {
				t.Errorf("stdout does not say where the key went: %q", stdout)
			}
		})
	}
}
