package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/audit"
	"github.com/idrecon/idrecon/runtime/gateway"
)

// TestRequestsPerUserBound: a user with MaxRequestsPerUser requests in
// flight (held open by the application, as WebSockets and streams are) gets
// a 429 for the next one, which never reaches the application, is counted
// and audited; another user is served meanwhile; and the user is served
// again once a request ends.
func TestRequestsPerUserBound(t *testing.T) {
	arrived := make(chan struct{}, 8)
	release := make(chan struct{})
	var hits atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/hold" {
			arrived <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	t.Cleanup(upstream.Close)
	entitled := gateway.DeciderFunc(func(_ context.Context, name string) (gateway.Access, error) {
		return gateway.Access{UserName: name, Active: true, Roles: []string{"Developer"}}, nil
	})
	var trail audit.Memory
	g, srv := newFrontDoor(t, gateway.Config{Upstream: upstream.URL, MaxRequestsPerUser: 2}, gateway.Deps{
		Name: "appsec", Audit: &trail, Decider: entitled,
		Sessions: cookieSessions{"tok-ann": "ann", "tok-cy": "cy"},
	})

	var held sync.WaitGroup
	for range 2 {
		held.Go(func() {
			// A client of its own each: the two hold a connection apiece.
			client := &http.Client{Transport: &http.Transport{}}
			resp := doWith(t, client, "GET", srv.URL+"/hold", "tok-ann", nil)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("held request: %d", resp.StatusCode)
			}
		})
	}
	for range 2 {
		select {
		case <-arrived:
		case <-time.After(30 * time.Second):
			t.Fatal("the held requests did not reach the application")
		}
	}

	before := hits.Load()
	resp := do(t, "GET", srv.URL+"/other", "tok-ann", nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third request of a user with two in flight: %d, Retry-After %q; want 429 with Retry-After",
			resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if hits.Load() != before {
		t.Fatal("the refused request reached the application")
	}
	if resp := do(t, "GET", srv.URL+"/other", "tok-cy", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("another user meanwhile: %d, want 200", resp.StatusCode)
	}
	if n := g.Stats().Refusals[gateway.ReasonTooMany]; n != 1 {
		t.Errorf("refusals counted as %s: %d, want 1", gateway.ReasonTooMany, n)
	}
	want := []audit.Event{audit.GatewayRefusal{Gateway: "appsec", User: "ann", Reason: gateway.ReasonTooMany}}
	if got := trail.Events(); !slices.Equal(got, want) {
		t.Errorf("audit events %v, want %v", got, want)
	}

	close(release)
	held.Wait()
	// The held requests' tracking ends just after their answers: poll.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp := do(t, "GET", srv.URL+"/other", "tok-ann", nil)
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the held requests ended: %d, want 200", resp.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
