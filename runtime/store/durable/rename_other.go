//go:build !linux

package durable

// renameNoReplace renames from to to, failing with an error that is
// fs.ErrExist should to exist.
func renameNoReplace(from, to string) error { return linkNoReplace(from, to) }
