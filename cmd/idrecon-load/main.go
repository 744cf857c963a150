// Command idrecon-load replays an Entra ID provisioning run (initial and
// incremental cycle, then a read-back) against a loopback SCIM endpoint and
// prints request rates and latency percentiles per request kind.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"syscall"
	"time"

	"github.com/idrecon/idrecon/runtime/gctune"
	"github.com/idrecon/idrecon/runtime/scim/scimload"
)

func main() {
	if err := run(os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "idrecon-load:", err)
		os.Exit(1)
	}
}

func run(args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == peerServeArg {
		return servePeer(getenv, os.Stderr)
	}
	fs := flag.NewFlagSet("idrecon-load", flag.ContinueOnError)
	var cfg scimload.Config
	fs.StringVar(&cfg.URL, "url", "", "SCIM base URL (loopback only), e.g. http://127.0.0.1:8080/api/scim/v2")
	fs.StringVar(&cfg.Token, "token", "", "bearer token (default $IDRECON_SCIM_TOKEN)")
	fs.IntVar(&cfg.Users, "users", 10000, "users to provision")
	fs.IntVar(&cfg.FirstUser, "first-user", 0, "number the users from here, to add a burst of users to a store an earlier run filled (skips the read-back)")
	fs.BoolVar(&cfg.NoReadBack, "no-read-back", false, "skip reading every user and group back after the cycle (it reads everything again)")
	fs.IntVar(&cfg.Groups, "groups", 100, "groups to provision")
	fs.IntVar(&cfg.MembersPerGroup, "members-per-group", 100, "members per group")
	fs.IntVar(&cfg.Concurrency, "concurrency", 32, "parallel requests")
	fs.IntVar(&cfg.UpdateEvery, "update-every", 10, "incremental cycle updates every n-th user (0 = none)")
	fs.IntVar(&cfg.DisableEvery, "disable-every", 20, "incremental cycle disables every n-th user (0 = none)")
	fs.IntVar(&cfg.DeleteEvery, "delete-every", 50, "incremental cycle deletes every n-th user (0 = none)")
	fs.BoolVar(&cfg.Flag, "flag", true, "send the aadOptscim062020 request shapes")
	inprocess := fs.Bool("inprocess", false, "start an in-process server with a fresh store instead of using -url")
	dataDir := fs.String("data-dir", "", "with -inprocess, make the store durable in this empty directory, as the daemon's is")
	timeout := fs.Duration("timeout", 15*time.Minute, "abort the run after this long")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run (client and in-process server) to this file")
	memprofile := fs.String("memprofile", "", "write a profile of the whole run's allocations (go tool pprof -sample_index=alloc_space) to this file")
	traceFile := fs.String("trace", "", "write an execution trace of the whole run (see go tool trace) to this file")
	pid := fs.Int("pid", 0, "the daemon's process id (with -url): report its resident memory (VmRSS) before, at the peak of and after the run")
	settle := fs.Duration("settle", 0, "with -pid or -serve, wait this long after the run and report the daemon's resident memory again")
	serve := fs.String("serve", "", "start this idrecon binary as `idrecon serve` (its own process, default flags, plain HTTP on loopback, a fresh data dir) and load it instead of -url; with -pid's report")
	specDir := fs.String("spec", "examples/entra", "with -serve, the spec folder the daemon follows (its ScimProvisioning must accept -token)")
	keepData := fs.String("serve-data-dir", "", "with -serve, the daemon's data dir (default a fresh temporary one, removed after): a store an earlier run filled")
	peerFlag := fs.Bool("peer", false, "start the library peer (an in-memory SCIM server on elimity-com/scim, its own process, with Go's default collector settings) and load it instead of -url; with -pid's report")
	compare := fs.Bool("compare", false, "with -serve: load the daemon, then the library peer, each a fresh process, and print the two side by side")
	rounds := fs.Int("runs", 1, "with -serve, -peer or -compare: load each server this many times, alternating, each a fresh process (the table shows the range)")
	var serveFlags stringList
	fs.Var(&serveFlags, "serve-flag", "with -serve, one more flag for `idrecon serve` (repeatable), e.g. -serve-flag=--gc-percent=100")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, r := range []struct {
		path  string
		start func(io.Writer) error
		stop  func()
	}{{*cpuprofile, pprof.StartCPUProfile, pprof.StopCPUProfile}, {*traceFile, trace.Start, trace.Stop}} {
		if r.path == "" {
			continue
		}
		f, err := os.Create(r.path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := r.start(f); err != nil {
			return err
		}
		defer r.stop()
	}
	if *memprofile != "" {
		defer writeHeapProfile(*memprofile)
	}
	if cfg.Token == "" {
		cfg.Token = getenv("IDRECON_SCIM_TOKEN")
	}
	// SIGTERM (kill, timeout(1), a CI job cancelled) ends the run as ^C
	// does: the server it started is stopped and its data dir removed.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var targets []target
	if *serve != "" || *peerFlag || *compare {
		switch {
		case *inprocess || cfg.URL != "" || *pid != 0:
			return errors.New("-serve, -peer and -compare start the server themselves: give neither -url, -inprocess nor -pid")
		case *compare && (*serve == "" || *peerFlag):
			return errors.New("-compare needs -serve (the idrecon binary) and starts the peer itself: drop -peer")
		case *serve != "" && *peerFlag:
			return errors.New("give -serve or -peer, or -compare with -serve")
		}
	}
	if *inprocess {
		// Run the server part with the collector settings of `idrecon serve`.
		gctune.Apply(getenv, gctune.DefaultPercent)
		srv, err := scimload.StartInProcess(slog.New(slog.DiscardHandler), *dataDir)
		if err != nil {
			return err
		}
		defer srv.Close()
		cfg.URL, cfg.Token = srv.URL, srv.Token
		cfg.ProcessStats = true
	}
	if *serve != "" {
		if *keepData != "" && *rounds > 1 {
			return errors.New("-runs would load the store in -serve-data-dir again: give one of them")
		}
		tmp, err := os.MkdirTemp("", "idrecon-load-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		targets = append(targets, target{"idrecon", func(ctx context.Context) (*daemon, error) {
			// Each run starts on an empty store of its own, unless the
			// run is to load a filled one.
			dir := *keepData
			if dir == "" {
				var err error
				if dir, err = os.MkdirTemp(tmp, "data-*"); err != nil {
					return nil, err
				}
			}
			return startDaemon(ctx, *serve, *specDir, dir, serveFlags, os.Stderr)
		}})
	}
	if *peerFlag || *compare {
		if cfg.Token == "" && !*compare {
			cfg.Token = rand.Text()
		}
		token := cfg.Token
		targets = append(targets, target{"peer", func(ctx context.Context) (*daemon, error) { return startPeer(ctx, token, os.Stderr) }})
	}
	cfg.Progress = os.Stderr
	if len(targets) > 0 {
		return runTargets(ctx, targets, cfg, *settle, *rounds, stdout)
	}
	var rss *rssSampler
	if *pid > 0 {
		var err error
		if rss, err = startRSS(*pid, 100*time.Millisecond); err != nil {
			return fmt.Errorf("-pid: %w", err)
		}
		cfg.CycleEnd = rss.cycleEnd
	}
	res, err := scimload.Run(ctx, cfg)
	if res != nil {
		res.Print(stdout)
	}
	if rss != nil && res != nil {
		rss.report(stdout, cfg.Users, res.CycleRequests(), *settle)
	}
	if err != nil {
		return err
	}
	if res.Errors > 0 || len(res.Problems) > 0 {
		return errors.New("run had errors")
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// writeHeapProfile writes the allocation profile at the end of a run, when
// it counts every allocation the run made.
func writeHeapProfile(path string) {
	f, err := os.Create(path)
	if err == nil {
		err = errors.Join(pprof.Lookup("allocs").WriteTo(f, 0), f.Close())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "idrecon-load: memprofile:", err)
	}
}
