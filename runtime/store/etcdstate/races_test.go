package etcdstate_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
			once.Do(func() { b.deleteFromCallback(ctx, t, store.TableGroups, "g") })
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	a := newReplica(t, etcdtest.NewClient(t, c.Endpoints, intercept), "/t/")
	ids := a.usersAndGroup(t)
	err := a.st.Update(context.Background(), func(tx *store.Txn) error {
		if g, _ := tx.GroupByID("g"); g == nil {
			return errors.New("no group g")
		}
		return tx.ChangeMembers("g", ids, nil, time.Unix(2, 0))
	})
	// Committed with the first transaction, and then deleted with the
	// group: reported failed, it would be run again, on a group that is
	// gone (404 for a write that took effect).
	if err != nil {
		t.Errorf("add: %v, want it committed", err)
	}
	for name, r := range map[string]*replica{"a": a, "b": b, "fresh": newReplica(t, cli, "/t/")} {
		if d := dangling(t, r.barrier(t)); d != nil {
			t.Errorf("%s: %d memberships of objects that do not exist, such as %v", name, len(d), d[0])
		}
	}
}

// followUp reports whether a transaction request only puts or deletes
// memberships (and puts a marker, see commitTxns): the rest of a batch,
// sent after its first transaction.
func followUp(r *pb.TxnRequest) bool {
	n := 0
	for _, op := range r.Success {
		var key string
		switch {
		case op.GetRequestPut() != nil:
			key = string(op.GetRequestPut().Key)
		case op.GetRequestDeleteRange() != nil && len(op.GetRequestDeleteRange().RangeEnd) == 0:
			key = string(op.GetRequestDeleteRange().Key)
		default:
			return false
		}
		switch {
		case strings.Contains(key, "/txn/") && op.GetRequestPut() != nil:
		case !strings.Contains(key, "/m/") && !strings.Contains(key, "/r/"):
			return false
		default:
			n++
		}
	}
	return n > 0
}

// TestNoMembershipOfACreatedMemberDeletedAfterTheFirstTransaction: a batch
// that creates users and adds them to a group, more memberships than its
// transaction takes, sends the rest after it. The first transaction
// creates the users, so it need not check they exist; a later one must:
// a replica that saw the first may delete one meanwhile, knowing none of
// its memberships yet, and the membership must then not be added. The
// batch itself committed, and says so: run again, its creates would find
// their userNames taken.
func TestNoMembershipOfACreatedMemberDeletedAfterTheFirstTransaction(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := c.Client(t)
	b := newReplica(t, cli, "/t/")
	const n = 60
	gone := fmt.Sprintf("u%03d", n-1) // its membership is in the later transaction
	var once sync.Once
	intercept := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if r, ok := req.(*pb.TxnRequest); ok && followUp(r) {
			once.Do(func() { b.deleteFromCallback(ctx, t, store.TableUsers, gone) })
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	a := newReplica(t, etcdtest.NewClient(t, c.Endpoints, intercept), "/t/")
	a.update(t, func(tx *store.Txn) error {
		return tx.Insert(store.TableGroups, &store.Group{ID: "g", DisplayName: "Team"})
	})
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprintf("u%03d", i))
	}
	err := a.st.Update(context.Background(), func(tx *store.Txn) error {
		for _, id := range ids {
			if err := createUser(id, id+"@contoso.com")(tx); err != nil {
				return err
			}
		}
		return tx.ChangeMembers("g", ids, nil, time.Unix(2, 0))
	})
	if err != nil {
		t.Errorf("the batch: %v, want it committed", err)
	}
	for name, r := range map[string]*replica{"a": a, "b": b, "fresh": newReplica(t, cli, "/t/")} {
		tx := r.barrier(t)
		if d := dangling(t, tx); d != nil {
			t.Errorf("%s: memberships of objects that do not exist: %v", name, d)
		}
		if got, _ := tx.MemberIDsOf("g"); got.Len() != n-1 {
			t.Errorf("%s: %d members, want the %d users left", name, got.Len(), n-1)
		}
	}
}

// TestLostAnswerOfALaterTransaction: the answer to a batch's later
// transaction is lost, its first committed. Whether the later one
// committed too (at once, or late: after the read that tells) is found
// out and what did not is sent again, once: the batch is answered as
// committed, with every membership written once, rather than as
// unavailable, which would make the client send again a write whose
// other parts committed.
func TestLostAnswerOfALaterTransaction(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := c.Client(t)
	lost := status.Error(codes.Unavailable, "connection lost (test)")
	for i, tc := range []struct {
		name string
		// lose handles the later transaction's request: it returns a
		// function to call once the next read transaction was answered,
		// and its answer.
		lose func(send func(context.Context) error) (func(), error)
	}{
		{"after it committed", func(send func(context.Context) error) (func(), error) {
			if err := send(context.Background()); err != nil {
				return nil, err
			}
			return nil, lost
		}},
		{"before it reached etcd", func(func(context.Context) error) (func(), error) { return nil, lost }},
		{"committed after the read that tells", func(send func(context.Context) error) (func(), error) {
			return func() {
				if err := send(context.Background()); err != nil {
					t.Errorf("the late commit: %v", err)
				}
			}, lost
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := fmt.Sprintf("/lost-later/%d/", i)
			var mu sync.Mutex
			var lose atomic.Bool
			var late func()
			intercept := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				r, ok := req.(*pb.TxnRequest)
				if !ok {
					return invoker(ctx, method, req, reply, cc, opts...)
				}
				if followUp(r) && lose.CompareAndSwap(true, false) {
					after, err := tc.lose(func(ctx context.Context) error { return invoker(ctx, method, req, reply, cc, opts...) })
					mu.Lock()
					late = after
					mu.Unlock()
					return err
				}
				err := invoker(ctx, method, req, reply, cc, opts...)
				if reads(r) {
					mu.Lock()
					f := late
					late = nil
					mu.Unlock()
					if f != nil {
						f()
					}
				}
				return err
			}
			a := newReplica(t, etcdtest.NewClient(t, c.Endpoints, intercept), prefix)
			ids := a.usersAndGroup(t)
			lose.Store(true)
			err := a.st.Update(context.Background(), func(tx *store.Txn) error { return tx.ChangeMembers("g", ids, nil, time.Unix(2, 0)) })
			if lose.Load() {
				t.Fatal("no later transaction was sent")
			}
			if err != nil {
				t.Errorf("add: %v, want it committed", err)
			}
			for name, r := range map[string]*replica{"a": a, "fresh": newReplica(t, cli, prefix)} {
				if got, _ := r.barrier(t).MemberIDsOf("g"); !slices.Equal(got.Slice(), ids) {
					t.Errorf("%s: %d members, want %d", name, got.Len(), len(ids))
				}
			}
			for _, space := range []string{"m/", "r/"} {
				resp, err := cli.Get(context.Background(), prefix+space, clientv3.WithPrefix())
				if err != nil {
					t.Fatal(err)
				}
				for _, kv := range resp.Kvs {
					if kv.Version != 1 {
						t.Errorf("%s written %d times", kv.Key, kv.Version)
					}
				}
			}
		})
	}
}

// reads reports whether a transaction request only reads.
func reads(r *pb.TxnRequest) bool {
	for _, op := range r.Success {
		if op.GetRequestRange() == nil {
			return false
		}
	}
	return len(r.Success) > 0
}

// usersAndGroup creates users u000 to u099 and an empty group g, more
// members than one transaction carries, and returns the users' ids.
func (r *replica) usersAndGroup(t *testing.T) []string {
	t.Helper()
	var ids []string
	for i := range 100 {
		ids = append(ids, fmt.Sprintf("u%03d", i))
	}
	for chunk := range slices.Chunk(ids, 40) {
		r.update(t, func(tx *store.Txn) error {
			for _, id := range chunk {
				if err := createUser(id, id+"@contoso.com")(tx); err != nil {
					return err
				}
			}
			return nil
		})
	}
	r.update(t, func(tx *store.Txn) error {
		return tx.Insert(store.TableGroups, &store.Group{ID: "g", DisplayName: "Team"})
	})
	return ids
}

// deleteFromCallback deletes user or group id and its memberships through
// r, from a gRPC callback of another replica's: it runs in that replica's
// sending goroutine, where t.Fatal would end it unanswered and its write
// would wait forever, so failures are reported with t.Errorf.
func (r *replica) deleteFromCallback(ctx context.Context, t *testing.T, table, id string) {
	if err := r.state.Barrier(ctx); err != nil {
		t.Errorf("%s: %v", id, err)
		return
	}
	err := r.st.Update(ctx, func(tx *store.Txn) error {
		var obj any
		var err error
		if table == store.TableUsers {
			if u, e := tx.UserByID(id); u != nil {
				obj = u
			} else {
				err = e
			}
		} else if g, e := tx.GroupByID(id); g != nil {
			obj = g
		} else {
			err = e
		}
		if err != nil || obj == nil {
			return cmpErr(err, fmt.Errorf("the replica does not hold %s", id))
		}
		if err := tx.DeleteMemberships(id, time.Unix(3, 0)); err != nil {
			return err
		}
		return tx.Delete(table, obj)
	})
	if err != nil {
		t.Errorf("delete %s: %v", id, err)
	}
}

// probe is a store's Pipeline that asks its State first whether it takes
// each batch as one of two writes, and records the answer.
type probe struct {
	*etcdstate.State
	mu      sync.Mutex
	refused []bool
}

func (p *probe) Prepare(changes memdb.Changes, writes int) (func(func()) error, bool, error) {
	send, ok, err := p.State.Prepare(changes, 2)
	p.mu.Lock()
	p.refused = append(p.refused, errors.Is(err, store.ErrTooLarge))
	p.mu.Unlock()
	if errors.Is(err, store.ErrTooLarge) {
		return p.State.Prepare(changes, writes)
	}
	return send, ok, err
}

// TestSeveralWritesNeverShareALaterTransaction: a batch's memberships that
// do not fit its first transaction follow in later ones, and should one
// of those fail, the batch is partly made and answered as such (503, its
// outcome unknown). Every write of the batch would be answered so, also
// one that committed whole with the first transaction (a create, which
// Entra's retry then finds taken). So a batch of several writes that
// needs a later transaction is refused as too large, which makes the
// store commit its writes one by one, and a write alone is not.
func TestSeveralWritesNeverShareALaterTransaction(t *testing.T) {
	cli := etcdtest.Start(t, 1).Client(t)
	state, err := etcdstate.New(etcdstate.Options{Client: cli, Prefix: "/t/"})
	if err != nil {
		t.Fatal(err)
	}
	p := &probe{State: state}
	st, err := store.New(store.Options{Journal: p, CatchUp: state.CatchUp, MaxBatch: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := state.Load(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	r := &replica{st: st, state: state}
	r.run(t)
	defer r.stop()
	ids := r.usersAndGroup(t)
	for _, tc := range []struct {
		members int
		refused bool
	}{
		{10, false},
		{len(ids), true},
	} {
		p.mu.Lock()
		p.refused = nil
		p.mu.Unlock()
		r.update(t, func(tx *store.Txn) error {
			return tx.ChangeMembers("g", ids[:tc.members], nil, time.Unix(2, 0))
		})
		p.mu.Lock()
		got := p.refused
		p.mu.Unlock()
		if want := []bool{tc.refused}; !slices.Equal(got, want) {
			t.Errorf("%d members: refused as one of two writes %v, want %v", tc.members, got, want)
		}
		if m, _ := r.barrier(t).MemberIDsOf("g"); m.Len() != tc.members {
			t.Errorf("%d members: %d committed", tc.members, m.Len())
		}
	}
}

// TestNoMembershipLeftByAGroupDeleteAfterTheLaterTransaction: a batch
// adding more members than its transaction takes sends the rest after it,
// and only its first transaction writes the group's members header. A
// replica whose mirror holds the first transaction but not yet a later
// one deletes the group: its compare of the header holds, yet it knows
// nothing of the later memberships to delete with the group. etcd must
// refuse the delete as stale; otherwise those memberships stay, of a group
// that is gone, in etcd and in every replica that loads the state.
func TestNoMembershipLeftByAGroupDeleteAfterTheLaterTransaction(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := c.Client(t)
	groupKey := "/t/o/" + store.TableGroups + "/g"
	deleteSent := make(chan struct{})
	var sentOnce sync.Once
	interceptB := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if r, ok := req.(*pb.TxnRequest); ok && deletes(r, groupKey) {
			sentOnce.Do(func() { close(deleteSent) })
		}
		return err
	}
	b := newReplica(t, etcdtest.NewClient(t, c.Endpoints, interceptB), "/t/")
	var once sync.Once
	interceptA := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if r, ok := req.(*pb.TxnRequest); ok && followUp(r) {
			// b's mirror holds the first transaction, and stays there.
			once.Do(func() {
				if err := b.state.Barrier(ctx); err != nil {
					t.Errorf("b: %v", err)
				}
				b.stop()
			})
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	a := newReplica(t, etcdtest.NewClient(t, c.Endpoints, interceptA), "/t/")
	ids := a.usersAndGroup(t)
	a.update(t, func(tx *store.Txn) error { return tx.ChangeMembers("g", ids, nil, time.Unix(2, 0)) })
	first, last := ids[0], ids[len(ids)-1]
	tx := b.st.Read()
	if in, _ := tx.IsMember("g", first); !in {
		t.Fatalf("b's mirror lacks the first transaction's %s", first)
	}
	if in, _ := tx.IsMember("g", last); in {
		t.Fatalf("b's mirror holds the later transaction's %s already; the test proves nothing", last)
	}
	errc := make(chan error, 1)
	go func() {
		errc <- b.st.Update(context.Background(), func(tx *store.Txn) error {
			g, err := tx.GroupByID("g")
			if err != nil || g == nil {
				return cmpErr(err, errors.New("no group g"))
			}
			if err := tx.DeleteMemberships("g", time.Unix(3, 0)); err != nil {
				return err
			}
			return tx.Delete(store.TableGroups, g)
		})
	}()
	select {
	case <-deleteSent:
	case <-time.After(20 * time.Second):
		t.Fatal("b sent no delete of the group")
	}
	b.run(t) // the delete's answer, or its retry, waits for the mirror
	if err := <-errc; err != nil {
		t.Fatalf("delete: %v", err)
	}
	for name, r := range map[string]*replica{"a": a, "b": b, "fresh": newReplica(t, cli, "/t/")} {
		if d := dangling(t, r.barrier(t)); d != nil {
			t.Errorf("%s: %d memberships of objects that do not exist, such as %v", name, len(d), d[0])
		}
	}
	for _, space := range []string{"m/g/", "r/"} {
		resp, err := cli.Get(context.Background(), "/t/"+space, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count != 0 {
			t.Errorf("etcd holds %d keys under %s of the deleted group", resp.Count, space)
		}
	}
}

// deletes reports whether a transaction request deletes key, in its own
// operations or a nested transaction's.
func deletes(r *pb.TxnRequest, key string) bool {
	for _, op := range r.GetSuccess() {
		if d := op.GetRequestDeleteRange(); d != nil && string(d.Key) == key {
			return true
		}
		if deletes(op.GetRequestTxn(), key) {
			return true
		}
	}
	return false
}

// TestNoAcknowledgedMembershipUndoneByALaterTransaction: a batch changing
// more memberships than its transaction takes sends the rest after it. A
// replica that saw the first transaction may meanwhile make one of those
// changes itself and undo it (remove a member the batch removes and add it
// again; add one the batch adds and remove it again), each write
// acknowledged. The batch is ordered at its first transaction, so those
// writes follow it: its later transaction must not undo the last of them.
// A removal written again since is dropped, and the batch committed. An
// add and its removal leave no trace on the membership's key: the group's
// members changed since, so the batch's outcome is unknown (503), and the
// client's retry, which follows the removal, completes it.
func TestNoAcknowledgedMembershipUndoneByALaterTransaction(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := c.Client(t)
	for i, tc := range []struct {
		name   string
		remove bool // the batch removes every member of g; else it adds them
	}{
		{"a member removed by the batch, removed and added again meanwhile", true},
		{"a member added by the batch, added and removed again meanwhile", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := fmt.Sprintf("/undone/%d/", i)
			b := newReplica(t, cli, prefix)
			var armed, called atomic.Bool
			var x string // a member whose change is in the later transaction
			intercept := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				if r, ok := req.(*pb.TxnRequest); ok && followUp(r) && armed.CompareAndSwap(true, false) {
					called.Store(true)
					b.changeBackFromCallback(ctx, t, "g", x, tc.remove)
				}
				return invoker(ctx, method, req, reply, cc, opts...)
			}
			a := newReplica(t, etcdtest.NewClient(t, c.Endpoints, intercept), prefix)
			ids := a.usersAndGroup(t)
			x = ids[len(ids)-1]
			if tc.remove {
				a.update(t, func(tx *store.Txn) error { return tx.ChangeMembers("g", ids, nil, time.Unix(2, 0)) })
			}
			armed.Store(true)
			err := a.st.Update(context.Background(), func(tx *store.Txn) error {
				if tc.remove {
					return tx.ChangeMembers("g", nil, ids, time.Unix(3, 0))
				}
				return tx.ChangeMembers("g", ids, nil, time.Unix(3, 0))
			})
			if !called.Load() {
				t.Fatal("no later transaction was sent")
			}
			unknown := !tc.remove && errors.Is(err, store.ErrOutcomeUnknown)
			if err != nil && !unknown {
				t.Errorf("the batch: %v, want it committed", err)
			}
			// b's last write: x is a member after all when the batch
			// removed the members, and not when it added them.
			for name, r := range map[string]*replica{"a": a, "b": b, "fresh": newReplica(t, cli, prefix)} {
				tx := r.barrier(t)
				got, _ := tx.MemberIDsOf("g")
				in, _ := tx.IsMember("g", x)
				switch {
				case in != tc.remove:
					t.Errorf("%s: %s a member: %v, want %v", name, x, in, tc.remove)
				case tc.remove && got.Len() != 1, !tc.remove && !unknown && got.Len() != len(ids)-1:
					t.Errorf("%s: %d members, want the batch's others too", name, got.Len())
				}
			}
			for _, key := range []string{prefix + "m/g/" + x, prefix + "r/" + x + "/g"} {
				resp, err := cli.Get(context.Background(), key, clientv3.WithCountOnly())
				if err != nil {
					t.Fatal(err)
				}
				if (resp.Count == 1) != tc.remove {
					t.Errorf("etcd holds %s: %v, want %v", key, resp.Count == 1, tc.remove)
				}
			}
			if !unknown {
				return
			}
			a.update(t, func(tx *store.Txn) error { return tx.ChangeMembers("g", ids, nil, time.Unix(6, 0)) })
			for name, r := range map[string]*replica{"a": a, "b": b, "fresh": newReplica(t, cli, prefix)} {
				if got, _ := r.barrier(t).MemberIDsOf("g"); !slices.Equal(got.Slice(), ids) {
					t.Errorf("%s after the retry: %d members, want %d", name, got.Len(), len(ids))
				}
			}
		})
	}
}

// changeBackFromCallback, from a gRPC callback of another replica's (see
// deleteFromCallback), removes member from group and adds it again
// through r (added: add it and remove it again), two acknowledged writes,
// the first on a mirror that holds member as a member (added: does not).
func (r *replica) changeBackFromCallback(ctx context.Context, t *testing.T, group, member string, added bool) {
	if err := r.state.Barrier(ctx); err != nil {
		t.Errorf("barrier: %v", err)
		return
	}
	for i, add := range []bool{!added, added} {
		err := r.st.Update(ctx, func(tx *store.Txn) error {
			if in, err := tx.IsMember(group, member); err != nil || in == add {
				return cmpErr(err, fmt.Errorf("write %d: %s a member of %s already: %v; the test proves nothing", i, member, group, in))
			}
			if add {
				return tx.ChangeMembers(group, []string{member}, nil, time.Unix(4+int64(i), 0))
			}
			return tx.ChangeMembers(group, nil, []string{member}, time.Unix(4+int64(i), 0))
		})
		if err != nil {
			t.Errorf("%s: %v", member, err)
			return
		}
	}
}
