package spec

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testNow is the clock every test loads with; fixture certificates are valid
// around it.
var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

type keyPair struct {
	key  crypto.Signer
	cert *x509.Certificate
}

var (
	fixtureOnce sync.Once
	fixtureKeys map[string]keyPair
	fixtureErr  error
)

// fixtures returns the generated key pairs, made once per test binary: an
// Entra-like IdP signing certificate (RSA), an SP signing pair and a spare
// key (ECDSA), an SP encryption pair (RSA) and a TLS pair (ECDSA).
func fixtures(t testing.TB) map[string]keyPair {
	t.Helper()
	fixtureOnce.Do(func() {
		fixtureKeys = map[string]keyPair{}
		for _, f := range []struct {
			name string
			rsa  bool
		}{{"idp", true}, {"sp", false}, {"other", false}, {"enc", true}, {"tls", false}} {
			var key crypto.Signer
			var err error
			if f.rsa {
				key, err = rsa.GenerateKey(rand.Reader, 2048)
			} else {
				key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			}
			if err != nil {
				fixtureErr = err
				return
			}
			cert, err := selfSigned(key, "idrecon test "+f.name, testNow.AddDate(0, -6, 0), testNow.AddDate(10, 0, 0))
			if err != nil {
				fixtureErr = err
				return
			}
			fixtureKeys[f.name] = keyPair{key: key, cert: cert}
		}
	})
	if fixtureErr != nil {
		t.Fatalf("generate fixtures: %v", fixtureErr)
	}
	return fixtureKeys
}

func selfSigned(key crypto.Signer, cn string, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"idrecon tests"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// certBase64 renders DER the way Entra's "Certificate (Base64)" download
// does: Base64 text with CRLF line breaks.
func certBase64(c *x509.Certificate) []byte {
	s := base64.StdEncoding.EncodeToString(c.Raw)
	var b strings.Builder
	for len(s) > 64 {
		b.WriteString(s[:64] + "\r\n")
		s = s[64:]
	}
	b.WriteString(s + "\r\n")
	return []byte(b.String())
}

func pkcs8PEM(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func pkcs1PEM(key *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

func ecPEM(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

// writeFixtures writes the generated certificates and keys below dir/certs,
// and IdP metadata they sign as dir/idp/metadata.xml, and returns the environment the good and bad cases expect.
func writeFixtures(t testing.TB, dir string) map[string]string {
	t.Helper()
	k := fixtures(t)
	files := map[string][]byte{
		"certs/idp.cer":       certBase64(k["idp"].cert),
		"certs/idp.der":       k["idp"].cert.Raw,
		"certs/sp.pem":        certPEM(k["sp"].cert),
		"certs/sp-key.pem":    pkcs8PEM(t, k["sp"].key),
		"certs/other-key.pem": pkcs8PEM(t, k["other"].key),
		"certs/enc.pem":       certPEM(k["enc"].cert),
		"certs/tls.pem":       certPEM(k["tls"].cert),
		"certs/tls-key.pem":   ecPEM(t, k["tls"].key.(*ecdsa.PrivateKey)),
	}
	// The IdP's metadata, signed by its certificate: the loader verifies
	// it as the SAML server does.
	idp := k["idp"]
	files["idp/metadata.xml"] = idpMetadata(t, idp.cert, &idp, time.Time{}, nil)
	for name, data := range files {
		writeFile(t, filepath.Join(dir, name), data)
	}
	return map[string]string{
		"IDRECON_TEST_ENC_KEY":     string(pkcs1PEM(k["enc"].key.(*rsa.PrivateKey))),
		"IDRECON_TEST_TOKEN":       "env-token-0123456789-abcdefghijklmnopqrstuvwxyz",
		"IDRECON_TEST_SHORT_TOKEN": "short",
	}
}

func writeFile(t testing.TB, name string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// copyTree copies a testdata case into a fresh temporary directory.
func copyTree(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	return dst
}

func getenvFrom(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}
