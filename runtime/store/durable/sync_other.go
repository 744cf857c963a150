//go:build !linux

package durable

import "os"

// fdatasync syncs f; only Linux has a cheaper call that skips timestamps.
func fdatasync(f *os.File) error { return f.Sync() }
