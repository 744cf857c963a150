package etcdstate_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/idrecon/idrecon/runtime/internal/etcdtest"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/etcdstate"
)

// TestBarrierEndsWithItsCaller: a Barrier whose mirror does not move (here
// its Run stopped) returns once its caller gives up, also after it wrote
// the tick key; it must not hold a request that is gone, or a shutdown, for
// as long as the State's timeout allows.
func TestBarrierEndsWithItsCaller(t *testing.T) {
	cli := etcdtest.Start(t, 1).Client(t)
	a := newReplica(t, cli, "/t/")
	b := newReplicaWith(t, etcdstate.Options{Client: cli, Prefix: "/t/", Timeout: time.Hour})
	b.stop()
	a.update(t, createUser("u1", "u1@contoso.com"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.state.Barrier(ctx) }()
	// Cancelled once the Barrier wrote its tick, waiting for the mirror.
	poll(t, func() bool {
		resp, err := cli.Get(context.Background(), "/t/o/tick", clientv3.WithCountOnly())
		return err == nil && resp.Count > 0
	}, func() string { return "Barrier wrote no tick" })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.Canceled) {
			t.Errorf("Barrier: %v, want unavailable and cancelled", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Barrier still waits after its caller cancelled")
	}
}

// TestFailedImportIsNotLoaded: an import cut short leaves part of the
// state under the prefix. A daemon must not load it as the state (users
// missing, to be created again by Entra with new ids and no groups): Load
// refuses the prefix, saying an import did not finish, until it is cleared
// and imported again.
func TestFailedImportIsNotLoaded(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := c.Client(t)
	src, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	err = src.Update(context.Background(), func(tx *store.Txn) error {
		for i := range 200 {
			id := fmt.Sprintf("u%03d", i)
			if err := tx.Insert(store.TableUsers, &store.User{ID: id, UserName: id + "@contoso.com", Active: true}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Every transaction after the first few fails.
	var txns atomic.Int32
	intercept := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if strings.HasSuffix(method, "/Txn") && txns.Add(1) > 3 {
			return errors.New("injected: the import's etcd went away")
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	cut, err := etcdstate.New(etcdstate.Options{Client: etcdtest.NewClient(t, c.Endpoints, intercept), Prefix: "/m/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cut.Import(context.Background(), src.Read()); err == nil {
		t.Fatal("an import whose transactions fail: no error")
	}
	resp, err := cli.Get(context.Background(), "/m/o/users/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count == 0 || resp.Count >= 200 {
		t.Fatalf("%d users under the prefix after the cut import; the test proves nothing", resp.Count)
	}
	load := func() (*store.Store, error) {
		state, err := etcdstate.New(etcdstate.Options{Client: cli, Prefix: "/m/"})
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.New(store.Options{Journal: state, CatchUp: state.CatchUp})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		_, err = state.Load(context.Background(), st)
		return st, err
	}
	if _, err := load(); err == nil || !strings.Contains(err.Error(), "import") {
		t.Errorf("Load of a cut import: %v, want a refusal naming the import", err)
	}
	// Cleared and imported again, it loads whole.
	if _, err := cli.Delete(context.Background(), "/m/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	state, err := etcdstate.New(etcdstate.Options{Client: cli, Prefix: "/m/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := state.Import(context.Background(), src.Read()); err != nil {
		t.Fatal(err)
	}
	st, err := load()
	if err != nil {
		t.Fatalf("Load after a whole import: %v", err)
	}
	if n, _ := st.Read().UserCount(); n != 200 {
		t.Errorf("%d users loaded, want 200", n)
	}
}
