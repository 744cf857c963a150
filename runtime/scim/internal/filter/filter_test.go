package filter

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/runtime/scim/internal/schema"
	"github.com/idrecon/idrecon/runtime/scim/internal/scimerr"
)

func sampleUser(t testing.TB) map[string]any {
	t.Helper()
	var doc map[string]any
	dec := json.NewDecoder(strings.NewReader(`{
		"id":"2819c223","userName":"Bjensen@Example.com","externalId":"bjensen","active":true,
		"name":{"givenName":"Barbara","familyName":"Jensen"},
		"emails":[{"type":"work","value":"bjensen@example.com","primary":true},{"type":"home","value":"babs@jensen.org"}],
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"m-1"},"employeeNumber":"701984"},
		"meta":{"created":"2024-03-01T10:00:00Z","lastModified":"2025-01-02T03:04:05.5Z"}}`))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestLenient(t *testing.T) {
	tests := []struct{ in, want string }{
		{`externalId eq jyoung`, `externalId eq "jyoung"`},
		{`id eq 5f3a-1 and manager eq m2`, `id eq "5f3a-1" and manager eq "m2"`},
		{`x eq 12`, `x eq 12`},
		{`x eq true`, `x eq true`},
		{`emails[type eq "work"].value eq "a@b"`, `emails[type eq "work" and value eq "a@b"]`},
		{`emails[type eq "work" or type eq "home"].value pr`, `emails[(type eq "work" or type eq "home") and value pr]`},
		{`userName eq "a b"`, `userName eq "a b"`},
	}
	for _, tt := range tests {
		if got := lenient(tt.in); got != tt.want {
			t.Errorf("lenient(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// matchCase is a filter and whether it matches the document under test.
type matchCase struct {
	filter string
	want   bool
}

// checkMatches parses each case's filter for users and matches it on doc.
func checkMatches(t *testing.T, doc map[string]any, tests []matchCase) {
	t.Helper()
	for _, tt := range tests {
		f, err := Parse(tt.filter, schema.UserType)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.filter, err)
			continue
		}
		if got := f.Match(doc); got != tt.want {
			t.Errorf("%q matched %v, want %v", tt.filter, got, tt.want)
		}
	}
}

func TestMatch(t *testing.T) {
	doc := sampleUser(t)
	tests := []matchCase{
		{`userName eq "bjensen@example.com"`, true},
		{`userName eq "bjensen"`, false},
		{`externalId eq "BJENSEN"`, false},
		{`externalId eq bjensen`, true},
		{`userName sw "BJ"`, true},
		{`userName ew ".COM"`, true},
		{`userName co "jens"`, true},
		{`userName ne "x"`, true},
		{`title pr`, false},
		{`title ne "x"`, true},
		{`name.familyName eq "jensen"`, true},
		{`emails[type eq "work"].value eq "BJENSEN@example.com"`, true},
		{`emails[type eq "home"].value eq "bjensen@example.com"`, false},
		{`emails[type eq "work" and value co "@example"]`, true},
		{`emails.value eq "babs@jensen.org"`, true},
		{`emails.type eq "other"`, false},
		{`manager eq "m-1"`, true},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m-1"`, true},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber gt "7"`, true},
		{`active eq true and (userName eq "x" or externalId eq "bjensen")`, true},
		{`not (active eq true)`, false},
		{`meta.created ge "2024-03-01T10:00:00Z"`, true},
		{`meta.created gt "2024-03-01T10:00:00+00:00"`, false},
		{`meta.lastModified lt "2025-01-02T03:04:06Z"`, true},
		{`id eq "2819c223"`, true},
		{`userName eq "a\"b"`, false},
		{`userName eq "it's" or externalId eq o'brien`, false},
	}
	checkMatches(t, doc, tests)
}

func TestParseErrors(t *testing.T) {
	for _, text := range []string{
		``, `userName`, `userName eq`, `nope eq "x"`, `name eq "x"`, `active lt false`, `emails[type eq "work"`,
		`emails[bogus eq "x"]`, `meta.created gt "never"`, `userName co 12`, strings.Repeat("a", MaxLen+1),
		`emails[type eq "work" and emails[type eq "x"]]`,
		`userName eq 'alice'`, `emails[type eq 'work']`, `userName eq "a" and externalId eq 'b'`,
		`active eq "true"`, `emails[primary eq "True"]`, `emails[type eq true]`, `userName eq 12`, `userName ne false`,
		`meta.created gt 5`,
	} {
		_, err := Parse(text, schema.UserType)
		se, ok := err.(*scimerr.Error)
		if !ok || se.ScimType != scimerr.InvalidFilter {
			t.Errorf("Parse(%q) = %v, want invalidFilter", text, err)
		}
	}
}

func TestTerms(t *testing.T) {
	tests := []struct {
		filter string
		keys   []string
		single bool
	}{
		{`userName eq "a"`, []string{"userName"}, true},
		{`id eq "1" and members eq "2"`, []string{"id", "members"}, false},
		{`emails[type eq "work"].value eq "a@b"`, []string{"emails.work"}, false},
		{`userName eq "a" or id eq "b"`, nil, false},
		{`userName co "a"`, nil, false},
		{`name.givenName eq "a"`, []string{"name.givenName"}, false},
	}
	for _, tt := range tests {
		rt := schema.UserType
		if strings.Contains(tt.filter, "members") {
			rt = schema.GroupType
		}
		f, err := Parse(tt.filter, rt)
		if err != nil {
			t.Fatal(err)
		}
		terms, single := f.Terms()
		var keys []string
		for _, term := range terms {
			keys = append(keys, term.Key)
		}
		if strings.Join(keys, ",") != strings.Join(tt.keys, ",") || single != tt.single {
			t.Errorf("%s: terms %v single %v, want %v %v", tt.filter, keys, single, tt.keys, tt.single)
		}
	}
}

func TestParsePath(t *testing.T) {
	p, err := ParsePath(`emails[type eq "work"].value`, schema.UserType)
	if err != nil || p.Attr.Attr.Name != "emails" || p.Attr.Sub.Name != "value" || p.Filter == nil || p.Creates["type"] != "work" {
		t.Fatalf("%+v %v", p, err)
	}
	p, err = ParsePath(`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager`, schema.UserType)
	if err != nil || p.Attr.Ext != schema.URIEnterprise || p.Attr.Attr.Name != "manager" {
		t.Fatalf("%+v %v", p, err)
	}
	if _, err := ParsePath(`emails[type eq "work"`, schema.UserType); err == nil {
		t.Fatal("want error")
	}
	if p, err := ParsePath(`emails[value co "x"].display`, schema.UserType); err != nil || p.Creates != nil {
		t.Fatalf("non-eq filter must not create: %+v %v", p, err)
	}
}

// termFilter spells t as a filter of its own.
func termFilter(t Term) string {
	v, _ := json.Marshal(t.Value)
	if t.Key == "emails.work" {
		return `emails[type eq "work" and value eq ` + string(v) + `]`
	}
	return t.Key + " eq " + string(v)
}

// FuzzFilter checks that no filter text panics the parser or the evaluator,
// that errors are invalidFilter, that "not" negates, that the terms hold on
// what matches, and that the fast path agrees with the general parser.
func FuzzFilter(f *testing.F) {
	for _, s := range []string{
		`userName eq "a"`, `externalId eq jyoung`, `emails[type eq "work"].value eq "x"`,
		`id eq "1" and members eq "2"`, `not (a eq "b") or (c pr)`, `meta.created gt "2020-01-01T00:00:00Z"`,
		`emails[type eq "work" and value co "@"]`, `x[y[z eq 1]]`, `userName eq "\u00e9\"`, `].x eq`,
		// Filters the sample user matches, so the terms are checked.
		`userName eq "bjensen@example.com" and externalId eq bjensen`, `emails[type eq "work" and value eq "bjensen@example.com"]`,
		`manager eq "m-1" and id eq "2819c223"`, `userName eq "x" or externalId eq "bjensen"`,
	} {
		f.Add(s)
	}
	doc := sampleUser(f)
	f.Fuzz(func(t *testing.T, text string) {
		for _, rt := range []*schema.ResourceType{schema.UserType, schema.GroupType} {
			flt, err := Parse(text, rt)
			if err != nil {
				if se, ok := err.(*scimerr.Error); !ok || se.ScimType != scimerr.InvalidFilter {
					t.Fatalf("error %T %v, want a *scimerr.Error of scimType invalidFilter", err, err)
				}
				continue
			}
			got := flt.Match(doc)
			// "not (f)" must match exactly where f does not: a parser that
			// bound a wrapped filter differently would show here.
			if nf, err := Parse("not ("+text+")", rt); err == nil && nf.Match(doc) == got {
				t.Fatalf("%q and its negation both matched %v", text, got)
			}
			// Each term is a conjunct the filter requires, so a document
			// the filter matches satisfies it (the store answers from its
			// indexes by the terms alone).
			terms, _ := flt.Terms()
			for _, term := range terms {
				if !got {
					break
				}
				if tf, err := Parse(termFilter(term), rt); err != nil || !tf.Match(doc) {
					t.Fatalf("%q matches but its term %+v does not (%v)", text, term, err)
				}
			}
			// The fast path must agree with the general parser.
			if _, fast := parseSimple(text, rt); fast {
				if expr, err := parse(lenient(text)); err == nil {
					if n, err := compile(expr, rt, nil); err == nil && n.match(doc) != got {
						t.Fatalf("%q: fast path matched %v, general parser %v", text, got, !got)
					}
				}
			}
		}
		if p, err := ParsePath(text, schema.UserType); err == nil && p.Filter != nil {
			for _, e := range doc["emails"].([]any) {
				p.Filter.MatchElement(e.(map[string]any))
			}
		}
	})
}
