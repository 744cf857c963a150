package samletcd_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/idrecon/idrecon/runtime/internal/etcdtest"
	"github.com/idrecon/idrecon/runtime/internal/testidp"
)

// afterLogoutReadKV runs hook once, after the first read of a logout
// record that etcd answered.
type afterLogoutReadKV struct {
	clientv3.KV
	ran  atomic.Bool
	hook func()
}

func (kv *afterLogoutReadKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	resp, err := kv.KV.Get(ctx, key, opts...)
	if err == nil && strings.HasPrefix(key, "/t/saml/logout/") && kv.ran.CompareAndSwap(false, true) {
		kv.hook()
	}
	return resp, err
}

// TestIDPLogoutDuringASignIn: an IdP LogoutRequest taken by one daemon
// while another is between checking the user's logout record and storing
// the session of an assertion issued before it. The logout applies to that
// assertion (SAML core §3.7.3.2), so the session must not outlive it:
// stored after DeleteNameID read the user's sessions, it stayed signed in
// until the ACS checked the logouts again once it had stored it.
func TestIDPLogoutDuringASignIn(t *testing.T) {
	now, clock, idpKey := fixedClock(t)
	c := etcdtest.Start(t, 1)
	a := newSLODaemon(t, daemonStore(t, c.Client(t), 5*time.Second), idpKey, clock)
	cli := c.Client(t)
	kv := &afterLogoutReadKV{KV: cli.KV}
	cli.KV = kv
	b := newSLODaemon(t, daemonStore(t, cli, 5*time.Second), idpKey, clock)
	kv.hook = func() {
		q, err := testidp.RedirectQuery("SAMLRequest", testidp.LogoutRequest(sloTenant, sloBaseURL+"/saml/slo", "ann@contoso.com", now.Add(-time.Second)), "", idpKey, false)
		if err != nil {
			t.Error(err)
			return
		}
		if got := a.get(t, "/saml/slo?"+q); got != http.StatusFound || a.lastResult() != "logout" {
			t.Errorf("LogoutRequest: status %d result %q, want it obeyed", got, a.lastResult())
		}
	}
	resp, _ := postAssertion(t, b.ts, idpKey, now.Add(-2*time.Second))
	var session string
	for _, ck := range resp.Cookies() {
		if ck.Name == "idrecon_session" && ck.Value != "" {
			session = ck.Value
		}
	}
	if !kv.ran.Load() {
		t.Fatal("the sign-in never read the logout record")
	}
	if session != "" && signedIn(t, b.ts, session) {
		t.Errorf("an assertion issued before an IdP logout taken during its sign-in is signed in (status %d)", resp.StatusCode)
	}
}
