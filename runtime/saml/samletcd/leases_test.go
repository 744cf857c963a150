package samletcd_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/idrecon/idrecon/runtime/internal/etcdtest"
	"github.com/idrecon/idrecon/runtime/saml"
	"github.com/idrecon/idrecon/runtime/saml/samletcd"
)

// leaseOf returns the lease key is on (0: none) and its remaining TTL.
func leaseOf(t *testing.T, cli *clientv3.Client, key string) (clientv3.LeaseID, int64) {
	t.Helper()
	ctx := context.Background()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		t.Fatalf("%s: not in etcd", key)
	}
	id := clientv3.LeaseID(resp.Kvs[0].Lease)
	if id == 0 {
		return 0, 0
	}
	ttl, err := cli.TimeToLive(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return id, ttl.TTL
}

// TestLeases: every key is on a live lease that lasts at least until it
// expires, an almost (or already) expired session included, never an
// immortal key nor a failed sign-in; a lease etcd lost (revoked, or the
// cluster restored) is replaced, not used.
func TestLeases(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.Start(t, 1)
	cli := c.Client(t)
	s := daemonStore(t, cli, 5*time.Second)
	now := time.Now()
	se := saml.Session{UserName: "ann@contoso.com", NameID: "ann@contoso.com"}
	for i, exp := range []time.Duration{-time.Hour, -time.Second, 0, time.Second, 59 * time.Second, time.Hour} {
		id := fmt.Sprintf("s%d", i)
		if err := s.Add(ctx, id, se, now.Add(exp)); err != nil {
			t.Fatalf("Add expiring in %v: %v", exp, err)
		}
		lease, ttl := leaseOf(t, cli, sessionKey(id))
		if lease == 0 || ttl <= 0 || exp > 0 && time.Duration(ttl)*time.Second < exp-time.Second {
			t.Errorf("session expiring in %v: lease %x, TTL %ds", exp, lease, ttl)
		}
	}

	// The lease of the minute is revoked under the store's feet.
	exp := now.Add(2 * time.Hour)
	if err := s.Add(ctx, "before", se, exp); err != nil {
		t.Fatal(err)
	}
	lease, _ := leaseOf(t, cli, sessionKey("before"))
	if _, err := cli.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(ctx, "after", se, exp); err != nil {
		t.Fatalf("Add on a revoked lease: %v", err)
	}
	if l, ttl := leaseOf(t, cli, sessionKey("after")); l == 0 || l == lease || ttl < 3600 {
		t.Errorf("after the revoke: lease %x (revoked %x), TTL %ds", l, lease, ttl)
	}
	if first, err := s.FirstUse(ctx, "ann@contoso.com", "assertion", exp); !first || err != nil {
		t.Fatalf("FirstUse: %v, %v", first, err)
	}
}

// TestFirstUseRace: daemons given one assertion at once accept it exactly
// once.
func TestFirstUseRace(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.Start(t, 1)
	a, b := daemonStore(t, c.Client(t), 5*time.Second), daemonStore(t, c.Client(t), 5*time.Second)
	for round := range 5 {
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			st := []*samletcd.Store{a, b}[i%2]
			wg.Go(func() {
				first, err := st.FirstUse(ctx, "ann@contoso.com", fmt.Sprintf("assertion-%d", round), time.Now().Add(time.Minute))
				if err != nil {
					t.Error(err)
				}
				if first {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if got := wins.Load(); got != 1 {
			t.Fatalf("round %d: %d daemons accepted the assertion; want 1", round, got)
		}
	}
}
