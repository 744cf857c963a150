package admin

import (
	"errors"
	"fmt"
	"net/http"
)

// httpError is an error the admin API answers with its own status and
// message.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// specError is a spec (an upload, an edit) the API refuses: the answer
// lists each spec error in Details.
type specError struct {
	status int
	err    error
}

func (e *specError) Error() string { return e.err.Error() }
func (e *specError) Unwrap() error { return e.err }

// writeErr answers a handler's error: the one place the admin API turns
// errors into statuses. Anything not classified is a 500 with its text: the
// API is for the operator holding the admin token.
func writeErr(w http.ResponseWriter, err error) {
	var he *httpError
	var se *specError
	switch {
	case errors.As(err, &he):
		writeError(w, he.status, he.msg)
	case errors.As(err, &se):
		writeSpecError(w, se.status, se.err)
	case errors.Is(err, errBuiltin):
		writeError(w, http.StatusConflict, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}
