package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/internal/etcdtest"
)

// TestCrashChild is the daemon process of TestKill9LosesNothingAcknowledged.
// It only runs when that test starts it.
func TestCrashChild(t *testing.T) {
	if os.Getenv("IDRECON_CRASH_CHILD") != "1" {
		t.Skip("helper process for TestKill9LosesNothingAcknowledged")
	}
	cfg := Config{
		SpecDir: os.Getenv("IDRECON_SPEC"), DataDir: os.Getenv("IDRECON_DATA"),
		AdminToken: adminTok, InsecureHTTP: true, Interval: time.Hour,
		Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0",
		Logger:  slog.New(slog.DiscardHandler),
		Started: func(a, adm string) { fmt.Printf("LISTEN %s %s\n", a, adm) },
	}
	if e := os.Getenv("IDRECON_ETCD"); e != "" {
		cfg.Etcd = &EtcdConfig{Endpoints: strings.Split(e, ","), Prefix: "/idrecon-test/"}
	}
	err := Run(context.Background(), cfg)
	t.Fatalf("daemon returned: %v", err)
}

type child struct {
	cmd  *exec.Cmd
	base string   // its SCIM base URL
	d    *running // its listeners, for the daemon tests' helpers
}

func startChild(t *testing.T, specDir, dataDir string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
	cmd.Env = append(append(os.Environ(), "IDRECON_CRASH_CHILD=1", "IDRECON_SPEC="+specDir, "IDRECON_DATA="+dataDir), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "LISTEN "); ok {
				lines <- addr
			}
		}
		io.Copy(io.Discard, out)
	}()
	select {
	case addrs := <-lines:
		addr, adm, _ := strings.Cut(addrs, " ")
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return &child{cmd: cmd, base: "http://" + addr + "/api/scim/v2", d: &running{base: "http://" + addr, admin: "http://" + adm}}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("child daemon did not start")
	}
	return nil
}

type outcome struct {
	user, member bool // acknowledged with 2xx
	id           string
}

// TestKill9LosesNothingAcknowledged runs the daemon as a real process, drives
// concurrent SCIM writes (a user, then its addition to a group), kills it with
// SIGKILL at random moments, restarts it on the same data dir, and checks that
// every write answered with 2xx is there, whole.
func TestKill9LosesNothingAcknowledged(t *testing.T) {
	specDir := copyDir(t, "../../examples/entra")
	dataDir := t.TempDir()
	kill9Rounds(t, 20, func() *child { return startChild(t, specDir, dataDir) }, func(c *child) string { return c.base })
}

// TestKill9ReplicaLosesNothing: the same with the state in etcd; what the
// killed daemon acknowledged is read back through another daemon.
func TestKill9ReplicaLosesNothing(t *testing.T) {
	c := etcdtest.Start(t, 3)
	specDir := copyDir(t, "../../examples/entra")
	other := replicasWith(t, specDir, c.Endpoints, 1)[0]
	env := "IDRECON_ETCD=" + strings.Join(c.Endpoints, ",")
	kill9Rounds(t, 8, func() *child { return startChild(t, specDir, t.TempDir(), env) },
		func(*child) string { return other.base + "/api/scim/v2" })
}

// kill9Rounds runs concurrent SCIM writes (a user, then its addition to a
// group) against a daemon process, kills it with SIGKILL at a random
// moment, starts a new one and checks through readBase that every write
// answered with 2xx is there, whole.
func kill9Rounds(t *testing.T, rounds int, startWriter func() *child, readBase func(*child) string) {
	workers := 8
	if testing.Short() {
		rounds = 3
	}
	client := &http.Client{Timeout: 5 * time.Second}
	send := func(method, url, body string) (int, []byte, error) {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+scimTok)
		req.Header.Set("Content-Type", "application/scim+json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}

	c := startWriter()
	code, b, err := send("POST", c.base+"/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"crash-test","externalId":"g"}`)
	if err != nil || code != 201 {
		t.Fatalf("create group: %d %s %v", code, b, err)
	}
	var group struct{ ID string }
	json.Unmarshal(b, &group)

	results := map[string]*outcome{}
	var mu sync.Mutex
	acked := 0
	for round := range rounds {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					name := fmt.Sprintf("r%d-w%d-%d@crash.example", round, w, i)
					o := &outcome{}
					mu.Lock()
					results[name] = o
					mu.Unlock()
					code, b, err := send("POST", c.base+"/Users", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":%q,"externalId":%q,"active":true}`, name, name))
					if err != nil || code != 201 {
						return // the daemon is gone
					}
					var u struct{ ID string }
					json.Unmarshal(b, &u)
					mu.Lock()
					o.user, o.id = true, u.ID
					mu.Unlock()
					code, _, err = send("PATCH", c.base+"/Groups/"+group.ID, fmt.Sprintf(
						`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":%q}]}]}`, u.ID))
					if err != nil || code/100 != 2 {
						return
					}
					mu.Lock()
					o.member = true
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(50+rand.IntN(250)) * time.Millisecond)
		c.cmd.Process.Signal(syscall.SIGKILL)
		c.cmd.Wait()
		close(stop)
		wg.Wait()

		c = startWriter()
		base := readBase(c)
		code, b, err := send("GET", base+"/Groups/"+group.ID, "")
		if err != nil || code != 200 {
			t.Fatalf("round %d: group lost: %d %v", round, code, err)
		}
		members := map[string]bool{}
		var g struct{ Members []struct{ Value string } }
		json.Unmarshal(b, &g)
		for _, m := range g.Members {
			members[m.Value] = true
		}
		mu.Lock()
		for name, o := range results {
			code, b, err := send("GET", base+`/Users?filter=userName+eq+"`+name+`"`, "")
			if err != nil || code != 200 {
				t.Fatalf("round %d: lookup %s: %d %v", round, name, code, err)
			}
			var list struct {
				TotalResults int
				Resources    []struct{ ID, ExternalID string }
			}
			json.Unmarshal(b, &list)
			switch {
			case o.user && list.TotalResults != 1:
				t.Fatalf("round %d: acknowledged user %s lost", round, name)
			case list.TotalResults == 1 && list.Resources[0].ExternalID != name:
				t.Fatalf("round %d: user %s stored half: %+v", round, name, list.Resources[0])
			case o.member && !members[o.id]:
				t.Fatalf("round %d: acknowledged membership of %s lost", round, name)
			}
			if o.user {
				acked++
			}
		}
		results = map[string]*outcome{}
		mu.Unlock()
	}
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
	t.Logf("%d rounds, %d acknowledged users checked after kill -9", rounds, acked)
}

// TestLeaderKilledOrPausedDuringApply: the daemon applying a spec change is
// killed with SIGKILL at a random moment of the apply, and, in a second
// round, frozen with SIGSTOP past its lease and woken again. Each time
// another daemon applies the change within the lease, the change is there
// whole, and no document of it was written twice (each one's etcd key has
// version 1): the woken daemon, whose leadership lapsed, applies nothing.
func TestLeaderKilledOrPausedDuringApply(t *testing.T) {
	c := etcdtest.Start(t, 3)
	cli := c.Client(t)
	specDir := copyDir(t, "../../examples/entra")
	env := "IDRECON_ETCD=" + strings.Join(c.Endpoints, ",")
	spawn := func() *child {
		ch := startChild(t, specDir, t.TempDir(), env)
		eventually(t, "replica ready", func() bool {
			code, _ := ch.d.call(t, "GET", ch.d.admin+"/readyz", "", nil)
			return code == 200
		})
		return ch
	}
	// leader waits until the live daemons agree on one of them.
	leader := func(live ...*child) (l *child) {
		t.Helper()
		eventually(t, "one leader, named by every live daemon", func() bool {
			l = nil
			for _, ch := range live {
				st := ch.d.status(t).Replication
				if st.Leader == "" || st.Leader != live[0].d.status(t).Replication.Leader {
					return false
				}
				if st.Leader == st.Replica {
					l = ch
				}
			}
			return l != nil
		})
		return l
	}
	// change writes n new Applications in one file: one apply, one etcd
	// transaction.
	change := func(name string, n int) []string {
		var doc strings.Builder
		var apps []string
		for i := range n {
			app := fmt.Sprintf("%s-%02d", name, i)
			apps = append(apps, app)
			fmt.Fprintf(&doc, "---\n"+appDoc, app)
		}
		write(t, filepath.Join(specDir, name+".yaml"), doc.String())
		return apps
	}
	// appliedOnce checks, through d and in etcd, that every app is there
	// and was written once.
	appliedOnce := func(d *running, apps []string) {
		t.Helper()
		eventually(t, "the change applied by the new leader", func() bool {
			code, _ := d.call(t, "GET", d.admin+"/v1/resources/Application/"+apps[len(apps)-1], adminTok, nil)
			return code == 200
		})
		for _, app := range apps {
			resp, err := cli.Get(context.Background(), "/idrecon-test/o/resources/Application/"+app)
			if err != nil || len(resp.Kvs) != 1 {
				t.Fatalf("%s: %v %v", app, resp, err)
			}
			if v := resp.Kvs[0].Version; v != 1 {
				t.Errorf("%s was written %d times", app, v)
			}
		}
	}

	a, b := spawn(), spawn()
	first := leader(a, b)
	survivor := a
	if first == a {
		survivor = b
	}
	apps := change("killed", 40)
	time.Sleep(time.Duration(rand.IntN(60)) * time.Millisecond) // the folder watch's debounce and the apply
	first.cmd.Process.Signal(syscall.SIGKILL)
	first.cmd.Wait()
	appliedOnce(survivor.d, apps)
	if leader(survivor) != survivor {
		t.Fatal("the survivor does not lead")
	}

	third := spawn()
	paused := survivor
	apps = change("paused", 40)
	paused.cmd.Process.Signal(syscall.SIGSTOP)
	appliedOnce(third.d, apps) // within the 5 s lease of the frozen leader
	paused.cmd.Process.Signal(syscall.SIGCONT)
	if l := leader(paused, third); l != third {
		t.Error("the woken daemon took the lead back")
	}
	appliedOnce(paused.d, apps)
}
