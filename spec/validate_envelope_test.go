package spec

import (
	"errors"
	"strings"
	"testing"
)

// TestValidateChecksTheEnvelope: Validate is the one validation path for
// documents that do not come from YAML (the admin API, the runtime), and
// must refuse what Load refuses about a document's envelope. It dropped a
// document without a name from the Set without a word, dropped any Role
// marked Builtin whatever its name, took a document whose spec is missing
// or not its kind's type, and panicked when another document referred to
// such a Certificate or Application.
func TestValidateChecksTheEnvelope(t *testing.T) {
	doc := func(kind, name string, spec any) *Document {
		return &Document{APIVersion: APIVersion, Kind: kind, Metadata: Metadata{Name: name}, Spec: spec,
			Pos: Position{File: kind + "/" + name}}
	}
	saml := func() *Document {
		return doc(KindSamlServiceProvider, "sp", &SamlServiceProvider{EntityID: "urn:x", BaseURL: "https://sp.example",
			IDP: SamlIDP{MetadataURL: "https://idp.example/md", SigningCertificates: []string{"idp"}}})
	}
	grant := doc(KindAccessAssignment, "a", &AccessAssignment{Subject: Subject{Group: "g"}, ApplicationVersions: []string{"app/1"}})
	tests := []struct {
		name string
		docs []*Document
		want string
	}{
		{"empty name", []*Document{doc(KindRole, "", &Role{Permissions: []string{"a"}})}, "metadata.name: required"},
		{"unknown kind", []*Document{doc("Robot", "r", &Role{Permissions: []string{"a"}})}, `kind: unknown kind "Robot"`},
		{"wrong apiVersion", []*Document{{APIVersion: "v1", Kind: KindRole, Metadata: Metadata{Name: "r"}, Spec: &Role{Permissions: []string{"a"}}, Pos: Position{File: "Role/r"}}}, `apiVersion: unsupported apiVersion "v1"`},
		{"nil spec", []*Document{doc(KindRole, "r", nil)}, "spec: required"},
		{"spec of another kind", []*Document{doc(KindRole, "r", &Application{Versions: []string{"1"}})}, "spec: a *spec.Application is not the spec of a Role"},
		{"spec not a pointer", []*Document{doc(KindRole, "r", Role{Permissions: []string{"a"}})}, "spec: a spec.Role is not the spec of a Role"},
		{"user role marked builtin", []*Document{doc(KindRole, "Custom", &Role{Builtin: true})}, "spec.permissions: at least one permission is required"},
		{"nil certificate referred to", []*Document{doc(KindCertificate, "idp", nil), saml()}, "Certificate/idp: spec: required"},
		{"certificate of another type referred to", []*Document{doc(KindCertificate, "idp", &Role{Permissions: []string{"a"}}), saml()}, "Certificate/idp: spec: a *spec.Role is not the spec of a Certificate"},
		{"nil application referred to", []*Document{doc(KindApplication, "app", nil), grant}, "Application/app: spec: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := Validate(tt.docs, LoadOptions{Getenv: getenvFrom(nil), Now: testNow})
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, %v\nwant an error containing %q", set, err, tt.want)
			}
		})
	}
}
