// Package scimerr defines the SCIM error (RFC 7644 §3.12) that the filter,
// patch and schema helpers return and the server renders.
package scimerr

import (
	"fmt"
	"net/http"
)

// scimType values used by idrecon.
const (
	InvalidFilter = "invalidFilter"
	InvalidSyntax = "invalidSyntax"
	InvalidPath   = "invalidPath"
	InvalidValue  = "invalidValue"
	NoTarget      = "noTarget"
	Mutability    = "mutability"
	Uniqueness    = "uniqueness"
	TooMany       = "tooMany"
)

// Error is a SCIM protocol error: an HTTP status, an optional scimType and an
// actionable detail. Details never carry secrets.
type Error struct {
	Status   int
	ScimType string
	Detail   string
}

func (e *Error) Error() string {
	if e.ScimType == "" {
		return fmt.Sprintf("scim %d: %s", e.Status, e.Detail)
	}
	return fmt.Sprintf("scim %d %s: %s", e.Status, e.ScimType, e.Detail)
}

// New returns an Error with status 400 and the scimType.
func New(scimType, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, ScimType: scimType, Detail: fmt.Sprintf(format, args...)}
}
