package spec

import "testing"

// FuzzCertificateFiles: certificate and key files come from the spec repo
// or the data directory: a clear error, never a panic.
func FuzzCertificateFiles(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n"))
	f.Add([]byte("MIIC\r\n  AAAA"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if c, _, err := parseCertificate(data); (c == nil) == (err == nil) {
			t.Fatalf("parseCertificate: %v, %v", c, err)
		}
		if k, err := parsePrivateKey(data); (k == nil) == (err == nil) {
			t.Fatalf("parsePrivateKey: %v, %v", k, err)
		}
	})
}
