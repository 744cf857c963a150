package spec

import (
	"unicode"
	"unicode/utf8"
)

// Fold returns the key under which idrecon compares, indexes and sorts
// names case-insensitively: userNames, group displayNames, work emails,
// access assignment subjects in the runtime's store (runtime/store.Fold is
// this), and the names of the spec's Roles and Applications. Two names are the same name exactly when
// their Fold keys are equal. Every case-insensitive comparison of names
// goes through it (or AppendFold), so that a uniqueness check, an index
// and a lookup can never disagree about which names collide.
//
// The folding is Unicode simple case folding, the per-rune folding of
// strings.EqualFold and unicode.SimpleFold: Fold(a) == Fold(b) exactly when
// strings.EqualFold(a, b). Each rune becomes one canonical member of its
// SimpleFold orbit (see foldRune), so ς, σ and Σ fold alike, as do K, k and
// the Kelvin sign K, and ſ, s and S. strings.ToLower, used before, is a
// case mapping, not a folding: it keeps ς and σ apart (and ſ and s), so a
// rename that strings.EqualFold had waved through silently took over a
// unique index entry.
//
// Full case folding (golang.org/x/text/cases.Fold) was rejected on purpose:
// it also folds ß to ss and ligatures to their letters, so it would refuse
// (409) names that strings.EqualFold, the SCIM filter's eq and an ordinal
// case-insensitive comparison all hold distinct, such as straße and
// strasse; merging more names than the identity provider does turns a
// valid provisioning request into an error. It also changes a name's
// length, and its Caser must not be shared between goroutines, costing an
// allocation (or a pool) per call. Simple folding keeps the Turkic letters
// İ and ı apart from i and I, as Unicode's default (non-Turkic) folding
// does. Fold does no normalisation: a name with a precomposed é and one
// with e and a combining accent are two names.
//
// Invalid UTF-8 folds to U+FFFD, rune by rune, as strings.EqualFold reads it.
// ASCII names that hold no upper-case letter, the common case, are returned
// as they are, without allocating.
func Fold(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || 'A' <= c && c <= 'Z' {
			b := make([]byte, i, len(s))
			copy(b, s[:i])
			return string(AppendFold(b, s[i:]))
		}
	}
	return s
}

// AppendFold appends Fold(s) to dst: a caller that folds in a loop can
// reuse a buffer, and look a key up with m[string(b)], which does not
// copy.
func AppendFold(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			// The canonical member of an ASCII letter's orbit is its
			// ASCII lower case (k for the Kelvin sign too).
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		dst = utf8.AppendRune(dst, foldRune(r))
		i += n
	}
	return dst
}

// foldRune returns the canonical member of r's SimpleFold orbit: the
// lower case of its upper case (σ for Σ, ς and σ; μ for µ; k for K), which
// is what Unicode's CaseFolding.txt maps nearly every rune to and what
// strings.ToLower gave for most names, or, when that rune is outside the
// orbit (İ, whose lower case is i), the orbit's smallest rune.
// TestFoldRuneIsCanonical checks every rune: the choice is the same for
// every member of an orbit.
func foldRune(r rune) rune {
	want := unicode.ToLower(unicode.ToUpper(r))
	if want == r {
		return r
	}
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f == want {
			return want
		}
		least = min(least, f)
	}
	return least
}
