package tlscert

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

func newCert(t *testing.T, cn string) *spec.Certificate {
	t.Helper()
	return certValid(t, cn, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
}

func put(t *testing.T, st *store.Store, name string, c *spec.Certificate) {
	t.Helper()
	err := st.Update(context.Background(), func(tx *store.Txn) error {
		return tx.Insert(store.TableResources, &store.Resource{Kind: spec.KindCertificate, Name: name, Spec: c})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCertificateFollowsTheStore(t *testing.T) {
	st, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	src := New(st, "")
	if _, err := src.Certificate(); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("empty keystore: got %v, want ErrNoCertificate", err)
	}

	put(t, st, "web", newCert(t, "first"))
	ln, err := tls.Listen("tcp", "127.0.0.1:0", src.Config())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	go srv.Serve(ln)
	defer srv.Close()
	addr := ln.Addr().String()

	peer := func() string {
		t.Helper()
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := peer(); got != "first" {
		t.Fatalf("served %q, want first", got)
	}
	put(t, st, "web", newCert(t, "second"))
	if got := peer(); got != "second" {
		t.Fatalf("after rotation served %q, want second", got)
	}

	_, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11})
	if err == nil {
		t.Fatal("TLS 1.1 handshake accepted")
	}
}

// TestServesTheChain: a certificate issued by an intermediate CA verifies
// at a client that trusts only the root when the intermediate is served
// with it, as the Certificate's chain.
func TestServesTheChain(t *testing.T) {
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	issue := func(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) *x509.Certificate {
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(time.Hour)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	rootKey, interKey, leafKey := newKey(), newKey(), newKey()
	caTmpl := func(serial int64, cn string) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	}
	root := issue(caTmpl(1, "root"), caTmpl(1, "root"), &rootKey.PublicKey, rootKey)
	inter := issue(caTmpl(2, "intermediate"), root, &interKey.PublicKey, rootKey)
	leaf := issue(&x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "leaf"}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, inter, &leafKey.PublicKey, interKey)

	roots := x509.NewCertPool()
	roots.AddCert(root)
	for _, tc := range []struct {
		name  string
		chain [][]byte
		ok    bool
	}{{"with its chain", [][]byte{inter.Raw}, true}, {"leaf alone", nil, false}} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := store.New(store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			put(t, st, "web", &spec.Certificate{Usage: spec.UsageTLS, DER: leaf.Raw, Chain: tc.chain, PrivateKey: leafKey})
			ln, err := tls.Listen("tcp", "127.0.0.1:0", New(st, "").Config())
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go handshakeAll(ln)
			conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "localhost"})
			if err == nil {
				conn.Close()
			}
			if (err == nil) != tc.ok {
				t.Errorf("handshake error %v, want success %v", err, tc.ok)
			}
		})
	}
}

// TestReadyWarnsOutsideValidity: a certificate that expired while the
// daemon runs (or one not valid yet) is still served, as crypto/tls does,
// but the tls component says so in status instead of a plain "ready":
// every client that verifies refuses it, and the loader's expiry warning
// is only shown by plan and validate.
func TestReadyWarnsOutsideValidity(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name                string
		notBefore, notAfter time.Time
		want                string // in the reason; "" wants none
	}{
		{"valid", now.Add(-time.Hour), now.Add(time.Hour), ""},
		{"expired", now.Add(-2 * time.Hour), now.Add(-time.Hour), "expired"},
		{"not yet valid", now.Add(time.Hour), now.Add(2 * time.Hour), "not valid before"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := store.New(store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			c := newCert(t, "web")
			key := c.PrivateKey.(*ecdsa.PrivateKey)
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "web"},
				DNSNames: []string{"localhost"}, NotBefore: tt.notBefore, NotAfter: tt.notAfter}
			c.DER, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
			if err != nil {
				t.Fatal(err)
			}
			put(t, st, "web", c)
			ok, why := New(st, "").Ready()
			if !ok {
				t.Fatalf("Ready false (%s): the certificate is still served", why)
			}
			if tt.want == "" && why != "" || !strings.Contains(why, tt.want) {
				t.Errorf("Ready reason %q, want one with %q", why, tt.want)
			}
		})
	}
}

// handshakeAll completes the handshake of every connection ln accepts,
// then closes it, until ln is closed.
func handshakeAll(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.(*tls.Conn).Handshake()
		c.Close()
	}
}
