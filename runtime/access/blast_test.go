package access_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/spec"
)

func doc(kind, name string, s any) *spec.Document {
	return &spec.Document{APIVersion: spec.APIVersion, Kind: kind, Metadata: spec.Metadata{Name: name}, Spec: s}
}

func assignDoc(name, subject string, roles []string, versions ...string) *spec.Document {
	return doc(spec.KindAccessAssignment, name, assignment(subject, roles, versions...))
}

func TestBlastRadius(t *testing.T) {
	w := baseWorld(t)
	devs, ops := w.group("Developers"), w.group("Ops")
	for i := range 5 {
		w.member(devs, w.user(fmt.Sprintf("dev%d", i), i != 4)) // dev4 is disabled
	}
	for i := range 2 {
		w.member(ops, w.user(fmt.Sprintf("ops%d", i), true))
	}
	w.user("solo", true)
	live := []*spec.Document{
		assignDoc("devs", "group:Developers", dev, "payments/1.0"),
		assignDoc("ops", "group:Ops", []string{"View Only"}, "ledger/1"),
	}
	for _, d := range live {
		w.resource(d.Kind, d.Metadata.Name, d.Spec)
	}

	tests := []struct {
		name          string
		before, after []*spec.Document
		want          access.Impact
	}{
		{
			name: "no change", before: nil, after: live,
			want: access.Impact{Changes: []access.AccessChange{}},
		},
		{
			name:   "widen a group to every version",
			before: nil,
			after: []*spec.Document{
				assignDoc("devs", "group:Developers", dev, "payments/*"),
				live[1],
			},
			want: access.Impact{Users: 5, Changes: []access.AccessChange{
				{Kind: "version", Name: "payments/2.0", Gained: 5, GainedBy: []string{"dev0", "dev1", "dev2", "dev3", "dev4"}},
			}},
		},
		{
			name:   "drop an assignment, add a direct one",
			before: live,
			after: []*spec.Document{
				live[0],
				assignDoc("solo", "user:solo", []string{"Manager"}, "ledger/1"),
			},
			want: access.Impact{Users: 3, Changes: []access.AccessChange{
				{Kind: "role", Name: "Manager", Gained: 1, GainedBy: []string{"solo"}},
				{Kind: "role", Name: "View Only", Lost: 2, LostBy: []string{"ops0", "ops1"}},
				{Kind: "version", Name: "ledger/1", Gained: 1, Lost: 2, GainedBy: []string{"solo"}, LostBy: []string{"ops0", "ops1"}},
			}},
		},
		{
			name:   "a new version reaches app/* holders",
			before: nil,
			after: []*spec.Document{
				assignDoc("devs", "group:Developers", dev, "payments/*"),
				live[1],
				doc(spec.KindApplication, "payments", &spec.Application{Versions: []string{"1.0", "2.0", "3.0"}}),
				doc(spec.KindApplication, "ledger", &spec.Application{Versions: []string{"1"}}),
			},
			want: access.Impact{Users: 5, Changes: []access.AccessChange{
				{Kind: "version", Name: "payments/2.0", Gained: 5, GainedBy: []string{"dev0", "dev1", "dev2", "dev3", "dev4"}},
				{Kind: "version", Name: "payments/3.0", Gained: 5, GainedBy: []string{"dev0", "dev1", "dev2", "dev3", "dev4"}},
			}},
		},
		{
			name:   "a version without any role is no access",
			before: nil,
			after:  append(live[:2:2], assignDoc("solo", "user:solo", nil, "ledger/1")),
			want:   access.Impact{Changes: []access.AccessChange{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := access.BlastRadius(w.st.Read(), tt.before, tt.after)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("impact:\n got %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}
