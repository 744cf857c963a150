package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/idrecon/idrecon/reconcile/source"
	"github.com/idrecon/idrecon/runtime/admin"
	"github.com/idrecon/idrecon/runtime/internal/etcdtest"
	"github.com/idrecon/idrecon/runtime/internal/testidp"
	"github.com/idrecon/idrecon/runtime/scim/scimload"
	"github.com/idrecon/idrecon/spec"
)

// roundRobin sends each request to the next of targets, as a load balancer
// without session affinity does.
func roundRobin(t testing.TB, targets []string) *httptest.Server {
	t.Helper()
	var next atomic.Uint64
	urls := make([]*url.URL, len(targets))
	for i, s := range targets {
		urls[i], _ = url.Parse(s)
	}
	lb := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(urls[next.Add(1)%uint64(len(urls))])
		pr.Out.Host = pr.In.Host
	}})
	t.Cleanup(lb.Close)
	return lb
}

// replicas starts n daemons on the example spec, their state in cluster c
// under one prefix.
func replicas(t *testing.T, c *etcdtest.Cluster, n int) []*running {
	return replicasOn(t, c.Endpoints, n)
}

func replicasOn(t *testing.T, endpoints []string, n int) []*running {
	return replicasWith(t, copyDir(t, "../../examples/entra"), endpoints, n)
}

var replicaSeq atomic.Int64

// replicasWith starts n daemons on specDir, their state in etcd.
func replicasWith(t *testing.T, specDir string, endpoints []string, n int) []*running {
	t.Helper()
	var out []*running
	for range n {
		// In one process the default names (host and pid) would repeat.
		out = append(out, start(t, Config{SpecDir: specDir, DataDir: t.TempDir(),
			Etcd: &EtcdConfig{Endpoints: endpoints, Prefix: "/idrecon-test/", Name: fmt.Sprintf("replica-%d", replicaSeq.Add(1))}}))
	}
	// As a load balancer does: send nothing to a daemon before it is ready
	// (a follower is once the leader's first apply reached its mirror).
	for i, d := range out {
		eventually(t, fmt.Sprintf("replica %d ready", i), func() bool {
			code, _ := d.call(t, "GET", d.admin+"/readyz", "", nil)
			return code == 200
		})
	}
	return out
}

// TestEntraCycleThroughThreeReplicas: Entra's provisioning cycle (users,
// groups, members, then updates, disables and deletes) through a
// round-robin balancer in front of three daemons sharing one state in
// etcd: a user created on one daemon is added to a group on the next, and
// the read-back, spread over all three, finds everything.
func TestEntraCycleThroughThreeReplicas(t *testing.T) {
	c := etcdtest.Start(t, 3)
	ds := replicas(t, c, 3)
	var targets []string
	for _, d := range ds {
		targets = append(targets, d.base)
	}
	lb := roundRobin(t, targets)
	res, err := scimload.Run(context.Background(), scimload.Config{
		URL: lb.URL + "/api/scim/v2", Token: scimTok, Users: 150, Groups: 6, MembersPerGroup: 30,
		Concurrency: 8, UpdateEvery: 10, DisableEvery: 20, DeleteEvery: 50, Flag: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || len(res.Problems) != 0 {
		var b strings.Builder
		res.Print(&b)
		t.Fatalf("cycle through three replicas:\n%s", b.String())
	}
	// Every replica holds the same users, answered from its own mirror.
	counts := map[int]bool{}
	for _, d := range ds {
		code, body := d.call(t, "GET", d.base+"/api/scim/v2/Users?count=1", scimTok, nil)
		var list struct{ TotalResults int }
		if err := json.Unmarshal(body, &list); code != 200 || err != nil {
			t.Fatalf("list users: %d %s", code, body)
		}
		counts[list.TotalResults] = true
	}
	if len(counts) != 1 || counts[0] {
		t.Errorf("replicas disagree on the user count (or hold none): %v", counts)
	}
}

// TestReplicaRestartKeepsState: a write on one replica is read at once on
// another, its name is taken there too, and a daemon restarted with no disk
// of its own finds everything in etcd; readyz checks etcd.
func TestReplicaRestartKeepsState(t *testing.T) {
	sharedStateAndRestart(t, etcdtest.Start(t, 3).Endpoints)
}

// TestPackagedEtcd runs the same against the Debian package's etcd, an
// independent and older build than the client.
func TestPackagedEtcd(t *testing.T) {
	sharedStateAndRestart(t, etcdtest.StartPackaged(t, 1).Endpoints)
}

func sharedStateAndRestart(t *testing.T, endpoints []string) {
	ds := replicasOn(t, endpoints, 2)
	code, body := ds[0].call(t, "POST", ds[0].base+"/api/scim/v2/Users", scimTok, map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": "ann@contoso.com", "active": true})
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	var ann struct{ ID string }
	json.Unmarshal(body, &ann)
	// Read at once through the other replica: the barrier makes it wait.
	if code, body := ds[1].call(t, "GET", ds[1].base+"/api/scim/v2/Users/"+ann.ID, scimTok, nil); code != 200 {
		t.Fatalf("read on the other replica: %d %s", code, body)
	}
	// The same name on the other replica is taken.
	if code, body := ds[1].call(t, "POST", ds[1].base+"/api/scim/v2/Users", scimTok, map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": "ANN@contoso.com", "active": true}); code != http.StatusConflict {
		t.Errorf("same name on the other replica: %d %s", code, body)
	}
	if err := ds[0].stop(); err != nil {
		t.Fatal(err)
	}
	again := replicasOn(t, endpoints, 1)[0]
	if code, body := again.call(t, "GET", again.base+"/api/scim/v2/Users/"+ann.ID, scimTok, nil); code != 200 {
		t.Fatalf("read after restart: %d %s", code, body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := again.call(t, "GET", again.admin+"/readyz?verbose", "", nil)
		if code == 200 && strings.Contains(string(body), "etcd") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz: %d %s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSignInAcrossReplicas: behind a balancer without affinity, a sign-in
// started on one daemon ends on another, the session works on every daemon
// (here through the Gateway) and outlives the daemon that made it, the
// assertion cannot be used again on the other, and signing out on one ends
// the session on all.
func TestSignInAcrossReplicas(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "user="+r.Header.Get("username"))
	}))
	defer app.Close()
	specDir, key := gatewaySpec(t, map[string]string{"gw.yaml": "apiVersion: idrecon.io/v1alpha1\nkind: Gateway\nmetadata:\n  name: app\nspec:\n" +
		"  upstream: " + app.URL + "\n  pathPrefix: /app\n"})
	endpoints := etcdtest.Start(t, 3).Endpoints
	ds := replicasWith(t, specDir, endpoints, 2)
	lb := roundRobin(t, []string{ds[0].base, ds[1].base})
	setBaseURL(t, ds[0], specDir, lb.URL)
	ds[1].call(t, "POST", ds[1].admin+"/v1/reconcile", adminTok, nil)
	provision(t, ds[0], "alice@contoso.com")

	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	// The sign-in starts on replica 0.
	resp, err := (&http.Client{CheckRedirect: noRedirect}).Get(ds[0].base + "/saml/login?returnTo=/app/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	pending := resp.Cookies()
	idpURL, _ := url.Parse(resp.Header.Get("Location"))
	raw, err := testidp.Inflate(idpURL.Query().Get("SAMLRequest"))
	if err != nil {
		t.Fatalf("login: %d: %v", resp.StatusCode, err)
	}
	doc := etree.NewDocument()
	doc.ReadFromBytes(raw)
	samlResp, err := testidp.Response(testidp.ResponseOptions{
		Now: time.Now(), Tenant: gwTenant, Recipient: lb.URL + "/saml/acs", Audiences: []string{lb.URL + "/saml/metadata"},
		InResponseTo: doc.Root().SelectAttrValue("ID", ""), NameID: "alice@contoso.com", Key: key, SignAssertion: true,
		Attributes: []testidp.Attr{{Name: testidp.ClaimName, Values: []string{"alice@contoso.com"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	encoded, _ := testidp.Encode(samlResp)
	acs := func(d *running) *http.Response {
		t.Helper()
		form := url.Values{"SAMLResponse": {encoded}, "RelayState": {idpURL.Query().Get("RelayState")}}
		req, _ := http.NewRequest("POST", d.base+"/saml/acs", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for _, c := range pending {
			req.AddCookie(c)
		}
		resp, err := (&http.Client{CheckRedirect: noRedirect}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// ... and ends on replica 1.
	resp = acs(ds[1])
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("ACS on the other replica: %d\n%s", resp.StatusCode, ds[1].logs)
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if strings.HasPrefix(c.Name, "idrecon_session") {
			session = c
		}
	}
	if session == nil {
		t.Fatal("no session cookie")
	}
	// The same assertion, with the same pending sign-in, on replica 0.
	if resp := acs(ds[0]); resp.StatusCode != http.StatusForbidden {
		t.Errorf("assertion replayed on the other replica: %d, want 403", resp.StatusCode)
	}
	get := func(d *running) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", d.base+"/app/", nil)
		req.AddCookie(session)
		resp, err := (&http.Client{CheckRedirect: noRedirect}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for i, d := range ds {
		if code, body := get(d); code != 200 || body != "user=alice@contoso.com" {
			t.Errorf("replica %d: %d %q", i, code, body)
		}
	}
	// The session outlives the daemon that made it: replica 1 stops, and
	// one started in its place, with nothing cached, finds it in etcd.
	if err := ds[1].stop(); err != nil {
		t.Fatal(err)
	}
	ds[1] = replicasWith(t, specDir, endpoints, 1)[0]
	if code, body := get(ds[1]); code != 200 || body != "user=alice@contoso.com" {
		t.Errorf("after the replica that made the session restarted: %d %q", code, body)
	}
	// Signing out on replica 0 ends the session on replica 1, whose cache held it.
	req, _ := http.NewRequest("POST", ds[0].base+"/saml/logout", nil)
	req.AddCookie(session)
	if resp, err := (&http.Client{CheckRedirect: noRedirect}).Do(req); err != nil || resp.StatusCode/100 != 3 && resp.StatusCode != 200 {
		t.Fatalf("logout: %v %v", resp, err)
	}
	eventually(t, "the session ended on the other replica", func() bool {
		code, _ := get(ds[1])
		return code == http.StatusFound
	})
}

// TestReconcileLeaderHandsOver: of three daemons one applies the spec and
// all name it in status; when its lease ends (revoked here, as when it is
// cut off or paused past the TTL) another takes over and applies the next
// change.
func TestReconcileLeaderHandsOver(t *testing.T) {
	c := etcdtest.Start(t, 3)
	specDir := copyDir(t, "../../examples/entra")
	ds := replicasWith(t, specDir, c.Endpoints, 3)
	leaderOf := func() string {
		seen := map[string]bool{}
		for _, d := range ds {
			st := d.status(t)
			if st.Replication == nil {
				t.Fatal("status has no replication")
			}
			seen[st.Replication.Leader] = true
		}
		if len(seen) != 1 {
			return ""
		}
		for l := range seen {
			return l
		}
		return ""
	}
	var first string
	eventually(t, "one leader named by all", func() bool { first = leaderOf(); return first != "" })
	leaders, leader := 0, -1
	for i, d := range ds {
		_, m := d.call(t, "GET", d.admin+"/metrics", "", nil)
		if strings.Contains(string(m), "\nidrecon_etcd_reconcile_leader 1\n") {
			leaders++
			leader = i
		}
		for _, want := range []string{"idrecon_etcd_mirror_revision ", "idrecon_etcd_commit_duration_seconds_count", "idrecon_etcd_watch_lag_seconds_bucket", "idrecon_etcd_mirror_confirmed_age_seconds "} {
			if !strings.Contains(string(m), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	}
	if leaders != 1 {
		t.Errorf("%d daemons report idrecon_etcd_reconcile_leader 1, want 1", leaders)
	}

	cli := c.Client(t)
	resp, err := cli.Get(context.Background(), "/idrecon-test/reconcile-leader/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatalf("election keys: %v %v", resp, err)
	}
	if _, err := cli.Revoke(context.Background(), clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	var second string
	eventually(t, "another leader", func() bool { second = leaderOf(); return second != "" && second != first })
	// Every daemon keeps its election lease alive (followers campaign on
	// theirs), and the one whose lease was revoked counts the lapse.
	for i, d := range ds {
		wantLapses := 0.0
		if i == leader {
			wantLapses = 1
		}
		eventually(t, fmt.Sprintf("replica %d's lease metrics", i), func() bool {
			_, m := d.call(t, "GET", d.admin+"/metrics", "", nil)
			return metricValue(string(m), "idrecon_etcd_lease_renewals_total") > 0 &&
				metricValue(string(m), "idrecon_etcd_leader_lease_lapses_total") == wantLapses
		})
	}

	write(t, filepath.Join(specDir, "handover.yaml"), "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: handover\nspec:\n  versions: [\"1.0\"]\n")
	for _, d := range ds {
		d.call(t, "POST", d.admin+"/v1/reconcile", adminTok, nil) // only the leader's loop acts on it
	}
	for i, d := range ds {
		eventually(t, fmt.Sprintf("replica %d holds what the new leader applied", i), func() bool {
			code, _ := d.call(t, "GET", d.admin+"/v1/resources/Application/handover", adminTok, nil)
			return code == 200
		})
	}
}

// TestQuorumLost: with two of three etcd members killed, a SCIM write is
// answered 503 with Retry-After within the etcd timeout (Entra retries),
// readyz says etcd is not ready, signed-in state is not lost; when the
// members return, the retried write succeeds and reads back everywhere.
func TestQuorumLost(t *testing.T) {
	c := etcdtest.Start(t, 3)
	ds := replicas(t, c, 2)
	user := func(name string) map[string]any {
		return map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": name, "active": true}
	}
	if code, body := ds[0].call(t, "POST", ds[0].base+"/api/scim/v2/Users", scimTok, user("before@contoso.com")); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	t0 := time.Now()
	c.Kill(1)
	c.Kill(2)
	t.Logf("members stopped in %s", time.Since(t0).Round(time.Millisecond))
	start := time.Now()
	req, _ := http.NewRequest("POST", ds[0].base+"/api/scim/v2/Users", strings.NewReader(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"during@contoso.com","active":true}`))
	req.Header.Set("Authorization", "Bearer "+scimTok)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"status":"503"`) {
		t.Errorf("write without quorum: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	t.Logf("answered %d after %s without quorum", resp.StatusCode, time.Since(start).Round(time.Millisecond))
	t1 := time.Now()
	defer func() { t.Logf("readyz %s", time.Since(t1)) }()
	if code, body := ds[1].call(t, "GET", ds[1].admin+"/readyz?verbose", "", nil); code == 200 || !strings.Contains(string(body), "etcd") {
		t.Errorf("readyz without quorum: %d %s", code, body)
	}

	c.Restart(t, 1)
	c.Restart(t, 2)
	restarted := time.Now()
	defer func() {
		t.Logf("recovered %s after the members restarted", time.Since(restarted).Round(time.Millisecond))
	}()
	eventually(t, "the retried write succeeds", func() bool {
		code, _ := ds[1].call(t, "POST", ds[1].base+"/api/scim/v2/Users", scimTok, user("during@contoso.com"))
		return code == 201 || code == http.StatusConflict // 409: an earlier attempt committed after all
	})
	for i, d := range ds {
		code, body := d.call(t, "GET", d.base+`/api/scim/v2/Users?filter=userName%20eq%20%22during@contoso.com%22`, scimTok, nil)
		if code != 200 || !strings.Contains(string(body), `"totalResults":1`) {
			t.Errorf("replica %d after recovery: %d %s", i, code, body)
		}
	}
}

// TestMigrateToEtcd: a single daemon's data dir, moved into etcd with
// Migrate, is what daemons on etcd then serve.
func TestMigrateToEtcd(t *testing.T) {
	specDir := copyDir(t, "../../examples/entra")
	dataDir := t.TempDir()
	single := start(t, Config{SpecDir: specDir, DataDir: dataDir})
	code, body := single.call(t, "POST", single.base+"/api/scim/v2/Users", scimTok, map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": "moved@contoso.com", "active": true})
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	var u struct{ ID string }
	json.Unmarshal(body, &u)
	if err := single.stop(); err != nil {
		t.Fatal(err)
	}
	c := etcdtest.Start(t, 1)
	stats, err := Migrate(context.Background(), dataDir, &EtcdConfig{Endpoints: c.Endpoints, Prefix: "/idrecon-test/"})
	if err != nil || stats.Users != 1 || stats.Resources == 0 {
		t.Fatalf("migrate: %+v %v", stats, err)
	}
	d := replicasWith(t, specDir, c.Endpoints, 1)[0]
	if code, body := d.call(t, "GET", d.base+"/api/scim/v2/Users/"+u.ID, scimTok, nil); code != 200 {
		t.Fatalf("after migrate: %d %s", code, body)
	}
	if _, err := Migrate(context.Background(), dataDir, &EtcdConfig{Endpoints: c.Endpoints, Prefix: "/idrecon-test/"}); err == nil {
		t.Error("a second migrate into the same prefix was not refused")
	}
}

// TestOneMemberDown: kill -9 of one member of a three-process etcd cluster
// (the Debian package's) under SCIM writes through two daemons. A follower
// lost costs no client anything. The leader lost costs an election, during
// which no write can commit: requests that cannot finish within the etcd
// timeout answer 503 with Retry-After (Entra retries), and none fails
// otherwise.
func TestOneMemberDown(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pick     func(*etcdtest.Cluster) int
		allow503 bool
	}{
		{"follower", func(c *etcdtest.Cluster) int { return (c.Leader(t) + 1) % 3 }, false},
		{"leader", func(c *etcdtest.Cluster) int { return c.Leader(t) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := etcdtest.StartPackaged(t, 3)
			ds := replicas(t, c, 2)
			var ok, unavailable, other atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						d := ds[i%2]
						code, _ := d.call(t, "POST", d.base+"/api/scim/v2/Users", scimTok, map[string]any{
							"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": fmt.Sprintf("w%d-%d@contoso.com", w, i), "active": true})
						switch code {
						case 201:
							ok.Add(1)
						case 503:
							unavailable.Add(1)
						default:
							other.Add(1)
						}
					}
				}()
			}
			time.Sleep(300 * time.Millisecond)
			killed := tc.pick(c)
			c.KillProcess(killed)
			time.Sleep(3 * time.Second)
			close(stop)
			wg.Wait()
			// Nothing failed, but the cluster is one loss from its
			// quorum: status says which member is gone.
			eventually(t, "status names the member gone", func() bool {
				st := ds[0].status(t).Replication
				return st != nil && slices.Equal(st.Unreachable, []string{c.Endpoints[killed]})
			})
			t.Logf("%s killed: %d created, %d answered 503, %d other", tc.name, ok.Load(), unavailable.Load(), other.Load())
			if other.Load() != 0 || (!tc.allow503 && unavailable.Load() != 0) {
				t.Errorf("%d writes failed (%d with 503)", other.Load()+unavailable.Load(), unavailable.Load())
			}
			if ok.Load() == 0 {
				t.Error("no write succeeded")
			}
		})
	}
}

// TestReconcileRequestReachesTheLeader: behind a load balancer, a webhook
// or `idrecon reconcile` reaches any daemon; one that does not lead passes
// the request to the leader, which applies the new commit at once (the
// poll interval here is an hour).
func TestReconcileRequestReachesTheLeader(t *testing.T) {
	c := etcdtest.Start(t, 1)
	url, commit := gitSpecRepo(t)
	var ds []*running
	for i := range 2 {
		ds = append(ds, start(t, Config{Git: &source.GitOptions{URL: url, Branch: "master", Path: "entra"}, DataDir: t.TempDir(), Interval: time.Hour,
			Etcd: &EtcdConfig{Endpoints: c.Endpoints, Prefix: "/idrecon-test/", Name: fmt.Sprintf("request-%d", i)}}))
	}
	var follower *running
	eventually(t, "a leader named", func() bool {
		for _, d := range ds {
			st := d.status(t).Replication
			if st.Leader != "" && st.Leader != st.Replica {
				follower = d
				return true
			}
		}
		return false
	})
	commit("requested.yaml", fmt.Sprintf(appDoc, "requested"))
	if code, body := follower.call(t, "POST", follower.admin+"/v1/reconcile", adminTok, nil); code/100 != 2 {
		t.Fatalf("reconcile on the follower: %d %s", code, body)
	}
	for i, d := range ds {
		eventually(t, fmt.Sprintf("replica %d holds the requested commit", i), func() bool {
			code, _ := d.call(t, "GET", d.admin+"/v1/resources/Application/requested", adminTok, nil)
			return code == 200
		})
	}
}

// TestEtcdOutOfSpace: etcd at its space quota refuses writes (the NOSPACE
// alarm). A SCIM write then answers 503 with Retry-After at once (not after
// sending the transaction again), nothing of it is kept, and once an
// operator freed the space (deleted, compacted, defragmented, disarmed)
// writes succeed again.
func TestEtcdOutOfSpace(t *testing.T) {
	c := etcdtest.StartWith(t, 1, func(cfg *embed.Config) { cfg.QuotaBackendBytes = 16 << 20 })
	cli := c.Client(t)
	specDir := copyDir(t, "../../examples/entra")
	d := replicasWith(t, specDir, c.Endpoints, 1)[0]
	provision(t, d, "before@contoso.com")
	filler := strings.Repeat("x", 1<<20)
	for i := 0; ; i++ {
		if i == 64 {
			t.Fatal("etcd took 64 MiB under a 16 MiB quota")
		}
		_, err := cli.Put(context.Background(), fmt.Sprintf("/filler/%d", i), filler)
		if errors.Is(rpctypes.Error(err), rpctypes.ErrNoSpace) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	body := map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": "during@contoso.com", "active": true}
	req, _ := json.Marshal(body)
	hreq, _ := http.NewRequest("POST", d.base+"/api/scim/v2/Users", bytes.NewReader(req))
	hreq.Header.Set("Authorization", "Bearer "+scimTok)
	hreq.Header.Set("Content-Type", "application/scim+json")
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("create while etcd is out of space: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if code, _ := d.call(t, "GET", d.base+`/api/scim/v2/Users?filter=userName+eq+"before@contoso.com"`, scimTok, nil); code != 200 {
		t.Errorf("a read while etcd is out of space: %d, want 200", code)
	}

	// What an operator does (etcd's documented recovery).
	ctx := context.Background()
	if _, err := cli.Delete(ctx, "/filler/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	st, err := cli.Status(ctx, c.Endpoints[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, st.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Defragment(ctx, c.Endpoints[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.AlarmDisarm(ctx, &clientv3.AlarmMember{}); err != nil {
		t.Fatal(err)
	}
	code, b := d.call(t, "GET", d.base+`/api/scim/v2/Users?filter=userName+eq+"during@contoso.com"`, scimTok, nil)
	if code != 200 || !strings.Contains(string(b), `"totalResults":0`) {
		t.Errorf("the refused create left something: %d %s", code, b)
	}
	provision(t, d, "after@contoso.com")
}

// TestBackupRestoreToEtcd: a backup taken from a daemon on etcd (GET
// /v1/backup, the same format as a single daemon's) restored into an empty
// prefix is what daemons started on that prefix serve.
func TestBackupRestoreToEtcd(t *testing.T) {
	c := etcdtest.Start(t, 1)
	specDir := copyDir(t, "../../examples/entra")
	d := replicasWith(t, specDir, c.Endpoints, 1)[0]
	id := provision(t, d, "kept@contoso.com")
	code, backup := d.call(t, "GET", d.admin+"/v1/backup", adminTok, nil)
	if code != 200 {
		t.Fatalf("backup: %d", code)
	}
	stats, err := RestoreToEtcd(context.Background(), bytes.NewReader(backup), &EtcdConfig{Endpoints: c.Endpoints, Prefix: "/restored/"})
	if err != nil || stats.Users != 1 {
		t.Fatalf("restore: %+v %v", stats, err)
	}
	r := start(t, Config{SpecDir: specDir, DataDir: t.TempDir(), Etcd: &EtcdConfig{Endpoints: c.Endpoints, Prefix: "/restored/", Name: "restored"}})
	eventually(t, "the restored daemon ready", func() bool {
		code, _ := r.call(t, "GET", r.admin+"/readyz", "", nil)
		return code == 200
	})
	if code, body := r.call(t, "GET", r.base+"/api/scim/v2/Users/"+id, scimTok, nil); code != 200 {
		t.Fatalf("the restored user: %d %s", code, body)
	}
	if _, err := RestoreToEtcd(context.Background(), bytes.NewReader(backup), &EtcdConfig{Endpoints: c.Endpoints, Prefix: "/restored/"}); err == nil {
		t.Error("a restore into a prefix that holds a state was not refused")
	}
}

// TestSuspendReachesTheLeader: `idrecon suspend` through a load balancer
// may reach a daemon that does not lead; the flag is in the shared state,
// so the leader stops applying (a new spec document stays out) until a
// resume, sent to that daemon again, lets it apply.
func TestSuspendReachesTheLeader(t *testing.T) {
	c := etcdtest.Start(t, 1)
	specDir := copyDir(t, "../../examples/entra")
	ds := replicasWith(t, specDir, c.Endpoints, 2)
	follower, leader := suspendedThroughTheFollower(t, ds)
	write(t, filepath.Join(specDir, "while-suspended.yaml"), fmt.Sprintf(appDoc, "while-suspended"))
	leader.call(t, "POST", leader.admin+"/v1/reconcile", adminTok, nil)
	eventually(t, "the leader saw the new revision", func() bool {
		st := leader.status(t)
		return st.SeenRevision != st.AppliedRevision
	})
	if code, _ := leader.call(t, "GET", leader.admin+"/v1/resources/Application/while-suspended", adminTok, nil); code != 404 {
		t.Fatalf("a suspended leader applied: %d", code)
	}
	if code, body := follower.call(t, "POST", follower.admin+"/v1/resume", adminTok, nil); code != 200 {
		t.Fatalf("resume: %d %s", code, body)
	}
	eventually(t, "applied after the resume", func() bool {
		code, _ := leader.call(t, "GET", leader.admin+"/v1/resources/Application/while-suspended", adminTok, nil)
		return code == 200
	})
}

// suspendedThroughTheFollower waits for one of the two daemons ds to lead,
// suspends reconciling through the other, and returns them once the
// leader is suspended.
func suspendedThroughTheFollower(t *testing.T, ds []*running) (follower, leader *running) {
	t.Helper()
	eventually(t, "a leader named", func() bool {
		for i, d := range ds {
			st := d.status(t).Replication
			if st.Leader != "" && st.Leader != st.Replica {
				follower, leader = d, ds[1-i]
				return true
			}
		}
		return false
	})
	if code, body := follower.call(t, "POST", follower.admin+"/v1/suspend", adminTok, nil); code != 200 {
		t.Fatalf("suspend: %d %s", code, body)
	}
	eventually(t, "the leader suspended", func() bool { return leader.status(t).Suspended })
	return follower, leader
}

// TestRequestNumbersAcrossReplicas: POST /v1/resume and /v1/reconcile, at
// any daemon, answer with a request number (an etcd revision) that the
// status of every daemon reaches only once a reconcile that began after
// the request has ended at the leader: one that saw the resume and the
// spec as it was when the request was made, so the status shows that spec
// applied. `idrecon resume --wait` and `reconcile --wait` rely on it.
func TestRequestNumbersAcrossReplicas(t *testing.T) {
	c := etcdtest.Start(t, 1)
	specDir := copyDir(t, "../../examples/entra")
	ds := replicasWith(t, specDir, c.Endpoints, 2)
	follower, leader := suspendedThroughTheFollower(t, ds)
	steps := []struct {
		name, app, path string
		via             *running
	}{
		{"resume at the follower", "while-suspended", "/v1/resume", follower},
		{"reconcile at the follower", "at-the-follower", "/v1/reconcile", follower},
		{"reconcile at the leader", "at-the-leader", "/v1/reconcile", leader},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			write(t, filepath.Join(specDir, s.app+".yaml"), fmt.Sprintf(appDoc, s.app))
			want := folderRevision(t, specDir)
			code, body := s.via.call(t, "POST", s.via.admin+s.path, adminTok, nil)
			var req struct{ Request uint64 }
			if err := json.Unmarshal(body, &req); code/100 != 2 || err != nil || req.Request == 0 {
				t.Fatalf("POST %s: %d %s, want a request number", s.path, code, body)
			}
			for i, d := range ds {
				var st admin.StatusResponse
				eventually(t, fmt.Sprintf("replica %d's status answering request %d", i, req.Request), func() bool {
					st = d.status(t)
					return st.Request >= req.Request
				})
				if st.LastResult != "ok" || st.AppliedContent != want || st.Suspended {
					t.Errorf("replica %d: the reconcile answering request %d: result %q, applied %s, suspended %v; want ok, %s applied",
						i, req.Request, st.LastResult, st.AppliedContent, st.Suspended, want)
				}
			}
		})
	}
}

// folderRevision is the content revision of the spec in dir.
func folderRevision(t *testing.T, dir string) string {
	t.Helper()
	set, err := spec.Load(context.Background(), dir, spec.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return set.Revision
}

// TestLargeSpecChangeOnEtcd: one spec revision's changes go to etcd in one
// transaction, so a change of more documents than etcd's --max-txn-ops is
// refused whole, with the limit named; raised on the cluster and on the
// daemon, the same change applies.
func TestLargeSpecChangeOnEtcd(t *testing.T) {
	c := etcdtest.StartWith(t, 1, func(cfg *embed.Config) { cfg.MaxTxnOps = 1024 })
	var apps strings.Builder
	for i := range 200 {
		fmt.Fprintf(&apps, "---\napiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: app%03d\nspec:\n  versions: [\"1.0\"]\n", i)
	}
	for _, tc := range []struct {
		name      string
		maxTxnOps int
		applies   bool
	}{
		{"the daemon at etcd's default", 0, false},
		{"raised on both", 1024, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			specDir := copyDir(t, "../../examples/entra")
			write(t, filepath.Join(specDir, "apps-200.yaml"), apps.String())
			d := start(t, Config{SpecDir: specDir, DataDir: t.TempDir(), Etcd: &EtcdConfig{Endpoints: c.Endpoints,
				Prefix: "/" + strings.ReplaceAll(tc.name, " ", "-") + "/", MaxTxnOps: tc.maxTxnOps}})
			eventually(t, "the first reconcile", func() bool { return d.status(t).LastResult != "" })
			st := d.status(t)
			if tc.applies {
				if st.LastResult != "ok" {
					t.Fatalf("status %q: %s", st.LastResult, st.LastError)
				}
				if code, _ := d.call(t, "GET", d.admin+"/v1/resources/Application/app199", adminTok, nil); code != 200 {
					t.Errorf("app199: %d, want applied", code)
				}
				return
			}
			if st.LastResult != "refused" || !strings.Contains(st.LastError, "--max-txn-ops") {
				t.Errorf("status %q, error %q; want refused, naming --max-txn-ops", st.LastResult, st.LastError)
			}
		})
	}
}
