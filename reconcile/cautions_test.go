package reconcile

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/spec"
)

// TestPlanCautionsWhatEntraDoesNotFollow: a plan says which of its changes
// break Entra's side of the connection until an admin changes it too: every
// token replaced at once, a moved SCIM endpoint, a changed SAML entityID or
// baseURL. A rotation that keeps the old token, or a change while switched
// off, says nothing.
func TestPlanCautionsWhatEntraDoesNotFollow(t *testing.T) {
	scim := func(mod func(*spec.ScimProvisioning)) *spec.Document {
		s := &spec.ScimProvisioning{Enabled: true, BasePath: spec.DefaultScimBasePath,
			Tokens: []spec.ScimToken{{Name: "entra", SHA256: strings.Repeat("a", 64)}}}
		if mod != nil {
			mod(s)
		}
		return doc(spec.KindScimProvisioning, "entra", s)
	}
	saml := func(mod func(*spec.SamlServiceProvider)) *spec.Document {
		s := &spec.SamlServiceProvider{Enabled: true, EntityID: "https://sp.example/saml/metadata", BaseURL: "https://sp.example/"}
		if mod != nil {
			mod(s)
		}
		return doc(spec.KindSamlServiceProvider, "entra", s)
	}
	newToken := spec.ScimToken{Name: "entra-2027", SHA256: strings.Repeat("b", 64)}
	for _, tc := range []struct {
		name string
		next []*spec.Document
		want []string // in the cautions, one each; none wants no caution
	}{
		{"unchanged", []*spec.Document{scim(nil), saml(nil)}, nil},
		{"every token replaced", []*spec.Document{scim(func(s *spec.ScimProvisioning) { s.Tokens = []spec.ScimToken{newToken} }), saml(nil)},
			[]string{"ScimProvisioning/entra replaces every token"}},
		{"a token added", []*spec.Document{scim(func(s *spec.ScimProvisioning) { s.Tokens = append(s.Tokens, newToken) }), saml(nil)}, nil},
		{"switched off while replaced", []*spec.Document{scim(func(s *spec.ScimProvisioning) { s.Enabled, s.Tokens = false, []spec.ScimToken{newToken} }), saml(nil)}, nil},
		{"base path moved", []*spec.Document{scim(func(s *spec.ScimProvisioning) { s.BasePath = "/scim" }), saml(nil)},
			[]string{"Tenant URL is https://<this daemon's address>/scim"}},
		{"entityID", []*spec.Document{scim(nil), saml(func(s *spec.SamlServiceProvider) { s.EntityID = "urn:new" })},
			[]string{`Identifier (Entity ID) is "urn:new"`}},
		{"baseURL", []*spec.Document{scim(nil), saml(func(s *spec.SamlServiceProvider) { s.BaseURL = "https://new.example/" })},
			[]string{"Reply URL is https://new.example/saml/acs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			r := newReconciler(t, Config{Store: newStore(t)})
			if _, err := r.Apply(ctx, newSet("r1", appDoc(), scim(nil), saml(nil))); err != nil {
				t.Fatal(err)
			}
			p, err := r.Plan(ctx, newSet("r2", append([]*spec.Document{appDoc()}, tc.next...)...))
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Cautions) != len(tc.want) {
				t.Fatalf("cautions %q, want %d", p.Cautions, len(tc.want))
			}
			var text bytes.Buffer
			if err := p.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			for i, w := range tc.want {
				if !strings.Contains(p.Cautions[i], w) {
					t.Errorf("caution %q, want one saying %q", p.Cautions[i], w)
				}
				if !strings.Contains(text.String(), "  ! "+p.Cautions[i]) {
					t.Errorf("the plan's text lacks the caution:\n%s", text.String())
				}
			}
		})
	}
}
