package store

import (
	"errors"
	"fmt"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// TestDeleteAndAddInOneBatch: a user deleted by one write while another
// write of the same batch adds it to a group, in either order, with
// writes that poison the batch around them and journals that take, fail
// or split it: no group ever lists a user that does not exist, and the
// reverse index agrees with the groups' rows.
func TestDeleteAndAddInOneBatch(t *testing.T) {
	deleteU := func(tx *Txn) error {
		u, err := tx.UserByID("u")
		if err != nil || u == nil {
			return errors.Join(err, memdb.ErrNotFound)
		}
		if err := tx.DeleteMemberships("u", time.Time{}); err != nil {
			return err
		}
		return tx.Delete(TableUsers, u)
	}
	addU := func(g string) func(*Txn) error {
		return func(tx *Txn) error {
			held, unknown, err := tx.Members([]string{"u"})
			if err != nil {
				return err
			}
			if len(unknown) > 0 {
				return errors.New("no such member")
			}
			return tx.ChangeMembers(g, held, nil, time.Time{})
		}
	}
	poison := func(tx *Txn) error {
		if err := tx.ChangeMembers("g2", []string{"u"}, nil, time.Time{}); err != nil {
			return err
		}
		return errors.New("fail after mutating")
	}
	orders := map[string][]func(*Txn) error{
		"delete, add":         {deleteU, addU("g1")},
		"add, delete":         {addU("g1"), deleteU},
		"add, poison, delete": {addU("g1"), poison, deleteU},
		"delete, poison, add": {deleteU, poison, addU("g1")},
		"add, delete, add":    {addU("g1"), deleteU, addU("g2")},
	}
	journals := map[string]func(**Store) Journal{
		"takes": func(**Store) Journal { return journalFunc(func(memdb.Changes) error { return nil }) },
		"fails": func(**Store) Journal { return journalFunc(func(memdb.Changes) error { return errJournal }) },
		"deletes too large": func(**Store) Journal {
			return journalFunc(func(c memdb.Changes) error {
				if holdsUser(c, "u") && len(c) > 3 {
					return fmt.Errorf("frame: %w", ErrTooLarge)
				}
				return nil
			})
		},
	}
	for on, writes := range orders {
		for jn, journal := range journals {
			t.Run(on+"/"+jn, func(t *testing.T) {
				var s *Store
				s = newStore(t, Options{Journal: journal(&s)})
				if err := s.Load(func(tx *Txn) error {
					for _, g := range []string{"g1", "g2"} {
						if err := tx.Insert(TableGroups, &Group{ID: g, DisplayName: g}); err != nil {
							return err
						}
					}
					return tx.Insert(TableUsers, &User{ID: "u", UserName: "u"})
				}); err != nil {
					t.Fatal(err)
				}
				errs := batchOf(s, writes...)
				tx := s.Read()
				u, _ := tx.UserByID("u")
				for _, g := range []string{"g1", "g2"} {
					in, _ := tx.IsMember(g, "u")
					if in && u == nil {
						t.Errorf("%s lists deleted user u (answers %v)", g, errs)
					}
				}
				groups, _ := tx.GroupIDsOf("u")
				for _, g := range groups {
					if in, _ := tx.IsMember(g, "u"); !in {
						t.Errorf("reverse index says u in %s, its row does not", g)
					}
				}
				for _, g := range []string{"g1", "g2"} {
					in, _ := tx.IsMember(g, "u")
					found := false
					for _, x := range groups {
						found = found || x == g
					}
					if in != found {
						t.Errorf("%s row has u %v, reverse index %v", g, in, found)
					}
				}
			})
		}
	}
}
