package etcdstate

import (
	"strings"
	"testing"

	"github.com/idrecon/idrecon/runtime/store"
)

// FuzzKeys: every key the state writes parses back to what it names, in
// every table and whatever the ids hold (a SCIM id, a resource name, a
// member id are the client's), and any other key under the prefix, which
// another daemon or an operator's etcdctl may have written, parses without
// a panic or is refused.
func FuzzKeys(f *testing.F) {
	f.Add("u1", "Role", "Developer", "")
	f.Add("a/b", "k%2F", "..", "%zz")
	f.Add("", "", "", "/idrecon/o/users/")
	f.Add("é\x00", "Gateway", "x y", "/idrecon/m/a/b/c")
	f.Fuzz(func(t *testing.T, id, kind, name, raw string) {
		s := &State{prefix: "/idrecon/"}
		for _, table := range []string{store.TableUsers, store.TableGroups, store.TableMembers, store.TableMeta} {
			p, ok := s.parse(s.objectKey(table, id))
			if !ok || p.table != table || p.id != id {
				t.Fatalf("objectKey(%q, %q) parses as %+v, %v", table, id, p, ok)
			}
		}
		if p, ok := s.parse(s.resourceKey(kind, name)); !ok || p.table != store.TableResources || p.kind != kind || p.name != name {
			t.Fatalf("resourceKey(%q, %q) parses as %+v, %v", kind, name, p, ok)
		}
		if p, ok := s.parse(s.memberKey(id, name)); !ok || p.group != id || p.member != name || p.table != "" {
			t.Fatalf("memberKey(%q, %q) parses as %+v, %v", id, name, p, ok)
		}
		// Keys outside the mirrored tables are not objects.
		for _, k := range []string{s.memberOfKey(id, name), s.userNameKey(name), s.groupNameKey(name), s.tickKey()} {
			if p, ok := s.parse(k); ok {
				t.Fatalf("%q parses as %+v", k, p)
			}
		}
		p, ok := s.parse(raw)
		if ok && !strings.HasPrefix(raw, s.prefix) {
			t.Fatalf("%q, outside the prefix, parses as %+v", raw, p)
		}
	})
}
