// Package filter parses SCIM filters (RFC 7644 §3.4.2.2, plus the lenient
// forms Entra sends) and evaluates them against resource documents.
package filter
