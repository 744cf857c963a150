package samletcd_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/idrecon/idrecon/runtime/internal/etcdtest"
	"github.com/idrecon/idrecon/runtime/internal/testclock"
	"github.com/idrecon/idrecon/runtime/saml"
	"github.com/idrecon/idrecon/runtime/store"
)

func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// replayPrefix is where the replay records of user are in etcd.
func replayPrefix(user string) string { return "/t/saml/replay/" + hashOf(store.Fold(user)) + "/" }

// TestSignInsPerUserBound: a user holding saml.MaxSignInsPerUser records
// is refused another (saml.TooManyError, until the soonest lapses), which
// adds no key; another user is recorded meanwhile; a replay is still told
// as one; once the soonest record lapses the user has room for one more.
func TestSignInsPerUserBound(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.Start(t, 1)
	cli := c.Client(t)
	clock := testclock.New(time.Now().Truncate(time.Second))
	a, b := daemonStore(t, cli, 5*time.Second), daemonStore(t, cli, 5*time.Second)
	a.SetClock(clock.Now)
	b.SetClock(clock.Now)
	now := clock.Now()
	soonest := now.Add(10 * time.Minute)
	for i := range saml.MaxSignInsPerUser {
		exp := now.Add(time.Hour)
		if i == 0 {
			exp = soonest
		}
		st := a
		if i%2 == 1 {
			st = b
		}
		if first, err := st.FirstUse(ctx, "ann@contoso.com", fmt.Sprintf("a-%d", i), exp); !first || err != nil {
			t.Fatalf("record %d: %v, %v", i, first, err)
		}
	}
	tooMany := func(st interface {
		FirstUse(context.Context, string, string, time.Time) (bool, error)
	}, key string) {
		t.Helper()
		first, err := st.FirstUse(ctx, "Ann@Contoso.com", key, now.Add(time.Hour))
		var tm *saml.TooManyError
		if first || !errors.As(err, &tm) || !tm.Until.Equal(soonest) {
			t.Fatalf("%s past the bound: %v, %v; want a TooManyError until %s", key, first, err, soonest)
		}
	}
	tooMany(a, "a-over")
	tooMany(b, "a-over")
	if got := countKeys(t, cli, replayPrefix("ann@contoso.com")); got != saml.MaxSignInsPerUser {
		t.Fatalf("%d replay keys of ann; want %d", got, saml.MaxSignInsPerUser)
	}
	if first, err := b.FirstUse(ctx, "ann@contoso.com", "a-3", now.Add(time.Hour)); first || err != nil {
		t.Fatalf("a replay of a full user: %v, %v; want a replay (false, nil)", first, err)
	}
	if first, err := b.FirstUse(ctx, "bob@contoso.com", "b-0", now.Add(time.Hour)); !first || err != nil {
		t.Fatalf("another user: %v, %v", first, err)
	}

	clock.Add(soonest.Sub(now) - time.Second)
	tooMany(a, "a-over")
	clock.Add(time.Second)
	if first, err := a.FirstUse(ctx, "ann@contoso.com", "a-over", now.Add(time.Hour)); !first || err != nil {
		t.Fatalf("once the soonest record lapsed: %v, %v", first, err)
	}
	if first, err := b.FirstUse(ctx, "ann@contoso.com", "a-over-2", now.Add(time.Hour)); first || !errors.As(err, new(*saml.TooManyError)) {
		t.Fatalf("a second record with one lapsed: %v, %v; want a TooManyError", first, err)
	}
}

// TestSignInsPerUserConcurrent: sign-ins of one user racing on two
// daemons never leave more than saml.MaxSignInsPerUser replay keys of the
// user: each record is made only if no other of the user was since it
// counted them. One that keeps losing that race is answered unavailable
// (the sign-in is retried), never recorded past the bound.
func TestSignInsPerUserConcurrent(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.Start(t, 1)
	cli := c.Client(t)
	daemons := []interface {
		FirstUse(context.Context, string, string, time.Time) (bool, error)
	}{daemonStore(t, cli, 5*time.Second), daemonStore(t, cli, 5*time.Second)}
	const attempts, parallel = 2 * saml.MaxSignInsPerUser, 8
	var recorded, refused, unavailable atomic.Int32
	next := make(chan int)
	var wg sync.WaitGroup
	for w := range parallel {
		wg.Go(func() {
			for i := range next {
				first, err := daemons[w%2].FirstUse(ctx, "ann@contoso.com", fmt.Sprintf("a-%d", i), time.Now().Add(time.Hour))
				switch {
				case first && err == nil:
					recorded.Add(1)
				case errors.As(err, new(*saml.TooManyError)):
					refused.Add(1)
				case errors.Is(err, store.ErrUnavailable):
					unavailable.Add(1)
				default:
					t.Errorf("attempt %d: %v, %v", i, first, err)
				}
			}
		})
	}
	for i := range attempts {
		next <- i
	}
	close(next)
	wg.Wait()
	t.Logf("%d recorded, %d refused, %d lost the race too often", recorded.Load(), refused.Load(), unavailable.Load())
	keys := countKeys(t, cli, replayPrefix("ann@contoso.com"))
	if keys > saml.MaxSignInsPerUser || keys != int64(recorded.Load()) {
		t.Fatalf("%d replay keys of ann after %d recorded; want them equal and at most %d", keys, recorded.Load(), saml.MaxSignInsPerUser)
	}
	if refused.Load() == 0 {
		t.Fatal("no sign-in was refused")
	}
	if first, err := daemons[0].FirstUse(ctx, "bob@contoso.com", "b-0", time.Now().Add(time.Hour)); !first || err != nil {
		t.Fatalf("another user: %v, %v", first, err)
	}
}

// TestReplayKeyOfOlderDaemon: an assertion an older daemon recorded (its
// key under replay/ with no user) is still refused as a replay while the
// key lives, and so is a LogoutRequest; nothing is recorded for it; and an
// assertion recorded now is where an older daemon looks.
func TestReplayKeyOfOlderDaemon(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.Start(t, 1)
	cli := c.Client(t)
	s := daemonStore(t, cli, 5*time.Second)
	lease, err := cli.Grant(ctx, 3600)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"issuer\x00_old-assertion", "\x00LogoutRequest\x00issuer\x00_old-logout"} {
		if _, err := cli.Put(ctx, "/t/saml/replay/"+hashOf(key), "", clientv3.WithLease(lease.ID)); err != nil {
			t.Fatal(err)
		}
		if first, err := s.FirstUse(ctx, "ann@contoso.com", key, time.Now().Add(time.Hour)); first || err != nil {
			t.Fatalf("%q, recorded by an older daemon: %v, %v; want a replay", key, first, err)
		}
	}
	if got := countKeys(t, cli, replayPrefix("ann@contoso.com")); got != 0 {
		t.Fatalf("%d replay keys of ann; want none for a replay", got)
	}
	newKey := "issuer\x00_new-assertion"
	if first, err := s.FirstUse(ctx, "ann@contoso.com", newKey, time.Now().Add(time.Hour)); !first || err != nil {
		t.Fatalf("a new assertion: %v, %v", first, err)
	}
	// And the other way round: what this daemon recorded, an older one,
	// which looks only under replay/ with no user, finds too.
	if got := countKeys(t, cli, "/t/saml/replay/"+hashOf(newKey)); got != 1 {
		t.Fatalf("%d keys where an older daemon looks for the new assertion, want 1", got)
	}
}

// TestTurnsEnd: calls of one user that take turns at FirstUse, some of
// which give up waiting (their context ends), leave no turn behind in the
// daemon: the map holds only users with a call in flight.
func TestTurnsEnd(t *testing.T) {
	c := etcdtest.Start(t, 1)
	s := daemonStore(t, c.Client(t), 5*time.Second)
	var wg sync.WaitGroup
	for i := range 16 {
		ctx, cancel := context.WithCancel(context.Background())
		if i%2 == 1 {
			cancel() // gives up at once, waiting or not
		}
		wg.Go(func() {
			defer cancel()
			s.FirstUse(ctx, "ann@contoso.com", fmt.Sprintf("a-%d", i), time.Now().Add(time.Hour))
		})
	}
	wg.Wait()
	if n := s.Turns(); n != 0 {
		t.Fatalf("%d turns held with no call in flight", n)
	}
}
