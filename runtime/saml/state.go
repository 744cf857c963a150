package saml

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"
	"time"
)

// errFull is returned when a bounded in-memory table cannot take another
// entry even after dropping the expired ones: failing closed beats growing
// without bound under a flood of sign-in attempts.
var errFull = errors.New("too many entries")

// ttlMap is a bounded map whose entries expire.
type ttlMap[V any] struct {
	mu  sync.Mutex
	m   map[string]ttlEntry[V]
	max int
}

type ttlEntry[V any] struct {
	v   V
	exp time.Time
}

func newTTLMap[V any](max int) *ttlMap[V] {
	return &ttlMap[V]{m: make(map[string]ttlEntry[V]), max: max}
}

// add stores v under key unless an unexpired entry exists; it reports
// whether it stored.
func (t *ttlMap[V]) add(key string, v V, exp, now time.Time) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.m[key]; ok && now.Before(e.exp) {
		return false, nil
	}
	if len(t.m) >= t.max {
		for k, e := range t.m {
			if !now.Before(e.exp) {
				delete(t.m, k)
			}
		}
		if len(t.m) >= t.max {
			return false, errFull
		}
	}
	t.m[key] = ttlEntry[V]{v: v, exp: exp}
	return true, nil
}

// get returns the unexpired entry under key.
func (t *ttlMap[V]) get(key string, now time.Time) (V, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[key]
	if !ok || !now.Before(e.exp) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// take returns the entry under key, expired or not, and removes it when
// remove says so. ok is false when there is no entry.
func (t *ttlMap[V]) take(key string, remove func(V, time.Time) bool) (v V, exp time.Time, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[key]
	if !ok {
		return v, exp, false
	}
	if remove(e.v, e.exp) {
		delete(t.m, key)
	}
	return e.v, e.exp, true
}

func (t *ttlMap[V]) del(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, key)
}

// deleteWhere removes every entry for which match is true and counts them.
func (t *ttlMap[V]) deleteWhere(match func(V) bool) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for k, e := range t.m {
		if match(e.v) {
			delete(t.m, k)
			n++
		}
	}
	return n
}

func (t *ttlMap[V]) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.m)
}

// randomToken returns 256 random bits, URL-safe.
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand.Read does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
