package access_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/runtime/store"
)

// TestWriteTransactionSeesItsUsersAndMemberships queries inside a write
// transaction that created a user and put them (and a user committed before)
// in a group: users and memberships are not memdb rows but indexes the
// transaction stores only when its batch commits, and the queries must see
// them as they see the transaction's assignments. The committed state must
// keep its own answers meanwhile and after the write is rolled back: the
// memo must not hand the write's answer to readers.
func TestWriteTransactionSeesItsUsersAndMemberships(t *testing.T) {
	w := baseWorld(t)
	ops := w.group("Ops")
	bob := w.user("bob", true)
	w.assign("ops", "group:Ops", dev, "ledger/1")
	w.assign("cid", "user:cid", dev)
	if w.forUser("bob").HasAccess() { // warms the memo with the committed state
		t.Fatal("bob has access before the write")
	}

	errRollBack := errors.New("roll back")
	err := w.st.Update(t.Context(), func(tx *store.Txn) error {
		if err := tx.Insert(store.TableUsers, &store.User{ID: "u-ann", UserName: "ann", Active: true}); err != nil {
			return err
		}
		if err := tx.Insert(store.TableUsers, &store.User{ID: "u-cid", UserName: "cid", Active: true}); err != nil {
			return err
		}
		if err := tx.ChangeMembers(ops, []string{"u-ann", bob}, nil, time.Time{}); err != nil {
			return err
		}
		// Cold, so that the write's answers would be the ones memoised.
		access.ForgetEffective()
		checks := []struct {
			name string
			got  func() (any, error)
			want any
		}{
			{"ForUser(ann)", func() (any, error) {
				e, err := access.ForUser(tx, "ann")
				if err != nil {
					return nil, err
				}
				return e.HasAccess(), nil
			}, true},
			{"ForUser(bob)", func() (any, error) {
				e, err := access.ForUser(tx, "bob")
				if err != nil {
					return nil, err
				}
				return e.RoleNames(), nil
			}, dev},
			{"WhoCanReach(ledger/1)", func() (any, error) {
				r, err := access.WhoCanReach(tx, "ledger", "1")
				if err != nil {
					return nil, err
				}
				var names []string
				for _, u := range r.Users {
					names = append(names, u.UserName)
				}
				return names, nil
			}, []string{"ann", "bob"}},
			{"Pending", func() (any, error) {
				p, err := access.Pending(tx)
				return len(p), err
			}, 0},
			{"SummarizeUser(bob).Groups", func() (any, error) {
				u, err := tx.UserByID(bob)
				if err != nil {
					return nil, err
				}
				s, err := access.SummarizeUser(tx, u)
				return s.Groups, err
			}, []string{"Ops"}},
		}
		for _, c := range checks {
			got, err := c.got()
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			if !equalAny(got, c.want) {
				t.Errorf("write transaction: %s = %v, want %v", c.name, got, c.want)
			}
		}
		// Readers of the committed state, meanwhile.
		if w.forUser("bob").HasAccess() {
			t.Error("committed state: bob has the write's uncommitted access")
		}
		return errRollBack
	})
	if !errors.Is(err, errRollBack) {
		t.Fatalf("Update = %v, want the roll-back", err)
	}
	if w.forUser("bob").HasAccess() {
		t.Error("after roll-back: bob has the rolled-back access")
	}
	if _, err := access.ForUser(w.st.Read(), "ann"); !errors.Is(err, access.ErrUnknownUser) {
		t.Errorf("after roll-back: ForUser(ann) err = %v, want ErrUnknownUser", err)
	}
}

func equalAny(a, b any) bool {
	as, aok := a.([]string)
	bs, bok := b.([]string)
	if aok || bok {
		return aok && bok && slices.Equal(as, bs)
	}
	return a == b
}
