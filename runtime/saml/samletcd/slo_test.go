package samletcd_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

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
