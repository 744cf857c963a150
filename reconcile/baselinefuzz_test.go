package reconcile

import (
	"maps"
	"testing"

	"github.com/idrecon/idrecon/spec"
)

// FuzzDecodeBaseline: the baseline record is read back from the state
// file or etcd; damage is an error, and what decodes encodes back alike.
func FuzzDecodeBaseline(f *testing.F) {
	f.Add(encodeBaseline("abc", nil))
	f.Add(encodeBaseline("r", map[spec.Ref][32]byte{{Kind: "Role", Name: "a"}: {1}, {Kind: "Role", Name: "b"}: {2}, {Kind: "User", Name: ""}: {3}}))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		rev, base, err := decodeBaseline(s)
		if err != nil {
			return
		}
		rev2, base2, err := decodeBaseline(encodeBaseline(rev, base))
		if err != nil || rev2 != rev || !maps.Equal(base, base2) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
