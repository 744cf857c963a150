package fields

import (
	"crypto/sha256"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/spec"
	"pgregory.net/rapid"
)

func paths(fs []Field) map[string]string {
	out := map[string]string{}
	for _, f := range fs {
		out[f.Path] = f.Display()
	}
	return out
}

// short is the fingerprint a plan shows for content.
func short(content string) string {
	sum := sha256.Sum256([]byte(content))
	return "sha256:" + hex.EncodeToString(sum[:])[:12]
}

func TestRender(t *testing.T) {
	const tokenHash = "CEFBCFE77053847AB41CDA3DCB6B5E063774F1F0A53E51D018C92B58F35CAEC9"
	no := false
	tests := []struct {
		name string
		in   any
		want map[string]string
	}{
		{
			name: "application list is one field",
			in:   &spec.Application{Versions: []string{"1.0", "2.0"}},
			want: map[string]string{"spec.versions": `["1.0", "2.0"]`},
		},
		{
			name: "nil list without omitempty renders empty",
			in:   &spec.Application{},
			want: map[string]string{"spec.versions": `[]`},
		},
		{
			name: "tokens keyed by name, hash shortened, valueFrom shown",
			in: &spec.ScimProvisioning{Enabled: true, Tokens: []spec.ScimToken{
				{Name: "entra", SHA256: tokenHash},
				{Name: "next", ValueFrom: &spec.ValueFrom{Env: "NEXT_TOKEN"}},
			}},
			want: map[string]string{
				"spec.enabled":                    "true",
				"spec.tokens[entra].name":         `"entra"`,
				"spec.tokens[entra].sha256":       "sha256:cefbcfe77053",
				"spec.tokens[next].name":          `"next"`,
				"spec.tokens[next].valueFrom.env": `"NEXT_TOKEN"`,
			},
		},
		{
			name: "certificate material only as fingerprints",
			in: &spec.Certificate{
				Usage:          spec.UsageSamlIDPSigning,
				PEM:            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
				DER:            []byte{1, 2, 3},
				Fingerprint:    "ab12",
				NotAfter:       time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC),
				KeyFingerprint: "cd34",
			},
			want: map[string]string{
				"spec.usage":          `"saml-idp-signing"`,
				"spec.pem":            short("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
				"spec.fingerprint":    `"ab12"`,
				"spec.notAfter":       `"2027-01-02T03:04:05Z"`,
				"spec.der":            short("\x01\x02\x03"),
				"spec.keyFingerprint": `"cd34"`,
			},
		},
		{
			name: "nested structs, durations, pointers, omitted zeros",
			in: &spec.SamlServiceProvider{
				EntityID:         "https://sp.example/<x>",
				IDP:              spec.SamlIDP{RequireSignedMetadata: &no, MetadataXML: []byte("<md/>")},
				AllowedClockSkew: spec.Duration(2 * time.Minute),
			},
			want: map[string]string{
				"spec.enabled":                   "false",
				"spec.entityID":                  `"https://sp.example/<x>"`,
				"spec.baseURL":                   `""`,
				"spec.idp.requireSignedMetadata": "false",
				"spec.idp.metadataXML":           short("<md/>"),
				"spec.allowedClockSkew":          `"2m0s"`,
			},
		},
		{
			name: "maps keyed, sorted",
			in:   map[string]int{"b": 2, "a": 1},
			want: map[string]string{`spec["a"]`: "1", `spec["b"]`: "2"},
		},
		{name: "nil", in: (*spec.Role)(nil), want: map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Render("spec", tt.in)
			if p := paths(got.Fields); !reflect.DeepEqual(p, tt.want) {
				t.Errorf("fields:\n got  %q\n want %q", p, tt.want)
			}
			for _, f := range got.Fields {
				if strings.Contains(f.Display(), "BEGIN") || strings.Contains(strings.ToLower(f.Display()), strings.ToLower(tokenHash)) {
					t.Errorf("%s shows secret material: %s", f.Path, f.Display())
				}
			}
		})
	}
}

// URL-valued fields are shown with their userinfo and query values
// hidden (a token in "?token=" or "user:pass@"), in plans, status and the
// admin API's diffs alike, yet compare by the whole URL: a rotated token is
// a change the daemon must apply to fetch with it.
func TestRenderRedactsURLs(t *testing.T) {
	const secret = "S3CRETQ"
	tests := []struct {
		name, path string
		in         func(url string) any
		url, shown string
	}{
		{"metadataURL query token", "spec.idp.metadataURL",
			func(u string) any { return &spec.SamlServiceProvider{IDP: spec.SamlIDP{MetadataURL: u}} },
			"https://idp.example.com/federationmetadata.xml?appid=42&token=" + secret,
			`"https://idp.example.com/federationmetadata.xml?appid=REDACTED&token=REDACTED"`},
		// Validation refuses credentials in a spec, but the runtime side of
		// a plan is whatever the store holds (an admin API edit).
		{"metadataURL userinfo", "spec.idp.metadataURL",
			func(u string) any { return &spec.SamlServiceProvider{IDP: spec.SamlIDP{MetadataURL: u}} },
			"https://ci:" + secret + "@idp.example.com/md.xml", `"https://REDACTED@idp.example.com/md.xml"`},
		{"metadataURL, an @ in the query", "spec.idp.metadataURL",
			func(u string) any { return &spec.SamlServiceProvider{IDP: spec.SamlIDP{MetadataURL: u}} },
			"https://idp.example.com/md.xml?hint=a@b.example&token=" + secret, `"https://idp.example.com/md.xml?hint=REDACTED&token=REDACTED"`},
		{"baseURL", "spec.baseURL",
			func(u string) any { return &spec.SamlServiceProvider{BaseURL: u} },
			"https://sp.example.com/?k=" + secret, `"https://sp.example.com/?k=REDACTED"`},
		{"scim baseURL", "spec.baseURL",
			func(u string) any { return &spec.ScimProvisioning{BaseURL: u} },
			"https://scim:" + secret + "@scim.example.com/api/scim/v2", `"https://REDACTED@scim.example.com/api/scim/v2"`},
		{"gateway upstream", "spec.upstream",
			func(u string) any { return &spec.Gateway{Upstream: u} },
			"http://svc:" + secret + "@10.0.0.5:8080", `"http://REDACTED@10.0.0.5:8080"`},
		{"URL without secrets shown as written", "spec.idp.metadataURL",
			func(u string) any { return &spec.SamlServiceProvider{IDP: spec.SamlIDP{MetadataURL: u}} },
			"https://login.microsoftonline.com/t/federationmetadata/2007-06/federationmetadata.xml",
			`"https://login.microsoftonline.com/t/federationmetadata/2007-06/federationmetadata.xml"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := paths(Render("spec", tt.in(tt.url)).Fields)
			if got[tt.path] != tt.shown {
				t.Fatalf("%s shown as %s, want %s", tt.path, got[tt.path], tt.shown)
			}
			rotated := strings.ReplaceAll(tt.url, secret, "R0TATED")
			if rotated == tt.url {
				return
			}
			a, b := Render("spec", tt.in(tt.url)), Render("spec", tt.in(rotated))
			d := Diff(a.Fields, b.Fields)
			if a.Hash == b.Hash || len(d) != 1 {
				t.Fatalf("a rotated secret in the URL is no change: %+v", d)
			}
			if strings.Contains(d[0].Before+d[0].After, secret) || strings.Contains(d[0].After, "R0TATED") {
				t.Errorf("the diff shows the secret: %+v", d[0])
			}
		})
	}
}

func TestRenderOrderAndHash(t *testing.T) {
	a := Render("spec", &spec.Role{Description: "d", Permissions: []string{"x"}})
	want := []string{"spec.description", "spec.permissions"}
	var got []string
	for _, f := range a.Fields {
		got = append(got, f.Path)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	if b := Render("spec", &spec.Role{Description: "d", Permissions: []string{"x"}}); b.Hash != a.Hash {
		t.Error("equal values hash differently")
	}
	if c := Render("spec", &spec.Role{Description: "d", Permissions: []string{"y"}}); c.Hash == a.Hash {
		t.Error("different values hash the same")
	}
	// Named items that only moved are unchanged.
	x, y := spec.ScimToken{Name: "x", SHA256: "01"}, spec.ScimToken{Name: "y", SHA256: "02"}
	if Render("spec", []spec.ScimToken{x, y}).Hash != Render("spec", []spec.ScimToken{y, x}).Hash {
		t.Error("reordering named items changes the hash")
	}
	// A secret that differs only beyond the shown prefix still differs.
	t1 := Render("spec", &spec.ScimToken{Name: "t", SHA256: strings.Repeat("a", 64)})
	t2 := Render("spec", &spec.ScimToken{Name: "t", SHA256: strings.Repeat("a", 63) + "b"})
	if t1.Hash == t2.Hash || len(Diff(t1.Fields, t2.Fields)) != 1 {
		t.Error("token change hidden by shortening")
	}
}

func TestDiff(t *testing.T) {
	f := func(kv ...string) []Field {
		var out []Field
		for i := 0; i < len(kv); i += 2 {
			out = append(out, Field{Path: kv[i], Value: kv[i+1]})
		}
		return out
	}
	tests := []struct {
		name          string
		before, after []Field
		want          []Change
	}{
		{name: "equal", before: f("a", "1", "b", "2"), after: f("a", "1", "b", "2")},
		{name: "changed", before: f("a", "1", "b", "2"), after: f("a", "1", "b", "3"),
			want: []Change{{Path: "b", Before: "2", After: "3"}}},
		{name: "added in the middle", before: f("a", "1", "c", "3"), after: f("a", "1", "b", "2", "c", "3"),
			want: []Change{{Path: "b", After: "2"}}},
		{name: "removed in the middle", before: f("a", "1", "b", "2", "c", "3"), after: f("a", "1", "c", "4"),
			want: []Change{{Path: "b", Before: "2"}, {Path: "c", Before: "3", After: "4"}}},
		{name: "reordered keys compare by path", before: f("t[x]", "1", "t[y]", "2"), after: f("t[y]", "2", "t[x]", "1")},
		{name: "create", after: f("a", "1"), want: []Change{{Path: "a", After: "1"}}},
		{name: "delete", before: f("a", "1"), want: []Change{{Path: "a", Before: "1"}}},
		{name: "secret shortened", before: []Field{{Path: "s", Value: "sha256:" + strings.Repeat("1", 64), Secret: true}},
			after: []Field{{Path: "s", Value: "sha256:" + strings.Repeat("2", 64), Secret: true}},
			want:  []Change{{Path: "s", Before: "sha256:111111111111", After: "sha256:222222222222"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Diff(tt.before, tt.after); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// Diff finds a difference exactly when the hashes differ, whatever the
// values (duplicate or missing token names included).
func TestDiffAgreesWithHash(t *testing.T) {
	str := rapid.SampledFrom([]string{"", "a", "b", "entra", "x]y", "é"})
	token := rapid.Custom(func(t *rapid.T) spec.ScimToken {
		tok := spec.ScimToken{Name: str.Draw(t, "name"), SHA256: str.Draw(t, "sha")}
		if rapid.Bool().Draw(t, "ref") {
			tok.ValueFrom = &spec.ValueFrom{Env: str.Draw(t, "env")}
		}
		return tok
	})
	scim := rapid.Custom(func(t *rapid.T) *spec.ScimProvisioning {
		return &spec.ScimProvisioning{
			Enabled:        rapid.Bool().Draw(t, "enabled"),
			BasePath:       str.Draw(t, "basePath"),
			Tokens:         rapid.SliceOfN(token, 0, 4).Draw(t, "tokens"),
			UserAttributes: rapid.SliceOfN(str, 0, 3).Draw(t, "attrs"),
		}
	})
	rapid.Check(t, func(t *rapid.T) {
		a, b := Render("spec", scim.Draw(t, "a")), Render("spec", scim.Draw(t, "b"))
		d := Diff(a.Fields, b.Fields)
		if (len(d) == 0) != (a.Hash == b.Hash) {
			t.Fatalf("diff %v but hashes equal=%v\na=%v\nb=%v", d, a.Hash == b.Hash, a.Fields, b.Fields)
		}
		if len(Diff(a.Fields, a.Fields)) != 0 {
			t.Fatal("a value differs from itself")
		}
	})
}
