// Package testclock is a clock that tests move by hand, for code that reads
// the time through a func() time.Time: it stands still until moved, so a
// test decides when a certificate, a session or a record expires, and it
// is safe to read from the goroutines of the servers under test.
package testclock

import (
	"sync"
	"time"
)

// Clock is a time that changes only when the test says.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a Clock standing at t.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set puts the clock at t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}
