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
// keystore holds Entra's signing certificate, one per store: a store holding
// several (both of Entra's during a rollover) is refused rather than one of
// them dropped.
package keystore

import (
	"bytes"
	"crypto"
	"crypto/sha1"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

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

// TrustedCertificates reads the trusted certificate entry of a PKCS#12
// trust store (as keytool -importcert writes it) as PEM: one certificate,
// though a store may list it under several aliases.
//
// A store holding several different certificates is refused, naming each:
// a Certificate document holds one certificate, and a caller writing the
// first would drop the others without a word. At an Entra signing
// certificate rollover, when administrators export both of the metadata's
// certificates into one store, the one dropped is the one Entra signs
// with next, and sign-in would fail from the moment it does.
func TrustedCertificates(data []byte, password string) ([][]byte, error) {
	certs, err := pkcs12.DecodeTrustStore(data, password)
	if err != nil {
		return nil, decodeErr(err)
	}
	var distinct []*x509.Certificate
	for _, c := range certs {
		if !slices.ContainsFunc(distinct, func(d *x509.Certificate) bool { return d.Equal(c) }) {
			distinct = append(distinct, c)
		}
	}
	switch len(distinct) {
	case 0:
		return nil, errors.New("keystore: no trusted certificates in the store")
	case 1:
		return [][]byte{pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: distinct[0].Raw})}, nil
	}
	var list []string
	for _, c := range distinct {
		list = append(list, describe(c))
	}
	return nil, fmt.Errorf("keystore: the trust store holds %d different certificates (%s), and a Certificate document holds one certificate: "+
		"importing one would leave the others untrusted (for an IdP's signing certificates during a rollover, sign-in would fail once it signs with one left out). "+
		"Import each from a store or file of its own into a Certificate document of its own, and for the IdP list every one in idp.signingCertificates",
		len(distinct), strings.Join(list, "; "))
}

// describe names a certificate as an administrator finds it in Entra's
// portal: its subject, SHA-1 thumbprint and validity.
func describe(c *x509.Certificate) string {
	return fmt.Sprintf("%s, thumbprint %X, valid %s to %s", c.Subject, sha1.Sum(c.Raw),
		c.NotBefore.UTC().Format(time.DateOnly), c.NotAfter.UTC().Format(time.DateOnly))
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
