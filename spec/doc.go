// Package spec defines idrecon's declarative documents (the YAML kept in a spec
// repo) and loads, resolves and validates them into a Set.
//
// Load reads every YAML file below a root, decodes each document strictly
// (unknown fields, kinds and apiVersions are errors), resolves references to
// secrets and files (a SCIM token becomes its SHA-256, a certificate file its
// parsed DER, a private key reference a crypto.Signer), applies defaults and
// checks every cross-reference. All mistakes are reported at once as an
// ErrorList whose entries carry file:line:column and the field path.
package spec
