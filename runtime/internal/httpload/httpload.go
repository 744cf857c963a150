// Package httpload drives benchmark load over loopback HTTP with keep-alive
// and reports what a client sees: requests per second, p99 latency and,
// where the OS tells, CPU per request. The gateway's in-process benchmarks
// and the daemon's own-process one share it so their figures compare.
package httpload

import (
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// ClientsPerCore is how many requests are in flight per GOMAXPROCS: more
// than the cores, as behind a real front door, so no core idles while a
// client waits for its answer.
const ClientsPerCore = 8

// Run sends b.N requests made by newReq from ClientsPerCore×GOMAXPROCS
// goroutines and fails
// b on any answer other than want. It reports req/s, p99-µs and
// cpu-µs/op (this process's CPU per request: client, and whatever else
// runs in it, together). With server > 0, the process id of the server
// under load, it also reports server-cpu-µs/op, that process's CPU per
// request: the fair comparison of two servers on a shared machine.
func Run(b *testing.B, newReq func() *http.Request, want int, server int) {
	b.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var mu sync.Mutex
	var all []time.Duration
	b.SetParallelism(ClientsPerCore)
	cpu, serverCPU := ProcessCPU(), ChildCPU(server)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			req := newReq()
			start := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mine = append(mine, time.Since(start))
			if resp.StatusCode != want {
				b.Fatalf("%s %s: status %d, want %d", req.Method, req.URL, resp.StatusCode, want)
			}
		}
		mu.Lock()
		all = append(all, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	if used := ProcessCPU() - cpu; used > 0 {
		b.ReportMetric(float64(used.Microseconds())/float64(b.N), "cpu-µs/op")
	}
	if used := ChildCPU(server) - serverCPU; server > 0 && used > 0 {
		b.ReportMetric(float64(used.Microseconds())/float64(b.N), "server-cpu-µs/op")
	}
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
