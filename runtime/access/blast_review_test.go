package access_test

import (
	"reflect"
	"slices"
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
			// A spec set always holds the builtin roles, so its Application
			// documents are every application, even when there are none.
			name: "the last application the spec drops is gone for an assignment the apply keeps",
			setup: func(w *world) {
				w.user("solo", true)
				w.assign("adhoc", "user:solo", []string{"View Only"}, "ledger/1") // drift, kept
			},
			after: builtinRoleDocs(),
			keep:  []spec.Ref{{Kind: spec.KindAccessAssignment, Name: "adhoc"}},
			apply: func(w *world) {
				w.deleteResource(spec.KindApplication, "payments")
				w.deleteResource(spec.KindApplication, "ledger")
			},
			want: access.Impact{Users: 1, Changes: []access.AccessChange{
				{Kind: "version", Name: "ledger/1", Lost: 1, LostBy: []string{"solo"}},
			}},
		},
		{
			name: "an application the apply keeps stays when the spec has none",
			setup: func(w *world) {
				w.user("solo", true)
				w.assign("adhoc", "user:solo", []string{"View Only"}, "ledger/1", "payments/1.0")
			},
			after: builtinRoleDocs(),
			keep:  []spec.Ref{{Kind: spec.KindAccessAssignment, Name: "adhoc"}, {Kind: spec.KindApplication, Name: "ledger"}},
			apply: func(w *world) { w.deleteResource(spec.KindApplication, "payments") },
			want: access.Impact{Users: 1, Changes: []access.AccessChange{
				{Kind: "version", Name: "payments/1.0", Lost: 1, LostBy: []string{"solo"}},
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
			before := heldBy(w.forUser("solo"))
			got, err := access.BlastRadius(w.st.Read(), nil, tt.after, tt.keep...)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("impact:\n got %+v\nwant %+v", *got, tt.want)
			}
			tt.apply(w)
			// What the access answers after the apply agrees.
			after := heldBy(w.forUser("solo"))
			var lost []string
			for _, item := range before {
				if !slices.Contains(after, item) {
					lost = append(lost, item)
				}
			}
			var said []string
			for _, c := range tt.want.Changes {
				if c.Lost > 0 {
					said = append(said, c.Kind+" "+c.Name)
				}
			}
			if !slices.Equal(lost, said) {
				t.Errorf("the apply took %v from solo, the blast radius says %v", lost, said)
			}
		})
	}
}

// heldBy lists what the blast radius counts for a user: the roles, and the
// versions when a role reaches them, as "role NAME" and "version APP/V",
// sorted.
func heldBy(e *access.Effective) []string {
	var out []string
	for _, r := range e.RoleNames() {
		out = append(out, "role "+r)
	}
	if len(out) > 0 {
		for _, v := range e.VersionNames() {
			out = append(out, "version "+v)
		}
	}
	return out
}
