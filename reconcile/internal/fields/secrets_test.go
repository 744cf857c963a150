package fields

import (
	"crypto/sha256"
	"encoding/hex"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/spec"
)

// What a plan, a drift log line or an audit record shows of a resource is
// Display and Diff's Before and After: none of them may hold a secret,
// whether it sits where a spec puts it or was written by mistake where a
// digest or a reference belongs.
func TestRenderNeverShowsSecrets(t *testing.T) {
	const (
		token = "scimTOKENplaintext0123456789abcdefXYZ"
		// A hex token looks like a digest; its first characters are all a
		// plan could show, so the secret checked is its tail.
		pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n"
	)
	tests := []struct {
		name   string
		in     func(secret string) any
		secret string
	}{
		{"plaintext token written as a token's sha256",
			func(s string) any {
				return &spec.ScimProvisioning{Tokens: []spec.ScimToken{{Name: "entra", SHA256: s}}}
			}, token},
		{"short plaintext written as a token's sha256",
			func(s string) any {
				return &spec.ScimProvisioning{Tokens: []spec.ScimToken{{Name: "entra", SHA256: s}}}
			}, "hunter2"},
		{"plaintext written as a shared secret's sha256",
			func(s string) any {
				return &spec.Gateway{SharedSecret: &spec.GatewaySecret{Header: "X-Idrecon", SHA256: s}}
			}, token},
		{"shared secret value resolved",
			func(s string) any {
				return &spec.Gateway{SharedSecret: &spec.GatewaySecret{Header: "X-Idrecon",
					ValueFrom: &spec.ValueFrom{Env: "GW_SECRET"}, Value: s, SHA256: hexSum(s)}}
			}, token},
		{"certificate PEM holding a private key",
			func(s string) any { return &spec.Certificate{Usage: spec.UsageTLS, PEM: s} }, pem},
		{"private key pasted into a certificate's file",
			func(s string) any { return &spec.Certificate{Usage: spec.UsageTLS, File: s} }, pem},
		{"private key pasted into privateKeyFrom.file",
			func(s string) any {
				return &spec.Certificate{Usage: spec.UsageTLS, PrivateKeyFrom: &spec.ValueFrom{File: s}}
			}, pem},
		{"private key pasted into privateKeyFrom.env",
			func(s string) any {
				return &spec.Certificate{Usage: spec.UsageTLS, PrivateKeyFrom: &spec.ValueFrom{Env: s}}
			}, pem},
		{"token pasted into a token's valueFrom.env",
			func(s string) any {
				return &spec.ScimProvisioning{Tokens: []spec.ScimToken{{Name: "entra", ValueFrom: &spec.ValueFrom{Env: s}}}}
			}, "tok-" + token},
		{"secret with a newline pasted into a shared secret's valueFrom.file",
			func(s string) any {
				return &spec.Gateway{SharedSecret: &spec.GatewaySecret{Header: "X-Idrecon", ValueFrom: &spec.ValueFrom{File: s}}}
			}, token + "\n"},
		{"metadata pasted into metadataFile",
			func(s string) any {
				return &spec.SamlServiceProvider{IDP: spec.SamlIDP{MetadataFile: s}}
			}, "<EntityDescriptor>\n" + token + "\n</EntityDescriptor>"},
		{"metadata content",
			func(s string) any { return &spec.SamlServiceProvider{IDP: spec.SamlIDP{MetadataXML: []byte(s)}} }, token},
		{"certificate DER and chain",
			func(s string) any {
				return &spec.Certificate{Usage: spec.UsageTLS, DER: []byte(s), Chain: [][]byte{[]byte(s)}}
			}, token},
		{"metadataURL query key",
			func(s string) any {
				return &spec.SamlServiceProvider{IDP: spec.SamlIDP{MetadataURL: "https://idp.example.com/md.xml?" + s}}
			}, token},
		{"metadataURL query value",
			func(s string) any {
				return &spec.SamlServiceProvider{IDP: spec.SamlIDP{MetadataURL: "https://idp.example.com/md.xml?appid=1&sig=" + s}}
			}, token},
		{"metadataURL password",
			func(s string) any {
				return &spec.SamlServiceProvider{IDP: spec.SamlIDP{MetadataURL: "https://u:" + s + "@idp.example.com/md.xml"}}
			}, token},
		{"gateway upstream token as user",
			func(s string) any { return &spec.Gateway{Upstream: "https://" + s + "@app.internal"} }, token},
		{"scim baseURL query",
			func(s string) any { return &spec.ScimProvisioning{BaseURL: "https://h/api/scim/v2?token=" + s} }, token},
		{"sp baseURL password",
			func(s string) any { return &spec.SamlServiceProvider{BaseURL: "https://a:" + s + "@sp.example.com"} }, token},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			other := strings.ToUpper(tt.secret[:len(tt.secret)/2]) + "r0tated" + tt.secret[len(tt.secret)/2:]
			before, after := Render("spec", tt.in(tt.secret)), Render("spec", tt.in(other))
			var shown []string
			for _, f := range before.Fields {
				shown = append(shown, f.Path+" "+f.Display())
			}
			for _, c := range Diff(before.Fields, after.Fields) {
				shown = append(shown, c.Path+" "+c.Before+" "+c.After)
			}
			for _, c := range Diff(nil, after.Fields) {
				shown = append(shown, c.Path+" "+c.After)
			}
			if before.Hash == after.Hash {
				t.Errorf("a changed secret is no change")
			}
			for _, s := range shown {
				for _, secret := range []string{tt.secret, other} {
					if leaks(s, secret) {
						t.Errorf("shows the secret %q: %s", secret, s)
					}
				}
			}
		})
	}
}

// leaks reports whether shown holds the secret or a telling piece of it: a
// run of eight or more of its characters, quoted or not.
func leaks(shown, secret string) bool {
	unq := strings.ToLower(strings.NewReplacer(`\n`, "\n", `\"`, `"`).Replace(shown))
	secret = strings.ToLower(secret)
	const run = 8
	for _, line := range strings.Split(secret, "\n") {
		if strings.Contains(line, "-----") || len(line) < run {
			continue
		}
		for i := 0; i+run <= len(line); i++ {
			if strings.Contains(unq, line[i:i+run]) {
				return true
			}
		}
	}
	return strings.Contains(unq, "private key")
}

// notSecret lists the string fields of spec types that are shown as
// written: names, paths of the URL space, claim names, references to other
// resources, what the loader derives from a certificate. A field added to a
// spec type fails this test until it is listed here or in masked, so that
// no new field is shown without someone deciding it holds no secret.
var notSecret = []string{
	"ScimProvisioning.BasePath", "ScimProvisioning.UserAttributes",
	"ScimToken.Name",
	"Certificate.Usage", "Certificate.Fingerprint", "Certificate.Subject", "Certificate.KeyFingerprint",
	"SamlServiceProvider.EntityID", "SamlServiceProvider.SPSigningCertificate",
	"SamlServiceProvider.SPEncryptionCertificate", "SamlServiceProvider.NameIDFormat", "SamlServiceProvider.ConsoleRole",
	"SamlIDP.SigningCertificates",
	"SamlAttributes.Username", "SamlAttributes.Email", "SamlAttributes.FirstName", "SamlAttributes.LastName", "SamlAttributes.Groups",
	"Application.Versions",
	"Role.Description", "Role.Permissions",
	"AccessAssignment.Roles", "AccessAssignment.ApplicationVersions",
	"Subject.Group", "Subject.User",
	"Gateway.PathPrefix", "Gateway.UserHeader", "Gateway.RolesHeader", "Gateway.VersionsHeader", "Gateway.RequiredRole",
	"Gateway.UpstreamCAs", "Gateway.ClientCertificate",
	"GatewaySecret.Header",
}

func TestEverySpecFieldDecided(t *testing.T) {
	var undecided []string
	seen := map[reflect.Type]bool{}
	var visit func(t reflect.Type)
	visit = func(t reflect.Type) {
		t = indirect(t)
		for t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
			t = indirect(t.Elem())
		}
		if t.Kind() != reflect.Struct || isLeafType(t) || seen[t] {
			return
		}
		seen[t] = true
		for i := range t.NumField() {
			sf := t.Field(i)
			if !sf.IsExported() {
				continue
			}
			if _, _, _, skip := jsonName(sf); skip {
				continue
			}
			elem := indirect(sf.Type)
			for elem.Kind() == reflect.Slice && elem.Elem().Kind() != reflect.Uint8 {
				elem = indirect(elem.Elem())
			}
			name := t.Name() + "." + sf.Name
			switch {
			case elem.Kind() == reflect.Slice: // []byte: always a digest
			case elem.Kind() == reflect.String && !isLeafType(elem):
				if masked[t][sf.Name] == maskNone && !slices.Contains(notSecret, name) {
					undecided = append(undecided, name)
				}
				if masked[t][sf.Name] != maskNone && sf.Type.Kind() != reflect.String {
					undecided = append(undecided, name+" (masked, but not a string: its mask is not applied)")
				}
			default:
				visit(sf.Type)
			}
		}
	}
	for _, kind := range spec.Kinds {
		v, _ := spec.NewSpec(kind)
		visit(reflect.TypeOf(v))
	}
	if len(undecided) > 0 {
		t.Errorf("string fields neither masked nor listed in notSecret: %s", strings.Join(undecided, ", "))
	}
	for _, name := range notSecret {
		if !slices.ContainsFunc(keys(seen), func(t reflect.Type) bool { return strings.HasPrefix(name, t.Name()+".") }) {
			t.Errorf("notSecret lists %s, which no spec type has", name)
		}
	}
}

func hexSum(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func keys[K comparable, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
