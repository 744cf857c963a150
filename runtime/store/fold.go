package store

import "github.com/idrecon/idrecon/spec"

// Fold is spec.Fold, the one folding of names idrecon has: the key under
// which the store compares, indexes and sorts userNames, group
// displayNames, work emails and access assignment subjects. Two names are
// the same name exactly when their Fold keys are equal.
func Fold(s string) string { return spec.Fold(s) }

// AppendFold is spec.AppendFold: it appends Fold(s) to dst, so that a
// caller folding in a loop can reuse a buffer.
func AppendFold(dst []byte, s string) []byte { return spec.AppendFold(dst, s) }
