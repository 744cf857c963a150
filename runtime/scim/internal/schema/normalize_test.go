package schema

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/idrecon/idrecon/runtime/scim/internal/scimerr"
)

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"canonical keys and string booleans", `{"USERNAME":"a","Active":"False","emails":[{"Value":"x","TYPE":"work","primary":"true"}]}`,
			`{"active":false,"emails":[{"primary":true,"type":"work","value":"x"}],"userName":"a"}`},
		{"nulls, empties and read-only dropped", `{"userName":"a","title":null,"roles":[],"name":{"givenName":null},"id":"x","meta":{"resourceType":"User"},"groups":[{"value":"g"}]}`,
			`{"userName":"a"}`},
		{"unknown attributes and extensions dropped", `{"userName":"a","shoeSize":42,"urn:example:ext:1.0:User":{"x":1}}`, `{"userName":"a"}`},
		{"enterprise object, manager as string", `{"userName":"a","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":"m1","department":"D"}}`,
			`{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"D","manager":{"value":"m1"}},"userName":"a"}`},
		{"urn-qualified keys", `{"urn:ietf:params:scim:schemas:core:2.0:User:userName":"a","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"7"}`,
			`{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"7"},"userName":"a"}`},
		{"values kept exactly", `{"userName":"  Mixed Case  ","displayName":"Zoë \u00e9"}`, `{"displayName":"Zoë é","userName":"  Mixed Case  "}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Normalize(UserType, decode(t, tt.in))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(got)
			if string(b) != tt.want {
				t.Errorf("got  %s\nwant %s", b, tt.want)
			}
		})
	}
}

func TestNormalizeErrors(t *testing.T) {
	for _, in := range []string{
		`{"userName":1}`, `{"active":"yes"}`, `{"name":"x"}`, `{"emails":[{"value":1}]}`,
		`{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":"x"}`, `{"x509Certificates":[{"primary":"maybe"}]}`,
		`{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":[{"value":"a"},{"value":"b"}]}}`,
	} {
		_, err := Normalize(UserType, decode(t, in))
		if se, ok := err.(*scimerr.Error); !ok || se.ScimType != scimerr.InvalidValue {
			t.Errorf("%s: %v, want invalidValue", in, err)
		}
	}
}

// TestNormalizeAttributeNamedTwice: keys that name one attribute by two
// spellings are refused when their values differ (which would win
// follows map order) and accepted when they agree.
func TestNormalizeAttributeNamedTwice(t *testing.T) {
	const ent = URIEnterprise
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{`{"userName":"a","urn:ietf:params:scim:schemas:core:2.0:User:userName":"b"}`, false},
		{`{"userName":"a","urn:ietf:params:scim:schemas:core:2.0:User":{"userName":"b"}}`, false},
		{`{"` + ent + `":{"manager":"m1"},"` + ent + `:manager":{"value":"m2"}}`, false},
		// A resource's plain "department" is no extension attribute: dropped.
		{`{"` + ent + `":{"department":"D"},"department":"E"}`, true},
		{`{"userName":"a","urn:ietf:params:scim:schemas:core:2.0:User:userName":"a"}`, true},
		{`{"` + ent + `":{"manager":"m1"},"` + ent + `:manager":{"value":"m1"}}`, true},
		{`{"` + ent + `":{"department":"D"},"department":null}`, true},
	} {
		_, err := Normalize(UserType, decode(t, tt.in))
		if se, isSE := err.(*scimerr.Error); tt.ok && err != nil || !tt.ok && (!isSE || se.ScimType != scimerr.InvalidSyntax) {
			t.Errorf("%s: %v, want ok %v", tt.in, err, tt.ok)
		}
	}
}

func TestSplitURN(t *testing.T) {
	tests := []struct{ in, uri, attr string }{
		{"userName", "", "userName"},
		{"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName", URIUser, "name.givenName"},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager[value eq "urn:x:y"]`, URIEnterprise, `manager[value eq "urn:x:y"]`},
	}
	for _, tt := range tests {
		if uri, attr := SplitURN(tt.in); uri != tt.uri || attr != tt.attr {
			t.Errorf("SplitURN(%q) = %q, %q", tt.in, uri, attr)
		}
	}
}

func TestDistinctNames(t *testing.T) {
	many := func(extra string) string {
		var b strings.Builder
		b.WriteString(`{`)
		for i := range 40 {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		return b.String() + extra + `}`
	}
	tests := []struct {
		name, in string
		names    []string // the keys the error names; nil: no error
	}{
		{"distinct", `{"userName":"a","name":{"givenName":"g","familyName":"f"},"emails":[{"value":"v","type":"work"}]}`, nil},
		{"top level", `{"userName":"a","USERNAME":"b"}`, []string{"USERNAME", "userName"}},
		{"null still names it", `{"title":"a","Title":null}`, []string{"Title", "title"}},
		{"nested object", `{"name":{"givenName":"g","GivenName":"h"}}`, []string{"GivenName", "givenName", `in "name"`}},
		{"element of a list", `{"emails":[{"value":"a"},{"value":"b","VALUE":"c"}]}`, []string{"VALUE", "value", `in "emails"`}},
		{"inside a PATCH value", `{"Operations":[{"op":"replace","value":{"active":true,"Active":false}}]}`, []string{"Active", "active", `in "value"`}},
		{"many keys, distinct", many(`"x":1`), nil},
		{"many keys, two alike", many(`"K7":1`), []string{"K7", "k7"}},
		{"kelvin sign folds to k", `{"\u212aey":1,"key":2}`, []string{"key", "\u212aey"}},
		{"kelvin sign folds to k, many keys", many(`"\u212a9":1`), []string{"k9", "\u212a9"}},
		{"long s folds to s", many(`"ſ":1,"S":2`), []string{"S", "ſ"}},
		{"dotted and URN keys differ from plain ones", `{"name.givenName":"a","givenName":"b","urn:x:User:title":"c","title":"d"}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := DistinctNames(decode(t, tt.in))
			if tt.names == nil {
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
				return
			}
			se, ok := err.(*scimerr.Error)
			if !ok || se.ScimType != scimerr.InvalidSyntax {
				t.Fatalf("err = %v, want invalidSyntax", err)
			}
			for _, n := range tt.names {
				if !strings.Contains(se.Detail, n) {
					t.Errorf("detail %q does not name %q", se.Detail, n)
				}
			}
		})
	}
}

// FuzzFoldName checks foldName against strings.EqualFold, which decides
// which keys name one attribute.
func FuzzFoldName(f *testing.F) {
	for _, p := range [][2]string{{"userName", "USERNAME"}, {"key", "\u212aey"}, {"s", "ſ"}, {"ß", "ẞ"}, {"Σ", "ς"}, {"a", "b"}} {
		f.Add(p[0], p[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if !utf8.ValidString(a) || !utf8.ValidString(b) {
			return
		}
		if (foldName(a) == foldName(b)) != strings.EqualFold(a, b) {
			t.Fatalf("foldName(%q) = %q, foldName(%q) = %q, EqualFold %v", a, foldName(a), b, foldName(b), strings.EqualFold(a, b))
		}
	})
}
