package tlscert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/internal/testclock"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

var testSerial atomic.Int64

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testCA issues certificates valid over the window it was made with.
type testCA struct {
	cert                *x509.Certificate
	key                 crypto.Signer
	notBefore, notAfter time.Time
}

// newCA is a CA named cn, issued by parent, or self-signed when parent is nil.
func newCA(t *testing.T, cn string, parent *testCA, notBefore, notAfter time.Time) *testCA {
	t.Helper()
	key := ecKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(testSerial.Add(1)), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	issuer, signer := tmpl, crypto.Signer(key)
	if parent != nil {
		issuer, signer = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: c, key: key, notBefore: notBefore, notAfter: notAfter}
}

// leaf issues a server certificate named cn for key, with names as its
// SANs: each an IP address or a DNS name.
func (ca *testCA) leaf(t *testing.T, cn string, key crypto.Signer, names ...string) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(testSerial.Add(1)), Subject: pkix.Name{CommonName: cn},
		NotBefore: ca.notBefore, NotAfter: ca.notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if _, ok := key.(*rsa.PrivateKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tlsCert is a tls Certificate document for a new ECDSA key, issued by ca.
func (ca *testCA) tlsCert(t *testing.T, cn string, names ...string) *spec.Certificate {
	t.Helper()
	key := ecKey(t)
	return &spec.Certificate{Usage: spec.UsageTLS, DER: ca.leaf(t, cn, key, names...).Raw, PrivateKey: key}
}

// listen serves src on a TLS listener on loopback until the test ends and
// returns its address.
func listen(t *testing.T, src *Source) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", src.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go handshakeAll(ln)
	return ln.Addr().String()
}

// dialCN completes a handshake with cfg and returns the subject served.
func dialCN(addr string, cfg *tls.Config) (string, error) {
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

func newStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestServesTheCertificateForTheServerName: with several Certificates of
// usage tls and none named, each handshake gets the one whose names match
// what the client asked for, verified against the CA it trusts; one that
// matches none gets the first by name.
func TestServesTheCertificateForTheServerName(t *testing.T) {
	clock := testclock.New(time.Now())
	ca := newCA(t, "root", nil, clock.Now().Add(-time.Hour), clock.Now().Add(time.Hour))
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)

	st := newStore(t)
	put(t, st, "a-default", ca.tlsCert(t, "default", "default.example.com"))
	put(t, st, "b-api", ca.tlsCert(t, "api", "api.example.com", "API2.example.com"))
	put(t, st, "c-wildcard", ca.tlsCert(t, "wildcard", "*.apps.example.com"))
	put(t, st, "d-ip", ca.tlsCert(t, "ip", "127.0.0.1"))
	src := New(st, "")
	src.now = clock.Now
	addr := listen(t, src)

	for _, tc := range []struct{ serverName, want string }{
		{"default.example.com", "default"},
		{"api.example.com", "api"},
		{"api2.example.com", "api"},
		{"API.Example.com", "api"},
		{"x.apps.example.com", "wildcard"},
		{"", "ip"}, // the client connects by IP: no SNI
	} {
		got, err := dialCN(addr, &tls.Config{RootCAs: roots, ServerName: tc.serverName})
		if err != nil || got != tc.want {
			t.Errorf("ServerName %q: served %q (%v), want %s, verified", tc.serverName, got, err, tc.want)
		}
	}
	for _, serverName := range []string{
		"unknown.example.org",
		"apps.example.com",     // a wildcard stands for one label
		"y.x.apps.example.com", // and one only
		"example.com",
	} {
		got, err := dialCN(addr, &tls.Config{InsecureSkipVerify: true, ServerName: serverName})
		if err != nil || got != "default" {
			t.Errorf("ServerName %q: served %q (%v), want the first by name, default", serverName, got, err)
		}
	}

	// Named, that one is served whatever the client asks for.
	named := listen(t, New(st, "b-api"))
	for _, serverName := range []string{"default.example.com", "x.apps.example.com", ""} {
		got, err := dialCN(named, &tls.Config{InsecureSkipVerify: true, ServerName: serverName})
		if err != nil || got != "api" {
			t.Errorf("--tls-certificate b-api, ServerName %q: served %q (%v), want api", serverName, got, err)
		}
	}
}

// TestServerNameTieBreak: of two Certificates for the same name, a client
// gets the one it can use (an RSA one for a client that offers only RSA
// cipher suites), as crypto/tls picks among its Certificates.
func TestServerNameTieBreak(t *testing.T) {
	clock := testclock.New(time.Now())
	ca := newCA(t, "root", nil, clock.Now().Add(-time.Hour), clock.Now().Add(time.Hour))
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}

	st := newStore(t)
	put(t, st, "a-default", ca.tlsCert(t, "default", "default.example.com"))
	put(t, st, "b-ecdsa", ca.tlsCert(t, "ecdsa", "dual.example.com"))
	put(t, st, "c-rsa", &spec.Certificate{Usage: spec.UsageTLS, DER: ca.leaf(t, "rsa", rsaKey, "dual.example.com").Raw, PrivateKey: rsaKey})
	src := New(st, "")
	src.now = clock.Now
	addr := listen(t, src)

	for _, tc := range []struct {
		suite uint16
		want  string
	}{
		{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "rsa"},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "ecdsa"},
	} {
		got, err := dialCN(addr, &tls.Config{RootCAs: roots, ServerName: "dual.example.com",
			MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tc.suite}})
		if err != nil || got != tc.want {
			t.Errorf("suite %s: served %q (%v), want %s", tls.CipherSuiteName(tc.suite), got, err, tc.want)
		}
	}
}

// TestServerNameKeepsEachLastGood: every Certificate matched by name keeps
// the guarantees of the one served without a name: a new version that
// cannot be served, or is outside its validity while the served one is
// inside, does not replace the last good one, and Ready says why. Built
// certificates are kept: a handshake does not build one again.
func TestServerNameKeepsEachLastGood(t *testing.T) {
	clock := testclock.New(time.Now())
	start := clock.Now()
	ca := newCA(t, "root", nil, start.Add(-time.Hour), start.Add(time.Hour))
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)

	st := newStore(t)
	put(t, st, "a-default", ca.tlsCert(t, "default", "default.example.com"))
	put(t, st, "b-api", ca.tlsCert(t, "api-first", "api.example.com"))
	src := New(st, "")
	src.now = clock.Now
	addr := listen(t, src)
	api := func() string {
		t.Helper()
		got, err := dialCN(addr, &tls.Config{RootCAs: roots, ServerName: "api.example.com"})
		if err != nil {
			t.Fatalf("handshake for api.example.com: %v", err)
		}
		return got
	}
	if got := api(); got != "api-first" {
		t.Fatalf("served %q, want api-first", got)
	}

	hello := &tls.ClientHelloInfo{ServerName: "api.example.com"}
	first, err := src.Config().GetCertificate(hello)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := src.Config().GetCertificate(hello); again != first {
		t.Error("a second handshake got a certificate built again")
	}

	mismatched := ca.tlsCert(t, "api-mismatched", "api.example.com")
	mismatched.PrivateKey = ecKey(t)
	keyless := ca.tlsCert(t, "api-keyless", "api.example.com")
	keyless.PrivateKey = nil
	expired := &testCA{cert: ca.cert, key: ca.key, notBefore: start.Add(-2 * time.Hour), notAfter: start.Add(-time.Hour)}
	for _, tc := range []struct {
		name string
		c    *spec.Certificate
		want []string
	}{
		{"key does not match", mismatched, []string{"b-api", "does not match"}},
		{"key not resolved", keyless, []string{"b-api", "private key"}},
		{"expired", expired.tlsCert(t, "api-expired", "api.example.com"), []string{"b-api", "CN=api-expired", "expired"}},
	} {
		put(t, st, "b-api", tc.c)
		for range 2 {
			if got := api(); got != "api-first" {
				t.Fatalf("%s: served %q, want the last good one, api-first", tc.name, got)
			}
		}
		ok, why := src.Ready()
		if !ok {
			t.Fatalf("%s: Ready false (%s)", tc.name, why)
		}
		for _, w := range tc.want {
			if !strings.Contains(why, w) {
				t.Errorf("%s: Ready reason %q, want one with %q", tc.name, why, w)
			}
		}
		if got, err := dialCN(addr, &tls.Config{RootCAs: roots, ServerName: "default.example.com"}); err != nil || got != "default" {
			t.Errorf("%s: default.example.com served %q (%v), want default", tc.name, got, err)
		}
	}

	// A Certificate never served goes unmatched until it can be, and
	// Ready names it.
	unusable := ca.tlsCert(t, "new-mismatched", "new.example.com")
	unusable.PrivateKey = ecKey(t)
	put(t, st, "c-new", unusable)
	if got, err := dialCN(addr, &tls.Config{InsecureSkipVerify: true, ServerName: "new.example.com"}); err != nil || got != "default" {
		t.Errorf("new.example.com with its key mismatched: served %q (%v), want default", got, err)
	}
	if ok, why := src.Ready(); !ok || !strings.Contains(why, "c-new") || !strings.Contains(why, "does not match") {
		t.Errorf("Ready = %v, %q; want true with a reason naming c-new and its key", ok, why)
	}
	put(t, st, "c-new", ca.tlsCert(t, "new", "new.example.com"))
	if got, err := dialCN(addr, &tls.Config{RootCAs: roots, ServerName: "new.example.com"}); err != nil || got != "new" {
		t.Errorf("new.example.com: served %q (%v), want new", got, err)
	}

	put(t, st, "b-api", ca.tlsCert(t, "api-second", "api.example.com"))
	if got := api(); got != "api-second" {
		t.Fatalf("served %q, want api-second", got)
	}
	if ok, why := src.Ready(); !ok || why != "" {
		t.Errorf("Ready = %v, %q after a good reload", ok, why)
	}
}
