// Package adminjson writes the admin API's JSON answers. The admin server
// and the handlers mounted on it from other packages (access, SAML
// metadata) answer alike, so the CLI and curl users read one error shape,
// {"error": "..."}, wherever it comes from.
package adminjson

import (
	"encoding/json"
	"net/http"
)

// Write answers status with v as indented JSON, which people read with
// curl as often as the CLI decodes it.
func Write(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// WriteError answers status with {"error": msg}.
func WriteError(w http.ResponseWriter, status int, msg string) error {
	return Write(w, status, struct {
		Error string `json:"error"`
	}{msg})
}
