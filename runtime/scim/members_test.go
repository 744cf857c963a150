package scim

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"testing"
	"unsafe"

	"github.com/idrecon/idrecon/runtime/scim/internal/patch"
	"github.com/idrecon/idrecon/runtime/scim/internal/schema"
	"github.com/idrecon/idrecon/runtime/store"
)

// TestMemberPrecheckIsRedoneAfterAChange checks that a member PATCH
// validated on a snapshot is validated again when a user or group was
// written before the PATCH's write ran: a member deleted in between must
// not become a membership.
func TestMemberPrecheckIsRedoneAfterAChange(t *testing.T) {
	tests := []struct {
		name   string
		change func(*store.Txn) error
		holds  bool
	}{
		{"nothing written", func(*store.Txn) error { return nil }, true},
		{"member deleted", func(tx *store.Txn) error { _, err := tx.DeleteAll(store.TableUsers, store.IndexID, "u1"); return err }, false},
		{"another user created", func(tx *store.Txn) error { return tx.Insert(store.TableUsers, &store.User{ID: "u2", UserName: "b"}) }, false},
		{"a group created", func(tx *store.Txn) error {
			return tx.Insert(store.TableGroups, &store.Group{ID: "g2", DisplayName: "Other"})
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := store.New(store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			ctx := context.Background()
			if err := st.Update(ctx, func(tx *store.Txn) error {
				if err := tx.Insert(store.TableUsers, &store.User{ID: "u1", UserName: "a"}); err != nil {
					return err
				}
				return tx.Insert(store.TableGroups, &store.Group{ID: "g", DisplayName: "Leads"})
			}); err != nil {
				t.Fatal(err)
			}
			d := &memberDelta{ids: []string{"u1"}, add: map[string]bool{"u1": true}}
			d.precheck(st.Read(), "g")
			if d.checked.users == nil {
				t.Fatal("precheck of an existing member did not pass")
			}
			if err := st.Update(ctx, tt.change); err != nil {
				t.Fatal(err)
			}
			if err := st.Update(ctx, func(tx *store.Txn) error {
				if got := d.checked.holds(tx); got != tt.holds {
					t.Errorf("holds = %v, want %v", got, tt.holds)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("unknown member", func(t *testing.T) {
		st, err := store.New(store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		d := &memberDelta{ids: []string{"nobody"}, add: map[string]bool{"nobody": true}}
		d.precheck(st.Read(), "g")
		if d.checked.users != nil {
			t.Fatal("precheck passed an unknown member")
		}
	})
}

// TestMemberValuesAsNormalised checks the shortcut for Entra's member
// shape against what schema.Value makes of the same values: the same ids,
// or an error in the same cases.
func TestMemberValuesAsNormalised(t *testing.T) {
	values := []string{
		`[{"value":"u1"},{"$ref":null,"value":"u2"}]`,
		`[{"VALUE":"u1"},{"Value":"u2","display":"Two"}]`,
		`[{"$ref":"https://x/Users/u1","value":"u1"}]`,
		`[{"value":"u1","type":"User"}]`,
		`["u1","u2"]`,
		`{"value":"u1"}`,
		`[null,{"value":"u1"}]`,
		`[{"value":""}]`,
		`[{"value":7}]`,
		`[{"display":"nobody"}]`,
		`[{"$ref":null}]`,
		`[[{"value":"u1"}]]`,
		`[]`,
	}
	members := schema.Group.Attr("members")
	for _, raw := range values {
		t.Run(raw, func(t *testing.T) {
			var v any
			if err := json.Unmarshal([]byte(raw), &v); err != nil {
				t.Fatal(err)
			}
			// What the general path makes of it.
			var want []string
			norm, wantErr := schema.Value(members, v)
			if wantErr == nil {
				list, _ := norm.([]any)
				for _, e := range list {
					id, _ := e.(map[string]any)["value"].(string)
					if id == "" {
						wantErr = errors.New("no value")
						break
					}
					want = append(want, id)
				}
			}
			d, ok, err := newMemberDelta([]patch.Operation{{Op: "add", Path: "members", Value: v, HasValue: true}})
			if !ok {
				t.Fatal("not taken as a member change")
			}
			if (err != nil) != (wantErr != nil) {
				t.Fatalf("err = %v, want error: %v", err, wantErr)
			}
			if err == nil && !slices.Equal(d.ids, want) {
				t.Fatalf("ids %v, want %v", d.ids, want)
			}
		})
	}
}

// FuzzMemberPatchPaths checks that the typed decoder of Entra's member
// PATCHes agrees with the general path (decodeObject, patch.Parse,
// newMemberDelta) on every body it accepts.
func FuzzMemberPatchPaths(f *testing.F) {
	for _, body := range []string{
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"members","value":[{"$ref":null,"value":"u1"},{"value":"u2"}]}]}`,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":" Members ","value":[{"value":"u1"}]},{"op":"add","path":"members","value":[{"value":"u1"}]}]}`,
		`{"schemas":["other"],"Operations":[{"op":"add","path":"members","value":[{"value":"u1"}]}]}`,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"u1","display":"x"}]}]}`,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"$ref":"x","value":"u1"}]}]}`,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"members","value":[{"value":"u1"}]}]}`,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[]}]}`,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"OP":"ADD","PATH":"members","VALUE":[{"VALUE":"u1"}]}]} `,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[]}`,
		`null`,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"u1","Value":"u2"}]}]}`,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","OP":"remove","path":"members","value":[{"value":"u1"}]}]}`,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"v\u0061lue":"u1"}]}]}`,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"u1","value":"u2"}]}]}`,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","op":"remove","path":"members","value":[{"value":"u1"}]}]}`,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"schemas":[],"Operations":[{"op":"add","path":"members","value":[{"value":"u1"}]}]}`,
	} {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := entraMemberDelta(body)
		if !ok {
			return
		}
		obj, err := decodeObject(body)
		if err != nil {
			t.Fatalf("fast path took a body the general path refuses: %v", err)
		}
		ops, err := patch.Parse(obj)
		if err != nil {
			t.Fatalf("fast path took a body patch.Parse refuses: %v", err)
		}
		slow, ok, err := newMemberDelta(ops)
		if !ok || err != nil {
			t.Fatalf("general path: ok %v, err %v", ok, err)
		}
		if !slices.Equal(fast.ids, slow.ids) || !maps.Equal(fast.add, slow.add) {
			t.Fatalf("fast %v %v, general %v %v", fast.ids, fast.add, slow.ids, slow.add)
		}
	})
}

// TestMembershipsShareTheMembersID checks that a membership holds the
// store's string for its member, not the copy that came in the request:
// through the typed decoder (add), the general path (replace), and a write
// whose precheck no longer holds.
func TestMembershipsShareTheMembersID(t *testing.T) {
	e := newEnv(t, true, defaultConfig())
	u1 := e.createUser("one@contoso.com", "1", "one@contoso.com")
	u2 := e.createUser("two@contoso.com", "2", "two@contoso.com")
	inner := e.createGroup("Inner", "i")
	g := e.createGroup("Outer", "o")
	e.must(204, "PATCH", "/Groups/"+g, ops(`{"op":"add","path":"members","value":`+memberList(u1)+`}`))
	e.must(204, "PATCH", "/Groups/"+g, ops(`{"op":"replace","path":"members","value":`+memberList(u1, u2, inner)+`}`))
	txn := e.st.Read()
	ids, err := txn.MemberIDsOf(g)
	if err != nil || ids.Len() != 3 {
		t.Fatalf("members %v, %v", ids.Slice(), err)
	}
	for id := range ids.All() {
		var held string
		if u, _ := txn.UserByID(id); u != nil {
			held = u.ID
		} else if gr, _ := txn.GroupByID(id); gr != nil {
			held = gr.ID
		}
		if unsafe.StringData(id) != unsafe.StringData(held) {
			t.Errorf("membership of %s holds its own copy of the id", id)
		}
	}
}

// TestEntraKeys checks the key scan that keeps bodies whose keys are not
// spelt as Entra spells them (and so may name one key twice) off the
// member fast path.
func TestEntraKeys(t *testing.T) {
	const head = `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"members","value":[`
	for _, tt := range []struct {
		name, body string
		want       bool
	}{
		{"Entra's shape", head + `{"$ref":null,"value":"u1"},{"value":"u2"}]}]}`, true},
		{"space before a colon", head + `{"value" : "u1"}]}]}`, true},
		{"colons and escaped quotes in values", head + `{"value":"a\":\"VALUE\":b"},{"value":"c\\"}]}]}`, true},
		{"a key in another case", head + `{"Value":"u1"}]}]}`, false},
		{"one key twice in two cases", head + `{"value":"u1","VALUE":"u2"}]}]}`, false},
		{"op in another case", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"OP":"add","path":"members","value":[{"value":"u1"}]}]}`, false},
		{"Operations in another case", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"operations":[{"op":"add","path":"members","value":[{"value":"u1"}]}]}`, false},
		{"an escape in a key", head + `{"v\u0061lue":"u1"}]}]}`, false},
		{"a key ending in an escaped backslash", head + `{"value\\":"u1"}]}]}`, false},
		{"an escaped quote before a key's name", head + `{"x\"value":"u1"}]}]}`, true}, // the decoder refuses the key
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := entraKeys([]byte(tt.body)); got != tt.want {
				t.Fatalf("entraKeys = %v, want %v", got, tt.want)
			}
		})
	}
}
