package samletcd_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/idrecon/idrecon/runtime/internal/etcdtest"
	"github.com/idrecon/idrecon/runtime/saml"
	"github.com/idrecon/idrecon/runtime/saml/samletcd"
	"github.com/idrecon/idrecon/runtime/store"
)

// daemonStore is one daemon's Store on the cluster, its watch running
// until the test ends.
func daemonStore(t *testing.T, cli *clientv3.Client, timeout time.Duration) *samletcd.Store {
	t.Helper()
	s := samletcd.New(cli, "/t/", timeout, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSharedAcrossDaemons: a session made on one daemon is found on
// another, a sign-out on either ends it on both (the other's cache hears
// of it through the watch), and an assertion consumed on one is refused
// on the other.
func TestSharedAcrossDaemons(t *testing.T) {
	c := etcdtest.Start(t, 3)
	a, b := daemonStore(t, c.Client(t), 5*time.Second), daemonStore(t, c.Client(t), 5*time.Second)
	ctx := context.Background()
	se := saml.Session{UserName: "ann@contoso.com", UserID: "u1", NameID: "ann@contoso.com", SessionIndex: "_s1"}
	if err := a.Add(ctx, "session-1", se, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*samletcd.Store{"the daemon that made it": a, "another": b} {
		got, ok, err := s.Get(ctx, "session-1")
		if err != nil || !ok || got != se {
			t.Fatalf("%s: Get = %+v, %v, %v", name, got, ok, err)
		}
	}
	if _, ok, err := b.Get(ctx, "no-such-session"); ok || err != nil {
		t.Fatalf("unknown session: %v, %v", ok, err)
	}
	if err := a.Delete(ctx, "session-1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the sign-out reached the other daemon's cache", func() bool {
		_, ok, err := b.Get(ctx, "session-1")
		return !ok && err == nil
	})

	first, err := a.FirstUse(ctx, "ann@contoso.com", "assertion-1", time.Now().Add(time.Hour))
	if err != nil || !first {
		t.Fatalf("first use: %v, %v", first, err)
	}
	again, err := b.FirstUse(ctx, "ann@contoso.com", "assertion-1", time.Now().Add(time.Hour))
	if err != nil || again {
		t.Fatalf("the same assertion on another daemon: first use %v, %v", again, err)
	}
}

// TestCachedSessionsOutliveQuorum: with two of three members down, a
// session the daemon has read keeps working there; one it never read
// cannot be checked and says so (store.ErrUnavailable: the browser is
// then not signed in there), and making a new one fails the same way,
// never kept only in this daemon's memory.
func TestCachedSessionsOutliveQuorum(t *testing.T) {
	c := etcdtest.Start(t, 3)
	s := daemonStore(t, c.Client(t), 2*time.Second)
	ctx := context.Background()
	se := saml.Session{UserName: "ann@contoso.com", NameID: "ann@contoso.com"}
	for _, id := range []string{"cached", "not-cached"} {
		if err := s.Add(ctx, id, se, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	// A read is cached only once the store's watch is open, which the
	// store's Run does in the background: read until it is.
	eventually(t, "the session read into the cache", func() bool {
		if _, ok, err := s.Get(ctx, "cached"); !ok || err != nil {
			t.Fatalf("before: %v, %v", ok, err)
		}
		return s.Cached("cached")
	})
	// A fresh daemon reads "not-cached" only after quorum is gone.
	other := daemonStore(t, c.Client(t), 2*time.Second)
	c.Kill(1)
	c.Kill(2)
	if got, ok, err := s.Get(ctx, "cached"); !ok || err != nil || got != se {
		t.Errorf("cached session without quorum: %+v, %v, %v", got, ok, err)
	}
	if _, ok, err := other.Get(ctx, "not-cached"); ok || !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("uncached session without quorum: %v, %v; want store.ErrUnavailable", ok, err)
	}
	if err := s.Add(ctx, "new", se, time.Now().Add(time.Hour)); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("a new session without quorum: %v; want store.ErrUnavailable", err)
	}
	if _, ok, _ := s.Get(ctx, "new"); ok {
		t.Error("the session that failed to be stored is served from the cache")
	}
	if _, err := s.FirstUse(ctx, "ann@contoso.com", "assertion-2", time.Now().Add(time.Hour)); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("an assertion without quorum: %v; want store.ErrUnavailable (never accepted unchecked)", err)
	}
	c.Restart(t, 1)
	c.Restart(t, 2)
	eventually(t, "sessions readable again once quorum returned", func() bool {
		_, ok, err := other.Get(ctx, "not-cached")
		return ok && err == nil
	})
}

// TestSessionsPerUserAcrossDaemons: as in a daemon's own table, a user
// keeps at most saml.MaxSessionsPerUser sessions in etcd, the ones expiring
// soonest ending first, whichever daemon made them; nobody else's are
// touched. Without the bound one account signing in over and over (Entra
// answers at once while its own session lasts) fills etcd for as long as
// sessions live, up to its quota, where every write of the cluster fails.
func TestSessionsPerUserAcrossDaemons(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := c.Client(t)
	a, b := daemonStore(t, cli, 5*time.Second), daemonStore(t, cli, 5*time.Second)
	ctx := context.Background()
	now := time.Now()
	other := saml.Session{UserName: "bob@contoso.com", UserID: "u2", NameID: "bob@contoso.com"}
	if err := a.Add(ctx, "bob", other, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	const n = saml.MaxSessionsPerUser + 5
	for i := range n {
		s := []*samletcd.Store{a, b}[i%2]
		// The spelling of the name varies: the user is the same.
		name := []string{"ann@contoso.com", "Ann@Contoso.com"}[i%2]
		se := saml.Session{UserName: name, UserID: "u1", NameID: name}
		if err := s.Add(ctx, fmt.Sprintf("ann-%d", i), se, now.Add(time.Hour+time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := cli.Get(ctx, "/t/saml/session/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(saml.MaxSessionsPerUser + 1); resp.Count != want {
		t.Errorf("%d sessions in etcd after %d sign-ins of one user and one of another, want %d", resp.Count, n, want)
	}
	for i := range n {
		id := fmt.Sprintf("ann-%d", i)
		want := i >= n-saml.MaxSessionsPerUser // the newest are kept
		for name, s := range map[string]*samletcd.Store{"a": a, "b": b} {
			eventually(t, fmt.Sprintf("%s on daemon %s signed in: %v", id, name, want), func() bool {
				_, ok, err := s.Get(ctx, id)
				return err == nil && ok == want
			})
		}
	}
	if _, ok, err := b.Get(ctx, "bob"); !ok || err != nil {
		t.Fatalf("another user's session: %v, %v", ok, err)
	}
	// Signed out, a session leaves room: the next sign-in ends no other.
	if err := a.Delete(ctx, fmt.Sprintf("ann-%d", n-1)); err != nil {
		t.Fatal(err)
	}
	se := saml.Session{UserName: "ann@contoso.com", UserID: "u1", NameID: "ann@contoso.com"}
	if err := b.Add(ctx, "ann-new", se, now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ann-new", fmt.Sprintf("ann-%d", n-saml.MaxSessionsPerUser)} {
		if _, ok, err := a.Get(ctx, id); !ok || err != nil {
			t.Errorf("%s after a sign-out made room: %v, %v", id, ok, err)
		}
	}
}

// TestUntaggedSessionsUntil: the first daemon to ask records the latest
// expiry of the sessions in etcd (all of them minted before cookies
// carried a tag); every later daemon reads that record, whatever sessions
// were stored since.
func TestUntaggedSessionsUntil(t *testing.T) {
	ctx := context.Background()
	t.Run("no sessions", func(t *testing.T) {
		c := etcdtest.Start(t, 1)
		got, err := daemonStore(t, c.Client(t), 5*time.Second).UntaggedSessionsUntil(ctx)
		if err != nil || got.After(time.Unix(0, 0)) {
			t.Fatalf("got %v, %v; want the epoch: no untagged session can exist", got, err)
		}
	})
	t.Run("older sessions", func(t *testing.T) {
		c := etcdtest.Start(t, 1)
		older := daemonStore(t, c.Client(t), 5*time.Second)
		now := time.Now().Truncate(time.Second)
		for i, exp := range []time.Duration{time.Hour, 3 * time.Hour, 2 * time.Hour} {
			se := saml.Session{UserName: fmt.Sprintf("user%d@contoso.com", i), NameID: "n"}
			if err := older.Add(ctx, fmt.Sprintf("s%d", i), se, now.Add(exp)); err != nil {
				t.Fatal(err)
			}
		}
		first := daemonStore(t, c.Client(t), 5*time.Second)
		got, err := first.UntaggedSessionsUntil(ctx)
		if err != nil || !got.Equal(now.Add(3*time.Hour)) {
			t.Fatalf("got %v, %v; want the latest expiry %v", got, err, now.Add(3*time.Hour))
		}
		if err := first.Add(ctx, "tagged", saml.Session{UserName: "late@contoso.com", NameID: "n"}, now.Add(9*time.Hour)); err != nil {
			t.Fatal(err)
		}
		got, err = daemonStore(t, c.Client(t), 5*time.Second).UntaggedSessionsUntil(ctx)
		if err != nil || !got.Equal(now.Add(3*time.Hour)) {
			t.Fatalf("a later daemon got %v, %v; want the first one's %v", got, err, now.Add(3*time.Hour))
		}
	})
}
