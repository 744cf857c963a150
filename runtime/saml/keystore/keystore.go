// Package keystore turns the key stores administrators already have into
// what an idrecon spec references: a PEM certificate for a Certificate
// document and a PKCS#8 PEM private key file kept outside git.
//
// It reads PKCS#12 (.p12/.pfx, the format keytool and openssl write, with
// modern AES/PBES2 or legacy 3DES/RC2 protection). Java's JKS format is not
// read: convert it first with
//
//	keytool -importkeystore -srckeystore saml.jks -destkeystore saml.p12 -deststoretype pkcs12
//
// The CLI's `idrecon keystore import FILE.p12` is expected to call
// ImportPKCS12 for the SP's signing/encryption key pair, write keyPEM to a
// file with mode 0600 outside the spec repo, and write the certificate and a
// Certificate document (see Document) into it; TrustedCertificates reads the
// IdP certificate stored as a trusted entry, as Application Security's
// keystore holds Entra's signing certificate.
package keystore

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"

	"gopkg.in/yaml.v3"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/idrecon/idrecon/spec"
)

// ErrPassword is returned when the store's password is wrong.
var ErrPassword = errors.New("keystore: wrong password")

// ImportPKCS12 reads a PKCS#12 store holding one private key and its
// certificate. certPEM is the leaf certificate, keyPEM the key as PKCS#8,
// and chainPEM the intermediate CAs of the store that issued the leaf, in
// order from it up (see issuers).
func ImportPKCS12(data []byte, password string) (certPEM, chainPEM, keyPEM []byte, err error) {
	key, cert, cas, err := pkcs12.DecodeChain(data, password)
	if err != nil {
		return nil, nil, nil, decodeErr(err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok || cert == nil {
		return nil, nil, nil, errors.New("keystore: store holds no usable private key and certificate")
	}
	if !publicKeysEqual(signer.Public(), cert.PublicKey) {
		return nil, nil, nil, errors.New("keystore: private key does not belong to the certificate")
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("keystore: encode private key: %w", err)
	}
	for _, c := range issuers(cert, cas) {
		chainPEM = append(chainPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), chainPEM,
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// issuers returns the CAs among cas that issued leaf, in order from it up.
// A store lists its CAs in no set order and may hold others; the root is
// left out, as servers leave it out (clients have it).
func issuers(leaf *x509.Certificate, cas []*x509.Certificate) []*x509.Certificate {
	var out []*x509.Certificate
	cas = slices.Clone(cas)
	for cur := leaf; len(cas) > 0; {
		i := slices.IndexFunc(cas, func(c *x509.Certificate) bool {
			return bytes.Equal(c.RawSubject, cur.RawIssuer) && cur.CheckSignatureFrom(c) == nil
		})
		if i < 0 || bytes.Equal(cas[i].RawSubject, cas[i].RawIssuer) {
			break
		}
		cur = cas[i]
		cas = slices.Delete(cas, i, i+1) // so a loop of CAs ends
		out = append(out, cur)
	}
	return out
}

// TrustedCertificates reads the trusted certificate entries of a PKCS#12
// trust store (as keytool -importcert writes them), each as PEM.
func TrustedCertificates(data []byte, password string) ([][]byte, error) {
	certs, err := pkcs12.DecodeTrustStore(data, password)
	if err != nil {
		return nil, decodeErr(err)
	}
	if len(certs) == 0 {
		return nil, errors.New("keystore: no trusted certificates in the store")
	}
	out := make([][]byte, len(certs))
	for i, c := range certs {
		out[i] = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return out, nil
}

func decodeErr(err error) error {
	if errors.Is(err, pkcs12.ErrIncorrectPassword) || errors.Is(err, pkcs12.ErrDecryption) {
		return ErrPassword
	}
	return fmt.Errorf("keystore: read PKCS#12: %w", err)
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// Document renders a Certificate document for a certificate file and, for
// the SP's own usages, a private key file referenced by path (never inlined).
func Document(name, usage, certFile, keyFile string) ([]byte, error) {
	c := spec.Certificate{Usage: usage, File: certFile}
	if keyFile != "" {
		c.PrivateKeyFrom = &spec.ValueFrom{File: keyFile}
	}
	doc := struct {
		APIVersion string           `yaml:"apiVersion"`
		Kind       string           `yaml:"kind"`
		Metadata   spec.Metadata    `yaml:"metadata"`
		Spec       spec.Certificate `yaml:"spec"`
	}{spec.APIVersion, spec.KindCertificate, spec.Metadata{Name: name}, c}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("keystore: render document: %w", err)
	}
	return b, nil
}
