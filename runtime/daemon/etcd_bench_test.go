package daemon

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/internal/etcdtest"
	"github.com/idrecon/idrecon/runtime/internal/httpload"
	"github.com/idrecon/idrecon/runtime/internal/proxytest"
	"github.com/idrecon/idrecon/runtime/scim/scimload"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/etcdstate"
)

var (
	benchUsers   = flag.Int("etcd-bench-users", 20000, "users of BenchmarkEntraCycleThreeReplicas")
	benchGroups  = flag.Int("etcd-bench-groups", 200, "groups of BenchmarkEntraCycleThreeReplicas")
	benchClients = flag.Int("etcd-bench-clients", 32, "concurrent SCIM clients of BenchmarkEntraCycleThreeReplicas")
	benchTxnOps  = flag.Int("etcd-bench-max-txn-ops", 0, "with a value, the etcd members' --max-txn-ops and the daemons' --etcd-max-txn-ops in BenchmarkEntraCycleThreeReplicas (default: etcd's)")
	benchProfile = flag.String("etcd-bench-cpuprofile", "", "write a CPU profile of the first replica during the first 15 s of BenchmarkEntraCycleThreeReplicas' cycle to this file")
)

// BenchmarkEntraCycleThreeReplicas runs Entra's initial cycle (users, then
// groups of 100 members, then the read-back) as users run it: three
// `idrecon serve --etcd` processes (the binary built from the tree, default
// flags) behind a round-robin nginx (the Debian package), sharing one state
// in a three-member etcd cluster of processes (the client's etcd version,
// fsync on), with the Entra client in this process. Everything shares the
// machine's cores. It reports the cycle's req/s and p99, the CPU each part
// spent per request, the replicas' largest resident memory, the watch lag
// requests waited for, and how long a fourth replica takes to join. Run:
//
//	go test -run '^$' -bench EntraCycleThreeReplicas -benchtime 1x -timeout 30m ./runtime/daemon/
//
// With -etcd-bench-cpuprofile=FILE (after the package) it also profiles
// the first replica through its admin API while the cycle runs.
func BenchmarkEntraCycleThreeReplicas(b *testing.B) {
	var memberFlags, daemonFlags []string
	if *benchTxnOps > 0 {
		memberFlags = []string{fmt.Sprintf("--max-txn-ops=%d", *benchTxnOps)}
		daemonFlags = []string{fmt.Sprintf("--etcd-max-txn-ops=%d", *benchTxnOps)}
	}
	c := etcdtest.StartProcesses(b, 3, memberFlags...)
	bin := buildBinary(b)
	specDir := copyDir(b, "../../examples/entra")
	etcdArgs := append([]string{"--etcd", strings.Join(c.Endpoints, ","), "--etcd-prefix", "/idrecon-bench/"}, daemonFlags...)
	var replicas []*running
	var pids, etcdPids []int
	for range 3 {
		d, pid := startBinary(b, bin, specDir, etcdArgs...)
		replicas, pids = append(replicas, d), append(pids, pid)
	}
	var targets []string
	for _, d := range replicas {
		eventually(b, "replica ready", func() bool {
			code, _ := d.call(b, "GET", d.admin+"/readyz", "", nil)
			return code == 200
		})
		targets = append(targets, d.base)
	}
	lb, lbPid := proxytest.NginxBalance(b, targets)
	etcdPids = c.Pids()
	cpu := func(pids ...int) (d time.Duration) {
		for _, pid := range pids {
			d += httpload.ChildCPU(pid)
		}
		return d
	}
	for range b.N {
		etcd0, reps0, lb0, own0 := cpu(etcdPids...), cpu(pids...), cpu(lbPid), httpload.ProcessCPU()
		profiled := profile(b, replicas[0], *benchProfile)
		res, err := scimload.Run(context.Background(), scimload.Config{
			URL: lb + "/api/scim/v2", Token: scimTok, Users: *benchUsers, Groups: *benchGroups, MembersPerGroup: 100,
			Concurrency: *benchClients, Flag: true, Progress: os.Stderr,
		})
		if err != nil {
			b.Fatal(err)
		}
		res.Print(os.Stderr)
		if res.Errors != 0 || len(res.Problems) != 0 {
			b.Fatalf("%d errors", res.Errors)
		}
		<-profiled
		n := float64(res.Cycle.Count)
		perReq := func(d time.Duration) float64 { return float64(d.Microseconds()) / n }
		b.ReportMetric(res.CycleRPS(), "cycle-req/s")
		b.ReportMetric(float64(res.Cycle.P99.Microseconds())/1000, "cycle-p99-ms")
		// Where the cores went.
		b.ReportMetric(perReq(cpu(etcdPids...)-etcd0), "etcd-cpu-µs/req")
		b.ReportMetric(perReq(cpu(pids...)-reps0), "replicas-cpu-µs/req")
		b.ReportMetric(perReq(cpu(lbPid)-lb0), "nginx-cpu-µs/req")
		b.ReportMetric(perReq(httpload.ProcessCPU()-own0), "client-cpu-µs/req")
	}
	b.StopTimer()
	var rss int64
	for _, pid := range pids {
		rss = max(rss, httpload.ChildRSS(pid))
	}
	b.ReportMetric(float64(rss)/(1<<20), "max-replica-RSS-MiB")
	_, m := replicas[0].call(b, "GET", replicas[0].admin+"/metrics", "", nil)
	b.ReportMetric(histogramQuantile(m, "idrecon_etcd_watch_lag_seconds", 0.99)*1000, "watch-lag-p99-ms")
	printMetrics(m, "idrecon_etcd_")
	_, m = replicas[0].call(b, "GET", c.Endpoints[0]+"/metrics", "", nil)
	printMetrics(m, "etcd_server_proposals_committed_total", `grpc_server_handled_total{grpc_code="OK",grpc_method="Range"`, `grpc_server_handled_total{grpc_code="OK",grpc_method="Txn"`, `grpc_server_handled_total{grpc_code="OK",grpc_method="Put"`)
	started := time.Now()
	d, _ := startBinary(b, bin, specDir, etcdArgs...)
	eventually(b, "joining replica ready", func() bool {
		code, _ := d.call(b, "GET", d.admin+"/readyz", "", nil)
		return code == 200
	})
	b.ReportMetric(time.Since(started).Seconds(), "join-s")
}

// profile writes a 15 s CPU profile of d to path (nothing when path is
// empty), in the background; the channel closes when it is written.
func profile(b *testing.B, d *running, path string) <-chan struct{} {
	done := make(chan struct{})
	if path == "" {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		if err := fetchProfile(d.admin+"/debug/pprof/profile?seconds=15", path); err != nil {
			b.Errorf("profile: %v", err)
		}
	}()
	return done
}

func fetchProfile(url, path string) error {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+adminTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, body)
	}
	return os.WriteFile(path, body, 0o600)
}

// printMetrics writes the lines of a Prometheus text exposition that start
// with one of prefixes (sums and counts of histograms, not their buckets).
func printMetrics(text []byte, prefixes ...string) {
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) && !strings.Contains(line, "_bucket") {
				fmt.Fprintln(os.Stderr, line)
			}
		}
	}
}

// histogramQuantile estimates quantile q of the Prometheus histogram name
// in text as its bucket's upper bound (NaN without observations).
func histogramQuantile(text []byte, name string, q float64) float64 {
	type bucket struct{ le, count float64 }
	var buckets []bucket
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name+`_bucket{le="`)
		if !ok {
			continue
		}
		le, count, _ := strings.Cut(rest, `"} `)
		l, err1 := strconv.ParseFloat(le, 64)
		n, err2 := strconv.ParseFloat(count, 64)
		if err1 == nil && err2 == nil {
			buckets = append(buckets, bucket{l, n})
		}
	}
	if len(buckets) == 0 || buckets[len(buckets)-1].count == 0 {
		return math.NaN()
	}
	total := buckets[len(buckets)-1].count
	for _, bk := range buckets {
		if bk.count >= q*total {
			return bk.le
		}
	}
	return math.Inf(1)
}

// metricValue is the value of an unlabelled metric in a Prometheus text
// exposition, or -1 when it is absent.
func metricValue(exposition, name string) float64 {
	for line := range strings.Lines(exposition) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

var (
	joinUsers   = flag.Int("etcd-join-users", 100000, "users of BenchmarkReplicaJoin")
	joinMembers = flag.Int("etcd-join-members", 100, "members of each of BenchmarkReplicaJoin's 1,000 groups")
)

// joinSettle is how long after joining BenchmarkReplicaJoin measures the
// joiner's resident memory again.
const joinSettle = 5 * time.Second

// BenchmarkReplicaJoin measures what a replica costs to join a large state:
// 100,000 users and 1,000 groups of 100 members (-etcd-join-users and
// -etcd-join-members set others; imported into a
// three-member etcd of processes, as `idrecon migrate` does), one replica
// already serving it, and a second `idrecon serve --etcd` process (default
// flags) started and timed until its /readyz answers 200. It reports that
// time and the joiner's resident memory then and joinSettle later. Run:
//
//	go test -run '^$' -bench ReplicaJoin -benchtime 1x -timeout 30m ./runtime/daemon/
func BenchmarkReplicaJoin(b *testing.B) {
	c := etcdtest.StartProcesses(b, 3)
	bin := buildBinary(b)
	specDir := copyDir(b, "../../examples/entra")
	src, err := store.New(store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	created := time.Unix(1700000000, 0)
	err = src.Update(context.Background(), func(tx *store.Txn) error {
		var ids []string
		for i := range *joinUsers {
			id := fmt.Sprintf("u%07d", i)
			ids = append(ids, id)
			u := &store.User{ID: id, UserName: id + "@contoso.com", ExternalID: "ext-" + id, Active: true, Created: created, Modified: created, Version: 1}
			if err := tx.Insert(store.TableUsers, u); err != nil {
				return err
			}
		}
		for g := range 1000 {
			gid := fmt.Sprintf("g%04d", g)
			if err := tx.Insert(store.TableGroups, &store.Group{ID: gid, DisplayName: "Group " + gid, Created: created, Modified: created, Version: 1}); err != nil {
				return err
			}
			var members []string
			for m := range min(*joinMembers, len(ids)) {
				members = append(members, ids[(g*(*joinMembers)+m)%len(ids)])
			}
			if err := tx.ChangeMembers(gid, members, nil, created); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	cli := c.Client(b)
	state, err := etcdstate.New(etcdstate.Options{Client: cli, Prefix: "/idrecon-bench/"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := state.Import(context.Background(), src.Read()); err != nil {
		b.Fatal(err)
	}
	etcdArgs := []string{"--etcd", strings.Join(c.Endpoints, ","), "--etcd-prefix", "/idrecon-bench/"}
	first, _ := startBinary(b, bin, specDir, etcdArgs...)
	eventually(b, "first replica ready", func() bool {
		code, _ := first.call(b, "GET", first.admin+"/readyz", "", nil)
		return code == 200
	})
	for range b.N {
		started := time.Now()
		d, pid := startBinary(b, bin, specDir, etcdArgs...)
		eventually(b, "joining replica ready", func() bool {
			code, _ := d.call(b, "GET", d.admin+"/readyz", "", nil)
			return code == 200
		})
		b.ReportMetric(time.Since(started).Seconds(), "join-s")
		b.ReportMetric(float64(httpload.ChildRSS(pid))/(1<<20), "joiner-RSS-MiB")
		// And once the daemon returned what the load no longer holds (it
		// does when its allocation rate falls, see gctune.Follow), as
		// idrecon-load's -settle measures a run.
		time.Sleep(joinSettle)
		b.ReportMetric(float64(httpload.ChildRSS(pid))/(1<<20), "joiner-RSS-settled-MiB")
	}
}
