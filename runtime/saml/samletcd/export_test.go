package samletcd

import "time"

// SetClock makes s read the time from now, as a test drives it.
func (s *Store) SetClock(now func() time.Time) { s.now = now }
