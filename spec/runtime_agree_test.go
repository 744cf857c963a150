package spec

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestReviewValidateLeavesGatewaysAlone: Validate promises not to modify the
// documents it is given (the admin API passes the store's live objects), yet
// a Gateway's shared secret was resolved into the caller's document.
func TestValidateLeavesGatewaysAlone(t *testing.T) {
	tests := []struct {
		name   string
		secret GatewaySecret
	}{
		{"unresolved", GatewaySecret{Header: "X-Secret", ValueFrom: &ValueFrom{Env: "GW_SECRET"}}},
		{"stale hash", GatewaySecret{Header: "X-Secret", ValueFrom: &ValueFrom{Env: "GW_SECRET"}, SHA256: "old"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := tt.secret
			g := &Gateway{Upstream: "http://app:8080", SharedSecret: &orig}
			doc := &Document{APIVersion: APIVersion, Kind: KindGateway, Metadata: Metadata{Name: "g"}, Spec: g,
				Pos: Position{File: "Gateway/g"}}
			set, err := Validate([]*Document{doc}, LoadOptions{Getenv: getenvFrom(map[string]string{"GW_SECRET": "s3cret-value"}), Now: testNow})
			if err != nil {
				t.Fatal(err)
			}
			if *g.SharedSecret != tt.secret {
				t.Errorf("Validate modified the caller's Gateway: %+v, was %+v", *g.SharedSecret, tt.secret)
			}
			got := set.Get(KindGateway, "g").Spec.(*Gateway)
			if got.SharedSecret == g.SharedSecret || got.SharedSecret.Value != "s3cret-value" {
				t.Errorf("the Set does not hold a resolved copy: %+v", got.SharedSecret)
			}
		})
	}
}

// TestReviewGatewaysTheRuntimeRefuses: each spec below loaded, and then
// runtime/gateway.New refused it, so the Gateway answered 503 after a
// "successful" apply. The loader must refuse what the gateway refuses.
func TestGatewaysTheRuntimeRefuses(t *testing.T) {
	const role = "---\napiVersion: idrecon.io/v1alpha1\nkind: Role\nmetadata:\n  name: \"ops,dev\"\nspec:\n  permissions: [x]\n"
	tests := []struct {
		name, spec, want string
	}{
		{"shared secret without upstream", "  sharedSecret: {header: X-Secret, valueFrom: {env: GW_SECRET}}\n",
			"g.yaml:6:17: spec.sharedSecret: needs an upstream"},
		{"shared secret not printable ASCII", "  upstream: http://app\n  sharedSecret: {header: X-Secret, valueFrom: {env: GW_ODD_SECRET}}\n",
			"spec.sharedSecret.valueFrom: the value from environment variable GW_ODD_SECRET must be printable ASCII without spaces"},
		{"header with a dot", "  userHeader: X.User\n", `g.yaml:6:15: spec.userHeader: "X.User" is not a valid HTTP header name`},
		{"header with a bang", "  versionsHeader: \"X!V\"\n", `spec.versionsHeader: "X!V" is not a valid HTTP header name`},
		{"authorization", "  userHeader: Authorization\n", "spec.userHeader: Authorization is set by HTTP or proxies"},
		{"host", "  rolesHeader: host\n", "spec.rolesHeader: host is set by HTTP or proxies"},
		{"forwarded for", "  userHeader: X-Forwarded-For\n", "spec.userHeader: X-Forwarded-For is set by HTTP or proxies"},
		{"real ip with underscores", "  userHeader: X_Real_IP\n", "spec.userHeader: X_Real_IP is set by HTTP or proxies"},
		{"x-original prefix", "  userHeader: X-Original-User\n", "spec.userHeader: X-Original-User is set by HTTP or proxies"},
		{"dot segment with parameters", "  pathPrefix: /app/..;/x\n", "spec.pathPrefix: must be an absolute URL path without . or .. segments"},
		{"required role with a comma", "  requiredRole: \"ops,dev\"\n", "spec.requiredRole: must not contain commas"},
	}
	env := map[string]string{"GW_SECRET": "s3cret-value", "GW_ODD_SECRET": "s3cret value\u00e9"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, writeTree(t, map[string]string{"g.yaml": gatewayDoc("g", tt.spec), "role.yaml": role}), env)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("the secret is in the error: %v", err)
			}
		})
	}
}

// TestReviewUpstreamCredentialsNotEchoed: an upstream the loader refuses was
// quoted whole in the error, credentials included.
func TestUpstreamCredentialsNotEchoed(t *testing.T) {
	tests := []struct{ name, upstream, want string }{
		{"wrong scheme", "ftp://admin:hunter2@h", "spec.upstream: must not carry credentials"},
		{"no host", "https://admin:hunter2@", "spec.upstream: must not carry credentials"},
		{"unparsable", "https://admin:hunter2@h:port", "spec.upstream: must be an http:// or https:// URL with a host"},
		{"user only", "ftp://hunter2@h", "spec.upstream: must not carry credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, writeTree(t, map[string]string{"g.yaml": gatewayDoc("g", "  upstream: \""+tt.upstream+"\"\n")}), nil)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the credentials are in the error: %v", err)
			}
		})
	}
}

// TestReviewYAMLErrorLines: yaml.v3 gives its parser's errors a 0-based
// line (one too small) and its reader's errors (bad UTF-8, control
// characters) no line at all; the loader must still point at the right one.
func TestYAMLErrorLines(t *testing.T) {
	const app = "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: a\nspec:\n" // 5 lines
	tests := []struct {
		name, data, want string
	}{
		{"unclosed flow sequence", app + "  versions: [\"1.0\"\n", "f.yaml:6:1: invalid YAML: did not find expected ',' or ']'"},
		{"unclosed flow sequence, second document", app + "  versions: [\"1\"]\n---\n" + app + "  versions: [\"1\"\n", "f.yaml:13:1: invalid YAML: did not find expected ',' or ']'"},
		{"bad indentation", app + "  versions:\n    - \"1\"\n   x: y\n", "f.yaml:6:1: invalid YAML: did not find expected key"},
		{"scanner error keeps its line", app + "  versions: [\"1\"]\n\tx: y\n", "f.yaml:7:1: invalid YAML: found character that cannot start any token"},
		{"invalid UTF-8", app + "  versions: [\"1\xff\"]\n", "f.yaml:6:16: invalid YAML: invalid leading UTF-8 octet"},
		{"control character", app + "  versions: [\"1\"]\n  # \x01\n", "f.yaml:7:5: invalid YAML: control characters are not allowed"},
		// With nothing to go on in line 1, yaml.v3 names the line of the problem (the end of input).
		{"first line parser error", "[a\n", "f.yaml:2:1: invalid YAML: did not find expected ',' or ']'"},
		// yaml.v3 names no line for an alias of an undefined anchor.
		{"unknown anchor", app + "  versions: [\"1\", *v1]\n", "f.yaml:6:19: invalid YAML: unknown anchor 'v1' referenced"},
		{"unknown anchor, second document", "# not *u\n" + app + "  versions: [\"1\"] # nor *u\n---\n" + app + "  # *u\n  versions: *u\n",
			"f.yaml:15:13: invalid YAML: unknown anchor 'u' referenced"},
		{"unknown anchor, longer one defined", app + "  versions: &vv [\"1\"]\n  x: *vv\n  y: [*v]\n", "f.yaml:8:7: invalid YAML: unknown anchor 'v' referenced"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.data))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v\nwant %s", err, tt.want)
			}
		})
	}
}

// TestReviewSPEncryptionNeedsRSA: the SAML server decrypts assertions with
// an RSA key only and refuses to start otherwise; the loader took an ECDSA
// key for a saml-sp-encryption certificate.
func TestSPEncryptionNeedsRSA(t *testing.T) {
	k := fixtures(t)
	tests := []struct {
		name string
		pair string
		want string // "" means valid
	}{
		{"rsa", "enc", ""},
		{"ecdsa", "sp", "enc.yaml:7:19: spec.privateKeyFrom: a saml-sp-encryption certificate needs an RSA private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pemBody := "  pem: |\n" + indent(string(certPEM(k[tt.pair].cert)), "    ")
			doc := certDoc("enc", UsageSamlSPEncryption, "  privateKeyFrom: {env: KEY}\n"+pemBody)
			_, err := load(t, writeTree(t, map[string]string{"enc.yaml": doc}), map[string]string{"KEY": string(pkcs8PEM(t, k[tt.pair].key))})
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant one containing %q", err, tt.want)
			}
		})
	}
}

// TestCertificateChain: a tls or tls-client certificate's PEM may carry its
// intermediates after it, which are served with it; another usage uses one
// certificate and says so, and every block must be a certificate.
func TestCertificateChain(t *testing.T) {
	k := fixtures(t)
	leaf, inter := string(certPEM(k["tls"].cert)), string(certPEM(k["other"].cert))
	key := "  privateKeyFrom: {env: KEY}\n"
	tests := []struct {
		name, usage, pem, extra string
		keyOf                   string
		want                    string // "" means valid
	}{
		{"tls with its chain", UsageTLS, leaf + inter, key, "tls", ""},
		{"tls alone", UsageTLS, leaf, key, "tls", ""},
		{"saml with two", UsageSamlIDPSigning, string(certPEM(k["idp"].cert)) + inter, "", "", "holds 2 certificates; only a tls or tls-client certificate carries its chain"},
		{"not a certificate", UsageTLS, leaf + "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", key, "tls", `PEM block 2 is "PUBLIC KEY", want CERTIFICATE`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			if tt.keyOf != "" {
				env["KEY"] = string(pkcs8PEM(t, k[tt.keyOf].key))
			}
			doc := certDoc("c", tt.usage, tt.extra+"  pem: |\n"+indent(tt.pem, "    "))
			set, err := load(t, writeTree(t, map[string]string{"c.yaml": doc}), env)
			if tt.want != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v\nwant one containing %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := set.Get(KindCertificate, "c").Spec.(*Certificate)
			tc, err := c.TLSCertificate()
			if err != nil {
				t.Fatal(err)
			}
			wantLen := strings.Count(tt.pem, "BEGIN CERTIFICATE")
			if len(tc.Certificate) != wantLen || !bytes.Equal(tc.Certificate[0], k["tls"].cert.Raw) ||
				(wantLen == 2 && !bytes.Equal(tc.Certificate[1], k["other"].cert.Raw)) {
				t.Errorf("served %d certificates, want the leaf then its %d intermediate(s)", len(tc.Certificate), wantLen-1)
			}
		})
	}
}
