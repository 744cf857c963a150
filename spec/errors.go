package spec

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrInvalid is matched (errors.Is) by every ErrorList and Error: the spec
// itself is wrong, as opposed to an I/O failure or a cancelled context.
var ErrInvalid = errors.New("spec: invalid")

// Error is one mistake in a spec, located at a file position and field path
// (for example "spec.tokens[1].sha256").
type Error struct {
	Pos   Position
	Field string
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Pos.File != "" {
		b.WriteString(e.Pos.String())
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Is reports whether target is ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// ErrorList is every mistake found in one load, sorted by position.
type ErrorList []*Error

func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l[:min(len(l), maxListedErrors)] {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	if more := len(l) - maxListedErrors; more > 0 {
		fmt.Fprintf(&b, "\n... and %d more problems (idrecon validate lists them all)", more)
	}
	return b.String()
}

// maxListedErrors bounds the problems Error spells out. Its text goes into
// logs and the reconcile status, which every status call returns, and a spec
// can be wrong in nearly every one of its nodes; the list itself stays
// whole for callers that take it apart (validate, plan, the admin API).
const maxListedErrors = 100

// Is reports whether target is ErrInvalid.
func (l ErrorList) Is(target error) bool { return target == ErrInvalid }

// Unwrap exposes the single errors, so errors.As can find an *Error.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

// add appends one error.
func (l *ErrorList) add(pos Position, field, msg string) {
	*l = append(*l, &Error{Pos: pos, Field: field, Msg: msg})
}

// sort orders the list by file, line, column, field and message so output is
// stable whatever order the checks ran in.
func (l ErrorList) sort() {
	slices.SortStableFunc(l, func(a, b *Error) int {
		return cmp.Or(
			cmp.Compare(a.Pos.File, b.Pos.File),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Column, b.Pos.Column),
			cmp.Compare(a.Field, b.Field),
			cmp.Compare(a.Msg, b.Msg),
		)
	})
}

// err returns the list as an error, or nil when it is empty.
func (l ErrorList) err() error {
	if len(l) == 0 {
		return nil
	}
	l.sort()
	return l
}

// LimitError is a spec larger than a limit of the load: too many bytes,
// documents or YAML nodes, or one document of too many bytes. It matches
// ErrInvalid: the spec, not the daemon, is at fault.
type LimitError struct {
	Limit int64  // the limit that was crossed
	Unit  string // "bytes", "documents" or "nodes"
	// File is the file at which the limit was crossed, where that does
	// not depend on the order the files were parsed in: empty for the
	// documents and nodes of the whole spec. Line is the line of the
	// document over the limit of one document's bytes, else 0.
	File string
	Line int
	// Document is set when the limit is of one document's bytes
	// (MaxDocumentBytes), not of the whole spec.
	Document bool
}

// NewBytesLimitError reports a spec larger than limit bytes, crossed at file.
func NewBytesLimitError(file string, limit int64) *LimitError {
	return &LimitError{Limit: limit, Unit: "bytes", File: file}
}

func (e *LimitError) Error() string {
	at := e.File
	if e.Line > 0 {
		at = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	reached := ""
	if at != "" {
		reached = " (reached at " + at + ")"
	}
	switch {
	case e.Document:
		return fmt.Sprintf("the YAML document at %s is larger than %d bytes, the limit for one document; split it into smaller documents", at, e.Limit)
	case e.Unit == "nodes":
		return fmt.Sprintf("the spec has more than %d YAML nodes%s; every mapping, list, key and value is one, and each costs memory while the spec loads; if it is meant to be this large, raise the limit with --max-spec-nodes", e.Limit, reached)
	}
	what, flag := "is larger than", "--max-spec-bytes"
	if e.Unit == "documents" {
		what, flag = "has more than", "--max-spec-documents"
	}
	return fmt.Sprintf("the spec %s %d %s%s; if it is meant to be this large, raise the limit with %s",
		what, e.Limit, e.Unit, reached, flag)
}

// Is reports whether target is ErrInvalid.
func (e *LimitError) Is(target error) bool { return target == ErrInvalid }
