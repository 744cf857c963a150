package spec

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// agreeCase is a small spec tree, agreeContext plus docs, loaded by the
// loader and checked against the schemas document by document.
type agreeCase struct {
	name string
	docs string // YAML documents, separated by ---
	// loads is what the loader does with the tree; the test checks it, so a
	// case cannot silently test something else.
	loads bool
	// loaderOnly says why no schema can refuse what the loader refuses
	// (references across documents, secrets, file and certificate contents,
	// YAML typing). Only for a case with loads false.
	loaderOnly string
	// gap names a disagreement left in place and why; the case is skipped.
	gap string
}

// agreeContext holds the documents the cases refer to: a certificate of
// each usage, a Role and an Application.
const agreeContext = `apiVersion: idrecon.io/v1alpha1
kind: Certificate
metadata: {name: idp}
spec: {usage: saml-idp-signing, file: certs/idp.cer}
---
apiVersion: idrecon.io/v1alpha1
kind: Certificate
metadata: {name: sp}
spec: {usage: saml-sp-signing, file: certs/sp.pem, privateKeyFrom: {file: certs/sp-key.pem}}
---
apiVersion: idrecon.io/v1alpha1
kind: Certificate
metadata: {name: enc}
spec: {usage: saml-sp-encryption, file: certs/enc.pem, privateKeyFrom: {env: IDRECON_TEST_ENC_KEY}}
---
apiVersion: idrecon.io/v1alpha1
kind: Certificate
metadata: {name: ca}
spec: {usage: tls-ca, file: certs/tls.pem}
---
apiVersion: idrecon.io/v1alpha1
kind: Certificate
metadata: {name: client}
spec: {usage: tls-client, file: certs/tls.pem, privateKeyFrom: {file: certs/tls-key.pem}}
---
apiVersion: idrecon.io/v1alpha1
kind: Role
metadata: {name: ops}
spec: {permissions: [x.view]}
---
apiVersion: idrecon.io/v1alpha1
kind: Application
metadata: {name: app}
spec: {versions: ["1.0"]}
`

// agreeDoc renders a document named name; spec is what follows "spec:",
// "\n" for an empty spec.
func agreeDoc(kind, name, spec string) string {
	return "apiVersion: idrecon.io/v1alpha1\nkind: " + kind + "\nmetadata:\n  name: " + name + "\nspec:" + spec
}

func gw(spec string) string   { return agreeDoc(KindGateway, "t", spec) }
func scim(spec string) string { return agreeDoc(KindScimProvisioning, "t", spec) }
func cert(spec string) string { return agreeDoc(KindCertificate, "t", spec) }
func saml(spec string) string { return agreeDoc(KindSamlServiceProvider, "t", spec) }
func app(spec string) string  { return agreeDoc(KindApplication, "t", spec) }
func role(spec string) string { return agreeDoc(KindRole, "t", spec) }
func aa(spec string) string   { return agreeDoc(KindAccessAssignment, "t", spec) }

// samlIDP is a SamlServiceProvider spec with idp as written.
func samlIDP(idp string) string {
	return "\n  entityID: urn:t\n  baseURL: https://sp.example\n  idp:" + idp
}

const (
	samlMin   = "\n  entityID: urn:t\n  baseURL: https://sp.example\n  idp:\n    metadataURL: https://idp.example/md\n    signingCertificates: [idp]\n"
	scimToken = "\n  enabled: true\n  tokens:\n    - name: a\n      sha256: " + hex64 + "\n"
	hex64     = "abababababababababababababababababababababababababababababababab"
)

// Reasons only the loader can see.
const (
	crossDoc   = "a reference to another document"
	secret     = "a secret resolved from the environment or a file"
	fileRead   = "a file of the spec repo read at load"
	certBody   = "the contents of a certificate or key"
	yamlTyping = "YAML typing: the loader reads the YAML tags, a schema sees the JSON the YAML converts to"
	oneOfKind  = "at most one document of the kind in a spec"
	durRange   = "the range of a duration: minimum and maximum apply to numbers, a duration is a string"
	headerList = "header names compared ignoring case, - and _ (against a list, or across fields)"
	urlGrammar = "URL syntax (host, port, %-escapes), left to the loader's URL parser"
	byteLength = "a length in bytes: maxLength counts characters"
	uniqueBy   = "uniqueness of one field across list items"
	twoFields  = "one field's value compared with another's"
)

var agreeCases = []agreeCase{
	// Metadata and the document's envelope, on a Role.
	{name: "metadata/name with inner spaces", docs: agreeDoc(KindRole, "Release Manager", " {permissions: [a]}\n"), loads: true},
	{name: "metadata/name with a line separator inside", docs: agreeDoc(KindRole, "\"a\u2028b\"", " {permissions: [a]}\n"), loads: true},
	{name: "metadata/name empty", docs: agreeDoc(KindRole, "\"\"", " {permissions: [a]}\n")},
	{name: "metadata/name null", docs: agreeDoc(KindRole, "", " {permissions: [a]}\n")},
	{name: "metadata/name number", docs: agreeDoc(KindRole, "5", " {permissions: [a]}\n")},
	{name: "metadata/name leading space", docs: agreeDoc(KindRole, "\" a\"", " {permissions: [a]}\n")},
	{name: "metadata/name trailing no-break space", docs: agreeDoc(KindRole, "\"a\u00a0\"", " {permissions: [a]}\n")},
	{name: "metadata/name control character", docs: agreeDoc(KindRole, "\"a\\x01b\"", " {permissions: [a]}\n")},
	{name: "metadata/name 257 characters", docs: agreeDoc(KindRole, strings.Repeat("n", 257), " {permissions: [a]}\n")},
	{name: "metadata/name 200 two-byte characters", docs: agreeDoc(KindRole, strings.Repeat("é", 200), " {permissions: [a]}\n"), loaderOnly: byteLength},
	{name: "metadata/null", docs: "apiVersion: idrecon.io/v1alpha1\nkind: Role\nmetadata:\nspec: {permissions: [a]}\n"},
	{name: "metadata/unknown field", docs: "apiVersion: idrecon.io/v1alpha1\nkind: Role\nmetadata: {name: r, labels: {}}\nspec: {permissions: [a]}\n"},
	{name: "envelope/apiVersion wrong", docs: "apiVersion: v1\nkind: Role\nmetadata: {name: r}\nspec: {permissions: [a]}\n"},
	{name: "envelope/kind null", docs: "apiVersion: idrecon.io/v1alpha1\nkind:\nmetadata: {name: r}\nspec: {permissions: [a]}\n"},
	{name: "envelope/spec missing", docs: "apiVersion: idrecon.io/v1alpha1\nkind: Gateway\nmetadata: {name: r}\n"},
	{name: "envelope/unknown field", docs: agreeDoc(KindGateway, "g", " {}\nstatus: {}\n")},
	{name: "envelope/duplicate name", docs: role(" {permissions: [a]}\n") + "---\n" + role(" {permissions: [b]}\n"), loaderOnly: crossDoc},
	{name: "yaml/alias", docs: "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata: {name: &n x}\nspec: {versions: [*n]}\n", loaderOnly: yamlTyping},
	{name: "yaml/unquoted date", docs: app(" {versions: [2024-01-01]}\n"), loaderOnly: yamlTyping},
	{name: "yaml/merge key", docs: app("\n  <<: {versions: [\"1.0\"]}\n"), loaderOnly: yamlTyping},
	{name: "yaml/merge key in the envelope", docs: "<<: {apiVersion: idrecon.io/v1alpha1}\nkind: Role\nmetadata: {name: r}\nspec: {permissions: [a]}\n", loaderOnly: yamlTyping},
	{name: "yaml/explicit string tag", docs: app(" {versions: [!!str 1.10]}\n"), loads: true},
	{name: "yaml/True is a boolean", docs: scim("\n  enabled: True\n  tokens: [{name: a, sha256: " + hex64 + "}]\n"), loads: true},
	{name: "yaml/off is not a boolean", docs: saml(samlIDP(" {metadataURL: https://idp.example/md, requireSignedMetadata: off, signingCertificates: [idp]}\n"))},
	{name: "yaml/no is a string", docs: agreeDoc(KindRole, "no", " {permissions: [a]}\n"), loads: true},

	// Gateway.
	{name: "gateway/spec empty mapping", docs: gw(" {}\n"), loads: true},
	{name: "gateway/spec null", docs: gw("\n"), loads: true},
	{name: "gateway/spec list", docs: gw(" []\n")},
	{name: "gateway/everything", loads: true, docs: gw(`
  upstream: https://app.internal:8443/
  pathPrefix: /app/
  userHeader: X_User
  rolesHeader: X-Roles
  versionsHeader: X-Versions
  requiredRole: ops
  upstreamCAs: [ca]
  clientCertificate: client
  sharedSecret: {header: X-Secret, valueFrom: {env: GW_SECRET}}
  timeouts: {dial: 5s, responseHeader: 1m30s}
`)},
	{name: "gateway/upstream null", docs: gw("\n  upstream:\n"), loads: true},
	{name: "gateway/upstream empty", docs: gw("\n  upstream: \"\"\n"), loads: true},
	{name: "gateway/upstream upper-case scheme", docs: gw("\n  upstream: HTTP://app:8080\n"), loads: true},
	{name: "gateway/upstream number", docs: gw("\n  upstream: 8080\n")},
	{name: "gateway/upstream ftp", docs: gw("\n  upstream: ftp://app\n")},
	{name: "gateway/upstream path", docs: gw("\n  upstream: http://app/x\n")},
	{name: "gateway/upstream credentials", docs: gw("\n  upstream: http://u:p@app\n")},
	{name: "gateway/upstream bad port", docs: gw("\n  upstream: http://app:port\n"), loaderOnly: urlGrammar},
	// A bare '?' or '#' is an empty query or fragment to url.Parse, but
	// still one written: refused as the description says, by both.
	{name: "gateway/upstream empty query", docs: gw("\n  upstream: http://app?\n")},
	{name: "gateway/upstream empty fragment", docs: gw("\n  upstream: \"http://app#\"\n")},
	{name: "gateway/upstream bad escape in the host", docs: gw("\n  upstream: http://a%zz\n"), loaderOnly: urlGrammar},
	{name: "gateway/pathPrefix null", docs: gw("\n  pathPrefix:\n"), loads: true},
	{name: "gateway/pathPrefix empty", docs: gw("\n  pathPrefix: \"\"\n"), loads: true},
	{name: "gateway/pathPrefix root", docs: gw("\n  pathPrefix: /\n"), loads: true},
	{name: "gateway/pathPrefix dots inside a segment", docs: gw("\n  pathPrefix: /a.b/..c/x\n"), loads: true},
	{name: "gateway/pathPrefix path parameters", docs: gw("\n  pathPrefix: /a/x;y\n")},
	{name: "gateway/pathPrefix percent escape", docs: gw("\n  pathPrefix: /a/x%20y\n")},
	{name: "gateway/pathPrefix decoded space", docs: gw("\n  pathPrefix: /a/x y\n"), loads: true},
	{name: "gateway/pathPrefix relative", docs: gw("\n  pathPrefix: app\n")},
	{name: "gateway/pathPrefix empty segment", docs: gw("\n  pathPrefix: /a//b\n")},
	{name: "gateway/pathPrefix dot-dot segment", docs: gw("\n  pathPrefix: /a/../b\n")},
	{name: "gateway/pathPrefix dot segment with parameters", docs: gw("\n  pathPrefix: /a/.;x/b\n")},
	{name: "gateway/pathPrefix query", docs: gw("\n  pathPrefix: /a?b\n")},
	{name: "gateway/pathPrefix backslash", docs: gw("\n  pathPrefix: /a\\b\n")},
	{name: "gateway/pathPrefix healthz", docs: gw("\n  pathPrefix: /healthz/\n")},
	{name: "gateway/pathPrefix below metrics", docs: gw("\n  pathPrefix: /metrics/x\n")},
	{name: "gateway/pathPrefix above the webhook", docs: gw("\n  pathPrefix: /hooks/\n")},
	{name: "gateway/pathPrefix beside the webhook", docs: gw("\n  pathPrefix: /hooks/other\n"), loads: true},
	{name: "gateway/pathPrefix above verify", docs: gw("\n  pathPrefix: /auth\n")},
	{name: "gateway/pathPrefix the SCIM basePath", docs: gw("\n  pathPrefix: /api/scim/v2\n") + "---\n" + scim(" {}\n"), loaderOnly: crossDoc},
	{name: "gateway/pathPrefix twice", docs: gw("\n  pathPrefix: /a\n") + "---\n" + agreeDoc(KindGateway, "u", "\n  pathPrefix: /a/\n"), loaderOnly: crossDoc},
	{name: "gateway/userHeader null", docs: gw("\n  userHeader:\n"), loads: true},
	{name: "gateway/userHeader empty", docs: gw("\n  userHeader: \"\"\n"), loads: true},
	{name: "gateway/rolesHeader null", docs: gw("\n  rolesHeader:\n"), loads: true},
	{name: "gateway/versionsHeader empty", docs: gw("\n  versionsHeader: \"\"\n"), loads: true},
	{name: "gateway/userHeader Content-Encoding", docs: gw("\n  userHeader: Content-Encoding\n"), loads: true},
	{name: "gateway/userHeader X-Forwarded-User", docs: gw("\n  userHeader: X-Forwarded-User\n"), loads: true},
	{name: "gateway/userHeader with a dot", docs: gw("\n  userHeader: X.User\n")},
	{name: "gateway/userHeader with a space", docs: gw("\n  userHeader: X User\n")},
	{name: "gateway/userHeader number", docs: gw("\n  userHeader: 5\n")},
	{name: "gateway/userHeader Authorization", docs: gw("\n  userHeader: authorization\n"), loaderOnly: headerList},
	{name: "gateway/userHeader X_Real_IP", docs: gw("\n  userHeader: X_Real_IP\n"), loaderOnly: headerList},
	{name: "gateway/headers repeat", docs: gw("\n  userHeader: X-User\n  rolesHeader: x_user\n"), loaderOnly: headerList},
	// runtime/gateway sends the user in "username" when userHeader is left out.
	{name: "gateway/rolesHeader the default user header", docs: gw("\n  rolesHeader: UserName\n"), loaderOnly: headerList},
	{name: "gateway/sharedSecret header the default user header", docs: gw("\n  upstream: http://app\n  sharedSecret: {header: USERNAME, valueFrom: {env: GW_SECRET}}\n"), loaderOnly: headerList},
	{name: "gateway/rolesHeader username beside another userHeader", docs: gw("\n  userHeader: X-User\n  rolesHeader: username\n"), loads: true},
	{name: "gateway/versionsHeader forwarding header with underscores", docs: gw("\n  versionsHeader: x_FORWARDED_proto\n"), loaderOnly: headerList},
	{name: "gateway/requiredRole null", docs: gw("\n  requiredRole:\n"), loads: true},
	{name: "gateway/requiredRole empty", docs: gw("\n  requiredRole: \"\"\n"), loads: true},
	{name: "gateway/requiredRole builtin", docs: gw("\n  requiredRole: View Only\n"), loads: true},
	{name: "gateway/requiredRole with a comma", docs: gw("\n  requiredRole: \"ops,dev\"\n") + "---\n" + agreeDoc(KindRole, "\"ops,dev\"", " {permissions: [a]}\n")},
	{name: "gateway/requiredRole unknown", docs: gw("\n  requiredRole: nobody\n"), loaderOnly: crossDoc},
	{name: "gateway/upstreamCAs null", docs: gw("\n  upstreamCAs:\n"), loads: true},
	{name: "gateway/upstreamCAs empty", docs: gw("\n  upstream: http://app\n  upstreamCAs: []\n"), loads: true},
	{name: "gateway/upstreamCAs scalar", docs: gw("\n  upstream: https://app\n  upstreamCAs: ca\n")},
	{name: "gateway/upstreamCAs twice", docs: gw("\n  upstream: https://app\n  upstreamCAs: [ca, ca]\n")},
	{name: "gateway/upstreamCAs empty item", docs: gw("\n  upstream: https://app\n  upstreamCAs: [\"\"]\n")},
	{name: "gateway/upstreamCAs with http upstream", docs: gw("\n  upstream: http://app\n  upstreamCAs: [ca]\n")},
	{name: "gateway/upstreamCAs without upstream", docs: gw("\n  upstreamCAs: [ca]\n")},
	{name: "gateway/upstreamCAs upper-case https", docs: gw("\n  upstream: HTTPS://app\n  upstreamCAs: [ca]\n")},
	{name: "gateway/upstreamCAs unknown", docs: gw("\n  upstream: https://app\n  upstreamCAs: [nosuch]\n"), loaderOnly: crossDoc},
	{name: "gateway/clientCertificate null", docs: gw("\n  clientCertificate:\n"), loads: true},
	{name: "gateway/clientCertificate empty", docs: gw("\n  clientCertificate: \"\"\n"), loads: true},
	{name: "gateway/clientCertificate with http upstream", docs: gw("\n  upstream: http://app\n  clientCertificate: client\n")},
	{name: "gateway/clientCertificate wrong usage", docs: gw("\n  upstream: https://app\n  clientCertificate: ca\n"), loaderOnly: crossDoc},
	{name: "gateway/sharedSecret null", docs: gw("\n  sharedSecret:\n"), loads: true},
	{name: "gateway/sharedSecret without upstream", docs: gw("\n  sharedSecret: {header: X-Secret, valueFrom: {env: GW_SECRET}}\n")},
	{name: "gateway/sharedSecret with upstream null", docs: gw("\n  upstream:\n  sharedSecret: {header: X-Secret, valueFrom: {env: GW_SECRET}}\n")},
	{name: "gateway/sharedSecret with upstream empty", docs: gw("\n  upstream: \"\"\n  sharedSecret: {header: X-Secret, valueFrom: {env: GW_SECRET}}\n")},
	{name: "gateway/sharedSecret scalar", docs: gw("\n  upstream: http://app\n  sharedSecret: X-Secret\n")},
	{name: "gateway/sharedSecret empty mapping", docs: gw("\n  upstream: http://app\n  sharedSecret: {}\n")},
	{name: "gateway/sharedSecret header empty", docs: gw("\n  upstream: http://app\n  sharedSecret: {header: \"\", valueFrom: {env: GW_SECRET}}\n")},
	{name: "gateway/sharedSecret header null", docs: gw("\n  upstream: http://app\n  sharedSecret: {header: null, valueFrom: {env: GW_SECRET}}\n")},
	{name: "gateway/sharedSecret valueFrom null", docs: gw("\n  upstream: http://app\n  sharedSecret: {header: X-Secret, valueFrom: null}\n")},
	{name: "gateway/sharedSecret valueFrom empty", docs: gw("\n  upstream: http://app\n  sharedSecret: {header: X-Secret, valueFrom: {}}\n")},
	{name: "gateway/sharedSecret valueFrom both", docs: gw("\n  upstream: http://app\n  sharedSecret: {header: X-Secret, valueFrom: {env: GW_SECRET, file: s.txt}}\n")},
	{name: "gateway/sharedSecret valueFrom env and empty file", docs: gw("\n  upstream: http://app\n  sharedSecret: {header: X-Secret, valueFrom: {env: GW_SECRET, file: \"\"}}\n"), loads: true},
	{name: "gateway/sharedSecret valueFrom null env and a file", docs: gw("\n  upstream: http://app\n  sharedSecret: {header: X-Secret, valueFrom: {env: null, file: s.txt}}\n"), loads: true},
	{name: "gateway/sharedSecret valueFrom plaintext", docs: gw("\n  upstream: http://app\n  sharedSecret: {header: X-Secret, valueFrom: {value: x}}\n")},
	{name: "gateway/sharedSecret header Authorization", docs: gw("\n  upstream: http://app\n  sharedSecret: {header: Authorization, valueFrom: {env: GW_SECRET}}\n"), loaderOnly: headerList},
	{name: "gateway/sharedSecret env unset", docs: gw("\n  upstream: http://app\n  sharedSecret: {header: X-Secret, valueFrom: {env: UNSET}}\n"), loaderOnly: secret},
	{name: "gateway/timeouts null", docs: gw("\n  timeouts:\n"), loads: true},
	{name: "gateway/timeouts empty", docs: gw("\n  timeouts: {}\n"), loads: true},
	{name: "gateway/timeouts zero", docs: gw("\n  timeouts: {dial: \"0\", responseHeader: \"-0s\"}\n"), loads: true},
	{name: "gateway/timeouts plus and leading dot", docs: gw("\n  timeouts: {dial: +5s, responseHeader: .5s}\n"), loads: true},
	{name: "gateway/timeouts micro signs", docs: gw("\n  timeouts: {dial: 5µs, responseHeader: 5μs}\n"), loads: true},
	{name: "gateway/timeouts dial null", docs: gw("\n  timeouts: {dial: null}\n")},
	{name: "gateway/timeouts dial empty", docs: gw("\n  timeouts: {dial: \"\"}\n")},
	{name: "gateway/timeouts dial number", docs: gw("\n  timeouts: {dial: 5}\n")},
	{name: "gateway/timeouts dial without unit", docs: gw("\n  timeouts: {dial: \"5\"}\n")},
	{name: "gateway/timeouts dial with a space", docs: gw("\n  timeouts: {dial: 5 s}\n")},
	{name: "gateway/timeouts dial a lone dot", docs: gw("\n  timeouts: {dial: .s}\n")},
	{name: "gateway/timeouts dial too long", docs: gw("\n  timeouts: {dial: 11m}\n"), loaderOnly: durRange},
	{name: "gateway/timeouts dial negative", docs: gw("\n  timeouts: {dial: -1s}\n"), loaderOnly: durRange},
	{name: "gateway/unknown field", docs: gw("\n  upstreams: [http://app]\n")},

	// ScimProvisioning.
	{name: "scim/spec null", docs: scim("\n"), loads: true},
	{name: "scim/spec empty mapping", docs: scim(" {}\n"), loads: true},
	{name: "scim/everything", docs: scim(scimToken + "    - name: b\n      valueFrom: {env: IDRECON_TEST_TOKEN}\n  basePath: /scim\n  userAttributes: [userName, displayName]\n"), loads: true},
	{name: "scim/enabled null", docs: scim("\n  enabled:\n"), loads: true},
	{name: "scim/enabled string", docs: scim("\n  enabled: \"true\"\n")},
	{name: "scim/enabled yes", docs: scim("\n  enabled: yes\n")},
	{name: "scim/enabled number", docs: scim("\n  enabled: 1\n")},
	{name: "scim/enabled without tokens", docs: scim("\n  enabled: true\n")},
	{name: "scim/enabled with tokens null", docs: scim("\n  enabled: true\n  tokens:\n")},
	{name: "scim/enabled with tokens empty", docs: scim("\n  enabled: true\n  tokens: []\n")},
	{name: "scim/tokens null", docs: scim("\n  tokens:\n"), loads: true},
	{name: "scim/tokens scalar", docs: scim("\n  tokens: a\n")},
	{name: "scim/tokens null item", docs: scim("\n  tokens: [null]\n")},
	{name: "scim/token name empty", docs: scim("\n  tokens: [{name: \"\", sha256: " + hex64 + "}]\n")},
	{name: "scim/token name null", docs: scim("\n  tokens: [{name: null, sha256: " + hex64 + "}]\n")},
	{name: "scim/token sha256 short", docs: scim("\n  tokens: [{name: a, sha256: abab}]\n")},
	{name: "scim/token sha256 and valueFrom", docs: scim("\n  tokens: [{name: a, sha256: " + hex64 + ", valueFrom: {env: IDRECON_TEST_TOKEN}}]\n")},
	{name: "scim/token neither", docs: scim("\n  tokens: [{name: a}]\n")},
	{name: "scim/token sha256 with valueFrom null", docs: scim("\n  tokens: [{name: a, sha256: " + hex64 + ", valueFrom: null}]\n"), loads: true},
	{name: "scim/token valueFrom with sha256 empty", docs: scim("\n  tokens: [{name: a, sha256: \"\", valueFrom: {env: IDRECON_TEST_TOKEN}}]\n"), loads: true},
	{name: "scim/token sha256 empty alone", docs: scim("\n  tokens: [{name: a, sha256: \"\"}]\n")},
	{name: "scim/token valueFrom empty", docs: scim("\n  tokens: [{name: a, valueFrom: {}}]\n")},
	{name: "scim/token valueFrom both empty", docs: scim("\n  tokens: [{name: a, valueFrom: {env: \"\", file: \"\"}}]\n")},
	{name: "scim/token valueFrom file and empty env", docs: scim("\n  tokens: [{name: a, valueFrom: {env: \"\", file: token.txt}}]\n"), loads: true},
	{name: "scim/token plaintext", docs: scim("\n  tokens: [{name: a, value: x}]\n")},
	{name: "scim/token env unset", docs: scim("\n  tokens: [{name: a, valueFrom: {env: UNSET}}]\n"), loaderOnly: secret},
	{name: "scim/token from env too short", docs: scim("\n  tokens: [{name: a, valueFrom: {env: IDRECON_TEST_SHORT_TOKEN}}]\n"), loaderOnly: secret},
	{name: "scim/token names repeat", docs: scim("\n  tokens: [{name: a, sha256: " + hex64 + "}, {name: a, valueFrom: {env: IDRECON_TEST_TOKEN}}]\n"), loaderOnly: uniqueBy},
	{name: "scim/basePath null", docs: scim("\n  basePath:\n"), loads: true},
	{name: "scim/basePath empty", docs: scim("\n  basePath: \"\"\n"), loads: true},
	{name: "scim/basePath with dots inside segments", docs: scim("\n  basePath: /a.b/..c\n"), loads: true},
	{name: "scim/basePath relative", docs: scim("\n  basePath: api\n")},
	{name: "scim/basePath trailing slash", docs: scim("\n  basePath: /api/\n")},
	{name: "scim/basePath space", docs: scim("\n  basePath: /a b\n")},
	{name: "scim/basePath dot-dot", docs: scim("\n  basePath: /a/../b\n")},
	{name: "scim/basePath healthz", docs: scim("\n  basePath: /healthz\n")},
	{name: "scim/basePath above the webhook", docs: scim("\n  basePath: /hooks\n")},
	{name: "scim/basePath verify", docs: scim("\n  basePath: /auth/verify\n")},
	{name: "scim/basePath above verify", docs: scim("\n  basePath: /auth\n")},
	{name: "scim/basePath /me without a SAML base path", docs: scim("\n  basePath: /me\n"), loaderOnly: crossDoc},
	{name: "scim/basePath /me with a SAML base path", docs: scim("\n  basePath: /me\n") + "---\n" + saml(strings.Replace(samlMin, "sp.example", "sp.example/sso", 1)), loads: true},
	{name: "scim/baseURL", docs: scim("\n  baseURL: https://scim.example/api/scim/v2\n"), loads: true},
	{name: "scim/baseURL trailing slash", docs: scim("\n  baseURL: https://scim.example/api/scim/v2/\n"), loads: true},
	{name: "scim/baseURL upper-case scheme and a port", docs: scim("\n  baseURL: HTTP://scim.example:8080/api/scim/v2\n"), loads: true},
	{name: "scim/baseURL null", docs: scim("\n  baseURL:\n"), loads: true},
	{name: "scim/baseURL empty", docs: scim("\n  baseURL: \"\"\n"), loads: true},
	{name: "scim/baseURL with basePath empty", docs: scim("\n  basePath: \"\"\n  baseURL: https://scim.example/api/scim/v2\n"), loads: true},
	{name: "scim/baseURL with its own basePath", docs: scim("\n  basePath: /scim\n  baseURL: https://scim.example/scim\n"), loads: true},
	{name: "scim/baseURL origin only", docs: scim("\n  baseURL: https://scim.example\n")},
	{name: "scim/baseURL root", docs: scim("\n  baseURL: https://scim.example/\n")},
	{name: "scim/baseURL other path", docs: scim("\n  baseURL: https://scim.example/scim\n")},
	{name: "scim/baseURL two trailing slashes", docs: scim("\n  baseURL: https://scim.example/api/scim/v2//\n")},
	{name: "scim/baseURL escaped slash", docs: scim("\n  baseURL: https://scim.example/api/scim%2Fv2\n")},
	{name: "scim/baseURL other path with basePath null", docs: scim("\n  basePath:\n  baseURL: https://scim.example/scim\n")},
	{name: "scim/baseURL not the own basePath", docs: scim("\n  basePath: /scim\n  baseURL: https://scim.example/api/scim/v2\n"), loaderOnly: twoFields},
	{name: "scim/baseURL Entra's flag", docs: scim("\n  baseURL: https://scim.example/api/scim/v2?aadOptscim062020\n")},
	{name: "scim/baseURL empty query", docs: scim("\n  baseURL: https://scim.example/api/scim/v2?\n")},
	{name: "scim/baseURL fragment", docs: scim("\n  baseURL: \"https://scim.example/api/scim/v2#\"\n")},
	{name: "scim/baseURL relative", docs: scim("\n  baseURL: /api/scim/v2\n")},
	{name: "scim/baseURL no host", docs: scim("\n  baseURL: https:///api/scim/v2\n")},
	{name: "scim/baseURL other scheme", docs: scim("\n  baseURL: ftp://scim.example/api/scim/v2\n")},
	{name: "scim/baseURL credentials", docs: scim("\n  baseURL: https://u@scim.example/api/scim/v2\n")},
	{name: "scim/baseURL bad port", docs: scim("\n  baseURL: https://scim.example:x/api/scim/v2\n"), loaderOnly: urlGrammar},
	{name: "scim/baseURL number", docs: scim("\n  baseURL: 5\n")},
	{name: "scim/userAttributes null", docs: scim("\n  userAttributes:\n"), loads: true},
	{name: "scim/userAttributes empty", docs: scim("\n  userAttributes: []\n"), loads: true},
	{name: "scim/userAttributes unknown", docs: scim("\n  userAttributes: [shoeSize]\n")},
	{name: "scim/userAttributes null item", docs: scim("\n  userAttributes: [null]\n")},
	{name: "scim/userAttributes twice", docs: scim("\n  userAttributes: [active, active]\n")},
	{name: "scim/two documents", docs: scim(" {}\n") + "---\n" + agreeDoc(KindScimProvisioning, "u", " {}\n"), loaderOnly: oneOfKind},

	// Certificate.
	{name: "certificate/file", docs: cert(" {usage: saml-idp-signing, file: certs/idp.der}\n"), loads: true},
	{name: "certificate/pem", docs: cert("\n  usage: tls-ca\n  pem: |\n@PEM@"), loads: true},
	{name: "certificate/pem empty beside file", docs: cert(" {usage: tls-ca, pem: \"\", file: certs/tls.pem}\n"), loads: true},
	{name: "certificate/pem null beside file", docs: cert(" {usage: tls-ca, pem: null, file: certs/tls.pem}\n"), loads: true},
	{name: "certificate/file null beside pem", docs: cert("\n  usage: tls-ca\n  file:\n  pem: |\n@PEM@"), loads: true},
	{name: "certificate/privateKeyFrom null on a keyless usage", docs: cert(" {usage: saml-idp-signing, file: certs/idp.cer, privateKeyFrom: null}\n"), loads: true},
	{name: "certificate/privateKeyFrom file with env empty", docs: cert(" {usage: tls, file: certs/tls.pem, privateKeyFrom: {file: certs/tls-key.pem, env: \"\"}}\n"), loads: true},
	{name: "certificate/spec null", docs: cert("\n")},
	{name: "certificate/usage empty", docs: cert(" {usage: \"\", file: certs/idp.cer}\n")},
	{name: "certificate/usage null", docs: cert(" {usage: null, file: certs/idp.cer}\n")},
	{name: "certificate/usage unknown", docs: cert(" {usage: signing, file: certs/idp.cer}\n")},
	{name: "certificate/usage number", docs: cert(" {usage: 5, file: certs/idp.cer}\n")},
	{name: "certificate/neither pem nor file", docs: cert(" {usage: saml-idp-signing}\n")},
	{name: "certificate/pem and file both empty", docs: cert(" {usage: saml-idp-signing, pem: \"\", file: \"\"}\n")},
	{name: "certificate/pem and file", docs: cert("\n  usage: tls-ca\n  file: certs/tls.pem\n  pem: |\n@PEM@")},
	{name: "certificate/file number", docs: cert(" {usage: saml-idp-signing, file: 5}\n")},
	{name: "certificate/key on a keyless usage", docs: cert(" {usage: tls-ca, file: certs/tls.pem, privateKeyFrom: {file: certs/tls-key.pem}}\n")},
	{name: "certificate/no key on an own usage", docs: cert(" {usage: tls, file: certs/tls.pem}\n")},
	{name: "certificate/key null on an own usage", docs: cert(" {usage: tls, file: certs/tls.pem, privateKeyFrom: null}\n")},
	{name: "certificate/key empty mapping", docs: cert(" {usage: tls, file: certs/tls.pem, privateKeyFrom: {}}\n")},
	{name: "certificate/key inline", docs: cert(" {usage: tls, file: certs/tls.pem, privateKey: x}\n")},
	{name: "certificate/pem holding a key", docs: cert(" {usage: tls-ca, pem: \"-----BEGIN PRIVATE KEY-----\\nx\\n-----END PRIVATE KEY-----\\n\"}\n")},
	{name: "certificate/file absolute", docs: cert(" {usage: tls-ca, file: /etc/hosts}\n"), loaderOnly: fileRead},
	{name: "certificate/file missing", docs: cert(" {usage: tls-ca, file: certs/nope.pem}\n"), loaderOnly: fileRead},
	{name: "certificate/pem garbage", docs: cert(" {usage: tls-ca, pem: garbage}\n"), loaderOnly: certBody},
	{name: "certificate/key mismatch", docs: cert(" {usage: tls, file: certs/tls.pem, privateKeyFrom: {file: certs/other-key.pem}}\n"), loaderOnly: certBody},
	{name: "certificate/key env unset", docs: cert(" {usage: tls, file: certs/tls.pem, privateKeyFrom: {env: UNSET}}\n"), loaderOnly: secret},

	// SamlServiceProvider.
	{name: "saml/minimal", docs: saml(samlMin), loads: true},
	{name: "saml/everything", loads: true, docs: saml(samlMin + `  enabled: true
  spSigningCertificate: sp
  spEncryptionCertificate: enc
  signAuthnRequests: true
  nameIDFormat: urn:oasis:names:tc:SAML:2.0:nameid-format:persistent
  attributes: {username: u, email: e, firstName: f, lastName: l, groups: g}
  allowedClockSkew: 1m
  sessionLifetime: 12h
  allowIdpInitiated: false
  allowSHA1: false
  consoleRole: ops
`)},
	{name: "saml/spec null", docs: saml("\n")},
	{name: "saml/enabled null", docs: saml(samlMin + "  enabled:\n"), loads: true},
	{name: "saml/enabled string", docs: saml(samlMin + "  enabled: \"false\"\n")},
	{name: "saml/signAuthnRequests null", docs: saml(samlMin + "  signAuthnRequests:\n"), loads: true},
	{name: "saml/allowSHA1 null", docs: saml(samlMin + "  allowSHA1:\n"), loads: true},
	{name: "saml/allowIdpInitiated null", docs: saml(samlMin + "  allowIdpInitiated:\n"), loads: true},
	{name: "saml/consoleRole empty", docs: saml(samlMin + "  consoleRole: \"\"\n"), loads: true},
	{name: "saml/consoleRole null", docs: saml(samlMin + "  consoleRole:\n"), loads: true},
	{name: "saml/consoleRole number", docs: saml(samlMin + "  consoleRole: 5\n")},
	{name: "saml/consoleRole unknown", docs: saml(samlMin + "  consoleRole: nobody\n"), loaderOnly: crossDoc},
	{name: "saml/spSigningCertificate empty", docs: saml(samlMin + "  spSigningCertificate: \"\"\n"), loads: true},
	{name: "saml/spEncryptionCertificate null", docs: saml(samlMin + "  spEncryptionCertificate:\n"), loads: true},
	{name: "saml/spSigningCertificate wrong usage", docs: saml(samlMin + "  spSigningCertificate: idp\n"), loaderOnly: crossDoc},
	{name: "saml/signAuthnRequests without certificate", docs: saml(samlMin + "  signAuthnRequests: true\n")},
	{name: "saml/signAuthnRequests with certificate empty", docs: saml(samlMin + "  signAuthnRequests: true\n  spSigningCertificate: \"\"\n")},
	{name: "saml/signAuthnRequests with certificate null", docs: saml(samlMin + "  signAuthnRequests: true\n  spSigningCertificate:\n")},
	{name: "saml/nameIDFormat empty", docs: saml(samlMin + "  nameIDFormat: \"\"\n"), loads: true},
	{name: "saml/nameIDFormat null", docs: saml(samlMin + "  nameIDFormat:\n"), loads: true},
	{name: "saml/nameIDFormat unknown", docs: saml(samlMin + "  nameIDFormat: email\n")},
	{name: "saml/attributes null", docs: saml(samlMin + "  attributes:\n"), loads: true},
	{name: "saml/attributes empty and null fields", docs: saml(samlMin + "  attributes: {username: \"\", groups: null}\n"), loads: true},
	{name: "saml/attributes unknown field", docs: saml(samlMin + "  attributes: {role: r}\n")},
	{name: "saml/allowedClockSkew zero", docs: saml(samlMin + "  allowedClockSkew: \"0\"\n"), loads: true},
	{name: "saml/allowedClockSkew null", docs: saml(samlMin + "  allowedClockSkew:\n")},
	{name: "saml/allowedClockSkew number", docs: saml(samlMin + "  allowedClockSkew: 120\n")},
	{name: "saml/allowedClockSkew too large", docs: saml(samlMin + "  allowedClockSkew: 6m\n"), loaderOnly: durRange},
	{name: "saml/sessionLifetime negative", docs: saml(samlMin + "  sessionLifetime: -1h\n"), loaderOnly: durRange},
	{name: "saml/sessionLifetime at the maximum", docs: saml(samlMin + "  sessionLifetime: 8760h\n"), loads: true},
	{name: "saml/sessionLifetime too long", docs: saml(samlMin + "  sessionLifetime: 8761h\n"), loaderOnly: durRange},
	{name: "saml/sessionLifetime zero", docs: saml(samlMin + "  sessionLifetime: \"0\"\n"), loads: true},
	{name: "saml/entityID empty", docs: saml(strings.Replace(samlMin, "urn:t", "\"\"", 1))},
	{name: "saml/entityID null", docs: saml(strings.Replace(samlMin, " urn:t", "", 1))},
	{name: "saml/baseURL upper-case scheme", docs: saml(strings.Replace(samlMin, "https://sp.example", "HTTPS://sp.example", 1)), loads: true},
	{name: "saml/baseURL path with a space", docs: saml(strings.Replace(samlMin, "https://sp.example", "https://sp.example/a b", 1)), loads: true},
	{name: "saml/baseURL relative", docs: saml(strings.Replace(samlMin, "https://sp.example", "/sso", 1))},
	{name: "saml/baseURL query", docs: saml(strings.Replace(samlMin, "https://sp.example", "https://sp.example/?a=b", 1))},
	{name: "saml/baseURL credentials", docs: saml(strings.Replace(samlMin, "https://sp.example", "https://u@sp.example", 1))},
	{name: "saml/baseURL null", docs: saml(strings.Replace(samlMin, " https://sp.example", "", 1))},
	{name: "saml/baseURL empty query", docs: saml(strings.Replace(samlMin, "https://sp.example", "https://sp.example?", 1))},
	{name: "saml/baseURL empty fragment", docs: saml(strings.Replace(samlMin, "https://sp.example", "\"https://sp.example/sso#\"", 1))},
	{name: "saml/enabled without signingCertificates", docs: saml("\n  enabled: true" + samlIDP(" {metadataURL: https://idp.example/md, requireSignedMetadata: false}\n"))},
	{name: "saml/disabled without signingCertificates", docs: saml(samlIDP(" {metadataURL: https://idp.example/md, requireSignedMetadata: false}\n")), loads: true},
	{name: "saml/idp null", docs: saml(samlIDP("\n"))},
	{name: "saml/idp empty", docs: saml(samlIDP(" {}\n"))},
	{name: "saml/idp metadataFile", docs: saml(samlIDP(" {metadataFile: idp/md.xml, signingCertificates: [idp]}\n")), loads: true},
	{name: "saml/idp metadataFile missing", docs: saml(samlIDP(" {metadataFile: idp/nope.xml, signingCertificates: [idp]}\n")), loaderOnly: fileRead},
	{name: "saml/idp metadataFile and metadataURL", docs: saml(samlIDP(" {metadataFile: idp/md.xml, metadataURL: https://idp.example/md, signingCertificates: [idp]}\n"))},
	{name: "saml/idp metadataFile and empty metadataURL", docs: saml(samlIDP(" {metadataFile: idp/md.xml, metadataURL: \"\", signingCertificates: [idp]}\n")), loads: true},
	{name: "saml/idp metadataURL and null metadataFile", docs: saml(samlIDP(" {metadataFile: null, metadataURL: https://idp.example/md, signingCertificates: [idp]}\n")), loads: true},
	{name: "saml/idp both empty", docs: saml(samlIDP(" {metadataFile: \"\", metadataURL: \"\", signingCertificates: [idp]}\n"))},
	{name: "saml/idp metadataURL upper-case scheme", docs: saml(samlIDP(" {metadataURL: HTTPS://idp.example/md, signingCertificates: [idp]}\n")), loads: true},
	{name: "saml/idp metadataURL http", docs: saml(samlIDP(" {metadataURL: http://idp.example/md, signingCertificates: [idp]}\n"))},
	{name: "saml/idp metadataURL http allowed", docs: saml(samlIDP(" {metadataURL: http://idp.example/md, allowInsecureMetadataURL: true, signingCertificates: [idp]}\n")), loads: true},
	{name: "saml/idp metadataURL credentials", docs: saml(samlIDP(" {metadataURL: https://u@idp.example/md, signingCertificates: [idp]}\n"))},
	{name: "saml/idp metadataURL relative", docs: saml(samlIDP(" {metadataURL: /md, signingCertificates: [idp]}\n"))},
	{name: "saml/idp metadataURL fragment", docs: saml(samlIDP(" {metadataURL: \"https://idp.example/md#x\", signingCertificates: [idp]}\n"))},
	{name: "saml/idp metadataURL fragment after the host", docs: saml(samlIDP(" {metadataURL: \"https://idp.example#x\", signingCertificates: [idp]}\n"))},
	{name: "saml/idp metadataURL empty fragment", docs: saml(samlIDP(" {metadataURL: \"https://idp.example/md?appid=1#\", signingCertificates: [idp]}\n"))},
	{name: "saml/idp metadataURL bad escape", docs: saml(samlIDP(" {metadataURL: \"https://idp.example/a%zz\", signingCertificates: [idp]}\n")), loaderOnly: urlGrammar},
	{name: "saml/idp metadataURL with a query", docs: saml(samlIDP(" {metadataURL: \"https://idp.example/md?appid=1\", signingCertificates: [idp]}\n")), loads: true},
	{name: "saml/idp signingCertificates null", docs: saml(samlIDP(" {metadataURL: https://idp.example/md, signingCertificates: null}\n"))},
	{name: "saml/idp signingCertificates empty", docs: saml(samlIDP(" {metadataURL: https://idp.example/md, signingCertificates: []}\n"))},
	{name: "saml/idp signingCertificates empty item", docs: saml(samlIDP(" {metadataURL: https://idp.example/md, signingCertificates: [\"\"]}\n"))},
	{name: "saml/idp signingCertificates unknown", docs: saml(samlIDP(" {metadataURL: https://idp.example/md, signingCertificates: [nosuch]}\n")), loaderOnly: crossDoc},
	{name: "saml/idp unsigned without certificates", docs: saml(samlIDP(" {metadataURL: https://idp.example/md, requireSignedMetadata: false, signingCertificates: null}\n")), loads: true},
	{name: "saml/idp requireSignedMetadata null", docs: saml(samlIDP(" {metadataURL: https://idp.example/md, requireSignedMetadata: null, signingCertificates: [idp]}\n")), loads: true},
	{name: "saml/idp requireSignedMetadata null without certificates", docs: saml(samlIDP(" {metadataURL: https://idp.example/md, requireSignedMetadata: null}\n"))},
	{name: "saml/idp allowInsecureMetadataURL null", docs: saml(samlIDP(" {metadataURL: https://idp.example/md, allowInsecureMetadataURL: null, allowPrivateMetadataHost: null, signingCertificates: [idp]}\n")), loads: true},
	{name: "saml/idp metadataRefresh negative", docs: saml(samlIDP(" {metadataURL: https://idp.example/md, metadataRefresh: -1h, signingCertificates: [idp]}\n")), loaderOnly: durRange},
	{name: "saml/idp metadataRefresh too often", docs: saml(samlIDP(" {metadataURL: https://idp.example/md, metadataRefresh: 59s, signingCertificates: [idp]}\n")), loaderOnly: durRange},
	{name: "saml/idp metadataRefresh at the minimum", docs: saml(samlIDP(" {metadataURL: https://idp.example/md, metadataRefresh: 1m, signingCertificates: [idp]}\n")), loads: true},
	{name: "saml/idp metadataRefresh zero", docs: saml(samlIDP(" {metadataURL: https://idp.example/md, metadataRefresh: \"0\", signingCertificates: [idp]}\n")), loads: true},
	{name: "saml/two documents", docs: saml(samlMin) + "---\n" + agreeDoc(KindSamlServiceProvider, "u", samlMin), loaderOnly: oneOfKind},

	// Application.
	{name: "application/versions", docs: app(" {versions: [\"1.0\", v 2, .x]}\n"), loads: true},
	{name: "application/spec null", docs: app("\n")},
	{name: "application/versions null", docs: app(" {versions: null}\n")},
	{name: "application/versions empty", docs: app(" {versions: []}\n")},
	{name: "application/versions scalar", docs: app(" {versions: \"1.0\"}\n")},
	{name: "application/version number", docs: app(" {versions: [1.0]}\n")},
	{name: "application/version empty", docs: app(" {versions: [\"\"]}\n")},
	{name: "application/version null", docs: app(" {versions: [null]}\n")},
	{name: "application/version with a slash", docs: app(" {versions: [a/b]}\n")},
	{name: "application/version star", docs: app(" {versions: [\"*\"]}\n")},
	{name: "application/version leading space", docs: app(" {versions: [\" 1.0\"]}\n")},
	{name: "application/version trailing tab", docs: app(" {versions: [\"1.0\\t\"]}\n")},
	{name: "application/version control character", docs: app(" {versions: [\"1\\x010\"]}\n")},
	{name: "application/versions repeat", docs: app(" {versions: [\"1.0\", \"1.0\"]}\n")},
	{name: "application/name with a slash", docs: agreeDoc(KindApplication, "a/b", " {versions: [\"1\"]}\n")},
	{name: "application/name star", docs: agreeDoc(KindApplication, "\"*\"", " {versions: [\"1\"]}\n")},
	{name: "application/names differing only by case", docs: agreeDoc(KindApplication, "App", " {versions: [\"1\"]}\n"), loaderOnly: crossDoc},

	// Role.
	{name: "role/description null", docs: role(" {description: null, permissions: [a]}\n"), loads: true},
	{name: "role/description empty", docs: role(" {description: \"\", permissions: [a]}\n"), loads: true},
	{name: "role/permission with a form feed", docs: role(" {permissions: [\"a\\fb\"]}\n"), loads: true},
	{name: "role/permission with a no-break space", docs: role(" {permissions: [\"a\u00a0b\"]}\n"), loads: true},
	{name: "role/spec null", docs: role("\n")},
	{name: "role/description number", docs: role(" {description: 5, permissions: [a]}\n")},
	{name: "role/permissions null", docs: role(" {permissions: null}\n")},
	{name: "role/permissions empty", docs: role(" {permissions: []}\n")},
	{name: "role/permission empty", docs: role(" {permissions: [\"\"]}\n")},
	{name: "role/permission with a space", docs: role(" {permissions: [a b]}\n")},
	{name: "role/permission number", docs: role(" {permissions: [1]}\n")},
	{name: "role/permissions repeat", docs: role(" {permissions: [a, a]}\n")},
	{name: "role/builtin name", docs: agreeDoc(KindRole, "Administrator", " {permissions: [a]}\n")},
	{name: "role/builtin name but for case", docs: agreeDoc(KindRole, "administrator", " {permissions: [a]}\n")},
	{name: "role/builtin name with a long s", docs: agreeDoc(KindRole, "\"Admini\u017ftrator\"", " {permissions: [a]}\n")},
	{name: "role/names differing only by case", docs: role(" {permissions: [a]}\n") + "---\n" + agreeDoc(KindRole, "T", " {permissions: [a]}\n"), loaderOnly: crossDoc},
	{name: "role/name and application name differing only by case", docs: role(" {permissions: [a]}\n") + "---\n" + agreeDoc(KindApplication, "T", " {versions: [\"1\"]}\n"), loads: true},

	// AccessAssignment.
	{name: "assignment/group and roles", docs: aa(" {subject: {group: G}, roles: [ops, Developer]}\n"), loads: true},
	{name: "assignment/user and versions", docs: aa(" {subject: {user: u}, applicationVersions: [app/1.0, app/*]}\n"), loads: true},
	{name: "assignment/user empty beside group", docs: aa(" {subject: {group: G, user: \"\"}, roles: [ops]}\n"), loads: true},
	{name: "assignment/user null beside group", docs: aa(" {subject: {group: G, user: null}, roles: [ops]}\n"), loads: true},
	{name: "assignment/roles null beside versions", docs: aa(" {subject: {group: G}, roles: null, applicationVersions: [app/1.0]}\n"), loads: true},
	{name: "assignment/roles empty beside versions", docs: aa(" {subject: {group: G}, roles: [], applicationVersions: [app/1.0]}\n"), loads: true},
	{name: "assignment/versions null beside roles", docs: aa(" {subject: {group: G}, roles: [ops], applicationVersions: null}\n"), loads: true},
	{name: "assignment/spec null", docs: aa("\n")},
	{name: "assignment/subject null", docs: aa(" {subject: null, roles: [ops]}\n")},
	{name: "assignment/subject empty", docs: aa(" {subject: {}, roles: [ops]}\n")},
	{name: "assignment/subject both", docs: aa(" {subject: {group: G, user: u}, roles: [ops]}\n")},
	{name: "assignment/subject group empty", docs: aa(" {subject: {group: \"\"}, roles: [ops]}\n")},
	{name: "assignment/subject both empty", docs: aa(" {subject: {group: \"\", user: null}, roles: [ops]}\n")},
	{name: "assignment/no grant", docs: aa(" {subject: {group: G}}\n")},
	{name: "assignment/grants null", docs: aa(" {subject: {group: G}, roles: null, applicationVersions: null}\n")},
	{name: "assignment/grants empty", docs: aa(" {subject: {group: G}, roles: [], applicationVersions: []}\n")},
	{name: "assignment/roles scalar", docs: aa(" {subject: {group: G}, roles: ops}\n")},
	{name: "assignment/role empty", docs: aa(" {subject: {group: G}, roles: [\"\"]}\n")},
	{name: "assignment/roles repeat", docs: aa(" {subject: {group: G}, roles: [ops, ops]}\n")},
	{name: "assignment/version without app", docs: aa(" {subject: {group: G}, applicationVersions: [app]}\n")},
	{name: "assignment/version with two slashes", docs: aa(" {subject: {group: G}, applicationVersions: [app/1/2]}\n")},
	{name: "assignment/role unknown", docs: aa(" {subject: {group: G}, roles: [nobody]}\n"), loaderOnly: crossDoc},
	{name: "assignment/application unknown", docs: aa(" {subject: {group: G}, applicationVersions: [nope/1.0]}\n"), loaderOnly: crossDoc},
	{name: "assignment/version unknown", docs: aa(" {subject: {group: G}, applicationVersions: [app/9.9]}\n"), loaderOnly: crossDoc},
}

// TestLoaderAndSchemaAgree: a document the loader accepts passes the
// schema, and one the schema accepts loads, unless only the loader can see
// the mistake (agreeCase.loaderOnly). The examples are loaded and checked
// too.
func TestLoaderAndSchemaAgree(t *testing.T) {
	sch := compileSchema(t)

	examples, err := filepath.Glob(filepath.Join("..", "examples", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range examples {
		if files, _ := specFiles(context.Background(), dir, DefaultMaxBytes); len(files) == 0 {
			continue // not a spec repo (systemd units)
		}
		t.Run(filepath.ToSlash(dir), func(t *testing.T) {
			if _, err := Load(context.Background(), dir, LoadOptions{Getenv: getenvFrom(nil)}); err != nil {
				t.Fatalf("the loader refuses the example: %v", err)
			}
			docs, perr := yamlDocs(t, dir)
			if perr != nil || len(docs) == 0 {
				t.Fatalf("%d documents, parse error %v", len(docs), perr)
			}
			for _, name := range slices.Sorted(maps.Keys(docs)) {
				if err := sch.Validate(docs[name]); err != nil {
					t.Errorf("loader accepts, schema rejects %s: %v", name, err)
				}
			}
		})
	}

	pem := indent(string(certPEM(fixtures(t)["tls"].cert)), "    ")
	seen := map[string]bool{}
	for _, tt := range agreeCases {
		if seen[tt.name] {
			t.Fatalf("two cases named %q", tt.name)
		}
		seen[tt.name] = true
		t.Run(tt.name, func(t *testing.T) {
			if tt.gap != "" {
				t.Skip("known disagreement: " + tt.gap)
			}
			if tt.loads && tt.loaderOnly != "" {
				t.Fatal("loaderOnly is for cases the loader refuses")
			}
			root := t.TempDir()
			env := writeFixtures(t, root)
			env["GW_SECRET"] = "s3cret-value"
			writeFile(t, filepath.Join(root, "idp", "md.xml"), []byte("<EntityDescriptor/>\n"))
			writeFile(t, filepath.Join(root, "s.txt"), []byte("s3cret-value\n"))
			writeFile(t, filepath.Join(root, "token.txt"), []byte(env["IDRECON_TEST_TOKEN"]+"\n"))
			writeFile(t, filepath.Join(root, "context.yaml"), []byte(agreeContext))
			writeFile(t, filepath.Join(root, "case.yaml"), []byte(strings.ReplaceAll(tt.docs, "@PEM@", pem)))

			_, loadErr := Load(context.Background(), root, LoadOptions{Getenv: getenvFrom(env), Now: testNow})
			if loadErr != nil && !errors.Is(loadErr, ErrInvalid) {
				t.Fatalf("load: %v", loadErr)
			}
			schemaErr := validateTree(t, sch, root)

			switch loads := loadErr == nil; {
			case loads != tt.loads:
				t.Errorf("the table says loads=%v, but the loader says %v; fix the table", tt.loads, loadErr)
			case loads && schemaErr != nil:
				t.Errorf("loader accepts, schema rejects:\n%v", schemaErr)
			case !loads && schemaErr == nil && tt.loaderOnly == "":
				t.Errorf("schema accepts, loader rejects (a schema could say this):\n%v", loadErr)
			case !loads && schemaErr != nil && tt.loaderOnly != "":
				t.Errorf("marked loader-only (%s), but the schema rejects it too:\n%v", tt.loaderOnly, schemaErr)
			}
		})
	}
}

// validateTree checks every document below root against sch and returns
// the rejections, or nil.
func validateTree(t *testing.T, sch *jsonschema.Schema, root string) error {
	t.Helper()
	docs, perr := yamlDocs(t, root)
	if perr != nil {
		t.Fatalf("YAML: %v", perr)
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(docs)) {
		if err := sch.Validate(docs[name]); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// TestAgreeCasesCoverEveryKind keeps the table honest as kinds are added.
func TestAgreeCasesCoverEveryKind(t *testing.T) {
	for _, kind := range Kinds {
		var valid, invalid int
		for _, c := range agreeCases {
			if strings.Contains(c.docs, "kind: "+kind+"\n") && c.gap == "" {
				if c.loads {
					valid++
				} else if c.loaderOnly == "" {
					invalid++
				}
			}
		}
		if valid == 0 || invalid == 0 {
			t.Errorf("%s: %d valid and %d invalid cases; add some", kind, valid, invalid)
		}
	}
}
