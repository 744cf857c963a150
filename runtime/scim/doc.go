// Package scim is idrecon's SCIM 2.0 service provider (RFC 7643/7644), built
// to take Microsoft Entra ID's provisioning traffic without an error: it
// accepts both shapes of Entra's requests (with and without the
// aadOptscim062020 flag) and stores users, groups and memberships in the
// runtime store. Its configuration (enabled, base path, tokens, kept user
// attributes) is read from the store on every request, so a reconciled
// ScimProvisioning change applies without a restart.
package scim
