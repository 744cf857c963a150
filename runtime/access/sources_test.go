package access

import (
	"context"
	"reflect"
	"testing"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// TestGroupSourcesFollowBindings checks that a binding change with the
// groups unchanged keeps the memoised group sources only when it moves no
// assignment to another group.
func TestGroupSourcesFollowBindings(t *testing.T) {
	st, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	update := func(fn func(*store.Txn) error) {
		t.Helper()
		if err := st.Update(context.Background(), fn); err != nil {
			t.Fatal(err)
		}
	}
	update(func(tx *store.Txn) error {
		for _, v := range []struct {
			table string
			obj   any
		}{
			{store.TableResources, &store.Resource{Kind: spec.KindRole, Name: "Developer", Spec: &spec.Role{}}},
			{store.TableResources, &store.Resource{Kind: spec.KindAccessAssignment, Name: "a",
				Spec: &spec.AccessAssignment{Subject: spec.Subject{Group: "Ops"}, Roles: []string{"Developer"}}}},
			{store.TableGroups, &store.Group{ID: "g1", DisplayName: "Ops"}},
			{store.TableGroups, &store.Group{ID: "g2", DisplayName: "Other"}},
		} {
			if err := tx.Insert(v.table, v.obj); err != nil {
				return err
			}
		}
		return nil
	})
	sources := func() groupSources {
		t.Helper()
		snap := snapshot(st.Read())
		c, err := catalogOf(snap)
		if err != nil {
			t.Fatal(err)
		}
		s, err := groupSourcesOf(snap, c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	grantedBy := func(s groupSources) []string {
		var ids []string
		for id, src := range s {
			if len(src.roles) > 0 {
				ids = append(ids, id)
			}
		}
		return ids
	}

	before := sources()
	if got := grantedBy(before); !reflect.DeepEqual(got, []string{"g1"}) {
		t.Fatalf("matched by name: groups granting = %v, want [g1]", got)
	}
	update(func(tx *store.Txn) error {
		_, err := SyncBindings(tx)
		return err
	})
	after := sources()
	if reflect.ValueOf(after).UnsafePointer() != reflect.ValueOf(before).UnsafePointer() {
		t.Error("binding the assignment to the group it applied to rebuilt the group sources")
	}
	if got := grantedBy(after); !reflect.DeepEqual(got, []string{"g1"}) {
		t.Fatalf("bound: groups granting = %v, want [g1]", got)
	}
	v, _ := encodeBinding(binding{Subject: "ops", GroupID: "g2"})
	update(func(tx *store.Txn) error {
		return tx.Insert(store.TableMeta, &store.Meta{Key: bindingPrefix + "a", Value: v})
	})
	if got := grantedBy(sources()); !reflect.DeepEqual(got, []string{"g2"}) {
		t.Fatalf("bound to another group: groups granting = %v, want [g2]", got)
	}
}
