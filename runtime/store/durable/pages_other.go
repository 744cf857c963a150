//go:build !linux

package durable

// releasePages is a no-op where madvise is not at hand: the kernel still
// reclaims the mapping's clean pages under memory pressure.
func (db *DB) releasePages(dropCache bool) {}
