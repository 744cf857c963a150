package spec

import (
	"reflect"
	"testing"
)

// TestKindRegistry: every kind has a distinct pointer spec type, Kinds
// follows the table, and an unknown kind is refused.
func TestKindRegistry(t *testing.T) {
	if len(Kinds) != len(kinds) {
		t.Fatalf("Kinds has %d, the table %d", len(Kinds), len(kinds))
	}
	seen := map[reflect.Type]string{}
	for i, kind := range Kinds {
		v, ok := NewSpec(kind)
		if !ok || kinds[i].kind != kind {
			t.Fatalf("kind %s: NewSpec ok=%v, table has %s at %d", kind, ok, kinds[i].kind, i)
		}
		typ := reflect.TypeOf(v)
		if typ.Kind() != reflect.Pointer || !reflect.ValueOf(v).Elem().IsZero() {
			t.Errorf("kind %s: NewSpec gives %v, want a pointer to a zero value", kind, typ)
		}
		if other, dup := seen[typ]; dup {
			t.Errorf("kinds %s and %s share the spec type %v", kind, other, typ)
		}
		seen[typ] = kind
		if w, _ := NewSpec(kind); w == v {
			t.Errorf("kind %s: NewSpec returned the same value twice", kind)
		}
	}
	if v, ok := NewSpec("Gadget"); ok || v != nil {
		t.Errorf("NewSpec(Gadget) = %v, %v", v, ok)
	}
}
