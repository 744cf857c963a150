package spec

import (
	"errors"
	"strings"
	"testing"
)

// utf8BOM is what Windows editors (Notepad before 2019, PowerShell's
// Out-File) put before the text of a file they save as UTF-8.
const utf8BOM = "\ufeff"

// TestReferencedFilesWithBOM: a certificate, key or secret file saved with
// a byte order mark was refused as "not a certificate", "no PEM private key
// found" or a token of the wrong characters, though its text is right.
func TestReferencedFilesWithBOM(t *testing.T) {
	k := fixtures(t)
	const token = "tok3n-tok3n-tok3n-tok3n-tok3n-tok3n-40"
	tests := []struct {
		name  string
		files map[string]string
		check func(t *testing.T, set *Set)
	}{
		{name: "PEM certificate", files: map[string]string{
			"c.yaml": certDoc("c", UsageSamlIDPSigning, "  file: c.pem\n"),
			"c.pem":  utf8BOM + string(certPEM(k["idp"].cert)),
		}},
		{name: "Base64 certificate with CRLF", files: map[string]string{
			"c.yaml": certDoc("c", UsageSamlIDPSigning, "  file: c.cer\n"),
			"c.cer":  utf8BOM + strings.ReplaceAll(string(certBase64(k["idp"].cert)), "\n", "\r\n"),
		}},
		{name: "private key", files: map[string]string{
			"c.yaml": certDoc("c", UsageTLS, "  file: c.pem\n  privateKeyFrom: {file: k.pem}\n"),
			"c.pem":  string(certPEM(k["tls"].cert)),
			"k.pem":  utf8BOM + string(pkcs8PEM(t, k["tls"].key)),
		}},
		{name: "SCIM token", files: map[string]string{
			"s.yaml": "apiVersion: idrecon.io/v1alpha1\nkind: ScimProvisioning\nmetadata: {name: s}\nspec:\n  enabled: true\n  tokens: [{name: a, valueFrom: {file: t.txt}}]\n",
			"t.txt":  utf8BOM + token + "\r\n",
		}, check: func(t *testing.T, set *Set) {
			if got := set.Docs[0].Spec.(*ScimProvisioning).Tokens[0].SHA256; got != sum256(token) {
				t.Errorf("token hash %s, want the hash of the token without the mark", got)
			}
		}},
		{name: "Gateway shared secret", files: map[string]string{
			"g.yaml": gatewayDoc("g", "  upstream: http://app\n  sharedSecret: {header: X-Secret, valueFrom: {file: s.txt}}\n"),
			"s.txt":  utf8BOM + "s3cret-value\r\n",
		}, check: func(t *testing.T, set *Set) {
			if got := set.Get(KindGateway, "g").Spec.(*Gateway).SharedSecret.Value; got != "s3cret-value" {
				t.Errorf("secret %q, want it without the mark", got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := load(t, writeTree(t, tt.files), nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, set)
			}
		})
	}
}

// TestBOMStartingALaterDocument: YAML allows a byte order mark at the start
// of every document, as files joined with cat have them; the mark became
// part of the first key, so "apiVersion" was an unknown field (want
// apiVersion, ...) with the difference invisible.
func TestBOMStartingALaterDocument(t *testing.T) {
	role := func(name string) string {
		return "apiVersion: idrecon.io/v1alpha1\nkind: Role\nmetadata: {name: " + name + "}\nspec: {permissions: [a]}\n"
	}
	tests := []struct {
		name, data string
	}{
		{"after a comment document", "# roles\n---\n" + utf8BOM + role("a")},
		{"second of two", role("a") + "---\n" + utf8BOM + role("b")},
		{"both", utf8BOM + role("a") + "---\n" + utf8BOM + role("b")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := Parse("r.yaml", []byte(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range docs {
				if d.Kind != KindRole || d.APIVersion != APIVersion {
					t.Errorf("document %+v", d)
				}
			}
		})
	}
	// A mark anywhere else is still part of the key; the error names it.
	_, err := Parse("r.yaml", []byte("apiVersion: idrecon.io/v1alpha1\nkind: Role\n"+utf8BOM+"metadata: {name: a}\nspec: {permissions: [a]}\n"))
	var list ErrorList
	if !errors.As(err, &list) || !strings.Contains(err.Error(), `r.yaml:3:1: the key "\ufeffmetadata" starts with a byte order mark`) {
		t.Fatalf("err = %v", err)
	}
}
