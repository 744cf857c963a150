package etcdstate_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"google.golang.org/grpc"

	"github.com/idrecon/idrecon/runtime/internal/etcdtest"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/etcdstate"
	"github.com/idrecon/idrecon/runtime/store/internal/record"
	"github.com/idrecon/idrecon/spec"
)

// replica is one daemon's store, mirrored from etcd.
type replica struct {
	st    *store.Store
	state *etcdstate.State
	stop  func() // stops the mirror's Run
}

func newReplica(t *testing.T, cli *clientv3.Client, prefix string) *replica {
	t.Helper()
	return newReplicaWith(t, etcdstate.Options{Client: cli, Prefix: prefix})
}

// newReplicaWith is newReplica with the State's options.
func newReplicaWith(t *testing.T, opts etcdstate.Options) *replica {
	t.Helper()
	state, err := etcdstate.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.New(store.Options{Journal: state, CatchUp: state.CatchUp, MaxBatch: 16})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := state.Load(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	r := &replica{st: st, state: state}
	r.run(t)
	t.Cleanup(func() {
		r.stop()
		st.Close()
	})
	return r
}

// run starts the mirror's Run, until stop.
func (r *replica) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.state.Run(ctx) }()
	r.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		r.stop = func() {}
	}
}

func (r *replica) update(t *testing.T, fn func(*store.Txn) error) {
	t.Helper()
	if err := r.st.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func (r *replica) barrier(t *testing.T) *store.Txn {
	t.Helper()
	if err := r.state.Barrier(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r.st.Read()
}

var errTaken = errors.New("userName taken")

// createUser checks the name and inserts, as the SCIM server does.
func createUser(id, name string) func(*store.Txn) error {
	return func(tx *store.Txn) error {
		if u, err := tx.UserByName(name); err != nil || u != nil {
			return cmpErr(err, errTaken)
		}
		return tx.Insert(store.TableUsers, &store.User{ID: id, UserName: name, Active: true, Created: time.Unix(1, 0)})
	}
}

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// TestReplicasShareOneState: what one replica writes, another reads after
// a barrier: users, groups, memberships, renames and deletes; a replica
// started later loads all of it.
func TestReplicasShareOneState(t *testing.T) {
	cli := etcdtest.Start(t, 3).Client(t)
	a, b := newReplica(t, cli, "/t/"), newReplica(t, cli, "/t/")

	a.update(t, createUser("u1", "ann@contoso.com"))
	a.update(t, createUser("u2", "bob@contoso.com"))
	a.update(t, func(tx *store.Txn) error {
		if err := tx.Insert(store.TableGroups, &store.Group{ID: "g1", DisplayName: "Team"}); err != nil {
			return err
		}
		return tx.ChangeMembers("g1", []string{"u1", "u2"}, nil, time.Unix(2, 0))
	})
	tx := b.barrier(t)
	if u, _ := tx.UserByName("ANN@contoso.com"); u == nil || u.ID != "u1" {
		t.Fatalf("b: ann = %+v", u)
	}
	if ids, _ := tx.MemberIDsOf("g1"); fmt.Sprint(ids.Slice()) != "[u1 u2]" {
		t.Fatalf("b: members of g1 = %v", ids)
	}
	if m, _ := tx.MembersOf("g1"); m.Version != 1 || !m.Modified.Equal(time.Unix(2, 0)) {
		t.Errorf("b: members header %+v, want version 1 at 2s", m)
	}
	if g, _ := tx.GroupIDsOf("u2"); fmt.Sprint(g) != "[g1]" {
		t.Errorf("b: groups of u2 = %v", g)
	}

	// b renames ann, removes bob from the team and deletes him.
	b.update(t, func(tx *store.Txn) error {
		u, _ := tx.UserByID("u1")
		v := *u
		v.UserName = "ann.smith@contoso.com"
		return tx.Insert(store.TableUsers, &v)
	})
	b.update(t, func(tx *store.Txn) error {
		if err := tx.DeleteMemberships("u2", time.Unix(3, 0)); err != nil {
			return err
		}
		u, _ := tx.UserByID("u2")
		return tx.Delete(store.TableUsers, u)
	})
	tx = a.barrier(t)
	if u, _ := tx.UserByName("ann@contoso.com"); u != nil {
		t.Errorf("a: the old name still finds %+v", u)
	}
	if u, _ := tx.UserByName("ann.smith@contoso.com"); u == nil {
		t.Error("a: the new name finds nobody")
	}
	if u, _ := tx.UserByID("u2"); u != nil {
		t.Errorf("a: bob survived his delete: %+v", u)
	}
	if ids, _ := tx.MemberIDsOf("g1"); fmt.Sprint(ids.Slice()) != "[u1]" {
		t.Errorf("a: members of g1 = %v", ids)
	}
	// The freed name can be taken again, on either replica.
	a.update(t, createUser("u3", "ann@contoso.com"))

	c := newReplica(t, cli, "/t/")
	tx = c.st.Read()
	if u, _ := tx.UserByName("ann@contoso.com"); u == nil || u.ID != "u3" {
		t.Errorf("c (loaded): ann = %+v", u)
	}
	if ids, _ := tx.MemberIDsOf("g1"); fmt.Sprint(ids.Slice()) != "[u1]" {
		t.Errorf("c (loaded): members of g1 = %v", ids)
	}
	if m, _ := tx.MembersOf("g1"); m == nil || m.Version != 2 {
		t.Errorf("c (loaded): members header %+v, want version 2", m)
	}
}

// TestOneNameOneUserAcrossReplicas: replicas race to create users whose
// names fold equal; etcd lets exactly one of each pair through, and the
// other replica, run again on the caught-up state, refuses its own.
func TestOneNameOneUserAcrossReplicas(t *testing.T) {
	cli := etcdtest.Start(t, 3).Client(t)
	a, b := newReplica(t, cli, "/t/"), newReplica(t, cli, "/t/")
	const rounds = 30
	var wg sync.WaitGroup
	errs := make([][2]error, rounds)
	for i := range rounds {
		for j, r := range []*replica{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("user%d@contoso.com", i)
				if j == 1 {
					name = fmt.Sprintf("USER%d@Contoso.com", i)
				}
				errs[i][j] = r.st.Update(context.Background(), createUser(fmt.Sprintf("%c%d", 'a'+j, i), name))
			}()
		}
	}
	wg.Wait()
	for i, e := range errs {
		ok := 0
		for _, err := range e {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, errTaken):
				t.Errorf("round %d: %v", i, err)
			}
		}
		if ok != 1 {
			t.Errorf("round %d: %d replicas created the name (%v), want exactly 1", i, ok, e)
		}
	}
	for _, r := range []*replica{a, b} {
		tx := r.barrier(t)
		for i := range rounds {
			if u, _ := tx.UserByName(fmt.Sprintf("user%d@contoso.com", i)); u == nil {
				t.Errorf("user%d missing", i)
			}
		}
	}
}

// TestNoWriteLost: replicas increment one counter concurrently, each
// increment reading the value its mirror holds. A stale read makes etcd
// refuse the write, which runs again on the caught-up state, so every
// increment counts.
func TestNoWriteLost(t *testing.T) {
	cli := etcdtest.Start(t, 3).Client(t)
	replicas := []*replica{newReplica(t, cli, "/t/"), newReplica(t, cli, "/t/"), newReplica(t, cli, "/t/")}
	const each = 20
	var wg sync.WaitGroup
	for _, r := range replicas {
		for range each {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := r.st.Update(context.Background(), func(tx *store.Txn) error {
					v, err := tx.MetaValue("counter")
					if err != nil {
						return err
					}
					n, _ := strconv.Atoi(v)
					return tx.Insert(store.TableMeta, &store.Meta{Key: "counter", Value: strconv.Itoa(n + 1)})
				})
				if err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	for i, r := range replicas {
		if v, _ := r.barrier(t).MetaValue("counter"); v != strconv.Itoa(each*len(replicas)) {
			t.Errorf("replica %d: counter %s, want %d", i, v, each*len(replicas))
		}
	}
}

// TestBarrierWaitsForTheMirror: a replica whose mirror lags does not yet
// hold another replica's acknowledged write, and after Barrier it does.
func TestBarrierWaitsForTheMirror(t *testing.T) {
	cli := etcdtest.Start(t, 1).Client(t)
	a, b := newReplica(t, cli, "/t/"), newReplica(t, cli, "/t/")
	etcdstate.SetLag(b.state, 300*time.Millisecond)
	for i := range 3 {
		id := fmt.Sprintf("u%d", i)
		a.update(t, createUser(id, id+"@contoso.com"))
		if u, _ := b.st.Read().UserByID(id); u != nil {
			t.Fatalf("%s: the lagging mirror already holds the write; the test proves nothing", id)
		}
		if u, _ := b.barrier(t).UserByID(id); u == nil {
			t.Fatalf("%s: not there after Barrier", id)
		}
	}
}

// TestImport: a single daemon's state (here 300 users in a group of 300,
// more memberships than one transaction takes) copied into etcd is what a
// replica then loads; a second import into the same prefix is refused.
func TestImport(t *testing.T) {
	cli := etcdtest.Start(t, 1).Client(t)
	src, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var ids []string
	err = src.Update(context.Background(), func(tx *store.Txn) error {
		for i := range 300 {
			id := fmt.Sprintf("u%03d", i)
			ids = append(ids, id)
			if err := tx.Insert(store.TableUsers, &store.User{ID: id, UserName: id + "@contoso.com", Active: true}); err != nil {
				return err
			}
		}
		if err := tx.Insert(store.TableGroups, &store.Group{ID: "g1", DisplayName: "Everyone"}); err != nil {
			return err
		}
		if err := tx.ChangeMembers("g1", ids, nil, time.Unix(5, 0)); err != nil {
			return err
		}
		return tx.Insert(store.TableMeta, &store.Meta{Key: store.MetaAppliedRevision, Value: "sha256:abc"})
	})
	if err != nil {
		t.Fatal(err)
	}
	state, err := etcdstate.New(etcdstate.Options{Client: cli, Prefix: "/m/"})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := state.Import(context.Background(), src.Read())
	if err != nil {
		t.Fatal(err)
	}
	if stats.Users != 300 || stats.Groups != 1 || stats.Memberships != 300 {
		t.Errorf("import stats %+v", stats)
	}
	// The revision the import reports is the one its last write made.
	last, err := cli.Get(context.Background(), "/m/", append(clientv3.WithLastRev(), clientv3.WithPrefix())...)
	if err != nil {
		t.Fatal(err)
	}
	if len(last.Kvs) != 1 || stats.Revision < last.Kvs[0].ModRevision {
		t.Errorf("import reports revision %d, its last write is at %v", stats.Revision, last.Kvs)
	}
	// Many pages, each sized from the one before: every key must come
	// back once.
	etcdstate.SmallPages(t, 3, 2000)
	r := newReplica(t, cli, "/m/")
	tx := r.st.Read()
	if got, _ := tx.MemberIDsOf("g1"); !slices.Equal(got.Slice(), ids) {
		t.Errorf("members after import: %d, want the 300 users", got.Len())
	}
	if n, _ := tx.UserCount(); n != 300 {
		t.Errorf("users after import: %d, want 300", n)
	}
	if u, _ := tx.UserByName("U299@contoso.com"); u == nil {
		t.Error("u299 missing after import")
	}
	if v, _ := tx.MetaValue(store.MetaAppliedRevision); v != "sha256:abc" {
		t.Errorf("applied revision %q", v)
	}
	if _, err := state.Import(context.Background(), src.Read()); err == nil || !strings.Contains(err.Error(), "already") {
		t.Errorf("second import: %v, want a refusal", err)
	}
}

// TestTooLargeIsRefusedWhole: a write that does not fit in one etcd
// transaction is refused as a whole, and writes batched with it go on.
func TestTooLargeIsRefusedWhole(t *testing.T) {
	cli := etcdtest.Start(t, 1).Client(t)
	r := newReplica(t, cli, "/t/")
	big := func(tx *store.Txn) error {
		for i := range etcdstate.DefaultMaxTxnOps {
			if err := tx.Insert(store.TableMeta, &store.Meta{Key: fmt.Sprintf("k%03d", i), Value: "v"}); err != nil {
				return err
			}
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, 9)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 0 {
				errs[i] = r.st.Update(context.Background(), big)
				return
			}
			errs[i] = r.st.Update(context.Background(), createUser(fmt.Sprintf("u%d", i), fmt.Sprintf("u%d@contoso.com", i)))
		}()
	}
	wg.Wait()
	if !errors.Is(errs[0], store.ErrTooLarge) {
		t.Errorf("big write: %v, want ErrTooLarge", errs[0])
	}
	for i, err := range errs[1:] {
		if err != nil {
			t.Errorf("small write %d: %v", i+1, err)
		}
	}
	fresh := newReplica(t, cli, "/t/")
	if v, _ := fresh.st.Read().MetaValue("k000"); v != "" {
		t.Error("part of the refused write reached etcd")
	}
	if u, _ := fresh.st.Read().UserByName("u1@contoso.com"); u == nil {
		t.Error("a small write is missing")
	}
}

// TestFencedApply: a batch that applies a spec revision commits only while
// the daemon's leadership key is the one its fence names.
func TestFencedApply(t *testing.T) {
	cli := etcdtest.Start(t, 1).Client(t)
	put, err := cli.Put(context.Background(), "/lead", "me")
	if err != nil {
		t.Fatal(err)
	}
	var leads atomic.Bool
	leads.Store(true)
	state, err := etcdstate.New(etcdstate.Options{Client: cli, Prefix: "/f/", Fence: func() (string, int64, bool) {
		return "/lead", put.Header.Revision, leads.Load()
	}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.New(store.Options{Journal: state, CatchUp: state.CatchUp})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := state.Load(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go state.Run(ctx)
	apply := func(rev string) error {
		return st.Update(context.Background(), func(tx *store.Txn) error {
			return tx.Insert(store.TableMeta, &store.Meta{Key: store.MetaAppliedRevision, Value: rev})
		})
	}
	if err := apply("r1"); err != nil {
		t.Fatalf("leader's apply: %v", err)
	}
	if _, err := cli.Delete(context.Background(), "/lead"); err != nil { // the lease ended
		t.Fatal(err)
	}
	if err := apply("r2"); !errors.Is(err, etcdstate.ErrNotLeader) {
		t.Errorf("apply after the lead was lost: %v, want ErrNotLeader", err)
	}
	leads.Store(false)
	if err := apply("r3"); !errors.Is(err, etcdstate.ErrNotLeader) {
		t.Errorf("apply of a follower: %v, want ErrNotLeader", err)
	}
	// SCIM writes are not fenced.
	if err := st.Update(context.Background(), createUser("u1", "u1@contoso.com")); err != nil {
		t.Errorf("a SCIM write of a follower: %v", err)
	}
}

// TestReloadAfterCompaction: a mirror that was away while etcd compacted
// the changes it missed (users created, renamed and deleted, a group's
// members changed) cannot replay them; it loads the whole state again and
// then holds exactly what the other replica holds.
func TestReloadAfterCompaction(t *testing.T) {
	cli := etcdtest.Start(t, 1).Client(t)
	a, b := newReplica(t, cli, "/t/"), newReplica(t, cli, "/t/")
	a.update(t, createUser("gone", "gone@contoso.com"))
	a.update(t, createUser("renamed", "old@contoso.com"))
	a.update(t, func(tx *store.Txn) error {
		if err := tx.Insert(store.TableGroups, &store.Group{ID: "g", DisplayName: "Developers"}); err != nil {
			return err
		}
		return tx.ChangeMembers("g", []string{"gone", "renamed"}, nil, time.Unix(2, 0))
	})
	if u, _ := b.barrier(t).UserByID("gone"); u == nil {
		t.Fatal("b does not hold the first writes")
	}
	// A certificate whose private key b resolved: etcd holds only its
	// fingerprint, so the reload must keep b's key.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b.update(t, func(tx *store.Txn) error {
		return tx.Insert(store.TableResources, &store.Resource{Kind: spec.KindCertificate, Name: "sp", Revision: "rev-1",
			Spec: &spec.Certificate{Usage: spec.UsageSamlSPSigning, PrivateKeyFrom: &spec.ValueFrom{Env: "SP_KEY"}, PrivateKey: key, KeyFingerprint: "ab"}})
	})
	b.stop()
	a.update(t, func(tx *store.Txn) error {
		u, _ := tx.UserByID("gone")
		if err := tx.DeleteMemberships("gone", time.Unix(3, 0)); err != nil {
			return err
		}
		return tx.Delete(store.TableUsers, u)
	})
	a.update(t, func(tx *store.Txn) error {
		u, _ := tx.UserByID("renamed")
		v := *u
		v.UserName = "new@contoso.com"
		return tx.Insert(store.TableUsers, &v)
	})
	a.update(t, createUser("late", "late@contoso.com"))
	a.update(t, func(tx *store.Txn) error { return tx.ChangeMembers("g", []string{"late"}, nil, time.Unix(4, 0)) })
	resp, err := cli.Get(context.Background(), "/t/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(context.Background(), resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	b.run(t)
	tx := b.barrier(t)
	if u, _ := tx.UserByID("gone"); u != nil {
		t.Error("b still holds the user deleted while it was away")
	}
	if u, _ := tx.UserByName("old@contoso.com"); u != nil {
		t.Error("b still finds the renamed user by its old name")
	}
	if u, _ := tx.UserByName("new@contoso.com"); u == nil || u.ID != "renamed" {
		t.Errorf("b finds %v by the new name, want user renamed", u)
	}
	if u, _ := tx.UserByID("late"); u == nil {
		t.Error("b lacks the user created while it was away")
	}
	m, _ := tx.MembersOf("g")
	if m == nil || strings.Join(m.IDs.Slice(), ",") != "late,renamed" {
		t.Errorf("b's members of g: %v, want late,renamed", m)
	}
	if groups, _ := tx.GroupIDsOf("gone"); len(groups) != 0 {
		t.Errorf("b still has the deleted user in %v", groups)
	}
	if r, _ := tx.Resource(spec.KindCertificate, "sp"); r == nil || r.Spec.(*spec.Certificate).PrivateKey == nil {
		t.Errorf("b's certificate after the reload: %+v, want its private key kept", r)
	}
	// And it mirrors on from there.
	a.update(t, createUser("after", "after@contoso.com"))
	if u, _ := b.barrier(t).UserByID("after"); u == nil {
		t.Error("b does not mirror writes after the reload")
	}
}

// TestUnappliableEventReloads: an event the mirror cannot apply (here a
// record that does not decode, written under the prefix by hand) must not
// leave the replica stuck before it, its Barrier timing out forever. The
// mirror loads the whole state again, as after a compaction: a record gone
// by then (written and deleted again) is passed over with it. One still
// there cannot be loaded either: the replica keeps serving the last whole
// state it held, its Barrier fails at once saying why (readiness shows it,
// SCIM answers 503), it tries again less and less often, logging the
// record once, and it recovers once an operator deleted the record.
func TestUnappliableEventReloads(t *testing.T) {
	etcdstate.FastRetries(t)
	c := etcdtest.Start(t, 1)
	cli := c.Client(t)
	for i, tc := range []struct {
		name string
		left bool // the record stays until the test deletes it
	}{
		{"a record deleted again before the mirror applies it", false},
		{"a record left until an operator deletes it", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := fmt.Sprintf("/unappliable/%d/", i)
			bad := prefix + "o/users/bad"
			// loads counts the reads that start a load of the state.
			var loads atomic.Int32
			intercept := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				if r, ok := req.(*pb.RangeRequest); ok && string(r.Key) == prefix+"m/" && len(r.RangeEnd) > 0 {
					loads.Add(1)
				}
				return invoker(ctx, method, req, reply, cc, opts...)
			}
			logs := &logRecorder{}
			a := newReplica(t, cli, prefix)
			b := newReplicaWith(t, etcdstate.Options{Client: etcdtest.NewClient(t, c.Endpoints, intercept), Prefix: prefix,
				Logger: slog.New(logs), Timeout: 2 * time.Second})
			a.update(t, createUser("u1", "ann@contoso.com"))
			b.barrier(t)
			if _, err := cli.Put(context.Background(), bad, "not a record"); err != nil {
				t.Fatal(err)
			}
			if tc.left {
				err := pollBarrier(t, b, func(err error) bool { return err != nil && strings.Contains(err.Error(), bad) })
				if !errors.Is(err, store.ErrUnavailable) {
					t.Errorf("Barrier: %v, want store.ErrUnavailable", err)
				}
				if u, _ := b.st.Read().UserByID("u1"); u == nil {
					t.Error("b lost the state it held")
				}
				// Tried again, and logged once.
				start := loads.Load()
				poll(t, func() bool { return loads.Load() >= start+3 },
					func() string {
						return fmt.Sprintf("b tried to load the state %d times more, want 3", loads.Load()-start)
					})
				if n := logs.count(slog.LevelWarn, bad); n != 1 {
					t.Errorf("%d warnings or errors name %s, want 1:\n%s", n, bad, logs)
				}
				if !logs.hasAttrs(slog.LevelWarn, "key", bad, "revision") {
					t.Errorf("no warning names the key and its revision:\n%s", logs)
				}
			}
			if _, err := cli.Delete(context.Background(), bad); err != nil {
				t.Fatal(err)
			}
			a.update(t, createUser("u2", "bob@contoso.com"))
			pollBarrier(t, b, func(err error) bool { return err == nil })
			tx := b.st.Read()
			for _, id := range []string{"u1", "u2"} {
				if u, _ := tx.UserByID(id); u == nil {
					t.Errorf("b lacks %s", id)
				}
			}
			if n := reloads(t, b.state); n < 1 {
				t.Errorf("reloads counted: %v, want at least 1", n)
			}
		})
	}
}

// misfiled is a record put under a key that names another object: by a
// tool with a bug, an etcdctl put by hand, a restore gone wrong.
type misfiled struct {
	name  string
	key   string // under the prefix
	table string
	obj   any
	ok    bool // the key does name the record
}

var misfiledRecords = []misfiled{
	{"user", "o/users/A", store.TableUsers, &store.User{ID: "B", UserName: "b@contoso.com", Active: true}, false},
	{"group", "o/groups/A", store.TableGroups, &store.Group{ID: "B", DisplayName: "Team B"}, false},
	{"members header", "o/members/A", store.TableMembers, &store.Members{GroupID: "B", Version: 1}, false},
	{"meta", "o/meta/A", store.TableMeta, &store.Meta{Key: "B", Value: "v"}, false},
	{"resource of another kind", "o/resources/" + spec.KindRole + "/A", store.TableResources,
		&store.Resource{Kind: spec.KindApplication, Name: "A"}, false},
	{"resource of another name", "o/resources/" + spec.KindRole + "/A", store.TableResources,
		&store.Resource{Kind: spec.KindRole, Name: "B"}, false},
	// Keys are escaped: the record holds the id unescaped.
	{"user with an escaped id", "o/users/" + url.PathEscape("a/b c"), store.TableUsers,
		&store.User{ID: "a/b c", UserName: "c@contoso.com", Active: true}, true},
	{"resource with an escaped name", "o/resources/" + spec.KindRole + "/" + url.PathEscape("x/y"), store.TableResources,
		&store.Resource{Kind: spec.KindRole, Name: "x/y"}, true},
}

// putRecord puts obj's record under key, bypassing the State, as a tool
// or an operator would.
func putRecord(t *testing.T, cli *clientv3.Client, key, table string, obj any) {
	t.Helper()
	val, err := record.Encode(table, obj)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(context.Background(), key, string(val)); err != nil {
		t.Fatal(err)
	}
}

// TestLoadRefusesARecordUnderAnotherKey: a record whose key names another
// object (user A's key holding user B) would be mirrored as B while etcd
// compares and deletes A's key, and uniqueness checks and deletes would
// act on the wrong key. Load refuses it, as it refuses a record it cannot
// decode, naming the key, and serves no half state.
func TestLoadRefusesARecordUnderAnotherKey(t *testing.T) {
	cli := etcdtest.Start(t, 1).Client(t)
	for i, tc := range misfiledRecords {
		t.Run(tc.name, func(t *testing.T) {
			prefix := fmt.Sprintf("/misfiled-load/%d/", i)
			key := prefix + tc.key
			putRecord(t, cli, key, tc.table, tc.obj)
			state, err := etcdstate.New(etcdstate.Options{Client: cli, Prefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			st, err := store.New(store.Options{Journal: state, CatchUp: state.CatchUp})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			_, err = state.Load(context.Background(), st)
			if tc.ok {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), key) {
				t.Errorf("Load: %v, want an error naming %s", err, key)
			}
			if u, _ := st.Read().UserByID("B"); u != nil {
				t.Errorf("the store holds user B from %s", key)
			}
		})
	}
}

// TestWatchRefusesARecordUnderAnotherKey: the same record written while
// the mirror watches is a change it cannot apply: its Barrier fails naming
// the key, it keeps the state it held without the record, and it follows
// etcd again once the record is deleted.
func TestWatchRefusesARecordUnderAnotherKey(t *testing.T) {
	etcdstate.FastRetries(t)
	cli := etcdtest.Start(t, 1).Client(t)
	for i, tc := range misfiledRecords {
		t.Run(tc.name, func(t *testing.T) {
			prefix := fmt.Sprintf("/misfiled-watch/%d/", i)
			key := prefix + tc.key
			logs := &logRecorder{}
			r := newReplicaWith(t, etcdstate.Options{Client: cli, Prefix: prefix, Logger: slog.New(logs), Timeout: 2 * time.Second})
			r.update(t, createUser("u1", "ann@contoso.com"))
			putRecord(t, cli, key, tc.table, tc.obj)
			if tc.ok {
				pollBarrier(t, r, func(err error) bool { return err == nil })
				return
			}
			err := pollBarrier(t, r, func(err error) bool { return err != nil && strings.Contains(err.Error(), key) })
			if !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("Barrier: %v, want store.ErrUnavailable", err)
			}
			// The warning is logged as the fault is recorded, which the
			// Barrier may see first.
			poll(t, func() bool { return logs.hasAttrs(slog.LevelWarn, "key", key, "revision") },
				func() string { return fmt.Sprintf("no warning names the key and its revision:\n%s", logs) })
			tx := r.st.Read()
			if u, _ := tx.UserByID("B"); u != nil {
				t.Errorf("the mirror holds user B from %s", key)
			}
			if u, _ := tx.UserByID("u1"); u == nil {
				t.Error("the mirror lost the state it held")
			}
			if _, err := cli.Delete(context.Background(), key); err != nil {
				t.Fatal(err)
			}
			pollBarrier(t, r, func(err error) bool { return err == nil })
		})
	}
}

// pollBarrier calls r's Barrier until done accepts its error, and returns
// that error; it fails t after a deadline.
func pollBarrier(t *testing.T, r *replica, done func(error) bool) error {
	t.Helper()
	var err error
	poll(t, func() bool {
		err = r.state.Barrier(context.Background())
		return done(err)
	}, func() string { return fmt.Sprintf("Barrier: %v", err) })
	return err
}

// poll calls cond until it holds; after a deadline it fails t with what.
func poll(t *testing.T, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(what())
		}
		time.Sleep(5 * time.Millisecond) // a poll's interval, not a wait for an outcome
	}
}

// reloads returns the reloads s counted.
func reloads(t *testing.T, s *etcdstate.State) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "idrecon_etcd_reloads_total" {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no reloads metric")
	return 0
}

// logRecorder is a slog.Handler that keeps the records.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Clone())
	return nil
}

func (l *logRecorder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, r := range l.records {
		fmt.Fprintln(&b, text(r))
	}
	return b.String()
}

func text(r slog.Record) string {
	s := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool {
		s += " " + a.String()
		return true
	})
	return s
}

// count returns how many records at level or above mention s.
func (l *logRecorder) count(level slog.Level, s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.records {
		if r.Level >= level && strings.Contains(text(r), s) {
			n++
		}
	}
	return n
}

// hasAttrs reports whether a record at level or above has attribute key
// with value val, and an attribute named also.
func (l *logRecorder) hasAttrs(level slog.Level, key, val, also string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.records {
		found, other := false, false
		r.Attrs(func(a slog.Attr) bool {
			found = found || a.Key == key && a.Value.String() == val
			other = other || a.Key == also
			return true
		})
		if r.Level >= level && found && other {
			return true
		}
	}
	return false
}

// TestNameHandOverInOneBatch: a batch in which one object gives up a
// userName or displayName and another takes it (two concurrent SCIM writes
// the store batches together, or one write that swaps names through a
// temporary one) touches that name's index key twice. etcd must accept it
// as the single-daemon store does, with the same outcome, whatever order
// the batch lists the two objects in.
func TestNameHandOverInOneBatch(t *testing.T) {
	cli := etcdtest.Start(t, 1).Client(t)
	renameUser := func(tx *store.Txn, id, name string) error {
		u, err := tx.UserByID(id)
		if err != nil || u == nil {
			return cmpErr(err, fmt.Errorf("no user %s", id))
		}
		v := *u
		v.UserName = name
		return tx.Insert(store.TableUsers, &v)
	}
	renameGroup := func(tx *store.Txn, id, name string) error {
		g, err := tx.GroupByID(id)
		if err != nil || g == nil {
			return cmpErr(err, fmt.Errorf("no group %s", id))
		}
		v := *g
		v.DisplayName = name
		return tx.Insert(store.TableGroups, &v)
	}
	steps := func(fns ...func(*store.Txn) error) func(*store.Txn) error {
		return func(tx *store.Txn) error {
			for _, fn := range fns {
				if err := fn(tx); err != nil {
					return err
				}
			}
			return nil
		}
	}
	userNamed := func(id, name string) func(*store.Txn) error {
		return func(tx *store.Txn) error { return renameUser(tx, id, name) }
	}
	groupNamed := func(id, name string) func(*store.Txn) error {
		return func(tx *store.Txn) error { return renameGroup(tx, id, name) }
	}
	deleted := func(table, id string) func(*store.Txn) error {
		return func(tx *store.Txn) error {
			obj, err := tx.First(table, store.IndexID, id)
			if err != nil || obj == nil {
				return cmpErr(err, fmt.Errorf("no %s %s", table, id))
			}
			return tx.Delete(table, obj)
		}
	}
	setup := steps(createUser("ua", "x@contoso.com"), createUser("ub", "z@contoso.com"),
		func(tx *store.Txn) error {
			return tx.Insert(store.TableGroups, &store.Group{ID: "ga", DisplayName: "X"})
		},
		func(tx *store.Txn) error {
			return tx.Insert(store.TableGroups, &store.Group{ID: "gb", DisplayName: "Z"})
		})
	for i, tc := range []struct {
		name  string
		batch func(*store.Txn) error
	}{
		{"userNames swapped", steps(userNamed("ua", "tmp"), userNamed("ub", "x@contoso.com"), userNamed("ua", "z@contoso.com"))},
		// The store lists users in the order the batch first touched them.
		{"userName taken by a user the batch touched first", steps(userNamed("ub", "w@contoso.com"), userNamed("ua", "y@contoso.com"), userNamed("ub", "x@contoso.com"))},
		{"user deleted, its userName taken by a new user", steps(deleted(store.TableUsers, "ua"), createUser("uc", "x@contoso.com"))},
		{"displayNames swapped", steps(groupNamed("ga", "tmp"), groupNamed("gb", "X"), groupNamed("ga", "Z"))},
		// memdb lists rows in the order the batch last changed them.
		{"displayName given up by a group the batch changes again", steps(groupNamed("ga", "Y"), groupNamed("gb", "X"), groupNamed("ga", "W"))},
		{"group deleted, its displayName taken by a new group", steps(deleted(store.TableGroups, "ga"),
			func(tx *store.Txn) error {
				return tx.Insert(store.TableGroups, &store.Group{ID: "gc", DisplayName: "X"})
			})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			single, err := store.New(store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer single.Close()
			for _, fn := range []func(*store.Txn) error{setup, tc.batch} {
				if err := single.Update(context.Background(), fn); err != nil {
					t.Fatalf("single-daemon store: %v", err)
				}
			}
			prefix := fmt.Sprintf("/handover/%d/", i)
			r := newReplica(t, cli, prefix)
			r.update(t, setup)
			if err := r.st.Update(context.Background(), tc.batch); err != nil {
				t.Fatalf("etcd: %v", err)
			}
			want := names(t, single.Read())
			if got := names(t, r.barrier(t)); got != want {
				t.Errorf("the replica holds %s, want %s", got, want)
			}
			if got := names(t, newReplica(t, cli, prefix).st.Read()); got != want {
				t.Errorf("a replica loaded from etcd holds %s, want %s", got, want)
			}
			// etcd's name index holds each name once, for its holder: it
			// is what keeps another daemon from taking the name.
			if got, want := index(t, cli, prefix), indexOf(t, prefix, single.Read()); got != want {
				t.Errorf("etcd's name index holds %s, want %s", got, want)
			}
		})
	}
}

// index lists the name index keys under prefix and the ids they hold.
func index(t *testing.T, cli *clientv3.Client, prefix string) string {
	t.Helper()
	resp, err := cli.Get(context.Background(), prefix+"i/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, kv := range resp.Kvs {
		out = append(out, string(kv.Key)+"="+string(kv.Value))
	}
	return strings.Join(out, " ")
}

// indexOf lists the name index keys (see the package's doc) that the
// users and groups tx holds need, as index does.
func indexOf(t *testing.T, prefix string, tx *store.Txn) string {
	t.Helper()
	var out []string
	users, err := tx.UsersAfter("")
	if err != nil {
		t.Fatal(err)
	}
	for u := range users {
		out = append(out, prefix+"i/user-name/"+url.PathEscape(store.Fold(u.UserName))+"="+u.ID)
	}
	groups, err := tx.GroupsAfter("")
	if err != nil {
		t.Fatal(err)
	}
	for g := range groups {
		out = append(out, prefix+"i/group-name/"+url.PathEscape(store.Fold(g.DisplayName))+"="+g.ID)
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// names lists the users' userNames and the groups' displayNames tx holds.
func names(t *testing.T, tx *store.Txn) string {
	t.Helper()
	var out []string
	users, err := tx.UsersAfter("")
	if err != nil {
		t.Fatal(err)
	}
	for u := range users {
		out = append(out, u.ID+"="+u.UserName)
	}
	groups, err := tx.GroupsAfter("")
	if err != nil {
		t.Fatal(err)
	}
	for g := range groups {
		out = append(out, g.ID+"="+g.DisplayName)
	}
	return strings.Join(out, " ")
}

// TestConfirmedMovesWithBarrier: Confirmed, which bounds how stale a cut
// off daemon's answers may be, is the start of the last Load or Barrier
// that succeeded, and a Barrier that fails leaves it.
func TestConfirmedMovesWithBarrier(t *testing.T) {
	c := etcdtest.Start(t, 1)
	before := time.Now()
	r := newReplica(t, c.Client(t), "/t/")
	loaded := r.state.Confirmed()
	if loaded.Before(before) || loaded.After(time.Now()) {
		t.Errorf("after Load: confirmed at %v, want between %v and now", loaded, before)
	}
	before = time.Now()
	r.barrier(t)
	barrier := r.state.Confirmed()
	if barrier.Before(before) || barrier.After(time.Now()) {
		t.Errorf("after Barrier: confirmed at %v, want between %v and now", barrier, before)
	}
	c.Kill(0)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := r.state.Barrier(ctx); err == nil {
		t.Fatal("Barrier with etcd down: no error")
	}
	if got := r.state.Confirmed(); !got.Equal(barrier) {
		t.Errorf("a failed Barrier moved confirmed from %v to %v", barrier, got)
	}
}

// TestMaxTxnOpsOfTheCluster: a cluster started with a higher --max-txn-ops
// takes larger batches (a spec change of more documents, a group's members
// in one transaction) once the State is told; a State told more than its
// cluster allows has such a batch refused as too large, never as
// unavailable (which a client would retry forever).
func TestMaxTxnOpsOfTheCluster(t *testing.T) {
	const n = 300 // records in one write: over the default, under the raised limit
	big := func(tx *store.Txn) error {
		for i := range n {
			if err := tx.Insert(store.TableMeta, &store.Meta{Key: fmt.Sprintf("k%03d", i), Value: "v"}); err != nil {
				return err
			}
		}
		return nil
	}
	raised := etcdtest.StartWith(t, 1, func(c *embed.Config) { c.MaxTxnOps = 1024 }).Client(t)
	plain := etcdtest.Start(t, 1).Client(t)
	for _, tc := range []struct {
		name    string
		cli     *clientv3.Client
		maxOps  int
		refused bool
	}{
		{"raised on both", raised, 1024, false},
		{"raised on the cluster only", raised, 0, true},
		{"raised on the State only", plain, 1024, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReplicaWith(t, etcdstate.Options{Client: tc.cli, Prefix: "/" + tc.name + "/", MaxTxnOps: tc.maxOps})
			err := r.st.Update(context.Background(), big)
			if tc.refused != (err != nil) || (err != nil && (!errors.Is(err, store.ErrTooLarge) || errors.Is(err, store.ErrUnavailable))) {
				t.Fatalf("a write of %d records: %v; want refused %v (as too large)", n, err, tc.refused)
			}
			if tc.refused {
				return
			}
			if got, _ := r.barrier(t).First(store.TableMeta, store.IndexID, fmt.Sprintf("k%03d", n-1)); got == nil {
				t.Error("the write's last record is not in the state")
			}
		})
	}
}
