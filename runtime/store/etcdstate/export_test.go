package etcdstate

import "time"

// SetLag makes s's mirror apply each watch response d late.
func SetLag(s *State, d time.Duration) { s.lag = d }
