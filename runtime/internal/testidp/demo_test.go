package testidp

import (
	"encoding/pem"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var genDemo = flag.Bool("gen-demo", false, "regenerate examples/entra/idp (demo IdP certificate and signed metadata)")

// DemoTenant is the made-up tenant of the demo IdP in examples/entra/idp.
const DemoTenant = "8a3e6f2b-4c1d-4e7a-9b5f-2d6c8e0a1f34"

// TestGenerateDemo writes the demo IdP's certificate (as Entra's
// "Certificate (Base64)" download) and its signed federation metadata. The
// private key is thrown away: the demo metadata can be verified, never
// re-signed. Run: go test ./runtime/internal/testidp -run Demo -gen-demo
func TestGenerateDemo(t *testing.T) {
	if !*genDemo {
		t.Skip("pass -gen-demo to regenerate examples/entra/idp")
	}
	// RFC 5280 §4.1.2.5: 99991231235959Z means "no well-defined expiration
	// date". The demo files are read by tests and by make run on any day, so
	// they must not expire; a real tenant's certificate lives three years.
	// Valid from long before, too: the loader verifies the metadata, and
	// tests whose clock is fixed earlier than the day the files were made
	// load the example.
	key, err := NewKey(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), noExpiry)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := Metadata(MetadataOptions{Tenant: DemoTenant, Keys: []*Key{key}, SignWith: key})
	if err != nil {
		t.Fatal(err)
	}
	md, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "..", "..", "examples", "entra", "idp")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cer := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: key.Cert.Raw})
	if err := os.WriteFile(filepath.Join(dir, "entra-signing.cer"), cer, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "federationmetadata.xml"), append(md, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// noExpiry is RFC 5280's GeneralizedTime for a certificate without a
// well-defined expiration date.
var noExpiry = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
