package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"pgregory.net/rapid"
)

// TestMembersAgainstModel runs random membership changes, several per write
// and some in writes that fail after mutating or that the journal refuses,
// and checks both directions
// of the index against a plain model after every write.
func TestMembersAgainstModel(t *testing.T) {
	ids := []string{"a", "b", "c", "d", "e", "g1", "g2", "g3"}
	groups := []string{"g1", "g2", "g3"}
	rapid.Check(t, func(rt *rapid.T) {
		st, journal := journaledStore(rt)
		defer st.Close()
		model := map[string]map[string]bool{} // group → members
		errFail := errors.New("fail after mutating")
		for range rapid.IntRange(1, 30).Draw(rt, "writes") {
			type step struct {
				group       string
				add, remove []string
				deleteID    string
			}
			var steps []step
			for range rapid.IntRange(1, 4).Draw(rt, "steps") {
				if rapid.IntRange(0, 5).Draw(rt, "kind") == 0 {
					steps = append(steps, step{deleteID: rapid.SampledFrom(ids).Draw(rt, "delete")})
					continue
				}
				g := rapid.SampledFrom(groups).Draw(rt, "group")
				steps = append(steps, step{group: g,
					add:    rapid.SliceOfN(rapid.SampledFrom(ids), 0, 4).Draw(rt, "add"),
					remove: rapid.SliceOfN(rapid.SampledFrom(ids), 0, 4).Draw(rt, "remove")})
			}
			fail := rapid.IntRange(0, 4).Draw(rt, "fail") == 0
			journal.fail = rapid.IntRange(0, 3).Draw(rt, "journal fails") == 0
			journal.refused = false
			err := st.Update(context.Background(), func(tx *Txn) error {
				for _, s := range steps {
					var err error
					if s.deleteID != "" {
						err = tx.DeleteMemberships(s.deleteID, time.Time{})
					} else {
						err = tx.ChangeMembers(s.group, s.add, s.remove, time.Time{})
					}
					if err != nil {
						return err
					}
				}
				if fail {
					return errFail
				}
				return nil
			})
			switch {
			case fail:
				if !errors.Is(err, errFail) {
					rt.Fatalf("failing write returned %v", err)
				}
			case journal.refused:
				if !errors.Is(err, errJournal) {
					rt.Fatalf("write the journal refused returned %v", err)
				}
			default:
				if err != nil {
					rt.Fatal(err)
				}
				for _, s := range steps {
					if s.deleteID != "" {
						delete(model, s.deleteID)
						for _, m := range model {
							delete(m, s.deleteID)
						}
						continue
					}
					if model[s.group] == nil {
						model[s.group] = map[string]bool{}
					}
					for _, id := range s.remove {
						if !slices.Contains(s.add, id) {
							delete(model[s.group], id)
						}
					}
					for _, id := range s.add {
						model[s.group][id] = true
					}
				}
			}
			checkModel(rt, st.Read(), model, ids, groups)
		}
	})
}

func checkModel(rt *rapid.T, tx *Txn, model map[string]map[string]bool, ids, groups []string) {
	memberships := 0
	for _, m := range model {
		memberships += len(m)
	}
	if n, err := tx.MembershipCount(); err != nil || n != memberships {
		rt.Fatalf("MembershipCount = %d, %v; want %d", n, err, memberships)
	}
	for _, g := range groups {
		got, err := tx.MemberIDsOf(g)
		if err != nil {
			rt.Fatal(err)
		}
		if want := slices.Sorted(maps.Keys(model[g])); !slices.Equal(got.Slice(), want) {
			rt.Fatalf("members of %s = %v, want %v", g, got.Slice(), want)
		}
	}
	for _, id := range ids {
		got, err := tx.GroupIDsOf(id)
		if err != nil {
			rt.Fatal(err)
		}
		var want []string
		for _, g := range groups {
			if model[g][id] {
				want = append(want, g)
			}
		}
		if !slices.Equal(got, want) {
			rt.Fatalf("groups of %s = %v, want %v", id, got, want)
		}
	}
}

// TestMembersReadYourWrites checks that a write sees its own membership
// changes before they are stored.
func TestMembersReadYourWrites(t *testing.T) {
	st, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = st.Update(context.Background(), func(tx *Txn) error {
		if err := tx.ChangeMembers("g", []string{"u2", "u1"}, nil, time.Time{}); err != nil {
			return err
		}
		if got, _ := tx.GroupIDsOf("u1"); !slices.Equal(got, []string{"g"}) {
			t.Errorf("inside the write, groups of u1 = %v", got)
		}
		if got, _ := tx.MemberIDsOf("g"); !slices.Equal(got.Slice(), []string{"u1", "u2"}) {
			t.Errorf("inside the write, members of g = %v", got.Slice())
		}
		if n, _ := tx.MembershipCount(); n != 2 {
			t.Errorf("inside the write, MembershipCount = %d, want 2", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.Read().MembersOf("g")
	if err != nil || m == nil || m.Version != 1 {
		t.Fatalf("members row = %+v, %v; want version 1", m, err)
	}
}

// TestMembersResolvesUsersAndGroups checks Members against each kind of id:
// a user in no group yet, one already a member (found through the reverse
// index), a group, an unknown id, and a user created earlier in the same
// write. It returns the store's own strings, not the caller's.
func TestMembersResolvesUsersAndGroups(t *testing.T) {
	st, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	err = st.Update(ctx, func(tx *Txn) error {
		for _, id := range []string{"u1", "u2"} {
			if err := tx.Insert(TableUsers, &User{ID: id, UserName: id}); err != nil {
				return err
			}
		}
		if err := tx.Insert(TableGroups, &Group{ID: "g1", DisplayName: "one"}); err != nil {
			return err
		}
		return tx.ChangeMembers("g1", []string{"u2"}, nil, time.Time{})
	})
	if err != nil {
		t.Fatal(err)
	}
	// Fresh strings, as a request body gives them.
	ask := []string{strings.Clone("u1"), strings.Clone("u2"), strings.Clone("g1"), "nobody"}
	held, unknown, err := st.Read().Members(ask)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(held, []string{"u1", "u2", "g1"}) || !slices.Equal(unknown, []string{"nobody"}) {
		t.Fatalf("Members = %v, unknown %v", held, unknown)
	}
	u1, _ := st.Read().UserByID("u1")
	if unsafe.StringData(held[0]) != unsafe.StringData(u1.ID) {
		t.Error("Members returned the caller's string for u1, not the store's")
	}
	err = st.Update(ctx, func(tx *Txn) error {
		if err := tx.Insert(TableUsers, &User{ID: "u3", UserName: "u3"}); err != nil {
			return err
		}
		held, unknown, err := tx.Members([]string{"u3"})
		if err != nil || !slices.Equal(held, []string{"u3"}) || len(unknown) != 0 {
			return fmt.Errorf("a user created in the same write: %v, unknown %v, %v", held, unknown, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
