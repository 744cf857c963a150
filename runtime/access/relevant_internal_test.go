package access

import (
	"testing"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/idrecon/idrecon/runtime/store"
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
		{"membership", memdb.Change{Table: store.TableMemberships, After: &store.Membership{GroupID: "g", MemberID: "u"}}, false},
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
