package spec

import "testing"

// TestSetByHand checks the getters on a Set built without Load (no index),
// as tests elsewhere build them, and on a nil Set.
func TestSetByHand(t *testing.T) {
	scim := &ScimProvisioning{Enabled: true}
	set := &Set{Docs: []*Document{
		{Kind: KindApplication, Metadata: Metadata{Name: "b"}, Spec: &Application{}},
		{Kind: KindScimProvisioning, Metadata: Metadata{Name: "s"}, Spec: scim},
		{Kind: KindApplication, Metadata: Metadata{Name: "a"}, Spec: &Application{}},
	}}
	tests := []struct {
		name string
		ok   bool
	}{
		{"Get finds", set.Get(KindApplication, "a") == set.Docs[2]},
		{"Get misses", set.Get(KindRole, "a") == nil},
		{"OfKind", len(set.OfKind(KindApplication)) == 2},
		{"Scim", set.Scim() == scim},
		{"SAML absent", set.SAML() == nil},
		{"Certificate absent", set.Certificate("x") == nil},
		{"nil Get", (*Set)(nil).Get(KindRole, "x") == nil},
		{"nil Scim", (*Set)(nil).Scim() == nil},
		{"nil OfKind", (*Set)(nil).OfKind(KindRole) == nil},
	}
	for _, tt := range tests {
		if !tt.ok {
			t.Errorf("%s: wrong result", tt.name)
		}
	}
}
