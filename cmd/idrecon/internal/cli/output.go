package cli

import (
	"encoding/json"
	"io"
	"reflect"

	"github.com/idrecon/idrecon/reconcile"
)

// FormatVersion names the shape of every --output json. A script checks it
// and can rely on: one JSON object on stdout; "kind" saying what it holds;
// a list in "items" (never null, "next" the cursor of the next page when
// there is one); one object in "item"; a failure as kind "Error" with
// "error" (and the exit code the command returns).
const FormatVersion = "idrecon.io/cli/v1"

type listEnvelope struct {
	FormatVersion string `json:"formatVersion"`
	Kind          string `json:"kind"`
	Items         any    `json:"items"`
	Next          string `json:"next,omitempty"`
}

type itemEnvelope struct {
	FormatVersion string `json:"formatVersion"`
	Kind          string `json:"kind"`
	Item          any    `json:"item"`
}

type errorEnvelope struct {
	FormatVersion string    `json:"formatVersion"`
	Kind          string    `json:"kind"`
	Error         jsonError `json:"error"`
}

// jsonError is a failure: its message, the exit code, and for a spec that
// does not load, each error with where it is.
type jsonError struct {
	Message  string      `json:"message"`
	ExitCode int         `json:"exitCode"`
	Problems []specIssue `json:"problems,omitempty"`
}

// specIssue is one spec error at a place in a file, the file relative to
// the working directory (what CI annotations need).
type specIssue struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// writeItems writes a list; a nil slice is written as [].
func writeItems(w io.Writer, kind string, items any, next string) error {
	if v := reflect.ValueOf(items); v.Kind() == reflect.Slice && v.IsNil() {
		items = reflect.MakeSlice(v.Type(), 0, 0).Interface()
	}
	return printJSON(w, listEnvelope{FormatVersion: FormatVersion, Kind: kind, Items: items, Next: next})
}

// writeItem writes one object.
func writeItem(w io.Writer, kind string, item any) error {
	return printJSON(w, itemEnvelope{FormatVersion: FormatVersion, Kind: kind, Item: item})
}

// writeError writes a failure.
func writeError(w io.Writer, msg string, code int, problems []specIssue) error {
	return printJSON(w, errorEnvelope{FormatVersion: FormatVersion, Kind: "Error",
		Error: jsonError{Message: msg, ExitCode: code, Problems: problems}})
}

// jsonPlan is a plan whose field values are JSON values, not strings that
// hold JSON.
type jsonPlan struct {
	Revision string                `json:"revision"`
	Creates  []jsonChange          `json:"creates"`
	Updates  []jsonChange          `json:"updates"`
	Deletes  []jsonChange          `json:"deletes"`
	Summary  reconcile.PlanSummary `json:"summary"`
	Refused  string                `json:"refused,omitempty"`
	Impact   any                   `json:"impact,omitempty"`
	Warnings []string              `json:"warnings"`
}

type jsonChange struct {
	Kind   string      `json:"kind"`
	Name   string      `json:"name"`
	Drift  bool        `json:"drift"`
	Kept   bool        `json:"kept,omitempty"`
	Fields []jsonField `json:"fields"`
}

type jsonField struct {
	Path   string          `json:"path"`
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
}

func toJSONPlan(p *reconcile.Plan, impact any, warnings []string) jsonPlan {
	changes := func(cs []reconcile.Change) []jsonChange {
		out := make([]jsonChange, 0, len(cs))
		for _, c := range cs {
			jc := jsonChange{Kind: c.Kind, Name: c.Name, Drift: c.Drift, Kept: c.Kept, Fields: make([]jsonField, 0, len(c.Fields))}
			for _, f := range c.Fields {
				jc.Fields = append(jc.Fields, jsonField{Path: f.Path, Before: rawJSON(f.Before), After: rawJSON(f.After)})
			}
			out = append(out, jc)
		}
		return out
	}
	if warnings == nil {
		warnings = []string{}
	}
	return jsonPlan{Revision: p.Revision, Creates: changes(p.Creates), Updates: changes(p.Updates), Deletes: changes(p.Deletes),
		Summary: p.Count(), Refused: p.Refused, Impact: impact, Warnings: warnings}
}

// rawJSON keeps a plan value that is JSON text as a JSON value, and turns
// anything else into a JSON string.
func rawJSON(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	if json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	b, _ := json.Marshal(s)
	return b
}
