package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/gateway"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// world is a real store written the way SCIM and the reconciler write it.
type world struct {
	t  testing.TB
	st *store.Store
}

func newWorld(t testing.TB) *world {
	t.Helper()
	st, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w := &world{t: t, st: st}
	for name, r := range spec.BuiltinRoles {
		w.resource(spec.KindRole, name, &r)
	}
	return w
}

func (w *world) update(fn func(*store.Txn) error) {
	w.t.Helper()
	if err := w.st.Update(context.Background(), fn); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) resource(kind, name string, s any) {
	w.t.Helper()
	w.update(func(tx *store.Txn) error {
		return tx.Insert(store.TableResources, &store.Resource{Kind: kind, Name: name, Spec: s, Revision: "r1", ModifiedBy: "reconcile"})
	})
}

func (w *world) user(id, name string, active bool) {
	w.t.Helper()
	w.update(func(tx *store.Txn) error {
		return tx.Insert(store.TableUsers, &store.User{ID: id, UserName: name, Active: active})
	})
}

func (w *world) assign(name, user string, roles []string, versions ...string) {
	w.t.Helper()
	a := &spec.AccessAssignment{Roles: roles, ApplicationVersions: versions}
	a.Subject.User = user
	w.resource(spec.KindAccessAssignment, name, a)
}

func (w *world) assignGroup(name, group string, roles []string, versions ...string) {
	w.t.Helper()
	a := &spec.AccessAssignment{Roles: roles, ApplicationVersions: versions}
	a.Subject.Group = group
	w.resource(spec.KindAccessAssignment, name, a)
}

func (w *world) unassign(name string) {
	w.t.Helper()
	w.update(func(tx *store.Txn) error {
		_, err := tx.DeleteAll(store.TableResources, store.IndexID, spec.KindAccessAssignment, name)
		return err
	})
}

func (w *world) deleteUser(id string) {
	w.t.Helper()
	w.update(func(tx *store.Txn) error {
		_, err := tx.DeleteAll(store.TableUsers, store.IndexID, id)
		return err
	})
}

// TestAccessCheckedOnEveryRequest: with the StoreDecider on a real store, a
// change in Entra or the spec takes effect on the very next request, in
// both modes.
func TestAccessCheckedOnEveryRequest(t *testing.T) {
	w := newWorld(t)
	w.resource(spec.KindApplication, "ledger", &spec.Application{Versions: []string{"1"}})
	w.user("u1", "Ann@contoso.com", true)
	w.assign("ann", "ann@contoso.com", []string{"Developer"}, "ledger/1")
	up, _ := echoUpstream(t)
	sess := cookieSessions{"tok-ann": "ann@contoso.com"}
	g, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL, VersionsHeader: "X-Versions"},
		gateway.Deps{Sessions: sess, Decider: gateway.StoreDecider{Store: w.st}})

	check := func(step string, wantStatus int) {
		t.Helper()
		resp := do(t, "GET", srv.URL+"/x", "tok-ann", nil)
		if resp.StatusCode != wantStatus {
			t.Errorf("%s: proxy status %d, want %d", step, resp.StatusCode, wantStatus)
		} else if wantStatus == http.StatusOK {
			got := decodeSeen(t, resp)
			if u, v := got.Header.Get("Username"), got.Header.Get("X-Versions"); u != "Ann@contoso.com" || v != "ledger/1" {
				t.Errorf("%s: upstream saw username %q versions %q", step, u, v)
			}
		}
		if resp := do(t, "GET", srv.URL+gateway.VerifyPath, "tok-ann", nil); resp.StatusCode != wantStatus {
			t.Errorf("%s: verify status %d, want %d", step, resp.StatusCode, wantStatus)
		}
	}
	check("entitled", http.StatusOK)
	w.user("u1", "Ann@contoso.com", false)
	check("disabled by Entra", http.StatusForbidden)
	w.user("u1", "Ann@contoso.com", true)
	check("enabled again", http.StatusOK)
	w.unassign("ann")
	check("last role removed", http.StatusForbidden)
	w.assign("ann", "ann@contoso.com", []string{"Developer"}, "ledger/1")
	check("role back", http.StatusOK)
	w.deleteUser("u1")
	check("deleted by Entra", http.StatusForbidden)

	want := map[string]uint64{gateway.ReasonDisabled: 2, gateway.ReasonNoRole: 2, gateway.ReasonUnknownUser: 2}
	got := g.Stats().Refusals
	for r, n := range want {
		if got[r] != n {
			t.Errorf("refusals %v, want %v", got, want)
			break
		}
	}
}

func TestRequiredRole(t *testing.T) {
	w := newWorld(t)
	w.user("u1", "ann", true)
	w.user("u2", "bob", true)
	w.assign("ann", "ann", []string{"Developer"})
	w.assign("bob", "bob", []string{"Developer", "Security Lead"})
	sess := cookieSessions{"tok-ann": "ann", "tok-bob": "bob"}
	_, srv := newFrontDoor(t, gateway.Config{RequiredRole: "Security Lead", RolesHeader: "X-Roles"},
		gateway.Deps{Sessions: sess, Decider: gateway.StoreDecider{Store: w.st}})
	if resp := do(t, "GET", srv.URL+gateway.VerifyPath, "tok-ann", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("ann without the role: status %d, want 403", resp.StatusCode)
	}
	resp := do(t, "GET", srv.URL+gateway.VerifyPath, "tok-bob", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Roles") != "Developer, Security Lead" {
		t.Errorf("bob: status %d roles %q", resp.StatusCode, resp.Header.Get("X-Roles"))
	}
}

// TestOpenConnectionsCutWhenAccessEnds: a WebSocket is one request, so the
// Gateway decides it again while it stays open. A user who keeps access
// keeps the connection; one disabled by Entra (or whose session ended)
// loses it within a recheck or two, and the cut is counted.
func TestOpenConnectionsCutWhenAccessEnds(t *testing.T) {
	w := newWorld(t)
	w.user("u1", "ann", true)
	w.user("u2", "bob", true)
	w.assign("ann", "ann", []string{"Developer"})
	w.assign("bob", "bob", []string{"Developer"})
	up := lineEchoSocket(t)
	sess := cookieSessions{"tok-ann": "ann", "tok-bob": "bob"}
	const recheck = 20 * time.Millisecond
	g, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL},
		gateway.Deps{Sessions: sess, Decider: gateway.StoreDecider{Store: w.st}, Recheck: recheck})

	open := func(token string) (net.Conn, *bufio.Reader) {
		t.Helper()
		conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(30 * time.Second)) // a hang fails rather than blocks the run
		fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nCookie: idrecon_session=%s\r\n\r\n", token)
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("%s: upgrade: %v %v", token, resp, err)
		}
		return conn, br
	}
	annConn, annR := open("tok-ann")
	bobConn, bobR := open("tok-bob")
	time.Sleep(5 * recheck) // several rechecks pass with access unchanged
	if err := pingEcho(annConn, annR); err != nil {
		t.Fatalf("ann's connection, access unchanged: %v", err)
	}

	w.user("u1", "ann", false) // disabled by Entra
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := pingEcho(annConn, annR); err != nil {
			break // cut
		}
		if time.Now().After(deadline) {
			t.Fatal("ann's connection still open 10s after she was disabled")
		}
		time.Sleep(recheck)
	}
	if err := pingEcho(bobConn, bobR); err != nil {
		t.Errorf("bob's connection, access unchanged: %v", err)
	}
	if n := g.Stats().Cut; n != 1 {
		t.Errorf("Stats().Cut = %d, want 1", n)
	}
}

// TestOpenConnectionsCutWhileAccessCannotBeChecked: a daemon whose state
// can no longer be trusted (its etcd mirror stuck, or cut off past
// --etcd-max-stale) answers every decision with an error, and refuses new
// requests with 503. Its open WebSockets must not outlast that: a user
// disabled through the other daemons would keep one for as long as the
// outage lasts. One failed recheck is let pass, so a blip cuts nobody.
func TestOpenConnectionsCutWhileAccessCannotBeChecked(t *testing.T) {
	up := lineEchoSocket(t)
	var failing atomic.Int64 // rechecks still to fail; <0 fails every one
	var calls atomic.Int64
	dec := gateway.DeciderFunc(func(ctx context.Context, name string) (gateway.Access, error) {
		calls.Add(1)
		if n := failing.Load(); n < 0 || n > 0 && failing.CompareAndSwap(n, n-1) {
			return gateway.Access{}, errDecider
		}
		return people.Access(ctx, name)
	})
	const recheck = 20 * time.Millisecond
	g, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL}, gateway.Deps{Decider: dec, Recheck: recheck})
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second)) // a hang fails rather than blocks the run
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nCookie: idrecon_session=tok-ann\r\n\r\n")
	br := bufio.NewReader(conn)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	// waitCalls returns once the decider has been asked n more times: the
	// recheck before the last has then been acted on.
	waitCalls := func(n int64) {
		t.Helper()
		want := calls.Load() + n
		deadline := time.Now().Add(10 * time.Second)
		for calls.Load() < want {
			if time.Now().After(deadline) {
				t.Fatalf("decider asked %d times, want %d", calls.Load(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}

	failing.Store(1) // one recheck fails, the next succeed
	waitCalls(3)
	if err := pingEcho(conn, br); err != nil {
		t.Fatalf("connection cut by one failed recheck: %v", err)
	}
	if n := g.Stats().Cut; n != 0 {
		t.Errorf("Stats().Cut = %d after one failed recheck, want 0", n)
	}

	failing.Store(-1) // access cannot be checked any more
	deadline := time.Now().Add(10 * time.Second)
	for pingEcho(conn, br) == nil {
		if time.Now().After(deadline) {
			t.Fatal("connection still open 10s after access could no longer be checked")
		}
		time.Sleep(recheck)
	}
	if n := g.Stats().Cut; n != 1 {
		t.Errorf("Stats().Cut = %d, want 1", n)
	}
}

// TestCloseEndsOpenConnections: the daemon replaces a Gateway when its
// document changes (a requiredRole added, the upstream moved, the Gateway
// deleted) and closes the old one. A WebSocket the old one opened must not
// stay open under the old rules: it is rechecked by the old Gateway only,
// so Close ends it.
func TestCloseEndsOpenConnections(t *testing.T) {
	up := lineEchoSocket(t)
	const recheck = 20 * time.Millisecond
	g, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL}, gateway.Deps{Recheck: recheck})
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nCookie: idrecon_session=tok-ann\r\n\r\n")
	br := bufio.NewReader(conn)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	if err := pingEcho(conn, br); err != nil {
		t.Fatalf("before Close: %v", err)
	}
	g.Close()
	deadline := time.Now().Add(10 * time.Second)
	for pingEcho(conn, br) == nil {
		if time.Now().After(deadline) {
			t.Fatal("connection still open 10s after its Gateway was closed")
		}
		time.Sleep(recheck)
	}
}

// lineEchoSocket is an upstream that upgrades every request to a WebSocket
// and echoes each line it reads, prefixed "echo: ".
func lineEchoSocket(t *testing.T) *httptest.Server {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(rw).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		buf.Flush()
		for {
			line, err := buf.ReadString('\n')
			if err != nil {
				return
			}
			buf.WriteString("echo: " + line)
			buf.Flush()
		}
	}))
	t.Cleanup(up.Close)
	return up
}

// pingEcho sends a line on a connection to lineEchoSocket and checks it
// comes back.
func pingEcho(conn net.Conn, br *bufio.Reader) error {
	if _, err := io.WriteString(conn, "ping\n"); err != nil {
		return err
	}
	line, err := br.ReadString('\n')
	if err == nil && line != "echo: ping\n" {
		err = fmt.Errorf("read %q", line)
	}
	return err
}
