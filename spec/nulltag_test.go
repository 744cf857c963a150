package spec

import (
	"strings"
	"testing"
)

// TestNullTagWithAValue: a value tagged !!null was taken for an empty one
// whatever it said, so "userHeader: !!null X-User" loaded with the default
// user header and X-User silently dropped. Only YAML's null spellings may
// carry the tag.
func TestNullTagWithAValue(t *testing.T) {
	tests := []struct{ name, spec, want string }{
		{"string field", "\n  userHeader: !!null X-User\n", `p.yaml:6:15: spec.userHeader: tagged !!null but holds "X-User" (remove the tag or the value)`},
		{"mapping field", "\n  timeouts: !!null 5s\n", `p.yaml:6:13: spec.timeouts: tagged !!null but holds "5s"`},
		{"empty", "\n  userHeader: !!null\n", ""},
		{"empty string", "\n  userHeader: !!null \"\"\n", ""},
		{"tilde", "\n  userHeader: !!null ~\n", ""},
		{"null", "\n  userHeader: !!null Null\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(gw(tt.spec)))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant one containing %q", err, tt.want)
			}
		})
	}
}
