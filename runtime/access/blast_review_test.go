package access_test

import (
	"reflect"
	"testing"

	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/spec"
)

// builtinRoleDocs are the Role documents spec.Load adds to every set.
func builtinRoleDocs() []*spec.Document {
	var out []*spec.Document
	for name, r := range spec.BuiltinRoles {
		out = append(out, doc(spec.KindRole, name, &r))
	}
	return out
}

// TestBlastRadiusTellsWhatApplyLeaves checks the blast radius against the
// access the store answers once the apply it predicts is made.
func TestBlastRadiusTellsWhatApplyLeaves(t *testing.T) {
	tests := []struct {
		name string
		// setup writes the live store; after is the next revision, keep
		// what the apply leaves as it is; apply makes that apply.
		setup func(w *world)
		after []*spec.Document
		keep  []spec.Ref
		apply func(w *world)
		want  access.Impact
	}{
		{
			name: "a custom role the spec drops is gone for an assignment the apply keeps",
			setup: func(w *world) {
				w.resource(spec.KindRole, "Auditor", &spec.Role{Permissions: []string{"issue.audit"}})
				w.user("solo", true)
				w.assign("adhoc", "user:solo", []string{"Auditor"}) // drift, kept
			},
			after: builtinRoleDocs(),
			keep:  []spec.Ref{{Kind: spec.KindAccessAssignment, Name: "adhoc"}},
			apply: func(w *world) { w.deleteResource(spec.KindRole, "Auditor") },
			want: access.Impact{Users: 1, Changes: []access.AccessChange{
				{Kind: "role", Name: "Auditor", Lost: 1, LostBy: []string{"solo"}},
			}},
		},
		{
			name: "a custom role the apply keeps stays",
			setup: func(w *world) {
				w.resource(spec.KindRole, "Auditor", &spec.Role{Permissions: []string{"issue.audit"}})
				w.user("solo", true)
				w.assign("adhoc", "user:solo", []string{"Auditor"})
			},
			after: builtinRoleDocs(),
			keep:  []spec.Ref{{Kind: spec.KindAccessAssignment, Name: "adhoc"}, {Kind: spec.KindRole, Name: "Auditor"}},
			apply: func(w *world) {},
			want:  access.Impact{Changes: []access.AccessChange{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := baseWorld(t)
			tt.setup(w)
			got, err := access.BlastRadius(w.st.Read(), nil, tt.after, tt.keep...)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("impact:\n got %+v\nwant %+v", *got, tt.want)
			}
			tt.apply(w)
			// What the access answers after the apply agrees.
			e := w.forUser("solo")
			lost := len(tt.want.Changes) > 0
			if gotLost := len(e.RoleNames()) == 0; gotLost != lost {
				t.Errorf("after the apply solo's roles = %v, blast radius said lost = %v", e.RoleNames(), lost)
			}
		})
	}
}
