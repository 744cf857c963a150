package etcdstate_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"

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

// TestNoMembershipLeftByALateDelete: one replica adds a member to a group
// and commits; another, whose mirror has not yet seen that, deletes the
// member (or the group, which had no members before). Computed on its
// stale mirror, the delete knows nothing of the new membership to delete
// with it, so etcd must refuse it as stale; otherwise the membership of an
// object that is gone stays, on every replica.
func TestNoMembershipLeftByALateDelete(t *testing.T) {
	cli := etcdtest.Start(t, 1).Client(t)
	group := func(id string) func(*store.Txn) error {
		return func(tx *store.Txn) error { return tx.Insert(store.TableGroups, &store.Group{ID: id, DisplayName: id}) }
	}
	for i, tc := range []struct {
		name        string
		member      string // added to group g by the replica that is up to date
		deleted     string // deleted by the replica whose mirror lags
		deletedFrom string // the deleted object's table
	}{
		{"a user deleted after it was added", "u1", "u1", store.TableUsers},
		{"a group deleted after it was added to another", "h", "h", store.TableGroups},
		{"a group deleted after its first member was added", "u1", "g", store.TableGroups},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := fmt.Sprintf("/late-delete/%d/", i)
			a, b := newReplica(t, cli, prefix), newReplica(t, cli, prefix)
			a.update(t, createUser("u1", "ann@contoso.com"))
			a.update(t, group("g"))
			a.update(t, group("h"))
			a.update(t, group("other"))
			if obj, _ := b.barrier(t).First(tc.deletedFrom, store.IndexID, tc.deleted); obj == nil {
				t.Fatalf("b does not hold %s", tc.deleted)
			}
			etcdstate.SetLag(b.state, 500*time.Millisecond)
			a.update(t, func(tx *store.Txn) error { return tx.ChangeMembers("g", []string{tc.member}, nil, time.Unix(2, 0)) })
			a.update(t, func(tx *store.Txn) error { return tx.ChangeMembers("other", []string{tc.member}, nil, time.Unix(2, 0)) })
			first := true
			b.update(t, func(tx *store.Txn) error {
				if first {
					first = false
					if ok, _ := tx.IsMember("g", tc.member); ok {
						t.Errorf("b's mirror holds the new membership already; the test proves nothing")
					}
				}
				obj, err := tx.First(tc.deletedFrom, store.IndexID, tc.deleted)
				if err != nil || obj == nil {
					return cmpErr(err, fmt.Errorf("no %s", tc.deleted))
				}
				if err := tx.DeleteMemberships(tc.deleted, time.Unix(3, 0)); err != nil {
					return err
				}
				return tx.Delete(tc.deletedFrom, obj)
			})
			etcdstate.SetLag(b.state, 0)
			for name, r := range map[string]*replica{"a": a, "b": b, "fresh": newReplica(t, cli, prefix)} {
				if d := dangling(t, r.barrier(t)); d != nil {
					t.Errorf("%s: memberships of objects that do not exist: %v", name, d)
				}
			}
		})
	}
}

// dangling returns the memberships tx holds whose group or member does
// not exist, as group/member.
func dangling(t *testing.T, tx *store.Txn) []string {
	t.Helper()
	exists := func(id string) bool {
		u, err := tx.UserByID(id)
		if err != nil {
			t.Fatal(err)
		}
		g, err := tx.GroupByID(id)
		if err != nil {
			t.Fatal(err)
		}
		return u != nil || g != nil
	}
	it, err := tx.Get(store.TableMembers, store.IndexID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for obj := it.Next(); obj != nil; obj = it.Next() {
		m := obj.(*store.Members)
		if g, _ := tx.GroupByID(m.GroupID); g == nil {
			out = append(out, m.GroupID+"/")
		}
		for id := range m.IDs.All() {
			if !exists(id) {
				out = append(out, m.GroupID+"/"+id)
			}
		}
	}
	return out
}

// TestNoMembershipOfADeletedGroupAfterTheFirstTransaction: a batch adding
// more members than its transaction takes sends the rest after it. A
// replica that saw the first transaction may delete the group meanwhile,
// with the memberships it knows; the rest must then not be added to a
// group that is gone.
func TestNoMembershipOfADeletedGroupAfterTheFirstTransaction(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := c.Client(t)
	b := newReplica(t, cli, "/t/")
	var once sync.Once
	intercept := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if r, ok := req.(*pb.TxnRequest); ok && followUp(r) {
			once.Do(func() {
				b.update(t, func(tx *store.Txn) error {
					g, err := tx.GroupByID("g")
					if err != nil || g == nil {
						return cmpErr(err, errors.New("b does not hold the group"))
					}
					if err := tx.DeleteMemberships("g", time.Unix(3, 0)); err != nil {
						return err
					}
					return tx.Delete(store.TableGroups, g)
				})
			})
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	a := newReplica(t, etcdstate.InterceptedClient(t, c.Endpoints, intercept), "/t/")
	var ids []string
	for i := range 100 {
		ids = append(ids, fmt.Sprintf("u%03d", i))
	}
	for chunk := range slices.Chunk(ids, 40) {
		a.update(t, func(tx *store.Txn) error {
			for _, id := range chunk {
				if err := createUser(id, id+"@contoso.com")(tx); err != nil {
					return err
				}
			}
			return nil
		})
	}
	a.update(t, func(tx *store.Txn) error {
		return tx.Insert(store.TableGroups, &store.Group{ID: "g", DisplayName: "Team"})
	})
	err := a.st.Update(context.Background(), func(tx *store.Txn) error {
		if g, _ := tx.GroupByID("g"); g == nil {
			return errors.New("no group g")
		}
		return tx.ChangeMembers("g", ids, nil, time.Unix(2, 0))
	})
	t.Logf("add: %v", err)
	for name, r := range map[string]*replica{"a": a, "b": b, "fresh": newReplica(t, cli, "/t/")} {
		if d := dangling(t, r.barrier(t)); d != nil {
			t.Errorf("%s: %d memberships of objects that do not exist, such as %v", name, len(d), d[0])
		}
	}
}

// followUp reports whether a transaction request only puts memberships:
// the rest of a batch, sent after its first transaction.
func followUp(r *pb.TxnRequest) bool {
	for _, op := range r.Success {
		put := op.GetRequestPut()
		if put == nil || !strings.Contains(string(put.Key), "/m/") && !strings.Contains(string(put.Key), "/r/") {
			return false
		}
	}
	return len(r.Success) > 0
}
