package spec

import (
	"crypto/x509"
	"errors"
	"strings"
	"testing"
)

func gatewayDoc(name, spec string) string {
	return "apiVersion: idrecon.io/v1alpha1\nkind: Gateway\nmetadata:\n  name: " + name + "\nspec:\n" + spec
}

// TestGatewayValidation: every Gateway field is checked with file:line and
// the field, and the shared secret is resolved without showing it.
func TestGatewayValidation(t *testing.T) {
	const scim = "apiVersion: idrecon.io/v1alpha1\nkind: ScimProvisioning\nmetadata:\n  name: s\nspec:\n  enabled: false\n"
	keys := fixtures(t)
	cert := func(name, usage string, c *x509.Certificate, key string) string {
		doc := "---\napiVersion: idrecon.io/v1alpha1\nkind: Certificate\nmetadata:\n  name: " + name + "\nspec:\n  usage: " + usage +
			"\n  pem: |\n    " + strings.ReplaceAll(strings.TrimSpace(string(certPEM(c))), "\n", "\n    ") + "\n"
		if key != "" {
			doc += "  privateKeyFrom: {env: " + key + "}\n"
		}
		return doc
	}
	keystore := cert("upstream-ca", UsageTLSCA, keys["idp"].cert, "") + cert("client", UsageTLSClient, keys["tls"].cert, "GW_KEY") +
		cert("web", UsageTLS, keys["tls"].cert, "GW_KEY")
	tests := []struct {
		name, spec string
		extra      string // another document
		want       string // "" means valid; else "file:line:col field: ...text"
	}{
		{name: "minimal", spec: "  upstream: http://127.0.0.1:8180\n"},
		{name: "forward-auth only", spec: "  pathPrefix: /\n"},
		{name: "everything", spec: "  upstream: https://ssc.internal:8443\n  pathPrefix: /ssc\n  userHeader: username\n  rolesHeader: X-Idrecon-Roles\n" +
			"  versionsHeader: X-Idrecon-Versions\n  requiredRole: Developer\n  sharedSecret:\n    header: X-Idrecon-Secret\n    valueFrom: {env: GW_SECRET}\n" +
			"  timeouts: {dial: 2s, responseHeader: 2m}\n  maxRequestsPerUser: 10000\n"},
		{name: "upstream scheme", spec: "  upstream: ftp://h\n", want: "g.yaml:6:13: spec.upstream: must be an http:// or https:// URL"},
		{name: "upstream path", spec: "  upstream: http://h/ssc\n", want: "g.yaml:6:13: spec.upstream: must have no path"},
		// The refused upstream is quoted with its query values hidden: errors
		// reach logs, CI output and the admin API.
		{name: "upstream scheme, token in the query", spec: "  upstream: ftp://h/?token=s3cret\n", want: `spec.upstream: must be an http:// or https:// URL with a host, got "ftp://h/?token=REDACTED"`},
		{name: "upstream credentials", spec: "  upstream: http://u:p@h\n", want: "spec.upstream: must not carry credentials"},
		{name: "relative prefix", spec: "  pathPrefix: ssc\n", want: "g.yaml:6:15: spec.pathPrefix: must be an absolute URL path"},
		// The daemon picks a Gateway by the path with each segment's
		// ";parameters" dropped, so this prefix would never be chosen and
		// its requests would go to another Gateway.
		{name: "path parameters", spec: "  pathPrefix: /ssc;v=2\n", want: "g.yaml:6:15: spec.pathPrefix: must not contain ';'"},
		{name: "percent escapes", spec: "  pathPrefix: /a%20b\n", want: "g.yaml:6:15: spec.pathPrefix: must be written decoded"},
		{name: "dot segments", spec: "  pathPrefix: /a/../saml\n", want: "spec.pathPrefix: must be an absolute URL path without . or .."},
		{name: "bad header", spec: "  userHeader: user name\n", want: "spec.userHeader: \"user name\" is not a valid HTTP header name"},
		{name: "hop-by-hop header", spec: "  rolesHeader: Connection\n", want: "spec.rolesHeader: Connection is a hop-by-hop header"},
		{name: "header used twice", spec: "  userHeader: user_name\n  rolesHeader: USER-NAME\n", want: "spec.rolesHeader: USER-NAME is already used by spec.userHeader"},
		{name: "unknown role", spec: "  requiredRole: Wizard\n", want: "spec.requiredRole: no Role named \"Wizard\""},
		{name: "secret without valueFrom", spec: "  sharedSecret:\n    header: X-S\n", want: "spec.sharedSecret.valueFrom: required"},
		{name: "secret env unset", spec: "  sharedSecret:\n    header: X-S\n    valueFrom: {env: NOT_SET}\n", want: "spec.sharedSecret.valueFrom.env: environment variable NOT_SET is not set"},
		{name: "timeout too long", spec: "  timeouts: {dial: 11m}\n", want: "spec.timeouts.dial: must be between 0"},
		{name: "requests per user, too many", spec: "  maxRequestsPerUser: 10001\n", want: "g.yaml:6:23: spec.maxRequestsPerUser: must be between 0 (the default, 128) and 10000"},
		{name: "requests per user, negative", spec: "  maxRequestsPerUser: -1\n", want: "spec.maxRequestsPerUser: must be between 0"},
		{name: "requests per user, quoted", spec: "  maxRequestsPerUser: \"64\"\n", want: "g.yaml:6:23: spec.maxRequestsPerUser: must be a whole number"},
		{name: "requests per user, fraction", spec: "  maxRequestsPerUser: 1.5\n", want: "spec.maxRequestsPerUser: must be a whole number"},
		{name: "requests per user, past int64", spec: "  maxRequestsPerUser: 99999999999999999999\n", want: "spec.maxRequestsPerUser: must be a whole number"},
		{name: "prefix on saml", spec: "  pathPrefix: /saml\n", want: "spec.pathPrefix: /saml collides with /saml"},
		{name: "prefix on healthz", spec: "  pathPrefix: /healthz/x\n", want: "collides with /healthz"},
		{name: "prefix on verify", spec: "  pathPrefix: /auth\n", want: "collides with /auth/verify"},
		{name: "prefix on scim", spec: "  pathPrefix: /api\n", extra: scim, want: "collides with /api/scim/v2"},
		{name: "mtls", spec: "  upstream: https://ssc.internal\n  upstreamCAs: [upstream-ca]\n  clientCertificate: client\n", extra: keystore},
		{name: "mtls over http", spec: "  upstream: http://ssc.internal\n  clientCertificate: client\n", extra: keystore, want: "g.yaml:7:22: spec.clientCertificate: needs an https:// upstream"},
		{name: "unknown CA", spec: "  upstream: https://h\n  upstreamCAs: [nope]\n", extra: keystore, want: "spec.upstreamCAs[0]: no Certificate named \"nope\""},
		{name: "CA listed twice", spec: "  upstream: https://h\n  upstreamCAs: [upstream-ca, upstream-ca]\n", extra: keystore, want: "spec.upstreamCAs[1]: \"upstream-ca\" is listed twice"},
		{name: "client cert of the wrong usage", spec: "  upstream: https://h\n  clientCertificate: web\n", extra: keystore, want: "spec.clientCertificate: Certificate \"web\" has usage \"tls\", want \"tls-client\""},
		{name: "CA with a key", spec: "  upstream: http://h\n", extra: cert("ca", UsageTLSCA, keys["idp"].cert, "GW_KEY"), want: "spec.privateKeyFrom: a tls-ca certificate must not have a private key"},
		{name: "client cert without a key", spec: "  upstream: http://h\n", extra: cert("c", UsageTLSClient, keys["tls"].cert, ""), want: "privateKeyFrom is required for usage tls-client"},
		{name: "prefix twice", spec: "  pathPrefix: /ssc/\n", extra: gatewayDoc("other", "  pathPrefix: /ssc\n"), want: "is also the pathPrefix of Gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"g.yaml": gatewayDoc("g", tt.spec)}
			if tt.extra != "" {
				files["other.yaml"] = tt.extra
			}
			set, err := load(t, writeTree(t, files), map[string]string{"GW_SECRET": "s3cret-value", "GW_KEY": string(pkcs8PEM(t, keys["tls"].key))})
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range set.Docs {
					if g, ok := d.Spec.(*Gateway); ok && g.SharedSecret != nil {
						if g.SharedSecret.Value != "s3cret-value" || len(g.SharedSecret.SHA256) != 64 {
							t.Errorf("shared secret not resolved: %+v", g.SharedSecret)
						}
					}
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("the secret is in the error: %v", err)
			}
		})
	}
}
