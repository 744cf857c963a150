package spec

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"pgregory.net/rapid"
)

// trickyRunes are runes whose case folding strings.ToLower gets "wrong" or
// that sit next to such runes: the sigmas, the Kelvin sign, the long s,
// sharp s, the Turkic i's, the micro sign, the theta symbol, a combining
// mark, a titlecase digraph, Cherokee (which folds to upper case).
var trickyRunes = []rune("ςσΣKkK\u212AſsSßẞİıiIµμΜθϑΘϴ\u0301eé\u01C4\u01C5\u01C6\u13A0\uAB70 -@.0")

// trickyString draws a string of tricky runes, sometimes with an invalid
// byte.
func trickyString() *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		rs := rapid.SliceOfN(rapid.SampledFrom(trickyRunes), 0, 8).Draw(t, "runes")
		s := string(rs)
		if rapid.IntRange(0, 9).Draw(t, "invalid") == 0 {
			s += "\xff"
		}
		return s
	})
}

// orbitVariant replaces each rune of s by a random member of its
// SimpleFold orbit: a string strings.EqualFold holds equal to s.
func orbitVariant(t *rapid.T, s string) string {
	var b strings.Builder
	for _, r := range s {
		for range rapid.IntRange(0, 3).Draw(t, "steps") {
			r = unicode.SimpleFold(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

func TestFoldAgreesWithEqualFold(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := trickyString().Draw(t, "a")
		var b string
		if rapid.Bool().Draw(t, "variant") {
			b = orbitVariant(t, a)
		} else {
			b = trickyString().Draw(t, "b")
		}
		if got, want := Fold(a) == Fold(b), strings.EqualFold(a, b); got != want {
			t.Fatalf("Fold(%+q)=%+q, Fold(%+q)=%+q: equal %v, strings.EqualFold says %v", a, Fold(a), b, Fold(b), got, want)
		}
		if Fold(Fold(a)) != Fold(a) {
			t.Fatalf("Fold is not idempotent on %+q: %+q then %+q", a, Fold(a), Fold(Fold(a)))
		}
		if got := string(AppendFold([]byte("x"), a)); got != "x"+Fold(a) {
			t.Fatalf("AppendFold(x, %+q) = %+q, want x%+q", a, got, Fold(a))
		}
	})
}

// TestFoldASCIIFastPath: the ASCII fast path folds every ASCII byte as
// the orbit rule does.
func TestFoldASCIIFastPath(t *testing.T) {
	for c := rune(0); c < 0x80; c++ {
		if got, want := Fold(string(c)), string(foldRune(c)); got != want {
			t.Errorf("Fold(%q) = %q, orbit rule says %q", c, got, want)
		}
	}
}

// TestFoldRuneIsCanonical checks every rune: foldRune picks a member of
// r's orbit, and the same one for every member (so Fold is idempotent).
func TestFoldRuneIsCanonical(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		c := foldRune(r)
		if f := foldRune(unicode.SimpleFold(r)); f != c {
			t.Fatalf("foldRune(%U) = %U, but foldRune of its fold %U = %U", r, c, unicode.SimpleFold(r), f)
		}
		if foldRune(c) != c {
			t.Fatalf("foldRune(%U) = %U, which folds again to %U: Fold is not idempotent", r, c, foldRune(c))
		}
		if !strings.EqualFold(string(r), string(c)) && utf8.ValidRune(r) {
			t.Fatalf("foldRune(%U) = %U, outside its orbit", r, c)
		}
	}
}

func TestFold(t *testing.T) {
	tests := []struct {
		a, b  string
		equal bool
	}{
		{"Team Σ", "team ς", true},
		{"σ", "ς", true},
		{"Kate", "\u212Aate", true},
		{"ſam", "SAM", true},
		{"µ", "μ", true},
		{"θ", "ϑ", true},
		{"ß", "ẞ", true},
		{"ǅ", "Ǆ", true},
		{"ß", "ss", false}, // full folding would merge these
		{"İ", "i", false},  // Turkic folding would merge these
		{"ı", "I", false},
		{"é", "e\u0301", false}, // no normalisation
	}
	// As strings.ToLower did, for the runes it folded right.
	for _, s := range []string{"Team Σ", "ΜΑΡΙΑ", "Θ", "Kate"} {
		if Fold(s) != strings.ToLower(s) {
			t.Errorf("Fold(%q) = %q, want %q", s, Fold(s), strings.ToLower(s))
		}
	}
	for _, tt := range tests {
		if got := Fold(tt.a) == Fold(tt.b); got != tt.equal {
			t.Errorf("Fold(%q) = %q, Fold(%q) = %q: equal %v, want %v", tt.a, Fold(tt.a), tt.b, Fold(tt.b), got, tt.equal)
		}
	}
}

func TestFoldDoesNotAllocateForFoldedASCII(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _ = Fold("alice@contoso.com") }); n != 0 {
		t.Fatalf("Fold of a folded ASCII name: %v allocations, want 0", n)
	}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = AppendFold(buf[:0], "Team Σ Kate") }); n != 0 {
		t.Fatalf("AppendFold into a large enough buffer: %v allocations, want 0", n)
	}
}
