package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/idrecon/idrecon/cmd/idrecon-load/internal/peer"
	"github.com/idrecon/idrecon/runtime/scim/scimload"
)

// peerServeArg, as the first argument, makes idrecon-load serve the
// library peer instead: the process -peer and -compare start and load.
const peerServeArg = "peer-serve"

const peerServing = "idrecon-load peer serving"

// servePeer serves the library peer on a loopback port the system picks,
// for the token in $IDRECON_SCIM_TOKEN, says where as a JSON line on
// stderr, and serves until SIGINT or SIGTERM.
func servePeer(getenv func(string) string, stderr io.Writer) error {
	token := getenv("IDRECON_SCIM_TOKEN")
	if token == "" {
		return errors.New(peerServeArg + ": IDRECON_SCIM_TOKEN is not set")
	}
	h, err := peer.New(token)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	line, _ := json.Marshal(map[string]string{"msg": peerServing, "scim": "http://" + ln.Addr().String() + peer.BasePath})
	fmt.Fprintf(stderr, "%s\n", line)
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}

// startPeer starts this binary as the library peer, its own process, and
// returns once it serves.
func startPeer(ctx context.Context, token string, logs io.Writer) (*daemon, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, peerServeArg)
	cmd.Env = append(os.Environ(), "IDRECON_SCIM_TOKEN="+token)
	return startProcess(ctx, "the peer", cmd, func(b []byte) (announcement, bool) {
		var line struct{ Msg, SCIM string }
		if json.Unmarshal(b, &line) != nil || line.Msg != peerServing {
			return announcement{}, false
		}
		return announcement{scim: line.SCIM}, true
	}, logs)
}

// target is a server process a run starts, loads and measures.
type target struct {
	label string
	start func(context.Context) (*daemon, error)
}

// outcome is a target's run.
type outcome struct {
	label   string
	res     *scimload.Result
	rss     rssFigures
	journal *journalSyncs // nil for a server without a journal
	// client is the CPU time this process (the load tool alone: the
	// server is another process) used over the cycle (over the run when
	// the cycle did not end), on the cores the server shares.
	client time.Duration
	// idle is the share of the machine's cores idle over the cycle (over
	// the run when it did not end): NaN where unknown.
	idle float64
}

// load starts t, runs cfg against it with the report of -pid, and stops
// it.
func load(ctx context.Context, t target, cfg scimload.Config, settle time.Duration, stdout io.Writer) (o *outcome, err error) {
	d, err := t.start(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, d.stop()) }()
	rss, err := startRSS(d.pid(), 100*time.Millisecond)
	if err != nil {
		return nil, err
	}
	var before journalSyncs
	journaled := d.metrics != ""
	if journaled {
		before, err = scrapeJournal(ctx, d.metrics)
		switch {
		case errors.Is(err, errNoJournal):
			journaled = false
		case err != nil:
			return nil, err
		}
	}
	cfg.URL = d.scim
	// The CPU times are the cycle's, as the request rate is.
	clientBefore := cpuTime(os.Getpid())
	coresBefore, coresKnown := machineTicks()
	clientCycle, cycle := time.Duration(0), false
	var coresCycle coreTicks
	cfg.CycleEnd = func() {
		clientCycle, cycle = cpuTime(os.Getpid()), true
		coresCycle, _ = machineTicks()
		rss.cycleEnd()
	}
	res, err := scimload.Run(ctx, cfg)
	if res == nil {
		rss.report(io.Discard, 0, 0, 0)
		return nil, err
	}
	res.Print(stdout)
	o = &outcome{label: t.label, res: res, client: cpuTime(os.Getpid()) - clientBefore}
	if cycle {
		o.client = clientCycle - clientBefore
	} else {
		coresCycle, _ = machineTicks()
	}
	o.idle = math.NaN()
	if coresKnown {
		o.idle = idleShare(coresBefore, coresCycle)
	}
	if n := res.CycleRequests(); n > 0 {
		fmt.Fprintf(stdout, "load tool CPU  %s over the %s, %.0f µs/request\n", o.client, interval(cycle), float64(o.client.Microseconds())/float64(n))
	}
	if !math.IsNaN(o.idle) {
		fmt.Fprintf(stdout, "cores idle     %.0f%% over the %s (idle or waiting for I/O)\n", o.idle*100, interval(cycle))
	}
	if journaled {
		// Read even when the run ran out of time, as the rest is.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		after, serr := scrapeJournal(sctx, d.metrics)
		cancel()
		if serr != nil {
			return nil, errors.Join(err, serr)
		}
		run := after.since(before)
		run.print(stdout, writes(res))
		o.journal = &run
	}
	o.rss = rss.report(stdout, cfg.Users, res.CycleRequests(), settle)
	return o, err
}

// runTargets loads each target in turn, each a fresh process with the same
// cfg, rounds times over (alternating, so a drift of the machine's speed
// falls on both), and with more than one target prints them side by side.
func runTargets(ctx context.Context, targets []target, cfg scimload.Config, settle time.Duration, rounds int, stdout io.Writer) error {
	outs := make([][]*outcome, len(targets))
	failed := false
	for round := range max(rounds, 1) {
		for i, t := range targets {
			if len(targets) > 1 || rounds > 1 {
				fmt.Fprintf(stdout, "== %s, run %d\n", t.label, round+1)
			}
			o, err := load(ctx, t, cfg, settle, stdout)
			if err != nil {
				return fmt.Errorf("%s: %w", t.label, err)
			}
			outs[i] = append(outs[i], o)
			failed = failed || o.res.Errors > 0 || len(o.res.Problems) > 0
		}
	}
	if len(outs) > 1 {
		fmt.Fprintln(stdout)
		compareTable(stdout, cfg.Users, outs[0], outs[1])
	}
	if failed {
		return errors.New("run had errors")
	}
	return nil
}

// compareTable writes the figures of a's and b's runs side by side (a
// range when there were several), with the ratio of the medians where it
// says something.
func compareTable(w io.Writer, users int, a, b []*outcome) {
	var buf strings.Builder
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\t%s\t%s\t%s/%s\t\n", a[0].label, b[0].label, a[0].label, b[0].label)
	// row writes one figure of every run, formatted by f; withRatio adds
	// the ratio of the medians.
	row := func(name string, of func(*outcome) float64, f func(float64) string, withRatio bool) {
		ra, rb := figures(a, of), figures(b, of)
		ratio := ""
		if m := median(rb); withRatio && m != 0 {
			ratio = fmt.Sprintf("%.2f", median(ra)/m)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", name, span(ra, f), span(rb, f), ratio)
	}
	count := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	ms := func(v float64) string { return time.Duration(v).Round(10 * time.Microsecond).String() }
	mib := func(v float64) string { return fmt.Sprintf("%.1f MiB", v/(1<<20)) }
	kib := func(v float64) string { return fmt.Sprintf("%.2f KiB", v/1024) }
	us := func(v float64) string { return fmt.Sprintf("%.0f µs", v) }

	row("req/s (cycle)", func(o *outcome) float64 { return o.res.CycleRPS() }, count, true)
	var kinds []string
	for _, o := range append(slices.Clone(a), b...) {
		for _, k := range o.res.Kinds {
			if !slices.Contains(kinds, k.Kind) {
				kinds = append(kinds, k.Kind)
			}
		}
	}
	slices.Sort(kinds)
	for _, k := range append(kinds, a[0].res.Cycle.Kind) {
		row("p99 "+k, func(o *outcome) float64 { return p99(o, k) }, ms, false)
	}
	row("errors", func(o *outcome) float64 { return float64(o.res.Errors) }, count, false)
	memory := func(name string, of func(*outcome) int64) {
		row("RSS "+name, func(o *outcome) float64 { return float64(of(o)) }, mib, false)
		row("  per user (minus before)", func(o *outcome) float64 { return o.rss.perUser(of(o), users) }, kib, true)
	}
	row("RSS before", func(o *outcome) float64 { return float64(o.rss.before) }, mib, false)
	memory("peak", func(o *outcome) int64 { return o.rss.peak })
	memory("after the run", func(o *outcome) int64 { return o.rss.after })
	if a[0].rss.settle > 0 {
		memory(a[0].rss.settle.String()+" later", func(o *outcome) int64 { return o.rss.settled })
	}
	journal := func(of func(*journalSyncs) float64) func(*outcome) float64 {
		return func(o *outcome) float64 {
			if o.journal == nil {
				return math.NaN()
			}
			return of(o.journal)
		}
	}
	if a[0].journal != nil || b[0].journal != nil {
		row("journal syncs (fdatasync)", journal(func(j *journalSyncs) float64 { return j.count }), count, false)
		// Beyond the last bound, the p99 is +Inf: shown as "> bound".
		var last time.Duration
		for _, o := range append(slices.Clone(a), b...) {
			if o.journal != nil {
				last = max(last, o.journal.lastBound())
			}
		}
		bound := func(v float64) string {
			if math.IsInf(v, 1) {
				return "> " + last.String()
			}
			return ms(v)
		}
		row("  p99 at most", journal(func(j *journalSyncs) float64 {
			switch q, ok := j.quantile(0.99); {
			case ok:
				return float64(q)
			case j.count == 0:
				return math.NaN()
			default:
				return math.Inf(1)
			}
		}), bound, false)
		row("  over "+slowSync.String(), journal(func(j *journalSyncs) float64 { return j.over(slowSync) }), count, false)
	}
	row("server CPU per request", func(o *outcome) float64 {
		if o.res.CycleRequests() == 0 {
			return 0
		}
		return float64(o.rss.cpu.Microseconds()) / float64(o.res.CycleRequests())
	}, us, true)
	row("load tool CPU per request", func(o *outcome) float64 {
		if o.res.CycleRequests() == 0 {
			return 0
		}
		return float64(o.client.Microseconds()) / float64(o.res.CycleRequests())
	}, us, false)
	row("cores idle (or waiting for I/O)", func(o *outcome) float64 { return o.idle }, func(v float64) string { return fmt.Sprintf("%.0f%%", v*100) }, false)
	tw.Flush()
	for line := range strings.Lines(buf.String()) {
		fmt.Fprintln(w, strings.TrimRight(line, " \n"))
	}
}

// p99 is o's p99 of kind in nanoseconds, or NaN when o has none: it made
// no such request, or none was answered (the latencies are the answered
// requests'; a zero would pass for the fastest run).
func p99(o *outcome, kind string) float64 {
	for _, k := range append(o.res.Kinds, o.res.Cycle) {
		if k.Kind == kind && k.Count > 0 {
			return float64(k.P99)
		}
	}
	return math.NaN()
}

// figures is of applied to each run, NaNs left out, sorted.
func figures(runs []*outcome, of func(*outcome) float64) []float64 {
	var v []float64
	for _, o := range runs {
		if x := of(o); !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	slices.Sort(v)
	return v
}

// median is the middle of sorted figures, or the mean of the two middle
// ones when there is an even number of them.
func median(v []float64) float64 {
	switch n := len(v); {
	case n == 0:
		return 0
	case n%2 == 0:
		return (v[n/2-1] + v[n/2]) / 2
	default:
		return v[n/2]
	}
}

// span formats sorted figures as one value, or lowest–highest.
func span(v []float64, f func(float64) string) string {
	switch {
	case len(v) == 0:
		return "-"
	case v[0] == v[len(v)-1]:
		return f(v[0])
	}
	return f(v[0]) + "–" + f(v[len(v)-1])
}
