package nesting

import "testing"

func TestDepth(t *testing.T) {
	tests := []struct {
		s           string
		open, close string
		want        int
	}{
		{`{"a":[1,{"b":2}]}`, "{[", "}]", 3},
		{`{"a":"[[[{{{"}`, "{[", "}]", 1},
		{`{"a":"\"[[["}`, "{[", "}]", 1},
		{`((a eq "x") and (b eq "y"))`, "([", ")]", 2},
		{`emails[type eq "(("].value`, "([", ")]", 1},
		{`(((`, "([", ")]", 3},
		{``, "([", ")]", 0},
	}
	for _, tt := range tests {
		if got := Depth(tt.s, tt.open, tt.close); got != tt.want {
			t.Errorf("Depth(%q) = %d, want %d", tt.s, got, tt.want)
		}
		if got := Depth([]byte(tt.s), tt.open, tt.close); got != tt.want {
			t.Errorf("Depth([]byte %q) = %d, want %d", tt.s, got, tt.want)
		}
	}
}
