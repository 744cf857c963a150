package scim

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/idrecon/idrecon/runtime/scim/internal/scimerr"
	"github.com/idrecon/idrecon/runtime/store"
)

const uriError = "urn:ietf:params:scim:api:messages:2.0:Error"

func errStatus(status int, format string, args ...any) *scimerr.Error {
	e := scimerr.New("", format, args...)
	e.Status = status
	return e
}

func errNotFound(resourceType, id string) *scimerr.Error {
	return errStatus(http.StatusNotFound, "%s %q not found", resourceType, id)
}

type errorBody struct {
	Schemas  []string `json:"schemas"`
	Status   string   `json:"status"`
	ScimType string   `json:"scimType,omitempty"`
	Detail   string   `json:"detail,omitempty"`
}

// writeError renders err as a SCIM error. Anything that is not a
// *scimerr.Error is an internal failure; its text stays in the server log.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var se *scimerr.Error
	var full *fullError
	switch {
	case errors.As(err, &se):
	case errors.As(err, &full):
		s.warnFull(r.Context(), full)
		se = full.scim()
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, store.ErrStale):
		// The write may or may not have happened; Entra retries a 503.
		s.log.WarnContext(r.Context(), "scim request: state unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "1")
		se = errStatus(http.StatusServiceUnavailable, "the state is unavailable right now; retry")
	default:
		s.log.ErrorContext(r.Context(), "scim request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		se = errStatus(http.StatusInternalServerError, "internal error")
		if r.Context().Err() != nil {
			se = errStatus(http.StatusServiceUnavailable, "request cancelled")
		}
	}
	if se.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="idrecon SCIM"`)
	}
	writeJSON(w, se.Status, errorBody{
		Schemas:  []string{uriError},
		Status:   strconv.Itoa(se.Status),
		ScimType: se.ScimType,
		Detail:   se.Detail,
	})
}
