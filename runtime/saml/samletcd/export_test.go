package samletcd

import "time"

// SetClock makes s read the time from now, as a test drives it.
func (s *Store) SetClock(now func() time.Time) { s.now = now }

// Turns is how many users' FirstUse turns s holds.
func (s *Store) Turns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.replayTurns)
}

// Cached reports whether s holds session id in its cache.
func (s *Store) Cached(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.cache[s.sessionKey(id)]
	return ok
}
