package etcdstate_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/internal/etcdtest"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/etcdstate"
)

// TestRequestTooLargeIsTooLarge: a batch whose transaction is larger than
// etcd accepts (--max-request-bytes, 1.5 MiB by default) can never commit.
// It must be refused as store.ErrTooLarge (so the store commits its writes
// one by one, and a single write that does not fit fails alone), not as
// store.ErrUnavailable, which tells the client (503) to send it again.
func TestRequestTooLargeIsTooLarge(t *testing.T) {
	cli := etcdtest.Start(t, 1).Client(t)
	r := newReplica(t, cli, "/t/")
	attrs := json.RawMessage(`{"x":"` + strings.Repeat("a", 900<<10) + `"}`)
	// Two users pass the client's 2 MiB send limit and reach etcd's
	// 1.5 MiB; three do not pass the client's.
	for _, ids := range [][]string{{"u1", "u2"}, {"u1", "u2", "u5"}} {
		err := r.st.Update(context.Background(), func(tx *store.Txn) error {
			for _, id := range ids {
				if err := tx.Insert(store.TableUsers, &store.User{ID: id, UserName: id + "@contoso.com", Attributes: attrs}); err != nil {
					return err
				}
			}
			return nil
		})
		if !errors.Is(err, store.ErrTooLarge) || errors.Is(err, store.ErrUnavailable) {
			t.Errorf("a write of %d users larger than etcd's request limit: %v; want store.ErrTooLarge", len(ids), err)
		}
	}
	// Each user alone fits.
	for _, id := range []string{"u3", "u4"} {
		if err := r.st.Update(context.Background(), func(tx *store.Txn) error {
			return tx.Insert(store.TableUsers, &store.User{ID: id, UserName: id + "@contoso.com", Attributes: attrs})
		}); err != nil {
			t.Errorf("%s alone: %v", id, err)
		}
	}
}

// TestNoMembershipOfADeletedUser: a replica whose mirror has not yet seen
// another replica delete a user adds that user to a group. Its check that
// the user exists ran on the stale mirror, so etcd must check it too;
// otherwise the group keeps a member that does not exist, on every replica.
func TestNoMembershipOfADeletedUser(t *testing.T) {
	cli := etcdtest.Start(t, 1).Client(t)
	a, b := newReplica(t, cli, "/t/"), newReplica(t, cli, "/t/")
	a.update(t, createUser("u1", "ann@contoso.com"))
	a.update(t, func(tx *store.Txn) error {
		return tx.Insert(store.TableGroups, &store.Group{ID: "g", DisplayName: "Team"})
	})
	if g, _ := b.barrier(t).GroupByID("g"); g == nil {
		t.Fatal("b does not hold the group")
	}
	etcdstate.SetLag(b.state, 500*time.Millisecond)
	a.update(t, func(tx *store.Txn) error {
		u, _ := tx.UserByID("u1")
		if err := tx.DeleteMemberships("u1", time.Unix(2, 0)); err != nil {
			return err
		}
		return tx.Delete(store.TableUsers, u)
	})
	errGone := errors.New("no such user")
	sawUser := false
	err := b.st.Update(context.Background(), func(tx *store.Txn) error {
		// As the SCIM server validates a PATCH's members.
		_, unknown, err := tx.Members([]string{"u1"})
		if err != nil {
			return err
		}
		if len(unknown) > 0 {
			return errGone
		}
		sawUser = true
		return tx.ChangeMembers("g", []string{"u1"}, nil, time.Unix(3, 0))
	})
	if !sawUser {
		t.Fatal("b's mirror already lacked the user on the first run; the test proves nothing")
	}
	if err != nil && !errors.Is(err, errGone) {
		t.Fatalf("add: %v", err)
	}
	etcdstate.SetLag(b.state, 0)
	for name, r := range map[string]*replica{"a": a, "b": b, "fresh": newReplica(t, cli, "/t/")} {
		tx := r.barrier(t)
		ids, _ := tx.MemberIDsOf("g")
		for id := range ids.All() {
			if u, _ := tx.UserByID(id); u == nil {
				t.Errorf("%s: group g holds member %s, which does not exist (add: %v)", name, id, err)
			}
		}
	}
}
