// Package etcdtest runs a real etcd cluster inside a test: members of
// go.etcd.io/etcd/server/v3/embed (the version the client is), on loopback
// ports the OS picks, each in a directory of the test's own. StartPackaged
// runs the Debian package's etcd as processes instead, and StartProcesses
// the client's version as processes (the test binary, run again as etcd),
// for measurements where etcd must be a process of its own as in
// production.
package etcdtest

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Cluster is a running etcd cluster.
type Cluster struct {
	Members []*embed.Etcd
	procs   []*proc // members running as processes
	cfgs    []*embed.Config
	closing map[int]chan struct{} // members being closed after Kill
	// Endpoints are the members' client URLs.
	Endpoints []string
}

// Start starts an n-member cluster and stops it when t ends.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartWith(t, n, nil)
}

// StartWith is Start with each member's configuration passed to configure
// (when not nil) before it starts.
func StartWith(t testing.TB, n int, configure func(*embed.Config)) *Cluster {
	t.Helper()
	for attempt := 1; ; attempt++ {
		c, err := start(t, n, configure)
		if err == nil {
			return c
		}
		if !strings.Contains(err.Error(), "address already in use") || attempt == 5 {
			t.Fatalf("start etcd: %v", err)
		}
	}
}

func start(t testing.TB, n int, configure func(*embed.Config)) (*Cluster, error) {
	cfgs := make([]*embed.Config, n)
	var initial []string
	addrs, err := freeAddrs(2 * n)
	if err != nil {
		return nil, err
	}
	for i := range cfgs {
		client, peer := addrs[2*i], addrs[2*i+1]
		cfg := embed.NewConfig()
		cfg.Name = fmt.Sprintf("m%d", i)
		cfg.Dir = t.TempDir()
		cfg.LogLevel = "error"
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		// Tests only: no fsync, so a test's speed does not hang on the disk.
		cfg.UnsafeNoFsync = true
		cfg.ListenClientUrls = []url.URL{{Scheme: "http", Host: client}}
		cfg.AdvertiseClientUrls = cfg.ListenClientUrls
		cfg.ListenPeerUrls = []url.URL{{Scheme: "http", Host: peer}}
		cfg.AdvertisePeerUrls = cfg.ListenPeerUrls
		cfg.InitialClusterToken = "idrecon-test"
		cfg.WatchProgressNotifyInterval = time.Second
		initial = append(initial, cfg.Name+"=http://"+peer)
		if configure != nil {
			configure(cfg)
		}
		cfgs[i] = cfg
	}
	c := &Cluster{}
	for _, cfg := range cfgs {
		cfg.InitialCluster = strings.Join(initial, ",")
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			c.stop()
			return nil, err
		}
		c.Members = append(c.Members, e)
		c.cfgs = append(c.cfgs, cfg)
		c.Endpoints = append(c.Endpoints, cfg.ListenClientUrls[0].String())
	}
	for _, e := range c.Members {
		select {
		case <-e.Server.ReadyNotify():
		case err := <-e.Err():
			c.stop()
			return nil, err
		case <-time.After(30 * time.Second):
			c.stop()
			return nil, fmt.Errorf("etcd member %s not ready after 30s", e.Config().Name)
		}
	}
	t.Cleanup(c.stop)
	return c, nil
}

func (c *Cluster) stop() {
	for i, e := range c.Members {
		if done, killed := c.closing[i]; killed {
			<-done
			continue
		}
		select {
		case <-e.Server.ReadyNotify():
		default:
			// A member restarted a moment ago may not be ready yet, and
			// once its peers close it never will: embed's Close waits for
			// its client servers, which start only when it is ready or
			// stopping. Stopping it first lets Close through.
			e.Server.HardStop()
		}
		e.Close()
	}
}

// Kill stops member i as a crash would: no leadership transfer, no
// goodbye to its peers.
func (c *Cluster) Kill(i int) {
	e := c.Members[i]
	e.Server.HardStop()
	// Close waits for open client streams (a daemon's watch) up to the
	// request timeout; a crash does not, so that happens in the background.
	done := make(chan struct{})
	go func() { e.Close(); close(done) }()
	if c.closing == nil {
		c.closing = map[int]chan struct{}{}
	}
	c.closing[i] = done
}

// Restart starts stopped member i again, with its data and ports.
func (c *Cluster) Restart(t testing.TB, i int) {
	t.Helper()
	if done, killed := c.closing[i]; killed {
		<-done // its ports are free once it closed
		delete(c.closing, i)
	}
	cfg := c.cfgs[i]
	cfg.ClusterState = embed.ClusterStateFlagExisting
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("restart etcd member %d: %v", i, err)
	}
	c.Members[i] = e
	// Not ReadyNotify: a member alone (its peers still down) never gets
	// ready, and a test may restart members one by one.
}

// Client returns a client of the whole cluster, closed when t ends.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return NewClient(t, c.Endpoints)
}

// NewClient returns a client of endpoints, closed when t ends, whose unary
// calls go through intercept (a test's faults: lost answers, timeouts).
func NewClient(t testing.TB, endpoints []string, intercept ...grpc.UnaryClientInterceptor) *clientv3.Client {
	t.Helper()
	cfg := clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	if len(intercept) > 0 {
		cfg.DialOptions = []grpc.DialOption{grpc.WithChainUnaryInterceptor(intercept...)}
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// freeAddrs returns n distinct loopback addresses free a moment ago (all
// held open together, so none repeats); Start retries when another
// process took one in between.
func freeAddrs(n int) ([]string, error) {
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, ln.Addr().String())
		defer ln.Close()
	}
	return addrs, nil
}

// memberEnv, set in a child's environment, makes the test binary run etcd
// with its arguments instead of the tests.
const memberEnv = "IDRECON_ETCDTEST_MEMBER"

func init() {
	if os.Getenv(memberEnv) == "1" {
		if err := runMember(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "etcd member:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// runMember runs one embedded member, with fsync, configured by the flags
// startProcsOnce passes (etcd's own spelling), until the process is killed.
func runMember(args []string) error {
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	cfg := embed.NewConfig()
	var client, peer string
	fs.StringVar(&cfg.Name, "name", "", "")
	fs.StringVar(&cfg.Dir, "data-dir", "", "")
	fs.StringVar(&client, "listen-client-urls", "", "")
	fs.StringVar(&peer, "listen-peer-urls", "", "")
	fs.StringVar(&cfg.InitialCluster, "initial-cluster", "", "")
	fs.StringVar(&cfg.InitialClusterToken, "initial-cluster-token", "", "")
	fs.StringVar(&cfg.LogLevel, "log-level", "warn", "")
	fs.DurationVar(&cfg.WatchProgressNotifyInterval, "watch-progress-notify-interval", time.Second, "")
	fs.UintVar(&cfg.MaxTxnOps, "max-txn-ops", embed.DefaultMaxTxnOps, "")
	fs.String("advertise-client-urls", "", "same as listen")
	fs.String("initial-advertise-peer-urls", "", "same as listen")
	fs.String("logger", "", "ignored")
	fs.String("log-outputs", "", "ignored")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cu, err := url.Parse(client)
	if err != nil {
		return err
	}
	pu, err := url.Parse(peer)
	if err != nil {
		return err
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.EnablePprof = true // a benchmark may profile a member: /debug/pprof on the client URL
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	return <-e.Err()
}

// StartProcesses runs an n-member cluster of etcd at the client's version,
// each member a child process (this test binary, run as etcd) with fsync
// on, stopped when t ends. flags go to every member: of etcd's own, only
// --max-txn-ops is taken.
func StartProcesses(t testing.TB, n int, flags ...string) *Cluster {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return startProcs(t, self, []string{memberEnv + "=1"}, append([]string{"--watch-progress-notify-interval=1s"}, flags...), n)
}

// StartPackaged runs the etcd binary of the Debian package etcd-server (an
// independent build, older than the client) as an n-member cluster of
// child processes, stopped when t ends; without it the test is skipped.
func StartPackaged(t testing.TB, n int) *Cluster {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd not installed (the Debian package etcd-server)")
	}
	return startProcs(t, bin, nil, []string{"--experimental-watch-progress-notify-interval=1s"}, n)
}

// startProcs runs bin, with env added to its environment, as an n-member
// cluster. flags go to every member, the binary's spelling of the one that
// sets the watch progress interval among them.
func startProcs(t testing.TB, bin string, env []string, flags []string, n int) *Cluster {
	t.Helper()
	for attempt := 1; ; attempt++ {
		c, logs, err := startProcsOnce(t, bin, env, flags, n)
		if err == nil {
			return c
		}
		if !strings.Contains(logs, "address already in use") || attempt == 5 {
			t.Fatalf("etcd %s did not start: %v\n%s", bin, err, logs)
		}
	}
}

func startProcsOnce(t testing.TB, bin string, env []string, flags []string, n int) (*Cluster, string, error) {
	addrs, err := freeAddrs(2 * n)
	if err != nil {
		return nil, "", err
	}
	var initial []string
	for i := range n {
		initial = append(initial, fmt.Sprintf("p%d=http://%s", i, addrs[2*i+1]))
	}
	c := &Cluster{}
	var logs []*bytes.Buffer
	exited := make(chan struct{}, n)
	for i := range n {
		client, peer := "http://"+addrs[2*i], "http://"+addrs[2*i+1]
		log := &bytes.Buffer{}
		args := append([]string{"--name", fmt.Sprintf("p%d", i), "--data-dir", t.TempDir(),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-token", "idrecon-test",
			"--logger=zap", "--log-outputs=stderr", "--log-level=warn"}, flags...)
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			c.killAll()
			return nil, "", fmt.Errorf("start %s: %w", bin, err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done); exited <- struct{}{} }()
		c.procs = append(c.procs, &proc{cmd: cmd, done: done})
		c.Endpoints = append(c.Endpoints, client)
		logs = append(logs, log)
	}
	if err := c.waitHealthy(exited); err != nil {
		c.killAll()
		var all strings.Builder
		for _, l := range logs {
			all.WriteString(l.String())
		}
		return nil, all.String(), err
	}
	t.Cleanup(c.killAll)
	return c, "", nil
}

// proc is a member running as a process.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// KillProcess kills member i's process with SIGKILL (clusters of processes).
func (c *Cluster) KillProcess(i int) {
	c.procs[i].cmd.Process.Kill()
	<-c.procs[i].done
}

// Pids returns the process ids of the members of a cluster of processes.
func (c *Cluster) Pids() []int {
	var out []int
	for _, p := range c.procs {
		out = append(out, p.cmd.Process.Pid)
	}
	return out
}

func (c *Cluster) killAll() {
	for _, p := range c.procs {
		p.cmd.Process.Kill()
		<-p.done
	}
}

// waitHealthy polls the cluster with a read until it answers, a member
// exits or a generous deadline passes.
func (c *Cluster) waitHealthy(exited <-chan struct{}) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "health")
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("etcd exited")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not answering after 30s: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Leader returns the index of the member that leads the cluster.
func (c *Cluster) Leader(t testing.TB) int {
	t.Helper()
	cli := c.Client(t)
	for i, ep := range c.Endpoints {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := cli.Status(ctx, ep)
		cancel()
		if err == nil && st.Leader == st.Header.MemberId {
			return i
		}
	}
	t.Fatal("no etcd member says it leads")
	return -1
}
