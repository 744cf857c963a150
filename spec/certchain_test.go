package spec

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"
)

// issuer is a CA of a test chain.
type issuer struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// issue makes a certificate named cn for key, signed by parent (self-signed
// when nil), valid around testNow.
func issue(t *testing.T, parent *issuer, cn string, key crypto.Signer, ca bool) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             testNow.Add(-time.Hour),
		NotAfter:              testNow.Add(365 * 24 * time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  ca,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		DNSNames:              []string{cn + ".example"},
	}
	signer, by := key, tmpl
	if parent != nil {
		signer, by = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, by, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestCertificateChainOrder: a tls certificate's file written out of order
// (the leaf after an intermediate, intermediates the wrong way round) is
// read as a server presents it: the certificate of the private key, then
// each certificate followed by its issuer, nothing dropped. One holding a
// certificate that belongs to no part of the chain is kept as given after
// the leaf, with a warning.
func TestCertificateChainOrder(t *testing.T) {
	ca := func(parent *issuer, cn string) *issuer {
		k := ecKey(t)
		return &issuer{issue(t, parent, cn, k, true), k}
	}
	root := ca(nil, "root")
	inter1 := ca(root, "inter1")
	inter2 := ca(inter1, "inter2")
	stray := ca(ca(nil, "other root"), "stray")
	key := ecKey(t)
	leaf := issue(t, inter2, "leaf", key, false)

	for _, tc := range []struct {
		name  string
		given []*x509.Certificate
		want  []string
		warn  string // in a warning; "" wants none about the chain
	}{
		{"in order", []*x509.Certificate{leaf, inter2.cert, inter1.cert}, []string{"leaf", "inter2", "inter1"}, ""},
		{"leaf after an intermediate", []*x509.Certificate{inter2.cert, leaf, inter1.cert}, []string{"leaf", "inter2", "inter1"}, ""},
		{"leaf last", []*x509.Certificate{inter1.cert, inter2.cert, leaf}, []string{"leaf", "inter2", "inter1"}, ""},
		{"intermediates reversed", []*x509.Certificate{leaf, inter1.cert, inter2.cert}, []string{"leaf", "inter2", "inter1"}, ""},
		{"root first", []*x509.Certificate{leaf, root.cert, inter1.cert, inter2.cert}, []string{"leaf", "inter2", "inter1", "root"}, ""},
		{"a stray certificate", []*x509.Certificate{inter1.cert, stray.cert, leaf, inter2.cert}, []string{"leaf", "inter1", "stray", "inter2"}, "CN=stray"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var pem strings.Builder
			for _, c := range tc.given {
				pem.Write(certPEM(c))
			}
			doc := certDoc("web", UsageTLS, "  privateKeyFrom: {env: KEY}\n  pem: |\n"+indent(pem.String(), "    "))
			set, err := load(t, writeTree(t, map[string]string{"c.yaml": doc}), map[string]string{"KEY": string(pkcs8PEM(t, key))})
			if err != nil {
				t.Fatal(err)
			}
			// The runtime validates the documents it holds again, resolved,
			// at an admin edit.
			again, err := Validate(set.Docs, LoadOptions{Getenv: getenvFrom(nil), Now: testNow})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []*Set{set, again} {
				c := s.Get(KindCertificate, "web").Spec.(*Certificate)
				tls, err := c.TLSCertificate()
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, der := range tls.Certificate {
					p, err := x509.ParseCertificate(der)
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, p.Subject.CommonName)
				}
				if strings.Join(got, ",") != strings.Join(tc.want, ",") {
					t.Errorf("presented %v, want %v", got, tc.want)
				}
				// The document describes its leaf, whichever block it was.
				if !bytes.Equal(c.DER, leaf.Raw) || c.Subject != leaf.Subject.String() || !c.NotAfter.Equal(leaf.NotAfter) {
					t.Errorf("the Certificate describes %s, not its leaf", c.Subject)
				}
			}
			warned := strings.Join(set.Warnings, "\n")
			switch {
			case tc.warn == "" && strings.Contains(warned, "chain"):
				t.Errorf("warnings %q, want none about the chain", warned)
			case tc.warn != "" && !strings.Contains(warned, tc.warn):
				t.Errorf("warnings %q, want one naming %s", warned, tc.warn)
			}
		})
	}
}
