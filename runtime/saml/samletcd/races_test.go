package samletcd_test

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/idrecon/idrecon/runtime/internal/etcdtest"
	"github.com/idrecon/idrecon/runtime/saml"
	"github.com/idrecon/idrecon/runtime/saml/samletcd"
)

// breakingWatcher passes the first watch through until broken is closed,
// then ends it, as etcd ends a WithRequireLeader watch whose member lost
// its leader; the next watch waits for reopen before it is opened.
type breakingWatcher struct {
	clientv3.Watcher
	broken, second, reopen chan struct{}
	once                   sync.Once
	calls                  int
	mu                     sync.Mutex
}

func (w *breakingWatcher) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	w.mu.Lock()
	n := w.calls
	w.calls++
	w.mu.Unlock()
	if n > 0 {
		w.once.Do(func() { close(w.second) })
		select {
		case <-w.reopen:
		case <-ctx.Done():
		}
		return w.Watcher.Watch(ctx, key, opts...)
	}
	in := w.Watcher.Watch(ctx, key, opts...)
	out := make(chan clientv3.WatchResponse)
	go func() {
		defer close(out)
		for {
			select {
			case resp, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- resp:
				case <-w.broken:
					return
				}
			case <-w.broken:
				return
			}
		}
	}()
	return out
}

// TestSignOutDuringAWatchBreakIsHeard: a daemon's watch ends before it
// brought any event (its etcd member lost the leader, say) and a session
// it holds is signed out on another daemon before the watch is open again.
// The watch must open again where the first one started, so the daemon
// hears of it; opened at etcd's revision of the moment, it never does, and
// the signed-out session stays signed in there until it expires.
func TestSignOutDuringAWatchBreakIsHeard(t *testing.T) {
	// No progress notifications: they would tell the daemon a revision
	// to resume from, and this is about a watch that has none yet.
	c := etcdtest.StartWith(t, 1, func(cfg *embed.Config) { cfg.WatchProgressNotifyInterval = time.Hour })
	cli := c.Client(t)
	w := &breakingWatcher{Watcher: cli.Watcher, broken: make(chan struct{}), second: make(chan struct{}), reopen: make(chan struct{})}
	cli.Watcher = w
	s := daemonStore(t, cli, 5*time.Second)
	other := daemonStore(t, c.Client(t), 5*time.Second)
	ctx := context.Background()
	se := saml.Session{UserName: "ann@contoso.com", NameID: "ann@contoso.com"}
	eventually(t, "the first watch opened", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.calls > 0
	})
	for _, id := range []string{"session-1", "session-2"} {
		if err := s.Add(ctx, id, se, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	close(w.broken)
	<-w.second
	if err := other.Delete(ctx, "session-1"); err != nil {
		t.Fatal(err)
	}
	close(w.reopen)
	// A sign-out after the watch is open again is heard, so the watch is
	// past the first one by then.
	if err := other.Delete(ctx, "session-2"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the later sign-out reached the daemon", func() bool {
		_, ok, err := s.Get(ctx, "session-2")
		return !ok && err == nil
	})
	if _, ok, err := s.Get(ctx, "session-1"); ok || err != nil {
		t.Errorf("the session signed out while the watch was down: signed in %v, %v; want signed out", ok, err)
	}
}

// hookKV runs hook once, after the first Get etcd answered (Gets the
// hook makes run no hook).
type hookKV struct {
	clientv3.KV
	ran  atomic.Bool
	hook func()
}

func (kv *hookKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	resp, err := kv.KV.Get(ctx, key, opts...)
	if err == nil && kv.hook != nil && kv.ran.CompareAndSwap(false, true) {
		kv.hook()
	}
	return resp, err
}

// TestSignOutDuringARead: a daemon reads a session it does not hold
// (started on another daemon), and the session is signed out right after
// the read, its delete reaching this daemon's watch before the read's
// answer is cached. The cache must not keep the session read before the
// delete: it would stay signed in on this daemon until it expires.
func TestSignOutDuringARead(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := c.Client(t)
	kv := &hookKV{KV: cli.KV}
	cli.KV = kv
	s := daemonStore(t, cli, 5*time.Second)
	other := daemonStore(t, c.Client(t), 5*time.Second)
	ctx := context.Background()
	se := saml.Session{UserName: "ann@contoso.com", NameID: "ann@contoso.com"}
	// s's watch is open once it hears a sign-out.
	if err := s.Add(ctx, "session-0", se, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := other.Delete(ctx, "session-0"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the watch opened", func() bool {
		_, ok, err := s.Get(ctx, "session-0")
		return !ok && err == nil
	})
	// session-2 is in s's cache: once its delete is heard, so is that of
	// session-1, deleted before it.
	if err := s.Add(ctx, "session-2", se, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := other.Add(ctx, "session-1", se, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	kv.hook = func() {
		for _, id := range []string{"session-1", "session-2"} {
			if err := other.Delete(ctx, id); err != nil {
				t.Error(err)
			}
		}
		eventually(t, "the sign-outs reached the daemon", func() bool {
			_, ok, err := s.Get(ctx, "session-2")
			return !ok && err == nil
		})
	}
	// Read before the sign-out: it may say signed in.
	if _, _, err := s.Get(ctx, "session-1"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Get(ctx, "session-1"); ok || err != nil {
		t.Errorf("after the sign-out was heard: signed in %v, %v; want signed out", ok, err)
	}
}

// TestSignOutBeforeTheWatchOpened: a daemon caches a session before its
// watch is open (at start, Run not yet watching), and another daemon signs
// it out before the watch opens: the watch starts after that delete and
// never reports it, so the session must not have been cached.
func TestSignOutBeforeTheWatchOpened(t *testing.T) {
	c := etcdtest.Start(t, 1)
	s := samletcd.New(c.Client(t), "/t/", 5*time.Second, slog.New(slog.DiscardHandler))
	other := daemonStore(t, c.Client(t), 5*time.Second)
	ctx := context.Background()
	se := saml.Session{UserName: "ann@contoso.com", NameID: "ann@contoso.com"}
	if err := s.Add(ctx, "session-1", se, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Get(ctx, "session-1"); !ok || err != nil {
		t.Fatalf("Get = %v, %v; want signed in", ok, err)
	}
	if err := other.Delete(ctx, "session-1"); err != nil {
		t.Fatal(err)
	}
	// Run starts now; once it hears a later sign-out, its watch is open.
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); s.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	if err := other.Add(ctx, "session-2", se, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the watch is open", func() bool {
		if _, ok, err := s.Get(ctx, "session-2"); !ok || err != nil {
			return false // not cached before the watch opened; read until it is
		}
		if err := other.Delete(ctx, "session-2"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if _, ok, _ := s.Get(ctx, "session-2"); !ok {
				return true
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("a sign-out after the watch opened was not heard")
		return false
	})
	if _, ok, err := s.Get(ctx, "session-1"); ok || err != nil {
		t.Errorf("Get(session-1) = %v, %v after its sign-out; want signed out", ok, err)
	}
}
