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
	"net/http"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

func newCert(t *testing.T, cn string) *spec.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &spec.Certificate{Usage: spec.UsageTLS, DER: der, PrivateKey: key}
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
