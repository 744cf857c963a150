package tlscert

import (
	"strings"
	"testing"

	"github.com/idrecon/idrecon/runtime/store"
)

// TestKeylessCertificateKeepsServing: a Certificate can reach the store
// without its private key (the etcd mirror drops it when another daemon
// wrote a new one, until this daemon's reconciler resolves it again). The
// certificate served until then must go on being served, not every
// handshake fail, and Ready says why the new one is not.
func TestKeylessCertificateKeepsServing(t *testing.T) {
	st, src, peer := servingFirst(t)

	keyless := newCert(t, "second")
	keyless.PrivateKey = nil
	put(t, st, "web", keyless)
	if got, err := peer(); err != nil || got != "first" {
		t.Fatalf("with the new certificate's key not resolved: served %q (%v), want first", got, err)
	}
	if ok, why := src.Ready(); !ok || !strings.Contains(why, "CN=second") || !strings.Contains(why, "private key") {
		t.Errorf("Ready = %v, %q; want true with a reason naming the new certificate and its key", ok, why)
	}

	// Once the key is resolved, the new one is served.
	put(t, st, "web", newCert(t, "third"))
	if got, err := peer(); err != nil || got != "third" {
		t.Fatalf("served %q (%v), want third", got, err)
	}

	// With nothing served before, a key-less certificate is no certificate.
	st2, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	alone := newCert(t, "alone")
	alone.PrivateKey = nil
	put(t, st2, "web", alone)
	if _, err := New(st2, "").Certificate(); err == nil {
		t.Error("a key-less certificate alone was served")
	}
}
