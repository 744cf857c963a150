package access

import (
	"testing"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/idset"
	"github.com/idrecon/idrecon/spec"
)

func TestRelevantChanges(t *testing.T) {
	g := &store.Group{ID: "g", DisplayName: "Ops", Version: 1}
	bumped := &store.Group{ID: "g", DisplayName: "Ops", Version: 2}
	renamed := &store.Group{ID: "g", DisplayName: "Operations", Version: 2}
	tests := []struct {
		name   string
		change memdb.Change
		want   bool
	}{
		{"group created", memdb.Change{Table: store.TableGroups, After: g}, true},
		{"group deleted", memdb.Change{Table: store.TableGroups, Before: g}, true},
		{"group renamed", memdb.Change{Table: store.TableGroups, Before: g, After: renamed}, true},
		{"group rewritten for a membership change", memdb.Change{Table: store.TableGroups, Before: g, After: bumped}, false},
		{"membership", memdb.Change{Table: store.TableMembers, After: &store.Members{GroupID: "g", IDs: idset.Of("u")}}, false},
		{"user", memdb.Change{Table: store.TableUsers, After: &store.User{ID: "u"}}, false},
		{"assignment", memdb.Change{Table: store.TableResources, Before: &store.Resource{Kind: spec.KindAccessAssignment}}, true},
		{"role", memdb.Change{Table: store.TableResources, After: &store.Resource{Kind: spec.KindRole}}, false},
		{"binding", memdb.Change{Table: store.TableMeta, After: &store.Meta{Key: bindingPrefix + "a"}}, false},
	}
	for _, tt := range tests {
		if got := relevant(tt.change); got != tt.want {
			t.Errorf("%s: relevant = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestBindingRecords(t *testing.T) {
	b := binding{Subject: "ops", GroupID: "g1", ExternalID: "8aa1", DisplayName: "Ops / Team"}
	v, ok := encodeBinding(b)
	if !ok {
		t.Fatal("encode refused a plain binding")
	}
	if got, ok := decodeBinding(v); !ok || got != b {
		t.Fatalf("round trip = %+v, %v; want %+v", got, ok, b)
	}
	if _, ok := encodeBinding(binding{Subject: "a\x00b", GroupID: "g"}); ok {
		t.Error("encode accepted a NUL in a field")
	}
	for _, damaged := range []string{"", "v1", "v2\x00ops\x00g\x00\x00Ops", "v1\x00ops\x00\x00\x00Ops", `{"groupId":"g"}`} {
		if got, ok := decodeBinding(damaged); ok {
			t.Errorf("decodeBinding(%q) = %+v, want damaged", damaged, got)
		}
	}
}

func FuzzDecodeBinding(f *testing.F) {
	v, _ := encodeBinding(binding{Subject: "ops", GroupID: "g1", ExternalID: "x", DisplayName: "Ops"})
	f.Add(v)
	f.Add("v1\x00\x00g\x00\x00")
	f.Fuzz(func(t *testing.T, v string) {
		b, ok := decodeBinding(v)
		if !ok {
			return
		}
		again, ok := encodeBinding(b)
		if !ok {
			// Only the last field may hold the separator after a decode.
			return
		}
		if b2, ok := decodeBinding(again); !ok || b2 != b {
			t.Fatalf("re-encoding %+v gave %q which decodes to %+v, %v", b, again, b2, ok)
		}
	})
}
