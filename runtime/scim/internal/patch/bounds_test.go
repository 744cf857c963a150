package patch

import (
	"fmt"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/runtime/scim/internal/schema"
	"github.com/idrecon/idrecon/runtime/scim/internal/scimerr"
)

// pathlessBody is a PatchOp of ops path-less adds, each of keys distinct
// filtered paths.
func pathlessBody(ops, keys int) string {
	var b strings.Builder
	b.WriteString(`{"schemas":["` + URIPatchOp + `"],"Operations":[`)
	for o := range ops {
		if o > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"op":"add","value":{`)
		for k := range keys {
			if k > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `"emails[type eq \"t%d-%d\"].value":"v"`, o, k)
		}
		b.WriteString(`}}`)
	}
	b.WriteString(`]}`)
	return b.String()
}

// TestPathlessKeysAreBounded: each key of a path-less value is a path
// applied on its own, and the cost of applying them grows with the square
// of their number (each filtered key is matched against every element the
// keys before it made): 4,000 keys, 150 KB, took four seconds. So they
// count against MaxOperations as operations do.
func TestPathlessKeysAreBounded(t *testing.T) {
	for _, shape := range [][2]int{{1, MaxOperations + 1}, {2, MaxOperations/2 + 1}, {MaxOperations, 2}} {
		doc := decode(t, user)
		ops, err := Parse(decode(t, pathlessBody(shape[0], shape[1])))
		if err == nil {
			err = Apply(doc, ops, schema.UserType)
		}
		if se, ok := err.(*scimerr.Error); !ok || se.ScimType != scimerr.TooMany {
			t.Errorf("%d ops of %d keys: %v, want tooMany", shape[0], shape[1], err)
		}
	}
	doc := decode(t, user)
	ops, err := Parse(decode(t, pathlessBody(2, 8)))
	if err == nil {
		err = Apply(doc, ops, schema.UserType)
	}
	if err != nil {
		t.Fatal(err)
	}
	if n := len(doc["emails"].([]any)); n != 2+16 {
		t.Fatalf("%d emails, want 18", n)
	}
}
