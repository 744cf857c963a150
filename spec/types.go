package spec

import (
	"crypto"
	"encoding/json"
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// APIVersion is the only apiVersion idrecon accepts.
const APIVersion = "idrecon.io/v1alpha1"

// Document kinds.
const (
	KindScimProvisioning    = "ScimProvisioning"
	KindCertificate         = "Certificate"
	KindSamlServiceProvider = "SamlServiceProvider"
	KindApplication         = "Application"
	KindRole                = "Role"
	KindAccessAssignment    = "AccessAssignment"
	KindGateway             = "Gateway"
)

// kinds is the one table of kinds, in the order a plan applies creates
// (things that others refer to come first), each with a constructor of its
// spec type. The loader, the admin API and the durable store all read it:
// adding a kind means adding a line here (and its schema under schemas/).
var kinds = []struct {
	kind    string
	newSpec func() any
}{
	{KindScimProvisioning, func() any { return new(ScimProvisioning) }},
	{KindCertificate, func() any { return new(Certificate) }},
	{KindSamlServiceProvider, func() any { return new(SamlServiceProvider) }},
	{KindApplication, func() any { return new(Application) }},
	{KindRole, func() any { return new(Role) }},
	{KindAccessAssignment, func() any { return new(AccessAssignment) }},
	{KindGateway, func() any { return new(Gateway) }},
}

// Kinds lists every kind in the order a plan applies creates: things that
// others refer to come first.
var Kinds = func() []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = k.kind
	}
	return out
}()

// NewSpec returns a new zero value of kind's spec type, a pointer such as
// *Role; ok is false for an unknown kind.
func NewSpec(kind string) (v any, ok bool) {
	for _, k := range kinds {
		if k.kind == kind {
			return k.newSpec(), true
		}
	}
	return nil, false
}

// Ref names one resource.
type Ref struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

func (r Ref) String() string { return r.Kind + "/" + r.Name }

// Position is where a document or field was written.
type Position struct {
	File   string `json:"file,omitempty"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
}

func (p Position) String() string {
	switch {
	case p.File == "":
		return "-"
	case p.Line == 0:
		return p.File // a document that was not read from a file
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// Metadata is the common document metadata.
type Metadata struct {
	Name string `yaml:"name" json:"name"`
}

// Document is one YAML document of a spec repo. Spec holds a pointer to the
// kind's type: *ScimProvisioning, *Certificate, *SamlServiceProvider,
// *Application, *Role or *AccessAssignment.
type Document struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       any      `json:"spec"`
	Pos        Position `json:"-"`
}

// Ref returns the document's identity.
func (d *Document) Ref() Ref { return Ref{Kind: d.Kind, Name: d.Metadata.Name} }

// Set is a loaded, resolved and validated spec: every document of a spec repo,
// sorted by kind (in Kinds order) and name.
type Set struct {
	Docs []*Document
	// Revision identifies the rendered content (after secrets and files were
	// resolved), so an unchanged spec can be recognised cheaply.
	Revision string
	// Warnings are findings that do not stop a load (a certificate about to expire).
	Warnings []string

	byRef map[Ref]*Document // built by Load; nil for a Set made by hand
}

// ScimProvisioning enables the SCIM 2.0 endpoints Entra provisions into.
type ScimProvisioning struct {
	Enabled  bool   `yaml:"enabled" json:"enabled"`
	BasePath string `yaml:"basePath,omitempty" json:"basePath,omitempty"`
	// BaseURL is the URL clients reach the endpoints at (Entra's Tenant
	// URL), its path the BasePath. When set, every URL the server emits
	// is built from it: behind a TLS-terminating proxy the request knows
	// neither the public scheme nor, when the proxy rewrites Host, the
	// public host. When empty they come from the request.
	BaseURL string      `yaml:"baseURL,omitempty" json:"baseURL,omitempty"`
	Tokens  []ScimToken `yaml:"tokens,omitempty" json:"tokens,omitempty"`
	// UserAttributes are the user attributes kept; others are accepted and dropped.
	UserAttributes []string `yaml:"userAttributes,omitempty" json:"userAttributes,omitempty"`
}

// DefaultScimBasePath is where the SCIM endpoints live unless basePath says otherwise.
const DefaultScimBasePath = "/api/scim/v2"

// DefaultUserAttributes is the attribute set of the Entra set-up.
var DefaultUserAttributes = []string{
	"userName",
	"active",
	`emails[type eq "work"].value`,
	"name.givenName",
	"name.familyName",
	"externalId",
}

// ScimToken is one accepted bearer token. Git holds only its SHA-256 (hex) or
// a reference; the loader resolves a reference into SHA256, and the plaintext
// never leaves the loader.
type ScimToken struct {
	Name      string     `yaml:"name" json:"name"`
	SHA256    string     `yaml:"sha256,omitempty" json:"sha256,omitempty"`
	ValueFrom *ValueFrom `yaml:"valueFrom,omitempty" json:"valueFrom,omitempty"`
}

// ValueFrom points at a secret outside git. File paths are relative to the
// spec repo root unless absolute.
type ValueFrom struct {
	Env  string `yaml:"env,omitempty" json:"env,omitempty"`
	File string `yaml:"file,omitempty" json:"file,omitempty"`
}

// Certificate usages.
const (
	UsageSamlIDPSigning   = "saml-idp-signing"
	UsageSamlSPSigning    = "saml-sp-signing"
	UsageSamlSPEncryption = "saml-sp-encryption"
	UsageTLS              = "tls"
	// UsageTLSCA is a CA (or a self-signed server certificate) a Gateway
	// trusts for its https upstream; it has no private key.
	UsageTLSCA = "tls-ca"
	// UsageTLSClient is the certificate a Gateway presents to its upstream
	// (mTLS), so the application can trust only idrecon.
	UsageTLSClient = "tls-client"
)

// Certificate is one keystore entry: a certificate (inline PEM or a file, PEM
// or Base64 DER as Entra downloads it) and, for the SP's own keys, a private
// key that is only ever referenced.
type Certificate struct {
	Usage          string     `yaml:"usage" json:"usage"`
	PEM            string     `yaml:"pem,omitempty" json:"pem,omitempty"`
	File           string     `yaml:"file,omitempty" json:"file,omitempty"`
	PrivateKeyFrom *ValueFrom `yaml:"privateKeyFrom,omitempty" json:"privateKeyFrom,omitempty"`

	// Filled in by the loader.
	Fingerprint string    `yaml:"-" json:"fingerprint,omitempty"` // SHA-256 of the DER, hex
	Subject     string    `yaml:"-" json:"subject,omitempty"`
	NotBefore   time.Time `yaml:"-" json:"notBefore,omitzero"`
	NotAfter    time.Time `yaml:"-" json:"notAfter,omitzero"`
	DER         []byte    `yaml:"-" json:"der,omitempty"`
	// Chain holds the DER of the certificates after the first in the PEM
	// of a tls or tls-client certificate (its intermediates), sent after
	// it: clients verifying a certificate from an intermediate CA need them.
	Chain [][]byte `yaml:"-" json:"chain,omitempty"`
	// KeyFingerprint is the SHA-256 of the public half of the private key, so
	// a plan can say the key changed without showing it.
	KeyFingerprint string `yaml:"-" json:"keyFingerprint,omitempty"`
	// PrivateKey is resolved from PrivateKeyFrom; it is never serialised.
	PrivateKey crypto.Signer `yaml:"-" json:"-"`
}

// SamlServiceProvider configures SAML 2.0 single sign-on with Entra as IdP.
type SamlServiceProvider struct {
	Enabled  bool    `yaml:"enabled" json:"enabled"`
	EntityID string  `yaml:"entityID" json:"entityID"`
	BaseURL  string  `yaml:"baseURL" json:"baseURL"`
	IDP      SamlIDP `yaml:"idp" json:"idp"`
	// SPSigningCertificate and SPEncryptionCertificate name Certificate
	// documents of usage saml-sp-signing / saml-sp-encryption.
	SPSigningCertificate    string         `yaml:"spSigningCertificate,omitempty" json:"spSigningCertificate,omitempty"`
	SPEncryptionCertificate string         `yaml:"spEncryptionCertificate,omitempty" json:"spEncryptionCertificate,omitempty"`
	NameIDFormat            string         `yaml:"nameIDFormat,omitempty" json:"nameIDFormat,omitempty"`
	Attributes              SamlAttributes `yaml:"attributes,omitempty" json:"attributes,omitzero"`
	AllowedClockSkew        Duration       `yaml:"allowedClockSkew,omitempty" json:"allowedClockSkew,omitzero"`
	SessionLifetime         Duration       `yaml:"sessionLifetime,omitempty" json:"sessionLifetime,omitzero"`
	SignAuthnRequests       bool           `yaml:"signAuthnRequests,omitempty" json:"signAuthnRequests,omitempty"`
	AllowIDPInitiated       bool           `yaml:"allowIdpInitiated,omitempty" json:"allowIdpInitiated,omitempty"`
	AllowSHA1               bool           `yaml:"allowSHA1,omitempty" json:"allowSHA1,omitempty"`
	// ConsoleRole, when set, turns on the read-only console on the admin
	// listener: a user signs in to it through this SP and must hold this
	// role, checked again on every request.
	ConsoleRole string `yaml:"consoleRole,omitempty" json:"consoleRole,omitempty"`
}

// Defaults for SamlServiceProvider.
const (
	DefaultClockSkew       = 2 * time.Minute
	MaxClockSkew           = 5 * time.Minute
	DefaultSessionLifetime = 8 * time.Hour
	// MaxSessionLifetime is a year, the longest sign-in frequency Entra's
	// conditional access offers: a session is never sent back to Entra
	// while it lasts (a user disabled there loses access at once through
	// SCIM, but a new MFA prompt waits for the session's end), and a
	// lifetime of centuries would overflow etcd's lease TTL, failing
	// every sign-in at runtime instead of at validate.
	MaxSessionLifetime  = 365 * 24 * time.Hour
	DefaultNameIDFormat = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
)

// MinMetadataRefresh bounds how often metadataURL is fetched: a few
// milliseconds would have the daemon hammer the IdP's endpoint for a
// document that changes only when the IdP rolls its keys. A minute is
// how soon the daemon retries a failed fetch (runtime/saml), so no
// setting fetches faster than an outage of the endpoint already does.
const MinMetadataRefresh = time.Minute

// SamlIDP says where the IdP's metadata comes from and which keystore
// certificates may sign it.
type SamlIDP struct {
	MetadataFile          string   `yaml:"metadataFile,omitempty" json:"metadataFile,omitempty"`
	MetadataURL           string   `yaml:"metadataURL,omitempty" json:"metadataURL,omitempty"`
	RequireSignedMetadata *bool    `yaml:"requireSignedMetadata,omitempty" json:"requireSignedMetadata,omitempty"`
	MetadataRefresh       Duration `yaml:"metadataRefresh,omitempty" json:"metadataRefresh,omitzero"`
	SigningCertificates   []string `yaml:"signingCertificates,omitempty" json:"signingCertificates,omitempty"`
	// AllowInsecureMetadataURL permits an http:// MetadataURL (and redirects
	// to http://): the metadata then travels unprotected, so only its
	// signature vouches for it.
	AllowInsecureMetadataURL bool `yaml:"allowInsecureMetadataURL,omitempty" json:"allowInsecureMetadataURL,omitempty"`
	// AllowPrivateMetadataHost permits fetching MetadataURL from loopback and
	// private addresses (RFC 1918, fc00::/7 and other non-public ranges), as
	// for an IdP on the same host or network. Link-local (the cloud metadata
	// service), multicast and unspecified addresses stay refused.
	AllowPrivateMetadataHost bool `yaml:"allowPrivateMetadataHost,omitempty" json:"allowPrivateMetadataHost,omitempty"`

	// MetadataXML is the content of MetadataFile, read by the loader.
	MetadataXML []byte `yaml:"-" json:"metadataXML,omitempty"`
}

// SignedMetadataRequired reports whether IdP metadata must carry a valid
// signature (the default).
func (i SamlIDP) SignedMetadataRequired() bool {
	return i.RequireSignedMetadata == nil || *i.RequireSignedMetadata
}

// SamlAttributes names the claims that carry user details. Empty fields take
// Entra's claim URIs.
type SamlAttributes struct {
	Username  string `yaml:"username,omitempty" json:"username,omitempty"`
	Email     string `yaml:"email,omitempty" json:"email,omitempty"`
	FirstName string `yaml:"firstName,omitempty" json:"firstName,omitempty"`
	LastName  string `yaml:"lastName,omitempty" json:"lastName,omitempty"`
	Groups    string `yaml:"groups,omitempty" json:"groups,omitempty"`
}

// Application is an application of Application Security with its versions.
type Application struct {
	Versions []string `yaml:"versions" json:"versions"`
}

// Role is a named set of permissions.
type Role struct {
	Description string   `yaml:"description,omitempty" json:"description,omitempty"`
	Permissions []string `yaml:"permissions" json:"permissions"`
	// Builtin marks the preconfigured roles; specs cannot set it.
	Builtin bool `yaml:"-" json:"builtin,omitempty"`
}

// AccessAssignment grants roles and application versions to one SCIM user or group.
type AccessAssignment struct {
	Subject             Subject  `yaml:"subject" json:"subject"`
	Roles               []string `yaml:"roles,omitempty" json:"roles,omitempty"`
	ApplicationVersions []string `yaml:"applicationVersions,omitempty" json:"applicationVersions,omitempty"`
}

// Gateway puts idrecon in front of an application: requests under
// PathPrefix are forwarded to Upstream for signed-in users who have access,
// with the user in UserHeader (Application Security's HTTP-header SSO), and
// GET /auth/verify answers the same question for nginx, Traefik, Caddy or
// Envoy in front of it.
type Gateway struct {
	// Upstream is where the application listens: http:// or https:// and a
	// host, no path (requests keep theirs). Empty: forward-auth only.
	Upstream string `yaml:"upstream,omitempty" json:"upstream,omitempty"`
	// PathPrefix is the part of idrecon's URL space forwarded (default "/");
	// idrecon's own paths never are.
	PathPrefix string `yaml:"pathPrefix,omitempty" json:"pathPrefix,omitempty"`
	// UserHeader carries the userName (default "username").
	UserHeader string `yaml:"userHeader,omitempty" json:"userHeader,omitempty"`
	// RolesHeader and VersionsHeader, when set, carry the user's roles and
	// application versions, comma separated.
	RolesHeader    string `yaml:"rolesHeader,omitempty" json:"rolesHeader,omitempty"`
	VersionsHeader string `yaml:"versionsHeader,omitempty" json:"versionsHeader,omitempty"`
	// RequiredRole, when set, is a role a user must hold to pass.
	RequiredRole string `yaml:"requiredRole,omitempty" json:"requiredRole,omitempty"`
	// UpstreamCAs name Certificates of usage tls-ca that verify an https
	// upstream instead of the system's roots (more than one while a CA
	// rotates).
	UpstreamCAs []string `yaml:"upstreamCAs,omitempty" json:"upstreamCAs,omitempty"`
	// ClientCertificate names a Certificate of usage tls-client presented to
	// an https upstream, so the application can accept only idrecon.
	ClientCertificate string `yaml:"clientCertificate,omitempty" json:"clientCertificate,omitempty"`
	// SharedSecret is a header sent on every forwarded request, so the
	// application can tell idrecon's requests from anyone else's.
	SharedSecret *GatewaySecret `yaml:"sharedSecret,omitempty" json:"sharedSecret,omitempty"`
	// Timeouts of the connection to the upstream.
	Timeouts GatewayTimeouts `yaml:"timeouts,omitempty" json:"timeouts,omitzero"`
	// MaxRequestsPerUser bounds one user's requests in flight through the
	// Gateway (0: DefaultGatewayRequestsPerUser); past it the user is
	// answered 429, and every other user is served as before.
	MaxRequestsPerUser int `yaml:"maxRequestsPerUser,omitempty" json:"maxRequestsPerUser,omitempty"`
}

// GatewaySecret is a header whose value comes from outside git.
type GatewaySecret struct {
	Header    string     `yaml:"header" json:"header"`
	ValueFrom *ValueFrom `yaml:"valueFrom" json:"valueFrom"`

	// Filled in by the loader. SHA256 lets a plan say the value changed
	// without showing it; Value is never serialised, and is resolved again
	// from ValueFrom after a restart.
	SHA256 string `yaml:"-" json:"sha256,omitempty"`
	Value  string `yaml:"-" json:"-"`
}

// GatewayTimeouts bound the connection to the upstream.
type GatewayTimeouts struct {
	// Dial bounds connecting (default 5s), so an unreachable upstream is a
	// 502 and not a hang.
	Dial Duration `yaml:"dial,omitempty" json:"dial,omitempty"`
	// ResponseHeader bounds the wait for the response headers (default 60s).
	ResponseHeader Duration `yaml:"responseHeader,omitempty" json:"responseHeader,omitempty"`
}

// Subject names a SCIM-provisioned group (by displayName) or user (by userName).
// Exactly one is set.
type Subject struct {
	Group string `yaml:"group,omitempty" json:"group,omitempty"`
	User  string `yaml:"user,omitempty" json:"user,omitempty"`
}

func (s Subject) String() string {
	if s.Group != "" {
		return "group:" + s.Group
	}
	return "user:" + s.User
}

// Duration is a time.Duration written as "2m" in YAML and JSON.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML reads "90s", "2m", "8h".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. 90s, 2m, 8h)", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as UnmarshalYAML reads it ("2m0s").
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// BuiltinRoles are the preconfigured roles of Application Security. A spec may
// assign them and add roles of its own, but not redefine them.
var BuiltinRoles = map[string]Role{
	"Administrator":               {Builtin: true, Description: "Full access to every application version and all administration.", Permissions: []string{"*"}},
	"Security Lead":               {Builtin: true, Description: "Creates application versions and users; all administration except user accounts.", Permissions: []string{"application.create", "version.create", "version.edit", "user.view", "issue.audit", "report.view", "artifact.upload"}},
	"Manager":                     {Builtin: true, Description: "Guides developers; full edit on assigned versions; grants team access.", Permissions: []string{"version.edit", "version.access.grant", "issue.audit", "report.view", "artifact.upload"}},
	"Developer":                   {Builtin: true, Description: "Works on assigned versions.", Permissions: []string{"version.view", "issue.audit", "report.view", "artifact.upload"}},
	"View Only":                   {Builtin: true, Description: "Views assigned versions; no upload or audit.", Permissions: []string{"version.view", "report.view"}},
	"Application Security Tester": {Builtin: true, Description: "Dynamic scan tasks on assigned versions.", Permissions: []string{"version.view", "report.view", "scan.process", "artifact.upload", "issue.audit"}},
}
