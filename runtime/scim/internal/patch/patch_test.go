package patch

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/runtime/scim/internal/schema"
	"github.com/idrecon/idrecon/runtime/scim/internal/scimerr"
)

func decode(t testing.TB, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return m
}

func canon(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

const user = `{"userName":"a@b.c","active":true,"emails":[{"type":"work","value":"a@b.c"},{"type":"home","value":"h@b.c"}],"name":{"givenName":"A","familyName":"B"}}`

func TestApply(t *testing.T) {
	tests := []struct {
		name, doc, ops, want string
		rt                   *schema.ResourceType
	}{
		{"replace filtered sub", user, `[{"op":"Replace","path":"emails[type eq \"work\"].value","value":"n@b.c"}]`,
			`{"active":true,"emails":[{"type":"work","value":"n@b.c"},{"type":"home","value":"h@b.c"}],"name":{"familyName":"B","givenName":"A"},"userName":"a@b.c"}`, nil},
		{"add filtered creates", `{"userName":"u"}`, `[{"op":"Add","path":"emails[type eq \"work\"].value","value":"x@y"}]`,
			`{"emails":[{"type":"work","value":"x@y"}],"userName":"u"}`, nil},
		{"pathless dotted and urn keys", `{"userName":"u","name":{"familyName":"F"}}`,
			`[{"op":"replace","value":{"name.givenName":"G","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"7","active":"False"}}]`,
			`{"active":false,"name":{"familyName":"F","givenName":"G"},"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"7"},"userName":"u"}`, nil},
		{"pathless add merges multi-valued", `{"userName":"u","emails":[{"type":"work","value":"a"}]}`,
			`[{"op":"add","value":{"emails":[{"type":"home","value":"b"}]}}]`,
			`{"emails":[{"type":"work","value":"a"},{"type":"home","value":"b"}],"userName":"u"}`, nil},
		{"pathless replace overwrites multi-valued", `{"userName":"u","emails":[{"type":"work","value":"a"}]}`,
			`[{"op":"replace","value":{"emails":[{"type":"home","value":"b"}]}}]`,
			`{"emails":[{"type":"home","value":"b"}],"userName":"u"}`, nil},
		{"manager string", `{"userName":"u"}`, `[{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"m1"}]`,
			`{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"m1"}},"userName":"u"}`, nil},
		{"manager replaced, not merged", `{"userName":"u","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"m1","$ref":"x"}}}`,
			`[{"op":"replace","path":"manager","value":"m2"}]`,
			`{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"m2"}},"userName":"u"}`, nil},
		{"manager removed by value filter", `{"userName":"u","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"m1"}}}`,
			`[{"op":"remove","path":"manager[value eq \"m1\"]"}]`, `{"userName":"u"}`, nil},
		{"remove filtered element", user, `[{"op":"remove","path":"emails[type eq \"home\"]"}]`,
			`{"active":true,"emails":[{"type":"work","value":"a@b.c"}],"name":{"familyName":"B","givenName":"A"},"userName":"a@b.c"}`, nil},
		{"members add many dedup", `{"displayName":"g","members":[{"value":"1"}]}`,
			`[{"op":"Add","path":"members","value":[{"value":"1"},{"value":"2","$ref":null},{"value":"3"}]}]`,
			`{"displayName":"g","members":[{"value":"1"},{"value":"2"},{"value":"3"}]}`, schema.GroupType},
		{"members remove listed only", `{"displayName":"g","members":[{"value":"1"},{"value":"2"},{"value":"3"}]}`,
			`[{"op":"Remove","path":"members","value":[{"value":"2"}]}]`,
			`{"displayName":"g","members":[{"value":"1"},{"value":"3"}]}`, schema.GroupType},
		{"members remove by filter", `{"displayName":"g","members":[{"value":"1"},{"value":"2"}]}`,
			`[{"op":"remove","path":"members[value eq \"1\"]"}]`, `{"displayName":"g","members":[{"value":"2"}]}`, schema.GroupType},
		{"members filtered add agreeing with its filter", `{"displayName":"g","members":[{"value":"1"}]}`,
			`[{"op":"add","path":"members[value eq \"2\"]","value":{"value":"2"}}]`, `{"displayName":"g","members":[{"value":"1"},{"value":"2"}]}`, schema.GroupType},
		{"filtered add of what the filter leaves open", user, `[{"op":"add","path":"emails[type eq \"work\"]","value":{"type":"WORK","display":"A","primary":true}}]`,
			`{"active":true,"emails":[{"display":"A","primary":true,"type":"WORK","value":"a@b.c"},{"type":"home","value":"h@b.c"}],"name":{"familyName":"B","givenName":"A"},"userName":"a@b.c"}`, nil},
		{"filtered replace may change what its filter selects", user, `[{"op":"replace","path":"emails[type eq \"home\"].type","value":"other"}]`,
			`{"active":true,"emails":[{"type":"work","value":"a@b.c"},{"type":"other","value":"h@b.c"}],"name":{"familyName":"B","givenName":"A"},"userName":"a@b.c"}`, nil},
		{"members remove all", `{"displayName":"g","members":[{"value":"1"},{"value":"2"}]}`,
			`[{"op":"remove","path":"members"}]`, `{"displayName":"g"}`, schema.GroupType},
		{"extension uri as path", `{"userName":"u"}`, `[{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User","value":{"department":"D"}}]`,
			`{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"D"},"userName":"u"}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := tt.rt
			if rt == nil {
				rt = schema.UserType
			}
			doc := decode(t, tt.doc)
			ops, err := Parse(decode(t, `{"schemas":["`+URIPatchOp+`"],"Operations":`+tt.ops+`}`))
			if err != nil {
				t.Fatal(err)
			}
			if err := Apply(doc, ops, rt); err != nil {
				t.Fatal(err)
			}
			if got := canon(doc); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct{ body, scimType string }{
		{`{"Operations":[{"op":"add","path":"title","value":"x"}]}`, scimerr.InvalidSyntax},
		{`{"schemas":null,"Operations":[{"op":"add","path":"title","value":"x"}]}`, scimerr.InvalidSyntax},
		{`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"Operations":[{"op":"add","path":"title","value":"x"}]}`, scimerr.InvalidSyntax},
		{`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[]}`, scimerr.InvalidSyntax},
		{`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"nope","path":"title"}]}`, scimerr.InvalidSyntax},
		{`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove"}]}`, scimerr.NoTarget},
		{`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","value":1}]}`, scimerr.InvalidValue},
		{`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":7}]}`, scimerr.InvalidPath},
		{`{"schemas":["x"],"Operations":[{"op":"add","path":"title","value":"x"}]}`, scimerr.InvalidSyntax},
		{`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"title","value":{"a":1}}]}`, scimerr.InvalidValue},
		{`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"groups","value":[{"value":"g"}]}]}`, scimerr.Mutability},
		{`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"name.bogus","value":"x"}]}`, scimerr.InvalidPath},
		{`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"emails[value sw \"zz\"]","value":{"value":"x"}}]}`, scimerr.NoTarget},
		{`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"emails.display","value":"x"}]}`, scimerr.NoTarget},
		{`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"title"}]}`, scimerr.InvalidValue},
		{`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"title"}]}`, scimerr.InvalidValue},
		{`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":null}]}`, scimerr.InvalidValue},
		{`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"emails[type eq \"work\"]","value":[{"value":"a@b"},{"value":"c@d"}]}]}`, scimerr.InvalidValue},
		{`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"emails","value":null}]}`, scimerr.InvalidValue},
		{`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"emails[primary eq \"True\"].value","value":"x"}]}`, scimerr.InvalidFilter},
		{`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"emails[type eq true].value","value":"x"}]}`, scimerr.InvalidFilter},
		{`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"emails[type eq 'work'].value","value":"x"}]}`, scimerr.InvalidFilter},
		{`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"name.givenName":"X","name":{"givenName":"Y"}}}]}`, scimerr.InvalidSyntax},
		{`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"title":"X","urn:ietf:params:scim:schemas:core:2.0:User":{"title":"Y"}}}]}`, scimerr.InvalidSyntax},
		{`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","value":{"emails.value":"X","emails[type eq \"work\"].value":"Y"}}]}`, scimerr.InvalidSyntax},
	}
	for _, tt := range tests {
		doc := decode(t, `{"userName":"u"}`)
		ops, err := Parse(decode(t, tt.body))
		if err == nil {
			err = Apply(doc, ops, schema.UserType)
		}
		se, ok := err.(*scimerr.Error)
		if !ok || se.ScimType != tt.scimType {
			t.Errorf("%s: %v, want %s", tt.body, err, tt.scimType)
		}
	}
}

// FuzzPatch checks that no PATCH body panics the parser or the applier, and
// that what Apply leaves behind still encodes as JSON.
func FuzzPatch(f *testing.F) {
	seeds := []string{
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}`,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"name.givenName":"x","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager":"m"}}]}`,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"emails[type eq \"work\"].value","value":"x"}]}`,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members[value eq \"1\"]"}]}`,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Remove","path":"members","value":[{"value":"1"}]}]}`,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"manager[value eq \"m\"].value","value":[1,2]}]}`,
	}
	for _, s := range seeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	// apply parses body afresh and applies it to a fresh document, so two
	// calls share nothing that Apply could change.
	apply := func(t *testing.T, body string, group bool) (map[string]any, bool, error) {
		dec := json.NewDecoder(strings.NewReader(body))
		dec.UseNumber()
		var m map[string]any
		if dec.Decode(&m) != nil || m == nil {
			return nil, false, nil
		}
		ops, err := Parse(m)
		if err != nil {
			return nil, false, nil
		}
		rt, doc := schema.UserType, decode(t, user)
		if group {
			rt, doc = schema.GroupType, decode(t, `{"displayName":"g","members":[{"value":"1"},{"value":"2"}]}`)
		}
		return doc, true, Apply(doc, ops, rt)
	}
	f.Fuzz(func(t *testing.T, body string, group bool) {
		doc, ok, err := apply(t, body, group)
		if !ok {
			return
		}
		if err != nil {
			if _, ok := err.(*scimerr.Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if _, err := json.Marshal(doc); err != nil {
			t.Fatalf("result does not encode: %v (%s)", err, fmt.Sprint(doc))
		}
		// The body's keys come in map order: the outcome must not depend
		// on it, or two daemons (or two retries) store different users.
		if again, _, err := apply(t, body, group); err != nil || !reflect.DeepEqual(again, doc) {
			t.Fatalf("applied twice: %v\n%v\n%v", err, doc, again)
		}
	})
}

// TestRemoveMembersNamingNone: a remove whose value names no member is
// invalidValue, never "remove all" and never a silent no-op. FuzzPatch found
// the first of these as a panic.
func TestRemoveMembersNamingNone(t *testing.T) {
	for _, value := range []string{`""`, `[]`, `[null]`, `[""]`} {
		t.Run(value, func(t *testing.T) {
			doc := decode(t, `{"displayName":"g","members":[{"value":"1"},{"value":"2"}]}`)
			ops, err := Parse(decode(t, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Remove","path":"members","value":`+value+`}]}`))
			if err != nil {
				t.Fatal(err)
			}
			err = Apply(doc, ops, schema.GroupType)
			if se, ok := err.(*scimerr.Error); !ok || se.ScimType != scimerr.InvalidValue {
				t.Fatalf("err = %v, want invalidValue", err)
			}
			if got := doc["members"].([]any); len(got) != 2 {
				t.Fatalf("members %v, want both kept", got)
			}
		})
	}
}
