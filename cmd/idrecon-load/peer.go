package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	label string
	res   *scimload.Result
	rss   rssFigures
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
	cfg.URL = d.scim
	res, err := scimload.Run(ctx, cfg)
	if res == nil {
		rss.report(io.Discard, 0, 0, 0)
		return nil, err
	}
	res.Print(stdout)
	return &outcome{label: t.label, res: res, rss: rss.report(stdout, cfg.Users, res.Requests, settle)}, err
}

// runTargets loads each target in turn, each a fresh process with the same
// cfg, and with more than one prints them side by side.
func runTargets(ctx context.Context, targets []target, cfg scimload.Config, settle time.Duration, stdout io.Writer) error {
	var outs []*outcome
	failed := false
	for _, t := range targets {
		if len(targets) > 1 {
			fmt.Fprintf(stdout, "== %s\n", t.label)
		}
		o, err := load(ctx, t, cfg, settle, stdout)
		if err != nil {
			return fmt.Errorf("%s: %w", t.label, err)
		}
		outs = append(outs, o)
		failed = failed || o.res.Errors > 0 || len(o.res.Problems) > 0
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

// compareTable writes a's and b's figures side by side, with the ratio a/b
// where it says something.
func compareTable(w io.Writer, users int, a, b *outcome) {
	var buf strings.Builder
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\t%s\t%s\t%s/%s\t\n", a.label, b.label, a.label, b.label)
	ratio := func(x, y float64) string {
		if y == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", x/y)
	}
	fmt.Fprintf(tw, "req/s (cycle)\t%.0f\t%.0f\t%s\t\n", a.res.CycleRPS(), b.res.CycleRPS(), ratio(a.res.CycleRPS(), b.res.CycleRPS()))
	p99 := func(o *outcome, kind string) string {
		for _, k := range append(o.res.Kinds, o.res.Cycle) {
			if k.Kind == kind {
				return k.P99.Round(10 * time.Microsecond).String()
			}
		}
		return "-"
	}
	var kinds []string
	for _, o := range []*outcome{a, b} {
		for _, k := range o.res.Kinds {
			if !slices.Contains(kinds, k.Kind) {
				kinds = append(kinds, k.Kind)
			}
		}
	}
	slices.Sort(kinds)
	for _, k := range append(kinds, a.res.Cycle.Kind) {
		fmt.Fprintf(tw, "p99 %s\t%s\t%s\t\t\n", k, p99(a, k), p99(b, k))
	}
	fmt.Fprintf(tw, "errors\t%d\t%d\t\t\n", a.res.Errors, b.res.Errors)
	mib := func(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	perUser := func(o *outcome, b int64) float64 { return o.rss.perUser(b, users) / 1024 }
	memory := func(name string, of func(*outcome) int64) {
		fmt.Fprintf(tw, "RSS %s\t%s\t%s\t\t\n", name, mib(of(a)), mib(of(b)))
		pa, pb := perUser(a, of(a)), perUser(b, of(b))
		fmt.Fprintf(tw, "  per user (minus before)\t%.2f KiB\t%.2f KiB\t%s\t\n", pa, pb, ratio(pa, pb))
	}
	fmt.Fprintf(tw, "RSS before\t%s\t%s\t\t\n", mib(a.rss.before), mib(b.rss.before))
	memory("peak", func(o *outcome) int64 { return o.rss.peak })
	memory("after the run", func(o *outcome) int64 { return o.rss.after })
	if a.rss.settle > 0 {
		memory(a.rss.settle.String()+" later", func(o *outcome) int64 { return o.rss.settled })
	}
	cpu := func(o *outcome) float64 {
		if o.res.Requests == 0 {
			return 0
		}
		return float64(o.rss.cpu.Microseconds()) / float64(o.res.Requests)
	}
	fmt.Fprintf(tw, "server CPU per request\t%.0f µs\t%.0f µs\t%s\t\n", cpu(a), cpu(b), ratio(cpu(a), cpu(b)))
	tw.Flush()
	for line := range strings.Lines(buf.String()) {
		fmt.Fprintln(w, strings.TrimRight(line, " \n"))
	}
}
