package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
	"github.com/idrecon/idrecon/spec/golden"
)

const (
	tokenA = "cefbcfe77053847ab41cda3dcb6b5e063774f1f0a53e51d018c92b58f35caec9"
	tokenB = "0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6"
)

// specA is the base spec of the plan scenarios. Certificate material is made
// up: the reconciler compares and fingerprints it but never parses it.
func specA() *spec.Set {
	return newSet("rev-a",
		doc(spec.KindScimProvisioning, "entra", &spec.ScimProvisioning{
			Enabled: true, BasePath: spec.DefaultScimBasePath,
			Tokens:         []spec.ScimToken{{Name: "entra", SHA256: tokenA}},
			UserAttributes: []string{"userName", "active", `emails[type eq "work"].value`},
		}),
		doc(spec.KindCertificate, "entra-signing", &spec.Certificate{
			Usage: spec.UsageSamlIDPSigning, File: "idp/entra-signing.cer",
			Fingerprint: "3f9a0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f",
			Subject:     "CN=Microsoft Azure Federated SSO Certificate",
			NotBefore:   time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
			NotAfter:    time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC),
			DER:         []byte("not a real certificate, version 1"),
		}),
		doc(spec.KindSamlServiceProvider, "entra", &spec.SamlServiceProvider{
			Enabled: true, EntityID: "https://appsec.example.com/saml", BaseURL: "https://appsec.example.com",
			IDP: spec.SamlIDP{
				MetadataFile:        "idp/federationmetadata.xml",
				MetadataXML:         []byte("<EntityDescriptor/>"),
				SigningCertificates: []string{"entra-signing"},
			},
			AllowedClockSkew: spec.Duration(2 * time.Minute),
		}),
		doc(spec.KindApplication, "webgoat", &spec.Application{Versions: []string{"1.0"}}),
		doc(spec.KindApplication, "payments-api", &spec.Application{Versions: []string{"2025.1"}}),
		doc(spec.KindRole, "Developer", &spec.Role{Builtin: true, Description: "Works on assigned versions.", Permissions: []string{"version.view", "issue.audit"}}),
		doc(spec.KindRole, "Release Manager", &spec.Role{Description: "Ships releases.", Permissions: []string{"version.create", "version.edit"}}),
		doc(spec.KindAccessAssignment, "release-managers", &spec.AccessAssignment{
			Subject: spec.Subject{Group: "Release Managers"}, Roles: []string{"Release Manager"},
			ApplicationVersions: []string{"webgoat/*"},
		}),
		doc(spec.KindAccessAssignment, "alice", &spec.AccessAssignment{
			Subject: spec.Subject{User: "alice@contoso.com"}, Roles: []string{"Developer"},
			ApplicationVersions: []string{"payments-api/2025.1"},
		}),
	)
}

// specB changes specA: a new version, a rotated token and certificate, a
// new permission.
func specB() *spec.Set {
	s := specA()
	s.Revision = "rev-b"
	s.Get(spec.KindApplication, "webgoat").Spec = &spec.Application{Versions: []string{"1.0", "2.0"}}
	s.Get(spec.KindScimProvisioning, "entra").Spec = &spec.ScimProvisioning{
		Enabled: true, BasePath: spec.DefaultScimBasePath,
		Tokens: []spec.ScimToken{
			{Name: "entra", SHA256: tokenB},
			{Name: "entra-2026", ValueFrom: &spec.ValueFrom{Env: "IDRECON_SCIM_TOKEN_2026"}, SHA256: tokenA},
		},
		UserAttributes: []string{"userName", "active", `emails[type eq "work"].value`},
	}
	c := *s.Certificate("entra-signing")
	c.Fingerprint = "77aa0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f"
	c.NotAfter = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c.DER = []byte("not a real certificate, version 2")
	s.Get(spec.KindCertificate, "entra-signing").Spec = &c
	s.Get(spec.KindRole, "Release Manager").Spec = &spec.Role{Description: "Ships releases.", Permissions: []string{"version.create", "version.edit", "report.view"}}
	return s
}

// specC removes an application and an assignment from specA.
func specC() *spec.Set {
	a := specA()
	var docs []*spec.Document
	for _, d := range a.Docs {
		if d.Metadata.Name != "payments-api" && d.Metadata.Name != "alice" {
			docs = append(docs, d)
		}
	}
	return newSet("rev-c", docs...)
}

// specWithoutScim deletes specA's enabled ScimProvisioning, which the
// guard refuses.
func specWithoutScim() *spec.Set {
	var docs []*spec.Document
	for _, d := range specA().Docs {
		if d.Kind != spec.KindScimProvisioning {
			docs = append(docs, d)
		}
	}
	return newSet("rev-d", docs...)
}

func TestPlanGolden(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		mode  DriftMode
		setup func(t *testing.T, r *Reconciler, s *store.Store)
		plan  *spec.Set
	}{
		{name: "create", plan: specA()},
		{name: "update", setup: applyA, plan: specB()},
		{name: "delete", setup: applyA, plan: specC()},
		{name: "noop", setup: applyA, plan: specA()},
		{name: "drift", setup: applyAThenDrift, plan: specA()},
		{name: "drift-report", mode: DriftReport, setup: applyAThenDrift, plan: specA()},
		// The guard refuses deleting the enabled ScimProvisioning: the
		// plan lists what the spec asks for, drift included, and says that
		// none of it, the drift correction neither, will be made.
		{name: "refused", setup: applyAThenDrift, plan: specWithoutScim()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			r := newReconciler(t, Config{Store: s, DriftMode: tt.mode})
			if tt.setup != nil {
				tt.setup(t, r, s)
			}
			p, err := r.Plan(ctx, tt.plan)
			if err != nil {
				t.Fatal(err)
			}
			text, js := render(t, p)
			golden.Check(t, filepath.Join("testdata", "plan-"+tt.name+".txt.golden"), text)
			golden.Check(t, filepath.Join("testdata", "plan-"+tt.name+".json.golden"), js)

			// The CLI decodes the daemon's JSON and renders it again.
			var back Plan
			if err := json.Unmarshal(js, &back); err != nil {
				t.Fatal(err)
			}
			if text2, _ := render(t, &back); !bytes.Equal(text2, text) {
				t.Errorf("decoded plan renders differently:\n%s", text2)
			}
			// The JSON summary counts what the text's "Plan:" line counts,
			// the changes Apply makes, with the kept drift apart: a CI bot
			// reading it must not take kept drift for changes.
			var js2 struct {
				Summary map[string]int `json:"summary"`
			}
			if err := json.Unmarshal(js, &js2); err != nil {
				t.Fatal(err)
			}
			made := p.Made()
			want := map[string]int{"create": made.Create, "update": made.Update, "delete": made.Delete,
				"kept": len(p.Kept()), "drift": len(p.Drifted())}
			if !reflect.DeepEqual(js2.Summary, want) {
				t.Errorf("JSON summary %v, want %v (what Apply makes, kept apart)", js2.Summary, want)
			}
			if p.Empty() != (tt.name == "noop") {
				t.Errorf("Empty() = %v", p.Empty())
			}
			for _, secret := range []string{tokenA, tokenB, "not a real certificate", "EntityDescriptor"} {
				if strings.Contains(string(text)+string(js), secret) {
					t.Errorf("plan shows secret material %q", secret)
				}
			}
		})
	}
}

func applyA(t *testing.T, r *Reconciler, _ *store.Store) {
	t.Helper()
	if _, err := r.Apply(context.Background(), specA()); err != nil {
		t.Fatal(err)
	}
}

// applyAThenDrift applies specA, then changes, deletes and creates a
// resource through the back door, as the admin API does.
func applyAThenDrift(t *testing.T, r *Reconciler, s *store.Store) {
	t.Helper()
	applyA(t, r, s)
	adminWrite(t, s, spec.KindApplication, "webgoat", &spec.Application{Versions: []string{"1.0", "3.0-hotfix"}})
	adminDelete(t, s, spec.KindRole, "Release Manager")
	adminWrite(t, s, spec.KindAccessAssignment, "backdoor", &spec.AccessAssignment{
		Subject: spec.Subject{User: "mallory@contoso.com"}, Roles: []string{"Administrator"},
	})
}

// A name written out of band cannot forge plan lines.
func TestPlanTextQuotesUnprintableNames(t *testing.T) {
	p := &Plan{Deletes: []Change{{Kind: spec.KindRole, Name: "x\n+ Role/Fake", Drift: true}}}
	p.summarise()
	var out bytes.Buffer
	if err := p.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "\n+ Role/Fake") || !strings.Contains(out.String(), `- Role/"x\n+ Role/Fake"`) {
		t.Errorf("unprintable name not quoted:\n%s", out.String())
	}
}

// A metadataURL may carry a token in its query (some IdPs, or a proxy in
// front of one, take "?token="): plans show it with the query values
// hidden, in text and JSON, when it is created and when it changes, while
// the store keeps the real URL, which the daemon fetches.
func TestPlanRedactsURLSecrets(t *testing.T) {
	const secret, rotated = "S3CRETQ", "R0TATED"
	withURL := func(rev, token string) *spec.Set {
		s := specA()
		s.Revision = rev
		sp := *s.Get(spec.KindSamlServiceProvider, "entra").Spec.(*spec.SamlServiceProvider)
		sp.IDP.MetadataFile, sp.IDP.MetadataXML = "", nil
		sp.IDP.MetadataURL = "https://idp.example.com/federationmetadata.xml?appid=42&token=" + token
		s.Get(spec.KindSamlServiceProvider, "entra").Spec = &sp
		return s
	}
	ctx := context.Background()
	s := newStore(t)
	r := newReconciler(t, Config{Store: s})
	for _, step := range []struct {
		name string
		set  *spec.Set
	}{
		{"create", withURL("rev-1", secret)},
		{"rotate", withURL("rev-2", rotated)},
	} {
		p, err := r.Apply(ctx, step.set)
		if err != nil {
			t.Fatal(err)
		}
		text, js := render(t, p)
		out := string(text) + string(js)
		if strings.Contains(out, secret) || strings.Contains(out, rotated) {
			t.Errorf("%s: the plan shows the token:\n%s", step.name, out)
		}
		if !strings.Contains(string(text), "token=REDACTED") {
			t.Errorf("%s: the plan does not show the URL redacted:\n%s", step.name, text)
		}
	}
	got := resource(t, s, spec.KindSamlServiceProvider, "entra").Spec.(*spec.SamlServiceProvider).IDP.MetadataURL
	if !strings.HasSuffix(got, "token="+rotated) {
		t.Errorf("the store holds metadataURL %q, want the rotated token in it", got)
	}
}

// render returns p as text and as JSON.
func render(t *testing.T, p *Plan) (text, js []byte) {
	t.Helper()
	var tb, jb bytes.Buffer
	if err := p.WriteText(&tb); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteJSON(&jb); err != nil {
		t.Fatal(err)
	}
	return tb.Bytes(), jb.Bytes()
}
