package scim

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/idrecon/idrecon/runtime/scim/internal/schema"
	"github.com/idrecon/idrecon/runtime/store"
)

// TestHandWrittenEncodersAgree: appendUser and appendGroup, the encoders of
// the hot path, write the same JSON value as the generic rendering (userMap,
// groupMap) that filters and projections use, for any stored content.
func TestHandWrittenEncodersAgree(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		str := rapid.String()
		created := time.Unix(rapid.Int64Range(0, 4e9).Draw(t, "created"), rapid.Int64Range(0, 1e9-1).Draw(t, "ns"))
		base := "https://idrecon.example.com/api/" + rapid.StringMatching(`[a-z0-9/._~-]{0,12}`).Draw(t, "base")

		attrs := map[string]any{"userName": str.Draw(t, "userName")}
		if rapid.Bool().Draw(t, "title") {
			// A value may spell the extension's URI without the resource
			// having the extension.
			attrs["title"] = rapid.OneOf(str, rapid.Just(schema.URIEnterprise)).Draw(t, "titleValue")
		}
		if rapid.Bool().Draw(t, "enterprise") {
			attrs["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] = map[string]any{"department": str.Draw(t, "department")}
		}
		raw, err := json.Marshal(attrs)
		if err != nil {
			t.Fatal(err)
		}
		u := &store.User{ID: str.Draw(t, "userID"), UserName: attrs["userName"].(string), Attributes: raw,
			Created: created, Modified: created.Add(time.Second), Version: rapid.Uint64().Draw(t, "userVersion")}
		same(t, "user", appendUser(nil, base, u), userMap(base, u))

		g := &store.Group{ID: str.Draw(t, "groupID"), DisplayName: str.Draw(t, "displayName"),
			ExternalID: str.Draw(t, "externalId"), Created: created, Modified: created, Version: rapid.Uint64().Draw(t, "groupVersion")}
		members := rapid.SliceOf(str).Draw(t, "members")
		withMembers := rapid.Bool().Draw(t, "withMembers")
		same(t, "group", appendGroup(nil, base, g, members, withMembers), groupMap(base, g, members, withMembers))
	})
}

func same(t *rapid.T, what string, encoded []byte, doc map[string]any) {
	var got, want any
	if err := json.Unmarshal(encoded, &got); err != nil {
		t.Fatalf("%s: hand-written encoding is not JSON: %v\n%s", what, err, encoded)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: hand-written\n%s\ngeneric\n%s", what, encoded, b)
	}
}
