package reconcile

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// TestKeyMaterialComesBackAfterRestart: private keys are neither rendered
// nor persisted, so after a restart a certificate is loaded without its key.
// The next apply must put the key back although the plan shows no change.
func TestKeyMaterialComesBackAfterRestart(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert := &spec.Certificate{Usage: spec.UsageTLS, File: "tls.pem", Fingerprint: "ab", KeyFingerprint: "cd",
		PrivateKeyFrom: &spec.ValueFrom{File: "/etc/idrecon/tls.key"}, PrivateKey: key}
	set := newSet("rev1", doc(spec.KindCertificate, "web", cert))
	st := newStore(t)
	if _, err := newReconciler(t, Config{Store: st}).Apply(context.Background(), set); err != nil {
		t.Fatal(err)
	}

	// What a restart leaves: the same resource, written by the reconciler, without its key.
	res := *resource(t, st, spec.KindCertificate, "web")
	loaded := *cert
	loaded.PrivateKey = nil
	res.Spec = &loaded
	if err := st.Update(context.Background(), func(tx *store.Txn) error { return tx.Insert(store.TableResources, &res) }); err != nil {
		t.Fatal(err)
	}

	rec := newReconciler(t, Config{Store: st})
	p, err := rec.Apply(context.Background(), set)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Empty() {
		t.Errorf("restoring a key shows as a change: %+v", p)
	}
	got := resource(t, st, spec.KindCertificate, "web").Spec.(*spec.Certificate)
	if got.PrivateKey == nil {
		t.Fatal("private key not restored")
	}
}
