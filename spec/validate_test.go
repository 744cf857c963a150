package spec

import (
	"errors"
	"strings"
	"testing"
)

const samlBase = `apiVersion: idrecon.io/v1alpha1
kind: SamlServiceProvider
metadata:
  name: entra
spec:
  entityID: urn:idrecon
  baseURL: https://idrecon.example.com
  idp:
    metadataURL: https://idp.example.com/metadata
    requireSignedMetadata: false
`

// TestValidationMessages pins the checks the testdata/bad goldens do not
// cover, each by the exact error it must produce.
func TestValidationMessages(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"negative skew", samlBase + "  allowedClockSkew: -1m\n", "doc.yaml:11:21: spec.allowedClockSkew: must not be negative"},
		{"console role not defined", samlBase + "  consoleRole: Auditor\n", `doc.yaml:11:16: spec.consoleRole: no Role named "Auditor" (builtin roles: `},
		{"negative session", samlBase + "  sessionLifetime: -1h\n", "doc.yaml:11:20: spec.sessionLifetime: must be positive"},
		{"session past the maximum", samlBase + "  sessionLifetime: 8761h\n", "doc.yaml:11:20: spec.sessionLifetime: 8761h0m0s is more than the maximum of 8760h0m0s"},
		{"session of centuries", samlBase + "  sessionLifetime: 2562047h\n", "doc.yaml:11:20: spec.sessionLifetime: 2562047h0m0s is more than the maximum of 8760h0m0s"},
		{"metadata refresh too often", samlBase + "    metadataRefresh: 1ms\n", "doc.yaml:11:22: spec.idp.metadataRefresh: 1ms is less than the minimum of 1m0s"},
		{"metadata refresh just under the minimum", samlBase + "    metadataRefresh: 59s\n", "doc.yaml:11:22: spec.idp.metadataRefresh: 59s is less than the minimum of 1m0s"},
		{"negative metadata refresh", samlBase + "    metadataRefresh: -1h\n", "doc.yaml:11:22: spec.idp.metadataRefresh: must not be negative"},
		{"unknown NameID format", samlBase + "  nameIDFormat: urn:x\n", `doc.yaml:11:17: spec.nameIDFormat: unsupported format "urn:x"`},
		{"signed requests need a key", samlBase + "  signAuthnRequests: true\n", "doc.yaml:6:3: spec.spSigningCertificate: required when signAuthnRequests is true"},
		{"dangling SP certificate", samlBase + "  spSigningCertificate: nope\n", `doc.yaml:11:25: spec.spSigningCertificate: no Certificate named "nope"`},
		{"metadata URL not http", strings.Replace(samlBase, "https://idp.example.com/metadata", "ftp://idp", 1), "doc.yaml:9:18: spec.idp.metadataURL: must be an absolute http(s) URL"},
		{"metadata URL over http", strings.Replace(samlBase, "https://idp.example.com/metadata", "http://idp.example.com/metadata", 1), "doc.yaml:9:18: spec.idp.metadataURL: must be https (set idp.allowInsecureMetadataURL: true to fetch it over plain http)"},
		{"metadata URL scheme in capitals", strings.Replace(samlBase, "https://idp.example.com/metadata", "HTTP://idp.example.com/metadata", 1), "doc.yaml:9:18: spec.idp.metadataURL: must be https"},
		{"signed metadata needs certificates", strings.Replace(samlBase, "    requireSignedMetadata: false\n", "", 1), "doc.yaml:9:5: spec.idp.signingCertificates: required while requireSignedMetadata is true (the default)"},
		{"metadata file missing", strings.Replace(samlBase, "metadataURL: https://idp.example.com/metadata", "metadataFile: md.xml", 1), `doc.yaml:9:19: spec.idp.metadataFile: file "md.xml" not found`},
		{"no IdP", strings.Replace(samlBase, "    metadataURL: https://idp.example.com/metadata\n", "", 1), "doc.yaml:9:5: spec.idp: set exactly one of metadataFile and metadataURL"},
		{"missing entityID", strings.Replace(samlBase, "  entityID: urn:idrecon\n", "", 1), "doc.yaml:6:3: spec.entityID: required"},
		{"duplicate signing certificate", strings.Replace(samlBase, "    requireSignedMetadata: false\n", "    signingCertificates: [a, a]\n", 1), "doc.yaml:10:27: spec.idp.signingCertificates[0]: no Certificate named \"a\"\ndoc.yaml:10:30: spec.idp.signingCertificates[1]: duplicate certificate \"a\""},
		{"scim enabled without tokens", "apiVersion: idrecon.io/v1alpha1\nkind: ScimProvisioning\nmetadata:\n  name: s\nspec:\n  enabled: true\n", "doc.yaml:6:3: spec.tokens: at least one token is required when SCIM is enabled"},
		{"duplicate user attribute", "apiVersion: idrecon.io/v1alpha1\nkind: ScimProvisioning\nmetadata:\n  name: s\nspec:\n  userAttributes: [userName, active, active]\n", `doc.yaml:6:38: spec.userAttributes[2]: duplicate user attribute "active"`},
		{"permission with spaces", "apiVersion: idrecon.io/v1alpha1\nkind: Role\nmetadata:\n  name: r\nspec:\n  permissions: [\"version view\", a, a]\n", "doc.yaml:6:17: spec.permissions[0]: a permission is a non-empty word like version.view\ndoc.yaml:6:36: spec.permissions[2]: duplicate permission \"a\""},
		{"name with spaces around", strings.Replace(appDoc, "name: webgoat", `name: " webgoat"`, 1), "doc.yaml:4:9: metadata.name: must not start or end with spaces"},
		{"no subject", "apiVersion: idrecon.io/v1alpha1\nkind: AccessAssignment\nmetadata:\n  name: a\nspec:\n  roles: [Developer]\n", "doc.yaml:6:3: spec.subject: set exactly one of group and user"},
		{"missing spec and metadata", "apiVersion: idrecon.io/v1alpha1\nkind: Role\n", "doc.yaml:1:1: metadata: required\ndoc.yaml:1:1: spec: required"},
		{"missing kind", "apiVersion: idrecon.io/v1alpha1\nmetadata:\n  name: x\nspec: {}\n", "doc.yaml:1:1: kind: required"},
		{"unknown top-level field", appDoc + "status: {}\n", "doc.yaml:7:1: status: unknown field (want apiVersion, kind, metadata, spec)"},
		{"version star", strings.Replace(appDoc, `["1.0"]`, `["*"]`, 1), "doc.yaml:6:14: spec.versions[0]: a version must not contain '/' or be '*'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, writeTree(t, map[string]string{"doc.yaml": tt.doc}), nil)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("got\n%v\nwant it to start with\n%s", err, tt.want)
			}
		})
	}
}

// TestMetadataURLInsecureAllowed: plain http is accepted when the spec says
// so in as many words.
func TestMetadataURLInsecureAllowed(t *testing.T) {
	doc := strings.Replace(samlBase, "https://idp.example.com/metadata", "http://idp.example.com/metadata", 1) +
		"    allowInsecureMetadataURL: true\n    allowPrivateMetadataHost: true\n"
	set, err := load(t, writeTree(t, map[string]string{"doc.yaml": doc}), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range set.Docs {
		if sp, ok := d.Spec.(*SamlServiceProvider); ok {
			if !sp.IDP.AllowInsecureMetadataURL || !sp.IDP.AllowPrivateMetadataHost {
				t.Fatalf("allow fields not read: %+v", sp.IDP)
			}
			return
		}
	}
	t.Fatal("no SamlServiceProvider loaded")
}

func TestScimBasePathStaysOffOtherRoutes(t *testing.T) {
	scim := func(basePath string) string {
		return "apiVersion: idrecon.io/v1alpha1\nkind: ScimProvisioning\nmetadata:\n  name: s\nspec:\n  enabled: false\n  basePath: " + basePath + "\n"
	}
	samlAt := func(baseURL string) string {
		return strings.Replace(samlBase, "https://idrecon.example.com", baseURL, 1)
	}
	const collides = "collides with "
	tests := []struct {
		basePath string
		saml     string // the SamlServiceProvider document, if any
		want     string // "" means accepted
	}{
		{basePath: "/api/scim/v2"},
		{basePath: "/scim", saml: samlAt("https://idrecon.example.com/app")},
		{basePath: "/", want: "must be an absolute URL path"},
		{basePath: `"/api/../healthz"`, want: "must not contain . or .. segments"},
		{basePath: `"/api/./scim"`, want: "must not contain . or .. segments"},
		{basePath: `"/api?x=1"`, want: "must be an absolute URL path"},
		{basePath: `"/api#frag"`, want: "must be an absolute URL path"},
		{basePath: "/healthz", want: collides + "/healthz"},
		{basePath: "/hooks", want: collides + "/hooks/git"},
		{basePath: "/hooks/git/scim", want: collides + "/hooks/git"},
		{basePath: "/metrics", want: collides + "/metrics"},
		{basePath: "/saml", want: collides + "/saml"},
		{basePath: "/saml/scim", want: collides + "/saml"},
		{basePath: "/app", saml: samlAt("https://idrecon.example.com/app/"), want: collides + "/app, the SAML home page"},
		{basePath: "/app/saml", saml: samlAt("https://idrecon.example.com/app"), want: collides + "/app/saml"},
		{basePath: "/app/me", saml: samlAt("https://idrecon.example.com/app"), want: collides + "/app/me"},
		{basePath: "/me", saml: samlBase, want: collides + "/me"},
		{basePath: "/me", want: collides + "/me"},
	}
	for _, tt := range tests {
		t.Run(tt.basePath, func(t *testing.T) {
			files := map[string]string{"scim.yaml": scim(tt.basePath)}
			if tt.saml != "" {
				files["saml.yaml"] = tt.saml
			}
			_, err := load(t, writeTree(t, files), nil)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "scim.yaml:7:13: spec.basePath: ") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want scim.yaml:7:13: spec.basePath: ...%s", err, tt.want)
			}
		})
	}
}

// TestScimBaseURL: baseURL is the URL of the endpoints themselves (Entra's
// Tenant URL), so its path must be the basePath; an origin alone would make
// every meta.location miss the endpoints.
func TestScimBaseURL(t *testing.T) {
	doc := func(baseURL, basePath string) string {
		d := "apiVersion: idrecon.io/v1alpha1\nkind: ScimProvisioning\nmetadata:\n  name: s\nspec:\n  enabled: false\n  baseURL: " + baseURL + "\n"
		if basePath != "" {
			d += "  basePath: " + basePath + "\n"
		}
		return d
	}
	const (
		at      = "scim.yaml:7:12: spec.baseURL: "
		notURL  = at + "must be an absolute http(s) URL without credentials, query or fragment"
		notPath = at + "its path must be the basePath"
	)
	tests := []struct {
		name, baseURL, basePath string
		want                    string // "" means accepted; else the error's start
	}{
		{name: "default basePath", baseURL: "https://scim.example.com/api/scim/v2"},
		{name: "trailing slash", baseURL: "https://scim.example.com/api/scim/v2/"},
		{name: "http and a port", baseURL: "http://localhost:8080/api/scim/v2"},
		{name: "scheme in capitals", baseURL: "HTTPS://scim.example.com/api/scim/v2"},
		{name: "own basePath", baseURL: "https://scim.example.com/scim", basePath: "/scim"},
		{name: "empty", baseURL: `""`},
		{name: "origin only", baseURL: "https://scim.example.com", want: notPath + " /api/scim/v2"},
		{name: "root", baseURL: "https://scim.example.com/", want: notPath + " /api/scim/v2"},
		{name: "other path", baseURL: "https://scim.example.com/scim", want: notPath + " /api/scim/v2"},
		{name: "default path with own basePath", baseURL: "https://scim.example.com/api/scim/v2", basePath: "/scim", want: notPath + " /scim"},
		{name: "escaped slash", baseURL: "https://scim.example.com/api/scim%2Fv2", want: notPath},
		{name: "path in other case", baseURL: "https://scim.example.com/API/scim/v2", want: notPath},
		{name: "two trailing slashes", baseURL: "https://scim.example.com/api/scim/v2//", want: notPath},
		{name: "Entra's flag", baseURL: "https://scim.example.com/api/scim/v2?aadOptscim062020", want: notURL + " (aadOptscim062020 belongs in Entra's Tenant URL, not here)"},
		{name: "fragment", baseURL: `"https://scim.example.com/api/scim/v2#x"`, want: notURL},
		{name: "empty query", baseURL: "https://scim.example.com/api/scim/v2?", want: notURL},
		{name: "relative", baseURL: "/api/scim/v2", want: notURL},
		{name: "no host", baseURL: "https:///api/scim/v2", want: notURL},
		{name: "other scheme", baseURL: "ftp://scim.example.com/api/scim/v2", want: notURL},
		{name: "credentials", baseURL: "https://u:p@scim.example.com/api/scim/v2", want: notURL},
		{name: "not a URL", baseURL: `"https://scim example.com/api/scim/v2"`, want: notURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := load(t, writeTree(t, map[string]string{"scim.yaml": doc(tt.baseURL, tt.basePath)}), nil)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range set.Docs {
					if sp, ok := d.Spec.(*ScimProvisioning); ok && sp.BaseURL != strings.Trim(tt.baseURL, `"`) {
						t.Errorf("baseURL = %q, want it as written", sp.BaseURL)
					}
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to start with %s", err, tt.want)
			}
		})
	}

	// A bad basePath is reported once, as itself.
	_, err := load(t, writeTree(t, map[string]string{"scim.yaml": doc("https://scim.example.com/api/", "/api/")}), nil)
	if err == nil || strings.Contains(err.Error(), "spec.baseURL") || !strings.Contains(err.Error(), "spec.basePath") {
		t.Errorf("err = %v, want only the basePath's", err)
	}
}

func TestReservedPathsAreAbsoluteAndDistinct(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range ReservedPaths {
		if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || seen[p] {
			t.Errorf("reserved path %q", p)
		}
		seen[p] = true
	}
}

// TestWarnings: a spec that loads but will not work as its author expects
// says so at load (validate and plan show it).
func TestWarnings(t *testing.T) {
	gateway := func(prefix string) string {
		return "---\n" + gatewayDoc("app", "  pathPrefix: "+prefix+"\n  upstream: http://127.0.0.1:8081\n")
	}
	withPath := strings.Replace(samlBase, "https://idrecon.example.com", "https://idrecon.example.com/sso", 1)
	tests := []struct {
		name, doc string
		want      string // in a warning; "" for none
	}{
		{"saml at the root, a gateway", samlBase + gateway("/app"), ""},
		{"saml under a path, a gateway outside it", withPath + gateway("/app"), "doc.yaml:12:1: Gateway/app: the SamlServiceProvider baseURL has the path /sso, and browsers send the session cookie only below it"},
		{"saml under a path, a gateway at the root", withPath + gateway("/"), "users reaching this Gateway at / are asked to sign in"},
		{"saml under a path, a gateway below it", withPath + gateway("/sso/app"), ""},
		{"persistent NameID without a username claim", samlBase + "  nameIDFormat: urn:oasis:names:tc:SAML:2.0:nameid-format:persistent\n",
			"doc.yaml:11:17: SamlServiceProvider/entra: nameIDFormat urn:oasis:names:tc:SAML:2.0:nameid-format:persistent with no attributes.username"},
		{"persistent NameID with a username claim", samlBase + "  nameIDFormat: urn:oasis:names:tc:SAML:2.0:nameid-format:persistent\n  attributes: {username: upn}\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := load(t, writeTree(t, map[string]string{"doc.yaml": tt.doc}), nil)
			if err != nil {
				t.Fatal(err)
			}
			warned := strings.Join(set.Warnings, "\n")
			switch {
			case tt.want == "" && warned != "":
				t.Errorf("warnings %q, want none", warned)
			case tt.want != "" && !strings.Contains(warned, tt.want):
				t.Errorf("warnings %q, want one saying %q", warned, tt.want)
			}
		})
	}
}

// TestPastedSecretIsNotQuoted: a secret written where its reference
// belongs (a token as the env name, a PEM key as a file path) is refused
// without the error quoting it: the error goes to status, the log and a
// pull request's checks.
func TestPastedSecretIsNotQuoted(t *testing.T) {
	const token = "s3cr3t-t0ken-0123456789abcdef"
	const key = "-----BEGIN PRIVATE KEY-----\\n    MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n    -----END PRIVATE KEY-----"
	for _, tc := range []struct{ name, doc, secret, want string }{
		{"token as the env name", "apiVersion: idrecon.io/v1alpha1\nkind: ScimProvisioning\nmetadata:\n  name: s\nspec:\n  enabled: true\n  tokens:\n    - name: entra\n      valueFrom: {env: \"" + token + "\"}\n",
			token, "spec.tokens[0].valueFrom.env: is no environment variable's name"},
		{"key as the private key file", certDoc("c", UsageTLS, "  file: c.pem\n  privateKeyFrom: {file: \""+key+"\"}\n"),
			"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "spec.privateKeyFrom.file: is no file's path"},
		{"certificate as the file", certDoc("c", UsageSamlIDPSigning, "  file: \""+key+"\"\n"),
			"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "spec.file: is no file's path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, writeTree(t, map[string]string{"doc.yaml": tc.doc}), nil)
			if err == nil || strings.Contains(err.Error(), tc.secret) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant one saying %q, without the secret", err, tc.want)
			}
		})
	}
}
