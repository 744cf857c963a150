package daemon

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/idrecon/idrecon/runtime/internal/etcdtest"
)

// cutter stands for the network between one daemon and etcd. Once cut,
// the daemon's calls fail as unreachable, and its streams (the watch, the
// election lease's keep-alives) go silent in both directions; healed, what
// they held goes through.
type cutter struct {
	mu     sync.Mutex
	healed chan struct{} // nil while not cut
}

func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.healed == nil {
		c.healed = make(chan struct{})
	}
}

func (c *cutter) heal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.healed != nil {
		close(c.healed)
		c.healed = nil
	}
}

// wait returns once the network is whole, or ctx ended.
func (c *cutter) wait(ctx context.Context) error {
	c.mu.Lock()
	healed := c.healed
	c.mu.Unlock()
	if healed == nil {
		return nil
	}
	select {
	case <-healed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *cutter) isCut() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.healed != nil
}

func (c *cutter) dialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
			invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			if c.isCut() {
				return status.Error(codes.Unavailable, "cut off from etcd (test)")
			}
			return invoker(ctx, method, req, reply, cc, opts...)
		}),
		wrapStreams(func(cs grpc.ClientStream) grpc.ClientStream { return cutStream{cs, c} }),
	}
}

type cutStream struct {
	grpc.ClientStream
	c *cutter
}

func (s cutStream) SendMsg(m any) error {
	if err := s.c.wait(s.Context()); err != nil {
		return err
	}
	return s.ClientStream.SendMsg(m)
}

func (s cutStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if werr := s.c.wait(s.Context()); werr != nil {
		return werr
	}
	return err
}

// TestCutOffReplicaRefusesAccess: a daemon cut off from etcd while the
// others go on learns of no user disabled through them. Past
// --etcd-max-stale it must refuse its Gateway and sign-ins (503) rather
// than let such a user in for as long as the cut lasts, say so in its
// status, and decide again once it follows etcd.
func TestCutOffReplicaRefusesAccess(t *testing.T) {
	specDir, key := appBehindAGateway(t)
	c := etcdtest.Start(t, 1)
	net := &cutter{}
	defer net.heal() // lets the daemon stop
	const maxStale = 5 * time.Second
	a := start(t, Config{SpecDir: specDir, DataDir: t.TempDir(), Etcd: &EtcdConfig{Endpoints: c.Endpoints, Prefix: "/idrecon-test/",
		Name: "cut-a", MaxStale: maxStale, dialOptions: net.dialOptions()}})
	b := startReplica(t, specDir, c.Endpoints, "whole-b")
	eventually(t, "a ready", func() bool {
		code, _ := a.call(t, "GET", a.admin+"/readyz", "", nil)
		return code == 200
	})
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	app200 := func() int {
		t.Helper()
		resp, err := browser.Get(a.base + "/app/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	setBaseURL(t, a, specDir, a.base)
	aliceID := provision(t, a, "alice@contoso.com")
	signIn(t, a, browser, key, "/saml/login?returnTo=/app/", "alice@contoso.com", "/app/")
	if code := app200(); code != 200 {
		t.Fatalf("signed in, before the cut: %d", code)
	}

	net.cut()
	code, body := b.call(t, "PATCH", b.base+"/api/scim/v2/Users/"+aliceID, scimTok, map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []map[string]any{{"op": "replace", "path": "active", "value": false}},
	})
	if code/100 != 2 {
		t.Fatalf("disable through b: %d %s", code, body)
	}
	var last int
	eventually(t, "a's Gateway refuses", func() bool {
		last = app200()
		if last != 200 && last != http.StatusServiceUnavailable {
			t.Fatalf("the cut-off daemon's Gateway: %d, want 200 (its state) or 503", last)
		}
		return last == http.StatusServiceUnavailable
	})
	resp, err := browser.Get(a.base + "/saml/login?returnTo=/app/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("sign-in on the cut-off daemon: %d Retry-After %q, want 503 with it", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	_, m := a.call(t, "GET", a.admin+"/metrics", "", nil)
	var age float64
	for line := range strings.Lines(string(m)) {
		if v, ok := strings.CutPrefix(line, "idrecon_etcd_mirror_confirmed_age_seconds "); ok {
			age, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if age <= maxStale.Seconds() {
		t.Errorf("idrecon_etcd_mirror_confirmed_age_seconds %v while refusing, want more than %v", age, maxStale.Seconds())
	}
	if why := a.status(t).Components["etcd"]; !strings.Contains(why, "--etcd-max-stale") || !strings.Contains(why, "refuses sign-ins and Gateway access") {
		t.Errorf("a's status does not say why it refuses: %q", why)
	}
	// A load balancer, which reaches the main listener only, drains it.
	if code, body := a.call(t, "GET", a.base+"/readyz", "", nil); code != http.StatusServiceUnavailable || string(body) != "not ready\n" {
		t.Errorf("a's main listener /readyz: %d %q, want 503 and no detail", code, body)
	}

	net.heal()
	eventually(t, "a's Gateway decides again, with alice disabled", func() bool {
		code := app200()
		return code != 200 && code != http.StatusServiceUnavailable
	})
	eventually(t, "a ready again", func() bool {
		code, _ := a.call(t, "GET", a.admin+"/readyz", "", nil)
		main, _ := a.call(t, "GET", a.base+"/readyz", "", nil)
		return code == 200 && main == 200
	})
}
