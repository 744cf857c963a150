package cli

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzPrintable: whatever a SCIM client stored, what printable makes of it
// is valid UTF-8 holding no rune that acts on a terminal, and a string that
// needed nothing escaped comes back as it was.
func FuzzPrintable(f *testing.F) {
	for _, s := range append(hostile, "", "DOMAIN\\user", "Zoë 山田 👩‍💻", "\U0001F600\u200d", "\x1b]0;title\a") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := printable(s)
		if !utf8.ValidString(got) {
			t.Fatalf("printable(%q) = %q: not UTF-8", s, got)
		}
		if i := strings.IndexFunc(got, needsEscape); i >= 0 {
			t.Fatalf("printable(%q) = %q: raw %U at %d", s, got, []rune(got[i:])[0], i)
		}
		if utf8.ValidString(s) && strings.IndexFunc(s, needsEscape) < 0 && got != s {
			t.Fatalf("printable(%q) = %q: changed a printable string", s, got)
		}
	})
}
