package daemon

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/internal/etcdtest"
	"github.com/idrecon/idrecon/runtime/internal/httpload"
	"github.com/idrecon/idrecon/runtime/scim/scimload"
)

var (
	benchUsers  = flag.Int("etcd-bench-users", 20000, "users of BenchmarkEntraCycleThreeReplicas")
	benchGroups = flag.Int("etcd-bench-groups", 200, "groups of BenchmarkEntraCycleThreeReplicas")
)

// BenchmarkEntraCycleThreeReplicas runs Entra's initial cycle (users, then
// groups of 100 members, then the read-back) through a round-robin
// balancer (in this process) in front of three daemons (in this process)
// sharing one state in a three-process etcd cluster of the Debian package
// (fsync on, as in production). Everything shares the machine's cores. It
// reports the cycle's req/s, its p99, the daemons' heap, and the time a
// fourth daemon takes to load the state and start serving. Run:
//
//	go test -run '^$' -bench EntraCycleThreeReplicas -benchtime 1x -timeout 30m ./runtime/daemon/
func BenchmarkEntraCycleThreeReplicas(b *testing.B) {
	c := etcdtest.StartPackaged(b, 3)
	specDir := copyDir(b, "../../examples/entra")
	var ds []*running
	for i := range 3 {
		ds = append(ds, start(b, Config{SpecDir: specDir, DataDir: b.TempDir(),
			Etcd: &EtcdConfig{Endpoints: c.Endpoints, Prefix: "/idrecon-bench/", Name: "bench-" + string(rune('a'+i))}}))
	}
	var targets []string
	for _, d := range ds {
		eventually(b, "replica ready", func() bool {
			code, _ := d.call(b, "GET", d.admin+"/readyz", "", nil)
			return code == 200
		})
		targets = append(targets, d.base)
	}
	lb := roundRobin(b, targets)
	etcdCPU := func() (d time.Duration) {
		for _, pid := range c.Pids() {
			d += httpload.ChildCPU(pid)
		}
		return d
	}
	for range b.N {
		etcd0, own0 := etcdCPU(), httpload.ProcessCPU()
		res, err := scimload.Run(context.Background(), scimload.Config{
			URL: lb.URL + "/api/scim/v2", Token: scimTok, Users: *benchUsers, Groups: *benchGroups, MembersPerGroup: 100,
			Concurrency: 32, Flag: true, Progress: os.Stderr,
		})
		if err != nil {
			b.Fatal(err)
		}
		res.Print(os.Stderr)
		if res.Errors != 0 || len(res.Problems) != 0 {
			b.Fatalf("%d errors", res.Errors)
		}
		b.ReportMetric(res.CycleRPS(), "cycle-req/s")
		b.ReportMetric(float64(res.Cycle.P99.Microseconds())/1000, "cycle-p99-ms")
		// Where the cores went: the three etcd processes, and this process
		// (three daemons, the balancer and the Entra client).
		n := float64(res.Cycle.Count)
		b.ReportMetric(float64((etcdCPU()-etcd0).Microseconds())/n, "etcd-cpu-µs/req")
		b.ReportMetric(float64((httpload.ProcessCPU()-own0).Microseconds())/n, "daemons+client-cpu-µs/req")
	}
	b.StopTimer()
	_, m := ds[0].call(b, "GET", ds[0].admin+"/metrics", "", nil)
	for _, line := range strings.Split(string(m), "\n") {
		if strings.HasPrefix(line, "idrecon_etcd_") && (strings.Contains(line, "_sum") || strings.Contains(line, "_count") || strings.Contains(line, "stale")) {
			fmt.Fprintln(os.Stderr, line)
		}
	}
	// What etcd did for the cycle: raft proposals and the calls a member answered.
	_, m = ds[0].call(b, "GET", c.Endpoints[0]+"/metrics", "", nil)
	for _, line := range strings.Split(string(m), "\n") {
		if strings.HasPrefix(line, "etcd_server_proposals_committed_total") || strings.HasPrefix(line, "etcd_debugging_mvcc_") && strings.Contains(line, "_total") ||
			strings.HasPrefix(line, "grpc_server_handled_total") && (strings.Contains(line, `"Range"`) || strings.Contains(line, `"Txn"`) || strings.Contains(line, `"Put"`)) {
			fmt.Fprintln(os.Stderr, line)
		}
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/3/(1<<20), "heap-MiB/replica")
	started := time.Now()
	start(b, Config{SpecDir: specDir, DataDir: b.TempDir(), Etcd: &EtcdConfig{Endpoints: c.Endpoints, Prefix: "/idrecon-bench/", Name: "bench-joiner"}})
	b.ReportMetric(time.Since(started).Seconds(), "join-s")
}
