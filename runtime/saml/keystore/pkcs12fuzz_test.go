package keystore

import "testing"

// FuzzPKCS12: idrecon keystore import reads a file an administrator
// exported: a clear error, never a panic.
func FuzzPKCS12(f *testing.F) {
	f.Add([]byte{0x30, 0x82, 0x01, 0x00, 0x02, 0x01, 0x03}, "changeit")
	f.Add([]byte{}, "")
	f.Fuzz(func(t *testing.T, data []byte, pw string) {
		ImportPKCS12(data, pw)
		TrustedCertificates(data, pw)
	})
}
