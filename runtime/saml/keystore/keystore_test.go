package keystore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/idrecon/idrecon/spec"
)

func selfSigned(t *testing.T, key crypto.Signer) *x509.Certificate {
	t.Helper()
	return selfSignedAs(t, key, "ssc saml")
}

// selfSignedAs is a self-signed certificate of key with common name cn.
func selfSignedAs(t *testing.T, key crypto.Signer, cn string) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestImportPKCS12(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  crypto.Signer
		enc  *pkcs12.Encoder
	}{
		{"RSA, modern (AES/PBES2)", rsaKey, pkcs12.Modern},
		{"RSA, legacy (3DES)", rsaKey, pkcs12.LegacyDES},
		{"ECDSA, modern", ecKey, pkcs12.Modern},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cert := selfSigned(t, tc.key)
			p12, err := tc.enc.Encode(tc.key, cert, nil, "changeit")
			if err != nil {
				t.Fatal(err)
			}
			certPEM, _, keyPEM, err := ImportPKCS12(p12, "changeit")
			if err != nil {
				t.Fatal(err)
			}
			cb, _ := pem.Decode(certPEM)
			if cb == nil || cb.Type != "CERTIFICATE" || string(cb.Bytes) != string(cert.Raw) {
				t.Fatal("certificate not returned as PEM")
			}
			kb, _ := pem.Decode(keyPEM)
			if kb == nil || kb.Type != "PRIVATE KEY" {
				t.Fatal("key not PKCS#8 PEM")
			}
			k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if !k.(crypto.Signer).Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(tc.key.Public()) {
				t.Fatal("imported key differs")
			}
			_, _, _, err = ImportPKCS12(p12, "wrong")
			if !errors.Is(err, ErrPassword) {
				t.Fatalf("wrong password: err = %v", err)
			}
			if strings.Contains(err.Error(), "changeit") {
				t.Fatal("error echoes a password")
			}
		})
	}
}

func TestImportPKCS12Rejects(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	mismatched, err := pkcs12.Modern.Encode(key, selfSigned(t, other), nil, "pw")
	if err == nil {
		if _, _, _, err := ImportPKCS12(mismatched, "pw"); err == nil {
			t.Fatal("key of another certificate accepted")
		}
	}
	if _, _, _, err := ImportPKCS12([]byte("not a keystore"), "pw"); err == nil {
		t.Fatal("garbage accepted")
	}
	trust, err := pkcs12.Modern.EncodeTrustStore([]*x509.Certificate{selfSigned(t, key)}, "pw")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := ImportPKCS12(trust, "pw"); err == nil {
		t.Fatal("trust store without a key accepted as a key pair")
	}
}

func TestTrustedCertificates(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	a := selfSigned(t, key)
	// keytool keeps one certificate under two aliases if asked: it is one
	// certificate.
	p12, err := pkcs12.Modern.EncodeTrustStore([]*x509.Certificate{a, a}, "changeit")
	if err != nil {
		t.Fatal(err)
	}
	pems, err := TrustedCertificates(p12, "changeit")
	if err != nil {
		t.Fatal(err)
	}
	if len(pems) != 1 {
		t.Fatalf("%d certificates, want 1", len(pems))
	}
	if b, _ := pem.Decode(pems[0]); b == nil || b.Type != "CERTIFICATE" || string(b.Bytes) != string(a.Raw) {
		t.Fatal("certificate not returned as PEM")
	}
	if _, err := TrustedCertificates(p12, "nope"); !errors.Is(err, ErrPassword) {
		t.Fatalf("wrong password: %v", err)
	}
}

// namedCert is a self-signed certificate with its own key and common name.
func namedCert(t *testing.T, cn string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return selfSignedAs(t, key, cn)
}

// TestTrustedCertificatesRollover: during a certificate rollover Entra's
// metadata carries two signing certificates and administrators export
// both into one trust store. A Certificate document holds one certificate
// and the CLI writes only the first one returned, so the other would be
// dropped without a word and sign-in would fail when Entra starts signing
// with it. The store is refused, saying which certificates it holds and
// how to import them.
func TestTrustedCertificatesRollover(t *testing.T) {
	current, next := namedCert(t, "Microsoft Azure Federated SSO Certificate"), namedCert(t, "Microsoft Azure Federated SSO Certificate (new)")
	p12, err := pkcs12.Modern.EncodeTrustStore([]*x509.Certificate{current, next}, "changeit")
	if err != nil {
		t.Fatal(err)
	}
	pems, err := TrustedCertificates(p12, "changeit")
	if err == nil {
		t.Fatalf("a store of two certificates gave %d without an error", len(pems))
	}
	if errors.Is(err, ErrPassword) {
		t.Fatalf("reported as a wrong password: %v", err)
	}
	msg := err.Error()
	t.Log(msg)
	// Entra's portal shows a certificate by its SHA-1 thumbprint.
	thumbprint := func(c *x509.Certificate) string { return fmt.Sprintf("%X", sha1.Sum(c.Raw)) }
	for _, want := range []string{"2 ", thumbprint(current), thumbprint(next), "one certificate", "signingCertificates"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not say %q: %s", want, msg)
		}
	}
}

func TestDocument(t *testing.T) {
	b, err := Document("ssc-saml", spec.UsageSamlSPSigning, "keys/ssc-saml.crt", "/etc/idrecon/ssc-saml.key")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		APIVersion string           `yaml:"apiVersion"`
		Kind       string           `yaml:"kind"`
		Metadata   spec.Metadata    `yaml:"metadata"`
		Spec       spec.Certificate `yaml:"spec"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.APIVersion != spec.APIVersion || doc.Kind != spec.KindCertificate || doc.Metadata.Name != "ssc-saml" ||
		doc.Spec.Usage != spec.UsageSamlSPSigning || doc.Spec.File != "keys/ssc-saml.crt" ||
		doc.Spec.PrivateKeyFrom == nil || doc.Spec.PrivateKeyFrom.File != "/etc/idrecon/ssc-saml.key" {
		t.Fatalf("document:\n%s", b)
	}
}
