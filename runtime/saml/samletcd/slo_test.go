package samletcd_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/idrecon/idrecon/runtime/internal/etcdtest"
	"github.com/idrecon/idrecon/runtime/internal/testidp"
	"github.com/idrecon/idrecon/runtime/saml"
	"github.com/idrecon/idrecon/runtime/saml/samletcd"
)

const (
	sloTenant = "5e0c1f2a-3b4d-4c6e-8f90-a1b2c3d4e5f6"
	// sloBaseURL is the one address every daemon is reached by, behind a
	// load balancer.
	sloBaseURL = "https://sso.example.com"
)

// sloDaemon is one daemon's SAML SP, keeping its state in cli's etcd.
type sloDaemon struct {
	ts      *httptest.Server
	mu      sync.Mutex
	results []string
}

func (d *sloDaemon) lastResult() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.results) == 0 {
		return ""
	}
	return d.results[len(d.results)-1]
}

// get asks the daemon for path and returns the status.
func (d *sloDaemon) get(t *testing.T, path string) int {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(d.ts.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func newSLODaemon(t *testing.T, st *samletcd.Store, idpKey *testidp.Key, now func() time.Time) *sloDaemon {
	t.Helper()
	d := &sloDaemon{}
	d.ts = spDaemon(t, st, identityStore(t, idpKey), now, func(r string) { d.mu.Lock(); d.results = append(d.results, r); d.mu.Unlock() })
	return d
}

// TestLogoutRequestReplayAcrossDaemons: a signed LogoutRequest obeyed on
// one daemon is refused as a replay on another sharing the etcd state, as
// an assertion is.
func TestLogoutRequestReplayAcrossDaemons(t *testing.T) {
	now, clock, idpKey := fixedClock(t)
	c := etcdtest.Start(t, 1)
	a := newSLODaemon(t, daemonStore(t, c.Client(t), 5*time.Second), idpKey, clock)
	b := newSLODaemon(t, daemonStore(t, c.Client(t), 5*time.Second), idpKey, clock)
	request := func() string {
		d := testidp.LogoutRequest(sloTenant, sloBaseURL+"/saml/slo", "ann@contoso.com", now)
		q, err := testidp.RedirectQuery("SAMLRequest", d, "", idpKey, false)
		if err != nil {
			t.Fatal(err)
		}
		return "/saml/slo?" + q
	}
	captured := request()
	if got := a.get(t, captured); got != http.StatusFound || a.lastResult() != "logout" {
		t.Fatalf("first daemon: status %d result %q, want the LogoutRequest obeyed", got, a.lastResult())
	}
	if got := b.get(t, request()); got != http.StatusFound || b.lastResult() != "logout" {
		t.Fatalf("second daemon, a fresh LogoutRequest: status %d result %q, want it obeyed", got, b.lastResult())
	}
	if got := b.get(t, captured); got != http.StatusForbidden || b.lastResult() != saml.CodeReplay {
		t.Fatalf("second daemon, the replayed LogoutRequest: status %d result %q, want 403 %q", got, b.lastResult(), saml.CodeReplay)
	}
	if got := a.get(t, captured); got != http.StatusForbidden || a.lastResult() != saml.CodeReplay {
		t.Fatalf("first daemon, the replayed LogoutRequest: status %d result %q, want 403 %q", got, a.lastResult(), saml.CodeReplay)
	}
}

// TestIDPLogoutAppliesOnEveryDaemon: an IdP LogoutRequest applies to the
// assertions for its user issued before it (SAML core §3.7.3.2). Taken by
// one daemon, it must be known to the others: an assertion issued before
// it, delivered to another daemon after it, must not sign the user in
// there. The user's next assertion does, and of two logouts recorded out
// of order the later one stays.
func TestIDPLogoutAppliesOnEveryDaemon(t *testing.T) {
	now, clock, idpKey := fixedClock(t)
	c := etcdtest.Start(t, 1)
	a := newSLODaemon(t, daemonStore(t, c.Client(t), 5*time.Second), idpKey, clock)
	b := newSLODaemon(t, daemonStore(t, c.Client(t), 5*time.Second), idpKey, clock)
	post := func(d *sloDaemon, issued time.Time) int {
		t.Helper()
		resp, _ := postAssertion(t, d.ts, idpKey, issued)
		return resp.StatusCode
	}
	logout := func(d *sloDaemon, issued time.Time) {
		t.Helper()
		q, err := testidp.RedirectQuery("SAMLRequest", testidp.LogoutRequest(sloTenant, sloBaseURL+"/saml/slo", "ANN@contoso.com", issued), "", idpKey, false)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.get(t, "/saml/slo?"+q); got != http.StatusFound || d.lastResult() != "logout" {
			t.Fatalf("LogoutRequest issued at %v: status %d result %q, want it obeyed", issued, got, d.lastResult())
		}
	}
	logout(a, now.Add(-time.Second))
	logout(b, now.Add(-3*time.Second)) // arrives later, issued earlier
	if got := post(b, now.Add(-2*time.Second)); got != http.StatusForbidden || b.lastResult() != saml.CodeLoggedOut {
		t.Errorf("an assertion issued before the logout another daemon took: status %d result %q, want 403 %q", got, b.lastResult(), saml.CodeLoggedOut)
	}
	if got := post(b, now); got != http.StatusSeeOther {
		t.Errorf("the user's assertion issued after the logout: status %d result %q, want signed in", got, b.lastResult())
	}
}

// countingKV counts the keys etcd returns to reads, by Get and in
// transactions.
type countingKV struct {
	clientv3.KV
	keys atomic.Int64
}

func (c *countingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	resp, err := c.KV.Get(ctx, key, opts...)
	if err == nil {
		c.keys.Add(int64(len(resp.Kvs)))
	}
	return resp, err
}

func (c *countingKV) Txn(ctx context.Context) clientv3.Txn {
	return &countingTxn{Txn: c.KV.Txn(ctx), c: c}
}

type countingTxn struct {
	clientv3.Txn
	c *countingKV
}

func (t *countingTxn) If(cs ...clientv3.Cmp) clientv3.Txn   { t.Txn = t.Txn.If(cs...); return t }
func (t *countingTxn) Then(ops ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Then(ops...); return t }
func (t *countingTxn) Else(ops ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Else(ops...); return t }
func (t *countingTxn) Commit() (*clientv3.TxnResponse, error) {
	resp, err := t.Txn.Commit()
	if err == nil {
		for _, r := range resp.Responses {
			t.c.keys.Add(int64(len(r.GetResponseRange().GetKvs())))
		}
	}
	return resp, err
}

// TestDeleteNameIDReadsItsSessions: an IdP-initiated logout reads the
// sessions listed under its nameID, not every session of the cluster, and
// ends each of them whatever the case of the nameID; while sessions stored
// by a release that did not list them may live, it reads them all.
func TestDeleteNameIDReadsItsSessions(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.Start(t, 1)
	cli := c.Client(t)
	now := time.Now()
	add := func(st *samletcd.Store, id, user, nameID string) {
		t.Helper()
		if err := st.Add(ctx, id, saml.Session{UserName: user, NameID: nameID}, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	// A session as a release before the listing stored it.
	older := fmt.Sprintf(`{"u":"ann@contoso.com","n":"ann@contoso.com","e":%d}`, now.Add(time.Hour).Unix())
	if _, err := cli.Put(ctx, sessionKey("older"), older); err != nil {
		t.Fatal(err)
	}
	counting := &countingKV{KV: cli.KV}
	cli.KV = counting
	st := samletcd.New(cli, "/t/", 5*time.Second, slog.New(slog.DiscardHandler))
	for i := range 300 {
		add(st, fmt.Sprintf("other-%d", i), fmt.Sprintf("user%d@contoso.com", i), fmt.Sprintf("user%d@contoso.com", i))
	}
	add(st, "ann-1", "ann@contoso.com", "ann@contoso.com")
	add(st, "ann-2", "ann@contoso.com", "ANN@Contoso.com")
	add(st, "ann-3", "ann.smith@contoso.com", "ann@contoso.com") // userName from an attribute

	before := counting.keys.Load()
	n, err := st.DeleteNameID(ctx, "Ann@contoso.com")
	if err != nil || n != 3 {
		t.Fatalf("DeleteNameID: %d, %v; want the 3 listed sessions", n, err)
	}
	if read := counting.keys.Load() - before; read > 2*3 {
		t.Errorf("DeleteNameID read %d keys for 3 sessions among 300", read)
	}
	for _, id := range []string{"ann-1", "ann-2", "ann-3"} {
		if _, ok, _ := st.Get(ctx, id); ok {
			t.Errorf("session %s outlived the logout", id)
		}
	}
	if _, ok, _ := st.Get(ctx, "other-7"); !ok {
		t.Error("another user's session ended")
	}

	// Within the window of the sessions stored before: every one is read.
	if _, err := st.UntaggedSessionsUntil(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := st.DeleteNameID(ctx, "ann@contoso.com"); err != nil || n != 1 {
		t.Fatalf("DeleteNameID within the window: %d, %v; want the older session", n, err)
	}
	if rec := storedRecord(t, cli, "older"); rec != nil {
		t.Errorf("the older session outlived the logout: %v", rec)
	}
}
