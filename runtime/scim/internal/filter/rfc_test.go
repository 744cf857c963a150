package filter

import (
	"testing"

	"github.com/idrecon/idrecon/runtime/scim/internal/schema"
	"github.com/idrecon/idrecon/runtime/scim/internal/scimerr"
)

// TestLowercaseUnicodeEscapes: a compare value is a JSON string (RFC 7644
// §3.4.2.2), and JSON's \u escape takes hex digits in either case (RFC
// 8259 §7); the third-party parser took upper case only, so a filter that
// was not Entra's one-term lookup, or a PATCH path, refused "\u00e9".
func TestLowercaseUnicodeEscapes(t *testing.T) {
	doc := sampleUser(t)
	doc["displayName"] = "é\"x"
	checkMatches(t, doc, []matchCase{
		{`displayName eq "\u00e9\u0022x"`, true},
		{`displayName eq "\u00e9\"x" or id eq "x"`, true},
		{`displayName eq "\u00E9\u0022x" or id eq "x"`, true},
		{`id eq "x" or displayName co "\u00e9"`, true},
		{`emails[type eq "w\u006frk"].value eq "bjensen@example.com"`, true},
		{`displayName eq "\\u00e9\"x" or id eq "x"`, false},
	})
	p, err := ParsePath(`emails[type eq "\u00e9"].value`, schema.UserType)
	if err != nil || p.Creates["type"] != "é" {
		t.Fatalf("ParsePath: %+v, %v; want type é created", p, err)
	}
}

// TestPathIsNoFilter: a PATCH path is attrPath or valuePath [subAttr] (RFC
// 7644 §3.5.2). The rewrite that lets a filter compare a value path's
// sub-attribute outside the brackets (Entra's emails[type eq
// "work"].value eq "x") must not turn a path with a comparison after it
// into another path: it would select elements the client never named.
func TestPathIsNoFilter(t *testing.T) {
	for _, text := range []string{
		`emails[type eq "work"].value eq "a@b.c"`,
		`emails[type eq "work"].value pr`,
		`emails[type eq "work"].value ne "x" and value eq "y"`,
	} {
		_, err := ParsePath(text, schema.UserType)
		if se, ok := err.(*scimerr.Error); !ok || se.ScimType != scimerr.InvalidPath {
			t.Errorf("ParsePath(%q) = %v, want invalidPath", text, err)
		}
	}
	if _, err := ParsePath(`emails[type eq "work"].value`, schema.UserType); err != nil {
		t.Fatal(err)
	}
}

// TestNotEqualOnMultiValued: a filter on a multi-valued attribute matches
// when any of its values meets the criterion (RFC 7644 §3.4.2.2), ne
// included: emails.type ne "work" matches a user who also has a home
// email. An absent attribute equals nothing, so ne matches it.
func TestNotEqualOnMultiValued(t *testing.T) {
	doc := sampleUser(t)
	checkMatches(t, doc, []matchCase{
		{`emails.type ne "work"`, true},
		{`emails.type ne "other"`, true},
		{`emails[type ne "work"]`, true},
		{`not (emails.type ne "work")`, false},
		{`phoneNumbers.value ne "x"`, true},
		{`emails.display ne "x"`, true},
	})
	doc["emails"] = []any{map[string]any{"type": "work", "value": "a@b"}, map[string]any{"type": "Work", "value": "c@d"}}
	checkMatches(t, doc, []matchCase{
		{`emails.type ne "work"`, false},
		{`emails.value ne "a@b"`, true},
	})
}

// TestSubstringOnDateTime: co, sw and ew compare a dateTime as the string
// it is stored as; they were parsed as an instant, so a full date-time
// matched nothing and a partial one was refused.
func TestSubstringOnDateTime(t *testing.T) {
	checkMatches(t, sampleUser(t), []matchCase{
		{`meta.created sw "2024-03"`, true},
		{`meta.created co "03-01T10"`, true},
		{`meta.created ew "00Z"`, true},
		{`meta.created sw "2024-03-01T10:00:00Z"`, true},
		{`meta.created sw "2025"`, false},
		{`meta.created eq "2024-03-01T11:00:00+01:00"`, true},
	})
}
