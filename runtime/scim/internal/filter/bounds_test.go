package filter

import (
	"strings"
	"testing"

	"github.com/idrecon/idrecon/runtime/scim/internal/schema"
	"github.com/idrecon/idrecon/runtime/scim/internal/scimerr"
)

// TestPresentOnComplexAttributes: "pr" matches a complex attribute that
// has a non-empty node (RFC 7644 §3.4.2.2), also one without a "value"
// sub-attribute (name, addresses).
func TestPresentOnComplexAttributes(t *testing.T) {
	doc := sampleUser(t)
	doc["addresses"] = []any{map[string]any{"type": "work", "formatted": "18/2111"}}
	checkMatches(t, doc, []matchCase{
		{`name pr`, true},
		{`addresses pr`, true},
		{`emails pr`, true},
		{`manager pr`, true},
		{`phoneNumbers pr`, false},
		{`not (name pr)`, false},
		{`x509Certificates pr`, false},
	})
	empty := map[string]any{"userName": "u", "name": map[string]any{}, "addresses": []any{map[string]any{}}}
	for _, text := range []string{`name pr`, `addresses pr`} {
		f, err := Parse(text, schema.UserType)
		if err != nil {
			t.Fatal(err)
		}
		if f.Match(empty) {
			t.Errorf("%q matched an empty node", text)
		}
	}
}

// TestNestingIsBounded: the third-party parser's time grows with the
// square of the parenthesis depth (half a second for a 4 KiB filter of
// "("), so deep nesting is refused before it is parsed. Allocations stand
// in for time: they are deterministic.
func TestNestingIsBounded(t *testing.T) {
	for _, text := range []string{
		strings.Repeat("(", 4000) + `userName eq "x"`,
		strings.Repeat("(", 2000) + `userName eq "x"` + strings.Repeat(")", 2000),
		`emails[` + strings.Repeat("(", 4000) + `type eq "x"]`,
	} {
		var err error
		allocs := testing.AllocsPerRun(1, func() { _, err = Parse(text, schema.UserType) })
		if se, ok := err.(*scimerr.Error); !ok || se.ScimType != scimerr.InvalidFilter {
			t.Errorf("%.20q…: %v, want invalidFilter", text, err)
		}
		if allocs > 10000 {
			t.Errorf("%.20q…: %v allocations to refuse", text, allocs)
		}
		_, err = ParsePath(text, schema.UserType)
		if se, ok := err.(*scimerr.Error); !ok || se.ScimType != scimerr.InvalidPath {
			t.Errorf("path %.20q…: %v, want invalidPath", text, err)
		}
	}
	// Nesting as deep as any real filter still parses.
	text := strings.Repeat("(", 8) + `userName eq "x"` + strings.Repeat(")", 8) + ` and not (emails[type eq "work"] or (title pr))`
	if _, err := Parse(text, schema.UserType); err != nil {
		t.Errorf("%q: %v", text, err)
	}
}

// TestOperatorsFoldLikeEq: every operator on a case-insensitive attribute
// folds as eq and the store do (store.Fold): ς, σ and Σ are one letter, as
// are ſ and s, which a lower-casing comparison keeps apart.
func TestOperatorsFoldLikeEq(t *testing.T) {
	doc := map[string]any{"userName": "Team σ ſtar", "displayName": "Team σ ſtar"}
	checkMatches(t, doc, []matchCase{
		{`userName eq "TEAM ς STAR"`, true},
		{`userName sw "TEAM ς"`, true},
		{`userName co "Σ S"`, true},
		{`userName ew "ς ſTAR"`, true},
		{`userName ge "TEAM ς STAR"`, true},
		{`userName le "TEAM ς STAR"`, true},
	})
}
