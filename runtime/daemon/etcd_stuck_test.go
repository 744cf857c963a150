package daemon

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc"

	"github.com/idrecon/idrecon/runtime/internal/etcdtest"
	"github.com/idrecon/idrecon/runtime/internal/testidp"
)

// badKey is a record under the test prefix that no mirror can decode.
const badKey = "/idrecon-test/o/users/bad"

// hideKey keeps key's events from a daemon's watches: that daemon plays
// one that reads the record (say, upgraded, while the other still runs the
// older release), so that only the other one's mirror gets stuck on it.
func hideKey(key string) grpc.DialOption {
	return wrapStreams(func(cs grpc.ClientStream) grpc.ClientStream { return hidingStream{cs, key} })
}

// wrapStreams is a dial option that hands every stream the client opens
// (watches, lease keep-alives) through wrap.
func wrapStreams(wrap func(grpc.ClientStream) grpc.ClientStream) grpc.DialOption {
	return grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
		streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			return nil, err
		}
		return wrap(cs), nil
	})
}

type hidingStream struct {
	grpc.ClientStream
	key string
}

func (s hidingStream) RecvMsg(m any) error {
	if err := s.ClientStream.RecvMsg(m); err != nil {
		return err
	}
	if w, ok := m.(*pb.WatchResponse); ok {
		w.Events = slices.DeleteFunc(w.Events, func(e *mvccpb.Event) bool { return string(e.Kv.Key) == s.key })
	}
	return nil
}

// startReplica starts one daemon on specDir, its state in etcd, and waits
// until it is ready.
func startReplica(t *testing.T, specDir string, endpoints []string, name string, opts ...grpc.DialOption) *running {
	t.Helper()
	d := start(t, Config{SpecDir: specDir, DataDir: t.TempDir(),
		Etcd: &EtcdConfig{Endpoints: endpoints, Prefix: "/idrecon-test/", Name: name, dialOptions: opts}})
	eventually(t, name+" ready", func() bool {
		code, _ := d.call(t, "GET", d.admin+"/readyz", "", nil)
		return code == 200
	})
	return d
}

// stuckPair starts a, which leads, then b, which does not see badKey; then
// writes badKey, and waits until a's status says its mirror is stuck.
func stuckPair(t *testing.T, c *etcdtest.Cluster, specDir string, beforeStuck func(a, b *running)) (a, b *running) {
	t.Helper()
	a = startReplica(t, specDir, c.Endpoints, "stuck-a")
	eventually(t, "a leads", func() bool { return a.status(t).Replication.Leader == "stuck-a" })
	b = startReplica(t, specDir, c.Endpoints, "follower-b", hideKey(badKey))
	if beforeStuck != nil {
		beforeStuck(a, b)
	}
	if _, err := c.Client(t).Put(context.Background(), badKey, "not a record"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a's status says its mirror is stuck", func() bool {
		return strings.Contains(a.status(t).Components["etcd"], "does not campaign for the reconciler lead")
	})
	return a, b
}

// TestStuckReplicaGivesUpTheLead: a leader whose mirror cannot follow etcd
// (a record it cannot decode) keeps its lease renewing but cannot apply;
// it must resign, so that another daemon applies the next spec change,
// and its status must say why it does not lead.
func TestStuckReplicaGivesUpTheLead(t *testing.T) {
	c := etcdtest.Start(t, 1)
	specDir := copyDir(t, "../../examples/entra")
	a, b := stuckPair(t, c, specDir, nil)
	eventually(t, "b leads", func() bool {
		return a.status(t).Replication.Leader == "follower-b" && b.status(t).Replication.Leader == "follower-b"
	})
	write(t, filepath.Join(specDir, "handover.yaml"), "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: handover\nspec:\n  versions: [\"1.0\"]\n")
	for _, d := range []*running{a, b} {
		d.call(t, "POST", d.admin+"/v1/reconcile", adminTok, nil)
	}
	eventually(t, "b applied the change", func() bool {
		code, _ := b.call(t, "GET", b.admin+"/v1/resources/Application/handover", adminTok, nil)
		return code == 200
	})
	if why := a.status(t).Components["etcd"]; !strings.Contains(why, "cannot follow etcd") || !strings.Contains(why, badKey) {
		t.Errorf("a's status does not say why it does not lead: %q", why)
	}
	// Still stuck, a does not campaign again.
	if l := b.status(t).Replication.Leader; l != "follower-b" {
		t.Errorf("leader %q, want follower-b", l)
	}
}

// TestStuckReplicaRefusesAccess: a user disabled (through another daemon)
// after a daemon's mirror got stuck must not sign in or pass its Gateway
// there, whether or not a load balancer drains it by /readyz.
func TestStuckReplicaRefusesAccess(t *testing.T) {
	specDir, key := appBehindAGateway(t)
	c := etcdtest.Start(t, 1)
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(d *running, path string) *http.Response {
		t.Helper()
		resp, err := browser.Get(d.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	var aliceID string
	a, b := stuckPair(t, c, specDir, func(a, b *running) {
		setBaseURL(t, a, specDir, a.base)
		aliceID = provision(t, a, "alice@contoso.com")
		signIn(t, a, browser, key, "/saml/login?returnTo=/app/", "alice@contoso.com", "/app/")
		if resp := get(a, "/app/"); resp.StatusCode != 200 {
			t.Fatalf("signed in, before the mirror got stuck: %d", resp.StatusCode)
		}
	})
	code, body := b.call(t, "PATCH", b.base+"/api/scim/v2/Users/"+aliceID, scimTok, map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []map[string]any{{"op": "replace", "path": "active", "value": false}},
	})
	if code/100 != 2 {
		t.Fatalf("disable through b: %d %s", code, body)
	}
	if resp := get(a, "/app/"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("the Gateway of the stuck daemon: %d, want 503", resp.StatusCode)
	}
	resp, err := browser.Get(a.base + "/saml/login?returnTo=/app/")
	if err != nil {
		t.Fatal(err)
	}
	page := new(strings.Builder)
	io.Copy(page, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(page.String(), "Try again") {
		t.Errorf("sign-in on the stuck daemon: %d Retry-After %q\n%s", resp.StatusCode, resp.Header.Get("Retry-After"), page)
	}
}

// appBehindAGateway starts an application that echoes the user it is
// given, until the test ends, and returns a spec folder with a Gateway to
// it at /app, and the key of its test IdP.
func appBehindAGateway(t *testing.T) (specDir string, key *testidp.Key) {
	t.Helper()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "user="+r.Header.Get("username"))
	}))
	t.Cleanup(app.Close)
	return gatewaySpec(t, map[string]string{"gw.yaml": "apiVersion: idrecon.io/v1alpha1\nkind: Gateway\nmetadata:\n  name: app\nspec:\n" +
		"  upstream: " + app.URL + "\n  pathPrefix: /app\n"})
}
