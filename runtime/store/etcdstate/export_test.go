package etcdstate

import (
	"testing"
	"time"
)

// SetLag makes s's mirror apply each watch response d late.
func SetLag(s *State, d time.Duration) { s.lag = d }

// SmallPages makes Load read in pages of about bytes, the first of first
// keys, until t ends.
func SmallPages(t *testing.T, first, bytes int) {
	oldFirst, oldBytes := firstPage, pageBytes
	firstPage, pageBytes = first, bytes
	t.Cleanup(func() { firstPage, pageBytes = oldFirst, oldBytes })
}

// FastRetries makes the mirror load the state again within milliseconds of
// a failed load, until t ends.
func FastRetries(t *testing.T) {
	oldMin, oldMax := retryMin, retryMax
	retryMin, retryMax = time.Millisecond, 20*time.Millisecond
	t.Cleanup(func() { retryMin, retryMax = oldMin, oldMax })
}
