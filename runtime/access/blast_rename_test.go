package access_test

import (
	"reflect"
	"testing"

	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/spec"
)

// TestBlastRadiusOfGroupSubjectRenames: the blast radius of a plan that
// renames the group an assignment names, or the assignment itself, after
// Entra renamed the bound group and a new group took its old name.
func TestBlastRadiusOfGroupSubjectRenames(t *testing.T) {
	w := baseWorld(t)
	ops := w.group("Ops")
	w.member(ops, w.user("old0", true))
	w.member(ops, w.user("old1", true))
	w.assign("ops", "group:Ops", []string{"View Only"}, "ledger/1")
	w.bind()
	w.rename(ops, "Operations")
	newer := w.group("Ops")
	w.member(newer, w.user("new0", true))
	other := w.group("Platform")
	w.member(other, w.user("plat0", true))
	w.bind()

	gainLose := func(gained, lost []string) access.Impact {
		imp := access.Impact{Users: len(gained) + len(lost), Changes: []access.AccessChange{}}
		for _, item := range [][2]string{{"role", "View Only"}, {"version", "ledger/1"}} {
			c := access.AccessChange{Kind: item[0], Name: item[1], Gained: len(gained), Lost: len(lost), GainedBy: gained, LostBy: lost}
			imp.Changes = append(imp.Changes, c)
		}
		return imp
	}
	none := access.Impact{Changes: []access.AccessChange{}}
	tests := []struct {
		name  string
		after []*spec.Document
		want  access.Impact
	}{
		{"the spec follows Entra's rename", []*spec.Document{assignDoc("ops", "group:Operations", []string{"View Only"}, "ledger/1")}, none},
		{"the spec follows it in another case", []*spec.Document{assignDoc("ops", "group:OPERATIONS", []string{"View Only"}, "ledger/1")}, none},
		{"the spec keeps the old name", []*spec.Document{assignDoc("ops", "group:Ops", []string{"View Only"}, "ledger/1")}, none},
		{"the spec names another group", []*spec.Document{assignDoc("ops", "group:Platform", []string{"View Only"}, "ledger/1")},
			gainLose([]string{"plat0"}, []string{"old0", "old1"})},
		{"the assignment is renamed: the new one matches by name", []*spec.Document{assignDoc("ops-team", "group:Ops", []string{"View Only"}, "ledger/1")},
			gainLose([]string{"new0"}, []string{"old0", "old1"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			after := append(tt.after, doc(spec.KindRole, "View Only", &spec.Role{}))
			after = append(after, doc(spec.KindApplication, "ledger", &spec.Application{Versions: []string{"1"}}),
				doc(spec.KindApplication, "payments", &spec.Application{Versions: []string{"1.0", "2.0"}}))
			got, err := access.BlastRadius(w.st.Read(), nil, after)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("impact:\n got %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}
