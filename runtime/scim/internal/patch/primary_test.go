package patch

import (
	"testing"

	"github.com/idrecon/idrecon/runtime/scim/internal/schema"
)

// TestPrimaryStaysUnique: a PATCH that sets a value's "primary" to true sets
// it to false on every other value of the attribute (RFC 7644 §3.5.2; RFC
// 7643 §2.4: "true" appears no more than once).
func TestPrimaryStaysUnique(t *testing.T) {
	const two = `{"userName":"u","emails":[{"type":"work","value":"w@x","primary":true},{"type":"home","value":"h@x"}]}`
	tests := []struct{ name, doc, ops, want string }{
		{"add primary value", two,
			`[{"op":"add","path":"emails","value":[{"type":"other","value":"o@x","primary":true}]}]`,
			`{"emails":[{"primary":false,"type":"work","value":"w@x"},{"type":"home","value":"h@x"},{"primary":true,"type":"other","value":"o@x"}],"userName":"u"}`},
		{"pathless add primary value", two,
			`[{"op":"add","value":{"emails":[{"type":"other","value":"o@x","primary":"True"}]}}]`,
			`{"emails":[{"primary":false,"type":"work","value":"w@x"},{"type":"home","value":"h@x"},{"primary":true,"type":"other","value":"o@x"}],"userName":"u"}`},
		{"filtered primary sub-attribute", two,
			`[{"op":"replace","path":"emails[type eq \"home\"].primary","value":true}]`,
			`{"emails":[{"primary":false,"type":"work","value":"w@x"},{"primary":true,"type":"home","value":"h@x"}],"userName":"u"}`},
		{"filtered element", two,
			`[{"op":"replace","path":"emails[type eq \"home\"]","value":{"value":"h2@x","primary":true}}]`,
			`{"emails":[{"primary":false,"type":"work","value":"w@x"},{"primary":true,"type":"home","value":"h2@x"}],"userName":"u"}`},
		{"created by filter", two,
			`[{"op":"add","path":"emails[type eq \"other\"]","value":{"value":"o@x","primary":true}}]`,
			`{"emails":[{"primary":false,"type":"work","value":"w@x"},{"type":"home","value":"h@x"},{"primary":true,"type":"other","value":"o@x"}],"userName":"u"}`},
		{"non-primary add leaves primary", two,
			`[{"op":"add","path":"emails","value":[{"type":"other","value":"o@x"}]}]`,
			`{"emails":[{"primary":true,"type":"work","value":"w@x"},{"type":"home","value":"h@x"},{"type":"other","value":"o@x"}],"userName":"u"}`},
		{"re-adding the primary value keeps it", two,
			`[{"op":"add","path":"emails","value":[{"type":"work","value":"w@x","primary":true}]}]`,
			`{"emails":[{"primary":true,"type":"work","value":"w@x"},{"type":"home","value":"h@x"}],"userName":"u"}`},
		{"Entra's work email replace leaves primary", two,
			`[{"op":"Replace","path":"emails[type eq \"work\"].value","value":"n@x"}]`,
			`{"emails":[{"primary":true,"type":"work","value":"n@x"},{"type":"home","value":"h@x"}],"userName":"u"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := decode(t, tt.doc)
			ops, err := Parse(decode(t, `{"schemas":["`+URIPatchOp+`"],"Operations":`+tt.ops+`}`))
			if err != nil {
				t.Fatal(err)
			}
			if err := Apply(doc, ops, schema.UserType); err != nil {
				t.Fatal(err)
			}
			if got := canon(doc); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
