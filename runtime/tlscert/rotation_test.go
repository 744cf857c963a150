package tlscert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/internal/testclock"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// certValid is a self-signed tls Certificate for cn valid from notBefore to
// notAfter.
func certValid(t *testing.T, cn string, notBefore, notAfter time.Time) *spec.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     []string{"localhost"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &spec.Certificate{Usage: spec.UsageTLS, DER: der, PrivateKey: key}
}

// TestRotationOntoInvalidCertificate: while the served certificate is valid,
// a new one that is not valid at this moment is not switched to (every
// client that verifies would refuse it): the old one goes on being served
// and Ready names the new one and its validity. One not valid yet is
// switched to once it is, with no other change in the store. When the
// served one is no longer valid itself, the new one is taken anyway.
func TestRotationOntoInvalidCertificate(t *testing.T) {
	start := time.Now().Truncate(time.Second)
	h := time.Hour
	tests := []struct {
		name string
		// first is served at start; second is stored then, and the clock
		// advanced by after before the second look.
		first, second [2]time.Duration // validity, relative to start
		after         time.Duration
		// Served before and after advancing the clock, and what Ready
		// says then ("" wants no reason).
		before, later       string
		whyBefore, whyLater []string
	}{
		{
			name:  "new one expired",
			first: [2]time.Duration{-h, 3 * h}, second: [2]time.Duration{-2 * h, -h}, after: h,
			before: "first", later: "first",
			whyBefore: []string{"CN=second", "expired", start.Add(-2 * h).UTC().Format(time.RFC3339), start.Add(-h).UTC().Format(time.RFC3339)},
			whyLater:  []string{"CN=second", "expired"},
		},
		{
			name:  "new one not valid yet, then valid",
			first: [2]time.Duration{-h, 3 * h}, second: [2]time.Duration{h, 4 * h}, after: h,
			before: "first", later: "second",
			whyBefore: []string{"CN=second", "not valid yet", start.Add(h).UTC().Format(time.RFC3339), start.Add(4 * h).UTC().Format(time.RFC3339)},
			whyLater:  nil,
		},
		{
			name:  "served one expires while the new one is not valid yet",
			first: [2]time.Duration{-h, h}, second: [2]time.Duration{2 * h, 4 * h}, after: h,
			before: "first", later: "second",
			whyBefore: []string{"CN=second", "not valid yet"},
			whyLater:  []string{"not valid before"},
		},
		{
			name:  "served one expired, new one expired too",
			first: [2]time.Duration{-3 * h, -2 * h}, second: [2]time.Duration{-2 * h, -h}, after: 0,
			before: "second", later: "second",
			whyBefore: []string{"expired on " + start.Add(-h).UTC().Format(time.RFC3339)},
			whyLater:  []string{"expired on " + start.Add(-h).UTC().Format(time.RFC3339)},
		},
		{
			name:  "new one valid",
			first: [2]time.Duration{-h, h}, second: [2]time.Duration{-h, 2 * h}, after: h,
			before: "second", later: "second",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := testclock.New(start)
			st, err := store.New(store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			src := New(st, "")
			src.now = clock.Now
			put(t, st, "web", certValid(t, "first", start.Add(tt.first[0]), start.Add(tt.first[1])))
			ln, err := tls.Listen("tcp", "127.0.0.1:0", src.Config())
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go handshakeAll(ln)
			peer := func() string {
				t.Helper()
				// The client does not verify: the test is about which
				// certificate is served, valid or not.
				conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
			}
			if got := peer(); got != "first" {
				t.Fatalf("served %q, want first", got)
			}
			second := certValid(t, "second", start.Add(tt.second[0]), start.Add(tt.second[1]))
			put(t, st, "web", second)
			raw, err := second.PrivateKey.(*ecdsa.PrivateKey).Bytes()
			if err != nil {
				t.Fatal(err)
			}
			check := func(when, want string, wantWhy []string) {
				t.Helper()
				for range 2 { // a look that keeps the old one does not change that
					if got := peer(); got != want {
						t.Fatalf("%s: served %q, want %s", when, got, want)
					}
				}
				ok, why := src.Ready()
				if !ok {
					t.Fatalf("%s: Ready false (%s)", when, why)
				}
				if len(wantWhy) == 0 && why != "" {
					t.Errorf("%s: Ready reason %q, want none", when, why)
				}
				for _, w := range wantWhy {
					if !strings.Contains(why, w) {
						t.Errorf("%s: Ready reason %q, want one with %q", when, why, w)
					}
				}
				if strings.Contains(why, hex.EncodeToString(raw)) || strings.Contains(why, new(big.Int).SetBytes(raw).String()) {
					t.Errorf("%s: the reason holds the private key: %q", when, why)
				}
			}
			check("after the rotation", tt.before, tt.whyBefore)
			clock.Add(tt.after)
			check("later", tt.later, tt.whyLater)
		})
	}
}
