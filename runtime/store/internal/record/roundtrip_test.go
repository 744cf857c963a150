package record

import (
	"reflect"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/store"
)

// TestWhatEncodesDecodes: a record Encode writes must decode again, or the
// data dir holding it cannot be loaded; what Decode would refuse, Encode
// must refuse first, while the write can still fail.
func TestWhatEncodesDecodes(t *testing.T) {
	for _, tt := range []struct {
		name  string
		table string
		obj   any
	}{
		{"resource of an unknown kind without a spec", store.TableResources, &store.Resource{Kind: "Widget", Name: "w"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := Encode(tt.table, tt.obj)
			if err != nil {
				return
			}
			if _, err := Decode(tt.table, rec); err != nil {
				t.Fatalf("Encode wrote a record that Decode refuses: %v", err)
			}
		})
	}
}

// FuzzEncode builds objects of every table from the fuzzer's values and
// checks that each record Encode writes decodes to an equal object.
func FuzzEncode(f *testing.F) {
	f.Add(uint8(0), "u1", "ada", "ext", true, []byte(`{"a":1}`), int64(1767225600), uint32(5), uint64(7))
	f.Add(uint8(4), "g1", "a\x00b", "", false, []byte(nil), int64(-62135596800), uint32(0), uint64(0))
	f.Add(uint8(5), "g1", "b", "a", false, []byte{}, int64(0), uint32(999999999), uint64(1<<63))
	f.Add(uint8(7), "Role", "r", "Widget", false, []byte(nil), int64(0), uint32(0), uint64(0))
	f.Fuzz(func(t *testing.T, which uint8, a, b, c string, flag bool, raw []byte, sec int64, nsec uint32, n uint64) {
		when := time.Unix(sec, int64(nsec%uint32(time.Second))).UTC()
		var table string
		var obj any
		switch which % 8 {
		case 0:
			table, obj = store.TableUsers, &store.User{ID: a, UserName: b, ExternalID: c, Active: flag, WorkEmail: c + b,
				Attributes: raw, Created: when, Modified: when.Add(time.Duration(nsec)), Version: n}
		case 1:
			table, obj = store.TableGroups, &store.Group{ID: a, DisplayName: b, ExternalID: c, Created: when, Modified: when, Version: n}
		case 2:
			table, obj = store.TableMembers, &store.Members{GroupID: a, Version: n, Modified: when}
		case 3:
			table, obj = Memberships, &store.Membership{GroupID: a, MemberID: b}
		case 4:
			table, obj = MemberLists, &MemberChunk{GroupID: a, IDs: []string{b, c}}
		case 5:
			var add, remove []string
			if b != "" {
				add = []string{b, b + c}
			}
			if c != "" {
				remove = []string{c}
			}
			table, obj = MemberDeltas, &MemberDelta{GroupID: a, Version: n, Modified: when, Add: add, Remove: remove}
		case 6:
			table, obj = store.TableMeta, &store.Meta{Key: a, Value: b}
		default:
			// A resource without a spec, of any kind.
			table, obj = store.TableResources, &store.Resource{Kind: c, Name: a, Revision: b, ModifiedBy: c, Modified: when}
		}
		rec, err := Encode(table, obj)
		if err != nil {
			return
		}
		got, err := Decode(table, rec)
		if err != nil {
			t.Fatalf("Encode(%s, %#v) wrote a record Decode refuses: %v", table, obj, err)
		}
		if !reflect.DeepEqual(got, obj) {
			t.Fatalf("round trip through %s:\n got %#v\nwant %#v", table, got, obj)
		}
	})
}
