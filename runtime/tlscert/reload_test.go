package tlscert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"math/big"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// TestFailedReloadKeepsServing: a new Certificate that cannot be served (its
// key does not match it, its DER does not parse) must not take the listener
// down: handshakes go on with the last good certificate, and Ready says why
// the new one is not served, without the key in the reason.
func TestFailedReloadKeepsServing(t *testing.T) {
	for _, tc := range []struct {
		name string
		want string
		bad  func(t *testing.T) *spec.Certificate
	}{
		{"key does not match", "does not match", func(t *testing.T) *spec.Certificate {
			c := newCert(t, "second")
			other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			c.PrivateKey = other
			return c
		}},
		{"DER does not parse", "x509", func(t *testing.T) *spec.Certificate {
			c := newCert(t, "second")
			c.DER = c.DER[:len(c.DER)/2]
			return c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, src, peer := servingFirst(t)
			bad := tc.bad(t)
			put(t, st, "web", bad)
			for range 2 { // the failure is not retried into an outage either
				if got, err := peer(); err != nil || got != "first" {
					t.Fatalf("after a failed reload: served %q (%v), want the last good one, first", got, err)
				}
			}
			ok, why := src.Ready()
			if !ok || !strings.Contains(why, tc.want) {
				t.Errorf("Ready = %v, %q; want true with a reason naming %q", ok, why, tc.want)
			}
			raw, err := bad.PrivateKey.(*ecdsa.PrivateKey).Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(why, hex.EncodeToString(raw)) || strings.Contains(why, new(big.Int).SetBytes(raw).String()) {
				t.Errorf("the reason holds the private key: %q", why)
			}

			// A usable one after it is served again.
			put(t, st, "web", newCert(t, "third"))
			if got, err := peer(); err != nil || got != "third" {
				t.Fatalf("served %q (%v), want third", got, err)
			}
			if ok, why := src.Ready(); !ok || why != "" {
				t.Errorf("Ready = %v, %q after a good reload", ok, why)
			}
		})
	}

	// With no earlier certificate, an unusable one is an error, not served.
	st, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := newCert(t, "only")
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c.PrivateKey = other
	put(t, st, "web", c)
	if _, err := New(st, "").Certificate(); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("a mismatched key alone: err %v, want one saying it does not match", err)
	}
}

// servingFirst stores the Certificate "web" (subject first) and serves a
// Source on it on a TLS listener until the test ends; peer dials it and
// returns the subject served.
func servingFirst(t *testing.T) (st *store.Store, src *Source, peer func() (string, error)) {
	t.Helper()
	st, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	src = New(st, "")
	put(t, st, "web", newCert(t, "first"))
	ln, err := tls.Listen("tcp", "127.0.0.1:0", src.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go handshakeAll(ln)
	peer = func() (string, error) {
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return "", err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
	}
	if got, err := peer(); err != nil || got != "first" {
		t.Fatalf("served %q (%v), want first", got, err)
	}
	return st, src, peer
}
