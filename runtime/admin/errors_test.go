package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/idrecon/idrecon/spec"
)

// TestWriteErr pins how each kind of handler error is answered.
func TestWriteErr(t *testing.T) {
	invalid := spec.ErrorList{{Pos: spec.Position{File: "a.yaml", Line: 3, Column: 5}, Field: "spec.x", Msg: "bad"}}
	limit := &spec.LimitError{Limit: spec.MaxDocumentBytes, Unit: "bytes", File: "big.yaml", Line: 7, Document: true}
	tests := []struct {
		name    string
		err     error
		status  int
		msg     string
		details int
		// problems are the spec errors with their parts apart.
		problems []Problem
	}{
		{"status and message", errorf(http.StatusNotFound, "Role/x not found"), 404, "Role/x not found", 0, nil},
		{"wrapped", fmt.Errorf("put: %w", errorf(http.StatusConflict, "taken")), 409, "taken", 0, nil},
		{"spec errors listed", &specError{status: http.StatusUnprocessableEntity, err: invalid}, 422, "the spec has 1 error(s)", 1,
			[]Problem{{File: "a.yaml", Line: 3, Column: 5, Field: "spec.x", Message: "bad"}}},
		{"a spec past a limit is one problem", &specError{status: http.StatusUnprocessableEntity, err: fmt.Errorf("load spec: %w", limit)}, 422,
			"load spec: " + limit.Error(), 1, []Problem{{File: "big.yaml", Line: 7, Message: limit.Error()}}},
		{"built-in role", errBuiltin, 409, errBuiltin.Error(), 0, nil},
		{"anything else", errors.New("disk full"), 500, "disk full", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			writeErr(w, tt.err)
			var body Error
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if w.Code != tt.status || body.Error != tt.msg || len(body.Details) != tt.details {
				t.Fatalf("%d %+v, want %d %q with %d details", w.Code, body, tt.status, tt.msg, tt.details)
			}
			if !slices.Equal(body.Problems, tt.problems) {
				t.Errorf("problems %+v, want %+v", body.Problems, tt.problems)
			}
		})
	}
}
