package scim

import (
	"regexp"
	"testing"
)

func TestNewID(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z2-7]{26}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := newID()
		if !valid.MatchString(id) {
			t.Fatalf("id %q is not 26 lower-case base32 characters", id)
		}
		if seen[id] {
			t.Fatalf("id %q repeated", id)
		}
		seen[id] = true
	}
}
