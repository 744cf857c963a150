package spec

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/spec/golden"
)

// badCases lists every directory of testdata/bad. structural marks mistakes a
// JSON Schema can see in a single document; the others need the loader
// (references across documents, files, the environment, keys).
var badCases = map[string]struct {
	structural bool
}{
	"bad-app-version-syntax":   {structural: true},
	"bad-duration":             {structural: true},
	"bad-sha256":               {structural: true},
	"cert-file-missing":        {},
	"cert-path-escape":         {},
	"dangling-role":            {},
	"dangling-version":         {},
	"duplicate-name":           {},
	"duplicate-token-name":     {},
	"empty-name":               {structural: true},
	"garbage-cert":             {},
	"idp-cert-with-key":        {structural: true},
	"inline-private-key":       {structural: true},
	"inline-private-key-field": {structural: true},
	"invalid-yaml":             {structural: true},
	"key-mismatch":             {},
	"many-errors":              {structural: true},
	"metadata-file-and-url":    {structural: true},
	"missing-apiversion":       {structural: true},
	"no-grant":                 {structural: true},
	"plaintext-token":          {structural: true},
	"redefined-builtin":        {structural: true},
	"relative-base-url":        {structural: true},
	"short-token-env":          {},
	"skew-too-large":           {},
	"subject-both":             {structural: true},
	"two-scim":                 {},
	"unknown-field":            {structural: true},
	"unknown-kind":             {structural: true},
	"unknown-user-attribute":   {structural: true},
	"unquoted-version":         {structural: true},
	"unset-env":                {},
	"wrong-apiversion":         {structural: true},
	"wrong-usage-cert":         {},
}

func caseDirs(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

// loadCase copies a testdata case, adds the generated key material and loads it.
func loadCase(t *testing.T, dir string) (*Set, error) {
	t.Helper()
	root := copyTree(t, dir)
	env := writeFixtures(t, root)
	return Load(context.Background(), root, LoadOptions{Getenv: getenvFrom(env), Now: testNow})
}

func TestLoadBad(t *testing.T) {
	dirs := caseDirs(t, filepath.Join("testdata", "bad"))
	if len(dirs) < 20 {
		t.Fatalf("only %d bad cases", len(dirs))
	}
	for _, name := range dirs {
		t.Run(name, func(t *testing.T) {
			if _, ok := badCases[name]; !ok {
				t.Fatalf("testdata/bad/%s has no entry in badCases", name)
			}
			set, err := loadCase(t, filepath.Join("testdata", "bad", name))
			if err == nil {
				t.Fatalf("Load succeeded with %d documents, want errors", len(set.Docs))
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error %T is not an ErrorList", err)
			}
			for _, e := range list {
				if e.Pos.File == "" || e.Pos.Line == 0 || e.Pos.Column == 0 {
					t.Errorf("error without a position: %v", e)
				}
			}
			golden.Check(t, filepath.Join("testdata", "bad", name+".golden"), []byte(err.Error()+"\n"))
		})
	}
	for name := range badCases {
		if !slices.Contains(dirs, name) {
			t.Errorf("badCases lists %s, which has no directory", name)
		}
	}
}

// TestLoadReportsEverything loads a tree with mistakes in three files and
// expects each of them, not only the first.
func TestLoadReportsEverything(t *testing.T) {
	_, err := loadCase(t, filepath.Join("testdata", "bad", "many-errors"))
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("got %v, want an ErrorList", err)
	}
	files := map[string]int{}
	for _, e := range list {
		files[e.Pos.File]++
	}
	for _, f := range []string{"apps.yaml", "scim.yaml", "nested/assign.yaml"} {
		if files[f] < 2 {
			t.Errorf("%s: %d errors reported, want at least 2 (all: %v)", f, files[f], files)
		}
	}
	var one *Error
	if !errors.As(err, &one) || !errors.Is(one, ErrInvalid) {
		t.Errorf("errors.As(*Error) = %v; the single errors must be reachable and match ErrInvalid", one)
	}
}

func TestLoadGoodFull(t *testing.T) {
	set, err := loadCase(t, filepath.Join("testdata", "good", "full"))
	if err != nil {
		t.Fatal(err)
	}
	k := fixtures(t)
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

	scim := set.Scim()
	if scim == nil {
		t.Fatal("Scim() = nil")
	}
	if scim.BasePath != DefaultScimBasePath {
		t.Errorf("basePath = %q, want the default", scim.BasePath)
	}
	wantTokens := map[string]string{
		"demo":      "cefbcfe77053847ab41cda3dcb6b5e063774f1f0a53e51d018c92b58f35caec9",
		"from-env":  sum("env-token-0123456789-abcdefghijklmnopqrstuvwxyz"),
		"from-file": sum("file-token_0123456789_abcdefghijklmnopqrstuvwxyz"),
	}
	for _, tok := range scim.Tokens {
		if tok.SHA256 != wantTokens[tok.Name] {
			t.Errorf("token %s: sha256 = %s, want %s", tok.Name, tok.SHA256, wantTokens[tok.Name])
		}
	}
	if want := []string{"userName", "active", `emails[type eq "work"].value`, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}; !slices.Equal(scim.UserAttributes, want) {
		t.Errorf("userAttributes = %q, want %q (userName always kept)", scim.UserAttributes, want)
	}

	certs := []struct {
		name    string
		pair    string
		wantKey bool
	}{
		{"entra-signing", "idp", false},
		{"entra-signing-der", "idp", false},
		{"sp-signing", "sp", true},
		{"sp-encryption", "enc", true},
		{"tls", "tls", true},
	}
	for _, c := range certs {
		got := set.Certificate(c.name)
		if got == nil {
			t.Errorf("Certificate(%q) = nil", c.name)
			continue
		}
		want := k[c.pair].cert
		if fp := sha256.Sum256(want.Raw); got.Fingerprint != hex.EncodeToString(fp[:]) {
			t.Errorf("%s: fingerprint %s, want %x", c.name, got.Fingerprint, fp)
		}
		if got.Subject != want.Subject.String() || !got.NotAfter.Equal(want.NotAfter) || !slices.Equal(got.DER, want.Raw) {
			t.Errorf("%s: subject/notAfter/DER not filled: %q %v", c.name, got.Subject, got.NotAfter)
		}
		if (got.PrivateKey != nil) != c.wantKey || (got.KeyFingerprint != "") != c.wantKey {
			t.Errorf("%s: private key loaded = %v, want %v", c.name, got.PrivateKey != nil, c.wantKey)
		}
	}

	saml := set.SAML()
	if saml == nil {
		t.Fatal("SAML() = nil")
	}
	if !strings.Contains(string(saml.IDP.MetadataXML), "EntityDescriptor") {
		t.Errorf("metadata not read: %q", saml.IDP.MetadataXML)
	}
	if saml.AllowedClockSkew.D().String() != "1m30s" || saml.SessionLifetime.D() != DefaultSessionLifetime || saml.NameIDFormat != DefaultNameIDFormat {
		t.Errorf("SAML defaults: skew %s lifetime %s nameID %s", saml.AllowedClockSkew, saml.SessionLifetime, saml.NameIDFormat)
	}

	// Builtin roles join the set, after the spec's own documents of earlier kinds.
	admin := set.Get(KindRole, "Administrator")
	if admin == nil || !admin.Spec.(*Role).Builtin || admin.Pos.File != "" {
		t.Errorf("builtin role Administrator = %+v", admin)
	}
	if rm := set.Get(KindRole, "Release Manager"); rm == nil || rm.Spec.(*Role).Builtin || rm.Pos.File != "apps/roles.yaml" {
		t.Errorf("Release Manager = %+v", rm)
	}
	if got := len(set.OfKind(KindRole)); got != len(BuiltinRoles)+1 {
		t.Errorf("%d roles, want %d", got, len(BuiltinRoles)+1)
	}
	var order []string
	for _, d := range set.Docs {
		order = append(order, d.Ref().String())
	}
	if !slices.IsSortedFunc(set.Docs, func(a, b *Document) int {
		if c := kindOrder[a.Kind] - kindOrder[b.Kind]; c != 0 {
			return c
		}
		return strings.Compare(a.Metadata.Name, b.Metadata.Name)
	}) {
		t.Errorf("documents not sorted by kind then name: %v", order)
	}
	if len(set.Docs) != 1+5+1+2+len(BuiltinRoles)+1+2 {
		t.Errorf("%d documents (dot-files and non-YAML must be skipped): %v", len(set.Docs), order)
	}
	if len(set.Revision) != 64 {
		t.Errorf("revision %q", set.Revision)
	}
	if want := []string{`scim.yaml:11:15: ScimProvisioning/entra: token "demo" is the published demo token; replace it before connecting a real tenant`}; !slices.Equal(set.Warnings, want) {
		t.Errorf("warnings = %q, want %q", set.Warnings, want)
	}
}

func TestLoadExample(t *testing.T) {
	set, err := Load(context.Background(), filepath.Join("..", "examples", "entra"), LoadOptions{Getenv: getenvFrom(nil)})
	if err != nil {
		t.Fatal(err)
	}
	scim := set.Scim()
	if scim == nil || !scim.Enabled || scim.BasePath != "/api/scim/v2" || len(scim.Tokens) != 1 {
		t.Fatalf("scim = %+v", scim)
	}
	if got, want := scim.Tokens[0].SHA256, sum256("idrecon-demo-token-for-make-run-only-0123456789"); got != want {
		t.Errorf("demo token hash %s, want %s", got, want)
	}
	// The IdP certificate belongs to the SAML demo and may be renewed, so only
	// the demo token warning is pinned.
	if !slices.ContainsFunc(set.Warnings, func(w string) bool {
		return strings.HasPrefix(w, "scim.yaml:") && strings.Contains(w, `token "entra" is the published demo token`)
	}) {
		t.Errorf("warnings = %q, want one about the demo token", set.Warnings)
	}
	if set.SAML() == nil || len(set.SAML().IDP.MetadataXML) == 0 {
		t.Error("SAML metadata not loaded")
	}
	for _, ref := range []Ref{
		{KindCertificate, "entra-signing"},
		{KindApplication, "webgoat"},
		{KindApplication, "payments-api"},
		{KindRole, "Release Manager"},
		{KindAccessAssignment, "alice"},
	} {
		if set.Get(ref.Kind, ref.Name) == nil {
			t.Errorf("%s missing", ref)
		}
	}
}

func sum256(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
