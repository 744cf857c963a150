package saml

import (
	"crypto/sha1"
	"fmt"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/runtime/internal/testidp"
	"github.com/idrecon/idrecon/spec"
)

// TestReadyTellsOfAnnouncedCertificate: a signing certificate Entra's
// metadata announces but the keystore lacks (a new certificate created for
// a rollover, not yet imported) is not trusted, and status says so for as
// long as it lasts: a log line written once, when the metadata changed,
// is easily missed, and every sign-in fails once Entra activates it.
func TestReadyTellsOfAnnouncedCertificate(t *testing.T) {
	keys(t)
	md := metadataBytes(t, testidp.MetadataOptions{Keys: []*testidp.Key{keyA, keyB}, SignWith: keyA}, nil)
	e := newEnv(t, func(sp *spec.SamlServiceProvider) { sp.IDP.MetadataXML = md })
	ok, why := e.srv.Ready()
	// Named by the thumbprint Entra's portal shows.
	thumb := func(k *testidp.Key) string { return fmt.Sprintf("%X", sha1.Sum(k.Cert.Raw)) }
	if !ok || !strings.Contains(why, "initialised") || !strings.Contains(why, "not in the keystore") ||
		!strings.Contains(why, thumb(keyB)) || strings.Contains(why, thumb(keyA)) {
		t.Fatalf("Ready() = %v, %q; want initialised, naming %s (only) as not in the keystore", ok, why, thumb(keyB))
	}
	if r, _ := e.get("/saml/metadata"); r.StatusCode != 200 {
		t.Fatalf("sign-in not in service: %d", r.StatusCode)
	}

	// Imported: nothing left to tell.
	e.setSpec(func(sp *spec.SamlServiceProvider) {
		sp.IDP.MetadataXML = md
		sp.IDP.SigningCertificates = []string{"entra-a", "entra-b"}
	})
	if ok, why := e.srv.Ready(); !ok || strings.Contains(why, "keystore") {
		t.Fatalf("Ready() = %v, %q; want initialised without a warning", ok, why)
	}
}
