// Package scim is idrecon's SCIM 2.0 service provider (RFC 7643/7644), built
// to take Microsoft Entra ID's provisioning traffic without an error: it
// accepts both shapes of Entra's requests (with and without the
// aadOptscim062020 flag) and stores users, groups and memberships in the
// runtime store. Its configuration (enabled, base path, public base URL,
// tokens, kept user attributes) is read from the store on every request, so
// a reconciled ScimProvisioning change applies without a restart. The URLs
// it returns (meta.location, Location, discovery) start with the configured
// baseURL, else with the request's scheme and Host; forwarding headers are
// never trusted.
//
// Every write (POST, PUT, PATCH) must carry its schemas list (RFC 7643 §3),
// or is 400 invalidSyntax. String values are refused with 400 invalidValue
// when they are not UTF-8 (half a UTF-16 surrogate pair escaped included),
// hold a control character (only a postal
// address's formatted and streetAddress may hold line breaks and tabs), or
// are longer than schema.MaxNameLength (256 characters: userName,
// displayName, externalId, the values of emails, members and manager) or
// schema.MaxTextLength (1024: every other string). A body that names one
// attribute twice, by keys differing only in case ("userName" and
// "USERNAME", RFC 7643 §2.1) or by two spellings with different values
// (plain and schema-qualified, dotted and nested), is 400 invalidSyntax:
// which one won would follow map order. So is a body naming one JSON
// member twice in an object, spelt alike once decoded, anywhere in it:
// encoding/json would keep the last; the detail says where
// (Operations[0].value.members, indices from 0). A PATCH add or replace needs a
// value (to drop an attribute, remove it), and a filtered add or replace
// whose value would not match its own filter (members[value eq "x"] with
// {"value":"y"}) is 400 invalidValue. A query string that does not decode
// is 400 (invalidFilter when the filter does not, or is not UTF-8), never
// read as if the pair were absent; a semicolon in it is an ordinary
// character.
package scim
