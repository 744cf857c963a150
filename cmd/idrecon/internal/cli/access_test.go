package cli

import (
	"strings"
	"testing"

	"github.com/idrecon/idrecon/runtime/access"
)

// TestWriteEffectiveFirstLine: the line naming the user says whether they
// are active and have access in one reading, without parentheses inside
// parentheses.
func TestWriteEffectiveFirstLine(t *testing.T) {
	for _, tt := range []struct {
		e    access.Effective
		want string
	}{
		{access.Effective{UserName: "alice@contoso.com", Active: true}, "alice@contoso.com (active), access: no\n"},
		{access.Effective{UserName: "dave@contoso.com"}, "dave@contoso.com (disabled: assignments kept, no access until re-enabled), access: no\n"},
	} {
		var b strings.Builder
		writeEffective(&b, &tt.e)
		first, _, _ := strings.Cut(b.String(), "\n")
		if first+"\n" != tt.want {
			t.Errorf("first line %q, want %q", first, tt.want)
		}
		if strings.Count(first, "(") > 1 {
			t.Errorf("nested parentheses: %q", first)
		}
	}
}
