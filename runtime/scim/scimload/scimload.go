// Package scimload replays a Microsoft Entra ID provisioning run against a
// SCIM endpoint and measures it: the initial cycle (lookup then create for
// every user and group, then member PATCHes in batches of 100), an
// incremental cycle (updates, disables, deletes) and a read-back that
// verifies the end state. It only talks to loopback addresses.
package scimload

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/metrics"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idrecon/idrecon/runtime/scim"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/durable"
	"github.com/idrecon/idrecon/spec"
)

// Limits keep a run bounded.
const (
	MaxUsers       = 2_000_000
	MaxGroups      = 100_000
	MaxConcurrency = 1024
	memberBatch    = 100
)

// ErrNotLoopback is returned for a target that is not a loopback address.
var ErrNotLoopback = errors.New("scimload: target must be a loopback address")

// Config describes one run.
type Config struct {
	URL             string // SCIM base URL, e.g. http://127.0.0.1:8080/api/scim/v2
	Token           string
	Users           int
	Groups          int
	MembersPerGroup int
	Concurrency     int
	// UpdateEvery, DisableEvery and DeleteEvery pick the share of users the
	// incremental cycle touches: every n-th user (0 = none).
	UpdateEvery, DisableEvery, DeleteEvery int
	// FirstUser numbers the users from here (user0001000@… and on for
	// 1000), so a run can add a burst of users to a store an earlier run
	// filled. The store then holds users this run did not make: the
	// read-back is skipped.
	FirstUser int
	// NoReadBack skips the read-back after the cycle, which reads every
	// user and group again: a run that measures only the cycle's memory
	// and time at a million users need not.
	NoReadBack bool
	// Flag sends the aadOptscim062020 request shapes.
	Flag bool
	// Progress, when set, receives a line as each phase ends.
	Progress io.Writer
	// CycleEnd, when set, is called once as the provisioning cycle ends,
	// before the read-back: where a caller reads the counters it reports
	// over the cycle, as CycleRPS is.
	CycleEnd func()
	// ProcessStats adds this process's allocation, garbage collection, CPU
	// use and live heap to each progress line: the server's and the
	// client's together with an in-process server, the client's otherwise.
	ProcessStats bool
}

// Stats are the latencies of one request kind: of its Count requests
// answered as expected. The Errors failed ones are left out of them, a
// timeout as a wrong status.
type Stats struct {
	Kind          string
	Count, Errors int
	P50, P95, P99 time.Duration
	Max           time.Duration
}

// Result is a run's outcome.
type Result struct {
	Requests int
	Errors   int
	Elapsed  time.Duration
	Kinds    []Stats
	// Cycle is every request of the provisioning cycle as one kind: all
	// but the read-back that verifies it.
	Cycle Stats
	// CycleElapsed is how long the cycle took, zero when it did not end.
	CycleElapsed time.Duration
	// Problems lists the first verification failures and request errors.
	Problems []string
}

// RPS is the overall request rate.
func (r *Result) RPS() float64 { return float64(r.Requests) / r.Elapsed.Seconds() }

// CycleRequests is the number of requests of the provisioning cycle when
// it ended, else of the whole run: what counters read at Config.CycleEnd
// (or, without one, over the run) are divided by.
func (r *Result) CycleRequests() int {
	if r.CycleElapsed <= 0 {
		return r.Requests
	}
	return r.Cycle.Count + r.Cycle.Errors
}

// CycleRPS is the request rate of the provisioning cycle: what Entra would
// send, without the read-back, whose pages of a hundred users are not
// requests Entra makes.
func (r *Result) CycleRPS() float64 {
	if r.CycleElapsed <= 0 {
		return 0
	}
	return float64(r.Cycle.Count+r.Cycle.Errors) / r.CycleElapsed.Seconds()
}

// Print writes a human-readable report.
func (r *Result) Print(w io.Writer) {
	fmt.Fprintf(w, "requests %d  errors %d  elapsed %s  %.0f req/s\n", r.Requests, r.Errors, r.Elapsed.Round(time.Millisecond), r.RPS())
	if r.CycleElapsed > 0 {
		fmt.Fprintf(w, "cycle    %d  errors %d  elapsed %s  %.0f req/s  (without the read-back)\n", r.Cycle.Count+r.Cycle.Errors, r.Cycle.Errors, r.CycleElapsed.Round(time.Millisecond), r.CycleRPS())
	}
	fmt.Fprintf(w, "%-16s %9s %7s %10s %10s %10s %10s\n", "kind", "count", "errors", "p50", "p95", "p99", "max")
	for _, k := range append(r.Kinds, r.Cycle) {
		fmt.Fprintf(w, "%-16s %9d %7d %10s %10s %10s %10s\n", k.Kind, k.Count, k.Errors, k.P50, k.P95, k.P99, k.Max)
	}
	if r.Errors > 0 {
		fmt.Fprintf(w, "latencies leave out the %d failed requests\n", r.Errors)
	}
	for _, p := range r.Problems {
		fmt.Fprintln(w, "problem:", p)
	}
}

func (c *Config) validate() error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("scimload: bad url %q", c.URL)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" {
		return fmt.Errorf("%w: %s", ErrNotLoopback, host)
	}
	switch {
	case c.Users < 1 || c.Users > MaxUsers:
		return fmt.Errorf("scimload: users must be 1..%d", MaxUsers)
	case c.FirstUser < 0 || c.FirstUser > MaxUsers:
		return fmt.Errorf("scimload: first-user must be 0..%d", MaxUsers)
	case c.Groups < 0 || c.Groups > MaxGroups:
		return fmt.Errorf("scimload: groups must be 0..%d", MaxGroups)
	case c.MembersPerGroup < 0 || c.MembersPerGroup > c.Users:
		return fmt.Errorf("scimload: members-per-group must be 0..users")
	case c.Concurrency < 1 || c.Concurrency > MaxConcurrency:
		return fmt.Errorf("scimload: concurrency must be 1..%d", MaxConcurrency)
	case c.Token == "":
		return errors.New("scimload: a token is required")
	}
	return nil
}

type runner struct {
	cfg Config
	// conns carries a plain-HTTP target's requests, and path is then the
	// base URL's path; client carries an HTTPS target's.
	conns  *conns
	path   string
	client *http.Client
	base   string
	query  string // "" or "aadOptscim062020&"

	mu       sync.Mutex
	lat      map[string][]time.Duration
	errs     map[string]int
	problems []string
	requests atomic.Int64
	// cycleEnd is when the provisioning cycle ended and the read-back began.
	cycleEnd time.Time
}

// Run performs a load run. It stops early when ctx ends.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, base: strings.TrimRight(cfg.URL, "/"), lat: map[string][]time.Duration{}, errs: map[string]int{}}
	if cfg.Flag {
		r.query = "aadOptscim062020&"
	}
	if u, _ := url.Parse(r.base); u.Scheme == "http" {
		r.conns, r.path = newConns(u.Host, cfg.Concurrency*2, 30*time.Second), u.Path
		defer r.conns.close()
	} else {
		tr := &http.Transport{MaxIdleConns: cfg.Concurrency * 2, MaxIdleConnsPerHost: cfg.Concurrency * 2, IdleConnTimeout: time.Minute}
		defer tr.CloseIdleConnections()
		r.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	}
	start := time.Now()
	err := r.run(ctx)
	res := &Result{Elapsed: time.Since(start), Requests: int(r.requests.Load())}
	if !r.cycleEnd.IsZero() {
		res.CycleElapsed = r.cycleEnd.Sub(start)
	}
	kinds := make([]string, 0, len(r.lat))
	for k := range r.lat {
		kinds = append(kinds, k)
	}
	for k := range r.errs {
		if _, ok := r.lat[k]; !ok {
			kinds = append(kinds, k)
		}
	}
	slices.Sort(kinds)
	var cycle []time.Duration
	res.Cycle.Kind = "(cycle)"
	for _, k := range kinds {
		d := r.lat[k]
		s := stats(k, d, r.errs[k])
		res.Errors += s.Errors
		res.Kinds = append(res.Kinds, s)
		if !strings.HasPrefix(k, "verify.") {
			cycle = append(cycle, d...)
			res.Cycle.Errors += s.Errors
		}
	}
	res.Cycle = stats(res.Cycle.Kind, cycle, res.Cycle.Errors)
	res.Problems = r.problems
	return res, err
}

// stats sorts d and sums it up.
func stats(kind string, d []time.Duration, errs int) Stats {
	slices.Sort(d)
	s := Stats{Kind: kind, Count: len(d), Errors: errs}
	if len(d) > 0 {
		s.P50, s.P95, s.P99, s.Max = pct(d, 50), pct(d, 95), pct(d, 99), d[len(d)-1]
	}
	return s
}

func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	return sorted[max(min(i, len(sorted))-1, 0)]
}

func (r *runner) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.problems) < 20 {
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
	}
}

// call sends one request and records its latency under kind. It returns
// the body when the status is want.
func (r *runner) call(ctx context.Context, kind, method, path string, body []byte, want int) ([]byte, bool) {
	return r.callCheck(ctx, kind, method, path, body, want, nil)
}

// callCheck is call whose answer must also pass check (when not nil): one
// that does not is an error of kind, as a wrong status is.
func (r *runner) callCheck(ctx context.Context, kind, method, path string, body []byte, want int, check func([]byte) error) ([]byte, bool) {
	target := path
	if r.query != "" {
		if strings.Contains(target, "?") {
			target = strings.Replace(target, "?", "?"+r.query, 1)
		} else {
			target += "?" + strings.TrimSuffix(r.query, "&")
		}
	}
	start := time.Now()
	var status int
	var out []byte
	var err error
	if r.conns != nil {
		status, out, err = r.conns.do(ctx, method, r.path+target, r.cfg.Token, body)
	} else {
		status, out, err = r.send(ctx, method, r.base+target, body)
	}
	d := time.Since(start)
	r.requests.Add(1)
	if err != nil {
		r.fail(kind, "%s %s: %v", method, path, err)
		return nil, false
	}
	if status != want {
		r.fail(kind, "%s %s: status %d, want %d: %.200s", method, path, status, want, out)
		return nil, false
	}
	if check != nil {
		if err := check(out); err != nil {
			r.fail(kind, "%s %s: %v: %.200s", method, path, err, out)
			return nil, false
		}
	}
	r.mu.Lock()
	r.lat[kind] = append(r.lat[kind], d)
	r.mu.Unlock()
	return out, true
}

// send sends a request with net/http, for an HTTPS target.
func (r *runner) send(ctx context.Context, method, u string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+r.cfg.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	res, err := r.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	return res.StatusCode, out, err
}

func (r *runner) fail(kind, format string, args ...any) {
	r.mu.Lock()
	r.errs[kind]++
	r.mu.Unlock()
	r.problem(format, args...)
}

// parallel runs fn(i) for i in [0,n) on the configured number of workers.
func (r *runner) parallel(ctx context.Context, phase string, n int, fn func(i int)) error {
	start, before, proc := time.Now(), r.requests.Load(), readProcess()
	// A region per phase lets an execution trace (idrecon-load -trace) be
	// read phase by phase.
	defer trace.StartRegion(ctx, "phase "+phase).End()
	defer func() {
		if r.cfg.Progress != nil {
			d := time.Since(start)
			n := r.requests.Load() - before
			extra := ""
			if r.cfg.ProcessStats && n > 0 {
				extra = readProcess().since(proc, n)
			}
			fmt.Fprintf(r.cfg.Progress, "phase %-12s %8d requests in %8s (%.0f req/s)%s\n", phase, n, d.Round(time.Millisecond), float64(n)/d.Seconds(), extra)
		}
	}()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(r.cfg.Concurrency, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

func userName(i int) string  { return fmt.Sprintf("user%07d@load.example", i) }
func groupName(i int) string { return fmt.Sprintf("Group %05d", i) }

func filterPath(resource, attr, value, extra string) string {
	return "/" + resource + "?" + extra + "filter=" + url.QueryEscape(attr+` eq "`+value+`"`)
}

func idOf(body []byte) string {
	var v struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(body, &v)
	return v.ID
}

// hasID accepts a created resource's answer: one with its id.
func hasID(body []byte) error {
	if idOf(body) == "" {
		return errors.New("no id in the answer")
	}
	return nil
}

// lookup sends a lookup by filter, whose answer must be a list response,
// and reports whether it found something.
func (r *runner) lookup(ctx context.Context, kind, path string) (found bool) {
	r.callCheck(ctx, kind, "GET", path, nil, 200, func(body []byte) error {
		var v struct {
			Total *int `json:"totalResults"`
		}
		if json.Unmarshal(body, &v) != nil || v.Total == nil {
			return errors.New("not a list response")
		}
		found = *v.Total != 0
		return nil
	})
	return found
}

// processStats are cumulative counters of this process's runtime.
type processStats struct {
	at                   time.Time
	allocBytes, gcCycles uint64
	liveHeap             uint64
	gcCPU, totalCPU      float64
	// rusage is user and system time as the kernel counts it, syscalls
	// included; zero where getrusage is missing.
	rusage time.Duration
}

var processMetrics = []string{"/gc/heap/allocs:bytes", "/gc/cycles/total:gc-cycles", "/cpu/classes/gc/total:cpu-seconds", "/cpu/classes/total:cpu-seconds", "/gc/heap/live:bytes"}

func readProcess() processStats {
	s := make([]metrics.Sample, len(processMetrics))
	for i, name := range processMetrics {
		s[i].Name = name
	}
	metrics.Read(s)
	return processStats{at: time.Now(), allocBytes: s[0].Value.Uint64(), gcCycles: s[1].Value.Uint64(), gcCPU: s[2].Value.Float64(), totalCPU: s[3].Value.Float64(), liveHeap: s[4].Value.Uint64(), rusage: cpuTime()}
}

// since describes what happened between p0 and p over n requests. The
// runtime updates its CPU estimates at each collection, so the GC share is
// approximate over a short phase.
func (p processStats) since(p0 processStats, n int64) string {
	share := 0.0
	if cpu := p.totalCPU - p0.totalCPU; cpu > 0 {
		share = 100 * (p.gcCPU - p0.gcCPU) / cpu
	}
	cores := ""
	if p.rusage > 0 {
		cores = fmt.Sprintf(", %.2f cores", (p.rusage-p0.rusage).Seconds()/p.at.Sub(p0.at).Seconds())
	}
	return fmt.Sprintf("  alloc %.1f KiB/req, %d GCs, GC %.0f%% of CPU%s, live heap %d MiB", float64(p.allocBytes-p0.allocBytes)/1024/float64(n), p.gcCycles-p0.gcCycles, share, cores, p.liveHeap>>20)
}

// membersOf returns the deterministic member indexes of group g.
func (r *runner) membersOf(g int) []int {
	out := make([]int, r.cfg.MembersPerGroup)
	step := max(r.cfg.Users/max(r.cfg.Groups, 1), 1)
	for j := range out {
		out[j] = (g*step + j) % r.cfg.Users
	}
	return out
}

func (r *runner) run(ctx context.Context) error {
	cfg := r.cfg
	userIDs := make([]string, cfg.Users)
	err := r.parallel(ctx, "users", cfg.Users, func(i int) {
		name := userName(cfg.FirstUser + i)
		if r.lookup(ctx, "user.lookup", filterPath("Users", "userName", name, "")) {
			r.problem("user %s exists before create", name)
		}
		body := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"externalId":"ext%07d","userName":%q,"active":true,"displayName":"Load User %d","emails":[{"primary":true,"type":"work","value":%q}],"meta":{"resourceType":"User"},"name":{"formatted":"Load User","familyName":"User","givenName":"Load"},"roles":[]}`, cfg.FirstUser+i, name, cfg.FirstUser+i, name)
		if b, ok := r.callCheck(ctx, "user.create", "POST", "/Users", []byte(body), 201, hasID); ok {
			userIDs[i] = idOf(b)
		}
	})
	if err != nil {
		return err
	}
	groupIDs := make([]string, cfg.Groups)
	err = r.parallel(ctx, "groups", cfg.Groups, func(i int) {
		name := groupName(i)
		if r.lookup(ctx, "group.lookup", filterPath("Groups", "displayName", name, "excludedAttributes=members&")) {
			r.problem("group %s exists before create", name)
		}
		body := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group","http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],"externalId":"obj-%05d","displayName":%q,"meta":{"resourceType":"Group"}}`, i, name)
		if b, ok := r.callCheck(ctx, "group.create", "POST", "/Groups", []byte(body), 201, hasID); ok {
			groupIDs[i] = idOf(b)
		}
	})
	if err != nil {
		return err
	}
	type batch struct {
		group   int
		members []int
	}
	var batches []batch
	for g := range cfg.Groups {
		m := r.membersOf(g)
		for len(m) > 0 {
			n := min(memberBatch, len(m))
			batches = append(batches, batch{g, m[:n]})
			m = m[n:]
		}
	}
	err = r.parallel(ctx, "members", len(batches), func(i int) {
		b := batches[i]
		op := "Add"
		if cfg.Flag {
			op = "add"
		}
		// Built with appends, not fmt: the client shares the machine's
		// cores with the server, and what it spends is not Entra's.
		body := make([]byte, 0, 128+len(b.members)*64)
		body = append(body, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"`+op+`","path":"members","value":[`...)
		for j, m := range b.members {
			if j > 0 {
				body = append(body, ',')
			}
			body = append(body, `{"$ref":null,"value":`...)
			body = strconv.AppendQuote(body, userIDs[m])
			body = append(body, '}')
		}
		body = append(body, "]}]}"...)
		r.call(ctx, "group.members", "PATCH", "/Groups/"+groupIDs[b.group], body, 204)
	})
	if err != nil {
		return err
	}
	// Incremental cycle.
	every := func(n, i int) bool { return n > 0 && i%n == n-1 }
	err = r.parallel(ctx, "incremental", cfg.Users, func(i int) {
		id := userIDs[i]
		switch {
		case every(cfg.DeleteEvery, i):
			r.call(ctx, "user.delete", "DELETE", "/Users/"+id, nil, 204)
		case every(cfg.DisableEvery, i):
			body := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}`
			if cfg.Flag {
				body = `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`
			}
			r.call(ctx, "user.disable", "PATCH", "/Users/"+id, []byte(body), 200)
		case every(cfg.UpdateEvery, i):
			body := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"name.givenName","value":"Updated"},{"op":"Replace","path":"emails[type eq \"work\"].value","value":"new.%s"}]}`, userName(cfg.FirstUser+i))
			if cfg.Flag {
				body = fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"emails[type eq \"work\"].value","value":"new.%s"},{"op":"replace","value":{"name.givenName":"Updated","displayName":"Updated %d"}}]}`, userName(cfg.FirstUser+i), cfg.FirstUser+i)
			}
			r.call(ctx, "user.update", "PATCH", "/Users/"+id, []byte(body), 200)
		}
	})
	if err != nil {
		return err
	}
	r.cycleEnd = time.Now()
	if cfg.CycleEnd != nil {
		cfg.CycleEnd()
	}
	if cfg.FirstUser > 0 || cfg.NoReadBack {
		return nil
	}
	start, before := r.cycleEnd, r.requests.Load()
	err = r.verify(ctx, userIDs, groupIDs)
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, "phase %-12s %8d requests in %8s\n", "verify", r.requests.Load()-before, time.Since(start).Round(time.Millisecond))
	}
	return err
}

type listPage struct {
	Total     int `json:"totalResults"`
	Resources []struct {
		ID       string `json:"id"`
		UserName string `json:"userName"`
		Active   *bool  `json:"active"`
		Name     struct {
			GivenName string `json:"givenName"`
		} `json:"name"`
		Members []struct {
			Value string `json:"value"`
		} `json:"members"`
	} `json:"Resources"`
}

// verify reads everything back page by page and checks the end state.
func (r *runner) verify(ctx context.Context, userIDs, groupIDs []string) error {
	cfg := r.cfg
	every := func(n, i int) bool { return n > 0 && i%n == n-1 }
	index := make(map[string]int, len(userIDs))
	for i, id := range userIDs {
		index[id] = i
	}
	const pageSize = 1000
	// listed counts each id once: a page that repeats one in place of
	// another must not make the count come out right.
	listed := make(map[string]bool, len(userIDs))
	seen := 0
	for start := 1; ; start += pageSize {
		b, ok := r.call(ctx, "verify.users", "GET", fmt.Sprintf("/Users?startIndex=%d&count=%d", start, pageSize), nil, 200)
		if !ok {
			return nil
		}
		var p listPage
		if err := json.Unmarshal(b, &p); err != nil {
			r.problem("users page %d: %v", start, err)
			return nil
		}
		for _, u := range p.Resources {
			if listed[u.ID] {
				r.problem("user %s listed twice", u.ID)
				continue
			}
			listed[u.ID] = true
			i, ok := index[u.ID]
			seen++
			switch {
			case !ok:
				r.problem("unexpected user %s", u.ID)
			case every(cfg.DeleteEvery, i):
				r.problem("deleted user %d still listed", i)
			case every(cfg.DisableEvery, i) && (u.Active == nil || *u.Active):
				r.problem("user %d not disabled", i)
			case !every(cfg.DisableEvery, i) && u.Active != nil && !*u.Active:
				r.problem("user %d inactive, never disabled", i)
			case every(cfg.UpdateEvery, i) && !every(cfg.DisableEvery, i) && u.Name.GivenName != "Updated":
				r.problem("user %d not updated: %q", i, u.Name.GivenName)
			}
		}
		if len(p.Resources) < pageSize || ctx.Err() != nil {
			break
		}
	}
	deleted := 0
	for i := range cfg.Users {
		if every(cfg.DeleteEvery, i) {
			deleted++
		}
	}
	if want := cfg.Users - deleted; seen != want {
		r.problem("read back %d users, want %d", seen, want)
	}
	const groupPage = 20
	gindex := make(map[string]int, len(groupIDs))
	for i, id := range groupIDs {
		gindex[id] = i
	}
	glisted := make(map[string]bool, len(groupIDs))
	gseen := 0
	for start := 1; ; start += groupPage {
		b, ok := r.call(ctx, "verify.groups", "GET", fmt.Sprintf("/Groups?startIndex=%d&count=%d", start, groupPage), nil, 200)
		if !ok {
			return nil
		}
		var p listPage
		if err := json.Unmarshal(b, &p); err != nil {
			r.problem("groups page %d: %v", start, err)
			return nil
		}
		for _, g := range p.Resources {
			if glisted[g.ID] {
				r.problem("group %s listed twice", g.ID)
				continue
			}
			glisted[g.ID] = true
			gseen++
			gi, ok := gindex[g.ID]
			if !ok {
				r.problem("unexpected group %s", g.ID)
				continue
			}
			want := map[string]bool{}
			for _, m := range r.membersOf(gi) {
				if !every(cfg.DeleteEvery, m) {
					want[userIDs[m]] = true
				}
			}
			got := map[string]bool{}
			for _, m := range g.Members {
				got[m.Value] = true
			}
			if len(got) != len(want) {
				r.problem("group %d has %d members, want %d", gi, len(got), len(want))
				continue
			}
			for id := range want {
				if !got[id] {
					r.problem("group %d lacks member %s", gi, id)
					break
				}
			}
		}
		if len(p.Resources) < groupPage || ctx.Err() != nil {
			break
		}
	}
	if gseen != cfg.Groups {
		r.problem("read back %d groups, want %d", gseen, cfg.Groups)
	}
	return ctx.Err()
}

// InProcess is a SCIM server on a fresh store with the demo configuration,
// listening on a loopback port.
type InProcess struct {
	URL   string
	Token string
	Store *store.Store
	srv   *http.Server
	done  chan error
	db    *durable.DB
}

// StartInProcess starts an in-process server. With dataDir set, its store is
// durable there as the daemon's is (dataDir must not hold a state file yet);
// otherwise it is in memory. Close stops it.
func StartInProcess(logger *slog.Logger, dataDir string) (*InProcess, error) {
	var db *durable.DB
	var opts store.Options
	if dataDir != "" {
		if _, err := os.Stat(durable.Path(dataDir)); err == nil {
			return nil, fmt.Errorf("scimload: %s already holds state; give an empty data dir", dataDir)
		}
		var err error
		if db, err = durable.Open(durable.Path(dataDir), durable.Options{Logger: logger}); err != nil {
			return nil, fmt.Errorf("scimload: %w", err)
		}
		opts.Journal = db
	}
	st, err := store.New(opts)
	if err != nil {
		if db != nil {
			db.Close()
		}
		return nil, fmt.Errorf("scimload: store: %w", err)
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	token := hex.EncodeToString(raw)
	sum := sha256.Sum256([]byte(token))
	cfg := &spec.ScimProvisioning{Enabled: true, Tokens: []spec.ScimToken{{Name: "load", SHA256: hex.EncodeToString(sum[:])}}}
	var ln net.Listener
	err = st.Update(context.Background(), func(txn *store.Txn) error {
		// Named as examples/entra names its own, so a daemon started on the
		// data dir with that spec updates it: deleting an enabled one is
		// refused (the deletion guard), and the daemon would never be ready.
		return txn.Insert(store.TableResources, &store.Resource{Kind: spec.KindScimProvisioning, Name: "entra", Spec: cfg, ModifiedBy: "scimload"})
	})
	if err == nil {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		st.Close()
		if db != nil {
			db.Close()
		}
		return nil, fmt.Errorf("scimload: start: %w", err)
	}
	p := &InProcess{
		URL: "http://" + ln.Addr().String() + spec.DefaultScimBasePath, Token: token, Store: st, db: db,
		srv:  &http.Server{Handler: scim.NewServer(st, scim.Options{Logger: logger}), ReadHeaderTimeout: 10 * time.Second},
		done: make(chan error, 1),
	}
	go func() { p.done <- p.srv.Serve(ln) }()
	return p, nil
}

// Close stops the server and the store.
func (p *InProcess) Close() error {
	err := p.srv.Close()
	<-p.done
	p.Store.Close()
	if p.db != nil {
		err = errors.Join(err, p.db.Close())
	}
	return err
}
