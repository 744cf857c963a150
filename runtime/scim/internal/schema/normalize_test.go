package schema

import (
	"encoding/json"
	"strings"
	"testing"

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
