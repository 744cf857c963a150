package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/idrecon/idrecon/runtime/store/idset"
)

// TestGroupCountAgainstModel runs random group writes (creates, renames,
// deletes, clearing the table), several per write and some in writes that
// fail after mutating or that the journal refuses, and checks the count
// inside each write and after it against a plain model and against the
// rows themselves; then that a store loaded from the rows counts the same.
func TestGroupCountAgainstModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		st, journal := journaledStore(rt)
		defer st.Close()
		model := map[string]bool{}
		errFail := errors.New("fail after mutating")
		for range rapid.IntRange(1, 20).Draw(rt, "writes") {
			inWrite := maps.Clone(model)
			type step struct {
				id    string
				op    int // 0 put, 1 delete, 2 delete all
				named int
			}
			var steps []step
			for range rapid.IntRange(1, 4).Draw(rt, "steps") {
				steps = append(steps, step{
					id:    fmt.Sprintf("g%d", rapid.IntRange(0, 5).Draw(rt, "id")),
					op:    rapid.SampledFrom([]int{0, 0, 0, 1, 1, 2}).Draw(rt, "op"),
					named: rapid.IntRange(0, 3).Draw(rt, "name"),
				})
			}
			fail := rapid.IntRange(0, 4).Draw(rt, "fail") == 0
			journal.fail = rapid.IntRange(0, 3).Draw(rt, "journal fails") == 0
			journal.refused = false
			err := st.Update(context.Background(), func(tx *Txn) error {
				inWrite = maps.Clone(model) // the write may run more than once
				for _, s := range steps {
					switch s.op {
					case 0:
						g := &Group{ID: s.id, DisplayName: fmt.Sprintf("%s-%d", s.id, s.named)}
						if err := tx.Insert(TableGroups, g); err != nil {
							return err
						}
						inWrite[s.id] = true
					case 1:
						g, err := tx.GroupByID(s.id)
						if err != nil || g == nil {
							continue
						}
						if err := tx.Delete(TableGroups, g); err != nil {
							return err
						}
						delete(inWrite, s.id)
					case 2:
						if _, err := tx.DeleteAll(TableGroups, IndexID); err != nil {
							return err
						}
						clear(inWrite)
					}
					if n, err := tx.GroupCount(); err != nil || n != len(inWrite) {
						rt.Fatalf("inside the write, GroupCount = %d, %v; want %d", n, err, len(inWrite))
					}
				}
				if fail {
					return errFail
				}
				return nil
			})
			switch {
			case fail && errors.Is(err, errFail), journal.refused && errors.Is(err, errJournal):
			case err != nil:
				rt.Fatal(err)
			default:
				model = inWrite
			}
			checkGroupCount(rt, st.Read(), len(model))
		}
		// A store filled by Load, as a start-up fills it, counts the rows
		// it was given.
		loaded, err := New(Options{})
		if err != nil {
			rt.Fatal(err)
		}
		defer loaded.Close()
		err = loaded.Load(func(tx *Txn) error {
			for id := range model {
				if err := tx.Insert(TableGroups, &Group{ID: id, DisplayName: id}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			rt.Fatal(err)
		}
		checkGroupCount(rt, loaded.Read(), len(model))
	})
}

func checkGroupCount(rt *rapid.T, tx *Txn, want int) {
	rt.Helper()
	it, err := tx.Get(TableGroups, IndexID)
	if err != nil {
		rt.Fatal(err)
	}
	rows := 0
	for raw := it.Next(); raw != nil; raw = it.Next() {
		rows++
	}
	n, err := tx.GroupCount()
	if err != nil || n != want || rows != want {
		rt.Fatalf("GroupCount = %d, %v; %d rows; want %d", n, err, rows, want)
	}
}

// TestMembershipCountAfterLoad checks the count a store filled by Load
// derives from the members rows (RebuildMemberOf), and that the next write
// counts on from it.
func TestMembershipCountAfterLoad(t *testing.T) {
	st, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = st.Load(func(tx *Txn) error {
		for _, m := range []*Members{
			{GroupID: "g1", IDs: idset.Of("u1", "u2", "u3")},
			{GroupID: "g2", IDs: idset.Of("u1")},
			{GroupID: "g3"},
		} {
			if err := tx.Insert(TableMembers, m); err != nil {
				return err
			}
		}
		return tx.RebuildMemberOf()
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := st.Read().MembershipCount(); err != nil || n != 4 {
		t.Fatalf("after Load, MembershipCount = %d, %v; want 4", n, err)
	}
	err = st.Update(context.Background(), func(tx *Txn) error {
		return tx.ChangeMembers("g3", []string{"u1", "u2"}, nil, time.Time{})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Update(context.Background(), func(tx *Txn) error {
		return tx.DeleteMemberships("u1", time.Time{})
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := st.Read().MembershipCount(); err != nil || n != 3 {
		t.Fatalf("after adding two and deleting u1's three, MembershipCount = %d, %v; want 3", n, err)
	}
}
